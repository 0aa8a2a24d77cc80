"""How far a language adapter moves the states a task adapter reads: its drift budget.

Why. A language adapter that learns its language well can still move the encoder's states so far
that a task adapter trained under the source language's adapter no longer reads them: measured on
MasakhaPOS Igbo dev (multilingual-e5-small), madx − en-la was −1.6 points with the Igbo adapter
stopped at 75 steps and −3.7 at 100 (task-adapter seeds 1-3), −5.6 at 150 (seed 1), while its
held-out perplexity kept falling (from ~1,500 at step 0 to 311, 232 and 186). Perplexity cannot see this; the drift can, and
it needs no labels: the mean over a language's held-out tokens of ||h_adapter - h_base|| / ||h_base||,
h the final hidden states (what the task adapter's head reads) with the adapter active and with no
adapter. Training stops once the (centred, when `center` is set) adapter's drift passes
`language_adapter.max_drift`, and keeps the best held-out checkpoint within it. docs/RESULTS.md has
the measurements that chose the budget.

The formula is the label-free guard's (`madx.drift.HiddenDrift`), there between two adapters
under a task adapter; here between an adapter and the bare base, so it is known before any task
adapter exists.
"""

from __future__ import annotations

import torch

from language_adapters.mlm import pad_batch
from madx.composition import Stack
from madx.drift import HiddenDrift
from madx.model import AdapterModel


# The bare base's states are the same at every measurement of a training run: kept up to this many
# bytes (a 2 % held-out split of a news corpus at 64 x 384: ~20 MB), recomputed beyond it.
BASE_STATE_CACHE_BYTES = 256 * 2**20


class DriftMeter:
    """The drift of an adapter over fixed `sequences` (token ids of its language): the mean over their
    text tokens of ||h_adapter - h_base|| / ||h_base||, h the final hidden states, the adapter active
    against no adapter. Measured at every evaluation of a training run, so the base's states, which
    do not change, are computed once (within BASE_STATE_CACHE_BYTES)."""

    def __init__(self, sequences: list[list[int]], pad_token_id: int, special_token_ids: set[int], batch_size: int,
                 device: torch.device | str = "cpu") -> None:
        specials = torch.tensor(sorted(special_token_ids), dtype=torch.long, device=device)
        self.batches = []
        for start in range(0, len(sequences), batch_size):
            ids, attention = pad_batch(sequences[start:start + batch_size], pad_token_id)
            ids, attention = ids.to(device), attention.to(device)
            self.batches.append((ids, attention, attention.bool() & ~torch.isin(ids, specials)))
        self._base: dict[int, torch.Tensor] = {}
        self._cached_bytes = 0

    @torch.no_grad()
    def __call__(self, am: AdapterModel, name: str) -> float:
        previous, was_training = (am.active, am.skip_layers), am.model.training
        am.model.eval()
        drift = HiddenDrift()
        try:
            for index, (ids, attention, text) in enumerate(self.batches):
                base = self._base.get(index)
                if base is None:
                    am.set_active(None)
                    base = am.model.base_model(input_ids=ids, attention_mask=attention)[0]
                    if self._cached_bytes + base.nbytes <= BASE_STATE_CACHE_BYTES:
                        self._base[index] = base
                        self._cached_bytes += base.nbytes
                am.set_active(Stack(name))
                drift.add(am.model.base_model(input_ids=ids, attention_mask=attention)[0], base, text)
        finally:
            am.set_active(*previous)
            am.model.train(was_training)
        return drift.mean
