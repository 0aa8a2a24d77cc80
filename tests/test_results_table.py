"""The comparison table that `madx results` and the end of `madx run` print fits 80 columns (a
pipe, CI, a log): no score, spread or interval is ever split over two lines, with 4-6 languages
and 3-5 setups, whether the width comes from COLUMNS or from rich's console width."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from rich.console import Console

from evaluation.comparison import AVERAGE, score_totals
from evaluation.report import format_difference, format_stat, summarise

LANGUAGES = ("de", "es", "it", "nl", "sw", "yo")
SETUPS = {"madx": 0.80, "madx-2.0": 0.79, "en-la": 0.78, "no-la": 0.60, "ta-only": 0.55}


def matrix(languages: int, setups: int, accuracy_shift: float = 0.0, seed: int = 0):
    """Evaluation rows and per-sentence counts of a POS task over `languages` x `setups`, three seeds."""
    rng = np.random.default_rng(seed)
    rows, counts = [], {}
    for language in LANGUAGES[:languages]:
        for setup, accuracy in list(SETUPS.items())[:setups]:
            for seed_number in (1, 2, 3):
                run_id = f"{language}-{setup}-{seed_number}"
                counts[run_id] = np.array([[correct, 10] for correct in
                                           rng.binomial(10, min(1.0, accuracy + accuracy_shift), 150)], dtype=float)
                rows.append({"task": "pos", "language": language, "setup": setup, "seed": seed_number,
                             "f1": float(score_totals(counts[run_id].sum(axis=0), "plain")), "scheme": "plain",
                             "source_language": "en", "run_id": run_id, "majority_baseline": 0.18})
    return rows, counts


@pytest.fixture(params=["COLUMNS", "console width"])
def printed(request, monkeypatch):
    """`print(rows, counts)` -> the lines `print_table` writes on an 80-column console, the width
    given as a terminal gives it (COLUMNS=80) or as rich is told it."""
    import cli.pipeline

    def run(rows, counts) -> list[str]:
        buffer = io.StringIO()
        if request.param == "COLUMNS":
            monkeypatch.setenv("COLUMNS", "80")
            console = Console(file=buffer, force_terminal=True, color_system=None)
        else:
            console = Console(file=buffer, width=80, force_terminal=True, color_system=None)
        assert console.width == 80
        monkeypatch.setattr(cli.pipeline, "console", console)
        task_adapters = [{"task": "pos", "dev_f1": 0.95, "dev_majority_baseline": 0.17, "majority_label": "NOUN"}]
        cli.pipeline.print_table(rows, task_adapters, [], counts)
        return buffer.getvalue().splitlines()

    return run


def cells_of(rows, counts):
    """Per row label: its scores (one per setup) and its differences, as the table writes them."""
    summary, = summarise(rows, counts)
    labels = [*summary.languages, "average"]
    scores = {language: [format_stat(summary.cells[(language, setup)]) for setup in summary.setups]
              for language in summary.languages}
    scores["average"] = [format_stat(summary.averages[setup]) for setup in summary.setups]
    differences = {label: [format_difference(by_language[AVERAGE if label == "average" else label], "{}")
                           for by_language in summary.differences.values()] for label in labels}
    return summary, labels, scores, differences


@pytest.mark.parametrize("languages, setups", [(4, 3), (5, 4), (6, 5)])
def test_the_table_fits_80_columns_and_no_number_is_split(printed, languages, setups):
    rows, counts = matrix(languages, setups)
    lines = printed(rows, counts)
    summary, labels, scores, differences = cells_of(rows, counts)
    assert summary.differences and max(map(len, lines)) <= 80, "\n".join(lines)
    gap = r"\s{2,}"
    for label in labels:  # a grid: a row per language, its scores and the majority baseline on one line
        majority = "" if label == "average" else gap + "18.0"
        assert any(re.fullmatch(re.escape(label) + "".join(gap + re.escape(cell) for cell in scores[label]) + majority,
                                line.rstrip()) for line in lines), (label, "\n".join(lines))
        assert any(re.fullmatch(re.escape(label) + "".join(gap + re.escape(cell) for cell in differences[label]),
                                line.rstrip()) for line in lines), (label, "\n".join(lines))
    header = next(line for line in lines if line.startswith("language") and "madx" in line)
    assert header.split() == ["language", *summary.setups, "majority"]
    text = "\n".join(lines)
    assert "pos: zero-shot word accuracy (%), task adapter trained on en" in text
    assert "mean ± sd over seeds 1, 2, 3" in text and "en dev word accuracy: 95.0" in text
    assert "95 % paired bootstrap interval" in text


def test_scores_too_wide_for_a_grid_come_one_row_per_language_and_setup(printed):
    """Perfect scores ("100.0 ± 0.0") under five setups need 83 columns as a grid: each language's
    setups then come one per line, every number still whole."""
    rows, counts = matrix(4, 5, accuracy_shift=1.0)
    lines = printed(rows, counts)
    summary, labels, scores, _ = cells_of(rows, counts)
    assert scores["de"][0] == "100.0 ± 0.0" and max(map(len, lines)) <= 80, "\n".join(lines)
    for label in labels:
        first = next(number for number, line in enumerate(lines) if line.startswith(f"{label} "))
        for offset, (setup, cell) in enumerate(zip(summary.setups, scores[label])):
            assert re.fullmatch(rf"({re.escape(label)})?\s+{re.escape(setup)}\s+{re.escape(cell)}",
                                lines[first + offset].rstrip()), (label, setup, "\n".join(lines))
        if label != "average":
            assert re.fullmatch(r"\s+majority\s+18\.0", lines[first + len(summary.setups)].rstrip())
