"""The zero-shot matrix, scoring, batched inference and the report."""

from __future__ import annotations

import json

import pytest
import torch
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2
from transformers import AutoModelForTokenClassification, AutoTokenizer

from evaluation.report import write_report
from evaluation.zero_shot import evaluate_zero_shot
from madx import AdapterModel, ConfigError, Stack, load_adapter
from tagging.alignment import encode_tagged
from tagging.metrics import score_tagging
from tagging.predict import predict_label_ids
from tagging.readers import load_labeled
from tagging.scheme import LabelSet
from tagging.sources import LabeledSource


@pytest.fixture(scope="module")
def matrix(tiny_base_dir, tiny_language_adapter, tiny_task_adapter, toy_ner):
    test = LabeledSource("conll", path=toy_ner / "test.conll")
    # "xx" is the English adapter under another name: MAD-X with it must equal en-la exactly.
    languages = {"en": tiny_language_adapter, "xx": tiny_language_adapter, "sw": tiny_language_adapter}
    cells = []
    rows = evaluate_zero_shot(
        tiny_base_dir, {"ner": tiny_task_adapter}, languages, {("ner", "xx"): test, ("ner", "sw"): test},
        setups=["madx", "en-la", "no-la", "madx-2.0"], on_cell=lambda cell, row: cells.append(cell),
    )
    return rows, cells


def test_matrix_has_every_cell(matrix):
    rows, cells = matrix
    assert {(r["language"], r["setup"]) for r in rows} == {
        (lang, setup) for lang in ("xx", "sw") for setup in ("madx", "en-la", "no-la", "madx-2.0")
    }
    assert len(cells) == 8 and all(0 <= r["f1"] <= 1 and "per_type.PER.f1" in r for r in rows)
    by = {(r["language"], r["setup"]): r for r in rows}
    assert by[("xx", "madx")]["f1"] == by[("xx", "en-la")]["f1"]  # same adapter weights, swapped by name
    assert by[("xx", "en-la")]["f1"] == by[("sw", "en-la")]["f1"]  # the same test set
    assert by[("xx", "en-la")]["f1"] > 0.3  # the task adapter transfers something


def test_matrix_refuses_missing_pieces_before_loading(tiny_base_dir, tiny_language_adapter, tiny_task_adapter, toy_ner):
    test = LabeledSource("conll", path=toy_ner / "test.conll")
    with pytest.raises(ConfigError, match="needs a language adapter for 'yo'"):
        evaluate_zero_shot(tiny_base_dir, {"ner": tiny_task_adapter}, {"en": tiny_language_adapter}, {("ner", "yo"): test})
    with pytest.raises(ConfigError, match="unknown evaluation setup"):
        evaluate_zero_shot(tiny_base_dir, {"ner": tiny_task_adapter}, {"en": tiny_language_adapter},
                           {("ner", "en"): test}, setups=["madx", "full-ft"])


def test_dynamic_padding_predicts_what_padding_to_max_length_predicts(tiny_base_dir, tiny_language_adapter, tiny_task_adapter, toy_ner):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base_dir))
    am = AdapterModel(AutoModelForTokenClassification.from_pretrained(str(tiny_base_dir)))
    load_adapter(am, tiny_language_adapter)
    load_adapter(am, tiny_task_adapter)
    am.set_active(Stack("en", "ner"))
    corpus = load_labeled(LabeledSource("conll", path=toy_ner / "test.conll"))
    labels = LabelSet(tuple(am.model.config.id2label[i] for i in range(am.model.num_labels)))
    encoded = encode_tagged(corpus, tokenizer, labels, max_length=48)
    sorted_batches = predict_label_ids(am.model, encoded, tokenizer.pad_token_id, batch_size=7)
    with torch.inference_mode():
        width = 48
        ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
        for i, row in enumerate(encoded["input_ids"]):
            ids[i, : len(row)] = torch.tensor(row)
        full = am.model(input_ids=ids, attention_mask=(ids != tokenizer.pad_token_id).long()).logits.argmax(-1)
    for i, row in enumerate(encoded["input_ids"]):
        assert sorted_batches[i] == full[i, : len(row)].tolist()


def test_seqeval_scores():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    assert score_tagging(gold, gold, "iob2")["f1"] == 1.0
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]
    expected = f1_score(gold, pred, mode="strict", scheme=IOB2)
    assert score_tagging(gold, pred, "iob2")["f1"] == pytest.approx(expected)
    assert score_tagging(gold, pred, "iob2")["per_type"]["PER"]["f1"] == 0.0


def test_report_files(matrix, tmp_path):
    rows, _ = matrix
    adapters = [{"language": "xx", "initial_perplexity": 2226.4, "perplexity": 150.0}]
    files = write_report(rows, tmp_path / "report", language_adapters=adapters)
    text = files.markdown.read_text()
    assert "madx − no-la" in text and "| xx |" in text and "average (targets)" in text
    assert "| xx | 2,226.4 | 150.0 | 14.84x |" in text
    assert "## Language adapters" not in write_report(rows, tmp_path / "plain").markdown.read_text()
    assert files.csv.read_text().splitlines()[0].startswith("task,language,setup,f1,precision,recall")
    assert "sentence_counts" not in files.csv.read_text() and "run_id" in files.csv.read_text()
    assert json.loads(files.summary.read_text())["differences"]  # the rows' own counts gave intervals
    assert len(files.csv.read_text().splitlines()) == 1 + len(rows)
    assert files.heatmap.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files.heatmap.stat().st_size > 5000


def test_report_names_the_metric_and_flags_numbers_at_the_majority_baseline_or_all_equal():
    from evaluation.report import to_markdown, untrustworthy

    def row(language, setup, score, scheme="plain"):
        return {"task": "pos", "language": language, "setup": setup, "source_language": "en", "scheme": scheme,
                "f1": score, "majority_baseline": 0.18}

    rows = [row("de", "madx", 0.19), row("de", "no-la", 0.70), row("es", "madx", 0.80), row("es", "no-la", 0.75)]
    dev = [{"task": "pos", "source_language": "en", "dev_f1": 0.916, "dev_majority_baseline": 0.182, "majority_label": "NOUN"}]
    text = to_markdown(rows, "t", [{"language": "de", "initial_perplexity": 9.0, "perplexity": 3.0,
                                    "flags": "small_held_out: 4 held-out sequences"}], dev)
    assert "## Task `pos`: zero-shot word accuracy (%)" in text
    assert "Source-language dev word accuracy: **91.6** (majority-label baseline 18.2, always `NOUN`)" in text
    assert "| de | 19.0 | 70.0 | 18.0 |" in text  # the baseline beside the cells (no counts: no differences)
    assert ("within 2 points above the majority-label baseline (the tagger transferred next to nothing there): "
            "de/madx (19.0 % vs 18.0 %)") in text
    assert "language adapter `de`: small_held_out" in text
    flat = [row(lang, setup, 0.5, "iob2") for lang in ("de", "es") for setup in ("madx", "no-la")]
    assert any("every cell of the matrix is 50.0" in line for line in untrustworthy(flat))
    assert "zero-shot entity F1" in to_markdown(flat, "t")
