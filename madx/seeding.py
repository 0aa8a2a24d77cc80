"""Randomness a training stage owns, so the same seed gives the same weights however many stages run
at once in the process.

torch has one process-wide CPU generator. Two stages training in threads of one process (Prefect's
thread runner) would both draw dropout masks and initial weights from it, in an order set by the
thread scheduler: every adapter then differs from run to run. Here each stage draws

- its initial weights under `seeded_global_rng(seed)`: the process-wide generator, seeded, held by
  one lock (initialisation happens in constructors, `from_pretrained` and the adapter core, which
  know no other generator), and restored afterwards;
- its dropout masks from a `torch.Generator` of its own (`own_dropout`): every `nn.Dropout` of the
  model becomes a `GeneratorDropout`, and attention-probability dropout, which transformers applies
  inside the attention function, goes through the module's `GeneratorDropout` too.

Data order and MLM masks already use their own generators (`language_adapters.mlm`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

# Held while the process-wide generator is seeded and drawn from; reentrant, so a seeded block may
# load a model that seeds again.
_GLOBAL_RNG = threading.RLock()

ATTENTION = "madx_owned_dropout"  # the attention implementation registered below

# Bumped whenever what a seed produces changes (how seeds are derived, which generator draws what):
# it is part of every adapter's cache key, so an adapter made under older rules is retrained.
SEEDING_VERSION = 1


def derive_seed(seed: int, *identity: Any) -> int:
    """A seed for one stage from the configured seed and what the stage is (kind, language, task):
    two stages of one run never share a random stream, and the same stage of two runs always does."""
    text = json.dumps([seed, *identity], sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1  # fits torch's int64 seed


@contextlib.contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """Run a block that draws from torch's process-wide generator (weight initialisation) with that
    generator seeded to `seed`, while no other thread of this process draws from it; the generator's
    previous state is restored afterwards."""
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class GeneratorDropout(nn.Dropout):
    """`nn.Dropout` drawing its masks from its own generator (same `p`, same scaling by 1 / (1 - p))."""

    def __init__(self, p: float, generator: torch.Generator):
        super().__init__(p)
        self.generator = generator

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return hidden
        if self.p == 1.0:
            return torch.zeros_like(hidden)
        keep = torch.empty_like(hidden).bernoulli_(1.0 - self.p, generator=self.generator)
        return hidden * keep / (1.0 - self.p)


def own_dropout(model: nn.Module, generator: torch.Generator) -> int:
    """Make every dropout of `model` draw from `generator`; returns how many modules were replaced.

    The generator must live on the model's device. Attention-probability dropout is applied by the
    attention function, not a module, so the model is switched to `ATTENTION`: the same computation,
    with that dropout taken from the attention module's own `dropout` (now a `GeneratorDropout`)."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:  # exactly nn.Dropout: a GeneratorDropout is left as it is
                setattr(parent, name, GeneratorDropout(child.p, generator))
                replaced += 1
            elif isinstance(child, GeneratorDropout):
                child.generator = generator
    if hasattr(model, "set_attn_implementation"):
        _register_attention()
        model.set_attn_implementation(ATTENTION)
    return replaced


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(ATTENTION, _attention_with_owned_dropout)
        # The padding mask is built per implementation name; without this one it would be None.
        AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def _attention_with_owned_dropout(module, query, key, value, attention_mask, dropout: float = 0.0,
                                  scaling: float | None = None, **kwargs):
    """SDPA without dropout (evaluation: the numbers of the default implementation); with dropout,
    eager attention whose probabilities go through the module's own GeneratorDropout."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    owned = getattr(module, "dropout", None)
    if dropout == 0.0 or not isinstance(owned, GeneratorDropout):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    # query/key/value: (batch, heads, length, head_dim); the mask is additive, broadcast over heads.
    scaling = scaling if scaling is not None else query.size(-1) ** -0.5
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
        else:
            weights = weights + attention_mask
    weights = owned(torch.softmax(weights, dim=-1))
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()  # (batch, length, heads, head_dim)
    return output, weights
