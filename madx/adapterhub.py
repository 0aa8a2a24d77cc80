"""Import and export AdapterHub adapters (the folder format of the `adapters` 1.3.0 library).

An AdapterHub folder holds `adapter_config.json` (`config`, `hidden_size`, `model_class`,
`model_name`, `model_type`, `name`, `version`), the weights as `adapter.safetensors` and/or
`pytorch_adapter.bin`, and optionally a prediction head: `head_config.json` +
`model_head.safetensors`/`pytorch_model_head.bin`. docs/adapterhub-format.md lists the verified
facts this module relies on.

Import is strict: every AdapterHub option either maps onto an `AdapterConfig` field or must hold
the one value our modules compute; any other value raises `AdapterLoadError` naming the option, so
an imported adapter computes exactly what it computed in AdapterHub. Weight names are translated
with the same surgery table that places our adapters, checked key by key and shape by shape, and
written with `madx.adapter_files.save_adapter`. Export is the reverse and writes the *full* config dict with a
`version`, so the reference never falls back to its defaults (which differ from Pfeiffer's) nor
renames "gelu" as it does for files without a version.

Both directions build the adapters in an `AdapterModel` whose base model lives on PyTorch's meta
device: the model's shape (and so every expected key and shape) is real, but only the adapter's
own tensors are ever allocated.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import torch
import transformers
from safetensors.torch import save_file

from madx.config import AdapterConfig
from madx.errors import AdapterLoadError, ConfigError, UnsupportedModelError
from madx.fileutil import atomic_directory, refuse_overlap
from madx.adapter_files import (
    CONFIG_FILE,
    HEAD_CONFIG_FILE,
    WEIGHTS_FILE,
    _dump_json,
    _read_head,
    _read_json,
    _read_safetensors,
    load_adapter_weights,
    read_adapter_config,
    save_adapter,
)
from madx.model import AdapterModel
from madx.surgery import ARCHITECTURES, ArchitectureSpec

# adapter_config.json, adapter.safetensors and head_config.json are named alike in both formats.
WEIGHTS_BIN = "pytorch_adapter.bin"
HEAD_WEIGHTS_SAFE = "model_head.safetensors"
HEAD_WEIGHTS_BIN = "pytorch_model_head.bin"
REFERENCE_VERSION = "adapters.1.3.0"

# AdapterHub's flex-head model class per model type (adapters.models.auto: ADAPTER_MODEL_MAPPING_NAMES).
ADAPTER_MODEL_CLASSES = {
    "xlm-roberta": "XLMRobertaAdapterModel",
    "roberta": "RobertaAdapterModel",
    "bert": "BertAdapterModel",
}

# BnConfig's defaults: what the reference assumes for every option a config leaves out. Note that
# `original_ln_before` defaults to False here (Houlsby placement), not to Pfeiffer's True.
_BN_DEFAULTS: dict[str, Any] = {
    "adapter_residual_before_ln": False,
    "cross_adapter": False,
    "dropout": 0.0,
    "factorized_phm_W": True,
    "factorized_phm_rule": False,
    "hypercomplex_nonlinearity": "glorot-uniform",
    "init_weights": "bert",
    "init_weights_seed": None,
    "inv_adapter": None,
    "inv_adapter_reduction_factor": None,
    "is_parallel": False,
    "learn_phm": True,
    "leave_out": [],
    "ln_after": False,
    "ln_before": False,
    "original_ln_after": True,
    "original_ln_before": False,
    "phm_bias": True,
    "phm_c_init": "normal",
    "phm_dim": 4,
    "phm_init_range": 0.0001,
    "phm_layer": False,
    "phm_rank": 1,
    "residual_before_ln": True,
    "scaling": 1.0,
    "shared_W_phm": False,
    "shared_phm_rule": True,
    "stochastic_depth": 0.0,
    "use_gating": False,
}
_BN_REQUIRED = ("mh_adapter", "output_adapter", "reduction_factor", "non_linearity")

# The reference's preset strings for bottleneck adapters (ADAPTER_CONFIG_MAP), as the options they set.
_PFEIFFER = {"mh_adapter": False, "output_adapter": True, "reduction_factor": 16, "non_linearity": "relu",
             "original_ln_before": True}
_HOULSBY = {"mh_adapter": True, "output_adapter": True, "reduction_factor": 16, "non_linearity": "swish",
            "original_ln_before": False}
_NICE = {"inv_adapter": "nice", "inv_adapter_reduction_factor": 2}
_PRESET_STRINGS: dict[str, dict[str, Any]] = {
    "seq_bn": _PFEIFFER,
    "pfeiffer": _PFEIFFER,
    "seq_bn_inv": {**_PFEIFFER, **_NICE},  # reduction_factor 16: MAD-X's 2 is set explicitly
    "pfeiffer+inv": {**_PFEIFFER, **_NICE},
    "double_seq_bn": _HOULSBY,
    "houlsby": _HOULSBY,
    "double_seq_bn_inv": {**_HOULSBY, **_NICE},
    "houlsby+inv": {**_HOULSBY, **_NICE},
}

# Options whose only value our modules compute, and what any other value would change.
_FIXED: dict[str, tuple[Any, str]] = {
    "original_ln_after": (True, "madx always ends the block with its own residual and LayerNorm"),
    "residual_before_ln": (True, "the adapter's residual in madx is the sub-layer output h, taken before the LayerNorm"),
    "adapter_residual_before_ln": (False, "madx adds the adapter's residual after the (absent) adapter LayerNorm"),
    "ln_before": (False, "madx adapters have no LayerNorm of their own"),
    "ln_after": (False, "madx adapters have no LayerNorm of their own"),
    "scaling": (1.0, "madx adds the adapter output unscaled"),
    "use_gating": (False, "madx adapters have no gate"),
    "is_parallel": (False, "madx adapters run sequentially, not in parallel"),
    "cross_adapter": (False, "madx supports encoders only, which have no cross-attention"),
    "phm_layer": (False, "madx adapters use plain Linear projections, not PHM layers (Compacter)"),
    "dropout": (0.0, "madx adapters have no dropout, so training would differ"),
    "stochastic_depth": (0.0, "madx has no stochastic depth, so training would differ"),
}
# Options that change nothing once the weights are loaded: the initialisation, and the PHM settings,
# which only apply with phm_layer (refused above).
_INERT = {
    "init_weights_seed", "phm_dim", "factorized_phm_W", "shared_W_phm", "shared_phm_rule", "factorized_phm_rule",
    "phm_c_init", "phm_init_range", "learn_phm", "hypercomplex_nonlinearity", "phm_rank", "phm_bias",
}
_INIT_WEIGHTS = ("bert", "mam_adapter", "houlsby")  # initialisers; an imported adapter's weights replace them
_MAPPED = {*_BN_REQUIRED, "original_ln_before", "leave_out", "inv_adapter", "inv_adapter_reduction_factor",
           "init_weights"}

# non_linearity names (lower-cased, as the reference does) -> ours. "gelu" is the exact erf GELU in
# `adapters` (transformers' GELUActivation); "gelu_new" and the other tanh approximations are refused.
_ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_python": "gelu", "swish": "swish", "silu": "silu", "tanh": "tanh"}
# A file without a top-level "version" comes from adapter-transformers, where "gelu" meant the tanh
# approximation: the reference renames on load (utils.ACTIVATION_RENAME) and so do we.
_LEGACY_ACTIVATIONS = {"gelu": "gelu_new", "gelu_orig": "gelu"}
# Old module names in weight keys, renamed on load by the reference (AdapterLoader.legacy_weights_mapping).
_LEGACY_KEYS = {
    "attention_text_task_adapters": "adapters",
    "attention_text_lang_adapters": "adapters",
    "layer_text_task_adapters": "adapters",
    "layer_text_lang_adapters": "adapters",
    "invertible_lang_adapters": "invertible_adapters",
}
_TAGGING_HEAD_KEYS = {"head_type", "num_labels", "layers", "activation_function", "label2id", "id2label",
                      "dropout_prob", "bias"}


# -- configs -----------------------------------------------------------------------------------------
def from_adapterhub_config(hub: Mapping[str, Any] | str, legacy: bool = False, where: str = CONFIG_FILE) -> AdapterConfig:
    """The `AdapterConfig` computing what AdapterHub config `hub` computes, or `AdapterLoadError`.

    `hub` is the `config` entry of an adapter_config.json (or a preset string such as "seq_bn");
    `legacy` is True for a file without a top-level "version" (adapter-transformers).
    """
    options = _hub_options(hub, where)
    for key, (wanted, why) in _FIXED.items():
        if not _same(options[key], wanted):
            _refuse(where, key, options[key], f"only {wanted!r} is supported: {why}")

    for key in ("mh_adapter", "output_adapter", "original_ln_before"):
        if not isinstance(options[key], bool):
            _refuse(where, key, options[key], "expected true or false")
    non_linearity = options["non_linearity"]
    if not isinstance(non_linearity, str):
        _refuse(where, "non_linearity", non_linearity, f"madx implements {sorted(set(_ACTIVATIONS))}")
    name = non_linearity.lower()
    name = _LEGACY_ACTIVATIONS.get(name, name) if legacy else name
    if name not in _ACTIVATIONS:
        legacy_note = " (a file without \"version\" is adapter-transformers', whose \"gelu\" is gelu_new)" if legacy else ""
        _refuse(where, "non_linearity", non_linearity,
                f"madx implements relu, gelu (exact erf form), swish/silu and tanh{legacy_note}")
    reduction_factor = options["reduction_factor"]
    if isinstance(reduction_factor, Mapping):
        _refuse(where, "reduction_factor", reduction_factor, "madx uses one reduction factor for every layer")
    if not _positive_number(reduction_factor):
        _refuse(where, "reduction_factor", reduction_factor, "expected a number > 0")
    leave_out = options["leave_out"]
    if not isinstance(leave_out, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in leave_out):
        _refuse(where, "leave_out", leave_out, "expected a list of layer indices >= 0")
    if options["init_weights"] not in _INIT_WEIGHTS:
        _refuse(where, "init_weights", options["init_weights"], f"known initialisations are {list(_INIT_WEIGHTS)}")

    invertible, invertible_rf = options["inv_adapter"], options["inv_adapter_reduction_factor"]
    if invertible == "glow":
        _refuse(where, "inv_adapter", invertible,
                "the reference's GLOW coupling cannot run a forward pass (it splits the sequence dimension, "
                "see docs/adapterhub-format.md); madx's glow is a different design, so its weights would not mean the same")
    if invertible not in (None, "nice"):
        _refuse(where, "inv_adapter", invertible, "expected null or \"nice\"")
    if invertible is not None and not _positive_number(invertible_rf):
        _refuse(where, "inv_adapter_reduction_factor", invertible_rf, "a NICE invertible adapter needs a number > 0")

    try:
        return AdapterConfig(
            reduction_factor=reduction_factor,
            non_linearity=_ACTIVATIONS[name],
            after_ffn=options["output_adapter"],
            after_attention=options["mh_adapter"],
            original_ln_before=options["original_ln_before"],
            leave_out=tuple(leave_out),
            invertible=invertible,
            **({"invertible_reduction_factor": invertible_rf} if invertible else {}),
        )
    except ConfigError as error:
        raise AdapterLoadError(f"{where}: {error}") from None


def to_adapterhub_config(config: AdapterConfig) -> dict[str, Any]:
    """The full AdapterHub `config` dict (every BnConfig option) that computes what `config` computes."""
    if config.invertible not in (None, "nice"):
        raise ConfigError(
            f"an adapter with a {config.invertible!r} invertible adapter cannot be exported: AdapterHub's only "
            "working invertible adapter is NICE (its GLOW coupling is a different, broken design)"
        )
    return {
        **_BN_DEFAULTS,
        "mh_adapter": config.after_attention,
        "output_adapter": config.after_ffn,
        "reduction_factor": _plain_number(config.reduction_factor),
        "non_linearity": config.non_linearity,
        "original_ln_before": config.original_ln_before,
        "leave_out": list(config.leave_out),
        "inv_adapter": config.invertible,
        "inv_adapter_reduction_factor": _plain_number(config.invertible_reduction_factor) if config.invertible else None,
        # init_std only shapes a *new* adapter; an exported one carries its trained weights.
        "init_weights": "bert",
    }


def _hub_options(hub: Mapping[str, Any] | str, where: str) -> dict[str, Any]:
    """Every BnConfig option of `hub`, missing ones at the reference's defaults; unknown keys refused."""
    if isinstance(hub, str):
        if hub not in _PRESET_STRINGS:
            _refuse(where, "config", hub, f"known bottleneck presets are {sorted(_PRESET_STRINGS)}")
        hub = _PRESET_STRINGS[hub]
    if not isinstance(hub, Mapping):
        raise AdapterLoadError(f"{where}: \"config\" must be an object or a preset name, got {type(hub).__name__}")
    data = dict(hub)
    architecture = data.pop("architecture", None)
    if architecture not in (None, "bottleneck"):
        _refuse(where, "architecture", architecture, "madx imports bottleneck adapters only (no LoRA, prefix tuning, "
                "prompt tuning, ReFT or config unions)")
    nested = data.pop("invertible_adapter", None)
    if nested:  # adapter-transformers v1: {"block_type": "nice", "reduction_factor": 2, ...}
        if not isinstance(nested, Mapping) or "block_type" not in nested or "reduction_factor" not in nested:
            _refuse(where, "invertible_adapter", nested, "expected {\"block_type\": ..., \"reduction_factor\": ...}")
        inner = nested.get("non_linearity")
        if inner is not None and str(inner).lower() != str(data.get("non_linearity", "")).lower():
            _refuse(where, "invertible_adapter.non_linearity", inner,
                    "the reference runs the invertible adapter with the adapter's own non_linearity "
                    f"({data.get('non_linearity')!r}); a different one cannot be reproduced")
        data["inv_adapter"], data["inv_adapter_reduction_factor"] = nested["block_type"], nested["reduction_factor"]
    missing = [key for key in _BN_REQUIRED if key not in data]
    if missing:
        raise AdapterLoadError(f"{where}: the adapter config lacks the required options {missing}")
    unknown = sorted(set(data) - set(_BN_DEFAULTS) - _MAPPED - _INERT)
    if unknown:
        _refuse(where, unknown[0], data[unknown[0]], "not a bottleneck-adapter option madx knows, so its effect cannot be checked")
    return {**_BN_DEFAULTS, **data}


def _refuse(where: str, key: str, value: Any, why: str) -> NoReturn:
    raise AdapterLoadError(f"{where}: AdapterHub option {key}={value!r} cannot be imported: {why}")


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool):
        return value is wanted
    return _is_number(value) and float(value) == wanted


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_number(value: Any) -> bool:
    return _is_number(value) and value > 0


def _plain_number(value: float) -> int | float:
    """2.0 -> 2, as the reference's presets write it; 2.5 stays 2.5."""
    return int(value) if float(value).is_integer() else float(value)


# -- where adapter weights live ----------------------------------------------------------------------
def _hub_module_paths(spec: ArchitectureSpec, name: str, num_layers: int) -> dict[str, str]:
    """Our model-independent module keys (`layers.3.ffn`) -> AdapterHub's module paths below the base
    model (`encoder.layer.3.output.adapters.<name>`), read off the surgery table."""
    paths = {"invertible": f"invertible_adapters.{name}"}
    for index in range(num_layers):
        paths[f"layers.{index}.ffn"] = f"{spec.layers}.{index}.{spec.ffn_output}.adapters.{name}"
        paths[f"layers.{index}.attention"] = f"{spec.layers}.{index}.{spec.attention_output}.adapters.{name}"
    return paths


def _rename_prefix(key: str, table: Mapping[str, str]) -> str | None:
    """Replace the first prefix of `table` that `key` starts with; None if none does."""
    start = next((prefix for prefix in table if key.startswith(prefix)), None)
    return None if start is None else table[start] + key[len(start) :]


def _shell(model_type: str, hidden_size: int, num_layers: int, name_or_path: str, where: str) -> AdapterModel:
    """An `AdapterModel` on a meta-device token-classification model of the given shape."""
    if model_type not in ARCHITECTURES:
        raise UnsupportedModelError(
            f"{where}: model_type {model_type!r} is not supported; supported model types: {sorted(ARCHITECTURES)}"
        )
    config = transformers.CONFIG_MAPPING[model_type](
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=1
    )
    config.name_or_path = name_or_path  # becomes base_model.name_or_path in our adapter_config.json
    with torch.device("meta"):  # shapes only: the base model's weights are never allocated
        model = transformers.AutoModelForTokenClassification.from_config(config)
    return AdapterModel(model)


def _materialise(module: torch.nn.Module) -> None:
    module.to_empty(device="cpu")  # real (uninitialised) CPU tensors; the caller loads the weights


def _bare_model_class(am: AdapterModel) -> str:
    return transformers.MODEL_MAPPING[type(am.model.config)].__name__


# -- import ------------------------------------------------------------------------------------------
def import_adapterhub(
    path: str | Path,
    out_dir: str | Path,
    name: str | None = None,
    with_head: bool = True,
    num_layers: int | None = None,
) -> Path:
    """Convert the AdapterHub adapter folder `path` into a madx adapter folder `out_dir`; return it.

    `name` renames the adapter (default: its AdapterHub name). A tagging head in the folder becomes
    our token-classification head; `with_head=False` leaves any head out. AdapterHub files do not
    record the number of layers: it is read off the weight keys and `leave_out`, unless given.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise AdapterLoadError(f"{folder} is not a folder: an AdapterHub adapter is a folder with {CONFIG_FILE} and weights")
    refuse_overlap(folder, out_dir, "import-adapterhub")
    where = str(folder / CONFIG_FILE)
    saved = _read_json(folder / CONFIG_FILE, what="AdapterHub adapter folder")
    hub_name = saved.get("name")
    if not isinstance(hub_name, str) or not hub_name:
        raise AdapterLoadError(f"{where}: expected the adapter's \"name\" (its weight keys contain it)")
    model_type = str(saved.get("model_type") or "").replace("_", "-")
    if model_type not in ARCHITECTURES:
        raise UnsupportedModelError(
            f"{where}: model_type {saved.get('model_type')!r} is not supported; supported model types: {sorted(ARCHITECTURES)}"
        )
    hidden_size = saved.get("hidden_size")
    if not isinstance(hidden_size, int) or isinstance(hidden_size, bool) or hidden_size <= 0:
        raise AdapterLoadError(f"{where}: expected an integer \"hidden_size\", got {hidden_size!r}")
    if "config" not in saved or saved["config"] is None:
        raise AdapterLoadError(f"{where}: no adapter \"config\"")
    config = from_adapterhub_config(saved["config"], legacy="version" not in saved, where=where)

    weights_path, state = _read_weights(folder, WEIGHTS_FILE, WEIGHTS_BIN, "adapter weights")
    spec = ARCHITECTURES[model_type]
    state = {_rename_legacy(key): tensor for key, tensor in state.items()}
    layers = num_layers or _infer_num_layers(state, spec, config, weights_path)
    am = _shell(model_type, hidden_size, layers, str(saved.get("model_name") or ""), where)
    state = _strip_model_prefix(state, am.model.base_model_prefix + ".", weights_path)
    try:
        am.add_adapter(name or hub_name, config)
    except ConfigError as error:  # e.g. an AdapterHub name madx cannot use ("sw/wiki@ukp")
        hint = " (pass a madx name for it)" if name is None and repr(hub_name) in str(error) else ""
        raise AdapterLoadError(f"{where}: {error}{hint}") from None
    name = name or hub_name

    paths = _hub_module_paths(spec, hub_name, layers)
    ours = _to_madx_keys(am, name, state, paths, weights_path, config, hidden_size)
    for module in am.adapter_modules(name).values():
        _materialise(module)
    load_adapter_weights(am, name, weights_path, ours)

    head_labels = None
    if with_head and (folder / HEAD_CONFIG_FILE).exists():
        id2label, head_state = _read_hub_head(folder, hidden_size)
        head = am.new_token_head(id2label)
        _materialise(head)
        head.load_state_dict(head_state)
        head_labels = len(id2label)

    metadata = {
        "adapterhub": {
            "source": str(folder),
            "name": hub_name,
            "model_class": saved.get("model_class"),
            "model_name": saved.get("model_name"),
            "version": saved.get("version"),
            "config": saved["config"],
            "weights_file": weights_path.name,
            "head_labels": head_labels,
        }
    }
    return save_adapter(am, name, out_dir, with_head=head_labels is not None, metadata=metadata)


def _read_weights(folder: Path, safe_name: str, pickle_name: str, what: str) -> tuple[Path, dict[str, torch.Tensor]]:
    """The safetensors file if there is one, else the .bin (loaded with weights_only=True)."""
    safe, pickled = folder / safe_name, folder / pickle_name
    if safe.is_file():
        state = _read_safetensors(safe)
        path = safe
    elif pickled.is_file():
        state = _read_pickle(pickled)
        path = pickled
    else:
        raise AdapterLoadError(f"{folder} has no {what}: expected {safe_name} or {pickle_name}")
    if not state:
        raise AdapterLoadError(f"{path} holds no tensors")
    return path, state


def _read_pickle(path: Path) -> dict[str, torch.Tensor]:
    try:
        # weights_only: tensors and plain containers only, never arbitrary objects (code execution).
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - an untrusted file can fail in many ways; all mean "unreadable"
        raise AdapterLoadError(
            f"{path}: not a readable PyTorch weights file, or not plain tensors ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()):
        raise AdapterLoadError(f"{path}: expected a dict of name -> tensor")
    return data


def _rename_legacy(key: str) -> str:
    for old, new in _LEGACY_KEYS.items():
        key = key.replace(old, new)
    return key


def _infer_num_layers(state: Mapping[str, Any], spec: ArchitectureSpec, config: AdapterConfig, path: Path) -> int:
    pattern = re.compile(rf"(?:^|\.){re.escape(spec.layers)}\.(\d+)\.")
    indices = [int(m.group(1)) for key in state if (m := pattern.search(key))] + list(config.leave_out)
    if not indices:
        raise AdapterLoadError(f"{path}: no layer weights, so the number of layers is unknown (pass num_layers)")
    return max(indices) + 1


def _strip_model_prefix(state: dict[str, torch.Tensor], prefix: str, path: Path) -> dict[str, torch.Tensor]:
    """Keys saved from an AdapterModel or `*For...` model start with the base model's prefix
    (`roberta.`, `bert.`); keys saved from a bare `*Model` have none. Accept either, not a mix."""
    prefixed = [key for key in state if key.startswith(prefix)]
    if len(prefixed) == len(state):
        return {key[len(prefix) :]: tensor for key, tensor in state.items()}
    if prefixed:
        bare = sorted(set(state) - set(prefixed))
        raise AdapterLoadError(
            f"{path}: some keys start with {prefix!r} ({prefixed[0]}) and some do not ({bare[0]}); "
            "an AdapterHub file uses one form"
        )
    return dict(state)


def _to_madx_keys(
    am: AdapterModel,
    name: str,
    state: dict[str, torch.Tensor],
    paths: dict[str, str],
    path: Path,
    config: AdapterConfig,
    hidden_size: int,
) -> dict[str, torch.Tensor]:
    """Rename AdapterHub keys to ours, and check them against what the config builds, in AdapterHub's names."""
    to_ours = {hub + ".": ours + "." for ours, hub in paths.items()}
    to_hub = {ours + ".": hub + "." for ours, hub in paths.items()}
    expected = {
        f"{prefix}.{key}": tuple(tensor.shape)
        for prefix, module in am.adapter_modules(name).items()
        for key, tensor in module.state_dict().items()
    }
    renamed = {key: _rename_prefix(key, to_ours) for key in state}
    unexpected = sorted((key for key, ours_key in renamed.items() if ours_key not in expected), key=_natural)
    ours = {renamed[key]: tensor for key, tensor in state.items()}
    missing = sorted((_rename_prefix(key, to_hub) or key for key in set(expected) - set(ours)), key=_natural)
    summary = (
        f"hidden_size {hidden_size}, reduction_factor {config.reduction_factor}, mh_adapter {config.after_attention}, "
        f"output_adapter {config.after_ffn}, leave_out {list(config.leave_out)}, inv_adapter {config.invertible}"
    )
    if unexpected or missing:
        raise AdapterLoadError(
            f"{path}: weights do not match the adapter config ({summary}): "
            f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}, "
            f"missing {missing[:4]}{'...' if len(missing) > 4 else ''}"
        )
    for key in sorted(ours, key=_natural):
        tensor = ours[key]
        if tuple(tensor.shape) != expected[key]:
            raise AdapterLoadError(
                f"{path}: {_rename_prefix(key, to_hub)} has shape {tuple(tensor.shape)}, expected {expected[key]} ({summary})"
            )
    return ours


def _natural(key: str) -> list[str | int]:
    """Sort key that puts layer 2 before layer 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def _read_hub_head(folder: Path, hidden_size: int) -> tuple[dict[int, str], dict[str, torch.Tensor]]:
    """A one-layer tagging head (flex head, or the static head of a `*ForTokenClassification`)."""
    path = folder / HEAD_CONFIG_FILE
    saved = _read_json(path, what="AdapterHub head")
    where = str(path)
    head = saved.get("config")
    if head is None:  # static head of a `*ForTokenClassification` + adapters.init
        model_class = str(saved.get("model_class") or "")
        if not model_class.endswith("ForTokenClassification"):
            _refuse(where, "model_class", model_class, "a static head is imported from *ForTokenClassification models only")
        label2id, num_labels = saved.get("label2id"), saved.get("num_labels")
        keys = ("classifier.weight", "classifier.bias")
    else:
        if not isinstance(head, Mapping):
            raise AdapterLoadError(f"{where}: \"config\" must be an object, got {type(head).__name__}")
        if head.get("head_type") != "tagging":
            _refuse(where, "head_type", head.get("head_type"),
                    "madx has a token-classification head only (AdapterHub \"tagging\"); pass with_head=False to skip it")
        if head.get("layers") != 1:
            _refuse(where, "layers", head.get("layers"), "madx's token head is one Linear layer (layers=1)")
        if head.get("bias", True) is not True:
            _refuse(where, "bias", head.get("bias"), "madx's token head has a bias")
        if head.get("dropout_prob") is not None:
            _refuse(where, "dropout_prob", head.get("dropout_prob"),
                    "madx's head uses the model's own classifier dropout (null), so training would differ")
        unknown = sorted(set(head) - _TAGGING_HEAD_KEYS)
        if unknown:
            _refuse(where, unknown[0], head[unknown[0]], "not a tagging-head option madx knows")
        label2id, num_labels = head.get("label2id"), head.get("num_labels")
        keys = (f"heads.{saved.get('name')}.1.weight", f"heads.{saved.get('name')}.1.bias")
    id2label = _id2label(label2id, num_labels, where)

    weights_path, state = _read_weights(folder, HEAD_WEIGHTS_SAFE, HEAD_WEIGHTS_BIN, "head weights")
    missing = [key for key in keys if key not in state]
    # `adapters` saves a head by substring match ("heads.ner" also catches "heads.ner_lo.*"), so a
    # folder it wrote may hold other heads' tensors too: those are ignored, anything else refused.
    others = sorted(key for key in state if key not in keys and key.startswith("heads.") and head is not None)
    strangers = sorted(set(state) - set(keys) - set(others))
    if missing or strangers:
        raise AdapterLoadError(f"{weights_path}: expected the keys {list(keys)}, found {sorted(state)[:4]}"
                               + (f" (missing {missing})" if missing else ""))
    if others:
        logging.getLogger("madx").warning("%s: ignored %d tensor(s) of other heads (%s), which the adapters library "
                                          "saves beside the named head", weights_path, len(others), ", ".join(others[:4]))
    shapes = {"weight": (len(id2label), hidden_size), "bias": (len(id2label),)}
    head_state = {"weight": state[keys[0]], "bias": state[keys[1]]}
    for key, shape in shapes.items():
        if tuple(head_state[key].shape) != shape:
            raise AdapterLoadError(
                f"{weights_path}: {keys[key == 'bias']} has shape {tuple(head_state[key].shape)}, expected {shape} "
                f"({len(id2label)} labels, hidden size {hidden_size})"
            )
    return id2label, head_state


def _id2label(label2id: Any, num_labels: Any, where: str) -> dict[int, str]:
    if label2id is None:
        if not isinstance(num_labels, int) or isinstance(num_labels, bool) or num_labels < 1:
            raise AdapterLoadError(f"{where}: a head needs \"label2id\" or a positive \"num_labels\", got {num_labels!r}")
        return {i: f"LABEL_{i}" for i in range(num_labels)}
    if not isinstance(label2id, Mapping) or not all(isinstance(i, int) and not isinstance(i, bool) for i in label2id.values()):
        raise AdapterLoadError(f"{where}: \"label2id\" must map labels to integer ids, got {label2id!r}")
    id2label = {i: str(label) for label, i in label2id.items()}
    if sorted(id2label) != list(range(len(label2id))):
        raise AdapterLoadError(f"{where}: label ids must be 0..n-1 without repeats, got {sorted(label2id.values())}")
    if num_labels is not None and num_labels != len(id2label):
        raise AdapterLoadError(f"{where}: num_labels {num_labels!r} but label2id has {len(id2label)} labels")
    return id2label


# -- export ------------------------------------------------------------------------------------------
def export_adapterhub(adapter_dir: str | Path, out_dir: str | Path, model_class: str | None = None) -> Path:
    """Write madx adapter folder `adapter_dir` as an AdapterHub folder `out_dir`; return it.

    `model_class` is what adapter_config.json records (default: the model type's `*AdapterModel`);
    naming the bare `*Model` class writes keys without the `roberta.`/`bert.` prefix, as the reference
    does when saving from a bare model. Both `adapter.safetensors` and `pytorch_adapter.bin` are
    written: the reference's default `load_adapter` reads only the .bin.
    """
    folder = Path(adapter_dir)
    refuse_overlap(folder, out_dir, "export-adapterhub")
    saved = read_adapter_config(folder)
    where = str(folder / CONFIG_FILE)
    name, base = saved["name"], saved["base_model"]
    try:
        config = AdapterConfig.from_dict(saved["config"])
    except (ConfigError, TypeError) as error:
        raise AdapterLoadError(f"{where}: invalid adapter config: {error}") from None
    hub_config = to_adapterhub_config(config)
    model_type = str(base.get("model_type"))
    hidden_size, num_layers = base.get("hidden_size"), base.get("num_hidden_layers")
    if not all(isinstance(v, int) and v > 0 for v in (hidden_size, num_layers)):
        raise AdapterLoadError(f"{where}: base_model needs integer hidden_size and num_hidden_layers, got {base!r}")
    if model_class is None:
        if model_type not in ADAPTER_MODEL_CLASSES:
            raise ConfigError(
                f"AdapterHub has no adapter model class for model type {model_type!r} "
                f"(it has {sorted(ADAPTER_MODEL_CLASSES)}); pass model_class to name one"
            )
        model_class = ADAPTER_MODEL_CLASSES[model_type]
    model_name = str(base.get("name_or_path") or "")
    am = _shell(model_type, hidden_size, num_layers, model_name, where)

    am.add_adapter(name, config)
    for module in am.adapter_modules(name).values():
        _materialise(module)
    weights = _read_safetensors(folder / WEIGHTS_FILE)
    load_adapter_weights(am, name, folder / WEIGHTS_FILE, weights)  # checks keys and shapes against the config
    head = _read_head(am, folder) if (folder / HEAD_CONFIG_FILE).exists() else None
    if head is not None and not model_class.endswith(("AdapterModel", "ModelWithHeads")):
        raise ConfigError(
            f"{folder} has a token head, which AdapterHub loads only from a flex-head model class "
            f"(e.g. {ADAPTER_MODEL_CLASSES.get(model_type, '<Family>AdapterModel')}), not {model_class!r}"
        )

    prefix = "" if model_class == _bare_model_class(am) else am.model.base_model_prefix + "."
    to_hub = {ours + ".": prefix + hub + "." for ours, hub in _hub_module_paths(am.sites.spec, name, num_layers).items()}
    hub_weights = {_rename_prefix(key, to_hub): tensor.contiguous() for key, tensor in weights.items()}
    described = {"hidden_size": hidden_size, "model_class": model_class, "model_name": model_name,
                 "model_type": model_type, "name": name, "version": REFERENCE_VERSION}

    out = Path(out_dir)
    with atomic_directory(out) as staging:
        (staging / CONFIG_FILE).write_text(_dump_json({"config": hub_config, **described}), encoding="utf-8")
        _write_both(hub_weights, staging / WEIGHTS_FILE, staging / WEIGHTS_BIN)
        if head is not None:
            id2label, state = head
            head_config = {
                # what add_tagging_head(name, num_labels) records; tanh is unused with one layer
                "activation_function": "tanh",
                "dropout_prob": None,
                "head_type": "tagging",
                "label2id": {label: i for i, label in sorted(id2label.items())},
                "layers": 1,
                "num_labels": len(id2label),
            }
            (staging / HEAD_CONFIG_FILE).write_text(_dump_json({"config": head_config, **described}), encoding="utf-8")
            head_weights = {f"heads.{name}.1.{key}": tensor.contiguous() for key, tensor in state.items()}
            _write_both(head_weights, staging / HEAD_WEIGHTS_SAFE, staging / HEAD_WEIGHTS_BIN)
    return out


def _write_both(state: dict[str, torch.Tensor], safe: Path, pickled: Path) -> None:
    save_file(state, str(safe), metadata={"format": "pt"})
    torch.save(state, pickled)
