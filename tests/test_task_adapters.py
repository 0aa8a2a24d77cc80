"""Task-adapter training on top of the frozen source-language adapter."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from madx import DataError, read_adapter_config
from tagging.scheme import LabelSet
from tagging.sources import LabeledSource
from task_adapters.settings import TaskAdapterTraining
from task_adapters.train import train_task_adapter

FAST = TaskAdapterTraining(epochs=8, batch_size=8, learning_rate=3e-2, warmup_ratio=0.0, max_length=48)


def test_task_adapter_learns_and_keeps_the_best_dev_epoch(tiny_base_dir, tiny_language_adapter, toy_ner, tmp_path):
    result = train_task_adapter(
        tiny_base_dir, "ner", tiny_language_adapter,
        LabeledSource("conll", path=toy_ner / "train.conll"), LabeledSource("conll", path=toy_ner / "dev.conll"),
        tmp_path / "ner", FAST,
    )
    dev_f1 = [row["dev_f1"] for row in result.history]
    assert len(dev_f1) == 8 and max(dev_f1) > 0.4 and max(dev_f1) > dev_f1[0] + 0.1
    assert result.metrics["dev_f1"] == max(dev_f1)
    assert result.metrics["best_epoch"] == 1 + dev_f1.index(max(dev_f1))
    assert result.source_language == "en"
    assert list(result.label_set.labels) == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    saved = read_adapter_config(tmp_path / "ner")
    assert saved["metadata"]["source_language"] == "en" and saved["metadata"]["kind"] == "task_adapter"
    head = json.loads((tmp_path / "ner" / "head_config.json").read_text())
    assert head["id2label"]["5"] == "B-PER"
    assert result.metrics["trainable_parameters"] < 0.2 * result.metrics["total_parameters"]
    # the English adapter was frozen: the task folder holds only the task adapter's weights
    assert not any(key.startswith("invertible") for key in load_file(str(tmp_path / "ner" / "adapter.safetensors")))


def test_dev_labels_outside_the_training_label_set_are_reported(tiny_base_dir, tiny_language_adapter, toy_ner, tmp_path):
    dev = tmp_path / "dev.conll"
    dev.write_text("Maria\tB-PER\nsings\tO\n\nParis\tB-CITY\n", encoding="utf-8")
    with pytest.raises(DataError, match="B-CITY"):
        train_task_adapter(
            tiny_base_dir, "ner", tiny_language_adapter,
            LabeledSource("conll", path=toy_ner / "train.conll"), LabeledSource("conll", path=dev),
            tmp_path / "ner", FAST,
        )
    assert not (tmp_path / "ner").exists()


def test_given_label_set_is_used_as_is(tiny_base_dir, tiny_language_adapter, toy_ner, tmp_path):
    labels = LabelSet(("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"))
    result = train_task_adapter(
        tiny_base_dir, "ner", tiny_language_adapter,
        LabeledSource("conll", path=toy_ner / "train.conll"), LabeledSource("conll", path=toy_ner / "dev.conll"),
        # one short epoch, so the majority-baseline guard is off: this test is about the label set
        tmp_path / "ner", TaskAdapterTraining(epochs=1, batch_size=8, learning_rate=5e-3, max_length=48,
                                              min_gain_over_majority=0.0), label_set=labels,
    )
    assert result.label_set == labels
    head = json.loads((tmp_path / "ner" / "head_config.json").read_text())
    assert head["num_labels"] == 9 and head["id2label"]["7"] == "B-MISC"


def test_a_tagger_no_better_than_the_majority_label_fails_loudly_and_saves_nothing(
    tiny_base_dir, tiny_language_adapter, toy_ner, tmp_path
):
    """A task adapter that did not learn (here: a learning rate so small it never moves, as good as
    0 steps) would make every zero-shot cell meaningless: the stage fails and writes nothing."""
    from madx.errors import TrainingFailedError

    frozen = TaskAdapterTraining(epochs=1, batch_size=8, learning_rate=1e-12, warmup_ratio=0.0, max_length=48)
    with pytest.raises(TrainingFailedError, match=r"best dev entity F1 .* is not clearly above the majority-label "
                                                   r"baseline 0\.0 % \(always 'O'"):
        train_task_adapter(
            tiny_base_dir, "ner", tiny_language_adapter,
            LabeledSource("conll", path=toy_ner / "train.conll"), LabeledSource("conll", path=toy_ner / "dev.conll"),
            tmp_path / "ner", frozen,
        )
    assert not (tmp_path / "ner").exists()


def test_the_majority_baseline_is_recorded_with_the_adapter(tiny_task_adapter):
    saved = read_adapter_config(tiny_task_adapter)
    assert saved["metadata"]["majority_label"] == "O"
    assert saved["metadata"]["metrics"]["dev_majority_baseline"] == 0.0  # all-O finds no entity
