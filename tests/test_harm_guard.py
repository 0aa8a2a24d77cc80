"""The label-free harm guard: madx (target adapter) against en-la (source adapter) on the target's
test text, no gold labels used; flagged in the log, on the madx run in MLflow, in the report and in
`madx results`."""

from __future__ import annotations

import logging
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from evaluation.harm import harm_flag, harm_measures, label_agreement, label_tv
from madx.drift import HiddenDrift
from evaluation.settings import HarmGuard

GUARD = HarmGuard(max_label_tv=0.25, min_label_agreement=0.5)  # the thresholds these tests reason about


# -- the measures, on hand-made predictions ---------------------------------------------------------
def test_agreement_sees_labels_swapped_word_by_word_and_tv_sees_the_label_shares_move():
    source = [["NOUN", "VERB", "NOUN"], ["DET", "NOUN"]]
    swapped = [["VERB", "NOUN", "NOUN"], ["DET", "NOUN"]]  # two words changed, same label counts
    assert label_agreement(swapped, source) == pytest.approx(3 / 5)
    assert label_tv(swapped, source) == 0.0
    collapsed = [["NOUN", "NOUN", "NOUN"], ["NOUN", "NOUN"]]  # everything NOUN: shares 3/5 -> 5/5
    assert label_agreement(collapsed, source) == pytest.approx(3 / 5)
    # TV = (|5-3| + |0-1| + |0-1|) / (2 * 5)
    assert label_tv(collapsed, source) == pytest.approx(0.4)
    assert label_agreement(source, source) == 1.0 and label_tv(source, source) == 0.0
    disjoint = [["X", "X", "X"], ["X", "X"]]
    assert label_agreement(disjoint, source) == 0.0 and label_tv(disjoint, source) == 1.0


def test_the_measures_refuse_predictions_of_different_sentences():
    with pytest.raises(ValueError, match="sentence 1 .*2 labels under the target adapter, 1 under the source"):
        label_agreement([["A"], ["A", "B"]], [["A"], ["A"]])
    with pytest.raises(ValueError, match="2 sentences tagged under the target adapter but 1"):
        label_tv([["A"], ["B"]], [["A"]])


def test_hidden_drift_is_the_mean_relative_move_over_the_positions_of_words():
    drift = HiddenDrift()
    source = torch.tensor([[[3.0, 4.0], [1.0, 0.0], [9.0, 9.0]]])  # norms 5, 1, (padding)
    target = torch.tensor([[[3.0, 9.0], [1.0, 0.0], [0.0, 0.0]]])  # moved by 5 (ratio 1), 0, (ignored)
    drift.add(target, source, torch.tensor([[True, True, False]]))
    assert drift.mean == pytest.approx(0.5)
    drift.add(torch.tensor([[[0.0, 4.0]]]), torch.tensor([[[0.0, 2.0]]]), torch.tensor([[True]]))  # ratio 1
    assert (drift.positions, drift.mean) == (3, pytest.approx(2 / 3))  # a mean over positions, not batches
    assert math.isnan(HiddenDrift().mean)
    with pytest.raises(ValueError, match="mask"):
        drift.add(target, source, torch.tensor([[True]]))


def test_the_flag_says_what_was_measured_against_which_threshold():
    harmful = {"label_agreement": 0.39, "label_tv": 0.34, "hidden_drift": 1.2}
    assert harm_flag("pos", "kin", "en", harmful, GUARD) == (
        "`pos` kin: the kin adapter changes 61 % of the tagger's labels relative to the en adapter (agreement 39 % < 50 %; "
        "label distribution TV 0.34 > 0.25; hidden-state drift 1.20): it likely harms transfer")
    shifted = {"label_agreement": 0.8, "label_tv": 0.3, "hidden_drift": 0.4}
    assert "(agreement 80 % ≥ 50 %; label distribution TV 0.30 > 0.25;" in harm_flag("pos", "sw", "en", shifted, GUARD,
                                                                                    note="seed 2")
    assert harm_flag("pos", "sw", "en", shifted, GUARD, note="seed 2").startswith("`pos` sw (seed 2): ")
    assert harm_flag("pos", "de", "en", {"label_agreement": 0.9, "label_tv": 0.05, "hidden_drift": 0.3}, GUARD) is None
    lenient = HarmGuard(max_label_tv=0.5, min_label_agreement=0.2)
    assert harm_flag("pos", "kin", "en", harmful, lenient) is None


def test_harm_measures_of_identical_predictions_are_nil():
    tags = [["B-PER", "O"], ["O"]]
    drift = HiddenDrift()
    states = torch.randn(2, 3, 4)
    drift.add(states, states.clone(), torch.ones(2, 3, dtype=torch.bool))
    assert harm_measures(tags, tags, drift) == {"label_agreement": 1.0, "label_tv": 0.0, "hidden_drift": 0.0}


def test_thresholds_are_config_keys_checked_on_load(tmp_path, tiny_base_dir, toy_ner):
    from flows.config import load_pipeline_config
    from flows_support import write_pipeline
    from madx.errors import ConfigError

    def guard(**values):
        def edit(data):
            data["evaluation"]["harm_guard"] = values
        return edit

    config = load_pipeline_config(write_pipeline(tmp_path / "a", tiny_base_dir, toy_ner,
                                                 edit=guard(max_label_tv=0.3, min_label_agreement=0.6)))
    assert config.evaluation.harm_guard == HarmGuard(max_label_tv=0.3, min_label_agreement=0.6)
    assert load_pipeline_config(write_pipeline(tmp_path / "b", tiny_base_dir, toy_ner)).evaluation.harm_guard == \
        HarmGuard(max_label_tv=0.35, min_label_agreement=0.5)  # the defaults calibrated on MasakhaPOS dev
    with pytest.raises(ConfigError, match="evaluation.harm_guard.max_label_tv"):
        load_pipeline_config(write_pipeline(tmp_path / "c", tiny_base_dir, toy_ner, edit=guard(max_label_tv=1.5)))
    with pytest.raises(ConfigError, match="evaluation.harm_guard"):
        load_pipeline_config(write_pipeline(tmp_path / "d", tiny_base_dir, toy_ner, edit=guard(min_agreement=0.5)))


# -- on the tiny model: a harmful target adapter and a benign one -----------------------------------
def scaled_adapter(folder, out, factor: float):
    """A copy of the language adapter in `folder` with every weight multiplied by `factor`: a
    "target" adapter that throws the states far from where the task adapter learnt them."""
    shutil.copytree(folder, out)
    weights = load_file(str(out / "adapter.safetensors"))
    save_file({key: factor * tensor for key, tensor in weights.items()}, str(out / "adapter.safetensors"),
              metadata={"format": "pt"})
    return out


@pytest.fixture(scope="module")
def harmful_adapter(tmp_path_factory, tiny_language_adapter):
    return scaled_adapter(tiny_language_adapter, tmp_path_factory.mktemp("harmful") / "sw", 30.0)


@pytest.fixture(scope="module")
def guarded_rows(tiny_base_dir, tiny_language_adapter, tiny_task_adapter, harmful_adapter, toy_ner):
    from evaluation.zero_shot import evaluate_zero_shot
    from tagging.sources import LabeledSource

    test = LabeledSource("conll", path=toy_ner / "test.conll")
    # "de" is the source adapter itself under the target's name: the benign case.
    languages = {"en": tiny_language_adapter, "de": tiny_language_adapter, "sw": harmful_adapter}
    rows = evaluate_zero_shot(tiny_base_dir, {"ner": tiny_task_adapter}, languages,
                              {("ner", "de"): test, ("ner", "sw"): test}, setups=["madx", "en-la", "no-la"], batch_size=7)
    return {(row["language"], row["setup"]): row for row in rows}


def test_a_harmful_target_adapter_is_flagged_and_the_source_adapter_under_its_name_is_not(guarded_rows):
    harmful, benign = guarded_rows[("sw", "madx")], guarded_rows[("de", "madx")]
    assert (benign["label_agreement"], benign["label_tv"], benign["hidden_drift"]) == (1.0, 0.0, 0.0)
    assert harm_flag("ner", "de", "en", benign, GUARD) is None
    assert harmful["label_agreement"] < GUARD.min_label_agreement or harmful["label_tv"] > GUARD.max_label_tv
    assert harmful["hidden_drift"] > 0.5  # the head reads states far from the source adapter's
    assert harm_flag("ner", "sw", "en", harmful, GUARD).startswith("`ner` sw: the sw adapter changes ")
    assert harmful["f1"] < guarded_rows[("sw", "en-la")]["f1"]  # and it did harm: the guard saw it without labels
    # the measures sit on the madx run only
    assert not any("label_agreement" in guarded_rows[(language, setup)] for language in ("de", "sw")
                   for setup in ("en-la", "no-la"))


def test_the_guard_costs_no_pass_and_changes_no_score(guarded_rows, tiny_base_dir, tiny_language_adapter,
                                                      tiny_task_adapter, harmful_adapter, toy_ner):
    """madx and en-la scored side by side batch by batch give the scores each gives alone."""
    from evaluation.zero_shot import evaluate_zero_shot
    from tagging.sources import LabeledSource

    test = LabeledSource("conll", path=toy_ner / "test.conll")
    languages = {"en": tiny_language_adapter, "sw": harmful_adapter}
    alone = {row["setup"]: row for setup in ("madx", "en-la") for row in evaluate_zero_shot(
        tiny_base_dir, {"ner": tiny_task_adapter}, languages, {("ner", "sw"): test}, setups=[setup], batch_size=7)}
    for setup in ("madx", "en-la"):
        assert alone[setup]["sentence_counts"] == guarded_rows[("sw", setup)]["sentence_counts"]
        assert alone[setup]["f1"] == guarded_rows[("sw", setup)]["f1"]
    assert "label_agreement" not in alone["madx"]  # no en-la scored: no guard


class KeptRecords(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_madx_run_carries_the_measures_and_the_flag_and_results_and_report_show_them(
        tmp_path, tiny_base_dir, tiny_language_adapter, tiny_task_adapter, harmful_adapter, toy_ner, mlflow_template,
        capfd):
    from cli.pipeline import print_table
    from flows.config import load_pipeline_config
    from flows.pipeline import evaluation_job, tracking_target
    from flows_support import new_pipeline
    from madx.fileutil import sha256_of_directory
    from tasks import tracking
    from tasks.stages import AdapterRecord, StageContext, build_report_task, evaluate_task_adapter_task
    from tasks.tracking import Tracker
    from tasks.tracking_queries import TrackedRuns

    config = load_pipeline_config(new_pipeline(tmp_path, tiny_base_dir, toy_ner, mlflow_template, ("en", "sw", "de")))
    target = tracking_target(config)
    tracker = Tracker(target)
    parent = tracker.start("pipeline", {tracking.KIND: "pipeline"})
    ctx = StageContext(str(config.output_dir), target, parent, config.fingerprint(), threads=1)

    def record(name, folder):
        return AdapterRecord(name, str(folder), sha256_of_directory(folder), None, True)

    adapters = {"en": record("en", tiny_language_adapter), "de": record("de", tiny_language_adapter),
                "sw": record("sw", harmful_adapter)}
    kept = KeptRecords()
    logging.getLogger("madx").addHandler(kept)  # caplog misses it once Prefect's logging config is loaded
    try:
        evaluate_task_adapter_task.fn(ctx, evaluation_job(config, "ner", ["de", "sw"], seed=1), {"madx": adapters},
                                      {"madx": record("ner", tiny_task_adapter)}, str(tiny_base_dir))
    finally:
        logging.getLogger("madx").removeHandler(kept)
    logged = [r.getMessage() for r in kept.records if r.levelno == logging.WARNING and "harm guard" in r.getMessage()]
    assert len(logged) == 1 and "`ner` sw (seed 1): the sw adapter changes " in logged[0]

    runs = {(run.data.tags[tracking.LANGUAGE], run.data.tags[tracking.SETUP]): run
            for run in tracker.client.search_runs([tracker.experiment_id], f"tags.`{tracking.KIND}` = 'evaluation'")}
    assert {"label_agreement", "label_tv", "hidden_drift"} <= set(runs[("sw", "madx")].data.metrics)
    assert runs[("sw", "madx")].data.tags[tracking.FLAGS].startswith("`ner` sw (seed 1): the sw adapter changes ")
    assert runs[("de", "madx")].data.metrics["label_agreement"] == 1.0 and tracking.FLAGS not in runs[("de", "madx")].data.tags
    assert "label_agreement" not in runs[("sw", "en-la")].data.metrics

    # `madx results` reads the store back: the guard's table and its warning
    rows = TrackedRuns(tracker).evaluation_rows(str(tiny_base_dir))
    capfd.readouterr()
    print_table(rows, harm_guard=config.evaluation.harm_guard)
    out = capfd.readouterr().out
    assert "label-free harm guard" in out and "likely harmful" in out
    assert "warning: `ner` sw (seed 1): the sw adapter changes" in " ".join(out.split())

    files = build_report_task.fn(ctx, str(tiny_base_dir), "t", [], config.evaluation.harm_guard)
    report = open(files["markdown"], encoding="utf-8").read()
    warnings = report.split("## Warnings")[1].split("##")[0]
    assert "- `ner` sw (seed 1): the sw adapter changes " in warnings and "`ner` de" not in warnings
    assert "## Label-free harm guard" in report and "| ner | sw |" in report and "| ner | de | 100.0 | 0.00 | 0.00 |  |" in report
    tracker.finish(parent)


# -- the report without a guard, and the majority-baseline wording -------------------------------------
def _row(language, setup, score, seed=1, **extra):
    return {"task": "pos", "language": language, "setup": setup, "source_language": "en", "scheme": "plain",
            "f1": score, "majority_baseline": 0.38, "seed": seed, **extra}


def test_without_en_la_there_is_no_guard_and_the_report_says_so_once():
    from evaluation.report import to_markdown, untrustworthy

    rows = [_row(language, setup, 0.7) for language in ("de", "es") for setup in ("madx", "no-la")]
    text = to_markdown(rows, "t")
    assert text.count("No label-free harm guard") == 1
    assert "no `en-la` cell was scored (`evaluation.setups`)" in text
    assert not any("adapter changes" in line for line in untrustworthy(rows))


def test_the_report_averages_the_guard_over_seeds_and_flags_by_the_thresholds_given():
    from evaluation.report import to_markdown, untrustworthy

    measures = [{"label_agreement": 0.30, "label_tv": 0.40, "hidden_drift": 2.0},
                {"label_agreement": 0.50, "label_tv": 0.30, "hidden_drift": 1.0}]
    rows = [_row("kin", "madx", 0.33, seed, **m) for seed, m in zip((1, 2), measures)]
    rows += [_row("kin", "en-la", 0.66, seed) for seed in (1, 2)]
    found = untrustworthy(rows, guard=GUARD)
    assert ("`pos` kin (mean of seeds 1, 2): the kin adapter changes 60 % of the tagger's labels relative to the en "
            "adapter (agreement 40 % < 50 %; label distribution TV 0.35 > 0.25; hidden-state drift 1.50)") in " ".join(found)
    assert "| pos | kin | 40.0 ± 14.1 | 0.35 ± 0.07 | 1.50 ± 0.71 | **likely harmful** |" in to_markdown(rows, "t",
                                                                                                   guard=GUARD)
    lenient = HarmGuard(max_label_tv=0.5, min_label_agreement=0.1)
    assert not any("adapter changes" in line for line in untrustworthy(rows, guard=lenient))
    assert "**likely harmful**" not in to_markdown(rows, "t", guard=lenient)


def test_the_majority_warning_says_below_when_below_and_within_when_within():
    from evaluation.report import untrustworthy

    rows = [_row("kin", "madx", 0.19, 1), _row("kin", "madx", 0.21, 2),  # 19 points below the baseline (38 %)
            _row("de", "no-la", 0.39, 1),  # 1 point above it
            _row("es", "madx", 0.80, 1)]
    found = untrustworthy(rows)
    assert ("`pos`: below the majority-label baseline (the tagger transferred nothing there): "
            "kin/madx (mean 20.0 % vs 38.0 %, seeds 1, 2)") in found
    assert ("`pos`: within 2 points above the majority-label baseline (the tagger transferred next to nothing there): "
            "de/no-la (39.0 % vs 38.0 %, seed 1)") in found
    assert not any("es/madx" in line for line in found)
