"""score_tagging: seqeval strict IOB2 entity scores, per-type scores, POS accuracy, input checks."""

from __future__ import annotations

import warnings

import pytest
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from tagging.metrics import flatten_scores, score_tagging

GOLD = [
    ["B-PER", "I-PER", "O", "B-LOC", "O"],
    ["B-ORG", "I-ORG", "I-ORG", "O", "B-LOC"],
    ["O", "B-PER", "O"],
]
# One PER and one LOC right; the ORG span is one word short; an extra LOC; an orphan I-PER.
PRED = [
    ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"],
    ["B-ORG", "I-ORG", "O", "O", "O"],
    ["O", "I-PER", "O"],
]


def test_perfect_prediction_scores_one():
    scores = score_tagging(GOLD, GOLD, "iob2")
    assert scores["f1"] == scores["precision"] == scores["recall"] == scores["accuracy"] == 1.0
    assert scores["support"] == 5 and scores["n_sentences"] == 3 and scores["n_words"] == 13


def test_partial_prediction_matches_seqeval_strict_directly():
    scores = score_tagging(GOLD, PRED, "iob2")
    strict = {"mode": "strict", "scheme": IOB2}
    assert scores["f1"] == pytest.approx(f1_score(GOLD, PRED, **strict))
    assert scores["precision"] == pytest.approx(precision_score(GOLD, PRED, **strict))
    assert scores["recall"] == pytest.approx(recall_score(GOLD, PRED, **strict))
    # By hand: gold 5 entities, predicted 4 (PER, LOC, LOC, ORG-short; the orphan I-PER starts
    # none in strict mode), 2 correct -> P = 2/4, R = 2/5, F1 = 2PR/(P+R) = 4/9.
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx((0.5, 0.4, 4 / 9))
    assert scores["accuracy"] == pytest.approx(9 / 13)


def test_strict_mode_does_not_credit_an_orphan_inside_tag():
    gold, pred = [["B-PER", "I-PER"]], [["I-PER", "I-PER"]]
    assert f1_score(gold, pred) == 1.0  # seqeval's default (conlleval) mode would count it
    assert score_tagging(gold, pred, "iob2")["f1"] == 0.0


def test_per_type_scores():
    per_type = score_tagging(GOLD, PRED, "iob2")["per_type"]
    assert set(per_type) == {"PER", "LOC", "ORG"}
    assert per_type["PER"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert per_type["LOC"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert per_type["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert score_tagging(GOLD, PRED, "iob2")["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)


def test_a_type_only_in_predictions_is_listed_with_zero_support():
    per_type = score_tagging([["B-PER", "O"]], [["B-PER", "B-MISC"]], "iob2")["per_type"]
    assert per_type["MISC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_no_entities_anywhere_scores_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = score_tagging([["O", "O"]], [["O", "O"]], "iob2")
    assert scores["f1"] == 0.0 and scores["accuracy"] == 1.0 and scores["per_type"] == {}


def test_pos_accuracy_and_per_tag_scores():
    gold = [["PROPN", "VERB", "PUNCT"], ["NOUN", "NOUN"]]
    pred = [["PROPN", "NOUN", "PUNCT"], ["NOUN", "NOUN"]]
    scores = score_tagging(gold, pred, "plain")
    assert scores["accuracy"] == pytest.approx(4 / 5)
    assert scores["f1"] == scores["precision"] == scores["recall"] == scores["accuracy"]  # micro = accuracy
    assert scores["per_type"]["NOUN"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": 0.8, "support": 2}
    assert scores["per_type"]["VERB"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["macro_f1"] == pytest.approx((1.0 + 1.0 + 0.8 + 0.0) / 4)
    assert scores["support"] == 5


def test_tuples_are_accepted():
    assert score_tagging((("B-PER", "O"),), (("B-PER", "O"),), "iob2")["f1"] == 1.0


@pytest.mark.parametrize(
    ("gold", "pred", "scheme", "message"),
    [
        (
            [["O", "O"], ["O"]],
            [["O", "O"], ["O", "O"]],
            "iob2",
            "sentence 1 (0-based): gold has 1 tags, prediction has 2",
        ),
        ([["O"]], [["O"], ["O"]], "plain", "1 gold sentences but 2 predicted ones"),
        ([], [], "iob2", "nothing to score"),
        ([["O", "S-PER"]], [["O", "O"]], "iob2", "gold sentence 0 (0-based): tag 'S-PER' is not O"),
        ([["O"]], [["PER"]], "iob2", "predicted sentence 0 (0-based): tag 'PER'"),
        ([["O"]], [["O"]], "bio", "scheme 'bio' is unknown"),
    ],
)
def test_bad_input_is_a_clear_value_error(gold, pred, scheme, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        score_tagging(gold, pred, scheme)


def test_flatten_scores_for_mlflow():
    scores = score_tagging([["B-PER", "O"]], [["B-PER", "O"]], "iob2")
    flat = flatten_scores(scores, prefix="sw.")
    assert flat["sw.f1"] == 1.0 and flat["sw.per_type.PER.support"] == 1.0
    assert all(isinstance(value, float) for value in flat.values())
    assert "sw.per_type._.f1" in flatten_scores(score_tagging([["$"]], [["$"]], "plain"), prefix="sw.")
