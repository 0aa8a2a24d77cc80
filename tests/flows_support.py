"""Helpers for the orchestration tests: a tiny pipeline YAML written by the test, and MLflow queries.

Nothing here starts Prefect: conftest's `prefect_api` is the one Prefect test API of the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

# Different text per language, so each corpus (and so each cache key) differs.
CORPUS_LINES = {
    "en": [
        "The quick brown fox jumps over the lazy dog near the river bank.",
        "Maria Schmidt works for the United Nations in Geneva.",
        "John Smith visited Nairobi and Lagos with the World Health Organization.",
        "All human beings are born free and equal in dignity and rights.",
    ],
    "sw": [
        "Kila mtu ana haki ya kuishi, uhuru na usalama wa nafsi yake.",
        "Watu wote wamezaliwa huru, hadhi na haki zao ni sawa.",
        "Amina Juma anafanya kazi Nairobi na Lagos.",
        "Kila mtu ana haki ya kupumzika na kupata starehe.",
    ],
    "de": [
        "Alle Menschen sind frei und gleich an Würde und Rechten geboren.",
        "Maria Schmidt arbeitet für die Vereinten Nationen in Genf.",
        "Jeder hat das Recht auf Leben, Freiheit und Sicherheit der Person.",
        "Niemand darf willkürlich festgenommen werden.",
    ],
    "yo": [
        "Gbogbo ènìyàn ni a bí ní òmìnira; iyì àti ẹ̀tọ́ kọ̀ọ̀kan sì dọ́gba.",
        "Kofi ń gbé ní Lagos pẹ̀lú ẹbí rẹ̀.",
        "Ẹnikẹ́ni ní ẹ̀tọ́ láti wà láàyè àti òmìnira.",
        "A kò gbọdọ̀ fi ẹnikẹ́ni ṣe ẹrú.",
    ],
}

# A sentence of the toy NER test set (conftest.write_toy_conll: its last template is in every test
# file), planted once in the Swahili corpus as a news page would carry it: the contamination check
# must leave it out of the sw adapter's training and say so (test_flows).
PLANTED_TEST_SENTENCES = {"sw": ["Nothing happened today."]}

LANGUAGE_TRAINING = {
    "steps": 6, "batch_size": 4, "max_length": 32, "learning_rate": 1e-2, "warmup_steps": 0,
    "eval_every": 3, "log_every": 2, "checkpoint_every": 0, "held_out_fraction": 0.1, "device": "cpu",
    # toy corpora of a few hundred tokens: no size check, no epoch cap (the real recipe is tested on its own)
    "min_corpus_tokens": 0, "max_epochs": 1000.0,
}
# Two seeds: every pipeline of the tests trains a task adapter per seed and reports a spread.
TASK_TRAINING = {"epochs": 2, "batch_size": 8, "learning_rate": 3e-2, "warmup_ratio": 0.0, "max_length": 48,
                 "device": "cpu", "seeds": [1, 2]}


def write_corpus(path: Path, language: str, repeat: int = 12) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{line} {i}" for i in range(repeat) for line in CORPUS_LINES[language]]
    lines += PLANTED_TEST_SENTENCES.get(language, [])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# One torch thread per stage: the suite runs on 2 cores with 2 pytest workers and 2 stages at once, and the
# default (all cores per stage) would put 8 threads on 2 cores.
RUNNER = {"kind": "threads", "max_workers": 2, "threads_per_stage": 1}


def pipeline_dict(base_dir: Path, ner_dir: Path, languages: dict[str, str], tests: dict[str, str] | None = None,
                  **overrides: Any) -> dict[str, Any]:
    """A pipeline config as a mapping: `languages` maps code -> corpus path (relative to the YAML
    or absolute); `tests` maps language -> CoNLL test path (default: the toy test set for every
    language but the source)."""
    tests = tests if tests is not None else {
        code: str(ner_dir / "test.conll") for code in languages if code != "en"}
    data: dict[str, Any] = {
        "name": "flows-test",
        "output_dir": "out",
        "base_model": {"name_or_path": str(base_dir)},
        "source_language": "en",
        "languages": {code: {"corpus": corpus} for code, corpus in languages.items()},
        "tasks": {"ner": {
            "train": {"format": "conll", "path": str(ner_dir / "train.conll")},
            "dev": {"format": "conll", "path": str(ner_dir / "dev.conll")},
            "test": {code: {"format": "conll", "path": path} for code, path in tests.items()},
        }},
        "language_adapter": dict(LANGUAGE_TRAINING),
        "task_adapter": dict(TASK_TRAINING),
        "evaluation": {"setups": ["madx", "en-la", "no-la"], "batch_size": 32, "max_length": 48},
        "runner": dict(RUNNER),  # a copy: tests edit their config mapping
    }
    data.update(overrides)
    return data


def write_pipeline(folder: Path, base_dir: Path, ner_dir: Path, codes=("en", "sw"), tests=None,
                   edit=None, **overrides: Any) -> Path:
    """Write corpora for `codes` under folder/corpora and a pipeline YAML at folder/pipeline.yaml
    (corpus paths relative to it). `edit(data)` may change the mapping before it is written."""
    folder.mkdir(parents=True, exist_ok=True)
    for code in codes:
        write_corpus(folder / "corpora" / f"{code}.txt", code)
    data = pipeline_dict(base_dir, ner_dir, {code: f"corpora/{code}.txt" for code in codes}, tests, **overrides)
    if edit:
        edit(data)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def new_pipeline(folder: Path, base: Path, ner: Path, store: Path, codes=("en", "sw"), adapters: Path | None = None,
                 **kwargs) -> Path:
    """Write corpora + pipeline.yaml in `folder`, give it a ready MLflow store and, optionally,
    already trained adapters (copied, so only the stage under test runs); return the YAML path."""
    config = write_pipeline(folder, base, ner, codes, **kwargs)
    out = folder / "out"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(store, out / "mlflow.db")
    if adapters is not None:
        shutil.copytree(adapters, out / "adapters")
    return config


def tracker_for(config_path: Path) -> Any:
    """The tasks.tracking.Tracker of the config's tracking store (`.client` is its MlflowClient)."""
    from flows.config import load_pipeline_config
    from flows.pipeline import tracking_target
    from tasks.tracking import Tracker

    return Tracker(tracking_target(load_pipeline_config(config_path)))


def all_runs(config_path: Path) -> list:
    tracker = tracker_for(config_path)
    return tracker.client.search_runs([tracker.experiment_id], max_results=5000)


def runs_where(runs: list, **tags: str) -> list:
    """Runs whose madx tags match, e.g. runs_where(runs, kind="language_adapter", language="sw")."""
    return [run for run in runs if all(run.data.tags.get(f"madx.{key}") == value for key, value in tags.items())]


def children(runs: list, parent_id: str) -> list:
    return [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent_id]


def descendants(pid: int) -> list[tuple[int, str]]:
    """Child processes of `pid`, recursively, as (pid, start time) (Linux /proc; empty elsewhere)."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in map(int, children.read_text().split()):
            found += [(child, start_time(child)), *descendants(child)]
    return found


def start_time(pid: int) -> str:
    try:  # field 22 of /proc/PID/stat: with the pid, it names one process even if the pid is reused
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


# -- running `madx` -------------------------------------------------------------------------------
MADX = Path(sys.executable).with_name("madx")
MADX_COMMAND = [str(MADX)] if MADX.exists() else [sys.executable, "-m", "cli.main"]


def run_madx(capfd, monkeypatch, *argv) -> SimpleNamespace:
    """`madx ARGV...` through the console script's entry point, in this process (what a subprocess
    adds, ~10 s of imports, proves nothing more unless the test is about processes or signals)."""
    from prefect.settings import PREFECT_API_URL

    from cli import main as cli

    capfd.readouterr()
    monkeypatch.setattr(sys, "argv", ["madx", *map(str, argv)])
    if PREFECT_API_URL.value():  # the session's test API: the command then starts no server of its own
        monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    _log_handlers_to_current_stderr()
    code = 0
    try:
        with torch_threads_kept():
            cli.main()
    except SystemExit as exited:
        code = exited.code
    out, err = capfd.readouterr()
    return SimpleNamespace(code=code, out=out, err=err, errors=[line for line in err.splitlines() if line.startswith("error:")])


def _log_handlers_to_current_stderr() -> None:
    """Prefect's console log handler keeps the stderr of the first flow of the process; in a test
    session that is an earlier test's capture, closed since. Point it at this test's stderr."""
    import logging

    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    for handler in {handler for logger in loggers for handler in logger.handlers}:
        if isinstance(handler, logging.StreamHandler) and hasattr(handler, "console"):
            handler.stream = handler.console.file = sys.stderr


def subprocess_env(prefect_api: str | None) -> dict[str, str]:
    """The environment of a `madx` subprocess: the session's Prefect API (None: the command starts its
    own temporary server, as in a terminal), one compute thread, offline, no tracking server."""
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    else:
        env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


@contextlib.contextmanager
def torch_threads_kept():
    """Flows size torch's (process-wide) thread pool for their stages; give it back afterwards."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)

