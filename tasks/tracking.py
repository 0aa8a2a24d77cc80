"""MLflow bookkeeping for the pipeline, through an explicit client (no global active-run state).

Prefect runs tasks in worker threads or Dask processes; MLflow's fluent `start_run` keeps its
active run per thread, so every call here names its run id instead. Runs form a tree: one parent
per pipeline run, a nested run per adapter trained and per evaluation cell, tagged so the UI can
filter and compare: `madx.kind`, `madx.language`, `madx.task`, `madx.setup`, `madx.base_model`,
`madx.config_hash`.

Every run records the machine and process that runs it (`madx.host`, `madx.pid`), so a run left
RUNNING by a killed process is found and marked KILLED by the next flow on that machine. A local
SQLite store is opened as tasks/tracking_store.py says; reading runs back is tasks/tracking_queries.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from madx.errors import MadxError
from madx.fileutil import process_alive, sha256_of_directory
from tasks.tracking_store import TrackingTarget, TrackingUnavailable, follow_moved_store, open_store, redact, store_lock

KIND = "madx.kind"
LANGUAGE = "madx.language"
TASK = "madx.task"
SETUP = "madx.setup"
BASE_MODEL = "madx.base_model"
CONFIG_HASH = "madx.config_hash"
SCHEME = "madx.scheme"  # an evaluation's label scheme: iob2 (f1 = entity F1) or plain (f1 = word accuracy)
MAJORITY_LABEL = "madx.majority_label"  # a task adapter's most frequent training label
FLAGS = "madx.flags"  # warnings about a run's numbers, "; "-separated (see tasks.stages._flag)
NOT_EVALUATED = "madx.not_evaluated"  # why a run has no scores for something it trained (no test set ...)
SEED = "madx.seed"  # the seed of a trained adapter or of the task adapter an evaluation used
# A trained adapter's family (evaluation/setups.py): madx, noinv (language adapters without invertible
# adapters, and task adapters trained on them) or ta-only (task adapters trained with no language adapter).
FAMILY = "madx.family"
ADAPTER_SHA = "madx.adapter_sha256"
ADAPTER_PATH = "madx.adapter_path"
HOST = "madx.host"
PID = "madx.pid"
ERROR = "madx.error"
PARENT = "mlflow.parentRunId"
# MLflow 3 keeps an experiment's kind in this tag (the UI offers training or GenAI views; in 3.17
# the view itself follows the `workflowType` URL parameter, see runs_url).
EXPERIMENT_KIND = "mlflow.experimentKind"
TRAINING_EXPERIMENT = "custom_model_development"
ADAPTER_ARTIFACT = "adapter"
SENTENCE_COUNTS = "sentence_counts.json"  # an evaluation's per-sentence counts (tagging.metrics.sentence_counts)
# Params of a language adapter's run: how many corpus lines were left out for holding test sentences,
# and of which test sets ("pos/hau: 115, ner/hau: 2", or "none"); see language_adapters.contamination.
CONTAMINATION_REMOVED = "contamination_removed_lines"
CONTAMINATION_TEST_SETS = "contamination_test_sets"

# Facts of a run that do not change over it (sizes, budgets, counts of a test set): logged as params,
# so the UI lists them instead of drawing one-point charts.
CONSTANTS = frozenset({
    "steps", "epochs", "max_length", "train_sequences", "held_out_sequences", "train_tokens_seen", "train_rows",
    "trainable_parameters", "total_parameters", "vocabulary_size", "softmax_candidates", "n_sentences", "n_words",
    "support",
})


def named_scores(row: Mapping[str, Any]) -> dict[str, Any]:
    """An evaluation row's numbers under names that say what they are: the headline score as
    `word_accuracy` or `entity_f1` (with `entity_precision`, `entity_recall`), never a bare `f1`
    that is an accuracy for POS."""
    from tagging.metrics import score_key

    headline = {"f1", "precision", "recall"} | ({"accuracy"} if row["scheme"] == "plain" else set())
    named = {key: value for key, value in row.items() if key not in headline}
    named[score_key(row["scheme"])] = row["f1"]
    if row["scheme"] == "iob2":
        named.update(entity_precision=row["precision"], entity_recall=row["recall"])
    return named


class Tracker:
    def __init__(self, target: TrackingTarget):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        # the report reads one small artifact per evaluation: no progress bar for each
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow.tracking import MlflowClient

        self.target = target
        try:
            with store_lock(target.uri):
                follow_moved_store(target)
                self.client = open_store(target.uri, MlflowClient)
                self.experiment_id = self._experiment_id()
        except Exception as error:  # noqa: BLE001 - whatever the store raised, said once, without credentials
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise TrackingUnavailable(
                f"cannot use the MLflow tracking store {redact(target.uri)}: {redact(reason)}"
            ) from None

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.target.experiment)
        if experiment is not None:
            if experiment.tags.get(EXPERIMENT_KIND) != TRAINING_EXPERIMENT:
                self.client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND, TRAINING_EXPERIMENT)
            return experiment.experiment_id
        try:
            return self.client.create_experiment(self.target.experiment, artifact_location=self.target.artifact_root,
                                                 tags={EXPERIMENT_KIND: TRAINING_EXPERIMENT})
        except Exception:  # another process (a remote store: no lock) created it first
            experiment = self.client.get_experiment_by_name(self.target.experiment)
            if experiment is None:
                raise
            return experiment.experiment_id

    # -- runs ----------------------------------------------------------------------------------
    def portable(self, path: str | Path) -> str:
        """`path` relative to the output folder when it lies inside it (what tags record), else as given."""
        home = self.target.home
        if home and Path(path).is_absolute():
            with contextlib.suppress(ValueError):
                return Path(path).resolve().relative_to(Path(home).resolve()).as_posix()
        return str(path)

    def local(self, recorded: str) -> str:
        """The path a tag records, as a path on this machine (the inverse of `portable`)."""
        if self.target.home and recorded and not Path(recorded).is_absolute() and "://" not in recorded:
            candidate = Path(self.target.home) / recorded
            if candidate.exists():
                return str(candidate)
        return recorded

    def start(self, name: str, tags: Mapping[str, str], parent_id: str | None = None) -> str:
        all_tags = {k: str(v) for k, v in tags.items() if v is not None}
        if BASE_MODEL in all_tags:
            all_tags[BASE_MODEL] = self.portable(all_tags[BASE_MODEL])
        all_tags.update({HOST: socket.gethostname(), PID: str(os.getpid())})
        if parent_id:
            all_tags[PARENT] = parent_id
        return self.client.create_run(self.experiment_id, run_name=name, tags=all_tags).info.run_id

    def finish(self, run_id: str, error: BaseException | None = None) -> None:
        """FINISHED; KILLED when a stop was requested (Ctrl-C, SIGTERM); FAILED with the error otherwise."""
        from madx.stopping import Interrupted, stop_requested

        if error is not None and (isinstance(error, (Interrupted, KeyboardInterrupt)) or stop_requested()):
            self.client.set_tag(run_id, ERROR, redact(str(error) or type(error).__name__)[:4000])
            self.client.set_terminated(run_id, "KILLED")
        elif error is not None:
            message = f"{type(error).__name__}: {error}" if isinstance(error, MadxError) else traceback.format_exc()
            self.client.set_tag(run_id, ERROR, redact(str(error))[:4000])
            self.client.log_text(run_id, redact(message), "error.txt")
            self.client.set_terminated(run_id, "FAILED")
        else:
            self.client.set_terminated(run_id, "FINISHED")

    def close_abandoned(self) -> list[str]:
        """Mark KILLED every run of this experiment left RUNNING by a process of this machine that no
        longer exists (SIGKILL, out of memory, power loss); return their ids. Runs of live
        processes, and of other machines, are left alone."""
        host = socket.gethostname()
        if "'" in host:
            return []
        running = self.client.search_runs(
            [self.experiment_id], f"attributes.status = 'RUNNING' and tags.`{HOST}` = '{host}'", max_results=1000
        )
        closed = []
        for run in running:
            pid = run.data.tags.get(PID, "")
            if not pid.isdigit() or int(pid) == os.getpid() or process_alive(int(pid)):
                continue
            self.client.set_tag(run.info.run_id, ERROR, f"process {pid} on {host} ended without finishing this run (killed?)")
            self.client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
        return closed

    @contextlib.contextmanager
    def run(self, name: str, tags: Mapping[str, str], parent_id: str | None = None) -> Iterator[str]:
        """A run that ends FINISHED, or FAILED with the error recorded; never left RUNNING."""
        run_id = self.start(name, tags, parent_id)
        try:
            yield run_id
        except BaseException as error:
            self.finish(run_id, error)
            raise
        self.finish(run_id)

    # -- logging -------------------------------------------------------------------------------
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten(params)
        items = [Param(k, redact(str(v))[:6000]) for k, v in flat.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start : start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Numbers as metrics at `step`; the CONSTANTS among them (and per-type supports) as params."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        numbers = {key: value for key, value in metrics.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step"}
        constants = {key: value for key, value in numbers.items() if key in CONSTANTS or key.endswith(".support")}
        if constants:
            self.log_params(run_id, {key: int(v) if float(v).is_integer() else v for key, v in constants.items()})
        items = [Metric(key, float(value), now, step or 0) for key, value in numbers.items() if key not in constants]
        for start in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[start : start + 500])

    def log_adapter(self, run_id: str, folder: Path) -> str:
        """Log an adapter folder as the run's `adapter` artifact; record its sha256 and local path."""
        digest = sha256_of_directory(folder)
        self.client.log_artifacts(run_id, str(folder), ADAPTER_ARTIFACT)
        self.client.set_tag(run_id, ADAPTER_SHA, digest)
        self.client.set_tag(run_id, ADAPTER_PATH, self.portable(Path(folder).resolve()))
        return digest

    def log_dict(self, run_id: str, data: Mapping[str, Any], artifact_file: str) -> None:
        self.client.log_dict(run_id, dict(data), artifact_file)

    def log_files(self, run_id: str, files: list[Path], artifact_path: str | None = None) -> None:
        for path in files:
            self.client.log_artifact(run_id, str(path), artifact_path)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, str(value))


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat
