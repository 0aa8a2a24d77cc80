"""madx: the MAD-X adapter core on Hugging Face transformers models.

Imports torch and transformers only (no orchestration, no tracking), so it works from a notebook:

    from madx import AdapterModel, Stack, load_adapter
    am = AdapterModel(AutoModelForTokenClassification.from_pretrained("xlm-roberta-base"))
    load_adapter(am, "adapters/sw"); load_adapter(am, "adapters/ner")
    am.set_active(Stack("sw", "ner"))
"""

from madx.composition import Stack
from madx.config import PRESETS, AdapterConfig, preset
from madx.errors import AdapterLoadError, ConfigError, DataError, MadxError, UnsupportedModelError
from madx.io import load_adapter, read_adapter_config, save_adapter
from madx.model import AdapterModel, ParameterCount
from madx.surgery import ARCHITECTURES

__all__ = [
    "ARCHITECTURES",
    "PRESETS",
    "AdapterConfig",
    "AdapterLoadError",
    "AdapterModel",
    "ConfigError",
    "DataError",
    "MadxError",
    "ParameterCount",
    "Stack",
    "UnsupportedModelError",
    "load_adapter",
    "preset",
    "read_adapter_config",
    "save_adapter",
]
