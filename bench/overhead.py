"""How much of the demo pipeline's wall time goes to orchestration (Prefect) and tracking (MLflow).

    .venv/bin/python -m bench.overhead [--config configs/demo.yaml] [--modes ...] [--plain]

The pipeline of `--config` (default: the demo, what `make demo` runs) runs once through the real flow,
called the way `madx run` calls it (`cli.pipeline.flow_command`), in a fresh process, on a copy of the config with a
fresh output folder (so every stage really trains) and a sequential runner (threads, max_workers
1: stages never overlap, so their times add up). Inside that process every call is timed:
  compute     the domain functions the stages call (build_base_model, train_language_adapter,
              train_task_adapter, evaluate_zero_shot, write_report), less the tracking calls made
              from inside them (their progress callbacks log metrics);
  mlflow      every MlflowClient and Tracker call (runs, params, metrics, artifacts, queries,
              opening the store), plus `import mlflow`;
  prefect     the rest of the flow call (the temporary local Prefect API server it starts, flow
              and task runs, states, futures, the pipeline's cache checks), plus `import prefect`.
Overhead = (mlflow + prefect) / total, total = the process's wall time from its start to the
flow's return (interpreter start and torch/transformers imports included). `startup` is the part
a longer pipeline does not pay more of: the two imports, the flow call's time before its body runs
(waiting for the temporary API server if it is not up yet, creating the flow run) and opening the MLflow store (MLflow caches it per URI;
the first open of a fresh output folder creates and migrates the SQLite database).

Three modes (`--modes`, default temporary-server; each a fresh process and output folder):
  temporary-server  what `make demo` does: no PREFECT_API_URL, so the CLI starts Prefect's temporary
                    API server (first thing, in a child process: flows/api_server.py) and the flow
                    waits for it if it is not up yet; Prefect's database and the MLflow store
                    template exist (`madx prepare`, which `make setup` runs, is run untimed first);
  first-run         the same on a machine where nothing was prepared: a new Prefect home (the
                    server migrates its database) and no MLflow store template;
  running-server    a Prefect server started beforehand as `madx server` starts one (loopback, no
                    UI; its start is not timed) and PREFECT_API_URL pointing at it.
Prefect's home is `.cache/bench/prefect-home` and the MLflow template `.cache/bench/madx-cache`
(both persist between bench runs, like a user's ~/.prefect and ~/.cache/madx). Torch threads are
what the flow picks (cores // max_workers), so `--threads` does not apply here. Results:
bench/results/overhead.json for the demo, overhead-<config name>.json for another config.

`--plain` also runs the same stages as plain function calls (no Prefect, no MLflow) in another
fresh process, as a cross-check: its wall time should be close to `compute` (any gap is
interference, e.g. the Prefect server's CPU use, plus noise).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bench.common import ROOT, CACHE_DIR, CpuMeter, parser, wait_for_quiet, write_results

RESULT_PREFIX = "BENCH_RESULT "
DEFAULT_CONFIG = ROOT / "configs" / "demo.yaml"
TARGET = 0.05
# Where the stages' work is done: (module, function). The stages import them at call time, so
# replacing the module attribute reaches every call; a function never called is reported.
DOMAIN_FUNCTIONS = (
    ("language_adapters.base_model", "build_base_model"),
    ("language_adapters.packaged_model", "packaged_model"),
    ("language_adapters.mlm_head", "warm_up_mlm_head"),
    ("language_adapters.train", "train_language_adapter"),
    ("task_adapters.train", "train_task_adapter"),
    ("evaluation.zero_shot", "evaluate_zero_shot"),
    ("evaluation.report", "write_report"),
)


class Ledger:
    """Exclusive wall time per category: a call's time minus the time of instrumented calls nested
    in it (per thread), so a metric logged from inside a training step counts as mlflow, not compute."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.local = threading.local()
        self.seconds: dict[str, float] = defaultdict(float)
        self.by_label: dict[str, float] = defaultdict(float)
        self.first: dict[str, float] = {}  # the first call's exclusive time, per label
        self.calls: Counter[str] = Counter()
        self.marks: dict[str, float] = {}

    def wrap(self, category: str, fn, label: str | None = None):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            stack = self.local.__dict__.setdefault("stack", [])
            nested = [0.0]
            stack.append(nested)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                stack.pop()
                if stack:
                    stack[-1][0] += elapsed
                with self.lock:
                    self.seconds[category] += elapsed - nested[0]
                    self.by_label[label or category] += elapsed - nested[0]
                    self.first.setdefault(label or category, elapsed - nested[0])
                    self.calls[label or category] += 1

        return timed

    def mark_first(self, name: str, fn):
        @functools.wraps(fn)
        def marked(*args, **kwargs):
            self.marks.setdefault(name, time.perf_counter())
            return fn(*args, **kwargs)

        return marked


def _wrap_public_methods(ledger: Ledger, cls: type, category: str) -> None:
    for name, member in list(vars(cls).items()):
        if callable(member) and (not name.startswith("_") or name == "__init__") and not isinstance(member, type):
            setattr(cls, name, ledger.wrap(category, member, f"{category}:{cls.__name__}.{name}"))


# -- the child processes -------------------------------------------------------------------------
def child_flow(pipeline_yaml: Path, process_start: float) -> dict[str, Any]:
    from cli.pipeline import flow_command

    # As `madx run` does it: Prefect's temporary API server (when no PREFECT_API_URL is set) starts
    # first, while this process imports the rest; the flow runs under the CLI's progress display.
    call_flow = flow_command()
    ledger = Ledger()
    started = time.perf_counter()
    import mlflow  # noqa: F401
    from mlflow.tracking import MlflowClient

    import_mlflow = time.perf_counter() - started
    started = time.perf_counter()
    import prefect  # noqa: F401

    import_prefect = time.perf_counter() - started
    import importlib

    from flows import pipeline
    from tasks.tracking import Tracker

    for module_name, function in DOMAIN_FUNCTIONS:
        module = importlib.import_module(module_name)
        setattr(module, function, ledger.wrap("compute", getattr(module, function), f"compute:{function}"))
    _wrap_public_methods(ledger, MlflowClient, "mlflow")
    _wrap_public_methods(ledger, Tracker, "mlflow")
    flow = pipeline.madx_pipeline
    flow.fn = ledger.mark_first("body_started", flow.fn)  # run_flow's with_options copies the patched fn

    with CpuMeter() as meter:
        call_started = time.perf_counter()
        summary = call_flow(flow, pipeline_yaml)
        call_ended = time.perf_counter()
    missed = [f for _, f in DOMAIN_FUNCTIONS if ledger.calls[f"compute:{f}"] == 0]
    if missed:
        raise RuntimeError(f"instrumentation missed {missed}: the stages no longer call them through their modules")
    flow_call = call_ended - call_started
    compute, mlflow_calls = ledger.seconds["compute"], ledger.seconds["mlflow"]
    body_started = ledger.marks.get("body_started")
    return {
        "total_seconds": call_ended - process_start,
        "flow_call_seconds": flow_call,
        "compute_seconds": compute,
        "mlflow_call_seconds": mlflow_calls,
        "prefect_in_flow_seconds": flow_call - compute - mlflow_calls,
        "import_mlflow_seconds": import_mlflow,
        "import_prefect_seconds": import_prefect,
        "before_flow_body_seconds": None if body_started is None else body_started - call_started,
        # MLflow caches the store per URI: the first client opens (here: creates and migrates) the database
        "mlflow_store_open_seconds": ledger.first.get("mlflow:MlflowClient.__init__", 0.0),
        "calls": {label: {"calls": n, "seconds": round(ledger.by_label[label], 3)} for label, n in sorted(ledger.calls.items())},
        "rows": len(summary.get("rows", [])),
        "cpu": meter.to_dict(),
    }


def child_plain(pipeline_yaml: Path, process_start: float) -> dict[str, Any]:
    """The flow's stages as plain calls, in the flow's order and thread settings, no tracking."""
    import torch

    from evaluation.report import write_report
    from evaluation.zero_shot import evaluate_zero_shot
    from flows.config import load_pipeline_config
    from flows.pipeline import base_model_name
    from language_adapters.base_model import build_base_model
    from language_adapters.mlm_head import warm_up_mlm_head
    from language_adapters.train import train_language_adapter
    from tagging.scheme import LabelSet
    from task_adapters.train import train_task_adapter

    config = load_pipeline_config(pipeline_yaml)
    out, cores = Path(config.output_dir), os.cpu_count() or 1
    with CpuMeter() as meter:
        started = time.perf_counter()
        torch.set_num_threads(cores)
        if config.base_model.build:
            base = str(out / "base_model")
            build = config.base_model.build
            build_base_model(build.corpora, base, build.spec, cache_dir=out / "cache")
        else:
            base = base_model_name(config)  # a packaged model: its converted folder
        head = None
        if config.base_model.mlm_head == "warmup":
            corpora = {code: config.corpus(code) for code, language in config.languages.items() if not language.adapter}
            head = warm_up_mlm_head(base, corpora, out / "mlm_head", config.head_warmup,
                                    cache_dir=out / "cache").head_file
        torch.set_num_threads(max(1, cores // config.runner.max_workers))
        languages = {}
        for code in sorted(config.languages):
            if config.languages[code].adapter:
                languages[code] = config.languages[code].adapter
                continue
            folder = out / "adapters" / "language" / code
            train_language_adapter(base, code, config.corpus(code), folder, config.language_training(),
                                   checkpoint_dir=out / "checkpoints" / "language" / code, cache_dir=out / "cache",
                                   mlm_head=head)  # fmt: skip
            languages[code] = str(folder)
        rows = []
        for name in sorted(config.tasks):
            task = config.tasks[name]
            folder = out / "adapters" / "task" / name
            seed = config.seed_runs()[0].task_seed  # one task adapter: the first run's
            train_task_adapter(base, name, languages[config.source_language], config.labeled(name, "train"),
                               config.labeled(name, "dev"), folder, config.task_training(seed),
                               label_set=LabelSet(tuple(task.labels)) if task.labels else None)  # fmt: skip
            tests = {(name, code): config.labeled(name, "test", code) for code in config.target_languages(name)}
            rows += evaluate_zero_shot(base, {name: str(folder)}, languages, tests, config.evaluation.setups,
                                       config.evaluation.batch_size, config.evaluation.max_length)  # fmt: skip
        write_report(rows, out / "report", title=f"{config.name}: zero-shot transfer")
        ended = time.perf_counter()
    return {"total_seconds": ended - process_start, "stages_seconds": ended - started, "rows": len(rows),
            "cpu": meter.to_dict()}  # fmt: skip


# -- the parent ----------------------------------------------------------------------------------
def bench_copy(config_path: Path, folder: Path) -> Path:
    """The config with every path absolute, a fresh output folder and a sequential runner."""
    from flows.config import load_pipeline_config

    data = load_pipeline_config(config_path).model_dump(mode="json", exclude={"source_file"})
    data["output_dir"] = str(folder / "out")
    data["tracking_uri"] = None
    data["runner"] = {"kind": "threads", "max_workers": 1}
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "MLFLOW_TRACKING"))}
    env.update({
        "PREFECT_HOME": str(CACHE_DIR / "prefect-home"),
        "MADX_CACHE_DIR": str(CACHE_DIR / "madx-cache"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # a busy 2-core machine nears the 20 s default
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    })  # fmt: skip
    return env


def run_child(kind: str, config_path: Path, quiet_wait: float, api_url: str | None = None,
              first_run: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-overhead-{kind}-") as tmp:
        pipeline_yaml = bench_copy(config_path, Path(tmp))
        env = child_env() if api_url is None else {**child_env(), "PREFECT_API_URL": api_url}
        if first_run:  # nothing prepared: a new Prefect database, no MLflow store template
            env.update({"PREFECT_HOME": str(Path(tmp) / "prefect-home"), "MADX_CACHE_DIR": str(Path(tmp) / "cache")})
        wait_for_quiet(quiet_wait)
        command = [sys.executable, "-m", "bench.overhead", "--child", kind, "--pipeline", str(pipeline_yaml)]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - started
    lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"the {kind} run failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return {**json.loads(lines[-1][len(RESULT_PREFIX) :]), "process_wall_seconds": wall}


@contextlib.contextmanager
def prefect_server() -> Iterator[str]:
    """A Prefect server as `madx server` runs one (loopback, no UI), same PREFECT_HOME; yields its API URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prefect = str(Path(sys.executable).with_name("prefect"))
    command = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    process = subprocess.Popen(command, cwd=ROOT, env={**child_env(), "PREFECT_CLI_PROMPT": "false"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.perf_counter() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"prefect server start exited ({process.returncode}) or never answered on {api}")
            time.sleep(0.5)
        yield api
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def summarize_flow(flow: dict[str, Any]) -> dict[str, Any]:
    total = flow["total_seconds"]
    mlflow = flow["mlflow_call_seconds"] + flow["import_mlflow_seconds"]
    prefect = flow["prefect_in_flow_seconds"] + flow["import_prefect_seconds"]
    startup = (flow["import_mlflow_seconds"] + flow["import_prefect_seconds"] + (flow["before_flow_body_seconds"] or 0)
               + flow["mlflow_store_open_seconds"])  # fmt: skip
    return {
        "flow": flow,
        "mlflow_seconds": mlflow,
        "prefect_seconds": prefect,
        "startup_seconds": startup,
        "overhead_seconds": mlflow + prefect,
        "overhead_fraction": (mlflow + prefect) / total,
        "overhead_fraction_without_startup": (mlflow + prefect - startup) / (total - startup),
    }


def print_mode(r: dict[str, Any]) -> None:
    flow = r["flow"]
    print(f"   total (process start -> flow returned) {flow['total_seconds']:7.1f} s   (process wall incl. interpreter "
          f"start/exit {flow['process_wall_seconds']:.1f} s)")  # fmt: skip
    print(f"   compute (stage functions)              {flow['compute_seconds']:7.1f} s")
    print(f"   MLflow  {r['mlflow_seconds']:7.1f} s  (calls {flow['mlflow_call_seconds']:.1f} s, of which opening the new "
          f"store {flow['mlflow_store_open_seconds']:.1f} s; import {flow['import_mlflow_seconds']:.1f} s)")  # fmt: skip
    print(f"   Prefect {r['prefect_seconds']:7.1f} s  (flow call less compute and MLflow {flow['prefect_in_flow_seconds']:.1f} "
          f"s, of which before the flow body ran {flow['before_flow_body_seconds'] or 0:.1f} s; import "
          f"{flow['import_prefect_seconds']:.1f} s)")  # fmt: skip
    print(f"   overhead (MLflow + Prefect) / total: {100 * r['overhead_fraction']:.1f} %  (target < {TARGET:.0%}); "
          f"without the one-off startup ({r['startup_seconds']:.1f} s): {100 * r['overhead_fraction_without_startup']:.1f} "
          f"%; other processes used {flow['cpu']['other_busy_cores']} cores", flush=True)  # fmt: skip


MODES = {
    "temporary-server": "what `make demo` does: no PREFECT_API_URL, the CLI starts Prefect's temporary API server "
                        "(prepared: Prefect's database and the MLflow store template exist)",
    "first-run": "the same on a machine nothing was prepared on (a new Prefect database, no MLflow store template)",
    "running-server": "PREFECT_API_URL of a Prefect server started beforehand, as `madx server` runs one (not timed)",
}


def prepare() -> None:
    """`madx prepare` (what `make setup` runs), untimed, in the bench's Prefect home and cache."""
    command = [sys.executable, "-m", "cli.main", "prepare"]
    result = subprocess.run(command, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"madx prepare failed (exit {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="pipeline YAML (default: configs/demo.yaml)")
    p.add_argument("--modes", nargs="+", choices=list(MODES), default=["temporary-server"],
                   help="temporary-server (what make demo does; the default), first-run (the same, nothing prepared), "
                        "running-server (as with madx server)")  # fmt: skip
    p.add_argument("--plain", action="store_true", help="also run the stages as plain calls (a cross-check)")
    p.add_argument("--child", choices=("flow", "plain"), help=argparse.SUPPRESS)
    p.add_argument("--pipeline", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        process_start = time.perf_counter() - _seconds_since_process_start()
        result = (child_flow if args.child == "flow" else child_plain)(args.pipeline, process_start)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return result

    config_path = args.config.resolve()
    shown = config_path.relative_to(ROOT) if config_path.is_relative_to(ROOT) else config_path
    results: dict[str, Any] = {"config": str(shown), "runner": "threads, max_workers 1 (sequential)",
                               "target": f"< {TARGET:.0%}", "modes": {}}  # fmt: skip
    for mode in args.modes:
        print(f"== orchestration overhead, {shown} through the flow (sequential runner, fresh output folder); "
              f"{mode}: {MODES[mode]}", flush=True)  # fmt: skip
        if mode == "running-server":
            with prefect_server() as api:
                r = summarize_flow(run_child("flow", config_path, args.quiet_wait, api_url=api))
        else:
            if mode == "temporary-server":
                prepare()
            r = summarize_flow(run_child("flow", config_path, args.quiet_wait, first_run=mode == "first-run"))
        results["modes"][mode] = {"how": MODES[mode], **r}
        print_mode(r)
    if args.plain:
        print("== the same stages as plain function calls (cross-check)", flush=True)
        plain = results["plain"] = run_child("plain", config_path, args.quiet_wait)
        computes = ", ".join(f"{m} {r['flow']['compute_seconds']:.1f} s" for m, r in results["modes"].items())
        print(f"   stages {plain['stages_seconds']:.1f} s (the flows' compute: {computes}); total "
              f"{plain['total_seconds']:.1f} s; other processes used {plain['cpu']['other_busy_cores']} cores", flush=True)  # fmt: skip
    write_results("overhead" if shown == DEFAULT_CONFIG.relative_to(ROOT) else f"overhead-{Path(shown).stem}", results)
    return results


def _seconds_since_process_start() -> float:
    """How long this process has existed (from /proc/self/stat), so imports before main() count."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of the whole line: starttime, in clock ticks since boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, IndexError, ValueError):
        return 0.0


if __name__ == "__main__":
    main()
