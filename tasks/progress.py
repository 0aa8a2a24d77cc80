"""Progress of long stages, shown as bars by the CLI and as log lines everywhere else.

Stages report through `report(label, step, total, metrics)`. By default that is a log line (the
Prefect run logger shows it). The CLI, which runs flows in its own process, installs a rich
progress display for the duration of a command with `show_progress()`. Like a logging handler,
the display is per process: stages running in Dask worker processes only log.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

_lock = threading.Lock()
_display: Progress | None = None
_bars: dict[str, int] = {}


def report(label: str, step: int, total: int | None, summary: str = "") -> bool:
    """Advance `label`'s bar to `step` of `total`; False when no display is installed."""
    with _lock:
        if _display is None or not total:
            return False
        if label not in _bars:
            _bars[label] = _display.add_task(label, total=total, info="")
        _display.update(_bars[label], completed=min(step, total), info=summary)
        return True


@contextlib.contextmanager
def show_progress(console: Console | None = None) -> Iterator[None]:
    """Show a bar per stage while the block runs."""
    global _display
    progress = Progress(
        TextColumn("[bold]{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )
    with _lock:
        _display = progress
        _bars.clear()
    try:
        with progress:
            yield
    finally:
        with _lock:
            _display = None
            _bars.clear()
