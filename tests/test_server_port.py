"""`madx server --port P`: the Prefect UI it serves calls its API on port P, not on Prefect's default 4200.

The end-to-end test starts the real command (temporary PREFECT_HOME, a free loopback port, and a
stale PREFECT_API_URL naming another server, as a user who exported one earlier has), reads what
the served UI reads to find its API (GET /ui-settings -> api_url), calls that API, and stops the
command with Ctrl-C (SIGINT). It takes as long as a Prefect start on a new database (~10-50 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from flows_support import descendants, start_time
from cli.servers import prefect_server_settings

pytestmark = pytest.mark.slow  # real `madx server` and `madx ui` processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, timeout: float = 5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def _madx() -> list[str]:
    script = Path(sys.executable).with_name("madx")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cli.main"]


# -- the settings handed to `prefect server start` -----------------------------------------------
@pytest.mark.parametrize(("host", "api"), [
    ("127.0.0.1", "http://127.0.0.1:4277/api"),
    ("0.0.0.0", "http://127.0.0.1:4277/api"),  # bound everywhere: reached via loopback on this machine
    ("::1", "http://[::1]:4277/api"),
    ("192.168.1.5", "http://192.168.1.5:4277/api"),
])
def test_prefect_server_settings_name_the_chosen_address(host, api):
    settings = prefect_server_settings(host, 4277, environ={"PREFECT_API_URL": "http://127.0.0.1:4200/api"})
    assert settings["PREFECT_UI_API_URL"] == api
    assert settings["PREFECT_API_URL"] == api  # a stale export for another server does not reach the child
    assert (settings["PREFECT_SERVER_API_HOST"], settings["PREFECT_SERVER_API_PORT"]) == (host, "4277")


@pytest.mark.parametrize("name", ["PREFECT_UI_API_URL", "PREFECT_SERVER_UI_API_URL"])
def test_prefect_server_settings_keep_a_user_ui_api_url(name):
    """A user behind a proxy or on another machine names the address browsers use; it is kept."""
    settings = prefect_server_settings("0.0.0.0", 4277, environ={name: "https://prefect.example.org/api"})
    assert "PREFECT_UI_API_URL" not in settings


# -- end to end ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_server_ui_calls_the_api_on_the_chosen_port(tmp_path):
    port, stale = _free_port(), _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=f"http://127.0.0.1:{stale}/api",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", NO_COLOR="1", COLUMNS="200")
    log = tmp_path / "server.log"
    # Its own process group, so that the finally clause can stop whatever is left of it.
    process = subprocess.Popen([*_madx(), "server", "--port", str(port)], env=env, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    children: list[tuple[int, str]] = []
    try:
        deadline = time.monotonic() + 240  # a new database is migrated first: slow on a busy machine
        while True:
            assert process.poll() is None, f"madx server exited early:\n{log.read_text(errors='replace')[-3000:]}"
            try:
                if _get(f"{base}/api/health", timeout=2)[0] == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, f"no healthy server:\n{log.read_text(errors='replace')[-3000:]}"
            time.sleep(0.2)

        status, page = _get(f"{base}/")  # the UI is served ...
        assert status == 200 and b"<html" in page.lower()
        # ... and asks the server where its API is (both Prefect UIs fetch this on load).
        api_url = json.loads(_get(f"{base}/ui-settings")[1])["api_url"]
        assert urlsplit(api_url).port == port, api_url
        assert json.loads(_get(f"{api_url.rstrip('/')}/health")[1]) is True

        children = descendants(process.pid)  # the Prefect server runs in a process group of its own
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=60) == 0, log.read_text(errors="replace")[-3000:]
        assert "stopping prefect server" in log.read_text(errors="replace")
        with pytest.raises((urllib.error.URLError, OSError)):  # the server went with it
            _get(f"{base}/api/health", timeout=2)
    finally:  # on a failure: whatever is left of the command and of what it started
        children += descendants(process.pid)
        if process.poll() is None:
            process.kill()
        process.wait()
        for pid, started in children:  # normally all gone already
            if started and start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
