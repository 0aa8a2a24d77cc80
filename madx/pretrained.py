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

from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForTokenClassification, AutoTokenizer,
                          XLMRobertaConfig)

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
    """`Auto*.from_pretrained` for a supported encoder (`head`: bare, mlm or token). For training
    against the MLM head use `load_mlm_model`, which refuses a head the checkpoint lacks."""
    name = str(name_or_path)
    load_config(name, trust_remote_code)
    with _LOAD_LOCK:
        try:
            return HEADS[head].from_pretrained(name, trust_remote_code=trust_remote_code, use_safetensors=True, **kwargs)
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"cannot load the weights of {name} (safetensors only): {_first_line(error)}") from None


class MissingMlmHeadError(ModelLoadError):
    """A base model loaded for MLM has no (or only part of a) pretrained MLM head."""


def load_mlm_model(name_or_path: str | Path, head_weights: str | Path | None = None, allow_missing_head: bool = False):
    """The `*ForMaskedLM` model of a supported encoder whose MLM head is pretrained, never random.

    transformers fills a head missing from the checkpoint with random weights and says so only in a
    log line. A language adapter trained against a random, frozen head learns to serve that head:
    it rewrites the encoder's states and every task adapter stacked on it fails. So the loading
    info is read, and a missing head is an error unless `head_weights` (a file written by the
    head warm-up, `language_adapters.mlm_head`) supplies every missing tensor. Only the warm-up
    itself, which trains the head, passes `allow_missing_head`.
    """
    name = str(name_or_path)
    load_config(name)
    with _LOAD_LOCK:
        try:
            model, info = AutoModelForMaskedLM.from_pretrained(name, use_safetensors=True, output_loading_info=True)
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"cannot load the weights of {name} (safetensors only): {_first_line(error)}") from None
    head = ARCHITECTURES[model.config.model_type].mlm_head
    missing = sorted(key for key in info["missing_keys"] if key.startswith(f"{head}."))
    if head_weights is not None:
        _load_head(model, Path(head_weights), missing, name)
    elif missing and not allow_missing_head:
        raise MissingMlmHeadError(
            f"base model {name} has no pretrained MLM head ({len(missing)} tensor(s) missing: {', '.join(missing)}); "
            "language adapters trained against a random head break every task adapter on top of them. Set "
            "`base_model: {mlm_head: warmup}` in the pipeline config (trains the head alone on the pipeline's "
            "corpora first), or use a checkpoint that has its MLM head"
        )
    return model


def _load_head(model, path: Path, missing: list[str], name: str) -> None:
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelLoadError(f"MLM head weights {path} do not exist")
    tensors = load_file(str(path))
    # Tied parameters have several names (BERT's `cls.predictions.bias` is `...decoder.bias`): a
    # missing name is covered when the file holds any name of the same parameter.
    names_of: dict[int, set[str]] = {}
    for key, parameter in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(parameter), set()).add(key)
    aliases = {key: names_of[id(parameter)] for key, parameter in model.named_parameters(remove_duplicate=False)}
    uncovered = sorted(key for key in missing if not aliases.get(key, {key}) & set(tensors))
    if uncovered:
        raise ModelLoadError(f"MLM head weights {path} lack {uncovered}, which base model {name} has no weights for")
    result = model.load_state_dict(tensors, strict=False)
    if result.unexpected_keys:
        raise ModelLoadError(f"MLM head weights {path} hold tensors base model {name} does not have: {result.unexpected_keys}")


def stored_mlm_head(name_or_path: str | Path) -> bool | None:
    """Whether a local model folder's safetensors hold MLM head weights (read from the file
    headers, no weights loaded); None for a hub name, which only loading can tell."""
    from safetensors import safe_open

    folder = Path(name_or_path)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return None
    head = ARCHITECTURES[load_config(folder).model_type].mlm_head
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            if any(key.startswith(f"{head}.") for key in handle.keys()):
                return True
    return False


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


def xlmr_config(tokenizer, *, vocab_size: int, hidden: int, layers: int, heads: int, ffn: int, max_length: int,
                dropout: float = 0.1, layer_norm_eps: float = 1e-12) -> XLMRobertaConfig:
    """The config of an XLM-R encoder built from scratch around `tokenizer` (its pad, <s> and </s>
    ids): sequences of `max_length` tokens fit (XLM-R counts positions from pad_id + 1, so it needs
    max_length + 2 position embeddings). The one builder of the small base model and the benchmarks."""
    return XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=max_length + 2,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        layer_norm_eps=layer_norm_eps,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        type_vocab_size=1,
    )

