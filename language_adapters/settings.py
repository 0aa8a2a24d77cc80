"""The settings of the language-adapter stages, as a pipeline config names them: the corpus (its
sources are listed in language_adapters/corpus.py), training hyperparameters, the MLM head warm-up
and the spec of a base model built from scratch.

Pydantic models (the corpus, with its own spellings to parse, is a dataclass) that import neither
torch nor transformers, so a config is validated in a fraction of a second (`madx run` says what is
wrong before anything heavy loads). Each field's description is what docs/configuration.md shows.
"""

from __future__ import annotations

import math
import os
import stat

from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from madx.config import LANGUAGE_ADAPTER_FAMILIES, checked_adapter_spec, family_config
from madx.errors import DataError

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
        count = extra.get("max_documents")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise DataError(f"corpus max_documents must be a whole number >= 1, got {count!r}")
        return cls(kind, str(data[kind]), **extra)

    def describe(self) -> str:
        if self.kind == "mix":
            return " + ".join(part.describe() for part in self.parts)
        if self.kind == "text":
            return self.location
        if self.kind == "hf":
            return f"hf:{self.location}" + (f":{self.config}" if self.config else "") + f" [{self.split}]"
        return f"{self.kind}:{self.location}"

def unreadable_corpus_path(path: str | PurePath) -> str | None:
    """Why the text corpus at `path`, which exists, cannot be used, or None when it is a regular
    file or a folder. A corpus is read twice, once for the fingerprint in its adapter's cache key and
    once to train, so a pipe (`--corpus <(zcat text.gz)` hands over one, /dev/fd/63) would be empty
    the second time: refused before it is read, with that reason."""
    mode = os.stat(path).st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return (f"{path} is a pipe, and a pipe can be read only once while a corpus is read twice (for its "
                "fingerprint, then to train): write the text to a file first (e.g. `zcat text.gz > text.txt`) "
                "and give that file")
    return f"{path} is not a regular file or folder (a device or socket?); save the text to a file first"

# The drift budget's rule (language_adapters/train.py). 1: checkpoints judged by the training weights'
# held-out loss; 2: by the loss of the adapter as it would be saved (centred), measured alone.
DRIFT_BUDGET_VERSION = 2


class _Settings(BaseModel):
    """What every stage's settings are: frozen, no unknown keys, strict types ("2" is not an int, true
    is not a number), finite numbers only. Built from a mapping with `model_validate`; a bad value is
    a pydantic ValidationError naming the field (the pipeline config turns it into a ConfigError
    naming the file and key)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (cache keys and MLflow params hash and log it)."""
        return self.model_dump()

AdapterSpec = Annotated[str | dict[str, Any], AfterValidator(checked_adapter_spec)]

class LanguageAdapterTraining(_Settings):
    """Hyperparameters of language-adapter training. Defaults follow the published MAD-X adapters
    (MLM, batch 64, lr 1e-4, tens of thousands of steps); the demo config uses far fewer steps."""

    steps: int = Field(50_000, ge=1, description="Optimizer steps.")
    batch_size: int = Field(64, ge=1, description="Sequences per optimizer step (per micro-batch x accumulation).")
    learning_rate: float = Field(1e-4, gt=0, description="Peak AdamW learning rate.")
    warmup_steps: int = Field(500, ge=0, description="Linear warm-up steps, then linear decay to 0.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    grad_accumulation: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    max_length: int = Field(256, ge=1, description="Tokens per training sequence.")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="Share of tokens that are MLM targets.")
    held_out_fraction: float = Field(0.05, gt=0, lt=1, description="Share of sequences held out for evaluation.")
    eval_every: int = Field(1000, ge=1, description="Held-out evaluation every N steps (and at the end).")
    checkpoint_every: int = Field(1000, ge=0, description="Checkpoint every N steps (0: never).")
    log_every: int = Field(50, ge=1, description="Report the training loss every N steps.")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm (0: off).")
    seed: int = Field(42, description="Seed for init, data order, masking and dropout.")
    softmax_vocabulary: Literal["full", "corpus"] = Field(
        "full",
        description="full: the MLM softmax over the whole vocabulary (as in MAD-X); corpus: over the distinct tokens "
                    "of this language's training text only (far cheaper on a 250k vocabulary; held-out perplexity "
                    "is always over the whole vocabulary).",
    )
    min_corpus_tokens: int = Field(
        50_000, ge=0,
        description="A corpus with fewer training tokens is refused before training, saying how much it has and needs: "
                    "on a few thousand tokens (a UDHR declaration) an adapter memorises the text and moves the states "
                    "the task adapter reads, and zero-shot scores fall below the majority baseline. 0: no check.",
    )
    max_epochs: float = Field(
        3.0, gt=0,
        description="Cap on passes over the training text: `steps` is lowered to this many epochs of a small corpus "
                    "(said in the log and recorded), so the budget follows the corpus instead of memorising it.",
    )
    keep: Literal["best", "last"] = Field(
        "best",
        description="Which weights are saved: best, those of the evaluation (every eval_every steps) with the lowest "
                    "held-out MLM loss; last, those of the last step.",
    )
    center: bool = Field(
        True,
        description="Centre the trained adapter on its own language's text: its mean output at every layer is moved to "
                    "0 (language_adapters/centering.py). On a small budget an adapter learns mostly a per-layer constant, "
                    "its language's shift, and swapping it in under a task adapter trained on the source's constant moves "
                    "every state the task adapter reads; false keeps the adapter as trained (plain MAD-X).",
    )
    max_drift: float | None = Field(
        None, gt=0,
        description="Drift budget: training stops at the first evaluation where the adapter (centred, with `center`) moves "
                    "its language's final hidden states by more than this on average, ||h_adapter - h_base|| / ||h_base|| "
                    "over the held-out tokens (once it has learnt its language: learnt_perplexity_ratio), and the checkpoint "
                    "within it of the lowest held-out loss as saved is kept (language_adapters/drift.py). Each evaluation "
                    "then measures the adapter as it would be saved (centred), not the training weights. Perplexity cannot "
                    "see an adapter that moves the states the task adapter reads too far; on Igbo POS dev that cost 5.6 points at 150 steps (seed 1) and 1.6 at 75 (seeds 1-3). null: no budget.",
    )
    learnt_perplexity_ratio: float = Field(
        0.5, gt=0, le=1,
        description="With max_drift: an adapter has learnt its language once its held-out perplexity as saved (centred, "
                    "with `center`) is at most this share of step 0's. Only an adapter that has learnt is stopped by the "
                    "drift budget and kept: one that moves the states before it learns (Hausa does) trains on, and the "
                    "first checkpoint that has learnt is kept when none within the budget has.",
    )
    adapter: AdapterSpec = Field("madx_language", description="Adapter preset name or config dict.")
    device: str = Field("auto", description="auto, cpu or cuda.")

    def to_dict(self) -> dict[str, Any]:
        """As `_Settings.to_dict`, without the drift budget's two fields when no budget is set: they
        change nothing then, so every adapter trained before they existed keeps its cache key. With a
        budget, its rule's version (DRIFT_BUDGET_VERSION) is a key of its own: an adapter kept by an
        earlier rule is retrained, not reused."""
        settings = super().to_dict()
        if self.max_drift is None:
            del settings["max_drift"], settings["learnt_perplexity_ratio"]
        else:
            settings["drift_budget_version"] = DRIFT_BUDGET_VERSION
        return settings

    def for_family(self, family: str) -> LanguageAdapterTraining:
        """These settings for the language adapters of `family` (madx/config.py LANGUAGE_ADAPTER_FAMILIES):
        `madx` as configured (the same object, so its cache keys stay as they were), `noinv` with the
        configured adapter's invertible adapter removed."""
        if LANGUAGE_ADAPTER_FAMILIES.get(family) == {}:  # nothing changes (an unknown family fails below)
            return self
        return self.model_copy(update={"adapter": family_config(self.adapter, family).to_dict()})

    def planned_steps(self, train_sequences: int) -> int:
        """The optimizer steps to run on `train_sequences`: `steps`, capped at `max_epochs` passes."""
        return max(1, min(self.steps, math.ceil(self.max_epochs * train_sequences / self.batch_size)))

    @model_validator(mode="after")
    def _whole_micro_batches(self) -> LanguageAdapterTraining:
        if self.batch_size % self.grad_accumulation:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of grad_accumulation "
                             f"{self.grad_accumulation}")
        return self

class HeadWarmup(_Settings):
    """The MLM head warm-up: what it trains on, and its hyperparameters."""

    mix: Literal["general", "config"] = Field(
        "general",
        description="general: one head per base model, warmed on every language the packaged corpora offer (the UDHR "
                    "in ~440 languages and the public-domain Bibles; language_adapters/head_mix.py), kept in the madx "
                    "cache and shared by every pipeline on that base, so a new language never re-warms it and never "
                    "retrains another adapter. config: warmed on this pipeline's own corpora (a head for those "
                    "languages only; for tests and bases whose vocabulary the mix does not suit).",
    )

    steps: int = Field(300, ge=1, description="Optimizer steps.")
    batch_size: int = Field(32, ge=1, description="Sequences per step, drawn from every language's corpus.")
    learning_rate: float = Field(5e-3, gt=0, description="Peak AdamW learning rate.")
    warmup_steps: int = Field(20, ge=0, description="Linear warm-up steps, then linear decay to 0.")
    max_length: int = Field(64, ge=1, description="Tokens per sequence.")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="Share of tokens that are MLM targets.")
    held_out_fraction: float = Field(0.05, gt=0, lt=1, description="Share of each language's sequences held out.")
    softmax_vocabulary: Literal["full", "corpus"] = Field(
        "corpus",
        description="Train the softmax over the tokens of the corpora only (on the general mix's ~440 languages most "
                    "of the vocabulary that text uses; the output bias of the others keeps its unigram start), or over "
                    "the whole vocabulary (slower). Held-out perplexity is always measured over the whole vocabulary.",
    )
    init: Literal["identity", "random"] = Field(
        "identity",
        description="identity: start the head's transform as the identity and its output bias as the corpora's log "
                    "unigram frequencies (converges in far fewer steps); random: transformers' random init.",
    )
    log_every: int = Field(25, ge=1, description="Report the training loss every N steps.")
    seed: int = Field(42, description="Seed for data order and masking.")
    device: str = Field("auto", description="auto, cpu or cuda.")

class BaseModelSpec(_Settings):
    """Size and pretraining budget of a base model built from scratch."""

    vocab_size: int = Field(8000, ge=1, description="Upper bound on SentencePiece pieces.")
    hidden_size: int = Field(128, ge=1, description="Hidden size d (a multiple of num_heads).")
    num_layers: int = Field(4, ge=1, description="Transformer layers.")
    num_heads: int = Field(4, ge=1, description="Attention heads.")
    intermediate_size: int = Field(512, ge=1, description="FFN inner size.")
    max_length: int = Field(128, ge=1, description="Tokens per pretraining sequence.")
    steps: int = Field(2000, ge=1, description="Pretraining optimizer steps.")
    batch_size: int = Field(32, ge=1, description="Sequences per step.")
    learning_rate: float = Field(5e-4, gt=0, description="Peak AdamW learning rate.")
    warmup_steps: int = Field(100, ge=0, description="Linear warm-up steps.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Hidden and attention dropout.")
    seed: int = Field(0, description="Seed for init, data order and masking.")
    device: str = Field("auto", description="auto, cpu or cuda.")

    @model_validator(mode="after")
    def _whole_heads(self) -> BaseModelSpec:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be a multiple of num_heads {self.num_heads}")
        return self
