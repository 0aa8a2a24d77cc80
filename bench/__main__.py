"""Every benchmark behind the adapter cost targets, one after another, then the table of targets.

    .venv/bin/python -m bench [--threads 2] [--quiet-wait 30] [--full | --quick]      (or: make bench)

Each script runs in its own process (no memory or thread state carried over) and writes its JSON
to bench/results/; the table at the end is read back from those files and written to
bench/results/summary.json and summary.md.

The default measures every target in about 25 minutes on 2 idle cores, about 12 of them the real
demo pipeline that the orchestration target is a fraction of (2 training-step rounds instead of 3,
the evaluation-throughput pass over the test set's first 128 sentences, no AdapterDrop). `--full`
runs every script at its own rounds (25 forward rounds), AdapterDrop (its quality part on the
trained demo, after `make demo`), and the orchestration overhead also on an unprepared machine and
against a running server (about 60 minutes). The table shows only what this run measured, with
the machine's load: the load average at the start and the end, and the most cores other processes
kept busy during any measurement. `--quick` runs the tiny shape only (no xlmr-base, no adapters
venv, no demo pipeline): a smoke test of the scripts in about 2 minutes, whose numbers say nothing
about the targets.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench.common import RESULTS_DIR, ROOT, machine_info, parser
from madx.fileutil import atomic_write_text


def plan(kind: str) -> list[tuple[str, list[str]]]:
    """(module, arguments) of each run, for kind "quick", "default" or "full"."""
    if kind == "quick":
        return [
            ("bench.ratios", ["--shapes", "tiny", "--no-adapterhub"]),
            ("bench.throughput", ["--shapes", "tiny", "--parts", "evaluation"]),
            ("bench.adapterdrop", ["--no-speed"]),
        ]
    if kind == "full":
        return [
            ("bench.ratios", ["--shapes", "xlmr-base", "--forward-rounds", "25"]),
            ("bench.swap", []),
            ("bench.throughput", ["--shapes", "xlmr-base", "--parts", "evaluation"]),
            ("bench.la_step", []),
            ("bench.adapterdrop", []),
            ("bench.overhead", ["--modes", "temporary-server", "first-run", "running-server"]),
        ]
    return [
        ("bench.ratios", ["--shapes", "xlmr-base", "--step-rounds", "2", "--forward-rounds", "15"]),
        ("bench.swap", []),
        ("bench.throughput", ["--shapes", "xlmr-base", "--parts", "evaluation", "--eval-rows", "128"]),
        ("bench.la_step", []),
        ("bench.overhead", []),
    ]


def _load(name: str, threads: int, since: float) -> dict[str, Any] | None:
    """A script's results, if this run wrote them (an older file is another run's: not shown)."""
    path = RESULTS_DIR / (f"{name}.json" if threads == 2 else f"{name}-threads{threads}.json")
    if name.startswith("overhead"):
        path = RESULTS_DIR / f"{name}.json"  # the flow picks its own threads
    try:
        if path.stat().st_mtime < since:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _get(data: dict[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def target_rows(threads: int, since: float, shape: str = "xlmr-base") -> list[dict[str, Any]]:
    """One row per target, from the results written since `since` (a time.time()): measured value,
    target, status, and where it came from."""
    ratios, swap = _load(f"ratios-{shape}", threads, since), _load("swap", threads, since)
    throughput, overhead = _load("throughput", threads, since), _load("overhead", threads, since)
    drop, la_step = _load("adapterdrop", threads, since), _load("la_step", threads, since)
    r = _get(ratios, "results", "shapes", shape) or {}

    def row(measure, value, fmt, target, ok, reference=None, note=""):
        return {"measure": measure, "value": value, "shown": "-" if value is None else fmt.format(value),
                "target": target, "status": "not measured" if value is None else ("reported" if target == "report" else
                                                                                   "met" if ok(value) else "NOT met"),
                "adapters_1_3_0": reference, "note": note}  # fmt: skip

    hub = _get(r, "adapterhub") or {}
    hub_t, hub_f = _get(hub, "training_step", "ratio"), _get(hub, "forward", "ratio")
    set_active = _get(swap, "results", "swap", "set_active", "median_ms")
    load = _get(swap, "results", "swap", "load_adapter_plus_set_active", "median_ms")
    speedup = _get(throughput, "results", "shapes", shape, "evaluation", "speedup_dynamic_over_padded")
    modes = _get(overhead, "results", "modes") or {}
    if _get(overhead, "results", "config") != "configs/demo.yaml":  # an older file, or another pipeline's
        modes = {}
    demo_fraction = _get(modes, "temporary-server", "overhead_fraction")
    other_modes = "; ".join(f"{label}: {modes[mode]['overhead_fraction']:.1%}" for mode, label in (
        ("first-run", "on a machine nothing was prepared on"), ("running-server", "against a running server"))
        if mode in modes)  # fmt: skip
    corpus_rate = _get(la_step, "results", "ours-corpus", "tokens_per_second")
    full_rate = _get(la_step, "results", "ours-full", "tokens_per_second")
    hub_rate = _get(la_step, "results", "adapters-full", "tokens_per_second")
    drop_rows = _get(drop, "results", "speed", "rows") or []
    drop_note = ", ".join(f"k={d['k']}: {d['speedup_over_k0']:.3f}x" for d in drop_rows)
    return [
        row("LA training step / full FT step", _get(r, "training_step", "ratio"), "{:.3f}", "<= 0.72",
            lambda v: v <= 0.72, None if hub_t is None else f"{hub_t:.3f}"),
        row("forward Stack(LA rf2 + NICE, TA rf16) / bare base", _get(r, "forward", "ratio"), "{:.3f}", "<= 1.12",
            lambda v: v <= 1.12, None if hub_f is None else f"{hub_f:.3f}"),
        row("swap the LA in a loaded model: set_active", set_active, "{:.2f} ms", "< 50 ms", lambda v: v < 50,
            note="" if load is None else f"load_adapter from disk + set_active: {load:.1f} ms"),
        row("eval throughput, dynamic padding / padded to max", speedup, "{:.2f}x", ">= 1.5x", lambda v: v >= 1.5),
        row("peak memory, LA training / full FT", _get(r, "peak_memory", "ratio"), "{:.3f}", "< 0.6",
            lambda v: v < 0.6, note="" if _get(r, "peak_memory", "rise_ratio") is None else
            f"rise over the loaded model: {r['peak_memory']['rise_ratio']:.3f}"),
        row("LA training step on the real encoder (e5-small, 8 x 64), corpus softmax", corpus_rate, "{:,.0f} tokens/s",
            "report", lambda v: True, None if hub_rate is None else f"{hub_rate:,.0f} tokens/s (full softmax)",
            note="" if full_rate is None else f"full softmax: {full_rate:,.0f} tokens/s" + (
                "" if hub_rate is None else f"; corpus softmax / adapters 1.3.0: {corpus_rate / hub_rate:.2f}x")),
        row("Prefect + MLflow / demo pipeline's wall time (as make demo runs it)", demo_fraction, "{:.1%}", "< 5%",
            lambda v: v < 0.05, note=other_modes),
        row("AdapterDrop: forward speed-up over k=0 (skip first k)", None if not drop_rows else drop_rows[-1]["speedup_over_k0"],
            "{:.3f}x at k=12", "report", lambda v: True, note=drop_note or "not part of the default run: --full"),
    ]  # fmt: skip


def _other_busy_cores(data: Any) -> float:
    """The most cores other processes kept busy in any measurement a results file records (its
    CpuMeter readings, wherever they sit), 0 for none."""
    if isinstance(data, dict):
        own = data.get("other_busy_cores")
        return max([own if isinstance(own, (int, float)) else 0.0, *(_other_busy_cores(v) for v in data.values())])
    if isinstance(data, list):
        return max([0.0, *(_other_busy_cores(v) for v in data)])
    return 0.0


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    kinds = p.add_mutually_exclusive_group()
    kinds.add_argument("--full", action="store_true", help="every script at its own rounds, AdapterDrop, every overhead mode (~60 min)")
    kinds.add_argument("--quick", action="store_true", help="tiny shape only: check that the scripts run (~2 min)")
    args = p.parse_args(argv)
    common = ["--threads", str(args.threads), "--quiet-wait", str(args.quiet_wait)]
    started, started_at, failed = time.perf_counter(), time.time(), []
    load_at_start = machine_info()["load_average_1_5_15"]
    for module, extra in plan("quick" if args.quick else "full" if args.full else "default"):
        print(f"\n######## {module} {' '.join(extra)}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", module, *common, *extra], cwd=ROOT).returncode
        print(f"######## {module}: exit {code}, {time.perf_counter() - t0:.0f} s", flush=True)
        if code:
            failed.append(module)
    if args.quick:
        print(f"\nquick run done in {time.perf_counter() - started:.0f} s; failed: {failed or 'none'}")
        return 1 if failed else 0

    rows = target_rows(args.threads, since=started_at)
    busy = max([0.0, *(_other_busy_cores(json.loads(path.read_text(encoding="utf-8"))) for path in RESULTS_DIR.glob("*.json")
                       if path.stat().st_mtime >= started_at)])
    lines = ["| measure | measured | target | status | adapters 1.3.0 | note |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['measure']} | {r['shown']} | {r['target']} | {r['status']} | {r['adapters_1_3_0'] or '-'} | "
              f"{r['note']} |" for r in rows]  # fmt: skip
    machine = machine_info()
    header = (f"{machine['date']}, {machine['cpu_model']}, {machine['usable_cores']} cores, {args.threads} torch "
              f"threads, git {machine['git_commit']}, xlmr-base shape; load average (1, 5, 15 min) {load_at_start} at "
              f"the start, {machine['load_average_1_5_15']} at the end; other processes kept at most {busy:.2f} cores "
              "busy during a measurement")  # fmt: skip
    table = "\n".join(lines)
    print(f"\n== targets ({header}); total {time.perf_counter() - started:.0f} s\n{table}")
    atomic_write_text(RESULTS_DIR / "summary.md", f"{header}\n\n{table}\n")
    atomic_write_text(RESULTS_DIR / "summary.json", json.dumps({"machine": machine, "threads": args.threads,
                                                                "rows": rows, "failed": failed}, indent=2) + "\n")  # fmt: skip
    print(f"[bench] wrote {(RESULTS_DIR / 'summary.md').relative_to(ROOT)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
