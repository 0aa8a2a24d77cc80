"""Hostile or broken pipeline configs are refused at load, naming the file, line or key, before any
work: YAML aliases (an alias bomb), keys given twice, non-finite and out-of-range numbers; and a
loss that turns non-finite during training fails the stage without saving anything."""

from __future__ import annotations

import json
import shutil
import resource
import time
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from flows_support import LANGUAGE_TRAINING, TASK_TRAINING, write_pipeline
from madx.errors import ConfigError, TrainingFailedError


def written(tmp_path, text: str):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    from flows.config import load_pipeline_config

    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]" for i in range(8)]
    path = written(tmp_path, "\n".join(levels) + "\n")  # 10^9 strings once expanded
    memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"pipeline.yaml:2: YAML alias \*a is not accepted"):
        load_pipeline_config(path)
    assert time.monotonic() - started < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory_before < 50_000  # KiB: nothing expanded


def test_a_key_given_twice_names_both_lines(tmp_path, tiny_base_dir, toy_ner):
    from flows.config import load_pipeline_config

    path = write_pipeline(tmp_path, tiny_base_dir, toy_ner)
    lines = path.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("languages:"))
    lines.insert(at + 1, "  sw: {corpus: corpora/en.txt}")  # a second sw, before the one written by write_pipeline
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pipeline.yaml:\d+: key 'sw' is given twice in one mapping \(also on line "
                                          rf"{at + 2}\)"):
        load_pipeline_config(path)


@pytest.mark.parametrize("section, key, value, message", [
    ("task_adapter", "learning_rate", float("inf"), "task_adapter.learning_rate: expected a finite number, got inf"),
    ("language_adapter", "learning_rate", float("nan"), "language_adapter.learning_rate: expected a finite number"),
    ("language_adapter", "mlm_probability", float("inf"), "language_adapter.mlm_probability: expected a finite"),
])
def test_non_finite_numbers_are_refused_with_their_key(tmp_path, tiny_base_dir, toy_ner, section, key, value, message):
    from flows.config import load_pipeline_config

    path = write_pipeline(tmp_path, tiny_base_dir, toy_ner, edit=lambda data: data[section].update({key: value}))
    assert (".inf" in path.read_text() or ".nan" in path.read_text())  # what a user writes in YAML
    with pytest.raises(ConfigError, match=message):
        load_pipeline_config(path)


@pytest.mark.parametrize("section, key, value, message", [
    ("language_adapter", "steps", True, "language_adapter.steps: expected an integer, got True"),
    ("language_adapter", "steps", "2", "language_adapter.steps: expected an integer, got '2' (a number in quotes is "
                                       "text: drop the quotes)"),
    ("task_adapter", "weight_decay", float("nan"), "task_adapter.weight_decay: expected a finite number, got nan"),
    ("task_adapter", "learning_rate", True, "task_adapter.learning_rate: expected a number, got True"),
    ("task_adapter", "learning_rate", "1e-4", "task_adapter.learning_rate: expected a number, got '1e-4' (YAML reads "
                                              "1e-4 as text: write 1.0e-4)"),
    ("task_adapter", "learning_rate", 0, "task_adapter.learning_rate: must be > 0, got 0"),
    ("task_adapter", "epochz", 3, "task_adapter.epochz: unknown key (did you mean epochs?); allowed: adapter, "
                                  "batch_size, device, epochs, "),
    ("task_adapter", "seed", 7, "task_adapter: give `seed` (one) or `seeds` (a list), not both"),  # seeds: [1, 2]
    ("task_adapter", "seeds", [1, 1], "task_adapter.seeds: [1, 1] repeats a seed"),
    ("task_adapter", "seeds", [1, -2], "task_adapter.seeds.1: must be >= 0, got -2"),
    ("task_adapter", "seeds", [], "task_adapter.seeds: expected at least 1 item(s), got []"),
    ("language_adapter", "seeds", [5], "(top level): language_adapter.seeds has 1 seeds and task_adapter.seeds 2: "),
    ("language_adapter", "grad_accumulation", 3, "language_adapter: batch_size 4 must be a multiple of "
                                                 "grad_accumulation 3"),
    ("language_adapter", "softmax_vocabulary", "some", "language_adapter.softmax_vocabulary: expected 'full' or "
                                                       "'corpus', got 'some'"),
    ("language_adapter", "adapter", "nope", "language_adapter.adapter: unknown adapter preset 'nope'"),
    ("language_adapter", "adapter", 5, "language_adapter.adapter: expected string or mapping, got 5"),
    ("evaluation", "batch_size", float("inf"), "evaluation.batch_size: expected an integer, got inf"),
    ("runner", "max_workers", 2.0, "runner.max_workers: expected an integer, got 2.0"),
])
def test_a_wrong_setting_is_named_with_what_was_expected_and_given(tmp_path, tiny_base_dir, toy_ner, section, key,
                                                                    value, message):
    from flows.config import load_pipeline_config

    path = write_pipeline(tmp_path, tiny_base_dir, toy_ner, edit=lambda data: data[section].update({key: value}))
    with pytest.raises(ConfigError) as raised:
        load_pipeline_config(path)
    assert str(raised.value).startswith(f"{path}: {message}"), str(raised.value)


@pytest.mark.parametrize("edit, message", [
    (lambda data: data["tasks"]["ner"]["train"].update(max_sentences="3"),
     "tasks.ner.train.max_sentences: expected an integer, got '3'"),
    (lambda data: data["tasks"]["ner"]["test"]["sw"].update(colour=1),
     "tasks.ner.test.sw.colour: unknown key; allowed: config, data_files, format, label_names, max_sentences, name, "
     "path, split, tag_column, token_column"),
    (lambda data: data["tasks"]["ner"]["dev"].update(tag_column=1.5), "tasks.ner.dev.tag_column: expected string or "
                                                                      "integer, got 1.5"),
    (lambda data: data["tasks"]["ner"]["dev"].update(tag_column=0), "tasks.ner.dev: "),  # the dataclass's own check
    (lambda data: data["tasks"]["ner"]["dev"].pop("format"), "tasks.ner.dev.format: required, but not given"),
    (lambda data: data["tasks"]["ner"]["test"].update(sw="test.conll"), "tasks.ner.test.sw: expected a mapping, got "
                                                                       "'test.conll'"),
    (lambda data: data["languages"]["sw"].update(corpus={"text": "corpora/sw.txt", "max_documents": float("inf")}),
     "languages.sw.corpus: corpus max_documents must be a whole number >= 1, got inf"),
    (lambda data: data["languages"]["sw"].update(corpus=5), "languages.sw.corpus: a corpus is a path, udhr:<code>, "),
    (lambda data: data.update(base_model={"build": {"corpora": {"en": "corpora/en.txt"}, "spec": {"dropout": 1.5}}}),
     "base_model.build.spec.dropout: must be < 1, got 1.5"),
    (lambda data: data.update(base_model={"build": {"corpora": {"en": "corpora/en.txt"}, "spec": {"num_heads": 3}}}),
     "base_model.build.spec: hidden_size 128 must be a multiple of num_heads 3"),
    (lambda data: data.update(head_warmup={"steps": 3}), "(top level): head_warmup is set but base_model.mlm_head is "
                                                        "not 'warmup'"),
], ids=["labeled-quoted-int", "labeled-unknown-key", "labeled-union", "labeled-own-check", "labeled-missing",
        "labeled-not-a-mapping", "corpus-inf", "corpus-int", "spec-range", "spec-cross-field", "warmup-unused"])
def test_a_wrong_value_elsewhere_is_named_by_its_key(tmp_path, tiny_base_dir, toy_ner, edit, message):
    from flows.config import load_pipeline_config

    path = write_pipeline(tmp_path, tiny_base_dir, toy_ner, edit=edit)
    with pytest.raises(ConfigError) as raised:
        load_pipeline_config(path)
    assert str(raised.value).startswith(f"{path}: {message}"), str(raised.value)


def test_seed_and_seeds_give_the_runs(tmp_path, tiny_base_dir, toy_ner):
    """No seed: the default task seeds; `seed: N`: one run; `seeds` on both sections: paired runs, and
    each run's settings are the section's with that seed (no `seeds` in what cache keys hash)."""
    from flows.config import DEFAULT_SEEDS, load_pipeline_config
    from task_adapters.settings import TaskAdapterTraining

    task = {key: value for key, value in TASK_TRAINING.items() if key != "seeds"}

    def loaded(**sections):
        return load_pipeline_config(write_pipeline(tmp_path, tiny_base_dir, toy_ner, **sections))

    def runs(config):
        return [(run.task_seed, run.language_seed) for run in config.seed_runs()]

    assert runs(loaded(task_adapter=task)) == [(seed, None) for seed in DEFAULT_SEEDS] == [(1, None), (2, None), (3, None)]
    assert runs(loaded(task_adapter={**task, "seed": 7})) == [(7, None)]
    paired = loaded(task_adapter={**task, "seeds": [4, 5]}, language_adapter={**LANGUAGE_TRAINING, "seeds": [8, 9]})
    assert runs(paired) == [(4, 8), (5, 9)]
    assert paired.language_training().seed == 42 and paired.language_training(9).seed == 9
    assert "seeds" not in paired.language_training(9).to_dict()
    assert paired.task_training(5).to_dict() == TaskAdapterTraining(**{**task, "seed": 5}).to_dict()
    assert type(paired.task_training(5)) is TaskAdapterTraining


def test_the_settings_dicts_that_cache_keys_hash_keep_their_shape():
    """Cache keys hash `to_dict()` (tasks/stages.py, the training fingerprints): its keys, order, types
    and defaults are what the dataclasses gave, so existing adapters are still reused."""
    from language_adapters.settings import LanguageAdapterTraining
    from task_adapters.settings import TaskAdapterTraining

    assert json.dumps(LanguageAdapterTraining().to_dict()) == (
        '{"steps": 50000, "batch_size": 64, "learning_rate": 0.0001, "warmup_steps": 500, "weight_decay": 0.0, '
        '"grad_accumulation": 1, "max_length": 256, "mlm_probability": 0.15, "held_out_fraction": 0.05, '
        '"eval_every": 1000, "checkpoint_every": 1000, "log_every": 50, "max_grad_norm": 1.0, "seed": 42, '
        '"softmax_vocabulary": "full", "min_corpus_tokens": 50000, "max_epochs": 3.0, "keep": "best", "center": true, '
        '"adapter": "madx_language", "device": "auto"}')
    assert json.dumps(TaskAdapterTraining().to_dict()) == (
        '{"epochs": 10, "batch_size": 16, "learning_rate": 0.0001, "warmup_ratio": 0.1, "weight_decay": 0.0, '
        '"max_length": 128, "eval_batch_size": 64, "max_grad_norm": 1.0, "strict_iob2": true, "seed": 42, '
        '"min_gain_over_majority": 0.05, "adapter": "madx_task", "device": "auto"}')


def test_settings_built_in_code_are_checked_as_strictly():
    from language_adapters.settings import BaseModelSpec
    from task_adapters.settings import TaskAdapterTraining

    with pytest.raises(ValidationError, match=r"dropout\n  Input should be less than 1"):
        BaseModelSpec(dropout=1.5)
    with pytest.raises(ValidationError, match="hidden_size 10 must be a multiple of num_heads 4"):
        BaseModelSpec(hidden_size=10)
    with pytest.raises(ValidationError, match="epochz\n  Extra inputs are not permitted"):
        TaskAdapterTraining(epochz=3)
    with pytest.raises(ValidationError, match="epochs\n  Input should be a valid integer"):
        TaskAdapterTraining(epochs="3")
    with pytest.raises(ValidationError, match="frozen"):
        TaskAdapterTraining().epochs = 3


def test_a_loss_that_turns_non_finite_fails_the_stage_and_saves_nothing(tiny_base_dir, tiny_language_adapter, toy_ner,
                                                                         tmp_path):
    from tagging.sources import LabeledSource
    from task_adapters.settings import TaskAdapterTraining
    from task_adapters.train import train_task_adapter

    huge = TaskAdapterTraining(epochs=2, batch_size=8, learning_rate=1e30, warmup_ratio=0.0, max_length=48,
                               max_grad_norm=0.0)  # finite, but it blows every weight up at the first step
    with pytest.raises(TrainingFailedError, match=r"task adapter 'ner': the training loss is nan at step \d+; nothing "
                                                  "was saved"):
        train_task_adapter(tiny_base_dir, "ner", tiny_language_adapter,
                           LabeledSource("conll", path=toy_ner / "train.conll"),
                           LabeledSource("conll", path=toy_ner / "dev.conll"), tmp_path / "ner", huge)
    assert not (tmp_path / "ner").exists()


def test_ordinary_yaml_still_loads(tmp_path):
    from flows.config import read_yaml

    path = written(tmp_path, "a: 1\nb: {c: [1, 2], d: x}\n")
    assert read_yaml(path) == yaml.safe_load(path.read_text())


def test_a_folder_or_a_pipe_given_as_the_config_is_named_as_such(tmp_path):
    import os

    from flows.config import load_pipeline_config

    with pytest.raises(ConfigError, match="is a folder; give the pipeline's YAML file"):
        load_pipeline_config(tmp_path)
    os.mkfifo(tmp_path / "pipe.yaml")
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_pipeline_config(tmp_path / "pipe.yaml")


def test_paths_that_cannot_work_are_refused_at_load(tmp_path, tiny_base_dir, toy_ner, monkeypatch):
    import os

    from flows.config import load_pipeline_config

    (tmp_path / "out").write_text("not a folder", encoding="utf-8")
    path = write_pipeline(tmp_path, tiny_base_dir, toy_ner)
    with pytest.raises(ConfigError, match=r"output_dir .*/out is an existing file"):
        load_pipeline_config(path)
    (tmp_path / "out").unlink()

    os.mkfifo(tmp_path / "corpora" / "piped.txt")  # what `--corpus <(cat f)` hands over
    piped = write_pipeline(tmp_path, tiny_base_dir, toy_ner,
                           edit=lambda data: data["languages"]["sw"].update(corpus="corpora/piped.txt"))
    with pytest.raises(ConfigError, match=r"languages.sw.corpus: .*piped.txt is a pipe, and a pipe can be read only "
                                          r"once while a corpus is read twice"):
        load_pipeline_config(piped)


def test_a_corpus_given_as_a_pipe_is_refused_before_anything_reads_it(tmp_path, capfd, monkeypatch):
    """`madx add-language xx --corpus <(zcat text.gz)` hands over a pipe (/dev/fd/63). A corpus is
    read twice (for its fingerprint, then to train), and a pipe only once: it is refused up front,
    saying so, and nothing is read from it (the writer still waits for its reader). A notebook
    calling the corpus reader directly hears the same reason."""
    import os
    import threading

    from flows_support import run_madx
    from language_adapters.corpus import load_corpus
    from madx.errors import DataError

    config = written(tmp_path, "name: x\noutput_dir: out\nbase_model: {name_or_path: xlm-roberta-base}\n"
                               "languages: {en: {corpus: udhr:en}}\n")
    pipe = tmp_path / "text.pipe"
    os.mkfifo(pipe)
    text = "Kila mtu ana haki ya kuishi.\n" * 50

    def zcat() -> None:  # like a process substitution's writer: blocks until a reader opens the pipe
        with open(pipe, "w", encoding="utf-8") as sink:
            sink.write(text)

    writer = threading.Thread(target=zcat, daemon=True)
    writer.start()
    try:
        result = run_madx(capfd, monkeypatch, "add-language", "xx", "--corpus", pipe, "--config", config)
        assert result.code == 1
        assert result.errors == [f"error: --corpus for 'xx': {pipe} is a pipe, and a pipe can be read only once while "
                                 "a corpus is read twice (for its fingerprint, then to train): write the text to a file "
                                 "first (e.g. `zcat text.gz > text.txt`) and give that file"], result.err
        with pytest.raises(DataError, match=rf"^{pipe} is a pipe, and a pipe can be read only once"):
            load_corpus(str(pipe))
        assert writer.is_alive()  # nobody opened the pipe for reading
    finally:
        with open(pipe, encoding="utf-8") as source:  # the reader it waits for
            assert source.read() == text  # all of it: nothing was consumed
        writer.join(timeout=30)


def test_a_relative_sqlite_store_is_relative_to_the_yaml_like_every_other_path(tmp_path, tiny_base_dir, toy_ner,
                                                                              monkeypatch):
    from flows.config import load_pipeline_config

    path = write_pipeline(tmp_path / "project", tiny_base_dir, toy_ner, tracking_uri="sqlite:///store/mlflow.db")
    monkeypatch.chdir(tmp_path)  # elsewhere
    assert load_pipeline_config(path).tracking_uri == f"sqlite:///{tmp_path / 'project' / 'store' / 'mlflow.db'}"
    absolute = write_pipeline(tmp_path / "abs", tiny_base_dir, toy_ner, tracking_uri=f"sqlite:///{tmp_path}/x.db")
    assert load_pipeline_config(absolute).tracking_uri == f"sqlite:///{tmp_path}/x.db"


def test_evaluating_an_unconfigured_language_is_refused_before_any_work(tmp_path, tiny_base_dir, toy_ner):
    from flows.pipeline import evaluate_zero_shot

    path = write_pipeline(tmp_path, tiny_base_dir, toy_ner)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"languages \['zz'\] are not in .*pipeline.yaml \(languages: \['en', 'sw'\]\)"):
        evaluate_zero_shot.fn(str(path), ["zz"])  # the flow's own code, without Prefect
    assert time.monotonic() - started < 5 and not (tmp_path / "out").exists()  # no store, no base model


# -- config validation, key by key (moved from test_flows: no Prefect needed) ----------------------
def _edit(path: list, value):
    def edit(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


@pytest.mark.parametrize("edit, names", [
    (_edit(["colour"], "blue"), ["colour: unknown key"]),
    (_edit(["runner", "workers"], 3), ["runner.workers: unknown key"]),
    (_edit(["languages", "sw", "corpora"], "x.txt"), ["languages.sw.corpora: unknown key"]),
    (_edit(["language_adapter", "stepz"], 3), ["language_adapter.stepz: unknown key (did you mean steps?); allowed: "]),
    (_edit(["evaluation", "batch_size"], "many"), ["evaluation.batch_size: expected an integer, got 'many'"]),
    (_edit(["runner", "kind"], "ray"), ["runner.kind", "'threads' or 'dask'"]),
    (_edit(["languages", "sw", "corpus"], "corpora/missing.txt"), ["languages.sw.corpus", "corpora/missing.txt"]),
    (_edit(["tasks", "ner", "test", "sw"], {"format": "conll", "path": "nope.conll"}), ["tasks.ner.test.sw", "nope.conll"]),
    (_edit(["evaluation", "setups"], ["madx", "zero-shot"]), ["evaluation.setups", "'zero-shot'"]),
    (_edit(["source_language"], "fr"), ["source_language 'fr'", "['en', 'sw']"]),
    (_edit(["languages", "sw", "schedule"], "weekly"), ["languages.sw.schedule", "cron"]),
], ids=["unknown-key", "unknown-nested-key", "unknown-language-key", "unknown-training-key", "wrong-type",
        "wrong-choice", "missing-corpus", "missing-test-set", "unknown-setup", "source-not-configured", "bad-cron"])
def test_config_errors_name_the_key_and_file(tmp_path, tiny_base_dir, toy_ner, edit, names):
    from flows.config import load_pipeline_config

    path = write_pipeline(tmp_path, tiny_base_dir, toy_ner, edit=edit)
    with pytest.raises(ConfigError) as raised:
        load_pipeline_config(path)
    message = str(raised.value)
    assert message.startswith(str(path)), message
    for name in names:
        assert name in message, message


def test_wrongly_typed_training_field_is_named(tmp_path, tiny_base_dir, toy_ner):
    from flows.config import load_pipeline_config

    path = write_pipeline(tmp_path, tiny_base_dir, toy_ner, edit=_edit(["language_adapter", "steps"], "six"))
    with pytest.raises(ConfigError, match="steps"):
        load_pipeline_config(path)


def test_config_paths_resolve_against_the_yaml_folder(tmp_path, tiny_base_dir, toy_ner, monkeypatch):
    from flows.config import load_pipeline_config

    folder = tmp_path / "project"
    shutil.copytree(toy_ner, folder / "ner")
    shutil.copytree(tiny_base_dir, folder / "base")
    path = write_pipeline(folder, tiny_base_dir, toy_ner, edit=lambda data: (
        data["base_model"].update(name_or_path="./base"),
        data["tasks"]["ner"].update(train={"format": "conll", "path": "ner/train.conll"}),
        data["tasks"]["ner"]["test"].update(sw={"format": "conll", "path": "ner/test.conll"}),
    ))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_pipeline_config(Path("..") / "project" / path.name)  # relative to elsewhere, like a user's shell
    root = folder.resolve()
    assert config.output_dir == root / "out"
    assert config.corpus("sw").location == str(root / "corpora" / "sw.txt")
    assert config.base_model.name_or_path == str(root / "base")
    assert config.labeled("ner", "train").path == str(root / "ner" / "train.conll")
    assert config.labeled("ner", "test", "sw").path == str(root / "ner" / "test.conll")
    assert config.labeled("ner", "dev").path == str(toy_ner / "dev.conll")  # absolute paths stay
    assert config.source_file == root / "pipeline.yaml"

    # a hub name is not a path: it is left alone
    hub = write_pipeline(folder, tiny_base_dir, toy_ner, edit=_edit(["base_model", "name_or_path"], "xlm-roberta-base"))
    assert load_pipeline_config(hub).base_model.name_or_path == "xlm-roberta-base"
