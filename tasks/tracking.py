"""MLflow bookkeeping for the pipeline, through an explicit client (no global active-run state).

Prefect runs tasks in worker threads or Dask processes; MLflow's fluent `start_run` keeps its
active run per thread, so every call here names its run id instead. Runs form a tree: one parent
per pipeline run, a nested run per adapter trained and per evaluation cell, tagged so the UI can
filter and compare: `madx.kind`, `madx.language`, `madx.task`, `madx.setup`, `madx.base_model`,
`madx.config_hash`.

Every run records the machine and process that runs it (`madx.host`, `madx.pid`), so a run left
RUNNING by a killed process is found and marked KILLED by the next flow on that machine. A local
SQLite store is created under a file lock: two pipelines starting at once on a fresh output folder
would otherwise both run MLflow's schema migrations on the same file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from madx.errors import MadxError, redact_credentials
from madx.fileutil import atomic_write, process_alive, sha256_of_directory

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


def redact(uri: str) -> str:
    """Drop user:password from a URI (or from every URI in a text) before it is logged or printed."""
    return redact_credentials(uri)


def runs_url(ui: str, experiment_id: str) -> str:
    """The MLflow UI's runs table of an experiment in its training view (MLflow 3.17 opens every
    experiment in the GenAI view unless the URL asks otherwise)."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def default_tracking_uri(output_dir: Path) -> str:
    return f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"


def resolve_tracking_uri(configured: str | None, output_dir: Path) -> str:
    """MLFLOW_TRACKING_URI wins, then the config's tracking_uri, then SQLite under output_dir."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or default_tracking_uri(output_dir)


class TrackingUnavailable(MadxError):
    """The tracking store cannot be reached or opened. May pass by itself: stages retry it."""


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a local SQLite store URI; None for any other store."""
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock beside a local SQLite store (`<file>.lock`) while it is opened, created or
    migrated, and its experiment created; nothing for any other store."""
    database = _sqlite_file(uri)
    if database is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    lock_path = Path(f"{database}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_store(uri: str, client_class):
    """An MlflowClient on `uri`. A new local SQLite store starts as a copy of an empty store at the
    current schema: MLflow would otherwise create it by running its schema migrations one by one
    (3-4 s on 2 cores, paid by every new output folder and by a first `make demo`); the copy takes
    milliseconds. The first store made the slow way becomes that template (store_template)."""
    database = _sqlite_file(uri)
    if database is None or database.exists():
        return client_class(tracking_uri=uri)
    template = store_template()
    if _usable_template(template):
        with contextlib.suppress(OSError):
            atomic_write(database, lambda tmp: shutil.copyfile(template, tmp))
        if database.exists():
            try:
                return client_class(tracking_uri=uri)
            except Exception:
                template.unlink(missing_ok=True)  # the next new store is made the slow way
                raise
    client = client_class(tracking_uri=uri)  # creates the store: every migration
    with contextlib.suppress(OSError, sqlite3.Error):  # only a cache: a read-only home just stays slow
        _save_template(database, template)
    return client


def store_template() -> Path:
    """Where the empty-store template for this MLflow version lives: $MADX_CACHE_DIR, else
    $XDG_CACHE_HOME/madx, else ~/.cache/madx."""
    import mlflow

    cache = os.environ.get("MADX_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "madx"
    return Path(cache) / f"mlflow-{mlflow.__version__}-empty-store.db"


def prepare_store_template() -> tuple[Path, bool]:
    """Make the empty-store template now, if there is none (`madx prepare`); returns its path and
    whether it had to be made."""
    import tempfile

    from mlflow.tracking import MlflowClient

    template = store_template()
    if template.is_file():
        return template, False
    with tempfile.TemporaryDirectory(prefix="madx-store-") as scratch:
        _open_store(f"sqlite:///{Path(scratch) / 'mlflow.db'}", MlflowClient)
    if not template.is_file():
        raise MadxError(f"could not write the MLflow store template {template}: is its folder writable?")
    return template, True


def _usable_template(template: Path) -> bool:
    """Whether `template` is an intact SQLite store with a schema version; a damaged one is deleted
    (checked here, before MLflow opens a copy: its engine, cached per URI, would keep the bad file)."""
    if not template.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{template.resolve().as_uri()}?mode=ro", uri=True)) as db:
            intact = db.execute("PRAGMA quick_check").fetchone() == ("ok",)
            intact = intact and len(db.execute("SELECT version_num FROM alembic_version").fetchall()) == 1
    except sqlite3.Error:
        intact = False
    if not intact:
        with contextlib.suppress(OSError):
            template.unlink()
    return intact


def _save_template(database: Path, template: Path) -> None:
    """Copy a store MLflow has just created, less its default experiment (whose artifact location
    names the folder it was made in; MLflow makes a new one when it opens the copy)."""

    def write(tmp: Path) -> None:
        with contextlib.closing(sqlite3.connect(database)) as source, contextlib.closing(sqlite3.connect(tmp)) as copy:
            source.backup(copy)  # consistent even if another connection writes meanwhile
            with copy:
                copy.execute("DELETE FROM experiment_tags WHERE experiment_id = 0")
                copy.execute("DELETE FROM experiments WHERE experiment_id = 0")

    atomic_write(template, write)


def _follow_moved_store(target: TrackingTarget) -> None:
    """A local store whose output folder was copied or moved still names the old folder in its
    artifact locations (MLflow records absolute URIs): point them at the folder it is in now, so
    artifacts are read from and written to the copy, never the original. Only for the store madx
    made inside the output folder (`artifact_root` set), under the store's lock."""
    database = _sqlite_file(target.uri)
    if database is None or target.artifact_root is None or not database.is_file():
        return
    new_root = target.artifact_root.rstrip("/")
    with contextlib.closing(sqlite3.connect(database)) as db:
        try:
            rows = db.execute("SELECT artifact_location FROM experiments WHERE name = ?", (target.experiment,)).fetchall()
        except sqlite3.Error:  # not (yet) an MLflow store: MLflow will say so
            return
        if not rows or not rows[0][0]:
            return
        old_root = rows[0][0].rstrip("/")
        if old_root == new_root or not old_root.endswith("/mlartifacts"):
            return
        with db:
            db.execute("UPDATE experiments SET artifact_location = ? || substr(artifact_location, ?) "
                       "WHERE artifact_location LIKE ? || '%'", (new_root, len(old_root) + 1, old_root))
            db.execute("UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) WHERE artifact_uri LIKE ? || '%'",
                       (new_root, len(old_root) + 1, old_root))


@dataclass(frozen=True)
class TrackingTarget:
    """Where runs go: small and picklable, so it can travel to any task runner."""

    uri: str
    experiment: str
    artifact_root: str | None = None  # for a new experiment in a local store: output_dir/mlartifacts
    # The pipeline's output folder: paths inside it are tagged relative to it, so a copied or moved
    # output folder still finds its base model, adapters and evaluations.
    home: str | None = None


class Tracker:
    def __init__(self, target: TrackingTarget):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        # the report reads one small artifact per evaluation: no progress bar for each
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow.tracking import MlflowClient

        self.target = target
        try:
            with _store_lock(target.uri):
                _follow_moved_store(target)
                self.client = _open_store(target.uri, MlflowClient)
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

    # -- queries -------------------------------------------------------------------------------
    def find_runs(self, filters: Mapping[str, str], finished_only: bool = True, max_results: int = 1000) -> list:
        filters = {key: self.portable(value) if key == BASE_MODEL else value for key, value in filters.items()}
        clauses = [f"tags.`{key}` = '{value}'" for key, value in filters.items()]
        if finished_only:
            clauses.append("attributes.status = 'FINISHED'")
        return self.client.search_runs(
            [self.experiment_id], " and ".join(clauses), order_by=["attributes.start_time DESC"], max_results=max_results
        )

    def latest_adapter(self, kind: str, base_model: str, language: str | None = None, task: str | None = None) -> TrackedAdapter | None:
        """The most recent finished adapter run of this kind for a language (or task) on this base."""
        filters = {KIND: kind, BASE_MODEL: base_model}
        if language:
            filters[LANGUAGE] = language
        if task:
            filters[TASK] = task
        for run in self.find_runs(filters, max_results=20):
            tags = run.data.tags
            if ADAPTER_SHA in tags:
                return TrackedAdapter(run.info.run_id, self.local(tags.get(ADAPTER_PATH, "")), tags[ADAPTER_SHA])
        return None

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

    def adapter_folder(self, adapter: TrackedAdapter, download_to: Path) -> Path:
        """A local folder holding exactly the tracked adapter: the recorded path if its sha256 still
        matches, else a fresh download of the artifact (checked too)."""
        from madx.errors import AdapterLoadError

        local = Path(adapter.path)
        if local.is_dir() and sha256_of_directory(local) == adapter.sha256:
            return local
        target = Path(download_to)
        target.mkdir(parents=True, exist_ok=True)
        path = Path(self.client.download_artifacts(adapter.run_id, ADAPTER_ARTIFACT, str(target)))
        if sha256_of_directory(path) != adapter.sha256:
            raise AdapterLoadError(
                f"adapter of run {adapter.run_id} at {path}: sha256 {sha256_of_directory(path)[:12]}... does not "
                f"match the tracked {adapter.sha256[:12]}..."
            )
        return path

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
        """Held-out MLM perplexity of the newest trained adapter of every language: before training
        (the base with a fresh adapter) and after."""
        filters = {KIND: "language_adapter"}
        if base_model:
            filters[BASE_MODEL] = base_model
        latest: dict[str, dict[str, Any]] = {}
        for run in self.find_runs(filters, max_results=5000):
            language, metrics = run.data.tags.get(LANGUAGE), run.data.metrics
            if language and language not in latest and "initial_perplexity" in metrics:  # reuses log no curve
                latest[language] = {"language": language, "initial_perplexity": metrics["initial_perplexity"],
                                    "perplexity": metrics["perplexity"], "flags": run.data.tags.get(FLAGS, "")}
        return sorted(latest.values(), key=lambda row: row["language"])


    def task_adapter_rows(self, base_model: str | None = None) -> list[dict[str, Any]]:
        """The newest trained task adapter of every task: its source-language dev score and the
        majority-label baseline it had to beat."""
        filters = {KIND: "task_adapter"}
        if base_model:
            filters[BASE_MODEL] = base_model
        latest: dict[str, dict[str, Any]] = {}
        for run in self.find_runs(filters, max_results=5000):
            task, metrics, tags = run.data.tags.get(TASK), run.data.metrics, run.data.tags
            if task and task not in latest and "dev_f1" in metrics:
                latest[task] = {"task": task, "source_language": tags.get(LANGUAGE), "dev_f1": metrics["dev_f1"],
                                "dev_majority_baseline": metrics.get("dev_majority_baseline"),
                                "majority_label": tags.get(MAJORITY_LABEL)}
        return sorted(latest.values(), key=lambda row: row["task"])


@dataclass(frozen=True)
class TrackedAdapter:
    run_id: str
    path: str
    sha256: str


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
