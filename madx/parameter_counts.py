"""Parameter counts of adapter presets for a model shape, computed on the meta device."""

from __future__ import annotations

import torch
import transformers

from madx.config import PRESETS
from madx.model import AdapterModel


def preset_parameter_counts(model_type: str, hidden: int, layers: int, vocab: int) -> list[dict]:
    """One row per preset: its parameter count and share of the base model's parameters."""
    config = transformers.CONFIG_MAPPING[model_type](
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
    )
    with torch.device("meta"):  # shapes only: no memory, no init cost
        am = AdapterModel(transformers.AutoModelForMaskedLM.from_config(config))
    base = am.parameter_count().total
    rows = []
    for name, preset in PRESETS.items():
        am.add_adapter(name, preset)
        count = am.adapter_parameter_count(name)
        rows.append(
            {
                "preset": name,
                "parameters": count,
                "base_parameters": base,
                "percent_of_base": 100 * count / base,
                "bottleneck": preset.bottleneck_size(hidden),
                "invertible": preset.invertible,
            }
        )
    return rows
