"""Timing and CPU-load helpers with no dependency beyond the standard library.

Kept apart from `bench.common` (which needs this project's transformers and tokenizer code) so a
script running in another environment, e.g. the reference `adapters` venv, times its calls with
exactly the same code: `bench.adapterhub_ratios` imports this module.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


# -- timing --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Seconds per call: median (the number to quote), min, max, and every measured run."""

    median: float
    min: float
    max: float
    runs: list[float]
    warmup: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def time_interleaved(calls: dict[str, tuple[Callable[[], Any], int]]) -> tuple[dict[str, Timing], dict[str, Any]]:
    """Time several calls in rounds (A, B, C, then B, C, A, then C, A, B, ...): load from other
    processes that comes and goes then hits every variant alike, so their ratio stays meaningful on
    a shared machine, and the order rotates so that no variant always runs first (or always right
    after another one, whose memory traffic it may inherit). `calls` maps a name to (function,
    repeats); returns each name's Timing and its last result."""
    runs: dict[str, list[float]] = {name: [] for name in calls}
    last: dict[str, Any] = {}
    names = list(calls)
    for round_ in range(max(repeats for _, repeats in calls.values())):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            fn, repeats = calls[name]
            if round_ < repeats:
                started = time.perf_counter()
                last[name] = fn()
                runs[name].append(time.perf_counter() - started)
    return {name: summarize(times) for name, times in runs.items()}, last


def paired_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median of round-by-round ratios of two interleaved series (A1/B1, A2/B2, ...): each pair
    ran back to back, so load that comes and goes between rounds cancels, which a ratio of the two
    medians does not do."""
    ratios = sorted(a / b for a, b in zip(numerators, denominators, strict=True))
    middle = len(ratios) // 2
    return ratios[middle] if len(ratios) % 2 else (ratios[middle - 1] + ratios[middle]) / 2


def summarize(runs: list[float], warmup: int = 0) -> Timing:
    return Timing(statistics.median(runs), min(runs), max(runs), list(runs), warmup)


# -- how busy the machine was -------------------------------------------------------------------
class CpuMeter:
    """Measures, over a `with` block, the CPU time this process used and what the rest of the
    machine used at the same time (from /proc/stat). Other work on a 2-core machine slows a
    2-thread torch run a lot, so every number is printed with the other processes' load beside it.

    `other_busy_cores`: CPU-seconds used by other processes per wall second (0 = we had the machine).
    """

    def __enter__(self) -> CpuMeter:
        self.wall0, self.own0, self.busy0 = time.perf_counter(), _own_cpu_seconds(), _machine_busy_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.own = _own_cpu_seconds() - self.own0
        busy = _machine_busy_seconds()
        self.other = None if busy is None or self.busy0 is None else max(0.0, busy - self.busy0 - self.own)

    def to_dict(self) -> dict[str, Any]:
        return {
            "wall_seconds": round(self.wall, 3),
            "own_cpu_seconds": round(self.own, 3),
            "other_busy_cores": None if self.other is None else round(self.other / max(self.wall, 1e-9), 2),
        }

    def describe(self) -> str:
        d = self.to_dict()
        other = "unknown" if d["other_busy_cores"] is None else f"{d['other_busy_cores']:.2f}"
        return f"other processes used {other} cores meanwhile"


def wait_for_quiet(max_wait: float, threshold: float = 0.3, sample: float = 1.0) -> float | None:
    """Wait (at most `max_wait` s) until other processes use under `threshold` cores over a
    `sample`-second window; return the last window's other-process load (None: unknown)."""
    deadline = time.perf_counter() + max_wait
    announced = False
    while True:
        with CpuMeter() as meter:
            time.sleep(sample)
        other = meter.to_dict()["other_busy_cores"]
        if other is None or other < threshold or time.perf_counter() >= deadline:
            if announced:
                print(f"[bench] other processes now use {other} cores; going on", flush=True)
            return other
        if not announced:
            print(f"[bench] other processes use {other} cores; waiting up to {max_wait:.0f} s for a quieter machine",
                  flush=True)  # fmt: skip
            announced = True


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _machine_busy_seconds() -> float | None:
    """Busy CPU time of the whole machine (all cores) since boot, from /proc/stat's first line."""
    try:
        fields = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
