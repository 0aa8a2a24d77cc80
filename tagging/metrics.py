"""Scores for token tagging: seqeval entity F1 (strict IOB2) for NER, token accuracy for POS.

A pure function of tag lists, so the training loop, the zero-shot matrix and a notebook all get
the same numbers. The key names are the ones the MLflow UI compares across runs.

Keys of `score_tagging`'s result (all schemes):
    precision, recall, f1   iob2: entity-level, micro-averaged, seqeval `mode="strict",
                            scheme=IOB2` (an entity counts only if its type and both ends match);
                            plain: micro-averaged over words, which for one tag per word all
                            equal `accuracy`, so `f1` is comparable across every task in the UI
    macro_f1                mean of the per_type f1 values (0.0 if there are no types)
    accuracy                fraction of words whose predicted tag equals the gold tag
    support                 iob2: number of gold entities; plain: number of words
    n_sentences, n_words    what was scored
    per_type                {type: {precision, recall, f1, support}}: entity types (PER, LOC, ...)
                            for iob2, tags (NOUN, VERB, ...) for plain; every type that occurs in
                            the gold or the predicted tags
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, get_args

from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score
from seqeval.metrics.v1 import precision_recall_fscore_support, unique_labels
from seqeval.scheme import IOB2, Entities

from tagging.scheme import Scheme, is_iob2_tag

_METRIC_NAME_UNSAFE = re.compile(r"[^0-9A-Za-z_\-. /]")  # characters MLflow refuses in metric names


def score_tagging(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: Scheme) -> dict[str, Any]:
    """Score predicted tag sequences against gold ones (one list of tags per sentence).

    Raises ValueError if there is nothing to score, if the sentence counts differ, if a sentence's
    prediction has a different length than its gold (naming the sentence), or, for "iob2", if a
    tag is not O / B-<type> / I-<type>. An I-X without a preceding B-X is a valid tag that
    starts no entity (strict mode), so a model is not credited for malformed spans.
    """
    if scheme not in get_args(Scheme):
        raise ValueError(f"scheme {scheme!r} is unknown; expected one of {get_args(Scheme)}")
    gold, pred = _checked_lists(gold, pred)
    n_words = sum(len(tags) for tags in gold)
    base = {
        "accuracy": float(accuracy_score(gold, pred)) if n_words else 0.0,
        "n_sentences": len(gold),
        "n_words": n_words,
    }
    if scheme == "iob2":
        return base | _entity_scores(gold, pred)
    return base | _word_scores(gold, pred)


def sentence_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: Scheme) -> list[tuple[int, ...]]:
    """Per sentence, the counts a corpus score is made of, so a resample of sentences can be scored
    without the tags (`evaluation.comparison`): plain (correct words, words); iob2 (entities found
    exactly, predicted entities, gold entities), with seqeval's strict IOB2 entities, so summed over
    every sentence they give `score_tagging`'s numbers."""
    gold, pred = _checked_lists(gold, pred)
    if scheme == "plain":
        return [(sum(g == p for g, p in zip(gold_tags, pred_tags)), len(gold_tags)) for gold_tags, pred_tags in zip(gold, pred)]
    counts = []
    for gold_tags, pred_tags in zip(gold, pred):
        gold_entities = set(Entities([gold_tags], IOB2).entities[0])
        pred_entities = set(Entities([pred_tags], IOB2).entities[0])
        counts.append((len(gold_entities & pred_entities), len(pred_entities), len(gold_entities)))
    return counts


def metric_name(scheme: Scheme) -> str:
    """What a task's headline score is, in words: entity F1 (seqeval, strict IOB2) or word accuracy."""
    return "entity F1" if scheme == "iob2" else "word accuracy"


def score_key(scheme: Scheme) -> str:
    """The name a task's headline score is tracked under: what it is, not `f1` for both."""
    return "entity_f1" if scheme == "iob2" else "word_accuracy"


def dev_score_key(scheme: Scheme) -> str:
    """The name a task adapter's source-language dev score is tracked and shown under while it
    trains: `dev_word_accuracy` or `dev_entity_f1` (beside `dev_f1`, which earlier runs have)."""
    return f"dev_{score_key(scheme)}"


def majority_score(gold: Sequence[Sequence[str]], label: str, scheme: Scheme) -> float:
    """The score (`f1`: word accuracy for plain tags, entity F1 for IOB2) of a tagger that answers
    `label` for every word: the majority-label baseline when `label` is the most frequent one."""
    return float(score_tagging(gold, [[label] * len(tags) for tags in gold], scheme)["f1"])


def _checked_lists(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
) -> tuple[list[list[str]], list[list[str]]]:
    # seqeval insists on lists of lists; tuples or arrays would fail deep inside it.
    gold_lists, pred_lists = [list(tags) for tags in gold], [list(tags) for tags in pred]
    if not gold_lists:
        raise ValueError("nothing to score: there are no gold sentences")
    if len(gold_lists) != len(pred_lists):
        raise ValueError(f"{len(gold_lists)} gold sentences but {len(pred_lists)} predicted ones")
    for index, (gold_tags, pred_tags) in enumerate(zip(gold_lists, pred_lists)):
        if len(gold_tags) != len(pred_tags):
            raise ValueError(
                f"sentence {index} (0-based): gold has {len(gold_tags)} tags, prediction has {len(pred_tags)}"
            )
    return gold_lists, pred_lists


def _entity_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    for name, sequences in (("gold", gold), ("predicted", pred)):
        for index, tags in enumerate(sequences):
            bad = next((tag for tag in tags if not is_iob2_tag(tag)), None)
            if bad is not None:
                raise ValueError(f"{name} sentence {index} (0-based): tag {bad!r} is not O, B-<type> or I-<type>")
    strict = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    types = unique_labels(gold, pred, IOB2)
    precisions, recalls, f1s, supports = precision_recall_fscore_support(
        gold, pred, average=None, scheme=IOB2, zero_division=0
    )
    per_type = {
        kind: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for kind, p, r, f, s in zip(types, precisions, recalls, f1s, supports)
    }
    return {
        "precision": float(precision_score(gold, pred, **strict)),
        "recall": float(recall_score(gold, pred, **strict)),
        "f1": float(f1_score(gold, pred, **strict)),
        "macro_f1": _mean(scores["f1"] for scores in per_type.values()),
        "support": sum(scores["support"] for scores in per_type.values()),
        "per_type": per_type,
    }


def _word_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    pairs = [(g, p) for gold_tags, pred_tags in zip(gold, pred) for g, p in zip(gold_tags, pred_tags)]
    gold_counts = Counter(g for g, _ in pairs)
    pred_counts = Counter(p for _, p in pairs)
    correct = Counter(g for g, p in pairs if g == p)
    per_type = {}
    for tag in sorted(gold_counts.keys() | pred_counts.keys()):
        precision = _ratio(correct[tag], pred_counts[tag])
        recall = _ratio(correct[tag], gold_counts[tag])
        per_type[tag] = {
            "precision": precision,
            "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
            "support": gold_counts[tag],
        }
    micro = _ratio(sum(correct.values()), len(pairs))
    return {
        "precision": micro,
        "recall": micro,
        "f1": micro,
        "macro_f1": _mean(scores["f1"] for scores in per_type.values()),
        "support": len(pairs),
        "per_type": per_type,
    }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def _mean(values: Any) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else 0.0


def flatten_scores(scores: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric scores as flat MLflow metric names: `f1`, `per_type.PER.f1`, with an optional prefix.

    Characters MLflow refuses in a metric name (e.g. `$` in some XPOS tags) become `_`.
    """
    flat: dict[str, float] = {}
    for key, value in scores.items():
        name = _METRIC_NAME_UNSAFE.sub("_", f"{prefix}{key}")
        if isinstance(value, dict):
            flat.update(flatten_scores(value, prefix=f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat
