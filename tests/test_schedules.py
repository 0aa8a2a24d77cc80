"""Per-language deployments and the server commands: `madx server`, `madx serve`, `madx ui`.

The end-to-end test starts a real Prefect server (`madx server`, temporary PREFECT_HOME, free
loopback port), serves one language of a tiny pipeline with `madx serve`, triggers its deployment
by name (as `prefect deployment run NAME` does) and waits for a COMPLETED flow run; meanwhile
`madx ui` serves the pipeline's MLflow store (sqlite under tmp_path), where the run must show up.
Every process is stopped in teardown, and the test checks that their ports are closed after.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from flows_support import RUNNER, descendants, start_time

CRON = "0 3 * * 0"
FLOW_NAME = "madx-train-language-adapter"


# -- helpers -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tool(name: str) -> list[str]:
    script = Path(sys.executable).with_name(name)
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "cli.main" if name == "madx" else name]


def _env(prefect_home: Path, **extra: str) -> dict[str, str]:
    """A quiet, offline environment with no Prefect server or MLflow store inherited from the caller."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "MLFLOW_TRACKING")) and k != "MADX_CONFIG"}
    env.update({
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "NO_COLOR": "1",
        "COLUMNS": "200",
    })
    env.update(extra)
    return env


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # Its own process group, so teardown can stop whatever it started too.
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen, first: int, grace: float = 30.0) -> None:
    """Send `first` to the process and wait up to `grace` s; then SIGKILL whatever is left of it, its
    process group and its descendants (the commands start their servers in groups of their own)."""
    leftovers = []
    if process.poll() is None:
        leftovers = descendants(process.pid)
        process.send_signal(first)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            leftovers += descendants(process.pid)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    for pid, started in leftovers:  # normally all gone already
        if started and start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _http(url: str, body: dict | None = None, timeout: float = 10, attempts: int = 10):
    """GET (or POST `body` as JSON) and decode the JSON answer. Retries 503 and 429 as Prefect's own
    client does: its SQLite database answers 503 while another request holds the write lock."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code not in (429, 503) or attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def _wait_for(check, what: str, timeout: float, processes: dict[str, tuple[subprocess.Popen, Path]]):
    """Poll `check()` until it returns something truthy; fail early, with logs, if a process died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (urllib.error.URLError, OSError, ValueError):
            result = None
        if result:
            return result
        dead = {name: p.returncode for name, (p, _) in processes.items() if p.poll() is not None}
        if dead or time.monotonic() > deadline:
            logs = "\n".join(f"--- {name} ---\n{log.read_text(errors='replace')[-4000:]}"
                             for name, (_, log) in processes.items())
            pytest.fail(f"{what}: {'exited ' + str(dead) if dead else f'not within {timeout:.0f} s'}\n{logs}")
        time.sleep(0.5)


def _tiny_config(tmp_path: Path, base_dir: Path, corpus: Path) -> Path:
    config = {
        "name": "tiny-schedule",
        "output_dir": str(tmp_path / "out"),  # MLflow goes to sqlite under here
        "base_model": {"name_or_path": str(base_dir)},
        "source_language": "en",
        "languages": {"en": {"corpus": str(corpus), "schedule": CRON}, "sw": {"corpus": str(corpus)}},
        "language_adapter": {"steps": 3, "batch_size": 4, "max_length": 32, "warmup_steps": 0, "eval_every": 3,
                             "log_every": 3, "checkpoint_every": 0, "held_out_fraction": 0.2,
                             "min_corpus_tokens": 0, "max_epochs": 1000.0},  # a toy corpus: no size check, no epoch cap
        "runner": dict(RUNNER),
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _plain(text: str) -> str:
    """Help text without rich's box drawing, colours and line wrapping."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


# -- fast tests ----------------------------------------------------------------------------------
def test_language_deployments_follow_the_config(tmp_path, tiny_base_dir, toy_corpus):
    from flows.config import load_pipeline_config
    from flows.deployments import build_deployments, deployment_name, language_deployments
    from flows.pipeline import train_language_adapter
    from madx.errors import MadxError

    config = load_pipeline_config(_tiny_config(tmp_path, tiny_base_dir, toy_corpus))
    items = {item.language: item for item in language_deployments(config)}
    assert items["en"].name == "madx-tiny-schedule-en" and items["en"].cron == CRON
    assert items["sw"].cron is None  # served, but runs only when triggered
    assert items["en"].full_name == f"{FLOW_NAME}/madx-tiny-schedule-en"
    assert items["en"].parameters == {"config_path": str((tmp_path / "tiny.yaml").resolve()), "language": "en"}
    assert deployment_name(config.model_copy(update={"name": "madx-demo"}), "sw") == "madx-demo-sw"

    (deployment,) = build_deployments(config, ["en"], timezone="Europe/Berlin")
    assert deployment.entrypoint == "flows.pipeline.train_language_adapter"
    assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == [(CRON, "Europe/Berlin")]
    assert build_deployments(config, ["sw"])[0].schedules == []
    with pytest.raises(MadxError, match="not in"):
        language_deployments(config, ["xx"])
    with pytest.raises(MadxError, match="unknown time zone 'Mars/Olympus'"):
        build_deployments(config, ["en"], timezone="Mars/Olympus")
    assert train_language_adapter.name == FLOW_NAME  # the name `prefect deployment run` is given


def test_serve_without_a_server_says_how_to_start_one(tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from typer.testing import CliRunner

    from cli.main import app
    from madx.errors import MadxError

    # The config is read first, as by every command; the missing server is checked next, before slow imports.
    config = tmp_path / "pipeline.yaml"
    config.write_text("name: x\noutput_dir: out\nbase_model: {name_or_path: xlm-roberta-base}\n"
                      "languages: {en: {corpus: udhr:en}}\n", encoding="utf-8")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = CliRunner().invoke(app, ["serve", str(config)])
    assert isinstance(result.exception, MadxError), result.output
    message = str(result.exception)
    assert "no Prefect server is configured" in message
    assert "madx server" in message and "export PREFECT_API_URL=http://127.0.0.1:4200/api" in message


def test_serve_with_an_unreachable_server_says_how_to_start_one():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.deployments import require_prefect_server
    from madx.errors import MadxError

    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{_free_port()}/api"}):
        with pytest.raises(MadxError, match=r"does not answer(.|\n)*madx server(.|\n)*export PREFECT_API_URL"):
            require_prefect_server()


@pytest.mark.parametrize("command", ["ui", "server"])
def test_server_commands_bind_loopback_unless_told(command):
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    text = _plain(result.output)
    assert "binds 127.0.0.1 unless --host says otherwise" in text
    assert "127.0.0.1 (loopback), accepts connections from this machine only" in text
    assert "[default: 127.0.0.1]" in text


@pytest.mark.parametrize(("host", "loopback", "probe"), [
    ("127.0.0.1", True, "127.0.0.1"), ("localhost", True, "localhost"), ("::1", True, "::1"),
    ("0.0.0.0", False, "127.0.0.1"), ("::", False, "::1"), ("192.168.1.20", False, "192.168.1.20"),
])
def test_binding_addresses(host, loopback, probe):
    from cli.servers import _is_loopback, _probe_host

    assert _is_loopback(host) is loopback  # anything else prints a warning before the server starts
    assert _probe_host(host) == probe  # where the health check looks


def test_server_refuses_a_busy_port():
    from cli.servers import _check_port_free
    from madx.errors import MadxError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(MadxError, match="pass --port"):
            _check_port_free("127.0.0.1", busy.getsockname()[1])


# -- end to end ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_served_language_deployment_runs_on_a_real_server(tmp_path, tiny_base_dir, toy_corpus):
    config = _tiny_config(tmp_path, tiny_base_dir, toy_corpus)
    port, ui_port = _free_port(), _free_port()
    api, ui_url = f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{ui_port}"
    env = _env(tmp_path / "prefect")
    # The runner asks for triggered runs every second instead of every 10 s (Prefect's default).
    served_env = _env(tmp_path / "prefect", PREFECT_API_URL=api, PREFECT_RUNNER_POLL_FREQUENCY="1")
    processes: dict[str, tuple[subprocess.Popen, Path]] = {}

    def start(name: str, command: list[str], environment: dict[str, str]) -> subprocess.Popen:
        log = tmp_path / f"{name}.log"
        processes[name] = (_start(command, environment, log), log)
        return processes[name][0]

    def log(name: str) -> str:
        return (tmp_path / f"{name}.log").read_text(errors="replace")[-4000:]

    try:
        # The Prefect server (a new database: migrations take a while) and the MLflow UI start together.
        start("server", [*_tool("madx"), "server", "--port", str(port), "--no-ui"], env)
        ui = start("ui", [*_tool("madx"), "ui", str(config), "--port", str(ui_port)], env)
        _wait_for(lambda: _http(f"{api}/health") is True, "prefect server healthy", 240, processes)
        serve = start("serve", [*_tool("madx"), "serve", str(config), "--language", "en"], served_env)

        # madx serve registered the deployment with the config's cron; trigger it by its printed
        # name, as `prefect deployment run NAME` does (the same two API calls, without a process).
        name = f"{FLOW_NAME}/madx-tiny-schedule-en"
        registered = _wait_for(lambda: _http(f"{api}/deployments/name/{name}"), "deployment registered", 180, processes)
        assert [s["schedule"]["cron"] for s in registered["schedules"] if s["active"]] == [CRON]
        assert registered["parameters"] == {"config_path": str(config.resolve()), "language": "en"}
        assert registered["paused"] is False
        _http(f"{api}/deployments/{registered['id']}/create_flow_run", {})

        def finished():
            final = {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED"]}}
            runs = _http(f"{api}/flow_runs/filter", {"deployments": {"id": {"any_": [registered["id"]]}},
                                                     "flow_runs": {"state": final}})
            return runs[0] if runs else None

        run = _wait_for(finished, "a finished flow run of the served deployment", 300, processes)
        assert run["state_type"] == "COMPLETED", (run["state"], log("serve"))
        assert (tmp_path / "out" / "adapters" / "language" / "en" / "adapter_config.json").is_file()

        # The flow tracked its run in the config's sqlite store, which `madx ui` serves.
        _wait_for(lambda: urllib.request.urlopen(f"{ui_url}/health", timeout=5).status == 200, "madx ui healthy", 180,
                  processes)
        experiments = _http(f"{ui_url}/ajax-api/2.0/mlflow/experiments/search", {"max_results": 10})["experiments"]
        experiment = next(e["experiment_id"] for e in experiments if e["name"] == "tiny-schedule")
        runs = _http(f"{ui_url}/ajax-api/2.0/mlflow/runs/search",
                     {"experiment_ids": [experiment], "filter": "tags.`madx.kind` = 'language_flow'"})["runs"]
        assert [r["info"]["status"] for r in runs] == ["FINISHED"]

        # Ctrl-C stops `madx serve`, which pauses its deployment's schedule; SIGTERM stops `madx ui`.
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=60) == 0, log("ui")
        # Pausing schedules is API work, slow on a loaded machine; should Prefect's shutdown hang (it
        # did in two full-suite runs), madx serve's watchdog pauses them itself after 60 s and exits.
        _stop(serve, signal.SIGINT, grace=120)
        assert serve.returncode == 0, log("serve")
        assert _http(f"{api}/deployments/{registered['id']}")["paused"] is True
    finally:
        for name in ("ui", "serve"):
            if name in processes:
                _stop(processes[name][0], signal.SIGINT)
        if "server" in processes:
            _stop(processes["server"][0], signal.SIGTERM)
    # Each command stopped the server it started: nothing answers on their ports any more.
    for url in (f"{api}/health", f"{ui_url}/health"):
        with pytest.raises((urllib.error.URLError, OSError)):
            urllib.request.urlopen(url, timeout=2)
