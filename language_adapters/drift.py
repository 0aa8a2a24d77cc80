"""How far a language adapter moves the states a task adapter reads: its drift budget.

Why. A language adapter that learns its language well can still move the encoder's states so far
that a task adapter trained under the source language's adapter no longer reads them: measured on
MasakhaPOS Igbo dev (multilingual-e5-small, three task-adapter seeds), madx − en-la was −1.6 points
with the Igbo adapter stopped at 75 steps, −3.7 at 100 and −5.6 at 150, while its held-out
perplexity kept falling (1,496 -> 311 -> 232 -> 186). Perplexity cannot see this; the drift can, and
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


@torch.no_grad()
def final_state_drift(am: AdapterModel, name: str, sequences: list[list[int]], pad_token_id: int,
                      special_token_ids: set[int], batch_size: int, device: torch.device | str = "cpu") -> float:
    """Mean relative move of the final hidden states over the text tokens of `sequences` (token ids
    of adapter `name`'s language), adapter `name` active against no adapter (the bare base)."""
    previous, was_training = (am.active, am.skip_layers), am.model.training
    am.model.eval()
    drift = HiddenDrift()
    specials = torch.tensor(sorted(special_token_ids), dtype=torch.long)
    try:
        for start in range(0, len(sequences), batch_size):
            ids, attention = pad_batch(sequences[start:start + batch_size], pad_token_id)
            ids, attention = ids.to(device), attention.to(device)
            text = attention.bool() & ~torch.isin(ids, specials.to(device))
            states = {}
            for setup in (Stack(name), None):
                am.set_active(setup)
                states[setup is None] = am.model.base_model(input_ids=ids, attention_mask=attention)[0]
            drift.add(states[False], states[True], text)
    finally:
        am.set_active(*previous)
        am.model.train(was_training)
    return drift.mean
