"""What a pipeline run pays before its first stage: Prefect's temporary API server, started early in
a child process (flows/api_server.py), and new MLflow stores copied from an empty-store template
instead of migrated one by one (tasks/tracking.py)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from madx.errors import MadxError
from tasks.tracking import Tracker
from tasks.tracking_queries import TrackedRuns
from tasks.tracking_store import TrackingTarget, store_template

pytestmark = pytest.mark.slow  # Prefect API servers and the one-off databases, each started for real


# -- the MLflow store template ---------------------------------------------------------------------
def _tracker(folder: Path) -> Tracker:
    return Tracker(TrackingTarget(f"sqlite:///{folder / 'mlflow.db'}", "startup-test", (folder / "art").as_uri()))


def _schema(database: Path) -> tuple[list[str], list[tuple]]:
    with sqlite3.connect(database) as db:
        tables = sorted(row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        return tables, db.execute("SELECT * FROM alembic_version").fetchall()


def test_a_new_store_is_copied_from_the_template_and_behaves_like_a_migrated_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MADX_CACHE_DIR", str(tmp_path / "cache"))
    migrated = _tracker(tmp_path / "first")  # no template yet: MLflow migrates, the store becomes the template
    template = store_template()
    assert template.is_file() and template.parent == tmp_path / "cache"
    with sqlite3.connect(template) as db:
        assert db.execute("SELECT count(*) FROM experiments").fetchone() == (0,)  # not the first store's folders

    import mlflow.store.db.utils as store_utils

    migrations = []  # MLflow's "create every table, run every migration" of a new store
    real = store_utils._initialize_tables
    monkeypatch.setattr(store_utils, "_initialize_tables", lambda engine: (migrations.append(engine), real(engine)))
    copied = _tracker(tmp_path / "second")
    assert _schema(tmp_path / "second" / "mlflow.db") == _schema(tmp_path / "first" / "mlflow.db")
    # MLflow made the default experiment on opening the copy, as it did for the migrated store
    assert copied.client.get_experiment("0").artifact_location == migrated.client.get_experiment("0").artifact_location
    assert copied.client.get_experiment(copied.experiment_id).artifact_location == (tmp_path / "second" / "art").as_uri()
    run_id = copied.start("a run", {"madx.kind": "test"})
    copied.log_metrics(run_id, {"f1": 0.5}, step=3)
    copied.finish(run_id)
    [run] = TrackedRuns(copied).find_runs({"madx.kind": "test"})
    assert run.data.metrics == {"f1": 0.5} and run.info.status == "FINISHED"
    assert TrackedRuns(migrated).find_runs({"madx.kind": "test"}) == []  # two stores, nothing shared
    assert migrations == [], "the second store was migrated instead of copied from the template"
    template.unlink()
    _tracker(tmp_path / "third")
    assert len(migrations) == 1  # control: without a template the spy does see MLflow migrate


def test_a_damaged_template_is_replaced_and_the_store_still_opens(tmp_path, monkeypatch):
    monkeypatch.setenv("MADX_CACHE_DIR", str(tmp_path / "cache"))
    template = store_template()
    template.parent.mkdir(parents=True)
    template.write_bytes(b"not a database" * 100)
    tracker = _tracker(tmp_path / "store")
    run_id = tracker.start("a run", {})
    tracker.finish(run_id)
    assert tracker.client.get_run(run_id).info.status == "FINISHED"
    assert _schema(template)[1] == _schema(tmp_path / "store" / "mlflow.db")[1]  # a real template again


def test_an_unwritable_cache_only_means_no_template(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache folder cannot be made under a file")
    monkeypatch.setenv("MADX_CACHE_DIR", str(blocker / "cache"))
    tracker = _tracker(tmp_path / "store")
    assert tracker.client.get_experiment(tracker.experiment_id).name == "startup-test"
    assert not store_template().exists()


# -- Prefect's temporary API server ---------------------------------------------------------------
@pytest.fixture
def no_api_url(monkeypatch):
    """No PREFECT_API_URL before the test; whatever `adopt` sets is undone after it."""
    monkeypatch.setenv("PREFECT_API_URL", "unset-by-the-fixture")
    monkeypatch.delenv("PREFECT_API_URL")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_server_serves_prefect_api_and_stops(no_api_url):
    from flows.api_server import TemporaryApiServer

    server = TemporaryApiServer.start()
    try:
        assert server.adopt()
        assert os.environ["PREFECT_API_URL"] == f"http://127.0.0.1:{server.port}/api"
        server.wait_ready()
        with urllib.request.urlopen(f"{server.api_url}/health", timeout=10) as response:
            assert response.status == 200
    finally:
        server.stop()
    assert server.process.returncode is not None and not _port_open(server.port)


def test_no_server_when_the_environment_names_one(monkeypatch):
    from flows.api_server import TemporaryApiServer

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert TemporaryApiServer.start() is None


@pytest.mark.parametrize("setting", ["profile", "no-temporary-servers"])
def test_prefect_settings_that_rule_out_a_temporary_server_win(setting, tmp_path, monkeypatch, no_api_url):
    from flows.api_server import TemporaryApiServer

    if setting == "profile":  # a user who ran `prefect config set PREFECT_API_URL=...`
        profiles = tmp_path / "profiles.toml"
        profiles.write_text('active = "mine"\n[profiles.mine]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n')
        monkeypatch.setenv("PREFECT_PROFILES_PATH", str(profiles))
    else:
        monkeypatch.setenv("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "false")
    server = TemporaryApiServer.start()
    assert server.adopt() is False
    assert "PREFECT_API_URL" not in os.environ
    assert server.process.poll() is not None  # the child is gone


def test_a_server_that_cannot_start_says_why(tmp_path, monkeypatch, no_api_url):
    from flows.api_server import TemporaryApiServer

    blocker = tmp_path / "a-file"
    blocker.write_text("no database folder can be made under a file")
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{blocker}/prefect.db")
    server = TemporaryApiServer.start()
    assert server.adopt()
    with pytest.raises(MadxError, match=r"temporary API server exited with code \d+ before it served: .+"):
        server.wait_ready(timeout=120)
    server.stop()


def test_a_server_that_does_not_answer_in_time_is_stopped_with_a_clear_error(no_api_url):
    from flows.api_server import TemporaryApiServer

    server = TemporaryApiServer.start()
    assert server.adopt()
    with pytest.raises(MadxError, match=r"did not answer on http://127\.0\.0\.1:\d+/api within 0 s"):
        server.wait_ready(timeout=0.1)  # it needs seconds to import Prefect's server
    assert server.process.returncode is not None and not _port_open(server.port)


def test_the_server_stops_when_the_process_that_started_it_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import os, time
        from flows.api_server import TemporaryApiServer
        os.environ.pop("PREFECT_API_URL", None)
        server = TemporaryApiServer.start()
        assert server.adopt()
        server.wait_ready()
        print(server.process.pid, server.port, flush=True)
        time.sleep(300)
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"})
    try:
        child, port = map(int, parent.stdout.readline().split())
        assert _port_open(port)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{child}").exists() and _alive(child):
            time.sleep(0.2)
        assert not _alive(child), "the temporary server outlived the process that started it"
        assert not _port_open(port)
    finally:
        parent.kill()
        parent.wait()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_madx_prepare_makes_both_one_off_databases(tmp_path):
    """What `make setup` runs: Prefect's database (under a PREFECT_HOME whose parents do not exist
    yet) and the MLflow store template; a second run finds both ready."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
    env.update(PREFECT_HOME=str(tmp_path / "new" / "prefect-home"), MADX_CACHE_DIR=str(tmp_path / "cache"))
    madx = [str(Path(sys.executable).with_name("madx")), "prepare"]
    first = subprocess.run(madx, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (tmp_path / "new" / "prefect-home" / "prefect.db").is_file()
    assert "Prefect: local database ready" in first.stdout and "MLflow: store template created" in first.stdout
    with sqlite3.connect(tmp_path / "cache" / store_template().name) as db:
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    again = subprocess.run(madx, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "MLflow: store template ready" in again.stdout, again.stdout + again.stderr
