"""The comparison report of a zero-shot matrix scored over several seeds.

Files: results.csv / results.json (one row per task, language, setup and seed), summary.json (each
cell's mean and sd over seeds, each difference with its 95 % paired bootstrap interval), a heatmap
(PNG) and report.md, which shows per language the mean +- sd of every setup and the differences of
COMPARISONS (madx - en-la, madx - ta-only, ...) with their intervals (`evaluation.comparison`), what each
setup is (evaluation/setups.py), the warnings, and the label-free harm guard of each target adapter
(`evaluation.harm`).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.comparison import AVERAGE, CellStatistics, Difference, cell_statistics, paired_differences
from evaluation.harm import COMPARED, MEASURES, harm_flag, looks_harmful
from evaluation.settings import HarmGuard
from evaluation.setups import COMPARISONS, MADX, SETUPS, task_adapter_families
from madx.fileutil import atomic_write, atomic_write_text
from tagging.metrics import metric_name

# The setups' columns in the table's order, and what each is in words: evaluation/setups.py's table.
SETUP_ORDER = tuple(SETUPS)
SETUP_MEANING = {name: setup.meaning for name, setup in SETUPS.items()}
FAMILY_ORDER = task_adapter_families(SETUPS)  # madx, noinv, ta-only
# A zero-shot cell below the majority-label baseline, or less than this far above it, is flagged in the report.
MAJORITY_MARGIN = 0.02


@dataclass(frozen=True)
class ReportFiles:
    csv: Path
    json: Path
    heatmap: Path
    markdown: Path
    summary: Path


@dataclass
class TaskSummary:
    """One task's matrix, aggregated over seeds."""

    task: str
    scheme: str | None
    source_language: str | None
    languages: list[str]
    setups: list[str]
    seeds: list[int]
    cells: dict[tuple[str, str], CellStatistics]
    averages: dict[str, CellStatistics]  # per setup: mean over target languages, then over seeds
    baselines: dict[str, float]  # language -> majority-label baseline
    # "madx − no-la" -> {language or AVERAGE: Difference}
    differences: dict[str, dict[str, Difference]] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return metric_name(self.scheme) if self.scheme else "F1"  # F1 when the rows mix schemes

    @property
    def targets(self) -> list[str]:
        return [language for language in self.languages if language != self.source_language]


def comparison_label(a: str, b: str) -> str:
    return f"{a} − {b}"


def summarise(rows: list[dict[str, Any]], counts: dict[str, np.ndarray] | None = None) -> list[TaskSummary]:
    """Aggregate per-seed rows ({task, language, setup, seed, f1, scheme, source_language, run_id,
    majority_baseline}) into one TaskSummary per task. `counts` (run_id -> per-sentence counts)
    gives the differences their intervals; without it there are no differences."""
    summaries = []
    for task in sorted({row["task"] for row in rows}):
        mine = [row for row in rows if row["task"] == task]
        schemes = {row.get("scheme") for row in mine}
        source = next((row.get("source_language") for row in mine if row.get("source_language")), None)
        by_cell: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
        for row in mine:
            by_cell[(row["language"], row["setup"])][int(row.get("seed", 0))] = row
        languages = sorted({language for language, _ in by_cell})
        present = {setup for _, setup in by_cell}
        setups = [s for s in SETUP_ORDER if s in present] + sorted(present - set(SETUP_ORDER))
        cells = {key: cell_statistics([by_seed[s]["f1"] for s in sorted(by_seed)]) for key, by_seed in by_cell.items()}
        baselines = {row["language"]: float(row["majority_baseline"]) for row in mine
                     if row.get("majority_baseline") is not None}
        summary = TaskSummary(task, schemes.pop() if len(schemes) == 1 else None, source, languages, setups,
                              sorted({int(row.get("seed", 0)) for row in mine}), cells, {}, baselines)
        summary.averages = _averages(summary, by_cell)
        if counts is not None and summary.scheme is not None:
            for a, b in COMPARISONS:
                pairs = _paired_counts(summary, by_cell, counts, a, b)
                if pairs:
                    summary.differences[comparison_label(a, b)] = paired_differences(pairs, summary.scheme)
        summaries.append(summary)
    return summaries


def _averages(summary: TaskSummary, by_cell) -> dict[str, CellStatistics]:
    """Per setup: for each seed the mean over the target languages scored with it, then mean +- sd."""
    out = {}
    for setup in summary.setups:
        per_seed = []
        for seed in summary.seeds:
            scores = [by_cell[(lang, setup)][seed]["f1"] for lang in summary.targets if seed in by_cell.get((lang, setup), {})]
            if scores:
                per_seed.append(sum(scores) / len(scores))
        if per_seed:
            out[setup] = cell_statistics(per_seed)
    return out


def _paired_counts(summary: TaskSummary, by_cell, counts: dict[str, np.ndarray], a: str, b: str):
    """language -> (counts of a, counts of b), each (seeds, sentences, k), over the seeds every
    target language has for both setups (so the average pairs seeds across languages)."""
    languages = [lang for lang in summary.targets if (lang, a) in by_cell and (lang, b) in by_cell]
    seed_sets = [set(by_cell[(lang, a)]) & set(by_cell[(lang, b)]) for lang in languages]
    seeds = sorted(set.intersection(*seed_sets)) if seed_sets else []
    pairs = {}
    for language in languages:
        runs = [(by_cell[(language, a)][seed].get("run_id"), by_cell[(language, b)][seed].get("run_id")) for seed in seeds]
        if seeds and all(x in counts and y in counts for x, y in runs):
            pairs[language] = (np.stack([counts[x] for x, _ in runs]), np.stack([counts[y] for _, y in runs]))
    return pairs


def write_report(
    rows: list[dict[str, Any]],
    out_dir: str | Path,
    title: str = "Zero-shot transfer",
    language_adapters: list[dict[str, Any]] | None = None,
    task_adapters: list[dict[str, Any]] | None = None,
    counts: dict[str, np.ndarray] | None = None,
    notes: list[str] | None = None,
    guard: HarmGuard | None = None,
) -> ReportFiles:
    """Write results.csv, results.json, summary.json, heatmap.png and report.md into `out_dir`.

    `language_adapters`: optional rows {language, initial_perplexity, perplexity, flags, removed_lines,
    removed_test_sets} (held-out MLM perplexity before and after training each language's adapter;
    corpus lines left out for holding test sentences, and whose), shown in report.md.
    `task_adapters`: optional rows {task, source_language, dev_f1, dev_majority_baseline,
    majority_label}: the source-language dev score shown beside each task's zero-shot table.
    `counts`: run_id -> per-sentence counts of each row's evaluation, for the intervals.
    `notes`: lines about the data and the base model, shown under the tables.
    `guard`: the thresholds that flag a harmful target adapter (default: HarmGuard's)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out_dir / "results.csv", out_dir / "results.json", out_dir / "heatmap.png",
                        out_dir / "report.md", out_dir / "summary.json")
    if counts is None and any("sentence_counts" in row for row in rows):  # rows straight from evaluate_zero_shot
        rows = [{**row, "run_id": row.get("run_id") or f"row-{i}"} for i, row in enumerate(rows)]
        counts = {row["run_id"]: np.asarray(row["sentence_counts"], dtype=float) for row in rows if "sentence_counts" in row}
    rows = [{key: value for key, value in row.items() if key != "sentence_counts"} for row in rows]
    summaries = summarise(rows, counts)
    atomic_write_text(files.csv, to_csv(rows))
    atomic_write_text(files.json, json.dumps(rows, indent=2, sort_keys=True) + "\n")
    atomic_write_text(files.summary, json.dumps(summary_records(summaries), indent=2, sort_keys=True) + "\n")
    atomic_write_text(files.markdown, to_markdown(rows, title, language_adapters, task_adapters, summaries, notes, guard))
    write_heatmap(summaries, files.heatmap, title)
    return files


def summary_records(summaries: list[TaskSummary]) -> dict[str, Any]:
    cells, differences = [], []
    for s in summaries:
        for (language, setup), stats in sorted(s.cells.items()):
            cells.append({"task": s.task, "language": language, "setup": setup, "metric": s.metric, **asdict(stats)})
        for setup, stats in s.averages.items():
            cells.append({"task": s.task, "language": AVERAGE, "setup": setup, "metric": s.metric, **asdict(stats)})
        for label, by_language in s.differences.items():
            for language, difference in by_language.items():
                differences.append({"task": s.task, "comparison": label, "language": language, **asdict(difference),
                                    "excludes_zero": difference.excludes_zero})
    return {"cells": cells, "differences": differences}


def parent_run_metrics(summaries: list[TaskSummary]) -> dict[str, float]:
    """What the pipeline's MLflow run carries: `<task>.<setup>.mean` (average over targets) and sd,
    and per comparison `<task>.madx-minus-no-la.<language|average>` with `.ci_low` / `.ci_high`."""
    metrics = {}
    for s in summaries:
        for setup, stats in s.averages.items():
            metrics[f"{s.task}.{setup}.mean"] = stats.mean
            if stats.sd is not None:
                metrics[f"{s.task}.{setup}.sd"] = stats.sd
        for label, by_language in s.differences.items():
            name = label.replace(" − ", "-minus-")
            for language, d in by_language.items():
                metrics[f"{s.task}.{name}.{language}"] = d.estimate
                metrics[f"{s.task}.{name}.{language}.ci_low"] = d.low
                metrics[f"{s.task}.{name}.{language}.ci_high"] = d.high
    return metrics


def to_csv(rows: list[dict[str, Any]]) -> str:
    leading = ["task", "language", "setup", "seed", "f1", "precision", "recall", "accuracy"]
    columns = [c for c in leading if any(c in row for row in rows)]
    columns += sorted({key for row in rows for key in row} - set(columns))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=_row_key):
        writer.writerow({k: _fmt(row.get(k)) for k in columns})
    return buffer.getvalue()


def untrustworthy(rows: list[dict[str, Any]], language_adapters: list[dict[str, Any]] | None = None,
                  guard: HarmGuard | None = None) -> list[str]:
    """What makes a number in the report untrustworthy, in words: cells below or barely above
    always answering the majority label, a matrix whose cells are all equal, flagged language
    adapters, and target adapters that look harmful by `guard`'s thresholds (default: HarmGuard's)."""
    found = []
    for task in sorted({row["task"] for row in rows}):
        cells = [row for row in rows if row["task"] == task]
        found += majority_warnings(task, cells)
        if len(cells) > 1 and len({round(float(row["f1"]), 6) for row in cells}) == 1:
            found.append(f"`{task}`: every cell of the matrix is {_pct(float(cells[0]['f1']))}: the setups cannot differ "
                         "like this unless the run is broken (a constant tagger?)")
    for row in language_adapters or []:
        if row.get("flags"):
            found.append(f"language adapter `{language_adapter_label(row)}`: {row['flags']}")
    for cell in harm_cells(rows):
        flag = harm_flag(cell.task, cell.language, cell.source_language, cell.means, guard or HarmGuard(), cell.seed_note)
        if flag:
            found.append(flag)
    return found


def majority_warnings(task: str, cells: list[dict[str, Any]]) -> list[str]:
    """The cells (language/setup) of one task that score below the majority-label baseline, and
    those within MAJORITY_MARGIN above it, each with its score and the baseline: a cell at that
    level means the tagger transferred nothing there."""
    below: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    within: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in cells:
        if row.get("majority_baseline") is None:
            continue
        score, baseline = float(row["f1"]), float(row["majority_baseline"])
        if score < baseline:
            below[(row["language"], row["setup"])].append(row)
        elif score < baseline + MAJORITY_MARGIN:
            within[(row["language"], row["setup"])].append(row)
    found = []
    if below:
        found.append(f"`{task}`: below the majority-label baseline (the tagger transferred nothing there): "
                     + "; ".join(_against_baseline(key, group) for key, group in sorted(below.items())))
    if within:
        found.append(f"`{task}`: within {100 * MAJORITY_MARGIN:.0f} points above the majority-label baseline (the "
                     "tagger transferred next to nothing there): "
                     + "; ".join(_against_baseline(key, group) for key, group in sorted(within.items())))
    return found


def _against_baseline(cell: tuple[str, str], rows: list[dict[str, Any]]) -> str:
    """"de/madx 19.0 % vs 38.0 %" for one cell's rows (one seed's score, or the mean of the seeds named)."""
    score = sum(float(row["f1"]) for row in rows) / len(rows)
    numbers = f"{_pct(score)} % vs {_pct(float(rows[0]['majority_baseline']))} %"
    seeds = sorted(int(row["seed"]) for row in rows if "seed" in row)
    if len(seeds) > 1:
        numbers = f"mean {numbers}, seeds {', '.join(map(str, seeds))}"
    elif seeds:
        numbers += f", seed {seeds[0]}"
    return f"{cell[0]}/{cell[1]} ({numbers})"


@dataclass(frozen=True)
class HarmCell:
    """The label-free harm measures (evaluation/harm.py) of one task's target language: its madx
    rows' measures, mean and sd over seeds."""

    task: str
    language: str
    source_language: str | None
    seeds: list[int]
    measures: dict[str, CellStatistics]

    @property
    def means(self) -> dict[str, float]:
        return {name: stats.mean for name, stats in self.measures.items()}

    @property
    def seed_note(self) -> str:
        if len(self.seeds) > 1:
            return f"mean of seeds {', '.join(map(str, self.seeds))}"
        return f"seed {self.seeds[0]}" if self.seeds else ""


def harm_cells(rows: list[dict[str, Any]]) -> list[HarmCell]:
    """Per task and target language (not the source), the harm measures its `madx` rows carry."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["setup"] == COMPARED[0] and row["language"] != row.get("source_language") and \
                all(row.get(name) is not None for name in MEASURES):
            groups[(row["task"], row["language"])].append(row)
    return [HarmCell(task, language, group[0].get("source_language"),
                     sorted(int(row["seed"]) for row in group if "seed" in row),
                     {name: cell_statistics([float(row[name]) for row in group]) for name in MEASURES})
            for (task, language), group in sorted(groups.items())]


def harm_guard_note(rows: list[dict[str, Any]]) -> str | None:
    """Why the report has no harm-guard numbers, when it has target languages but none (said once)."""
    if harm_cells(rows) or not any(row["language"] != row.get("source_language") for row in rows):
        return None
    missing = [setup for setup in COMPARED if not any(row["setup"] == setup for row in rows)]
    if missing:
        return (f"No label-free harm guard: it compares `{COMPARED[0]}` with `{COMPARED[1]}` on each target's test text, "
                f"and no {' or '.join(f'`{setup}`' for setup in missing)} cell was scored (`evaluation.setups`).")
    return (f"No label-free harm guard numbers: these `{COMPARED[0]}` evaluations were tracked before madx measured "
            "them; `madx evaluate` measures them.")


def harm_markdown(rows: list[dict[str, Any]], guard: HarmGuard | None = None) -> list[str]:
    """The report's harm-guard section: per task and target language, how much the target adapter
    changes the tagger relative to the source adapter, and whether that crosses `guard`'s thresholds."""
    guard = guard or HarmGuard()
    note = harm_guard_note(rows)
    if note:
        return ["## Label-free harm guard", "", note, ""]
    cells = harm_cells(rows)
    if not cells:
        return []
    lines = ["## Label-free harm guard (target adapter vs source adapter, no labels used)", "",
             f"On each target's test text, `{COMPARED[0]}` (the target's language adapter under the task adapter) against "
             f"`{COMPARED[1]}` (the source language's): label agreement = share of words labelled alike; label TV = "
             "total variation distance between their predicted-label distributions; hidden drift = mean "
             "‖h_madx − h_en-la‖ / ‖h_en-la‖ of the states the token head reads. Flagged when agreement < "
             f"{100 * guard.min_label_agreement:.0f} % or TV > {guard.max_label_tv:.2f} (`evaluation.harm_guard`). "
             "Mean ± sd over seeds.", "",
             "| task | language | label agreement (%) | label TV | hidden drift | |", "|---|---|---|---|---|---|"]
    for cell in cells:
        flagged = looks_harmful(cell.means, guard)
        lines.append(f"| {cell.task} | {cell.language} | {format_stat(cell.measures['label_agreement'])} | "
                     f"{format_number(cell.measures['label_tv'])} | {format_number(cell.measures['hidden_drift'])} | "
                     f"{'**likely harmful**' if flagged else ''} |")
    return [*lines, ""]


def to_markdown(rows: list[dict[str, Any]], title: str, language_adapters: list[dict[str, Any]] | None = None,
                task_adapters: list[dict[str, Any]] | None = None, summaries: list[TaskSummary] | None = None,
                notes: list[str] | None = None, guard: HarmGuard | None = None) -> str:
    summaries = summaries if summaries is not None else summarise(rows)
    lines = [f"# {title}", ""]
    trained = task_adapters_by_task(task_adapters)
    for s in summaries:
        seeds = f"{len(s.seeds)} seed{'s' if len(s.seeds) != 1 else ''} ({', '.join(map(str, s.seeds))})"
        lines += [f"## Task `{s.task}`: zero-shot {s.metric} (%), task adapter trained on `{s.source_language}`", ""]
        lines += [f"Each cell: mean ± standard deviation over {seeds}." if len(s.seeds) > 1
                  else f"Each cell: one seed ({s.seeds[0]}); list more under `task_adapter.seeds` for a spread.", ""]
        if s.task in trained:
            dev, *others = trained[s.task]
            baseline = dev.get("dev_majority_baseline")
            lines += [f"Source-language dev {s.metric}: **{_pct(dev['dev_f1'])}**"
                      + (f" (majority-label baseline {_pct(baseline)}, always `{dev.get('majority_label')}`)"
                         if baseline is not None else "") + other_dev_scores(others, "`{}`"), ""]
        header = ["language", *s.setups, *s.differences, *(["majority baseline"] if s.baselines else [])]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for language in s.languages:
            values = [format_stat(s.cells.get((language, setup))) for setup in s.setups]
            values += [format_difference(by_language.get(language)) for by_language in s.differences.values()]
            if s.baselines:
                values.append(_pct(s.baselines.get(language)))
            name = f"{language} (source)" if language == s.source_language else language
            lines.append("| " + " | ".join([name, *values]) + " |")
        if s.averages:
            values = [format_stat(s.averages.get(setup)) for setup in s.setups]
            values += [format_difference(by_language.get(AVERAGE)) for by_language in s.differences.values()]
            if s.baselines:
                values.append("")
            n_stats = len(s.setups)  # the differences carry their own bold (interval excludes 0)
            lines.append("| **average (targets)** | " + " | ".join(
                f"**{v}**" if v and i < n_stats else v for i, v in enumerate(values)) + " |")
        lines.append("")
        if s.differences:
            lines += [f"Differences in points of {s.metric} with their 95 % paired bootstrap interval (test sentences "
                      "and seeds resampled); **bold**: the interval excludes 0.", ""]
    present = [setup for setup in SETUP_ORDER if any(r["setup"] == setup for r in rows)]
    lines += ["Setups:", "", *[f"- `{setup}`: {SETUP_MEANING[setup]}." for setup in present], ""]
    if notes:
        lines += ["## Data and base model", "", *[f"- {note}" for note in notes], ""]
    lines += removed_lines_markdown(language_adapters or [])
    found = untrustworthy(rows, language_adapters, guard)
    if found:
        lines += ["## Warnings", "", *[f"- {line}" for line in found], ""]
    lines += harm_markdown(rows, guard)
    if language_adapters:
        lines += language_adapter_markdown(language_adapters)
    return "\n".join(lines)


def format_stat(stats: CellStatistics | None) -> str:
    """"83.6 ± 1.1" (points), or "83.6" with one seed."""
    if stats is None:
        return ""
    return _pct(stats.mean) + ("" if stats.sd is None else f" ± {100 * stats.sd:.1f}")


def format_number(stats: CellStatistics | None) -> str:
    """"0.34 ± 0.02" (a number that is not a share), or "0.34" with one seed."""
    if stats is None:
        return ""
    return f"{stats.mean:.2f}" + ("" if stats.sd is None else f" ± {stats.sd:.2f}")


def format_difference(difference: Difference | None, bold: str = "**{}**") -> str:
    """"+3.8 [+1.2, +6.1]" (points), the estimate in `bold` when the interval excludes 0."""
    if difference is None:
        return ""
    estimate = f"{100 * difference.estimate:+.1f}"
    return (bold.format(estimate) if difference.excludes_zero else estimate) + \
        f" [{100 * difference.low:+.1f}, {100 * difference.high:+.1f}]"


def task_adapters_by_task(task_adapters: list[dict[str, Any]] | None) -> dict[str, list[dict[str, Any]]]:
    """task -> the rows of its task adapters, one per family (`family`; none recorded: madx), the
    madx family's first: its dev score is the headline one, the others' are shown beside it."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(task_adapters or [], key=lambda r: _family_rank(r.get("family"))):
        grouped[row["task"]].append(row)
    return dict(grouped)


def other_dev_scores(rows: list[dict[str, Any]], name: str = "{}") -> str:
    """"; other task adapters: `noinv` 91.0, `ta-only` 90.3" (the dev scores of the families beside
    the headline one; `name` formats a family's name), or "" when there are none."""
    if not rows:
        return ""
    return "; other task adapters: " + ", ".join(f"{name.format(row.get('family'))} {_pct(row['dev_f1'])}" for row in rows)


def language_adapter_label(row: dict[str, Any]) -> str:
    """"sw", or "sw (noinv)" for a language adapter of another family than madx."""
    family = row.get("family") or MADX
    return row["language"] if family == MADX else f"{row['language']} ({family})"


def _family_rank(family: str | None) -> int:
    family = family or MADX
    return FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)


def removed_lines_markdown(language_adapters: list[dict[str, Any]]) -> list[str]:
    """A line per language whose adapter's corpus held test sentences (left out before it trained);
    nothing when none did. Every family's adapter of a language trains on the same corpus with the
    same lines left out: the language is named once."""
    removed = [row for row in sorted(language_adapters, key=lambda r: r["language"]) if row.get("removed_lines")]
    removed = list({row["language"]: row for row in removed}.values())
    if not removed:
        return []
    lines = ["## Test sentences removed from language-adapter corpora", ""]
    for row in removed:
        count = int(row["removed_lines"])
        lines.append(f"- `{row['language']}`: {count:,} corpus line{'s' if count != 1 else ''} left out before its "
                     f"adapter trained (lines holding sentences of each test set: {row.get('removed_test_sets')}).")
    return [*lines, ""]


def language_adapter_markdown(language_adapters: list[dict[str, Any]]) -> list[str]:
    """What each language adapter learnt: held-out MLM perplexity of the base before and after; and,
    for adapters that measured it, how far the saved adapter moves its language's final states (its
    drift, language_adapters/drift.py) and which step was kept of how many were run."""
    centred = any(row.get("perplexity_before_centering") is not None for row in language_adapters)
    drifts = any(row.get("drift") is not None for row in language_adapters)
    header = (["language", "before training (step 0)", *(["trained", "centred"] if centred else ["after"]), "reduction",
               *(["drift", "kept step / run"] if drifts else [])])
    lines = ["## Language adapters (held-out MLM perplexity, same masked positions before and after)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in sorted(language_adapters, key=lambda r: (r["language"], _family_rank(r.get("family")))):
        before, after = float(row["initial_perplexity"]), float(row["perplexity"])
        # A centred adapter is saved centred: `perplexity` is its final one, and the trained one shows
        # what centring cost (or gained) the MLM head; "-" in the centred column of one never centred.
        if not centred:
            cells = [after]
        elif row.get("perplexity_before_centering") is None:
            cells = [after, None]
        else:
            cells = [row["perplexity_before_centering"], after]
        shown = " | ".join("-" if value is None else f"{float(value):,.1f}" for value in cells)
        line = f"| {language_adapter_label(row)} | {before:,.1f} | {shown} | {before / after:.2f}x |"
        if drifts:
            drift, kept, steps = row.get("drift"), row.get("kept_step"), row.get("steps")
            line += (f" {'-' if drift is None else f'{float(drift):.3f}'} | "
                     f"{'-' if kept is None or steps is None else f'{int(kept)} / {int(steps)}'} |")
        lines.append(line)
    if centred:
        lines += ["", "Centred: each layer's mean output over the adapter's own text moved to 0 after training "
                      "(language_adapter.center); reduction is step 0 over the saved adapter's perplexity."]
    if drifts:
        lines += ["", "Drift: mean ||h_adapter − h_base|| / ||h_base|| of the final hidden states over the adapter's "
                      "held-out text (language_adapters/drift.py); with `language_adapter.max_drift` training stops "
                      "at the first evaluation past it and keeps the best checkpoint within it (kept step / steps run)."]
    return [*lines, ""]


def write_heatmap(summaries: list[TaskSummary], path: Path, title: str) -> None:
    """Per task: the mean score of every language x setup, on a colour scale fitted to the values
    (not 0-100, which paints 1-20 one colour), and beside it the differences on a diverging scale
    centred on 0."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    columns = [1.2 * len(s.setups) + 1.2 * len(s.differences) for s in summaries]
    n_languages = max(len(s.languages) for s in summaries) + 1
    figure, axes = plt.subplots(1, len(summaries), figsize=(sum(3.5 + c for c in columns), 2.0 + 0.45 * n_languages),
                                squeeze=False)
    for ax, s in zip(axes[0], summaries):
        rows = [*s.languages, AVERAGE] if s.averages else list(s.languages)
        scores = np.array([[100 * _mean(s.cells.get((lang, setup)) if lang != AVERAGE else s.averages.get(setup))
                            for setup in s.setups] for lang in rows])
        finite = scores[np.isfinite(scores)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 100.0)
        pad = max(1.0, 0.05 * (high - low))
        image = ax.imshow(scores, cmap="viridis", vmin=low - pad, vmax=high + pad, aspect="auto",
                          extent=(-0.5, len(s.setups) - 0.5, len(rows) - 0.5, -0.5))
        labels = list(s.setups)
        if s.differences:
            deltas = np.array([[100 * d.estimate if (d := by_language.get(lang)) else np.nan
                                for by_language in s.differences.values()] for lang in rows])
            reach = max(1.0, float(np.nanmax(np.abs(deltas)))) if np.isfinite(deltas).any() else 1.0
            ax.imshow(deltas, cmap="RdBu", vmin=-reach, vmax=reach, aspect="auto",
                      extent=(len(s.setups) - 0.5, len(s.setups) + len(s.differences) - 0.5, len(rows) - 0.5, -0.5))
            labels += list(s.differences)
            for i, line in enumerate(deltas):
                for j, value in enumerate(line):
                    if value == value:
                        ax.text(len(s.setups) + j, i, f"{value:+.1f}", ha="center", va="center",
                                color="white" if abs(value) > 0.6 * reach else "black")
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xticks(range(len(labels)), labels, rotation=20)
        ax.set_yticks(range(len(rows)), rows)
        middle = (low + high) / 2
        for i, line in enumerate(scores):
            for j, value in enumerate(line):
                if value == value:  # not NaN
                    ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="white" if value < middle else "black")
        ax.set_title(f"{s.task}: {s.metric} (%), mean of {len(s.seeds)} seed(s)")
        figure.colorbar(image, ax=ax, fraction=0.046)
    figure.suptitle(title)
    figure.tight_layout()
    try:  # a temporary name of its own per writer: two pipelines may update one report
        atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(figure)


def _mean(stats: CellStatistics | None) -> float:
    return float("nan") if stats is None else stats.mean


def _row_key(row: dict[str, Any]) -> tuple:
    order = {s: i for i, s in enumerate(SETUP_ORDER)}
    return row["task"], row["language"], order.get(row["setup"], 99), row["setup"], int(row.get("seed", 0))


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"
