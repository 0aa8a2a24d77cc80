"""`madx serve`, `madx ui` and `madx server`: the long-running commands.

    madx server            a Prefect server (what schedules need), on 127.0.0.1:4200
    madx serve CONFIG      one deployment per language of CONFIG, served until Ctrl-C
    madx ui [CONFIG]       the MLflow UI over CONFIG's tracking store, on 127.0.0.1:5000

The servers run as child processes of this command, in a process group of their own: Ctrl-C, a
SIGTERM or a closed terminal stops this command, which stops that whole group, so nothing is left
running. They bind the loopback interface unless `--host` says otherwise: neither has
authentication by default.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from flows.api_server import wait_healthy
from cli.help import examples
from cli.pipeline import DEFAULT_CONFIG
from madx.errors import MadxError

console = Console(soft_wrap=True, highlight=False)  # URLs and commands stay on one line, copyable

LOOPBACK = "127.0.0.1"
WILDCARDS = {"0.0.0.0": LOOPBACK, "": LOOPBACK, "::": "::1"}  # bound to every interface -> reached via loopback
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}

HostOpt = Annotated[str, typer.Option(
    help="Interface to bind. The default, 127.0.0.1 (loopback), accepts connections from this machine only; "
         "give another address (e.g. 0.0.0.0) only on purpose: the server has no authentication.")]


# -- commands ------------------------------------------------------------------------------------
def server(
    host: HostOpt = LOOPBACK,
    port: Annotated[int, typer.Option(help="Port of the API and UI.")] = 4200,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Serve Prefect's web UI too (--no-ui: API only, lighter).")] = True,
) -> None:
    """Start a Prefect server (binds 127.0.0.1 unless --host says otherwise) until Ctrl-C.

    Schedules need it: `madx serve` registers its deployments here. In the shell where you run `madx serve`, export the PREFECT_API_URL this command prints.

    The UI calls its API at this --host and --port (127.0.0.1 for 0.0.0.0); set PREFECT_UI_API_URL to name another address (a proxy, this machine's name).

    The database lives under $PREFECT_HOME (default ~/.prefect): deployments and run history survive a restart.
    """
    _check_port_free(host, port)
    command = [*_tool("prefect"), "server", "start", "--host", host, "--port", str(port), "--ui" if ui else "--no-ui"]
    settings = prefect_server_settings(host, port)
    api = settings["PREFECT_API_URL"]

    def ready() -> None:
        console.print(f"[bold green]Prefect server ready[/] on {_url(host, port)}"
                      + ("  (UI: open it in a browser)" if ui else ""))
        if ui and host in WILDCARDS and "PREFECT_UI_API_URL" in settings:
            console.print(f"[yellow]note:[/] the UI calls its API at {api}, which works in a browser on this machine "
                          "only; for other machines, restart with PREFECT_UI_API_URL=http://ADDRESS:"
                          f"{port}/api (ADDRESS: how they reach this one)")
        console.print(f"In the shell where you run `madx serve`:\n    [bold]export PREFECT_API_URL={api}[/]\n"
                      "Ctrl-C stops the server.")

    _warn_if_exposed(host, "Prefect server")
    console.print(f"starting a Prefect server on {_url(host, port)} ...")
    _run_until_interrupted(command, f"{api}/health", ready, "prefect server", settings)


def serve(
    config: Annotated[Path, typer.Argument(help="Pipeline YAML whose languages to serve.", show_default=False)],
    language: Annotated[list[str] | None, typer.Option("--language", "-l", help="Serve only this language (repeatable).")] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone the cron schedules are read in, e.g. Europe/Berlin.")] = "UTC",
    limit: Annotated[int, typer.Option(min=1, help="Flow runs at a time (adapter training is CPU/GPU heavy).")] = 1,
) -> None:
    """Serve one deployment per language of CONFIG until Ctrl-C: each runs its language's adapter training.

    A language with a `schedule:` (cron) in CONFIG runs on it; one without is served unscheduled and runs when triggered (`prefect deployment run NAME`, or the Prefect UI).

    Needs a Prefect server: start one with `madx server` in another terminal and export PREFECT_API_URL as it says.
    """
    from flows.config import load_pipeline_config
    from flows.deployments import language_deployments

    loaded = load_pipeline_config(config)  # validated before anything heavy loads, as by every command
    items = language_deployments(loaded, language)
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    from flows.deployments import require_prefect_server

    url = require_prefect_server()  # the likeliest problem, found before the slow imports

    from cli.pipeline import quiet_environment

    quiet_environment()  # inherited by the flow runs' subprocesses
    from flows.deployments import FLOW_NAME, build_deployments, serve_deployments

    deployments = build_deployments(loaded, language, timezone)

    from rich.table import Table

    table = Table(title=f"Deployments of flow {FLOW_NAME} on {url}")
    for column in ("deployment", "language", "schedule"):
        table.add_column(column, no_wrap=True)
    for item in items:
        table.add_row(item.name, item.language, f"{item.cron} ({timezone})" if item.cron else "when triggered")
    console.print(table)
    console.print(f"Run one now:  prefect deployment run '{items[0].full_name}'")
    console.print(f"Serving (at most {limit} run(s) at a time); Ctrl-C stops and pauses the schedules.")
    serve_deployments(deployments, limit)


def ui(
    config: Annotated[Path, typer.Argument(help="Pipeline YAML whose tracking store to show.")] = DEFAULT_CONFIG,
    host: HostOpt = LOOPBACK,
    port: Annotated[int, typer.Option(help="Port of the UI.")] = 5000,
) -> None:
    """Start the MLflow UI over CONFIG's tracking store (binds 127.0.0.1 unless --host says otherwise) until Ctrl-C.

    Runs `mlflow server` with one worker and without its job runner (its defaults start about fifteen processes).

    Runs are tagged madx.kind, madx.language, madx.task and madx.setup: filter on them to compare languages and setups.
    """
    from flows.config import load_pipeline_config

    loaded = load_pipeline_config(config)  # validated before anything heavy loads
    from flows.pipeline import tracking_target
    from tasks.tracking_store import redact

    target = tracking_target(loaded)
    scheme = target.uri.split("://", 1)[0] if "://" in target.uri else "file"
    if scheme not in ("sqlite", "file"):
        raise MadxError(f"the tracking store of {config} is {redact(target.uri)}, which `madx ui` does not serve "
                        "(it serves local sqlite/file stores); open that server's own UI instead")
    if scheme == "sqlite":
        Path(target.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    _check_port_free(host, port)
    command = [*_tool("mlflow"), "server", "--backend-store-uri", target.uri, "--host", host, "--port", str(port),
               "--workers", "1"]
    if target.artifact_root:  # experiments the UI creates keep their artifacts beside the pipeline's
        command += ["--default-artifact-root", target.artifact_root, "--no-serve-artifacts"]

    from tasks.tracking import Tracker
    from tasks.tracking_store import runs_url

    experiment_id = Tracker(target).experiment_id  # made now if the pipeline never ran: the link works

    def ready() -> None:
        console.print(f"[bold green]MLflow UI ready[/]: {runs_url(_url(host, port), experiment_id)}\n"
                      f"  (experiment {target.experiment!r}, training view; group the evaluation runs by the param "
                      "`setup` or `language` to compare; Ctrl-C stops it)")

    _warn_if_exposed(host, "MLflow UI")
    console.print(f"starting the MLflow UI for {redact(target.uri)} ...")
    _run_until_interrupted(command, f"{_url(_probe_host(host), port)}/health", ready, "mlflow server",
                           {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})


def prefect_server_settings(host: str, port: int, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment of the `prefect server start` child, so that everything it serves names its own address.

    Its web UI asks the server where the API is (GET /ui-settings, `api_url`), and Prefect answers
    with PREFECT_UI_API_URL, else PREFECT_API_URL, else PREFECT_SERVER_API_HOST/PORT: never with
    the `--host`/`--port` the server was started with. Without these settings, a UI served on any
    port but 4200 (or under a PREFECT_API_URL exported for another server) calls the wrong address
    and shows "Can't connect to Server API". A PREFECT_UI_API_URL in the environment is kept: it
    is how a user names the address browsers reach the server at (another machine, a proxy).
    """
    api = f"{_url(_probe_host(host), port)}/api"
    settings = {
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_URL": api,  # the server's own address: its links (PREFECT_UI_URL) derive from it
        # No prompt: in a terminal, Prefect would otherwise stop to offer to rewrite the user's profile.
        "PREFECT_CLI_PROMPT": "false",
    }
    if not (environ.get("PREFECT_UI_API_URL") or environ.get("PREFECT_SERVER_UI_API_URL")):
        settings["PREFECT_UI_API_URL"] = api
    return settings


def register(app: typer.Typer) -> None:
    app.command(epilog=examples(
        "madx server --port 4277",
        "export PREFECT_API_URL=http://127.0.0.1:4277/api   # then, for madx serve",
    ))(server)
    app.command(epilog=examples(
        "madx serve configs/demo.yaml",
        "madx serve configs/demo.yaml --language de --timezone Europe/Berlin",
    ))(serve)
    app.command(epilog=examples(
        "madx ui configs/demo.yaml",
        "madx ui configs/demo-fast.yaml --port 5001",
    ))(ui)


# -- child processes -----------------------------------------------------------------------------
def _tool(name: str) -> list[str]:
    """The console script `name` of this environment (beside the running Python), or `python -m name`."""
    script = Path(sys.executable).with_name(name)
    return [str(script)] if script.is_file() else [sys.executable, "-m", name]


def _run_until_interrupted(command: list[str], health_url: str, on_ready: Callable[[], None], label: str,
                           extra_env: dict[str, str] | None = None) -> None:
    """Run `command` in its own process group until it exits or this process is interrupted
    (Ctrl-C, SIGTERM, SIGHUP); then stop the whole group. Calls `on_ready` once `health_url` answers 200."""
    env = {**os.environ, **extra_env} if extra_env else dict(os.environ)
    for key, value in QUIET.items():
        env.setdefault(key, value)
    # Its own group: Ctrl-C reaches this process only, which then stops the child and anything it
    # started (uvicorn workers, job runners) together, instead of leaving some of them behind.
    process = subprocess.Popen(command, env=env, start_new_session=True)
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, a closed terminal
    previous = {sig: signal.getsignal(sig) for sig in stops}
    for sig in stops:  # SIGINT too: started in the background by a non-interactive shell, it would be ignored
        signal.signal(sig, _interrupt)
    try:
        if wait_healthy(process, health_url):
            on_ready()
        code = process.wait()
        if code != 0:
            raise MadxError(f"{label} exited with code {code} (its output is above)")
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            console.print(f"stopping {label} ...")
    finally:
        for sig in stops:  # a second Ctrl-C must not cut the cleanup short (it ends in a SIGKILL anyway)
            signal.signal(sig, signal.SIG_IGN)
        try:
            stop_process_group(process)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def stop_process_group(process: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM the process group `process` leads, wait up to `grace` seconds, then SIGKILL it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:  # whatever is still in the group (the leader exited, a worker did not)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


# -- addresses -----------------------------------------------------------------------------------
def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _probe_host(host: str) -> str:
    """Where this machine reaches a server bound to `host` (a wildcard address: via loopback)."""
    return WILDCARDS.get(host, host)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _warn_if_exposed(host: str, what: str) -> None:
    if not _is_loopback(host):
        console.print(f"[yellow]warning:[/] the {what} binds {host}: anyone who can reach this machine on that "
                      "interface can use it, without authentication")


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as error:
            raise MadxError(f"cannot bind {host}:{port} ({error.strerror or error}): another server may be running "
                            "there; pass --port to use another port") from None
