"""How sure a difference between two setups is.

A zero-shot cell (task, language, setup) is scored once per seed (each seed is its own task adapter,
and its own language adapters when they are trained per seed). Here:

- `cell_statistics`: the mean and the sample standard deviation of a cell's score over its seeds;
- `paired_differences`: the difference of two setups (madx - no-la, madx - en-la), per language and
  averaged over languages, with a 95 % paired bootstrap interval. Each resample draws test sentences
  with replacement (the same sentences for both setups: paired) and seeds with replacement (the same
  seeds for every language: one task adapter serves them all), rescoring each seed's corpus score
  from per-sentence counts (`tagging.metrics.sentence_counts`). The interval thus holds both
  the test set's sampling noise and the training noise between seeds.

A pure function of counts and a fixed generator seed: the same inputs give the same interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95
AVERAGE = "average"  # the key of the difference averaged over languages
_CHUNK = 200  # resamples per step: bounds memory to _CHUNK x sentences weights


@dataclass(frozen=True)
class CellStatistics:
    mean: float
    sd: float | None  # sample standard deviation over seeds; None with a single seed
    seeds: int


@dataclass(frozen=True)
class Difference:
    """Setup A minus setup B, in score units (0-1)."""

    estimate: float  # mean over seeds of score(A) - score(B) on the whole test set
    low: float
    high: float
    seeds: int
    sentences: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def cell_statistics(scores: Sequence[float]) -> CellStatistics:
    values = np.asarray(scores, dtype=float)
    sd = float(values.std(ddof=1)) if len(values) > 1 else None
    return CellStatistics(float(values.mean()), sd, len(values))


def score_totals(totals: np.ndarray, scheme: str) -> np.ndarray:
    """Corpus scores from summed counts (last axis): word accuracy, or entity F1 = 2 tp / (pred + gold)."""
    if scheme == "plain":
        numerator, denominator = totals[..., 0], totals[..., 1]
    else:
        numerator, denominator = 2 * totals[..., 0], totals[..., 1] + totals[..., 2]
    return np.divide(numerator, denominator, out=np.zeros(np.shape(numerator)), where=denominator > 0)


def paired_differences(
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    scheme: str,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> dict[str, Difference]:
    """`pairs`: language -> (counts of setup A, counts of setup B), each (seeds, sentences, k) with
    the same seeds in the same order, and the same seeds for every language. Returns a Difference
    per language and under AVERAGE (the mean over languages)."""
    if not pairs:
        return {}
    seeds = {a.shape[0] for a, b in pairs.values()} | {b.shape[0] for a, b in pairs.values()}
    if len(seeds) != 1:
        raise ValueError(f"every language and setup needs the same seeds; got seed counts {sorted(seeds)}")
    for language, (a, b) in pairs.items():
        if a.shape != b.shape:
            raise ValueError(f"{language}: the two setups were scored on different sentences ({a.shape} vs {b.shape})")
    n_seeds = seeds.pop()
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, n_seeds, size=(resamples, n_seeds))  # shared by every language
    draws: dict[str, np.ndarray] = {}
    estimates: dict[str, float] = {}
    for language in sorted(pairs):
        a, b = (np.asarray(x, dtype=float) for x in pairs[language])
        per_seed = score_totals(a.sum(axis=1), scheme) - score_totals(b.sum(axis=1), scheme)  # (seeds,)
        estimates[language] = float(per_seed.mean())
        draws[language] = _resampled_differences(a, b, scheme, seed_draws, rng)
    draws[AVERAGE] = np.mean([draws[language] for language in sorted(pairs)], axis=0)
    estimates[AVERAGE] = float(np.mean([estimates[language] for language in sorted(pairs)]))
    tail = 100 * (1 - confidence) / 2
    sentences = {language: pairs[language][0].shape[1] for language in pairs}
    sentences[AVERAGE] = sum(sentences.values())
    return {
        key: Difference(estimates[key], *(float(v) for v in np.percentile(values, [tail, 100 - tail])), n_seeds,
                        sentences[key])
        for key, values in draws.items()
    }


def _resampled_differences(a: np.ndarray, b: np.ndarray, scheme: str, seed_draws: np.ndarray,
                           rng: np.random.Generator) -> np.ndarray:
    """One difference per resample: sentences drawn with replacement (as multiplicities), each seed
    rescored on them, then the drawn seeds averaged."""
    n_sentences = a.shape[1]
    out = np.empty(len(seed_draws))
    for start in range(0, len(seed_draws), _CHUNK):
        rows = seed_draws[start:start + _CHUNK]
        weights = rng.multinomial(n_sentences, np.full(n_sentences, 1 / n_sentences), size=len(rows)).astype(float)
        # (resamples, sentences) x (seeds, sentences, k) -> (resamples, seeds, k): each seed's totals
        per_seed = score_totals(np.einsum("rn,snk->rsk", weights, a), scheme) - score_totals(
            np.einsum("rn,snk->rsk", weights, b), scheme)
        out[start:start + len(rows)] = np.take_along_axis(per_seed, rows, axis=1).mean(axis=1)
    return out
