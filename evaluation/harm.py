"""A label-free guard against a harmful target language adapter.

Zero-shot transfer has no target labels, so whether the target's language adapter helps cannot be
scored where it is used. Whether it wrecks the tagger can be seen without them: MAD-X swaps the
source language's adapter (setup `en-la`) for the target's (setup `madx`) under the same task
adapter, and an adapter that serves the task moves the states towards the target language, not the
tagger's answers wholesale. On real data a harmful Kinyarwanda adapter took word accuracy from 66 %
(en-la) to 33 % (madx), and a Swahili one trained on 5k tokens from 57 % to 15 %: there the two
setups' predictions differ wildly, which needs no gold label to see.

Three measures on the target's test text, comparing the two setups' outputs only:

    label_agreement  share of words given the same label under madx and en-la: sees labels changed
                     word by word, however the totals come out
    label_tv         total variation distance between the two setups' predicted-label distributions
                     (word level): sees the answers shift between labels in bulk (everything NOUN),
                     even where agreement stays moderate because the shifted label was common
    hidden_drift     mean over the sub-tokens of words of ||h_madx - h_en-la|| / ||h_en-la||, h the
                     final hidden states (the token head's input): how far the target adapter moves
                     what the head reads, before the head turns it into labels (not thresholded: a
                     good target adapter moves the states too; it says how much the labels had to
                     withstand)

`harm_flag` says in words when the labels moved past `evaluation.settings.HarmGuard`'s thresholds.
Pure functions of predicted tags and of hidden states handed in batch by batch, so the zero-shot
matrix computes them inside the forward passes that score the two setups anyway.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

from evaluation.settings import HarmGuard
from madx.drift import HiddenDrift

# The setups compared: the target adapter's, then the source adapter's (the reference).
COMPARED = ("madx", "en-la")
MEASURES = ("label_agreement", "label_tv", "hidden_drift")


def label_agreement(target: Sequence[Sequence[str]], source: Sequence[Sequence[str]]) -> float:
    """Share of words whose predicted label is the same under both setups (1.0: nothing changed)."""
    pairs = _word_pairs(target, source)
    return sum(t == s for t, s in pairs) / len(pairs)


def label_tv(target: Sequence[Sequence[str]], source: Sequence[Sequence[str]]) -> float:
    """Total variation distance between the two setups' predicted-label distributions over words:
    half the summed absolute differences of each label's share (0: same shares, 1: no label in common)."""
    pairs = _word_pairs(target, source)
    target_counts, source_counts = Counter(t for t, _ in pairs), Counter(s for _, s in pairs)
    labels = target_counts.keys() | source_counts.keys()
    return sum(abs(target_counts[label] - source_counts[label]) for label in labels) / (2 * len(pairs))


def _word_pairs(target: Sequence[Sequence[str]], source: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """(target label, source label) per word; the two must tag the same sentences word for word."""
    if len(target) != len(source):
        raise ValueError(f"{len(target)} sentences tagged under the target adapter but {len(source)} under the source one")
    pairs = []
    for index, (target_tags, source_tags) in enumerate(zip(target, source)):
        if len(target_tags) != len(source_tags):
            raise ValueError(f"sentence {index} (0-based): {len(target_tags)} labels under the target adapter, "
                             f"{len(source_tags)} under the source one")
        pairs.extend(zip(target_tags, source_tags))
    if not pairs:
        raise ValueError("no words to compare")
    return pairs


def harm_measures(target: Sequence[Sequence[str]], source: Sequence[Sequence[str]], drift: HiddenDrift) -> dict[str, float]:
    """The three measures (MEASURES) of one target language: predicted tags per sentence under the
    target adapter and under the source adapter, and the drift of the same forward passes."""
    return {"label_agreement": label_agreement(target, source), "label_tv": label_tv(target, source),
            "hidden_drift": drift.mean}


def looks_harmful(measures: Mapping[str, float], guard: HarmGuard) -> bool:
    """Whether the labels moved past either of `guard`'s thresholds."""
    return float(measures["label_agreement"]) < guard.min_label_agreement or float(measures["label_tv"]) > guard.max_label_tv


def harm_flag(task: str, language: str, source_language: str | None, measures: Mapping[str, float],
              guard: HarmGuard, note: str = "") -> str | None:
    """The warning when the measures of `language` cross `guard`'s thresholds (None otherwise),
    saying what was measured against which threshold; `note` (e.g. which seeds) goes beside the language."""
    if not looks_harmful(measures, guard):
        return None
    agreement, tv = float(measures["label_agreement"]), float(measures["label_tv"])
    disagrees, shifts = agreement < guard.min_label_agreement, tv > guard.max_label_tv
    source = f"the {source_language} adapter" if source_language else "the source-language adapter"
    said = [
        f"agreement {100 * agreement:.0f} % {'<' if disagrees else '≥'} {100 * guard.min_label_agreement:.0f} %",
        f"label distribution TV {tv:.2f} {'>' if shifts else '≤'} {guard.max_label_tv:.2f}",
    ]
    drift = measures.get("hidden_drift")
    if drift is not None and not math.isnan(float(drift)):
        said.append(f"hidden-state drift {float(drift):.2f}")
    where = f"`{task}` {language}" + (f" ({note})" if note else "")
    return (f"{where}: the {language} adapter changes {100 * (1 - agreement):.0f} % of the tagger's labels relative "
            f"to {source} ({'; '.join(said)}): it likely harms transfer")
