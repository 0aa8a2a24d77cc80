"""`AdapterModel`: add, activate, freeze and count adapters on one loaded transformers model.

The base model is loaded once; adapters are small modules added beside its weights. Activating a
different setup (e.g. swapping the language adapter under a task adapter) only changes which names
each block runs, so it costs microseconds and never touches the base weights.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from madx.composition import Stack, as_stack
from madx.config import AdapterConfig, resolve_config
from madx.errors import ConfigError
from madx.layers import Bottleneck, invertible_adapter
from madx.surgery import Sites, inject, set_path

_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True)
class ParameterCount:
    trainable: int
    total: int

    @property
    def fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.trainable:,} trainable of {self.total:,} parameters ({100 * self.fraction:.2f} %)"


class AdapterModel:
    """Adapters on a transformers encoder (`*Model`, `*ForMaskedLM`, `*ForTokenClassification`).

    >>> am = AdapterModel(AutoModelForMaskedLM.from_pretrained("xlm-roberta-base"))
    >>> am.add_adapter("sw", "madx_language")
    >>> am.train_adapter("sw")      # freezes everything else; Stack("sw") is now active
    """

    def __init__(self, model: PreTrainedModel):
        self.model = model
        self.sites: Sites = inject(model)
        self.configs: dict[str, AdapterConfig] = {}
        self.active: Stack | None = None
        self.skip_layers: frozenset[int] = frozenset()
        self.head_adapter: str | None = None  # the adapter whose saved head is the token head (madx.adapter_files.load_adapter)

    # -- facts about the base model ----------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return len(self.sites.ffn_blocks)

    @property
    def model_type(self) -> str:
        return str(self.model.config.model_type)

    def _reference_parameter(self) -> torch.Tensor:
        return next(self.model.parameters())

    # -- adding and removing -----------------------------------------------------------------------
    def add_adapter(
        self, name: str, config: AdapterConfig | str | dict = "madx_task", *, init: bool = True
    ) -> AdapterConfig:
        """Add a freshly initialised adapter called `name` to every layer not in `leave_out`.

        `init=False` allocates the weights without drawing them (their values are undefined): for a
        caller that overwrites every weight next, as `madx.adapter_files.load_adapter` does. The random init
        is most of the time of loading an adapter (xlmr-base LA: ~70 of ~85 ms).
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"adapter names use letters, digits, '_' and '-' only; got {name!r}")
        if name in self.configs:
            raise ConfigError(f"this model already has an adapter named {name!r}")
        config = resolve_config(config)
        too_deep = [i for i in config.leave_out if i >= self.num_layers]
        if too_deep:
            raise ConfigError(f"leave_out {too_deep} names layers this {self.num_layers}-layer model does not have")
        reference = self._reference_parameter()

        def build(make) -> nn.Module:
            if init:
                return make().to(reference.device, reference.dtype)
            with torch.device("meta"):  # shapes only: no memory, no random draws
                module = make()
            return module.to_empty(device=reference.device).to(reference.dtype)

        for index, (ffn, attention) in enumerate(zip(self.sites.ffn_blocks, self.sites.attention_blocks)):
            if index in config.leave_out:
                continue
            if config.after_ffn:
                ffn.adapters[name] = build(lambda: Bottleneck(self.hidden_size, config))
            if config.after_attention:
                attention.adapters[name] = build(lambda: Bottleneck(self.hidden_size, config))
        if config.invertible:
            self.sites.invertible[name] = build(lambda: invertible_adapter(self.hidden_size, config))
        self.configs[name] = config
        return config

    def delete_adapter(self, name: str) -> None:
        self._require(name)
        if self.active is not None and name in self.active:
            self.set_active(None)
        for block in self._blocks():
            if name in block.adapters:
                del block.adapters[name]
        if name in self.sites.invertible:
            del self.sites.invertible[name]
        del self.configs[name]

    def adapter_modules(self, name: str) -> dict[str, nn.Module]:
        """The modules of one adapter under model-independent keys (`layers.3.ffn`, `invertible`)."""
        self._require(name)
        modules: dict[str, nn.Module] = {}
        for index, (ffn, attention) in enumerate(zip(self.sites.ffn_blocks, self.sites.attention_blocks)):
            if name in ffn.adapters:
                modules[f"layers.{index}.ffn"] = ffn.adapters[name]
            if name in attention.adapters:
                modules[f"layers.{index}.attention"] = attention.adapters[name]
        if name in self.sites.invertible:
            modules["invertible"] = self.sites.invertible[name]
        return modules

    # -- composition -------------------------------------------------------------------------------
    def set_active(self, setup: Stack | str | list[str] | None, skip_layers: Iterable[int] = ()) -> None:
        """Run `setup` in every forward from now on; None runs the bare base model.

        `skip_layers` runs no adapter in those layers (MAD-X 2.0 drops the last layer's adapters at
        test time; AdapterDrop drops the first k for speed). The invertible adapter of the Stack's
        first adapter, if it has one, runs on the embeddings (and its inverse in an MLM head).
        """
        stack = as_stack(setup)
        if stack is not None:
            for name in stack:
                self._require(name)
        skip = frozenset(int(i) for i in skip_layers)
        for index, (ffn, attention) in enumerate(zip(self.sites.ffn_blocks, self.sites.attention_blocks)):
            for block in (ffn, attention):
                runs = () if stack is None or index in skip else tuple(n for n in stack if n in block.adapters)
                block.active = runs
        first = stack.first if stack is not None else None
        self.sites.invertible.active = first if first in self.sites.invertible else None
        self.active, self.skip_layers = stack, skip

    # -- training ----------------------------------------------------------------------------------
    def train_adapter(self, name: str, train_head: bool = False) -> ParameterCount:
        """Freeze every weight except adapter `name` (and the token head if `train_head`).

        Keeps the current active setup if it contains `name` (e.g. Stack("en", "ner") trains "ner"
        on top of the frozen "en"), otherwise activates `name` alone.
        """
        self._require(name)
        if self.active is None or name not in self.active:
            self.set_active(name)
        self.model.requires_grad_(False)
        for module in self.adapter_modules(name).values():
            module.requires_grad_(True)
        if train_head:
            head = self.token_head
            if head is None:
                raise ConfigError(f"{type(self.model).__name__} has no token-classification head to train")
            head.requires_grad_(True)
        return self.parameter_count()

    def parameter_count(self) -> ParameterCount:
        params = list(self.model.parameters())  # shared (tied) weights appear once
        return ParameterCount(
            trainable=sum(p.numel() for p in params if p.requires_grad),
            total=sum(p.numel() for p in params),
        )

    def adapter_parameter_count(self, name: str) -> int:
        return sum(p.numel() for module in self.adapter_modules(name).values() for p in module.parameters())

    # -- the token-classification head -------------------------------------------------------------
    @property
    def token_head(self) -> nn.Linear | None:
        path = self.sites.token_classifier_path
        return None if path is None else self.model.get_submodule(path)

    def new_token_head(self, id2label: dict[int, str]) -> nn.Linear:
        """Replace the token-classification head by a fresh one for `id2label`'s labels."""
        path = self.sites.token_classifier_path
        if path is None:
            raise ConfigError(f"{type(self.model).__name__} has no token-classification head")
        labels = {int(i): str(label) for i, label in id2label.items()}
        if sorted(labels) != list(range(len(labels))):
            raise ConfigError(f"label ids must be 0..n-1, got {sorted(labels)}")
        reference = self._reference_parameter()
        head = nn.Linear(self.hidden_size, len(labels)).to(reference.device, reference.dtype)
        nn.init.normal_(head.weight, std=getattr(self.model.config, "initializer_range", 0.02))
        nn.init.zeros_(head.bias)
        set_path(self.model, path, head)
        # The model's loss reshapes logits with `self.num_labels`; keep config and model in step.
        self.model.num_labels = len(labels)
        self.model.config.num_labels = len(labels)
        self.model.config.id2label = labels
        self.model.config.label2id = {label: i for i, label in labels.items()}
        return head

    # -- helpers -----------------------------------------------------------------------------------
    def _blocks(self):
        yield from self.sites.ffn_blocks
        yield from self.sites.attention_blocks

    def _require(self, name: str) -> None:
        if name not in self.configs:
            known = ", ".join(sorted(self.configs)) or "none"
            raise ConfigError(f"no adapter named {name!r} in this model (adapters: {known})")
