"""Where MLflow runs are kept: the tracking URI a config gives (or a SQLite file in the output
folder), opening a store (a new local one is copied from a migrated template instead of migrated,
under a file lock: two pipelines starting at once on a fresh folder would both run MLflow's schema
migrations on the same file), following an output folder that was copied or moved, and keeping
credentials out of what is printed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from madx.errors import MadxError, redact_credentials
from madx.fileutil import atomic_write


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
def store_lock(uri: str) -> Iterator[None]:
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


def open_store(uri: str, client_class):
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
        open_store(f"sqlite:///{Path(scratch) / 'mlflow.db'}", MlflowClient)
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


def follow_moved_store(target: TrackingTarget) -> None:
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
