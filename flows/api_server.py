"""Prefect's temporary API server, started before the heavy imports so that its start overlaps them.

With no PREFECT_API_URL configured, Prefect 3 starts a temporary local API server at the first flow
call and waits for it: the calling process imports the server module (~4.5 s on 2 cores) and a
subprocess imports it again and checks its database (~7 s; ~14 s when the database is new). That is
~12 s before the first stage of every `madx run`, with nothing else happening. A flow command
starts the same server (Prefect's own app, `create_app(ephemeral=True)`: no UI, no services, the
same database under PREFECT_HOME) as its very first step instead, in a child process that comes up
on one core while this process imports torch, transformers, MLflow and Prefect on the other.

Whether a server is wanted at all is decided by Prefect's own settings (environment, profile,
prefect.toml, .env), read in the child: when they name an API URL, or disallow temporary servers,
the child says so and exits, and Prefect does what it would have done without us. Otherwise this
process gets PREFECT_API_URL before it imports Prefect (which reads its settings once, at import).

The listening socket is made here and handed to the child, so the port is known at once and no
other process can take it between choosing and binding. The child stops when this process ends,
even if it is killed.

    python -m flows.api_server FD PARENT_PID    (the child; not for direct use)
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from madx.errors import MadxError, redact_credentials

SERVE, NOT_NEEDED = "serve", "not-needed"
STARTUP_TIMEOUT_S = 180.0  # a first Prefect start migrates a new database: tens of seconds on a busy machine


class TemporaryApiServer:
    """A temporary Prefect API server in a child process, on a loopback port chosen here."""

    def __init__(self, process: subprocess.Popen, port: int, log) -> None:
        self.process, self.port, self._log = process, port, log
        self.api_url = f"http://127.0.0.1:{port}/api"

    @classmethod
    def start(cls) -> TemporaryApiServer | None:
        """Start one unless PREFECT_API_URL is set in the environment (then Prefect uses that).
        Not on Windows (no passing of sockets to a child): there Prefect starts its own, as before."""
        if os.environ.get("PREFECT_API_URL") or os.name == "nt":
            return None
        listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        log = tempfile.TemporaryFile()  # the child's stderr, shown if it fails to start
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "flows.api_server", str(listener.fileno()), str(os.getpid())],
                pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                # its own session: a Ctrl-C at the terminal must not stop it before its client is done
                # (it stops when this process ends, see _stop_with)
                start_new_session=True,
                env={**os.environ, "PREFECT_UI_ENABLED": "0"},
            )
            server = cls(process, listener.getsockname()[1], log)
        finally:
            listener.close()  # the child holds its own copy
        # At exit, after Prefect's own exit handlers (registered later, run earlier) have sent the
        # last logs and events to it.
        atexit.register(server.stop)
        return server

    def adopt(self) -> bool:
        """Wait for the child's verdict; when Prefect's settings leave the API to a temporary server,
        point this process at the child and return True. Call it before Prefect is imported."""
        verdict = self.process.stdout.readline().decode(errors="replace").strip()
        if verdict != SERVE:  # Prefect's settings name a server, or allow no temporary one, or the child failed
            self.stop()
            return False
        os.environ["PREFECT_API_URL"] = self.api_url
        return True

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Return once the server answers its health check; a clear error if it dies or never does."""
        try:  # the socket listens from the start: a request waits until the server accepts it
            served = wait_healthy(self.process, f"{self.api_url}/health", timeout)
        except MadxError:
            message = (f"Prefect's temporary API server did not answer on {self.api_url} within "
                       f"{timeout:.0f} s: {self._log_tail()}")
            self.stop()
            raise MadxError(message) from None
        if not served:
            raise MadxError(f"Prefect's temporary API server exited with code {self.process.returncode} "
                            f"before it served: {self._log_tail()}")

    def stop(self) -> None:
        if self._log.closed:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self._log.close()

    def _log_tail(self, lines: int = 8) -> str:
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip()
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def wait_healthy(process: subprocess.Popen, url: str, timeout: float = STARTUP_TIMEOUT_S) -> bool:
    """True once `url` answers 200; False if `process` exits first. Raises MadxError after `timeout`."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise MadxError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.1)
    return False


def prepare() -> str | None:
    """Start and stop the temporary server once (`madx prepare`): a first start creates and
    migrates Prefect's database, which makes the first pipeline run wait ~7 s more. Returns the
    database's location, or None when Prefect's settings name a server of their own."""
    server = TemporaryApiServer.start()
    if server is None or not server.adopt():
        return None
    try:
        server.wait_ready()
    finally:
        server.stop()
        os.environ.pop("PREFECT_API_URL", None)
    from prefect.settings import get_current_settings

    return redact_credentials(str(get_current_settings().server.database.connection_url.get_secret_value()))


# -- the child -----------------------------------------------------------------------------------
def _serve(fd: int, parent: int) -> int:
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    wanted = settings.api.url is None and settings.server.ephemeral.enabled
    print(SERVE if wanted else NOT_NEEDED, flush=True)
    if not wanted:
        return 0
    # Prefect makes its home folder (and the database in it) but not the folders above it.
    Path(settings.home).expanduser().mkdir(parents=True, exist_ok=True)
    os.dup2(2, 1)  # nothing more goes to the verdict pipe, which nobody reads from now on
    _stop_with(parent)

    import uvicorn
    from prefect.server.api.server import create_app

    app = create_app(ephemeral=True, final=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
    server.run(sockets=[socket.socket(fileno=fd)])
    return 0


def _stop_with(parent: int) -> None:
    """SIGTERM ourselves (uvicorn then shuts down cleanly) once the parent is gone, however it ended."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(_serve(int(sys.argv[1]), int(sys.argv[2])))
