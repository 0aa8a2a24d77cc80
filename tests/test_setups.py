"""The evaluation setups as one table (evaluation/setups.py), and the MAD-X paper's baselines that
need adapters of their own: `ta-only` (a task adapter trained with no language adapter, MAD-X −LAD
−INV) and `madx-noinv` (language adapters without invertible adapters and a task adapter trained on
the source's, MAD-X −INV).

Fast tests: the table drives the activations, the families, the config, the report's columns and
differences; the zero-shot matrix scores each setup with its family's adapters (tiny real models).
One slow test runs a tiny pipeline with setups [madx, en-la, ta-only, madx-noinv] on copies of the
session's shared pipeline adapters: only the new families train; a rerun reuses all; add-language
trains the new language's adapter of every family.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluation.setups import (COMPARISONS, DEFAULT_SETUPS, NEEDS_TARGET_ADAPTER, SETUPS, language_adapter_families,
                               task_adapter_families)
from madx import ConfigError, Stack, read_adapter_config
from tagging.sources import LabeledSource
from task_adapters.settings import TaskAdapterTraining

ALL_NEW = ["madx", "en-la", "ta-only", "madx-noinv"]
TASK_TRAINING = TaskAdapterTraining(epochs=6, batch_size=8, learning_rate=3e-2, warmup_ratio=0.0, max_length=48)


# -- the table ------------------------------------------------------------------------------------
@pytest.mark.parametrize("setup, stack, skipped", [
    ("madx", ("sw", "ner"), ()),
    ("madx-2.0", ("sw", "ner"), (11,)),
    ("madx-noinv", ("sw--noinv", "ner"), ()),  # the target's adapter of the noinv family
    ("en-la", ("en", "ner"), ()),
    ("no-la", ("ner",), ()),
    ("ta-only", ("ner",), ()),
])
def test_each_setup_activates_what_its_row_says(setup, stack, skipped):
    from evaluation.zero_shot import activation

    assert activation(setup, "ner", "en", "sw", num_layers=12) == (Stack(*stack), skipped)


def test_the_table_gives_each_setup_its_families():
    from madx.config import LANGUAGE_ADAPTER_FAMILIES

    assert {setup.family for setup in SETUPS.values()} - {None} <= set(LANGUAGE_ADAPTER_FAMILIES)
    assert {name: setup.task_family for name, setup in SETUPS.items()} == {
        "madx": "madx", "madx-2.0": "madx", "madx-noinv": "noinv", "en-la": "madx", "no-la": "madx", "ta-only": "ta-only"}
    assert NEEDS_TARGET_ADAPTER == {"madx", "madx-2.0", "madx-noinv"}
    # what trains: the default setups need nothing new; each baseline its own family
    assert language_adapter_families(DEFAULT_SETUPS) == ("madx",) == task_adapter_families(DEFAULT_SETUPS)
    assert language_adapter_families(ALL_NEW) == ("madx", "noinv")
    assert task_adapter_families(ALL_NEW) == ("madx", "noinv", "ta-only")
    assert language_adapter_families(["ta-only"]) == () and task_adapter_families(["ta-only"]) == ("ta-only",)


def test_the_config_takes_every_setup_of_the_table_and_keeps_the_default(tmp_path, tiny_base_dir, toy_ner):
    from flows.config import EvaluationConfig, validate_config
    from flows_support import pipeline_dict

    assert EvaluationConfig().setups == ["madx", "en-la", "no-la"]  # no extra training for existing configs
    assert EvaluationConfig(setups=list(SETUPS)).setups == list(SETUPS)
    data = pipeline_dict(tiny_base_dir, toy_ner, {"en": "en.txt"}, evaluation={"setups": ["madx", "ta-only", "full-ft"]})
    with pytest.raises(ConfigError, match=r"evaluation.setups.*full-ft"):
        validate_config(data, tmp_path / "pipeline.yaml")


def test_noinv_language_adapters_are_the_configured_ones_without_invertible_adapter():
    from language_adapters.settings import LanguageAdapterTraining
    from madx.config import family_config, resolve_config

    configured = LanguageAdapterTraining(adapter={"preset": "madx_language", "reduction_factor": 4})
    assert configured.for_family("madx") is configured  # unchanged, so its cache keys stay as they were
    noinv = configured.for_family("noinv")
    assert resolve_config(noinv.adapter) == resolve_config(configured.adapter).replace(invertible=None)
    assert resolve_config(noinv.adapter).reduction_factor == 4 and resolve_config(configured.adapter).invertible == "nice"
    assert noinv.model_dump(exclude={"adapter"}) == configured.model_dump(exclude={"adapter"})
    with pytest.raises(ConfigError, match="unknown language-adapter family 'lora'"):
        family_config("madx_language", "lora")


def pos_matrix(setups, seeds=(1, 2, 3)):
    """Per-seed rows and per-sentence counts of a POS task on de and es, each setup its own accuracy."""
    from evaluation.comparison import score_totals

    accuracy = {"madx": 0.82, "madx-2.0": 0.81, "madx-noinv": 0.78, "en-la": 0.8, "no-la": 0.6, "ta-only": 0.7}
    rng = np.random.default_rng(0)
    rows, counts = [], {}
    for seed in seeds:
        for language in ("de", "es"):
            for setup in setups:
                run_id = f"{language}-{setup}-{seed}"
                counts[run_id] = np.array([[c, 10] for c in rng.binomial(10, accuracy[setup], 150)], dtype=float)
                rows.append({"task": "pos", "language": language, "setup": setup, "seed": seed, "scheme": "plain",
                             "f1": float(score_totals(counts[run_id].sum(axis=0), "plain")), "source_language": "en",
                             "run_id": run_id})
    return rows, counts


def test_the_report_orders_explains_and_compares_the_setups_from_the_table():
    from evaluation.report import summarise, to_markdown

    rows, counts = pos_matrix(list(reversed(SETUPS)))
    summary, = summarise(rows, counts)
    assert summary.setups == list(SETUPS)  # the table's order, whatever the rows'
    assert list(summary.differences) == [f"{a} − {b}" for a, b in COMPARISONS] == [
        "madx − en-la", "madx − ta-only", "madx − no-la", "madx − madx-noinv"]
    assert summary.differences["madx − ta-only"]["average"].excludes_zero  # 82 % against 70 %
    text = to_markdown(rows, "t", summaries=[summary])
    for name, setup in SETUPS.items():
        assert f"- `{name}`: {setup.meaning}." in text

    some, some_counts = pos_matrix(["madx", "ta-only"])  # a difference only where both setups are scored
    assert list(summarise(some, some_counts)[0].differences) == ["madx − ta-only"]
    assert "`madx-noinv`" not in to_markdown(some, "t")


def test_results_show_the_new_differences_and_what_the_setups_are(capsys, monkeypatch):
    from rich.console import Console

    import cli.pipeline

    monkeypatch.setattr(cli.pipeline, "console", Console(width=200, color_system=None))
    rows, counts = pos_matrix(ALL_NEW)
    task_adapters = [{"task": "pos", "family": "ta-only", "dev_f1": 0.903},
                     {"task": "pos", "family": "madx", "dev_f1": 0.95, "dev_majority_baseline": 0.17,
                      "majority_label": "NOUN"},
                     {"task": "pos", "family": "noinv", "dev_f1": 0.94}]
    cli.pipeline.print_table(rows, task_adapters, [], counts)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "madx − en-la" in line)
    assert header.split("  ")[0] == "language" and "madx − ta-only" in header and "madx − madx-noinv" in header
    assert "madx − no-la" not in out  # no-la was not scored
    # the madx task adapter's dev score first, the other families' beside it
    assert "en dev word accuracy: 95.0 (majority-label baseline 17.0, always NOUN); other task adapters: noinv 94.0, " \
           "ta-only 90.3" in out
    legend = " ".join(out.split())
    assert f"ta-only = {SETUPS['ta-only'].meaning}" in legend and f"madx-noinv = {SETUPS['madx-noinv'].meaning}" in legend


def test_every_setup_and_difference_fits_80_columns(capsys, monkeypatch):
    """Six setups and four differences are too wide for a grid at 80 columns: each language's come
    one per line instead, every number whole."""
    from rich.console import Console

    import cli.pipeline
    from evaluation.report import format_difference, summarise

    monkeypatch.setattr(cli.pipeline, "console", Console(width=80, color_system=None))
    rows, counts = pos_matrix(list(SETUPS))
    cli.pipeline.print_table(rows, [], [], counts)
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 80, "\n".join(lines)
    summary, = summarise(rows, counts)
    for label, by_language in summary.differences.items():
        for language in ("de", "es", "average"):
            shown = format_difference(by_language[language], "{}")
            assert any(label in line and line.rstrip().endswith(shown) for line in lines), (label, language)


# -- the zero-shot matrix with every family ----------------------------------------------------------
@pytest.fixture(scope="module")
def families(tmp_path_factory, tiny_base_dir, toy_corpus, toy_ner):
    """The adapters of the noinv and ta-only families on the tiny base: an `en` language adapter
    without invertible adapter and a task adapter trained on it, and a task adapter trained on none."""
    from language_adapters.settings import LanguageAdapterTraining
    from language_adapters.train import train_language_adapter
    from task_adapters.train import train_task_adapter

    out = tmp_path_factory.mktemp("families")
    training = LanguageAdapterTraining(steps=5, batch_size=4, learning_rate=1e-2, warmup_steps=0, max_length=32,
                                       eval_every=5, log_every=5, checkpoint_every=0, min_corpus_tokens=0,
                                       max_epochs=1000.0).for_family("noinv")
    train_language_adapter(tiny_base_dir, "en", toy_corpus, out / "en-noinv", training)
    data = LabeledSource("conll", path=toy_ner / "train.conll"), LabeledSource("conll", path=toy_ner / "dev.conll")
    train_task_adapter(tiny_base_dir, "ner", out / "en-noinv", *data, out / "ner-noinv", TASK_TRAINING)
    ta_only = train_task_adapter(tiny_base_dir, "ner", None, *data, out / "ner-ta-only", TASK_TRAINING,
                                 source_language="en")
    return out, ta_only


def test_a_task_adapter_trains_with_no_language_adapter(families, tiny_base_dir, toy_ner, tmp_path):
    from safetensors.torch import load_file

    from task_adapters.train import train_task_adapter

    out, ta_only = families
    assert ta_only.source_language == "en" and ta_only.metrics["dev_f1"] > 0.05
    metadata = read_adapter_config(out / "ner-ta-only")["metadata"]
    assert (metadata["source_language"], metadata["language_adapter"]) == ("en", None)
    assert read_adapter_config(out / "ner-noinv")["metadata"]["language_adapter"] == "en"
    assert read_adapter_config(out / "en-noinv")["config"]["invertible"] is None
    assert not any(key.startswith("invertible") for key in load_file(str(out / "en-noinv" / "adapter.safetensors")))
    with pytest.raises(ConfigError, match="needs `source_language`"):
        train_task_adapter(tiny_base_dir, "ner", None, LabeledSource("conll", path=toy_ner / "train.conll"),
                           LabeledSource("conll", path=toy_ner / "dev.conll"), tmp_path / "ner", TASK_TRAINING)


def score_alone(base, test, task_adapter, language_adapter=None) -> float:
    """The test set's entity F1 under Stack([language adapter,] task adapter), loaded on their own."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from madx import AdapterModel, load_adapter
    from tagging.alignment import encode_tagged, predictions_to_tags
    from tagging.predict import predict_label_ids, score_predicted
    from tagging.readers import load_labeled
    from tagging.scheme import LabelSet

    am = AdapterModel(AutoModelForTokenClassification.from_pretrained(str(base)))
    names = [load_adapter(am, language_adapter, name="la", with_head=False)] if language_adapter else []
    names.append(load_adapter(am, task_adapter, name="task"))
    am.set_active(Stack(*names))
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    labels = LabelSet(tuple(am.model.config.id2label[i] for i in range(am.model.num_labels)))
    corpus = load_labeled(test)
    encoded = encode_tagged(corpus, tokenizer, labels, 48)
    predicted = predictions_to_tags(encoded, predict_label_ids(am.model, encoded, tokenizer.pad_token_id, 64), labels)
    return score_predicted(corpus, predicted, labels.scheme)["f1"]


def test_the_matrix_scores_each_setup_with_its_familys_adapters(
        families, tiny_base_dir, tiny_language_adapter, tiny_task_adapter, toy_ner):
    from evaluation.zero_shot import FamilyAdapters, evaluate_zero_shot

    out, _ = families
    test = LabeledSource("conll", path=toy_ner / "test.conll")
    # "xx" holds the English adapters under another name: madx on it is the task adapter as trained
    rows = evaluate_zero_shot(
        tiny_base_dir, {"ner": tiny_task_adapter},
        {"en": tiny_language_adapter, "xx": tiny_language_adapter, "sw": tiny_language_adapter},
        {("ner", "xx"): test, ("ner", "sw"): test}, setups=ALL_NEW + ["no-la"], max_length=48,
        families={"noinv": FamilyAdapters({"ner": out / "ner-noinv"}, {"en": out / "en-noinv", "xx": out / "en-noinv",
                                                                         "sw": out / "en-noinv"}),
                  "ta-only": FamilyAdapters({"ner": out / "ner-ta-only"})},
        batch_size=7)
    by = {(row["language"], row["setup"]): row for row in rows}
    assert set(by) == {(language, setup) for language in ("xx", "sw") for setup in ALL_NEW + ["no-la"]}
    assert by[("xx", "madx")]["f1"] == by[("xx", "en-la")]["f1"] == pytest.approx(
        score_alone(tiny_base_dir, test, tiny_task_adapter, tiny_language_adapter))
    assert by[("xx", "madx-noinv")]["f1"] == pytest.approx(
        score_alone(tiny_base_dir, test, out / "ner-noinv", out / "en-noinv"))
    assert by[("xx", "ta-only")]["f1"] == pytest.approx(score_alone(tiny_base_dir, test, out / "ner-ta-only"))
    assert by[("xx", "no-la")]["f1"] == pytest.approx(score_alone(tiny_base_dir, test, tiny_task_adapter))
    # the harm guard still compares madx with en-la; the other setups carry no such measures
    assert [setup for (_, setup), row in by.items() if "label_agreement" in row] == ["madx", "madx"]
    assert all(row["source_language"] == "en" for row in rows)


def test_the_matrix_says_which_familys_adapter_is_missing(families, tiny_base_dir, tiny_language_adapter,
                                                          tiny_task_adapter, toy_ner):
    from evaluation.zero_shot import FamilyAdapters, evaluate_zero_shot

    out, _ = families
    test = LabeledSource("conll", path=toy_ner / "test.conll")
    madx = ({"ner": tiny_task_adapter}, {"en": tiny_language_adapter, "yo": tiny_language_adapter})
    with pytest.raises(ConfigError, match="setup madx-noinv needs a noinv language adapter for 'yo'"):
        evaluate_zero_shot(tiny_base_dir, *madx, {("ner", "yo"): test}, setups=["madx", "madx-noinv"],
                           families={"noinv": FamilyAdapters({"ner": out / "ner-noinv"}, {"en": out / "en-noinv"})})
    with pytest.raises(ConfigError, match=r"no ta-only task adapter of it \(setups \['ta-only'\]\)"):
        evaluate_zero_shot(tiny_base_dir, *madx, {("ner", "yo"): test}, setups=["madx", "ta-only"])
    # ta-only alone needs no language adapter at all
    rows = evaluate_zero_shot(tiny_base_dir, {}, {}, {("ner", "yo"): test}, setups=["ta-only"],
                              families={"ta-only": FamilyAdapters({"ner": out / "ner-ta-only"})})
    assert [(row["language"], row["setup"]) for row in rows] == [("yo", "ta-only")]


# -- a pipeline with the baselines ----------------------------------------------------------------------
def test_a_pipeline_with_the_baselines_trains_exactly_their_adapters_scores_every_cell_and_reuses_them(
        trained_pipeline, make_pipeline, tmp_path, toy_ner, capfd, monkeypatch):
    from flows.pipeline import add_language, madx_pipeline
    from flows_support import all_runs, children, run_madx, runs_where, torch_threads_kept, write_corpus

    evaluation = {"setups": ALL_NEW, "batch_size": 32, "max_length": 48}
    # the madx family's adapters are copies of the shared pipeline's: only the baselines' train here
    config = make_pipeline(tmp_path, ("en", "sw"), adapters=trained_pipeline.adapters, evaluation=evaluation)
    with torch_threads_kept():
        summary = madx_pipeline(str(config))
    out = tmp_path / "out" / "adapters"
    assert set(summary["adapters"]) == {
        "language/en", "language/sw", "language-noinv/en", "language-noinv/sw",
        *(f"{kind}/ner/seed-{seed}" for kind in ("task", "task-noinv", "task-ta-only") for seed in (1, 2))}
    assert summary["adapters"]["task-ta-only/ner/seed-2"] == str(out / "task-ta-only" / "ner" / "seed-2")

    # the noinv language adapters have no invertible adapter; the madx ones keep theirs
    for code in ("en", "sw"):
        assert read_adapter_config(out / "language-noinv" / code)["config"]["invertible"] is None
        assert read_adapter_config(out / "language" / code)["config"]["invertible"] == "nice"
    for seed in (1, 2):
        ta_only = read_adapter_config(out / "task-ta-only" / "ner" / f"seed-{seed}")["metadata"]
        assert (ta_only["source_language"], ta_only["language_adapter"], ta_only["family"]) == ("en", None, "ta-only")
        noinv = read_adapter_config(out / "task-noinv" / "ner" / f"seed-{seed}")["metadata"]
        assert (noinv["language_adapter"], noinv["family"]) == ("en", "noinv")

    # exactly the new families trained, each in its own run, tagged with its family
    runs = all_runs(config)
    parent = one(runs_where(runs, kind="pipeline"))
    trained = children(runs, parent.info.run_id)
    assert sorted((run.data.tags["madx.kind"], run.data.tags["madx.family"], run.data.tags["madx.language"])
                  for run in trained if run.data.tags["madx.kind"] != "evaluation_stage") == [
        ("language_adapter", "noinv", "en"), ("language_adapter", "noinv", "sw"),
        ("task_adapter", "noinv", "en"), ("task_adapter", "noinv", "en"),
        ("task_adapter", "ta-only", "en"), ("task_adapter", "ta-only", "en")]
    ta_only_run = next(run for run in trained if run.data.tags.get("madx.family") == "ta-only")
    assert "source_adapter_sha256" not in ta_only_run.data.params
    assert {run.data.tags["madx.family"] for run in all_runs(trained_pipeline.config_path)
            if run.data.tags["madx.kind"] in ("language_adapter", "task_adapter")} == {"madx"}

    # every cell scored, per seed, each setup a param of its evaluation run
    assert sorted((row["setup"], row["seed"]) for row in summary["rows"]) == [
        (setup, seed) for setup in sorted(ALL_NEW) for seed in (1, 2)]
    cells = [cell for stage in runs_where(trained, kind="evaluation_stage") for cell in children(runs, stage.info.run_id)]
    assert sorted(cell.data.params["setup"] for cell in cells) == sorted(ALL_NEW * 2)

    # the report and `madx results`: the new differences with their intervals, the setups in words
    markdown = Path(summary["report"]["markdown"]).read_text(encoding="utf-8")
    header = next(line for line in markdown.splitlines() if line.startswith("| language |"))
    assert header.startswith("| language | madx | madx-noinv | en-la | ta-only | madx − en-la | madx − ta-only | "
                             "madx − madx-noinv |")
    sw = next(line for line in markdown.splitlines() if line.startswith("| sw |")).split("|")
    assert all("[" in cell and "]" in cell for cell in sw[6:9]), sw  # each difference with its interval
    assert f"- `ta-only`: {SETUPS['ta-only'].meaning}." in markdown
    assert "ner.madx-minus-ta-only.sw.ci_low" in one(runs_where(all_runs(config), kind="pipeline")).data.metrics
    table = run_madx(capfd, monkeypatch, "results", config)
    assert table.code == 0, table.err
    assert "madx − ta-only" in table.out and "madx − madx-noinv" in table.out

    # an unchanged rerun reuses every adapter of every family
    with torch_threads_kept():
        again = madx_pipeline(str(config))
    assert again["adapters"] == summary["adapters"]
    rerun = children(all_runs(config), again["run_id"])
    assert sorted(run.data.tags["madx.kind"] for run in rerun) == ["evaluation_stage", "evaluation_stage"]

    # a new language gets its adapter of every family; no task adapter retrains
    corpus = write_corpus(tmp_path / "new" / "yo.txt", "yo")
    with torch_threads_kept():
        added = add_language(str(config), "yo", str(corpus), {"ner": str(toy_ner / "test.conll")})
    assert set(added["adapters"]) == {"language/yo", "language-noinv/yo"}
    assert read_adapter_config(out / "language-noinv" / "yo")["config"]["invertible"] is None
    flow_run = children(all_runs(config), added["run_id"])
    assert sorted((run.data.tags["madx.kind"], run.data.tags.get("madx.family")) for run in flow_run) == [
        ("evaluation_stage", None), ("evaluation_stage", None), ("language_adapter", "madx"),
        ("language_adapter", "noinv")]
    assert sorted((row["language"], row["setup"]) for row in added["rows"]) == sorted(
        ("yo", setup) for setup in ALL_NEW for _ in (1, 2))


def one(runs: list):
    assert len(runs) == 1, [run.info.run_name for run in runs]
    return runs[0]
