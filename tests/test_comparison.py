"""Spread over seeds and the paired bootstrap interval of a difference between setups."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.comparison import AVERAGE, cell_statistics, paired_differences, score_totals
from tagging.metrics import score_tagging, sentence_counts
from evaluation.report import summarise, to_markdown


def plain_counts(correct_per_sentence, words=10):
    return np.array([[c, words] for c in correct_per_sentence], dtype=float)


def test_cell_statistics_mean_and_sample_sd():
    stats = cell_statistics([0.80, 0.82, 0.84])
    assert stats.mean == pytest.approx(0.82) and stats.sd == pytest.approx(0.02) and stats.seeds == 3
    assert cell_statistics([0.5]).sd is None


def test_score_totals_matches_score_tagging_for_both_schemes():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-LOC"], ["O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O", "B-PER"], ["B-LOC"]]
    for scheme in ("iob2", "plain"):
        totals = np.asarray(sentence_counts(gold, pred, scheme), dtype=float).sum(axis=0)
        assert float(score_totals(totals, scheme)) == pytest.approx(score_tagging(gold, pred, scheme)["f1"])


def test_a_clear_gain_excludes_zero_and_no_gain_does_not():
    rng = np.random.default_rng(0)
    n, seeds = 300, 3
    better = np.stack([plain_counts(rng.binomial(10, 0.80, n)) for _ in range(seeds)])
    worse = np.stack([plain_counts(rng.binomial(10, 0.70, n)) for _ in range(seeds)])
    same = np.stack([plain_counts(rng.binomial(10, 0.80, n)) for _ in range(seeds)])
    gain = paired_differences({"de": (better, worse)}, "plain")
    assert gain["de"].estimate == pytest.approx(0.10, abs=0.02)
    assert gain["de"].excludes_zero and 0 < gain["de"].low < gain["de"].estimate < gain["de"].high
    none = paired_differences({"de": (better, same)}, "plain")
    assert not none["de"].excludes_zero and none["de"].low < 0 < none["de"].high


def test_pairing_removes_what_both_setups_share():
    """Sentences differ a lot in difficulty, and both setups see the same difficulty: the paired
    interval of a small constant gain is narrow, though each setup's own scores vary widely."""
    rng = np.random.default_rng(1)
    difficulty = rng.integers(0, 9, 200)
    a = plain_counts(difficulty + 1)[None]  # one more word right in every sentence
    b = plain_counts(difficulty)[None]
    result = paired_differences({"de": (a, b)}, "plain")["de"]
    assert result.low == pytest.approx(0.1) and result.high == pytest.approx(0.1)


def test_seed_noise_widens_the_interval():
    """Identical test-set behaviour but task adapters that disagree across seeds: the interval must
    reflect the seeds, not only the sentences."""
    rng = np.random.default_rng(2)
    base = rng.binomial(10, 0.75, 400)
    b = np.stack([plain_counts(base)] * 4)
    steady = np.stack([plain_counts(np.minimum(base + 1, 10))] * 4)
    shaky = np.stack([plain_counts(np.clip(base + shift, 0, 10)) for shift in (-2, 4, -1, 3)])
    narrow = paired_differences({"de": (steady, b)}, "plain")["de"]
    wide = paired_differences({"de": (shaky, b)}, "plain")["de"]
    assert (wide.high - wide.low) > 3 * (narrow.high - narrow.low)


def test_average_over_languages_and_determinism():
    rng = np.random.default_rng(3)
    pairs = {lang: (np.stack([plain_counts(rng.binomial(10, p + 0.05, 100)) for _ in range(2)]),
                    np.stack([plain_counts(rng.binomial(10, p, 100)) for _ in range(2)]))
             for lang, p in (("de", 0.6), ("es", 0.7), ("it", 0.8))}
    first, again = paired_differences(pairs, "plain"), paired_differences(pairs, "plain")
    assert first == again  # a fixed generator: the same counts give the same interval
    assert first[AVERAGE].estimate == pytest.approx(np.mean([first[lang].estimate for lang in pairs]))
    widths = [first[lang].high - first[lang].low for lang in pairs]
    assert first[AVERAGE].high - first[AVERAGE].low < min(widths)  # three languages pin the mean down better
    with pytest.raises(ValueError, match="same seeds"):
        paired_differences({"de": pairs["de"], "es": (pairs["es"][0][:1], pairs["es"][1][:1])}, "plain")


def test_report_shows_mean_sd_and_marked_differences():
    rng = np.random.default_rng(4)
    rows, counts = [], {}
    for seed in (1, 2, 3):
        for language in ("de", "es"):
            for setup, p in (("madx", 0.8), ("en-la", 0.78), ("no-la", 0.6)):
                run_id = f"{language}-{setup}-{seed}"
                counts[run_id] = plain_counts(rng.binomial(10, p, 150))
                score = float(score_totals(counts[run_id].sum(axis=0), "plain"))
                rows.append({"task": "pos", "language": language, "setup": setup, "seed": seed, "f1": score,
                             "scheme": "plain", "source_language": "en", "run_id": run_id})
    summary, = summarise(rows, counts)
    assert summary.seeds == [1, 2, 3] and set(summary.differences) == {"madx − no-la", "madx − en-la"}
    assert summary.differences["madx − no-la"][AVERAGE].excludes_zero
    text = to_markdown(rows, "t", summaries=[summary])
    assert "mean ± standard deviation over 3 seeds (1, 2, 3)" in text
    de = next(line for line in text.splitlines() if line.startswith("| de |"))
    cells = [cell.strip() for cell in de.strip("|").split("|")]
    assert cells[1].count("±") == 1 and cells[4].startswith("**+") and "[" in cells[4]  # madx − no-la, marked
    assert "`madx-2.0`" not in text  # the legend lists only the setups in the table
