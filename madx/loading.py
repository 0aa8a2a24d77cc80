"""Loading base models and tokenizers: checked, safe, and serialised across threads.

- The architecture is checked from the config before any weight is read, so an unsupported model
  fails in milliseconds with a message naming it.
- Weights load from safetensors only and remote code never runs unless asked for explicitly:
  a pickled checkpoint or a repository's Python file from an untrusted source is code execution.
- transformers builds models on the meta device through process-global patches; two threads
  loading at once (parallel Prefect tasks) can receive each other's meta tensors, so loads take a
  process-wide lock. Loading is a small share of a stage's time.
"""

from __future__ import annotations

import threading
from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForTokenClassification, AutoTokenizer

from madx.errors import MadxError, UnsupportedModelError
from madx.surgery import ARCHITECTURES, max_sequence_length

_LOAD_LOCK = threading.RLock()
HEADS = {"bare": AutoModel, "mlm": AutoModelForMaskedLM, "token": AutoModelForTokenClassification}


class ModelLoadError(MadxError):
    """A base model or tokenizer could not be found or read."""


def load_config(name_or_path: str | Path, trust_remote_code: bool = False):
    """The model's config, checked to be a supported architecture and, for a local folder, to come
    with safetensors weights (reads no weights)."""
    name = str(name_or_path)
    with _LOAD_LOCK:
        try:
            config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"cannot load base model {name}: {_first_line(error)}") from None
    if config.model_type not in ARCHITECTURES:
        raise UnsupportedModelError(
            f"base model {name} is a {config.model_type!r} model (model_type in its config.json); "
            f"madx supports {sorted(ARCHITECTURES)}"
        )
    _refuse_pickled_only(Path(name))
    return config


def load_model(name_or_path: str | Path, head: str = "bare", trust_remote_code: bool = False, **kwargs):
    """`Auto*.from_pretrained` for a supported encoder (`head`: bare, mlm or token)."""
    name = str(name_or_path)
    load_config(name, trust_remote_code)
    with _LOAD_LOCK:
        try:
            return HEADS[head].from_pretrained(name, trust_remote_code=trust_remote_code, use_safetensors=True, **kwargs)
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"cannot load the weights of {name} (safetensors only): {_first_line(error)}") from None


def _refuse_pickled_only(folder: Path) -> None:
    """A local folder with pickled weights only (pytorch_model.bin) is refused by name: unpickling a
    file from an untrusted source runs code."""
    if folder.is_dir() and not any(folder.glob("*.safetensors")):
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        if pickled:
            raise ModelLoadError(
                f"base model {folder} has pickled weights only ({', '.join(pickled)}); madx reads safetensors only "
                "(unpickling can run code). If you trust the file, convert it once: "
                "`AutoModelForMaskedLM.from_pretrained(FOLDER).save_pretrained(FOLDER)` writes model.safetensors"
            )


def build_model(config, head: str = "mlm"):
    """A randomly initialised model from a config (the demo's base model), under the same lock."""
    with _LOAD_LOCK:
        return HEADS[head].from_config(config)


def load_tokenizer(name_or_path: str | Path, trust_remote_code: bool = False):
    name = str(name_or_path)
    with _LOAD_LOCK:
        try:
            tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"cannot load the tokenizer of {name}: {_first_line(error)}") from None
    # Offline, a hub name can come back as an empty 5-token tokenizer instead of an error.
    if len(tokenizer) <= 5 or tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        raise ModelLoadError(
            f"the tokenizer of {name} has {len(tokenizer)} entries (mask {tokenizer.mask_token!r}, pad "
            f"{tokenizer.pad_token!r}); is the model folder complete, or the hub reachable?"
        )
    return tokenizer


def usable_length(config, tokenizer, requested: int) -> int:
    """`requested` tokens, or fewer if the model's positions (`config`) or the tokenizer allow fewer."""
    limits = [requested, max_sequence_length(config)]
    if tokenizer.model_max_length and tokenizer.model_max_length < 1_000_000:
        limits.append(int(tokenizer.model_max_length))
    return min(limits)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
