"""The adapter modules: a bottleneck, and two invertible couplings for the embeddings.

Each module computes; it does not know where it sits in a model (that is `madx.surgery`).
Parameter names follow the reference library (`adapter_down.0`, `adapter_up`, `F.0`, `G.2`) so that
AdapterHub state dicts map onto ours by renaming prefixes only.
"""

from __future__ import annotations

import torch
from torch import nn

from madx.config import AdapterConfig


def activation(name: str) -> nn.Module:
    # swish and silu are the same function, x * sigmoid(x); gelu is the exact (erf) form.
    return {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU, "silu": nn.SiLU, "tanh": nn.Tanh}[name]()


def init_bert(module: nn.Module, std: float) -> None:
    """The reference's "bert" init: Linear weights ~ N(0, std), biases zero. A module built on the
    meta device (shapes only, to be loaded next) is left alone: it has no values to draw, and
    drawing on meta tensors is slow."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear) and not sub.weight.is_meta:
            nn.init.normal_(sub.weight, mean=0.0, std=std)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)


class Bottleneck(nn.Module):
    """A(z) = up(act(down(z))): d -> m -> d. The residual and LayerNorms live in the block around it."""

    def __init__(self, hidden_size: int, config: AdapterConfig):
        super().__init__()
        size = config.bottleneck_size(hidden_size)
        self.adapter_down = nn.Sequential(nn.Linear(hidden_size, size), activation(config.non_linearity))
        self.adapter_up = nn.Linear(size, hidden_size)
        self.original_ln_before = config.original_ln_before  # read by the AdapterBlock around it
        init_bert(self, config.init_std)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.adapter_up(self.adapter_down(z))


def _coupling_net(size_in: int, size_hidden: int, size_out: int, non_linearity: str) -> nn.Sequential:
    return nn.Sequential(nn.Linear(size_in, size_hidden), activation(non_linearity), nn.Linear(size_hidden, size_out))


def _split_sizes(hidden_size: int) -> tuple[int, int]:
    # The last dimension splits into halves e1 | e2; with an odd size e2 is one larger.
    return hidden_size // 2, hidden_size - hidden_size // 2


class NICECoupling(nn.Module):
    """Additive coupling (Dinh et al. 2015), exactly invertible whatever F and G compute.

    forward:  y1 = e1 + F(e2);  y2 = e2 + G(y1)
    inverse:  x2 = y2 - G(y1);  x1 = y1 - F(x2)
    Hidden sizes follow the reference: each net's hidden size is its *input* size // rf, so F is
    s2 -> s2 // rf -> s1 and G is s1 -> s1 // rf -> s2 (they differ from s1 // rf only for odd d).
    """

    def __init__(self, hidden_size: int, config: AdapterConfig):
        super().__init__()
        self.split = _split_sizes(hidden_size)
        s1, s2 = self.split
        rf = config.invertible_reduction_factor
        self.F = _coupling_net(s2, int(s2 // rf), s1, config.non_linearity)
        self.G = _coupling_net(s1, int(s1 // rf), s2, config.non_linearity)
        init_bert(self, config.init_std)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        e1, e2 = torch.split(e, self.split, dim=-1)
        y1 = e1 + self.F(e2)
        y2 = e2 + self.G(y1)
        return torch.cat((y1, y2), dim=-1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        y1, y2 = torch.split(y, self.split, dim=-1)
        x2 = y2 - self.G(y1)
        x1 = y1 - self.F(x2)
        return torch.cat((x1, x2), dim=-1)


class GlowCoupling(nn.Module):
    """Affine coupling (RealNVP/Glow): each half is scaled and shifted by a net of the other half.

    forward:  y1 = e1 * exp(s1(e2)) + t1(e2);  y2 = e2 * exp(s2(y1)) + t2(y1)
    inverse:  x2 = (y2 - t2(y1)) * exp(-s2(y1));  x1 = (y1 - t1(x2)) * exp(-s1(x2))
    The log-scales pass through `clamp * tanh(s / clamp)`: bounded, so exp never overflows and the
    inverse stays accurate; near zero it is the identity, so a fresh coupling is close to identity.
    (The reference's GLOW block cannot run inside a transformer: it splits and concatenates on the
    sequence dimension. This one works on the hidden dimension like NICE.)
    """

    clamp = 1.0  # scales stay within [e^-1, e]: plenty for an adapter, and the inverse stays float32-exact

    def __init__(self, hidden_size: int, config: AdapterConfig):
        super().__init__()
        self.split = _split_sizes(hidden_size)
        s1, s2 = self.split
        rf = config.invertible_reduction_factor
        # Each net outputs [log-scale | shift] for the half it transforms.
        self.F = _coupling_net(s2, int(s1 // rf), 2 * s1, config.non_linearity)
        self.G = _coupling_net(s1, int(s2 // rf), 2 * s2, config.non_linearity)
        init_bert(self, config.init_std)

    def _scale_shift(self, net: nn.Module, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_scale, shift = net(condition).chunk(2, dim=-1)
        return self.clamp * torch.tanh(log_scale / self.clamp), shift

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        e1, e2 = torch.split(e, self.split, dim=-1)
        s, t = self._scale_shift(self.F, e2)
        y1 = e1 * torch.exp(s) + t
        s, t = self._scale_shift(self.G, y1)
        y2 = e2 * torch.exp(s) + t
        return torch.cat((y1, y2), dim=-1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        y1, y2 = torch.split(y, self.split, dim=-1)
        s, t = self._scale_shift(self.G, y1)
        x2 = (y2 - t) * torch.exp(-s)
        s, t = self._scale_shift(self.F, x2)
        x1 = (y1 - t) * torch.exp(-s)
        return torch.cat((x1, x2), dim=-1)


def invertible_adapter(hidden_size: int, config: AdapterConfig) -> NICECoupling | GlowCoupling:
    kinds = {"nice": NICECoupling, "glow": GlowCoupling}
    return kinds[config.invertible](hidden_size, config)
