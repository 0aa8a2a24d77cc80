"""Where adapters go in a transformers model: one table, one injection mechanism.

Every supported encoder keeps the same shape of output block, `LN(dropout(dense(h_in)) + x)`, after
its attention and after its FFN. Surgery replaces each such block by an `AdapterBlock` that reuses
the block's own dense/dropout/LayerNorm modules under their own attribute names (so the base
model's state-dict keys do not change) and adds a `ModuleDict` of adapters. The invertible adapters
attach to the embeddings' output and to the MLM head's vocabulary projection through hooks: those
run once per forward, not once per layer.

Adding a model family whose blocks have this shape is adding a row to `ARCHITECTURES`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from madx.errors import UnsupportedModelError


@dataclass(frozen=True)
class BlockLayout:
    """Attribute names of an output block's parts."""

    dense: str = "dense"
    dropout: str = "dropout"
    layer_norm: str = "LayerNorm"


@dataclass(frozen=True)
class ArchitectureSpec:
    """Where one model family keeps the parts surgery touches (dotted attribute paths)."""

    layers: str  # from the base model: the list of transformer layers
    ffn_output: str  # from a layer: the block after the feed-forward network
    attention_output: str  # from a layer: the block after self-attention
    embeddings: str  # from the base model: the embedding module (its output feeds layer 0)
    mlm_head: str | None  # from the top model: the whole MLM head (transform + vocabulary projection)
    mlm_decoder: str | None  # from the top model: the vocabulary projection of the MLM head
    token_classifier: str | None  # from the top model: the token-classification Linear
    position_offset: int = 0  # position ids start here (RoBERTa-style models count from pad_id + 1)
    block: BlockLayout = BlockLayout()


_ROBERTA_LIKE = ArchitectureSpec(
    layers="encoder.layer",
    ffn_output="output",
    attention_output="attention.output",
    embeddings="embeddings",
    mlm_head="lm_head",
    mlm_decoder="lm_head.decoder",
    token_classifier="classifier",
    position_offset=2,
)

ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "xlm-roberta": _ROBERTA_LIKE,
    "roberta": _ROBERTA_LIKE,
    "camembert": _ROBERTA_LIKE,
    "bert": ArchitectureSpec(
        layers="encoder.layer",
        ffn_output="output",
        attention_output="attention.output",
        embeddings="embeddings",
        mlm_head="cls",
        mlm_decoder="cls.predictions.decoder",
        token_classifier="classifier",
    ),
}


def architecture_of(model: PreTrainedModel) -> ArchitectureSpec:
    model_type = getattr(model.config, "model_type", None)
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise UnsupportedModelError(
            f"model type {model_type!r} ({type(model).__name__}) is not supported; "
            f"supported model types: {sorted(ARCHITECTURES)}"
        ) from None


def max_sequence_length(config) -> int:
    """The longest input (special tokens included) a model's position embeddings can take."""
    return int(config.max_position_embeddings) - ARCHITECTURES[config.model_type].position_offset


def get_path(root: nn.Module, path: str) -> nn.Module:
    module = root
    for part in path.split("."):
        module = getattr(module, part)
    return module


def set_path(root: nn.Module, path: str, value: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(get_path(root, parent) if parent else root, name, value)


def find_path(root: nn.Module, path: str | None) -> nn.Module | None:
    """Like `get_path`, but None where the model has no such part (e.g. no MLM head)."""
    if path is None:
        return None
    try:
        return get_path(root, path)
    except AttributeError:
        return None


class AdapterBlock(nn.Module):
    """An output block `LN(dropout(dense(h_in)) + x)` with bottleneck adapters inside.

    With adapters `a_1..a_n` active (a Stack), h = dropout(dense(h_in)) and x the residual stream:
        h_0 = h;  h_i = A_i(LN(h_{i-1} + x)) + h_{i-1};  out = LN(h_n + x)
    The adapter reads the *normalised* sum but its residual is the pre-LN h: the reference's
    Pfeiffer form (original_ln_before, residual_before_ln, original_ln_after). An adapter with
    `original_ln_before=False` (Houlsby) reads h_{i-1} itself. With no adapter active this is
    exactly the original block.
    """

    def __init__(self, block: nn.Module, layout: BlockLayout):
        super().__init__()
        parts = (layout.dense, layout.dropout, layout.layer_norm)
        children = {name for name, _ in block.named_children()}
        if children != set(parts):
            raise UnsupportedModelError(
                f"{type(block).__name__} has parts {sorted(children)}; expected exactly {sorted(parts)}"
            )
        self.layout = layout
        # Same attribute names as the original block, so base weights keep their state-dict keys.
        for name in parts:
            self.add_module(name, getattr(block, name))
        self.adapters = nn.ModuleDict()
        self.active: tuple[str, ...] = ()  # set by AdapterModel.set_active, never by forward

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        layout = self.layout
        layer_norm = getattr(self, layout.layer_norm)
        h = getattr(self, layout.dropout)(getattr(self, layout.dense)(hidden_states))
        for name in self.active:
            adapter = self.adapters[name]
            z = layer_norm(h + input_tensor) if adapter.original_ln_before else h
            h = adapter(z) + h
        return layer_norm(h + input_tensor)


class InvertibleAdapters(nn.ModuleDict):
    """The invertible adapters of a model by name, and which one is active (the Stack's first)."""

    def __init__(self) -> None:
        super().__init__()
        self.active: str | None = None

    def forward_active(self, embeddings: torch.Tensor) -> torch.Tensor:
        return embeddings if self.active is None else self[self.active](embeddings)

    def inverse_active(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden if self.active is None else self[self.active].inverse(hidden)


@dataclass
class Sites:
    """The places adapters live in one model, found once by `inject`."""

    spec: ArchitectureSpec
    base: nn.Module
    ffn_blocks: list[AdapterBlock]  # one per layer, index = layer
    attention_blocks: list[AdapterBlock]
    invertible: InvertibleAdapters
    mlm_decoder: nn.Module | None
    token_classifier_path: str | None


def inject(model: PreTrainedModel) -> Sites:
    """Wrap every output block in `model` and hook the invertible adapters in. Call once per model."""
    spec = architecture_of(model)
    base = model.base_model
    layers = get_path(base, spec.layers)
    ffn_blocks, attention_blocks = [], []
    for layer in layers:
        for path, blocks in ((spec.ffn_output, ffn_blocks), (spec.attention_output, attention_blocks)):
            original = get_path(layer, path)
            if isinstance(original, AdapterBlock):
                raise UnsupportedModelError(f"{type(model).__name__} already has adapters injected")
            wrapped = AdapterBlock(original, spec.block)
            set_path(layer, path, wrapped)
            blocks.append(wrapped)

    # Keyed `<base>.invertible_adapters.<name>` like the reference, so AdapterHub keys map directly.
    invertible = InvertibleAdapters()
    base.invertible_adapters = invertible
    get_path(base, spec.embeddings).register_forward_hook(
        lambda module, args, output: invertible.forward_active(output)
    )
    # In an MLM model the inverse runs after the head's transform (dense, act, LayerNorm) and right
    # before the vocabulary projection, so the language adapter's coupling is in the loss path.
    mlm_decoder = find_path(model, spec.mlm_decoder)
    if mlm_decoder is not None:
        mlm_decoder.register_forward_pre_hook(
            lambda module, args: (invertible.inverse_active(args[0]), *args[1:])
        )
    token_classifier_path = spec.token_classifier if find_path(model, spec.token_classifier) is not None else None
    return Sites(spec, base, ffn_blocks, attention_blocks, invertible, mlm_decoder, token_classifier_path)
