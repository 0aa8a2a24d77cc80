"""The settings of task-adapter training, as a pipeline config names them (the labeled data
itself is a tagging.sources.LabeledSource).

A pydantic model that imports neither torch nor transformers, so a config is validated in a
fraction of a second. Each field's description is what docs/configuration.md shows.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from madx.config import checked_adapter_spec


class TaskAdapterTraining(BaseModel):
    """Hyperparameters of task-adapter training (MAD-X trained NER task adapters with lr 1e-4,
    batch 16, many epochs; small data and small models like a higher learning rate).

    Like language_adapters.settings: frozen, no unknown keys, strict types, finite numbers only."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    epochs: int = Field(10, ge=1, description="Passes over the training set.")
    batch_size: int = Field(16, ge=1, description="Sentences (windows) per step.")
    learning_rate: float = Field(1e-4, gt=0, description="Peak AdamW learning rate.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps spent warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_length: int = Field(128, ge=1, description="Sub-tokens per row; longer sentences are split.")
    eval_batch_size: int = Field(64, ge=1, description="Rows per inference batch.")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm (0: off).")
    strict_iob2: bool = Field(True, description="Reject training data with an I- tag after O.")
    seed: int = Field(42, description="Seed for init and data order.")
    min_gain_over_majority: float = Field(
        0.05, ge=0, lt=1,
        description="The best dev score must beat the majority-label baseline (always the most frequent training "
                    "label) by this much (0.05 = 5 points), or the run fails and nothing is saved.",
    )
    adapter: Annotated[str | dict[str, Any], AfterValidator(checked_adapter_spec)] = Field(
        "madx_task", description="Adapter preset name or config dict.")
    device: str = Field("auto", description="auto, cpu or cuda.")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (cache keys and MLflow params hash and log it)."""
        return self.model_dump()
