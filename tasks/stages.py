"""The pipeline's stages as Prefect tasks. Each one calls a domain function, records its run in
MLflow, and returns a small record (paths, hashes, ids), never a model.

An adapter is not retrained when its folder already holds one built from the same cache key
(base model identity + hyperparameters + data fingerprint) unless `force` is set.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from flows.config import PipelineConfig
from language_adapters.corpus import CorpusSource
from madx.errors import AdapterLoadError, DataError, MadxError
from madx.fileutil import sha256_of_directory, sha256_of_file
from madx.seeding import SEEDING_VERSION
from tasks import progress, tracking
from tasks.tracking import Tracker, TrackingTarget, TrackingUnavailable

TRACKING_RETRIES = 2


def transient_only(task_, task_run, state) -> bool:
    """Retry on failures that can pass by themselves (I/O hiccups, a locked SQLite store), never on
    a user error (bad data, bad config): those fail the same way every time."""
    try:
        state.result()
    except TrackingUnavailable:  # the store did not answer: a user error only if it never does
        return True
    except MadxError:
        return False
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return False
    except (ConnectionError, TimeoutError, OSError):
        return True
    except Exception as error:  # noqa: BLE001 - classify by message: sqlite/sqlalchemy lock errors
        return "database is locked" in str(error) or "Connection" in type(error).__name__
    return False


@dataclass(frozen=True)
class AdapterRecord:
    """What a training stage hands on: where the adapter is, its hash, the run that made it."""

    name: str
    path: str
    sha256: str
    run_id: str | None
    reused: bool
    metrics: dict[str, Any] = field(default_factory=dict)


def _logger():
    try:
        return get_run_logger()
    except Exception:  # called outside a Prefect run (tests, notebooks)
        return logging.getLogger("madx")


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    return sha256_of_directory(path) if path.is_dir() else sha256_of_file(path)


def base_model_identity(base_model: str) -> str:
    """A local folder is identified by the content of its files (so a copied or moved output folder,
    with its built base, reuses every adapter); a hub name by the name itself."""
    folder = Path(base_model)
    if not folder.is_dir():
        return base_model
    return _hash([(path.name, _content_digest(path)) for path in sorted(folder.iterdir()) if path.is_file()])


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _content_digest(path: Path) -> str:
    """sha256 of a file, remembered for this process by path, size and modification time (the base
    model's weights are hashed once per run, not once per stage)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_of_file(path)
    return _DIGESTS[key]


def corpus_fingerprint(source: CorpusSource) -> str:
    if source.kind == "mix":
        return _hash([corpus_fingerprint(part) for part in source.parts])
    if source.kind == "text":
        if not Path(source.location).exists():
            raise DataError(f"corpus file {source.location} does not exist")
        return _file_digest(Path(source.location))
    if source.kind == "disk":
        state = Path(source.location) / "state.json"
        return _file_digest(state) if state.exists() else _file_digest(Path(source.location))
    cap = f" max={source.max_documents}" if source.max_documents else ""
    if source.kind == "bible":  # edition + pinned wheel + cleaning version, so a text change retrains
        from language_adapters.bible import bible_fingerprint

        return bible_fingerprint(source.location) + cap
    return source.describe() + cap


def _reusable(folder: Path, cache_key: str) -> bool:
    from madx.io import read_adapter_config

    try:
        return read_adapter_config(folder)["metadata"].get("cache_key") == cache_key
    except MadxError:
        return False


def _check_reused(folder: Path, kind: str, cache_key: str, target: TrackingTarget) -> None:
    """An adapter about to be reused is still what was tracked: the folder's sha256 equals the one
    logged by the run that made it (when the store has that run), and its files are complete."""
    from madx.io import check_adapter_folder

    tracked = Tracker(target).tracked_adapter(folder, kind, cache_key)
    if tracked is not None:
        actual = sha256_of_directory(folder)
        if actual != tracked.sha256:
            raise AdapterLoadError(
                f"adapter folder {folder} changed after MLflow run {tracked.run_id} tracked it: its sha256 is "
                f"{actual[:12]}..., the tracked one {tracked.sha256[:12]}...; restore it from that run's "
                "`adapter` artifact, or retrain it with --force"
            )
    check_adapter_folder(folder)


def language_adapter_folder(config: PipelineConfig, language: str, seed: int | None = None) -> Path:
    """adapters/language/<code>, or adapters/language/<code>/seed-<n> for adapters trained per seed."""
    folder = Path(config.output_dir) / "adapters" / "language" / language
    return folder if seed is None else folder / f"seed-{seed}"


def task_adapter_folder(config: PipelineConfig, task: str, seed: int) -> Path:
    return Path(config.output_dir) / "adapters" / "task" / task / f"seed-{seed}"


def _record(name: str, folder: Path, run_id: str | None, reused: bool) -> AdapterRecord:
    from madx.io import read_adapter_config

    metrics = read_adapter_config(folder).get("metadata", {}).get("metrics", {})
    return AdapterRecord(name, str(folder), sha256_of_directory(folder), run_id, reused, metrics)


def _flag(tracker: Tracker, run_id: str, label: str, flags: list[str]) -> None:
    """Warnings that do not fail a stage: in the log and as the run's `madx.flags` tag (the report reads it)."""
    if flags:
        for flag in flags:
            _logger().warning("%s: %s", label, flag)
        tracker.set_tags(run_id, {tracking.FLAGS: "; ".join(flags)})


def _use_stage_threads(config: PipelineConfig) -> None:
    """Compute with the thread count the config sets (`runner.threads_per_stage`): on some BLAS
    builds the thread count changes the order of float sums, so it must not follow the load."""
    import torch

    torch.set_num_threads(config.runner.stage_threads())


def _event_logger(tracker: Tracker, run_id: str, label: str, total: int | None):
    logger = _logger()

    def on_event(kind: str, step: int, metrics: dict[str, float]) -> None:
        tracker.log_metrics(run_id, metrics, step=step)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k in ("train_loss", "mlm_loss", "dev_f1", "perplexity"))
        progress.report(label, step, total, shown)
        logger.info("%s: %s %s%s %s", label, kind, step, f"/{total}" if total else "", shown)

    return on_event


@task(name="build-base-model", retries=TRACKING_RETRIES, retry_condition_fn=transient_only)
def build_base_model_task(config: PipelineConfig, target: TrackingTarget, parent_run_id: str) -> str:
    """Build (or reuse) the configured small base model; returns its folder."""
    _use_stage_threads(config)
    from language_adapters.base_model import build_base_model

    build = config.base_model.build
    out = Path(config.output_dir) / "base_model"
    corpora = build.corpora
    tracker = Tracker(target)
    with tracker.run("base model", {tracking.KIND: "base_model", tracking.CONFIG_HASH: config.fingerprint()}, parent_run_id) as run_id:
        tracker.log_params(run_id, {"spec": build.spec, "corpora": {k: str(v) for k, v in build.corpora.items()}})
        spec = build.base_model_spec()
        result = build_base_model(corpora, out, spec, on_event=_event_logger(tracker, run_id, "base model", spec.steps),
                                  cache_dir=Path(config.output_dir) / "cache")
        final = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
        tracker.log_metrics(run_id, final, step=spec.steps)  # the curves' last step, not 0
        tracker.set_tags(run_id, {"madx.cached": result.cached, tracking.BASE_MODEL: str(out)})
    _logger().info("base model %s %s", "reused from" if result.cached else "built in", out)
    return str(out)


@dataclass(frozen=True)
class MlmHeadRecord:
    """A warmed-up MLM head: the file language adapters load, and its content hash (in their cache keys)."""

    path: str
    sha256: str
    run_id: str | None
    reused: bool
    metrics: dict[str, Any] = field(default_factory=dict)


@task(name="warm-up-mlm-head", retries=TRACKING_RETRIES, retry_condition_fn=transient_only)
def warm_up_mlm_head_task(config: PipelineConfig, base_model: str, target: TrackingTarget, parent_run_id: str) -> MlmHeadRecord:
    """Train the base model's MLM head alone on the corpora of the configured languages (reused
    when base, corpora and settings are unchanged); its own MLflow run with held-out perplexity
    per language before and after."""
    _use_stage_threads(config)
    from language_adapters.mlm_head import HEAD_FILE, warm_up_mlm_head

    training = config.head_warmup_training()
    corpora = {code: config.corpus(code) for code, language in sorted(config.languages.items()) if not language.adapter}
    folder = Path(config.output_dir) / "mlm_head"
    tracker = Tracker(target)
    tags = {tracking.KIND: "mlm_head", tracking.BASE_MODEL: base_model, tracking.CONFIG_HASH: config.fingerprint()}
    with tracker.run("mlm head warm-up", tags, parent_run_id) as run_id:
        tracker.log_params(run_id, {"training": training.to_dict(), "languages": sorted(corpora)})
        result = warm_up_mlm_head(
            base_model, corpora, folder, training, cache_dir=Path(config.output_dir) / "cache",
            on_event=_event_logger(tracker, run_id, "mlm head warm-up", training.steps),
            identity=base_model_identity(base_model),
        )
        tracker.log_metrics(run_id, result.metrics, step=training.steps)
        tracker.set_tags(run_id, {"madx.cached": result.cached})
        _flag(tracker, run_id, "mlm head warm-up", result.flags)
        tracker.log_files(run_id, [folder / HEAD_FILE, folder / "mlm_head.json"], "mlm_head")
    before, after = result.metrics["mean_initial_perplexity"], result.metrics["mean_perplexity"]
    _logger().info("mlm head %s: held-out perplexity %.0f -> %.1f (geometric mean over %d languages)",
                   "reused" if result.cached else "warmed up", before, after, len(corpora))
    return MlmHeadRecord(str(result.head_file), sha256_of_file(result.head_file), run_id, result.cached, result.metrics)


@task(name="train-language-adapter", retries=TRACKING_RETRIES, retry_condition_fn=transient_only)
def train_language_adapter_task(
    config: PipelineConfig, language: str, base_model: str, target: TrackingTarget, parent_run_id: str,
    force: bool = False, mlm_head: MlmHeadRecord | None = None, seed: int | None = None,
) -> AdapterRecord:
    """One language's adapter: `seed` None trains the one adapter every run shares (the config's
    `seed`), a number one of the adapters trained per seed (`language_adapter.seeds`)."""
    _use_stage_threads(config)
    from language_adapters.train import train_language_adapter
    from madx.io import check_adapter_folder
    from madx.loading import load_config

    preset = config.languages[language].adapter
    if preset:  # an existing adapter (e.g. imported from AdapterHub) stands in for training
        check_adapter_folder(preset, load_config(base_model))  # complete, and made for this base
        return _record(language, Path(preset), None, reused=True)
    training = config.language_training(seed)
    source = config.corpus(language)
    identity = {"base": base_model_identity(base_model), "language": language, "training": training.to_dict(),
                "seeding": SEEDING_VERSION,
                "corpus": corpus_fingerprint(source)}
    if mlm_head is not None:
        identity["mlm_head"] = mlm_head.sha256
    key = _hash(identity)
    folder = language_adapter_folder(config, language, seed)
    if not force and _reusable(folder, key):
        _check_reused(folder, "language_adapter", key, target)
        _logger().info("language adapter %s: unchanged (cache key %s...), reusing %s", language, key[:12], folder)
        return _record(language, folder, None, reused=True)
    tracker = Tracker(target)
    tags = {tracking.KIND: "language_adapter", tracking.LANGUAGE: language, tracking.BASE_MODEL: base_model,
            tracking.CONFIG_HASH: config.fingerprint(), tracking.SEED: training.seed}
    with tracker.run(f"language adapter {language}" + (f" seed {seed}" if seed is not None else ""), tags,
                     parent_run_id) as run_id:
        tracker.log_params(run_id, {"corpus": source.describe(), "training": training.to_dict(), "cache_key": key})
        result = train_language_adapter(
            base_model, language, source, folder, training,
            checkpoint_dir=Path(config.output_dir) / "checkpoints" / folder.relative_to(Path(config.output_dir) / "adapters"),
            on_event=_event_logger(tracker, run_id, f"language adapter {language}", training.steps),
            cache_dir=Path(config.output_dir) / "cache",
            metadata={"cache_key": key},
            mlm_head=mlm_head.path if mlm_head else None,
        )
        tracker.log_metrics(run_id, result.metrics, step=training.steps)  # the curves' last step, not 0
        _flag(tracker, run_id, f"language adapter {language}", result.flags)
        if result.resumed_from_step is not None:  # an interrupted run of the same training went before
            tracker.set_tags(run_id, {"madx.resumed_from_step": result.resumed_from_step})
        tracker.log_adapter(run_id, folder)
    return _record(language, folder, run_id, reused=False)


@task(name="train-task-adapter", retries=TRACKING_RETRIES, retry_condition_fn=transient_only)
def train_task_adapter_task(
    config: PipelineConfig, task_name: str, base_model: str, source_adapter: AdapterRecord, target: TrackingTarget,
    parent_run_id: str, seed: int, force: bool = False,
) -> AdapterRecord:
    """The task adapter of one seed, on the source language adapter of the same run."""
    _use_stage_threads(config)
    from task_adapters.data import LabelSet
    from task_adapters.train import train_task_adapter

    task_config = config.tasks[task_name]
    training = config.task_training(seed)
    train, dev = config.labeled(task_name, "train"), config.labeled(task_name, "dev")
    # What a source reads (its description: format, split, max_sentences ...) and, for a file, its bytes.
    data = {split: [s.describe(), _file_digest(Path(s.path)) if s.path else None] for split, s in (("train", train), ("dev", dev))}
    key = _hash({"base": base_model_identity(base_model), "task": task_name, "training": training.to_dict(),
                 "seeding": SEEDING_VERSION,
                 "labels": task_config.labels, "source_adapter": source_adapter.sha256, "data": data})
    folder = task_adapter_folder(config, task_name, seed)
    if not force and _reusable(folder, key):
        _check_reused(folder, "task_adapter", key, target)
        _logger().info("task adapter %s: unchanged (cache key %s...), reusing %s", task_name, key[:12], folder)
        return _record(task_name, folder, None, reused=True)
    tracker = Tracker(target)
    tags = {tracking.KIND: "task_adapter", tracking.TASK: task_name, tracking.LANGUAGE: config.source_language,
            tracking.BASE_MODEL: base_model, tracking.CONFIG_HASH: config.fingerprint(), tracking.SEED: seed}
    with tracker.run(f"task adapter {task_name} seed {seed}", tags, parent_run_id) as run_id:
        tracker.log_params(run_id, {"train": train.describe(), "dev": dev.describe(), "training": training.to_dict(),
                                    "source_adapter_sha256": source_adapter.sha256, "cache_key": key})
        result = train_task_adapter(
            base_model, task_name, source_adapter.path, train, dev, folder, training,
            label_set=LabelSet(tuple(task_config.labels)) if task_config.labels else None,
            on_event=_event_logger(tracker, run_id, f"task adapter {task_name}", training.epochs),
            metadata={"cache_key": key},
        )
        tracker.log_metrics(run_id, result.metrics, step=training.epochs)  # the curves' last epoch, not 0
        tracker.set_tags(run_id, {tracking.MAJORITY_LABEL: result.majority_label})
        tracker.log_adapter(run_id, folder)
    return _record(task_name, folder, run_id, reused=False)


@task(name="evaluate-zero-shot", retries=TRACKING_RETRIES, retry_condition_fn=transient_only)
def evaluate_task_adapter_task(
    config: PipelineConfig, task_name: str, languages: list[str], language_adapters: dict[str, AdapterRecord],
    task_adapter: AdapterRecord, base_model: str, target: TrackingTarget, parent_run_id: str, seed: int,
) -> list[dict[str, Any]]:
    """Every (language, setup) cell of one task adapter (the one of `seed`) with a single loaded
    base model; each cell is its own nested MLflow run under this stage's run, with params task,
    language, setup, seed and metric (what the UI groups and compares by), its score under the
    metric's own name, and its per-sentence counts as the artifact `sentence_counts.json` (for the
    report's intervals)."""
    _use_stage_threads(config)
    from evaluation.zero_shot import evaluate_zero_shot

    from evaluation.metrics import score_key

    tracker = Tracker(target)
    common = {tracking.TASK: task_name, tracking.BASE_MODEL: base_model, tracking.CONFIG_HASH: config.fingerprint(),
              tracking.SEED: seed}
    test_sets = {(task_name, language): config.labeled(task_name, "test", language) for language in languages}
    adapters = {code: record.path for code, record in language_adapters.items()}

    with tracker.run(f"evaluation {task_name} seed {seed}", {tracking.KIND: "evaluation_stage", **common},
                     parent_run_id) as stage_id:
        tracker.log_params(stage_id, {"setups": config.evaluation.setups, "languages": languages,
                                      "task_adapter_sha256": task_adapter.sha256})

        def on_cell(cell, row):
            tags = {tracking.KIND: "evaluation", tracking.LANGUAGE: cell.language, tracking.SETUP: cell.setup,
                    "madx.source_language": row["source_language"], tracking.SCHEME: row["scheme"], **common}
            metric = score_key(row["scheme"])
            with tracker.run(f"{task_name} {cell.language} {cell.setup} seed {seed}", tags, stage_id) as run_id:
                tracker.log_params(run_id, {"task": task_name, "language": cell.language, "setup": cell.setup,
                                            "seed": seed, "metric": metric})
                tracker.log_metrics(run_id, tracking.named_scores(row))
                tracker.log_dict(run_id, {"scheme": row["scheme"], "counts": row["sentence_counts"]},
                                 tracking.SENTENCE_COUNTS)
            _logger().info("%s %s %s seed %s: %s=%.3f", task_name, cell.language, cell.setup, seed, metric, row["f1"])

        rows = evaluate_zero_shot(
            base_model, {task_name: task_adapter.path}, adapters, test_sets, config.evaluation.setups,
            config.evaluation.batch_size, config.evaluation.max_length, on_cell=on_cell,
        )
    return [{**{k: v for k, v in row.items() if k != "sentence_counts"}, "seed": seed} for row in rows]


@task(name="build-report", retries=TRACKING_RETRIES, retry_condition_fn=transient_only)
def build_report_task(config: PipelineConfig, base_model: str, target: TrackingTarget, parent_run_id: str) -> dict[str, str]:
    """The comparison report from every evaluation tracked for this base model (so `add_language`
    extends the earlier results instead of replacing them); logged on the parent run."""
    from evaluation.report import write_report

    from evaluation.report import parent_run_metrics, summarise, untrustworthy

    _use_stage_threads(config)
    tracker = Tracker(target)
    rows = tracker.evaluation_rows(base_model)
    if not rows:
        return {}
    counts = tracker.evaluation_counts(rows)
    language_adapters = tracker.language_adapter_rows(base_model)
    files = write_report(rows, Path(config.output_dir) / "report", title=f"{config.name}: zero-shot transfer",
                         language_adapters=language_adapters, task_adapters=tracker.task_adapter_rows(base_model),
                         counts=counts, notes=report_notes(config, base_model))
    _flag(tracker, parent_run_id, "report", untrustworthy(rows, language_adapters))
    # The comparison itself on the pipeline's run: per-setup averages, differences and their intervals.
    tracker.log_metrics(parent_run_id, parent_run_metrics(summarise(rows, counts)))
    tracker.log_files(parent_run_id, [files.csv, files.json, files.summary, files.heatmap, files.markdown], "report")
    return {"csv": str(files.csv), "json": str(files.json), "summary": str(files.summary), "heatmap": str(files.heatmap),
            "markdown": str(files.markdown)}


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
