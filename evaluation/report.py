"""The comparison report of a zero-shot matrix: a tidy table (CSV + JSON), an F1 heatmap (PNG) and
a Markdown summary with per-language deltas of MAD-X over the task adapter alone."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from madx.fileutil import atomic_write, atomic_write_text

SETUP_ORDER = ("madx", "madx-2.0", "en-la", "no-la")
SETUP_MEANING = {
    "madx": "Stack(target language adapter, task adapter)",
    "madx-2.0": "madx without adapters in the last layer",
    "en-la": "Stack(source language adapter, task adapter)",
    "no-la": "the task adapter alone, no language adapter",
}
# A zero-shot cell less than this far above the majority-label baseline is flagged in the report.
MAJORITY_MARGIN = 0.02


@dataclass(frozen=True)
class ReportFiles:
    csv: Path
    json: Path
    heatmap: Path
    markdown: Path


def write_report(
    rows: list[dict[str, Any]],
    out_dir: str | Path,
    title: str = "Zero-shot transfer",
    language_adapters: list[dict[str, Any]] | None = None,
    task_adapters: list[dict[str, Any]] | None = None,
) -> ReportFiles:
    """Write results.csv, results.json, heatmap.png and report.md into `out_dir`.

    `language_adapters`: optional rows {language, initial_perplexity, perplexity, flags} (held-out
    MLM perplexity before and after training each language's adapter), shown in report.md.
    `task_adapters`: optional rows {task, source_language, dev_f1, dev_majority_baseline,
    majority_label}: the source-language dev score shown beside each task's zero-shot table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out_dir / "results.csv", out_dir / "results.json", out_dir / "heatmap.png", out_dir / "report.md")
    atomic_write_text(files.csv, to_csv(rows))
    atomic_write_text(files.json, json.dumps(rows, indent=2, sort_keys=True) + "\n")
    atomic_write_text(files.markdown, to_markdown(rows, title, language_adapters, task_adapters))
    write_heatmap(rows, files.heatmap, title)
    return files


def to_csv(rows: list[dict[str, Any]]) -> str:
    leading = ["task", "language", "setup", "f1", "precision", "recall", "accuracy"]
    columns = [c for c in leading if any(c in row for row in rows)]
    columns += sorted({key for row in rows for key in row} - set(columns))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=_row_key):
        writer.writerow({k: _fmt(row.get(k)) for k in columns})
    return buffer.getvalue()


def f1_table(rows: list[dict[str, Any]], task: str) -> tuple[list[str], list[str], dict[tuple[str, str], float]]:
    """(languages, setups, {(language, setup): f1}) for one task."""
    cells = {(r["language"], r["setup"]): float(r["f1"]) for r in rows if r["task"] == task}
    languages = sorted({language for language, _ in cells})
    setups = [s for s in SETUP_ORDER if any(setup == s for _, setup in cells)]
    setups += sorted({setup for _, setup in cells} - set(setups))
    return languages, setups, cells


def averages(rows: list[dict[str, Any]], task: str) -> dict[str, float]:
    """Mean F1 per setup over the target languages (the source language excluded)."""
    sums: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["task"] == task and row["language"] != row.get("source_language"):
            sums[row["setup"]].append(float(row["f1"]))
    return {setup: sum(values) / len(values) for setup, values in sums.items()}


def metric_name(rows: list[dict[str, Any]], task: str) -> str:
    """What the `f1` column means for a task: entity F1 (seqeval, strict IOB2) or word accuracy."""
    schemes = {row.get("scheme") for row in rows if row["task"] == task}
    return "entity F1" if schemes == {"iob2"} else "word accuracy" if schemes == {"plain"} else "F1"


def untrustworthy(rows: list[dict[str, Any]], language_adapters: list[dict[str, Any]] | None = None) -> list[str]:
    """What makes a number in the report untrustworthy, in words: cells no better than always
    answering the majority label, a matrix whose cells are all equal, flagged language adapters."""
    found = []
    for task in sorted({row["task"] for row in rows}):
        cells = [row for row in rows if row["task"] == task]
        at_baseline = [f"{row['language']}/{row['setup']}" for row in cells
                       if row.get("majority_baseline") is not None
                       and float(row["f1"]) < float(row["majority_baseline"]) + MAJORITY_MARGIN]
        if at_baseline:
            found.append(f"`{task}`: within {100 * MAJORITY_MARGIN:.0f} points of the majority-label baseline "
                         f"(the tagger transferred nothing there): {', '.join(at_baseline)}")
        if len(cells) > 1 and len({round(float(row["f1"]), 6) for row in cells}) == 1:
            found.append(f"`{task}`: every cell of the matrix is {_pct(float(cells[0]['f1']))}: the setups cannot differ "
                         "like this unless the run is broken (a constant tagger?)")
    for row in language_adapters or []:
        if row.get("flags"):
            found.append(f"language adapter `{row['language']}`: {row['flags']}")
    return found


def to_markdown(rows: list[dict[str, Any]], title: str, language_adapters: list[dict[str, Any]] | None = None,
                task_adapters: list[dict[str, Any]] | None = None) -> str:
    lines = [f"# {title}", ""]
    trained = {row["task"]: row for row in task_adapters or []}
    for task in sorted({row["task"] for row in rows}):
        languages, setups, cells = f1_table(rows, task)
        source = next((r.get("source_language") for r in rows if r["task"] == task), None)
        metric = metric_name(rows, task)
        lines += [f"## Task `{task}`: zero-shot {metric} (%), task adapter trained on `{source}`", ""]
        if task in trained:
            dev = trained[task]
            baseline = dev.get("dev_majority_baseline")
            lines += [f"Source-language dev {metric}: **{_pct(dev['dev_f1'])}**"
                      + (f" (majority-label baseline {_pct(baseline)}, always `{dev.get('majority_label')}`)"
                         if baseline is not None else ""), ""]
        baselines = {r["language"]: r["majority_baseline"] for r in rows
                     if r["task"] == task and r.get("majority_baseline") is not None}
        has_delta = "madx" in setups and "no-la" in setups
        header = ["language", *setups] + (["madx − no-la"] if has_delta else []) + (["majority baseline"] if baselines else [])
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for language in languages:
            values = [_pct(cells.get((language, s))) for s in setups]
            if has_delta and (language, "madx") in cells and (language, "no-la") in cells:
                values.append(f"{100 * (cells[(language, 'madx')] - cells[(language, 'no-la')]):+.1f}")
            elif has_delta:
                values.append("")
            if baselines:
                values.append(_pct(baselines.get(language)))
            name = f"{language} (source)" if language == source else language
            lines.append("| " + " | ".join([name, *values]) + " |")
        means = averages(rows, task)
        if means:
            values = [_pct(means.get(s)) for s in setups]
            if has_delta and "madx" in means and "no-la" in means:
                values.append(f"{100 * (means['madx'] - means['no-la']):+.1f}")
            elif has_delta:
                values.append("")
            if baselines:
                values.append("")
            lines.append("| **average (targets)** | " + " | ".join(f"**{v}**" if v else "" for v in values) + " |")
        lines.append("")
    present = [s for s in SETUP_ORDER if any(r["setup"] == s for r in rows)]
    lines += ["Setups: " + "; ".join(f"`{s}` = {SETUP_MEANING[s]}" for s in present) + ".", ""]
    found = untrustworthy(rows, language_adapters)
    if found:
        lines += ["## Warnings", "", *[f"- {line}" for line in found], ""]
    if language_adapters:
        lines += language_adapter_markdown(language_adapters)
    return "\n".join(lines)


def language_adapter_markdown(language_adapters: list[dict[str, Any]]) -> list[str]:
    """What each language adapter learnt: held-out MLM perplexity of the base before and after."""
    lines = ["## Language adapters (held-out MLM perplexity, same masked positions before and after)", "",
             "| language | before training (step 0) | after | reduction |", "|---|---|---|---|"]
    for row in sorted(language_adapters, key=lambda r: r["language"]):
        before, after = float(row["initial_perplexity"]), float(row["perplexity"])
        lines.append(f"| {row['language']} | {before:,.1f} | {after:,.1f} | {before / after:.2f}x |")
    return [*lines, ""]


def write_heatmap(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    tasks = sorted({row["task"] for row in rows})
    n_setups = max(len(f1_table(rows, task)[1]) for task in tasks)
    n_languages = max(len(f1_table(rows, task)[0]) for task in tasks)
    size = (len(tasks) * (2.5 + 1.2 * n_setups), 1.8 + 0.45 * n_languages)
    figure, axes = plt.subplots(1, len(tasks), figsize=size, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        languages, setups, cells = f1_table(rows, task)
        grid = [[100 * cells.get((language, setup), float("nan")) for setup in setups] for language in languages]
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(setups)), setups)
        ax.set_yticks(range(len(languages)), languages)
        for i, line in enumerate(grid):
            for j, value in enumerate(line):
                if value == value:  # not NaN
                    ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="white" if value < 60 else "black")
        ax.set_title(f"{task}: {metric_name(rows, task)} (%)")
        figure.colorbar(image, ax=ax, fraction=0.046)
    figure.suptitle(title)
    figure.tight_layout()
    try:  # a temporary name of its own per writer: two pipelines may update one report
        atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(figure)


def _row_key(row: dict[str, Any]) -> tuple:
    order = {s: i for i, s in enumerate(SETUP_ORDER)}
    return row["task"], row["language"], order.get(row["setup"], 99), row["setup"]


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"
