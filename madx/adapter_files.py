"""Save and load adapters (and token heads) as self-describing safetensors folders.

Folder layout:
    adapter_config.json   format version, adapter name, AdapterConfig, the base model it fits
    adapter.safetensors   weights under model-independent keys: `layers.<i>.<ffn|attention>.<param>`,
                          `invertible.<param>`
    head_config.json      (optional) the token head's labels and shape
    head.safetensors      (optional) its `weight` and `bias`
Only safetensors are read: a pickle from an untrusted source would be code execution.
Writes are atomic (temporary folder, then rename); loads validate everything before touching the
model, so a bad folder leaves the model as it was.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from madx.config import AdapterConfig
from madx.errors import AdapterLoadError, ConfigError
from madx.fileutil import atomic_directory, without_folders
from madx.model import AdapterModel

FORMAT = "madx-adapter"
FORMAT_VERSION = 1
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter.safetensors"
HEAD_CONFIG_FILE = "head_config.json"
HEAD_WEIGHTS_FILE = "head.safetensors"


def _madx_version() -> str:
    try:
        return version("madx-pipeline")
    except PackageNotFoundError:
        return "unknown"


def _dump_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def adapter_state_dict(am: AdapterModel, name: str) -> dict[str, torch.Tensor]:
    """Adapter `name`'s weights under model-independent keys, detached copies on the CPU."""
    return {
        f"{prefix}.{key}": tensor.detach().to("cpu").contiguous().clone()
        for prefix, module in am.adapter_modules(name).items()
        for key, tensor in module.state_dict().items()
    }


def save_adapter(
    am: AdapterModel,
    name: str,
    folder: str | Path,
    with_head: bool = False,
    metadata: dict[str, Any] | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write adapter `name` (and the token head if `with_head`) to `folder`, replacing it atomically.

    `metadata` goes into adapter_config.json; `extra_files` (name -> text, e.g. a metrics record)
    are written into the same folder in the same atomic step.
    """
    weights = adapter_state_dict(am, name)  # raises first if there is no such adapter
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "config": am.configs[name].to_dict(),
        "base_model": {
            "name_or_path": without_folders(str(getattr(am.model.config, "_name_or_path", "") or "")),
            "model_type": am.model_type,
            "hidden_size": am.hidden_size,
            "num_hidden_layers": am.num_layers,
        },
        "madx_version": _madx_version(),
        "metadata": metadata or {},
    }
    head = am.token_head if with_head else None
    if with_head and head is None:
        raise ConfigError(f"{type(am.model).__name__} has no token-classification head to save with {name!r}")
    folder = Path(folder)
    with atomic_directory(folder) as staging:
        (staging / CONFIG_FILE).write_text(_dump_json(config), encoding="utf-8")
        save_file(weights, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT})
        if head is not None:
            id2label = {int(i): label for i, label in am.model.config.id2label.items()}
            head_config = {
                "type": "token_classification",
                "hidden_size": am.hidden_size,
                "num_labels": len(id2label),
                "id2label": {str(i): id2label[i] for i in sorted(id2label)},
            }
            (staging / HEAD_CONFIG_FILE).write_text(_dump_json(head_config), encoding="utf-8")
            head_weights = {k: v.detach().to("cpu").contiguous().clone() for k, v in head.state_dict().items()}
            save_file(head_weights, str(staging / HEAD_WEIGHTS_FILE), metadata={"format": FORMAT})
        for file_name, text in (extra_files or {}).items():
            (staging / file_name).write_text(text, encoding="utf-8")
    return folder


def read_adapter_config(folder: str | Path) -> dict[str, Any]:
    """Read and check `adapter_config.json` of an adapter folder."""
    folder = Path(folder)
    data = _read_json(folder / CONFIG_FILE, what="adapter folder")
    if data.get("format") != FORMAT:
        raise AdapterLoadError(
            f"{folder / CONFIG_FILE}: not a madx adapter (format {data.get('format')!r}, expected {FORMAT!r}); "
            "AdapterHub folders are imported with `madx import-adapterhub`"
        )
    if data.get("format_version") != FORMAT_VERSION:
        raise AdapterLoadError(
            f"{folder / CONFIG_FILE}: format_version {data.get('format_version')!r}; this madx reads {FORMAT_VERSION}"
        )
    for key in ("name", "config", "base_model"):
        if key not in data:
            raise AdapterLoadError(f"{folder / CONFIG_FILE}: missing key {key!r}")
    return data


def load_adapter(
    am: AdapterModel,
    folder: str | Path,
    name: str | None = None,
    with_head: bool = True,
    overwrite: bool = False,
) -> str:
    """Load the adapter in `folder` into `am` as `name` (default: its saved name); return the name.

    The head, if the folder has one and `with_head`, replaces the model's token head. Every check
    runs before the model is changed.
    """
    folder = Path(folder)
    saved = read_adapter_config(folder)
    name = name or saved["name"]
    try:
        config = AdapterConfig.from_dict(saved["config"])
    except (ConfigError, TypeError) as error:
        raise AdapterLoadError(f"{folder / CONFIG_FILE}: invalid adapter config: {error}") from None
    _check_fits(am, saved["base_model"], folder)
    weights = _read_safetensors(folder / WEIGHTS_FILE)
    head = _read_head(am, folder) if with_head and (folder / HEAD_CONFIG_FILE).exists() else None

    if name in am.configs and not overwrite:
        raise ConfigError(f"this model already has an adapter named {name!r} (pass overwrite=True to replace it)")
    if head is not None and am.head_adapter not in (None, name) and not overwrite:
        # a model holds one token head: loading a second would swap the first out silently
        raise ConfigError(f"the model's token head is task adapter {am.head_adapter!r}'s; loading {name!r} with its head "
                          "would replace it: pass overwrite=True to replace it, or with_head=False")
    if name in am.configs:
        am.delete_adapter(name)
    am.add_adapter(name, config, init=False)  # every weight is overwritten next (or the adapter removed)
    try:
        load_adapter_weights(am, name, folder / WEIGHTS_FILE, weights)
    except AdapterLoadError:
        am.delete_adapter(name)
        raise
    if head is not None:
        id2label, state = head
        am.new_token_head(id2label).load_state_dict(state)
        am.head_adapter = name
    return name


def load_adapter_weights(
    am: AdapterModel, name: str, path: Path, weights: dict[str, torch.Tensor] | None = None
) -> None:
    """Copy the weights in safetensors file `path` (or already read `weights`) into adapter `name`,
    after checking that keys and shapes match exactly."""
    if weights is None:
        weights = _read_safetensors(path)
    expected = {  # shapes only: no copy of the tensors just to compare keys
        f"{prefix}.{key}": tensor
        for prefix, module in am.adapter_modules(name).items()
        for key, tensor in module.state_dict().items()
    }
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise AdapterLoadError(
            f"{path}: weights do not match the adapter config (missing {missing[:4]}"
            f"{'...' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''})"
        )
    for key, tensor in weights.items():
        if tensor.shape != expected[key].shape:
            raise AdapterLoadError(
                f"{path}: {key} has shape {tuple(tensor.shape)}, expected {tuple(expected[key].shape)}"
            )
    for prefix, module in am.adapter_modules(name).items():
        start = prefix + "."
        module.load_state_dict({k[len(start) :]: v for k, v in weights.items() if k.startswith(start)})


def check_adapter_folder(folder: str | Path, base_config: Any = None) -> dict[str, Any]:
    """Check an adapter folder without loading it: its config, that each weights file is a complete
    safetensors file, and, given the base model's transformers config, that it was made for that
    architecture, hidden size and depth. Returns the adapter config; AdapterLoadError otherwise."""
    folder = Path(folder)
    saved = read_adapter_config(folder)
    try:
        AdapterConfig.from_dict(saved["config"])
    except (ConfigError, TypeError) as error:
        raise AdapterLoadError(f"{folder / CONFIG_FILE}: invalid adapter config: {error}") from None
    _check_safetensors(folder / WEIGHTS_FILE)
    if (folder / HEAD_CONFIG_FILE).exists():
        _read_json(folder / HEAD_CONFIG_FILE, what="head")
        _check_safetensors(folder / HEAD_WEIGHTS_FILE)
    if base_config is not None:
        here = (str(base_config.model_type), int(base_config.hidden_size), int(base_config.num_hidden_layers))
        _check_shape(saved["base_model"], here, folder)
    return saved


def _check_fits(am: AdapterModel, base: dict[str, Any], folder: Path) -> None:
    _check_shape(base, (am.model_type, am.hidden_size, am.num_layers), folder)


def _check_shape(base: dict[str, Any], here: tuple[str, int, int], folder: Path) -> None:
    saved = (base.get("model_type"), base.get("hidden_size"), base.get("num_hidden_layers"))
    if saved != here:
        raise AdapterLoadError(
            f"adapter {folder} was trained for {saved[0]} with hidden size {saved[1]} and {saved[2]} layers "
            f"({base.get('name_or_path') or 'unnamed base'}); this model is {here[0]} with hidden size "
            f"{here[1]} and {here[2]} layers"
        )


def _read_head(am: AdapterModel, folder: Path) -> tuple[dict[int, str], dict[str, torch.Tensor]]:
    if am.token_head is None:
        raise AdapterLoadError(
            f"{folder} has a token-classification head but {type(am.model).__name__} has none; "
            "load it into a *ForTokenClassification model or pass with_head=False"
        )
    config = _read_json(folder / HEAD_CONFIG_FILE, what="head")
    try:
        id2label = {int(i): str(label) for i, label in config["id2label"].items()}
    except (KeyError, ValueError, AttributeError):
        raise AdapterLoadError(f"{folder / HEAD_CONFIG_FILE}: expected an 'id2label' mapping of int -> label") from None
    state = _read_safetensors(folder / HEAD_WEIGHTS_FILE)
    expected = {"weight": (len(id2label), am.hidden_size), "bias": (len(id2label),)}
    shapes = {key: tuple(tensor.shape) for key, tensor in state.items()}
    if shapes != expected:
        raise AdapterLoadError(f"{folder / HEAD_WEIGHTS_FILE}: tensors {shapes}, expected {expected}")
    return id2label, state


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise AdapterLoadError(f"{path} is missing: an {what} needs {path.name}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AdapterLoadError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise AdapterLoadError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _check_safetensors(path: Path) -> None:
    """Parse the header only: a missing, truncated or non-safetensors file fails, no tensor is read."""
    if not path.is_file():
        raise AdapterLoadError(f"{path} is missing")
    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError, ValueError) as error:
        raise AdapterLoadError(f"{path}: not a readable safetensors file, truncated or corrupted ({error})") from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise AdapterLoadError(f"{path} is missing")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise AdapterLoadError(f"{path}: not a readable safetensors file, truncated or corrupted ({error})") from None
    broken = sorted(key for key, tensor in tensors.items()
                    if tensor.is_floating_point() and not torch.isfinite(tensor).all())
    if broken:  # an adapter of NaN/inf evaluates "fine" and scores garbage
        raise AdapterLoadError(f"{path}: {len(broken)} tensor(s) hold NaN or infinite values ({', '.join(broken[:3])}"
                               f"{', ...' if len(broken) > 3 else ''}); the adapter is broken: retrain it")
    return tensors
