"""Stopping a run cleanly when the user presses Ctrl-C or a scheduler sends SIGTERM.

A training stage may run in a worker thread (Prefect's thread runner), where no signal arrives and
no KeyboardInterrupt can be raised. So the signal only asks: the first SIGINT or SIGTERM sets a
process-wide flag, and every training loop looks at it at each step boundary (`check`): a
language adapter saves a checkpoint first (a rerun resumes from it), then the stage raises
`Interrupted`, its MLflow run ends KILLED, and the command prints one line and exits 130 (SIGINT)
or 143 (SIGTERM). A second signal exits at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from madx.errors import MadxError

_STOP = threading.Event()
_signal_name = "a stop request"
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(MadxError):
    """A stage stopped at a step boundary because a stop was requested (Ctrl-C, SIGTERM)."""


def request_stop(reason: str = "a stop request") -> None:
    global _signal_name
    _signal_name = reason
    _STOP.set()


def stop_requested() -> bool:
    return _STOP.is_set()


def check(what: str) -> None:
    """Raise Interrupted, naming `what` was stopped, if a stop was requested."""
    if _STOP.is_set():
        raise Interrupted(f"{what} stopped by {_signal_name}")


def exit_code() -> int:
    """The exit status for an interrupted command: 130 after SIGINT, 143 after SIGTERM."""
    return 143 if _signal_name == "SIGTERM" else 130


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs (main thread only; elsewhere a no-op): the first SIGINT or SIGTERM
    requests a stop and says so on stderr; a second one exits the process at once. Nestable: a
    flow installs it again inside Prefect's own SIGTERM handling, which it replaces meanwhile."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame) -> None:
        name = signal.Signals(signum).name
        if _STOP.is_set():  # the second time: no more waiting
            sys.stderr.write(f"\n{name} again: exiting now\n")
            sys.stderr.flush()
            os._exit(EXIT_CODES.get(signum, 130))
        request_stop(name)
        sys.stderr.write(f"\n{name}: stopping at the next step boundary (language adapters save a checkpoint "
                         "first); press Ctrl-C again to exit at once\n")
        sys.stderr.flush()

    previous = {sig: signal.getsignal(sig) for sig in EXIT_CODES}
    for sig in EXIT_CODES:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
