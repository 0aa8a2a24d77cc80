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
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from language_adapters.corpus import CorpusSource, corpus_fingerprint, load_corpus
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
# Bump when what a warm-up computes changes for the same inputs: its fingerprint carries it.
HEAD_WARMUP_VERSION = 2
# Chunks of a corpus outside the mix measured (a UDHR declaration has ~50 of 64 tokens).
OUTSIDE_SEQUENCES = 64
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
    panel: Collection[str] | None = None,
    outside: Mapping[str, str | dict | list | CorpusSource] | None = None,
) -> HeadWarmupResult:
    """Train the MLM head of `base_model` on `corpora` (name -> corpus); save it in `out_dir`.

    Held-out perplexity is reported before and after for the corpora named in `panel` (default:
    all) on their held-out chunks, and for the corpora of `outside` (never trained on) on up to
    `OUTSIDE_SEQUENCES` of their chunks. `identity` names the base model's content in the
    fingerprint (default: its name). A folder already holding the head of the same fingerprint is
    returned before any text is read."""
    out_dir = Path(out_dir)
    notify = on_event or (lambda kind, step, metrics: None)
    sources = {name: CorpusSource.parse(corpus) for name, corpus in sorted(corpora.items())}
    outside_sources = {name: CorpusSource.parse(corpus) for name, corpus in sorted((outside or {}).items())}
    measured = sorted(sources if panel is None else panel)
    unknown = sorted(set(measured) - set(sources))
    if unknown:
        raise DataError(f"the head warm-up's panel names corpora it does not train on: {unknown}")
    fingerprint = head_fingerprint(identity or str(base_model), sources, training, measured, outside_sources)
    record = _read_record(out_dir)
    if record and record.get("fingerprint") == fingerprint and (out_dir / HEAD_FILE).is_file():
        return HeadWarmupResult(out_dir / HEAD_FILE, record["metrics"], cached=True, flags=record.get("flags", []))

    device = pick_device(training.device)
    config = load_config(base_model)
    tokenizer = load_tokenizer(base_model)
    max_length = usable_length(config, tokenizer, training.max_length)

    def chunks_of(source: CorpusSource, name: str) -> MlmChunks:
        check(f"MLM head warm-up while reading corpus {name!r}")  # hundreds of corpora: Ctrl-C must not wait for all
        return chunk_corpus(load_corpus(source, cache_dir=cache_dir), tokenizer, max_length,
                            training.held_out_fraction, training.seed, description=f"corpus {name!r}")

    chunks = {name: chunks_of(source, name) for name, source in _progress(sources.items(), "reading the head's corpora")}
    held_out = {name: chunks[name].held_out for name in measured}
    for name, source in outside_sources.items():  # never trained on: measured on their own chunks
        data = chunks_of(source, name)
        held_out[name] = (data.train + data.held_out)[:OUTSIDE_SEQUENCES]
    flags = [f"small_held_out: {name} has {len(sequences)} held-out sequences (< {MIN_HELD_OUT_SEQUENCES}), "
             "its perplexities are rough" for name, sequences in held_out.items() if len(sequences) < MIN_HELD_OUT_SEQUENCES]
    if len(flags) > 3:  # a broad mix holds a few sequences of each of hundreds of languages: say it once
        flags = [f"small_held_out: {len(flags)} of {len(held_out)} measured corpora have fewer than "
                 f"{MIN_HELD_OUT_SEQUENCES} held-out sequences; each one's perplexity is rough, their mean less so"]

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

    before = _held_out(model, held_out, tokenizer, training, device)
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
    after = _held_out(model, held_out, tokenizer, training, device)
    notify("eval", training.steps, {"perplexity": _geometric_mean(after.values()), **_flat("perplexity", after)})
    broken = {language: value for language, value in after.items() if value >= len(tokenizer)}
    if broken:  # worse than a uniform guess over the vocabulary: the head did not learn
        raise DataError(
            f"the MLM head warm-up of {base_model} did not work: held-out perplexity "
            + ", ".join(f"{language} {value:,.0f}" for language, value in sorted(broken.items()))
            + f" is not below the vocabulary size {len(tokenizer):,} after {training.steps} steps; "
            "raise head_warmup.steps or learning_rate"
        )

    inside = [name for name in measured]
    metrics: dict[str, float] = {
        **_flat("initial_perplexity", before),
        **_flat("perplexity", after),
        "mean_initial_perplexity": _geometric_mean(before[name] for name in inside),
        "mean_perplexity": _geometric_mean(after[name] for name in inside),
        **({"mean_initial_perplexity_outside": _geometric_mean(before[name] for name in outside_sources),
            "mean_perplexity_outside": _geometric_mean(after[name] for name in outside_sources)} if outside_sources else {}),
        "corpora": float(len(sources)),
        "vocabulary_size": float(len(tokenizer)),
        "softmax_candidates": float(len(vocabulary) if vocabulary is not None else len(tokenizer)),
        "train_seconds": seconds,
        "steps": float(training.steps),
    }
    with atomic_directory(out_dir) as staging:
        save_file({name: p.detach().contiguous().cpu() for name, p in head_parameters.items()}, str(staging / HEAD_FILE))
        (staging / RECORD_FILE).write_text(json.dumps({
            "fingerprint": fingerprint, "base_model": str(base_model), "training": training.to_dict(),
            "corpora": sorted(chunks), "panel": measured, "outside": sorted(outside_sources), "metrics": metrics,
            "flags": flags,
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
def _held_out(model, held_out: Mapping[str, list[list[int]]], tokenizer, training: HeadWarmup, device) -> dict[str, float]:
    """Held-out perplexity per corpus over the whole vocabulary, the same masks every call."""
    return {
        name: evaluate_mlm(model, sequences, tokenizer, training.batch_size, training.mlm_probability,
                           training.seed + 3, device)["perplexity"]
        for name, sequences in held_out.items()
    }


def _flat(prefix: str, values: Mapping[str, float]) -> dict[str, float]:
    return {f"{prefix}.{language}": value for language, value in values.items()}


def _geometric_mean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def head_fingerprint(identity: str, sources: Mapping[str, CorpusSource], training: HeadWarmup,
                     panel: Collection[str], outside: Mapping[str, CorpusSource]) -> str:
    """What decides a warmed head, named without reading any text: the base model's identity, the
    settings that change the result, and each corpus by its content fingerprint (a file's hash, a
    pinned package's version; `corpus_fingerprint`). A cached head is found in milliseconds, not
    after tokenising every corpus again."""
    settings = {key: value for key, value in training.to_dict().items() if key not in ("device", "log_every")}
    data = {
        "base": identity, "training": settings, "version": HEAD_WARMUP_VERSION,
        "corpora": {name: corpus_fingerprint(source) for name, source in sources.items()},
        "panel": sorted(panel),
        "outside": {name: corpus_fingerprint(source) for name, source in outside.items()},
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _progress(items, description: str):
    """Items one by one, with a progress bar on a terminal when there are many (hundreds of corpora)."""
    items = list(items)
    if len(items) < 20:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=description, unit="corpus", leave=False)


def _read_record(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
