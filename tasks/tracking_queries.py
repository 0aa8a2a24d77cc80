"""Reading the tracked runs back: the adapters a store knows (to reuse or restore one), and the
evaluations, per-sentence counts and adapter summaries the report and `madx results` are built from.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from evaluation.setups import MADX
from tasks.tracking import (ADAPTER_PATH, ADAPTER_SHA, BASE_MODEL, CONTAMINATION_REMOVED, CONTAMINATION_TEST_SETS,
                            FAMILY, FLAGS, KIND, LANGUAGE, MAJORITY_LABEL, SCHEME, SEED, SENTENCE_COUNTS, SETUP, TASK,
                            Tracker)


@dataclass(frozen=True)
class TrackedAdapter:
    run_id: str
    path: str
    sha256: str


class TrackedRuns:
    """Queries on the runs of one tracker's experiment."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker
        self.client = tracker.client
        self.experiment_id = tracker.experiment_id

    def portable(self, path):
        return self.tracker.portable(path)

    def local(self, recorded: str) -> str:
        return self.tracker.local(recorded)

    def find_runs(self, filters: Mapping[str, str], finished_only: bool = True, max_results: int = 1000) -> list:
        filters = {key: self.portable(value) if key == BASE_MODEL else value for key, value in filters.items()}
        clauses = [f"tags.`{key}` = '{value}'" for key, value in filters.items()]
        if finished_only:
            clauses.append("attributes.status = 'FINISHED'")
        return self.client.search_runs(
            [self.experiment_id], " and ".join(clauses), order_by=["attributes.start_time DESC"], max_results=max_results
        )

    def tracked_adapter(self, folder: Path, kind: str, cache_key: str) -> TrackedAdapter | None:
        """The newest finished run of `kind` that logged the adapter in `folder` under `cache_key`."""
        path = self.portable(Path(folder).resolve())
        runs = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{KIND}` = '{kind}' and params.cache_key = '{cache_key}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"], max_results=100,
        )
        for run in runs:
            tags = run.data.tags
            if tags.get(ADAPTER_PATH) == path and ADAPTER_SHA in tags:
                return TrackedAdapter(run.info.run_id, str(Path(folder).resolve()), tags[ADAPTER_SHA])
        return None

    def evaluation_rows(self, base_model: str | None = None) -> list[dict[str, Any]]:
        """The latest score of every (task, language, setup, seed) evaluated in this experiment; `f1`
        is the headline score whatever its tracked name, `run_id` the run holding its sentence counts."""
        filters = {KIND: "evaluation"}
        if base_model:
            filters[BASE_MODEL] = base_model
        latest: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for run in self.find_runs(filters, max_results=50_000):
            tags, metrics = run.data.tags, run.data.metrics
            key = (tags.get(TASK), tags.get(LANGUAGE), tags.get(SETUP), tags.get(SEED))
            metric = run.data.params.get("metric", "f1")
            if None in key or key in latest or metric not in metrics:
                continue
            latest[key] = {**metrics, "task": key[0], "language": key[1], "setup": key[2], "seed": int(key[3]),
                           "scheme": tags.get(SCHEME), "source_language": tags.get("madx.source_language"),
                           "f1": metrics[metric], "run_id": run.info.run_id}
        return list(latest.values())

    def evaluation_counts(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """run_id -> per-sentence counts (a numpy array) of every row that logged them."""
        import numpy as np

        counts = {}
        for row in rows:
            with contextlib.suppress(OSError, KeyError, ValueError):  # a run from before counts were logged
                counts[row["run_id"]] = np.asarray(self.sentence_counts(row["run_id"]), dtype=float)
        return counts

    def sentence_counts(self, run_id: str) -> list[list[int]]:
        """The per-sentence counts an evaluation run logged (tagging.metrics.sentence_counts)."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="madx-counts-") as scratch:
            path = Path(self.client.download_artifacts(run_id, SENTENCE_COUNTS, scratch))
            return json.loads(path.read_text(encoding="utf-8"))["counts"]

    def language_adapter_rows(self, base_model: str | None = None) -> list[dict[str, Any]]:
        """Held-out MLM perplexity of the newest trained adapter of every language and family (madx,
        noinv; a run from before families is madx's): before training (the base with a fresh adapter),
        after training and, for a centred adapter, after centring; and how many lines of its corpus
        were left out for holding test sentences, of which test sets (0 and "" for a run from before
        that check)."""
        filters = {KIND: "language_adapter"}
        if base_model:
            filters[BASE_MODEL] = base_model
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for run in self.find_runs(filters, max_results=5000):
            language, metrics = run.data.tags.get(LANGUAGE), run.data.metrics
            key = (language, run.data.tags.get(FAMILY, MADX))
            if language and key not in latest and "initial_perplexity" in metrics:  # reuses log no curve
                params = run.data.params
                latest[key] = {"language": language, "family": key[1],
                               "initial_perplexity": metrics["initial_perplexity"],
                               "perplexity": metrics["perplexity"],
                               "perplexity_before_centering": metrics.get("perplexity_before_centering"),
                               "drift": metrics.get("drift"), "kept_step": metrics.get("kept_step"),
                               "steps": float(params["steps"]) if "steps" in params else None,  # a constant: a param
                               "flags": run.data.tags.get(FLAGS, ""),
                               "removed_lines": int(params.get(CONTAMINATION_REMOVED, 0)),
                               "removed_test_sets": params.get(CONTAMINATION_TEST_SETS, "")}
        return [latest[key] for key in sorted(latest)]


    def task_adapter_rows(self, base_model: str | None = None) -> list[dict[str, Any]]:
        """The newest trained task adapter of every task and family (madx, noinv, ta-only; a run from
        before families is madx's): its source-language dev score and the majority-label baseline it
        had to beat."""
        filters = {KIND: "task_adapter"}
        if base_model:
            filters[BASE_MODEL] = base_model
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for run in self.find_runs(filters, max_results=5000):
            task, metrics, tags = run.data.tags.get(TASK), run.data.metrics, run.data.tags
            key = (task, tags.get(FAMILY, MADX))
            if task and key not in latest and "dev_f1" in metrics:
                latest[key] = {"task": task, "family": key[1], "source_language": tags.get(LANGUAGE),
                               "dev_f1": metrics["dev_f1"], "dev_majority_baseline": metrics.get("dev_majority_baseline"),
                               "majority_label": tags.get(MAJORITY_LABEL)}
        return [latest[key] for key in sorted(latest)]
