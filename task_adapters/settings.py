"""The settings of task-adapter training, as a pipeline config names them (the labeled data
itself is a tagging.sources.LabeledSource).

A plain dataclass that imports neither torch nor transformers, so a config is validated in a
fraction of a second. Each field's `help` is what docs/configuration.md shows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from madx.config import resolve_config
from madx.errors import ConfigError


@dataclass(frozen=True)
class TaskAdapterTraining:
    """Hyperparameters of task-adapter training (MAD-X trained NER task adapters with lr 1e-4,
    batch 16, many epochs; small data and small models like a higher learning rate)."""

    epochs: int = field(default=10, metadata={"help": "Passes over the training set."})
    batch_size: int = field(default=16, metadata={"help": "Sentences (windows) per step."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak AdamW learning rate."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Share of steps spent warming up."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_length: int = field(default=128, metadata={"help": "Sub-tokens per row; longer sentences are split."})
    eval_batch_size: int = field(default=64, metadata={"help": "Rows per inference batch."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0: off)."})
    strict_iob2: bool = field(default=True, metadata={"help": "Reject training data with an I- tag after O."})
    seed: int = field(default=42, metadata={"help": "Seed for init and data order."})
    min_gain_over_majority: float = field(
        default=0.05,
        metadata={"help": "The best dev score must beat the majority-label baseline (always the most frequent "
                          "training label) by this much (0.05 = 5 points), or the run fails and nothing is saved."},
    )
    adapter: str | dict = field(default="madx_task", metadata={"help": "Adapter preset name or config dict."})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda."})

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_length", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"task adapter training: {name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.min_gain_over_majority < 1:
            raise ConfigError(f"min_gain_over_majority must be in [0, 1), got {self.min_gain_over_majority}")
        resolve_config(self.adapter)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
