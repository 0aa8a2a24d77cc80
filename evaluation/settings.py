"""The settings of zero-shot evaluation that belong to the domain (what the setups are is
evaluation/setups.py): the thresholds of the label-free harm guard (evaluation/harm.py).

A pydantic model that imports neither torch nor transformers, so a config is validated in a
fraction of a second. Each field's description is what docs/configuration.md shows.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HarmGuard(BaseModel):
    """When a target language adapter looks harmful, measured without target labels: how much
    swapping it in for the source-language adapter under the task adapter (setup `madx` against
    `en-la`) changes what the tagger predicts on the target's test text. Needs both setups scored.

    Like the other stage settings: frozen, no unknown keys, strict types, finite numbers only."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    # Calibrated on MasakhaPOS dev (docs/RESULTS.md): the Kinyarwanda adapter that cost 33 points had
    # agreement 37 % and TV 0.55; centred adapters 85-93 % and at most 0.09; uncentred ones that moved many
    # labels without harm (Zulu +10 points) up to TV 0.30. Between those the thresholds sit.
    max_label_tv: float = Field(
        0.35, ge=0, le=1,
        description="Flag the target adapter when the total variation distance between the predicted-label "
                    "distributions under `madx` and `en-la` is above this (0: identical label shares, 1: disjoint).",
    )
    min_label_agreement: float = Field(
        0.5, ge=0, le=1,
        description="Flag the target adapter when the share of words labelled the same under `madx` and `en-la` "
                    "is below this.",
    )

    def to_dict(self) -> dict[str, float]:
        return self.model_dump()
