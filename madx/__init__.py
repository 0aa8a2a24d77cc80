"""madx: the MAD-X adapter core on Hugging Face transformers models.

Imports torch and transformers only (no orchestration, no tracking), so it works from a notebook:

    from madx import AdapterModel, Stack, load_adapter
    am = AdapterModel(AutoModelForTokenClassification.from_pretrained("xlm-roberta-base"))
    load_adapter(am, "adapters/sw"); load_adapter(am, "adapters/ner")
    am.set_active(Stack("sw", "ner"))

Names are imported on first use, so `import madx` (and `madx --help`) does not pay for torch.
"""

from importlib import import_module

_EXPORTS = {
    "ARCHITECTURES": "madx.surgery",
    "PRESETS": "madx.config",
    "AdapterConfig": "madx.config",
    "preset": "madx.config",
    "Stack": "madx.composition",
    "AdapterModel": "madx.model",
    "ParameterCount": "madx.model",
    "load_adapter": "madx.adapter_files",
    "read_adapter_config": "madx.adapter_files",
    "save_adapter": "madx.adapter_files",
    "AdapterLoadError": "madx.errors",
    "ConfigError": "madx.errors",
    "DataError": "madx.errors",
    "MadxError": "madx.errors",
    "UnsupportedModelError": "madx.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'madx' has no attribute {name!r}")


def __dir__():
    return __all__
