"""Typed adapter configurations and the named presets.

A config says *what* an adapter is; `madx.layers` computes it and `madx.surgery` decides where it
goes. Field names follow the reference library (`adapters` 1.3.0) where it has the same concept,
so AdapterHub configs map onto ours one field at a time.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from madx.errors import ConfigError

NON_LINEARITIES = ("relu", "gelu", "swish", "silu", "tanh")
INVERTIBLE_KINDS = ("nice", "glow")


@dataclass(frozen=True)
class AdapterConfig:
    """A bottleneck adapter, optionally with an invertible adapter on the embeddings."""

    reduction_factor: float = field(
        default=16, metadata={"help": "Bottleneck size m = hidden_size // reduction_factor."}
    )
    non_linearity: str = field(
        default="relu", metadata={"help": f"Activation inside the bottleneck: one of {NON_LINEARITIES}."}
    )
    after_ffn: bool = field(
        default=True, metadata={"help": "Place an adapter in each layer's FFN output block (Pfeiffer)."}
    )
    after_attention: bool = field(
        default=False,
        metadata={"help": "Also place one in each attention output block (Houlsby places both)."},
    )
    original_ln_before: bool = field(
        default=True,
        metadata={
            "help": "Feed the adapter LN(h + x) instead of h. True for Pfeiffer/MAD-X; the reference "
            "Houlsby config uses False."
        },
    )
    leave_out: tuple[int, ...] = field(
        default=(), metadata={"help": "Layer indices (0-based) that get no adapter."}
    )
    invertible: Literal["nice", "glow"] | None = field(
        default=None,
        metadata={"help": "Invertible adapter on the embeddings (language adapters): nice, glow or none."},
    )
    invertible_reduction_factor: float = field(
        default=2, metadata={"help": "Hidden size of the coupling networks = half of d // this."}
    )
    init_std: float = field(
        default=0.02,
        metadata={"help": "'bert' init: weights ~ N(0, init_std), biases 0, so a new adapter is near identity."},
    )

    def __post_init__(self) -> None:
        # Types first (a hand-edited adapter_config.json may say "two" or 5), naming the key; then
        # normalise (JSON/YAML give lists), then validate. All idempotent, so a config rebuilt from
        # its own dict (Prefect does this) is equal to the original.
        for name in ("reduction_factor", "invertible_reduction_factor", "init_std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        for name in ("after_ffn", "after_attention", "original_ln_before"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.non_linearity, str):
            raise ConfigError(f"non_linearity must be one of {NON_LINEARITIES}, got {self.non_linearity!r}")
        if not isinstance(self.leave_out, (list, tuple)) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in self.leave_out):
            raise ConfigError(f"leave_out must be a list of layer indices, got {self.leave_out!r}")
        object.__setattr__(self, "leave_out", tuple(sorted({int(i) for i in self.leave_out})))
        if self.reduction_factor <= 0:
            raise ConfigError(f"reduction_factor must be > 0, got {self.reduction_factor}")
        if self.non_linearity.lower() not in NON_LINEARITIES:
            raise ConfigError(f"non_linearity must be one of {NON_LINEARITIES}, got {self.non_linearity!r}")
        object.__setattr__(self, "non_linearity", self.non_linearity.lower())
        if not (self.after_ffn or self.after_attention):
            raise ConfigError("an adapter needs at least one placement: after_ffn or after_attention")
        if self.invertible is not None and self.invertible not in INVERTIBLE_KINDS:
            raise ConfigError(f"invertible must be one of {INVERTIBLE_KINDS} or null, got {self.invertible!r}")
        if self.invertible_reduction_factor <= 0:
            raise ConfigError(f"invertible_reduction_factor must be > 0, got {self.invertible_reduction_factor}")
        if any(i < 0 for i in self.leave_out):
            raise ConfigError(f"leave_out holds layer indices >= 0, got {list(self.leave_out)}")
        if self.init_std <= 0:
            raise ConfigError(f"init_std must be > 0, got {self.init_std}")

    def bottleneck_size(self, hidden_size: int) -> int:
        size = int(hidden_size // self.reduction_factor)
        if size < 1:
            raise ConfigError(
                f"reduction_factor {self.reduction_factor} leaves no bottleneck for hidden size {hidden_size}"
            )
        return size

    def replace(self, **changes: Any) -> AdapterConfig:
        return AdapterConfig.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["leave_out"] = list(self.leave_out)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown adapter config keys {unknown}; expected some of {sorted(known)}")
        return cls(**data)


PRESETS: dict[str, AdapterConfig] = {
    # MAD-X language adapter: Pfeiffer placement, rf 2, with a NICE invertible adapter (rf 2).
    "madx_language": AdapterConfig(reduction_factor=2, invertible="nice", invertible_reduction_factor=2),
    # MAD-X task adapter: Pfeiffer placement, rf 16.
    "madx_task": AdapterConfig(reduction_factor=16),
    "pfeiffer": AdapterConfig(reduction_factor=16),
    # Houlsby as the reference defines it (DoubleSeqBnConfig): both placements, swish, and the
    # adapter reads h itself rather than LN(h + x).
    "houlsby": AdapterConfig(
        reduction_factor=16, non_linearity="swish", after_attention=True, original_ln_before=False
    ),
}


def preset(name: str, **overrides: Any) -> AdapterConfig:
    """A named preset, optionally with fields changed: `preset("madx_task", reduction_factor=8)`."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown adapter preset {name!r}; known presets: {sorted(PRESETS)}") from None
    return base.replace(**overrides) if overrides else base


# Language-adapter families: what each changes in the configured language adapter. The MAD-X paper's
# ablations train task adapters on each and compare them (the setups of evaluation/setups.py).
LANGUAGE_ADAPTER_FAMILIES: dict[str, dict[str, Any]] = {
    "madx": {},  # the language adapter as configured (MAD-X: with its invertible adapter)
    "noinv": {"invertible": None},  # MAD-X -INV: the same without the invertible adapter at the embeddings
}


def family_config(config: AdapterConfig | str | dict[str, Any], family: str) -> AdapterConfig:
    """The language-adapter config `config` as family `family` has it (LANGUAGE_ADAPTER_FAMILIES)."""
    try:
        changes = LANGUAGE_ADAPTER_FAMILIES[family]
    except KeyError:
        raise ConfigError(f"unknown language-adapter family {family!r}; known: {sorted(LANGUAGE_ADAPTER_FAMILIES)}") from None
    resolved = resolve_config(config)
    return resolved.replace(**changes) if changes else resolved


def resolve_config(config: AdapterConfig | str | dict[str, Any]) -> AdapterConfig:
    """Accept a config object, a preset name, or a dict (optionally with a `preset` key)."""
    if isinstance(config, AdapterConfig):
        return config
    if isinstance(config, str):
        return preset(config)
    if isinstance(config, dict):
        data = dict(config)
        name = data.pop("preset", None)
        return preset(name, **data) if name else AdapterConfig.from_dict(data)
    raise ConfigError(f"an adapter config must be a preset name, a dict or AdapterConfig, got {type(config).__name__}")


def checked_adapter_spec(spec: str | dict[str, Any]) -> str | dict[str, Any]:
    """`spec` (a preset name or config dict, as a pipeline config writes it) unchanged when an adapter
    config can be built from it, else ValueError with the reason: what a settings model's validator
    needs, so a bad spec is said at load, not after the model has loaded."""
    try:
        resolve_config(spec)
    except ConfigError as error:
        raise ValueError(str(error)) from None
    return spec

