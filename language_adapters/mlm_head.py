"""Warm up a missing MLM head: train the head alone on the pipeline's corpora, encoder frozen.

Some real encoders ship without their MLM head (multilingual-e5-small's last layer was tuned for
sentence embeddings and its checkpoint has no `cls.predictions.*`). A MAD-X language adapter trains
against the MLM head; against a random head it learns to serve the head and rewrites the encoder.
So before any language adapter trains, the head's own parameters (the transform: dense, activation,
LayerNorm, and the output bias) are fitted with the encoder frozen and no adapter active. The
projection stays tied to the frozen input embeddings, as in pretraining.

The encoder is frozen and nothing below the head trains, so each step runs the encoder without a
graph (no backward through 12 layers): a warm-up step costs about a forward pass.

Output: `<out_dir>/mlm_head.safetensors` (the head's tensors, by their names in the MLM model,
tied projection excluded) and `mlm_head.json` (fingerprint, held-out perplexity per language
before and after). A second call with the same base, corpora and settings returns the saved head.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from language_adapters.corpus import CorpusSource, load_corpus
from language_adapters.settings import HeadWarmup
from language_adapters.mlm import (
    MIN_HELD_OUT_SEQUENCES,
    MlmChunks,
    chunk_corpus,
    corpus_vocabulary,
    evaluate_mlm,
    mask_tokens,
    pad_batch,
    restricted_projection,
)
from madx.errors import DataError
from madx.fileutil import atomic_directory
from madx.pretrained import load_config, load_mlm_model, load_tokenizer, usable_length
from madx.seeding import seeded_global_rng
from madx.stopping import check
from madx.surgery import architecture_of, get_path
from madx.training_loop import pick_device

HEAD_FILE = "mlm_head.safetensors"
RECORD_FILE = "mlm_head.json"
EventCallback = Callable[[str, int, dict[str, float]], None]


@dataclass
class HeadWarmupResult:
    head_file: Path
    metrics: dict[str, float]  # before/after perplexity per language, mean over languages, timing
    cached: bool
    flags: list[str] = field(default_factory=list)  # warnings that do not fail the warm-up


def warm_up_mlm_head(
    base_model: str | Path,
    corpora: Mapping[str, str | dict | list | CorpusSource],
    out_dir: str | Path,
    training: HeadWarmup = HeadWarmup(),
    cache_dir: str | Path | None = None,
    on_event: EventCallback | None = None,
    identity: str | None = None,
) -> HeadWarmupResult:
    """Train the MLM head of `base_model` on `corpora` (language -> corpus); save it in `out_dir`.

    `identity` names the base model's content in the fingerprint (default: its name)."""
    out_dir = Path(out_dir)
    notify = on_event or (lambda kind, step, metrics: None)
    device = pick_device(training.device)
    config = load_config(base_model)
    tokenizer = load_tokenizer(base_model)
    max_length = usable_length(config, tokenizer, training.max_length)
    chunks = {
        language: chunk_corpus(load_corpus(CorpusSource.parse(corpus), cache_dir=cache_dir), tokenizer, max_length,
                               training.held_out_fraction, training.seed, description=f"corpus of {language!r}")
        for language, corpus in sorted(corpora.items())
    }
    flags = [f"small_held_out: {language} has {len(data.held_out)} held-out sequences (< {MIN_HELD_OUT_SEQUENCES}), "
             "its perplexities are rough" for language, data in chunks.items() if len(data.held_out) < MIN_HELD_OUT_SEQUENCES]
    fingerprint = _fingerprint(identity or str(base_model), training, chunks)
    record = _read_record(out_dir)
    if record and record.get("fingerprint") == fingerprint and (out_dir / HEAD_FILE).is_file():
        return HeadWarmupResult(out_dir / HEAD_FILE, record["metrics"], cached=True, flags=flags)

    train = [chunk for language in chunks for chunk in chunks[language].train]
    if len(train) < training.batch_size:
        raise DataError(f"the corpora yield {len(train)} training sequences; one warm-up batch needs {training.batch_size}")
    with seeded_global_rng(training.seed):  # the random initial head (transformers draws it from the global RNG)
        model = load_mlm_model(base_model, head_weights=None, allow_missing_head=True).to(device)
    if training.init == "identity":
        _start_near_the_embeddings(model, train)
    head_parameters = _head_parameters(model)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in head_parameters.values():
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(list(head_parameters.values()), lr=training.learning_rate, weight_decay=0.0)
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, min(training.warmup_steps, training.steps), training.steps)
    vocabulary = corpus_vocabulary(train).to(device) if training.softmax_vocabulary == "corpus" else None

    before = _held_out(model, chunks, tokenizer, training, device)
    notify("eval", 0, {"perplexity": _geometric_mean(before.values()), **_flat("perplexity", before)})
    generator = torch.Generator().manual_seed(training.seed + 1)
    order_rng = torch.Generator().manual_seed(training.seed + 2)
    started, running = time.perf_counter(), []
    model.eval()  # no dropout anywhere: the encoder is a fixed feature extractor here
    for step in range(1, training.steps + 1):
        check(f"MLM head warm-up at step {step - 1}/{training.steps}")
        picked = torch.randint(len(train), (training.batch_size,), generator=order_rng).tolist()
        loss = _head_loss(model, [train[i] for i in picked], tokenizer, generator, training.mlm_probability,
                          device, vocabulary)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(head_parameters.values()), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        running.append(loss.item())
        if step % training.log_every == 0 or step == training.steps:
            notify("train", step, {"train_loss": sum(running) / len(running)})
            running = []
    seconds = time.perf_counter() - started
    after = _held_out(model, chunks, tokenizer, training, device)
    notify("eval", training.steps, {"perplexity": _geometric_mean(after.values()), **_flat("perplexity", after)})
    broken = {language: value for language, value in after.items() if value >= len(tokenizer)}
    if broken:  # worse than a uniform guess over the vocabulary: the head did not learn
        raise DataError(
            f"the MLM head warm-up of {base_model} did not work: held-out perplexity "
            + ", ".join(f"{language} {value:,.0f}" for language, value in sorted(broken.items()))
            + f" is not below the vocabulary size {len(tokenizer):,} after {training.steps} steps; "
            "raise head_warmup.steps or learning_rate"
        )

    metrics: dict[str, float] = {
        **_flat("initial_perplexity", before),
        **_flat("perplexity", after),
        "mean_initial_perplexity": _geometric_mean(before.values()),
        "mean_perplexity": _geometric_mean(after.values()),
        "vocabulary_size": float(len(tokenizer)),
        "softmax_candidates": float(len(vocabulary) if vocabulary is not None else len(tokenizer)),
        "train_seconds": seconds,
        "steps": float(training.steps),
    }
    with atomic_directory(out_dir) as staging:
        save_file({name: p.detach().contiguous().cpu() for name, p in head_parameters.items()}, str(staging / HEAD_FILE))
        (staging / RECORD_FILE).write_text(json.dumps({
            "fingerprint": fingerprint, "base_model": str(base_model), "training": training.to_dict(),
            "languages": sorted(chunks), "metrics": metrics,
        }, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return HeadWarmupResult(out_dir / HEAD_FILE, metrics, cached=False, flags=flags)


def _start_near_the_embeddings(model, sequences: list[list[int]]) -> None:
    """A head that starts useful instead of random: the transform's dense layer as the identity
    (so the tied projection scores each token by how close the encoder's final state is to the
    token's input embedding, the geometry MLM pretraining leaves behind) and the output bias as the
    log unigram frequencies of the training text (add-one smoothed): the best context-free guess."""
    head = get_path(model, architecture_of(model).mlm_head)
    dense = next(module for module in head.modules() if isinstance(module, torch.nn.Linear)
                 and module.weight.shape[0] == module.weight.shape[1])  # the transform, not the projection
    vocabulary_size = model.get_output_embeddings().weight.shape[0]
    counts = torch.ones(vocabulary_size)
    for sequence in sequences:
        counts += torch.bincount(torch.tensor(sequence), minlength=vocabulary_size)[:vocabulary_size]
    with torch.no_grad():
        dense.weight.copy_(torch.eye(dense.weight.shape[0]))
        dense.bias.zero_()
        model.get_output_embeddings().bias.copy_((counts / counts.sum()).log())


def _head_parameters(model) -> dict[str, torch.nn.Parameter]:
    """The head's own parameters by state-dict name: transform and output bias. The projection
    matrix is the input embedding (tied) and stays frozen."""
    prefix = architecture_of(model).mlm_head
    head = get_path(model, prefix)
    embedding = model.get_input_embeddings().weight
    seen: set[int] = set()
    parameters = {}
    for name, parameter in head.named_parameters():
        if parameter is embedding or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        parameters[f"{prefix}.{name}"] = parameter
    return parameters


def _head_loss(model, batch, tokenizer, generator, probability, device, vocabulary) -> torch.Tensor:
    ids, attention = pad_batch(batch, tokenizer.pad_token_id)
    masked, labels = mask_tokens(ids, attention, tokenizer, generator, probability)
    targets = labels != -100
    with torch.no_grad():  # the frozen encoder: features only, no graph
        hidden = model.base_model(input_ids=masked.to(device), attention_mask=attention.to(device)).last_hidden_state
        hidden = hidden[targets.to(device)]
    head = get_path(model, architecture_of(model).mlm_head)
    gold = labels[targets].to(device)
    if vocabulary is None:
        return F.cross_entropy(head(hidden), gold)
    with restricted_projection(model, vocabulary):
        logits = head(hidden)
    return F.cross_entropy(logits, torch.searchsorted(vocabulary, gold))


@torch.inference_mode()
def _held_out(model, chunks: Mapping[str, MlmChunks], tokenizer, training: HeadWarmup, device) -> dict[str, float]:
    """Held-out perplexity per language over the whole vocabulary, the same masks every call."""
    return {
        language: evaluate_mlm(model, data.held_out, tokenizer, training.batch_size, training.mlm_probability,
                               training.seed + 3, device)["perplexity"]
        for language, data in chunks.items()
    }


def _flat(prefix: str, values: Mapping[str, float]) -> dict[str, float]:
    return {f"{prefix}.{language}": value for language, value in values.items()}


def _geometric_mean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _fingerprint(identity: str, training: HeadWarmup, chunks: Mapping[str, MlmChunks]) -> str:
    digest = hashlib.sha256()
    settings = {key: value for key, value in training.to_dict().items() if key not in ("device", "log_every")}
    digest.update(json.dumps({"base": identity, "training": settings}, sort_keys=True).encode())
    for language, data in sorted(chunks.items()):
        digest.update(language.encode())
        for chunk in (*data.train, *data.held_out):
            digest.update(torch.tensor(chunk, dtype=torch.int32).numpy().tobytes())
    return digest.hexdigest()


def _read_record(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
