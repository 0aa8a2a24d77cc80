"""The pipeline's stages as Prefect tasks. Each one takes paths, hashes and small typed settings (a
`StageContext` shared by the stages of one flow call, and a job naming what to build), calls a
domain function, records its run in MLflow, and returns a small record (paths, hashes, ids), never
a model. The pipeline config itself stays in `flows`: it is unpacked there, so this layer never
imports it.

An adapter is not retrained when its folder already holds one built from the same cache key
(base model identity + the settings that decide the result + data fingerprint) unless `force` is
set; where it runs (`device`) is not part of the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from evaluation.settings import HarmGuard
from evaluation.setups import MADX
from language_adapters.contamination import MATCHING_VERSION, Contamination, ExcludedTestSet, check_corpus
from language_adapters.corpus import corpus_fingerprint
from language_adapters.settings import BaseModelSpec, CorpusSource, HeadWarmup, LanguageAdapterTraining
from madx.errors import AdapterLoadError, DataError, MadxError
from madx.fileutil import atomic_write_text, sha256_of_directory, sha256_of_file
from madx.seeding import SEEDING_VERSION
from tasks import progress, tracking
from tasks.tracking import Tracker
from tasks.tracking_queries import TrackedRuns
from tasks.tracking_store import TrackingTarget, TrackingUnavailable
from tagging.sources import LabeledSource
from task_adapters.settings import TaskAdapterTraining

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


def labeled_fingerprint(source: LabeledSource) -> list[str | None]:
    """What a labeled source reads (its description: format, split, max_sentences ...) and, for a
    file or saved folder, its bytes."""
    return [source.describe(), _file_digest(Path(source.path)) if source.path else None]


def _reusable(folder: Path, cache_key: str) -> bool:
    from madx.adapter_files import read_adapter_config

    try:
        return read_adapter_config(folder)["metadata"].get("cache_key") == cache_key
    except MadxError:
        return False


def _check_reused(folder: Path, kind: str, cache_key: str, target: TrackingTarget) -> None:
    """An adapter about to be reused is still what was tracked: the folder's sha256 equals the one
    logged by the run that made it (when the store has that run), and its files are complete."""
    from madx.adapter_files import check_adapter_folder

    tracked = TrackedRuns(Tracker(target)).tracked_adapter(folder, kind, cache_key)
    if tracked is not None:
        actual = sha256_of_directory(folder)
        if actual != tracked.sha256:
            raise AdapterLoadError(
                f"adapter folder {folder} changed after MLflow run {tracked.run_id} tracked it: its sha256 is "
                f"{actual[:12]}..., the tracked one {tracked.sha256[:12]}...; restore it from that run's "
                "`adapter` artifact, or retrain it with --force"
            )
    check_adapter_folder(folder)


# Settings that say where a stage runs, not what it computes: left out of cache keys, so moving a
# pipeline from CPU to GPU (or back) reuses its adapters.
RUNTIME_FIELDS = frozenset({"device"})


def settings_identity(settings: Any) -> dict[str, Any]:
    """The fields of a stage's settings (its `to_dict()`) that decide the result (everything but
    RUNTIME_FIELDS)."""
    return {key: value for key, value in settings.to_dict().items() if key not in RUNTIME_FIELDS}


@dataclass(frozen=True)
class StageContext:
    """What every stage of one flow call shares: where its files go, where it tracks and under which
    parent run, the pipeline's fingerprint (tagged on every run), and torch's thread count."""

    output_dir: str
    target: TrackingTarget
    parent_run_id: str
    config_hash: str
    threads: int

    @property
    def out(self) -> Path:
        return Path(self.output_dir)

    def use_threads(self) -> None:
        """Compute with the configured thread count (`runner.threads_per_stage`): on some BLAS builds
        the thread count changes the order of float sums, so it must not follow the load."""
        import torch

        torch.set_num_threads(self.threads)


@dataclass(frozen=True)
class LanguageAdapterJob:
    """One language adapter to have: trained on `corpus`, or `preset`, an existing adapter folder
    (e.g. imported from AdapterHub) that stands in for training. `seed` None is the one adapter every
    run shares; a number, one of the adapters trained per seed (`language_adapter.seeds`).
    `test_sets`: every test set of the pipeline; corpus lines holding one of their sentences are
    left out of training (`language_adapters.contamination`). `family`: which family of language
    adapters it belongs to (evaluation/setups.py), its folder and its MLflow tag."""

    language: str
    corpus: CorpusSource
    training: LanguageAdapterTraining
    seed: int | None = None
    preset: str | None = None
    test_sets: tuple[ExcludedTestSet, ...] = ()
    family: str = MADX  # madx, or noinv (MAD-X -INV: `training` then has no invertible adapter)


@dataclass(frozen=True)
class TaskAdapterJob:
    """One task adapter to have, for the seed in `training.seed`, on the source language's adapter of
    its `family` (madx, noinv), or, for family ta-only, on no language adapter."""

    task: str
    train: LabeledSource
    dev: LabeledSource
    training: TaskAdapterTraining
    source_language: str
    labels: tuple[str, ...] | None = None
    family: str = MADX


@dataclass(frozen=True)
class EvaluationJob:
    """The zero-shot cells of one task adapter: every (target language, setup) of `test_sets`;
    `harm_guard`: when the madx cell flags its target adapter as harmful (evaluation/harm.py)."""

    task: str
    test_sets: dict[str, LabeledSource]
    setups: tuple[str, ...]
    batch_size: int
    max_length: int
    seed: int
    harm_guard: HarmGuard = field(default_factory=HarmGuard)


def adapters_subfolder(kind: str, family: str = MADX) -> str:
    """Where under output_dir/adapters the adapters of `kind` (language, task) and `family` go:
    `language`, `task` for the madx family; `language-noinv`, `task-noinv`, `task-ta-only` for the others."""
    return kind if family == MADX else f"{kind}-{family}"


def language_adapter_folder(output_dir: str | Path, language: str, seed: int | None = None, family: str = MADX) -> Path:
    """adapters/language/<code>, or adapters/language/<code>/seed-<n> for adapters trained per seed
    (adapters/language-noinv/... for the noinv family)."""
    folder = Path(output_dir) / "adapters" / adapters_subfolder("language", family) / language
    return folder if seed is None else folder / f"seed-{seed}"


def task_adapter_folder(output_dir: str | Path, task: str, seed: int, family: str = MADX) -> Path:
    """adapters/task/<task>/seed-<n> (adapters/task-noinv/..., adapters/task-ta-only/... for those families)."""
    return Path(output_dir) / "adapters" / adapters_subfolder("task", family) / task / f"seed-{seed}"


def _family_label(family: str) -> str:
    """What a run name and log line add for an adapter of `family`: nothing for madx, " (noinv)"."""
    return "" if family == MADX else f" ({family})"


def _record(name: str, folder: Path, run_id: str | None, reused: bool) -> AdapterRecord:
    from madx.adapter_files import read_adapter_config

    metrics = read_adapter_config(folder).get("metadata", {}).get("metrics", {})
    return AdapterRecord(name, str(folder), sha256_of_directory(folder), run_id, reused, metrics)


def _reuse_or_train(ctx: StageContext, kind: str, name: str, folder: Path, key: str, force: bool, run_name: str,
                    tags: dict[str, Any], params: dict[str, Any],
                    train: Callable[[Tracker, str], None]) -> AdapterRecord:
    """The one way an adapter stage works: reuse the adapter in `folder` when it was built from the
    same cache key and is intact (complete, and the hash its run tracked); otherwise run `train`
    (it writes `folder` and logs its metrics) inside a nested MLflow run that then logs the adapter."""
    if not force and _reusable(folder, key):
        _check_reused(folder, kind, key, ctx.target)
        _logger().info("%s: unchanged (cache key %s...), reusing %s", run_name, key[:12], folder)
        return _record(name, folder, None, reused=True)
    tracker = Tracker(ctx.target)
    with tracker.run(run_name, {tracking.KIND: kind, tracking.CONFIG_HASH: ctx.config_hash, **tags},
                     ctx.parent_run_id) as run_id:
        tracker.log_params(run_id, {**params, "cache_key": key})
        train(tracker, run_id)
        tracker.log_adapter(run_id, folder)
    return _record(name, folder, run_id, reused=False)


def _flag(tracker: Tracker, run_id: str, label: str, flags: list[str]) -> None:
    """Warnings that do not fail a stage: in the log and as the run's `madx.flags` tag (the report reads it)."""
    if flags:
        for flag in flags:
            _logger().warning("%s: %s", label, flag)
        tracker.set_tags(run_id, {tracking.FLAGS: "; ".join(flags)})


def _event_logger(tracker: Tracker, run_id: str, label: str, total: int | None):
    from typing import get_args

    from tagging.metrics import dev_score_key  # seqeval and scikit-learn: imported once a stage runs
    from tagging.scheme import Scheme

    logger = _logger()
    # Losses, perplexity, and a task adapter's dev score under the name of what it is
    # (`dev_word_accuracy` for POS, `dev_entity_f1` for NER), never as `dev_f1`, which is word accuracy for POS.
    shown_keys = {"train_loss", "mlm_loss", "perplexity", "centred_perplexity", *(dev_score_key(scheme) for scheme in get_args(Scheme))}

    def on_event(kind: str, step: int, metrics: dict[str, float]) -> None:
        tracker.log_metrics(run_id, metrics, step=step)
        shown = ", ".join(f"{key}={value:.4g}" for key, value in metrics.items() if key in shown_keys)
        progress.report(label, step, total, shown)
        logger.info("%s: %s %s%s %s", label, kind, step, f"/{total}" if total else "", shown)

    return on_event


@task(name="build-base-model", retries=TRACKING_RETRIES, retry_condition_fn=transient_only)
def build_base_model_task(ctx: StageContext, corpora: dict[str, Any], spec: BaseModelSpec) -> str:
    """Build (or reuse) the small base model of `spec` from `corpora` (language -> corpus); returns its folder."""
    ctx.use_threads()
    from language_adapters.base_model import build_base_model

    out = ctx.out / "base_model"
    tracker = Tracker(ctx.target)
    with tracker.run("base model", {tracking.KIND: "base_model", tracking.CONFIG_HASH: ctx.config_hash},
                     ctx.parent_run_id) as run_id:
        tracker.log_params(run_id, {"spec": spec.to_dict(), "corpora": {k: str(v) for k, v in corpora.items()}})
        result = build_base_model(corpora, out, spec, on_event=_event_logger(tracker, run_id, "base model", spec.steps),
                                  cache_dir=ctx.out / "cache")
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
def warm_up_mlm_head_task(ctx: StageContext, base_model: str, training: HeadWarmup,
                          corpora: dict[str, CorpusSource] | None = None) -> MlmHeadRecord:
    """Train the base model's MLM head alone (reused when base, text and settings are unchanged); its
    own MLflow run with held-out perplexity per language before and after.

    `training.mix` general: on the general mix (language_adapters/head_mix.py), into the madx cache,
    shared by every pipeline on this base; config: on `corpora` (the pipeline's, language -> corpus),
    into the output folder."""
    ctx.use_threads()
    from language_adapters.head_mix import PANEL_IN_THE_MIX, general_mix, outside_the_mix, udhr_name
    from language_adapters.mlm_head import HEAD_FILE, RECORD_FILE, head_fingerprint, warm_up_mlm_head
    from madx.packages import cache_dir

    identity = base_model_identity(base_model)
    if training.mix == "general":
        udhr_cache = cache_dir() / "udhr"
        corpora, panel, outside = general_mix(udhr_cache), [udhr_name(code) for code in PANEL_IN_THE_MIX], outside_the_mix()
        text_cache = udhr_cache
        # one head per base model and settings, wherever the pipeline writes
        folder = cache_dir() / "mlm_heads" / head_fingerprint(identity, corpora, training, panel, outside)[:16]
    else:
        if not corpora:
            raise DataError("the MLM head warm-up with `mix: config` needs the pipeline's corpora; it has none")
        panel, outside, text_cache, folder = None, None, ctx.out / "cache", ctx.out / "mlm_head"
    tracker = Tracker(ctx.target)
    tags = {tracking.KIND: "mlm_head", tracking.BASE_MODEL: base_model, tracking.CONFIG_HASH: ctx.config_hash}
    with tracker.run("mlm head warm-up", tags, ctx.parent_run_id) as run_id:
        tracker.log_params(run_id, {"training": training.to_dict(), "corpora": len(corpora),
                                    "measured": sorted(panel or corpora) + sorted(outside or {})})
        result = warm_up_mlm_head(
            base_model, corpora, folder, training, cache_dir=text_cache,
            on_event=_event_logger(tracker, run_id, "mlm head warm-up", training.steps),
            identity=identity, panel=panel, outside=outside,
        )
        tracker.log_metrics(run_id, result.metrics, step=training.steps)
        tracker.set_tags(run_id, {"madx.cached": result.cached, "madx.mlm_head_folder": str(folder)})
        _flag(tracker, run_id, "mlm head warm-up", result.flags)
        tracker.log_files(run_id, [folder / HEAD_FILE, folder / RECORD_FILE], "mlm_head")
    before, after = result.metrics["mean_initial_perplexity"], result.metrics["mean_perplexity"]
    _logger().info("mlm head %s (%s): held-out perplexity %.0f -> %.1f (geometric mean over %d measured languages)",
                   "reused" if result.cached else "warmed up", folder, before, after, len(panel or corpora))
    return MlmHeadRecord(str(result.head_file), sha256_of_file(result.head_file), run_id, result.cached, result.metrics)


@task(name="train-language-adapter", retries=TRACKING_RETRIES, retry_condition_fn=transient_only)
def train_language_adapter_task(ctx: StageContext, job: LanguageAdapterJob, base_model: str, force: bool = False,
                                mlm_head: MlmHeadRecord | None = None) -> AdapterRecord:
    """One language's adapter (see LanguageAdapterJob)."""
    ctx.use_threads()
    from language_adapters.train import train_language_adapter
    from madx.adapter_files import check_adapter_folder
    from madx.pretrained import load_config

    language, training, family = job.language, job.training, job.family
    if job.preset:  # an existing adapter stands in for training
        check_adapter_folder(job.preset, load_config(base_model))  # complete, and made for this base
        return _record(language, Path(job.preset), None, reused=True)
    corpus = corpus_fingerprint(job.corpus)
    identity = {"base": base_model_identity(base_model), "language": language, "training": settings_identity(training),
                "seeding": SEEDING_VERSION, "corpus": corpus}
    if mlm_head is not None:
        identity["mlm_head"] = mlm_head.sha256
    if family != MADX:  # the madx family's keys are those from before families existed: its adapters stay reused
        identity["family"] = family
    label = f"language adapter {language}{_family_label(family)}"
    params = {"corpus": job.corpus.describe(), "training": training.to_dict()}
    try:
        contamination, unreadable = _contamination(ctx, job, corpus), None
    except MadxError as error:
        # The corpus or a test set cannot be read: the stage fails (never reuses), inside its own MLflow
        # run, where the UI shows a stage's failure, as it does for a corpus that training cannot read.
        contamination, unreadable = None, error
    if contamination is not None:
        (_logger().warning if contamination.removed else _logger().info)("%s: %s", label, contamination.describe())
        params.update({tracking.CONTAMINATION_REMOVED: len(contamination.removed),
                       tracking.CONTAMINATION_TEST_SETS: contamination.matched_text()})
        if contamination.removed:
            # Only what is removed decides the text trained on: a test set added elsewhere that this corpus
            # does not hold leaves the key (and the adapter) as it was, and so does the check itself for a
            # corpus that holds no test sentence.
            identity["removed_lines"] = contamination.digest()
    key = _hash(identity)
    folder = language_adapter_folder(ctx.output_dir, language, job.seed, family)

    def train(tracker: Tracker, run_id: str) -> None:
        if unreadable is not None:
            raise unreadable
        result = train_language_adapter(
            base_model, language, job.corpus, folder, training,
            checkpoint_dir=ctx.out / "checkpoints" / folder.relative_to(ctx.out / "adapters"),
            on_event=_event_logger(tracker, run_id, label, training.steps),
            cache_dir=ctx.out / "cache",
            metadata={"cache_key": key, "family": family},
            mlm_head=mlm_head.path if mlm_head else None,
            contamination=contamination,
        )
        tracker.log_metrics(run_id, result.metrics, step=training.steps)  # the curves' last step, not 0
        _flag(tracker, run_id, label, result.flags)
        if result.resumed_from_step is not None:  # an interrupted run of the same training went before
            tracker.set_tags(run_id, {"madx.resumed_from_step": result.resumed_from_step})

    return _reuse_or_train(
        ctx, "language_adapter", language, folder, key, force or unreadable is not None,
        run_name=label + (f" seed {job.seed}" if job.seed is not None else ""),
        tags={tracking.LANGUAGE: language, tracking.BASE_MODEL: base_model, tracking.SEED: training.seed,
              tracking.FAMILY: family},
        params=params, train=train)


def _contamination(ctx: StageContext, job: LanguageAdapterJob, corpus_key: str) -> Contamination:
    """The check of the job's corpus against its test sets, remembered under output_dir/cache by what
    decides it (the corpus's fingerprint, the test sets' names and bytes, the matching rules): the
    cache key needs it on every run, and an unchanged pipeline should not reload a large (or hub)
    corpus only to find its adapter unchanged."""
    from language_adapters.corpus import load_corpus

    key = _hash({"corpus": corpus_key, "matching": MATCHING_VERSION,
                 "test_sets": [[test_set.name, labeled_fingerprint(test_set.source)] for test_set in job.test_sets]})
    cache = ctx.out / "cache"
    remembered = cache / "contamination" / f"{key}.json"
    try:
        return Contamination.from_dict(json.loads(remembered.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):  # not checked yet (or a damaged file): check now
        pass
    found = check_corpus(load_corpus(job.corpus, cache_dir=cache), job.test_sets)
    atomic_write_text(remembered, json.dumps(found.to_dict()))
    return found


@task(name="train-task-adapter", retries=TRACKING_RETRIES, retry_condition_fn=transient_only)
def train_task_adapter_task(ctx: StageContext, job: TaskAdapterJob, base_model: str,
                            source_adapter: AdapterRecord | None, force: bool = False) -> AdapterRecord:
    """The task adapter of one seed, on the source language adapter of the same run and the job's
    family (None: on no language adapter, the ta-only family)."""
    ctx.use_threads()
    from tagging.metrics import dev_score_key
    from tagging.scheme import LabelSet
    from task_adapters.train import train_task_adapter

    training, seed = job.training, job.training.seed
    data = {split: labeled_fingerprint(source) for split, source in (("train", job.train), ("dev", job.dev))}
    source_sha256 = source_adapter.sha256 if source_adapter else None
    identity = {"base": base_model_identity(base_model), "task": job.task, "training": settings_identity(training),
                "seeding": SEEDING_VERSION, "labels": list(job.labels) if job.labels else None,
                "source_adapter": source_sha256, "data": data}
    if job.family != MADX:  # the madx family's keys are those from before families existed: its adapters stay reused
        identity["family"] = job.family
    key = _hash(identity)
    folder = task_adapter_folder(ctx.output_dir, job.task, seed, job.family)
    label = f"task adapter {job.task}{_family_label(job.family)}"

    def train(tracker: Tracker, run_id: str) -> None:
        result = train_task_adapter(
            base_model, job.task, source_adapter.path if source_adapter else None, job.train, job.dev, folder, training,
            label_set=LabelSet(tuple(job.labels)) if job.labels else None,
            on_event=_event_logger(tracker, run_id, label, training.epochs),
            metadata={"cache_key": key, "family": job.family},
            source_language=job.source_language,
        )
        # the curves' last epoch, not 0; the dev score under its own name too, so that its latest value
        # is the kept epoch's, as dev_f1's is
        tracker.log_metrics(run_id, {**result.metrics, dev_score_key(result.label_set.scheme): result.metrics["dev_f1"]},
                            step=training.epochs)
        tracker.set_tags(run_id, {tracking.MAJORITY_LABEL: result.majority_label})

    return _reuse_or_train(
        ctx, "task_adapter", job.task, folder, key, force, run_name=f"{label} seed {seed}",
        tags={tracking.TASK: job.task, tracking.LANGUAGE: job.source_language, tracking.BASE_MODEL: base_model,
              tracking.SEED: seed, tracking.FAMILY: job.family},
        params={"train": job.train.describe(), "dev": job.dev.describe(), "training": training.to_dict(),
                **({"source_adapter_sha256": source_sha256} if source_sha256 else {})}, train=train)


@task(name="evaluate-zero-shot", retries=TRACKING_RETRIES, retry_condition_fn=transient_only)
def evaluate_task_adapter_task(ctx: StageContext, job: EvaluationJob,
                               language_adapters: dict[str, dict[str, AdapterRecord]],
                               task_adapters: dict[str, AdapterRecord], base_model: str) -> list[dict[str, Any]]:
    """Every (language, setup) cell of one task (its task adapters of `job.seed`) with a single loaded
    base model. `language_adapters`: family -> language -> record, `task_adapters`: family -> record,
    the families (evaluation/setups.py: madx, noinv, ta-only) the setups score. Each cell is its own
    nested MLflow run under this stage's run, with params task,
    language, setup, seed and metric (what the UI groups and compares by), its score under the
    metric's own name, and its per-sentence counts as the artifact `sentence_counts.json` (for the
    report's intervals). A madx cell scored beside en-la also carries the label-free harm measures
    (`label_agreement`, `label_tv`, `hidden_drift`) and, past `job.harm_guard`'s thresholds, a
    warning in the log and its `madx.flags` tag."""
    ctx.use_threads()
    from evaluation.harm import harm_flag
    from evaluation.zero_shot import FamilyAdapters, evaluate_zero_shot
    from tagging.metrics import score_key

    task_name, seed = job.task, job.seed
    tracker = Tracker(ctx.target)
    common = {tracking.TASK: task_name, tracking.BASE_MODEL: base_model, tracking.CONFIG_HASH: ctx.config_hash,
              tracking.SEED: seed}
    languages = sorted(job.test_sets)
    families = {family: FamilyAdapters({task_name: record.path},
                                       {code: la.path for code, la in language_adapters.get(family, {}).items()})
                for family, record in task_adapters.items()}
    madx_family = families.pop(MADX, FamilyAdapters({}, {}))

    with tracker.run(f"evaluation {task_name} seed {seed}", {tracking.KIND: "evaluation_stage", **common},
                     ctx.parent_run_id) as stage_id:
        # the madx family's task adapter as `task_adapter_sha256` (as before families), another's under its name
        tracker.log_params(stage_id, {"setups": list(job.setups), "languages": languages,
                                      **{"task_adapter_sha256" + ("" if family == MADX else f".{family}"): record.sha256
                                         for family, record in task_adapters.items()}})

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
                if "label_agreement" in row:
                    flag = harm_flag(task_name, cell.language, row["source_language"], row, job.harm_guard,
                                     note=f"seed {seed}")
                    _flag(tracker, run_id, f"harm guard {task_name} {cell.language} seed {seed}", [flag] if flag else [])
            _logger().info("%s %s %s seed %s: %s=%.3f", task_name, cell.language, cell.setup, seed, metric, row["f1"])

        rows = evaluate_zero_shot(
            base_model, madx_family.task_adapters, madx_family.language_adapters,
            {(task_name, code): source for code, source in job.test_sets.items()}, list(job.setups),
            job.batch_size, job.max_length, on_cell=on_cell, families=families,
        )
    return [{**{k: v for k, v in row.items() if k != "sentence_counts"}, "seed": seed} for row in rows]


@task(name="build-report", retries=TRACKING_RETRIES, retry_condition_fn=transient_only)
def build_report_task(ctx: StageContext, base_model: str, title: str, notes: list[str],
                      harm_guard: HarmGuard | None = None) -> dict[str, str]:
    """The comparison report from every evaluation tracked for this base model (so `add_language`
    extends the earlier results instead of replacing them); logged on the parent run. `notes` are
    what a reader must know about the numbers (what the data is, unseen languages); `harm_guard`
    the thresholds that flag a harmful target adapter."""
    from evaluation.report import parent_run_metrics, summarise, untrustworthy, write_report

    ctx.use_threads()
    tracker = Tracker(ctx.target)
    runs = TrackedRuns(tracker)
    rows = runs.evaluation_rows(base_model)
    if not rows:
        return {}
    counts = runs.evaluation_counts(rows)
    language_adapters = runs.language_adapter_rows(base_model)
    files = write_report(rows, ctx.out / "report", title=title, language_adapters=language_adapters,
                         task_adapters=runs.task_adapter_rows(base_model), counts=counts, notes=notes, guard=harm_guard)
    _flag(tracker, ctx.parent_run_id, "report", untrustworthy(rows, language_adapters, harm_guard))
    # The comparison itself on the pipeline's run: per-setup averages, differences and their intervals.
    tracker.log_metrics(ctx.parent_run_id, parent_run_metrics(summarise(rows, counts)))
    tracker.log_files(ctx.parent_run_id, [files.csv, files.json, files.summary, files.heatmap, files.markdown], "report")
    return {"csv": str(files.csv), "json": str(files.json), "summary": str(files.summary), "heatmap": str(files.heatmap),
            "markdown": str(files.markdown)}
