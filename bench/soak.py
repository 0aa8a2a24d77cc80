"""Soak: `add-language` for ten UDHR languages in a row, in one process, against one tracking store.

    .venv/bin/python -m bench.soak [--steps 20] [--languages de es ...] [--threads 1]

What a long-lived process (a `madx serve` worker running one scheduled language after another)
would do: one tiny pipeline (a small base model built from the bundled UDHR text, English NER task
adapter), then the `add_language` flow once per language on its bundled UDHR text, with its
synthetic NER test set where one exists. After each language (and a `gc.collect()`) it records the
process's resident memory, its peak, open file descriptors, threads and the size of the MLflow
store. At the end it lists every MLflow run that is not FINISHED. Prints the numbers and writes
them to bench/results/soak.json; exits 1 if a language failed or a run is not FINISHED.

The pipeline runs under `.cache/soak/` (deleted at the start, so every soak starts from an empty
store), with its own Prefect home there (a temporary local Prefect server, as `madx` starts one).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = ("de", "es", "fr", "ha", "id", "it", "mi", "qu", "sw", "yo")  # every bundled UDHR text but en
RESULTS = ROOT / "bench" / "results" / "soak.json"


def main() -> int:
    args = _parser().parse_args()
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the table, not every training step
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the soak's own store, always

    import torch

    from cli.pipeline import quiet_environment

    torch.set_num_threads(args.threads)
    quiet_environment()
    from flows.pipeline import add_language, run_flow

    config = write_config(work, args.steps)
    before = sample(work)
    print(f"soak: {len(args.languages)} languages, {args.steps} LA steps each, store {work / 'out' / 'mlflow.db'}")
    print(f"start: rss {before['rss_mb']:.0f} MB, {before['fds']} fds, {before['threads']} threads")
    print(f"{'language':<9}{'seconds':>9}{'rss MB':>9}{'+MB':>8}{'peak MB':>9}{'fds':>6}{'threads':>8}{'store MB':>9}  result")
    rows, previous = [], before["rss_mb"]
    for code in args.languages:
        test = ROOT / "data" / "ner" / code / "test.conll"
        started = time.perf_counter()
        try:
            summary = run_flow(add_language, config, code=code, corpus=str(ROOT / "data" / "udhr" / f"{code}.txt"),
                               test={"ner": str(test)} if test.is_file() else {})
            result = "ok" + ("" if test.is_file() else " (no NER test set)")
            f1 = {row["setup"]: row["f1"] for row in summary.get("rows", [])}
        except Exception as error:  # noqa: BLE001 - a soak records failures and goes on
            result, f1 = f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:200]}", {}
        seconds = time.perf_counter() - started
        gc.collect()
        row = {"language": code, "seconds": seconds, "result": result, "f1": f1, **sample(work)}
        row["rss_growth_mb"] = row["rss_mb"] - previous
        previous = row["rss_mb"]
        rows.append(row)
        print(f"{code:<9}{seconds:>9.1f}{row['rss_mb']:>9.0f}{row['rss_growth_mb']:>+8.1f}{row['peak_rss_mb']:>9.0f}"
              f"{row['fds']:>6}{row['threads']:>8}{row['store_mb']:>9.1f}  {result}", flush=True)

    not_finished = runs_not_finished(config)
    growth_after_first = rows[-1]["rss_mb"] - rows[0]["rss_mb"]
    per_language = growth_after_first / max(len(rows) - 1, 1)
    print(f"\nrss: {before['rss_mb']:.0f} MB at start, {rows[0]['rss_mb']:.0f} MB after the first language (base model "
          f"built, en and task adapters trained), {rows[-1]['rss_mb']:.0f} MB after the last: "
          f"{growth_after_first:+.1f} MB over the last {len(rows) - 1} languages ({per_language:+.2f} MB per language)")
    print(f"open fds {rows[0]['fds']} -> {rows[-1]['fds']}, threads {rows[0]['threads']} -> {rows[-1]['threads']}, "
          f"store {rows[0]['store_mb']:.1f} -> {rows[-1]['store_mb']:.1f} MB")
    runs_total = len(all_runs(config))
    if not_finished:
        print(f"{len(not_finished)} of {runs_total} MLflow runs not FINISHED:")
        for run in not_finished:
            print(f"  {run['name']}: {run['status']} {run['error']}")
    else:
        print(f"all {runs_total} MLflow runs FINISHED")

    results = {
        "benchmark": "soak",
        "machine": machine(args.threads),
        "settings": {"languages": list(args.languages), "la_steps": args.steps, "threads": args.threads},
        "start": before,
        "languages": rows,
        "rss_growth_after_first_language_mb": growth_after_first,
        "rss_growth_per_language_mb": per_language,
        "mlflow_runs": runs_total,
        "runs_not_finished": not_finished,
        "failed_languages": [row["language"] for row in rows if not row["result"].startswith("ok")],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 1 if not_finished or results["failed_languages"] else 0


def write_config(work: Path, steps: int) -> Path:
    """A tiny pipeline over the bundled data: built base model, English only, one NER task."""
    import yaml

    udhr, ner = ROOT / "data" / "udhr", ROOT / "data" / "ner"
    config = {
        "name": "madx-soak",
        "output_dir": str(work / "out"),
        "base_model": {"build": {
            "corpora": {code: str(udhr / f"{code}.txt") for code in ("en", "de", "es", "sw")},
            "spec": {"vocab_size": 1000, "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
                     "max_length": 64, "steps": 20, "batch_size": 16, "learning_rate": 2e-3, "warmup_steps": 5,
                     "seed": 0, "device": "cpu"},
        }},
        "source_language": "en",
        "languages": {"en": {"corpus": str(udhr / "en.txt")}},
        "tasks": {"ner": {"train": {"format": "conll", "path": str(ner / "en" / "train.conll")},
                          "dev": {"format": "conll", "path": str(ner / "en" / "dev.conll")}}},
        "language_adapter": {"steps": steps, "batch_size": 16, "max_length": 64, "learning_rate": 2e-3,
                             "warmup_steps": 0, "eval_every": steps, "checkpoint_every": 10, "log_every": 10,
                             "held_out_fraction": 0.1, "seed": 42, "device": "cpu"},
        "task_adapter": {"epochs": 1, "batch_size": 32, "max_length": 64, "learning_rate": 5e-3, "device": "cpu"},
        "evaluation": {"setups": ["madx", "en-la", "no-la"], "batch_size": 64, "max_length": 64},
        "runner": {"kind": "threads", "max_workers": 2},
    }
    path = work / "soak.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def sample(work: Path) -> dict[str, Any]:
    """This process's memory, descriptors and threads; the tracking store's size."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    store = work / "out" / "mlflow.db"
    return {
        "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
        "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024,
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": int(status["Threads"]),
        "store_mb": store.stat().st_size / 2**20 if store.exists() else 0.0,
    }


def all_runs(config: Path) -> list:
    from flows.config import load_pipeline_config
    from flows.pipeline import tracking_target
    from tasks.tracking import Tracker

    tracker = Tracker(tracking_target(load_pipeline_config(config)))
    return tracker.client.search_runs([tracker.experiment_id], max_results=50000)


def runs_not_finished(config: Path) -> list[dict[str, str]]:
    return [{"name": run.info.run_name, "status": run.info.status, "error": run.data.tags.get("madx.error", "")[:300]}
            for run in all_runs(config) if run.info.status != "FINISHED"]


def machine(threads: int) -> dict[str, Any]:
    import torch
    import transformers

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": threads, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "load_average": os.getloadavg(), "git_commit": commit,
            "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--languages", nargs="+", default=list(LANGUAGES), help="UDHR codes with a data/udhr/<code>.txt.")
    parser.add_argument("--steps", type=int, default=20, help="Language-adapter training steps per language.")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads.")
    parser.add_argument("--workdir", default=str(ROOT / ".cache" / "soak"), help="Pipeline folder (deleted first).")
    return parser


if __name__ == "__main__":
    sys.exit(main())
