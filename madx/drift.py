"""How far one set of hidden states moved from another: the one formula behind the label-free harm
guard (evaluation/harm.py: the target adapter against the source adapter under a task adapter) and
a language adapter's drift budget (language_adapters/drift.py: an adapter against the bare base)."""

from __future__ import annotations

import math

import torch


class HiddenDrift:
    """The running mean of ||h_target - h_source|| / ||h_source|| over the positions handed in, so
    a test set's states never have to be held at once: `add` one batch of both setups' states at a time."""

    def __init__(self) -> None:
        self.total = 0.0
        self.positions = 0

    def add(self, target: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> None:
        """`target`, `source`: (batch, length, hidden) states of the same rows under the two setups;
        `mask`: (batch, length), True where a position counts (a word's sub-token, not padding or a
        special token)."""
        if target.shape != source.shape or target.shape[:2] != mask.shape:
            raise ValueError(f"states {tuple(target.shape)} and {tuple(source.shape)} with mask {tuple(mask.shape)}")
        moved = (target - source).double().norm(dim=-1)
        # a final hidden state comes out of a LayerNorm and is never 0; the floor only keeps a
        # hand-made zero state from dividing by zero
        scale = source.double().norm(dim=-1).clamp_min(1e-12)
        self.total += float((moved / scale)[mask].sum())
        self.positions += int(mask.sum())

    @property
    def mean(self) -> float:
        """NaN when no position was added."""
        return self.total / self.positions if self.positions else math.nan
