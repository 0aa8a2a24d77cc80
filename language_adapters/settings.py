"""The settings of the language-adapter stages, as a pipeline config names them: the corpus (its
sources are listed in language_adapters/corpus.py), training hyperparameters, the MLM head warm-up
and the spec of a base model built from scratch.

Plain dataclasses that import neither torch nor transformers, so a config is validated in a
fraction of a second (`madx run` says what is wrong before anything heavy loads). Each field's
`help` is what docs/configuration.md and the config errors show.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

from madx.config import resolve_config
from madx.errors import ConfigError, DataError


CorpusKind = Literal["text", "udhr", "bible", "packaged", "hf", "disk", "mix"]


@dataclass(frozen=True)
class CorpusSource:
    kind: CorpusKind
    location: str  # a path, a UDHR or Bible language code, or a hub dataset name
    config: str | None = None  # hub dataset config, e.g. "20231101.sw"
    split: str = "train"
    text_column: str = "text"
    max_documents: int | None = None  # hub: the first N documents, streamed; bible: N verses, spread
    parts: tuple[CorpusSource, ...] = ()  # kind "mix": the sources, in order

    @classmethod
    def parse(cls, spec: str | dict[str, Any] | list | CorpusSource) -> CorpusSource:
        if isinstance(spec, CorpusSource):
            return spec
        if isinstance(spec, (list, tuple)):
            if not spec:
                raise DataError("a corpus list needs at least one source")
            parts = tuple(cls.parse(part) for part in spec)
            return parts[0] if len(parts) == 1 else cls("mix", "", parts=parts)
        if isinstance(spec, dict):
            return cls._from_dict(spec)
        if isinstance(spec, PurePath):
            return cls("text", str(spec))
        if not isinstance(spec, str) or not spec.strip():
            raise DataError(
                f"a corpus is a path, udhr:<code>, bible:<code>, packaged:<name>, hf:<name>[:<config>] or disk:<path>; "
                f"got {spec!r}"
            )
        spec = spec.strip()
        prefix, _, rest = spec.partition(":")
        if prefix == "udhr" and rest:
            return cls("udhr", rest)
        if prefix in ("bible", "packaged") and rest:
            return cls(prefix, rest)
        if prefix == "hf" and rest:
            name, _, config = rest.partition(":")
            return cls("hf", name, config or None)
        if prefix == "disk" and rest:
            return cls("disk", rest)
        return cls("text", spec)

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> CorpusSource:
        kinds = [k for k in ("text", "udhr", "bible", "packaged", "hf", "disk") if k in data]
        if len(kinds) != 1:
            raise DataError(
                f"a corpus mapping needs exactly one of text/udhr/bible/packaged/hf/disk, got keys {sorted(data)}")
        kind = kinds[0]
        extra = {k: v for k, v in data.items() if k != kind}
        allowed = {"config", "split", "text_column", "max_documents"}
        unknown = sorted(set(extra) - allowed)
        if unknown:
            raise DataError(f"unknown corpus keys {unknown}; allowed with {kind}: {sorted(allowed)}")
        return cls(kind, str(data[kind]), **extra)

    def describe(self) -> str:
        if self.kind == "mix":
            return " + ".join(part.describe() for part in self.parts)
        if self.kind == "text":
            return self.location
        if self.kind == "hf":
            return f"hf:{self.location}" + (f":{self.config}" if self.config else "") + f" [{self.split}]"
        return f"{self.kind}:{self.location}"


@dataclass(frozen=True)
class LanguageAdapterTraining:
    """Hyperparameters of language-adapter training. Defaults follow the published MAD-X adapters
    (MLM, batch 64, lr 1e-4, tens of thousands of steps); the demo config uses far fewer steps."""

    steps: int = field(default=50_000, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=64, metadata={"help": "Sequences per optimizer step (per micro-batch x accumulation)."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak AdamW learning rate."})
    warmup_steps: int = field(default=500, metadata={"help": "Linear warm-up steps, then linear decay to 0."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    grad_accumulation: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    max_length: int = field(default=256, metadata={"help": "Tokens per training sequence."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of tokens that are MLM targets."})
    held_out_fraction: float = field(default=0.05, metadata={"help": "Share of sequences held out for evaluation."})
    eval_every: int = field(default=1000, metadata={"help": "Held-out evaluation every N steps (and at the end)."})
    checkpoint_every: int = field(default=1000, metadata={"help": "Checkpoint every N steps (0: never)."})
    log_every: int = field(default=50, metadata={"help": "Report the training loss every N steps."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0: off)."})
    seed: int = field(default=42, metadata={"help": "Seed for init, data order, masking and dropout."})
    softmax_vocabulary: str = field(
        default="full",
        metadata={"help": "full: the MLM softmax over the whole vocabulary (as in MAD-X); corpus: over the distinct "
                          "tokens of this language's training text only (far cheaper on a 250k vocabulary; "
                          "held-out perplexity is always over the whole vocabulary)."},
    )
    adapter: str | dict = field(default="madx_language", metadata={"help": "Adapter preset name or config dict."})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda."})

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "grad_accumulation", "max_length", "eval_every", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"language adapter training: {name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.mlm_probability < 1:
            raise ConfigError(f"mlm_probability must be in (0, 1), got {self.mlm_probability}")
        if not 0 < self.held_out_fraction < 1:
            raise ConfigError(f"held_out_fraction must be in (0, 1), got {self.held_out_fraction}")
        if self.batch_size % self.grad_accumulation:
            raise ConfigError(
                f"batch_size {self.batch_size} must be a multiple of grad_accumulation {self.grad_accumulation}"
            )
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.softmax_vocabulary not in ("full", "corpus"):
            raise ConfigError(f"softmax_vocabulary must be full or corpus, got {self.softmax_vocabulary!r}")
        resolve_config(self.adapter)  # fail now, not after loading the model

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class HeadWarmup:
    """Hyperparameters of the MLM head warm-up."""

    steps: int = field(default=300, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=16, metadata={"help": "Sequences per step, drawn from every language's corpus."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak AdamW learning rate."})
    warmup_steps: int = field(default=20, metadata={"help": "Linear warm-up steps, then linear decay to 0."})
    max_length: int = field(default=64, metadata={"help": "Tokens per sequence."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of tokens that are MLM targets."})
    held_out_fraction: float = field(default=0.05, metadata={"help": "Share of each language's sequences held out."})
    softmax_vocabulary: Literal["full", "corpus"] = field(
        default="full",
        metadata={"help": "Train the softmax over the whole vocabulary, or over the tokens of the corpora only "
                          "(cheaper, but the output bias of every other token is never trained, which leaves "
                          "held-out perplexity, always measured over the whole vocabulary, high)."},
    )
    init: Literal["identity", "random"] = field(
        default="identity",
        metadata={"help": "identity: start the head's transform as the identity and its output bias as the corpora's "
                          "log unigram frequencies (converges in far fewer steps); random: transformers' random init."},
    )
    log_every: int = field(default=25, metadata={"help": "Report the training loss every N steps."})
    seed: int = field(default=42, metadata={"help": "Seed for data order and masking."})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda."})

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "max_length", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"mlm head warm-up: {name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(f"mlm head warm-up: learning_rate must be a finite number > 0, got {self.learning_rate}")
        for name in ("mlm_probability", "held_out_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"mlm head warm-up: {name} must be in (0, 1), got {getattr(self, name)}")
        if self.init not in ("identity", "random"):
            raise ConfigError(f"mlm head warm-up: init must be identity or random, got {self.init!r}")
        if self.softmax_vocabulary not in ("full", "corpus"):
            raise ConfigError(f"mlm head warm-up: softmax_vocabulary must be full or corpus, got {self.softmax_vocabulary!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BaseModelSpec:
    """Size and pretraining budget of a base model built from scratch."""

    vocab_size: int = field(default=8000, metadata={"help": "Upper bound on SentencePiece pieces."})
    hidden_size: int = field(default=128, metadata={"help": "Hidden size d."})
    num_layers: int = field(default=4, metadata={"help": "Transformer layers."})
    num_heads: int = field(default=4, metadata={"help": "Attention heads."})
    intermediate_size: int = field(default=512, metadata={"help": "FFN inner size."})
    max_length: int = field(default=128, metadata={"help": "Tokens per pretraining sequence."})
    steps: int = field(default=2000, metadata={"help": "Pretraining optimizer steps."})
    batch_size: int = field(default=32, metadata={"help": "Sequences per step."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Peak AdamW learning rate."})
    warmup_steps: int = field(default=100, metadata={"help": "Linear warm-up steps."})
    dropout: float = field(default=0.1, metadata={"help": "Hidden and attention dropout."})
    seed: int = field(default=0, metadata={"help": "Seed for init, data order and masking."})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda."})

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size {self.hidden_size} must be a multiple of num_heads {self.num_heads}")
        for name in ("vocab_size", "num_layers", "steps", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"base model spec: {name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"base model spec: dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
