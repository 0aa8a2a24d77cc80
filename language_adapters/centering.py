"""Centre a trained language adapter on its own language: its mean output at every layer becomes 0.

Why. On a small MLM budget a language adapter learns mostly a constant: measured on
multilingual-e5-small after 60 steps, 92-99 % of each layer's adapter output (its norm averaged
over tokens) is the same vector for every token, and for every text, English or Kinyarwanda alike.
That constant is the language's "where the states sit" shift, and it is what the task adapter
learns to read under the source-language adapter. Swapping in the target's adapter swaps that
constant too, and moves every state the task adapter reads: Kinyarwanda POS fell from 66 % (source
adapter kept) to 33 % (target adapter swapped in). With each adapter centred on its own language's
text, the task adapter sees states whose language-specific mean is gone, and what an adapter still
adds is what depends on the input (docs/RESULTS.md has the measurements). It is the adapter form of
removing each language's mean representation, which makes multilingual encoders' states more
language-neutral (Libovický et al., 2020).

How. One forward pass of a sample of the adapter's own training text with the adapter active, in
one batch; a hook on each bottleneck adapter, in forward order, takes the mean of its output over
the real tokens and subtracts it from the adapter's output bias (and from the output it passes on),
so every layer is centred on the inputs the centred layers below it give: exact, no iteration.
The adapter keeps its architecture and format (only `adapter_up.bias` changes), so it exports to
AdapterHub unchanged.
"""

from __future__ import annotations

import torch

from language_adapters.mlm import pad_batch
from madx.composition import Stack
from madx.model import AdapterModel
from madx.surgery import AdapterBlock

# Sequences the means are taken over: ~8k tokens at 64 per sequence, enough for a mean of a
# 384-768-wide vector to settle (measured: the means of two disjoint samples of 128 differ by < 2 %).
CENTERING_SEQUENCES = 128


@torch.no_grad()
def center_language_adapter(am: AdapterModel, name: str, sequences: list[list[int]], pad_token_id: int,
                            device: torch.device | str = "cpu") -> list[float]:
    """Make adapter `name`'s mean output over `sequences` (token ids of its own language) zero at
    every layer. Returns the norm of each layer's mean before it was removed (what was taken out)."""
    ids, attention = pad_batch(sequences, pad_token_id)
    real = attention.reshape(-1).bool().to(device)
    removed: list[float] = []

    def center(adapter, _inputs, output):
        flat = output.reshape(-1, output.shape[-1])
        mean = flat[real].mean(dim=0)
        removed.append(float(mean.norm()))
        adapter.adapter_up.bias.sub_(mean)
        return output - mean

    hooks = [block.adapters[name].register_forward_hook(center)
             for block in am.model.modules() if isinstance(block, AdapterBlock) and name in block.adapters]
    previous, was_training = (am.active, am.skip_layers), am.model.training
    am.set_active(Stack(name))
    am.model.eval()
    try:
        am.model.base_model(input_ids=ids.to(device), attention_mask=attention.to(device))
    finally:
        for hook in hooks:
            hook.remove()
        am.set_active(*previous)
        am.model.train(was_training)
    return removed
