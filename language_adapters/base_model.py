"""Build a small multilingual base model from text: a SentencePiece tokenizer and an XLM-R-architecture
encoder pretrained with MLM on all the given languages together.

This is for when no pretrained multilingual model can be downloaded (the offline demo, tests). The
result is an ordinary transformers folder, so every later stage loads it exactly like
`xlm-roberta-base`. It is cached: a folder built from the same corpora and spec is reused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import XLMRobertaConfig, get_linear_schedule_with_warmup

from language_adapters.corpus import CorpusSource, load_corpus
from language_adapters.settings import BaseModelSpec
from language_adapters.mlm import chunk_corpus, evaluate_mlm, mlm_batch_loss
from language_adapters.train import Position, next_batch
from madx.errors import ConfigError
from madx.fileutil import atomic_directory
from madx.pretrained import build_model, xlmr_config
from madx.seeding import SEEDING_VERSION, own_dropout, seeded_global_rng
from madx.stopping import check
from madx.tokenizer import train_sentencepiece_tokenizer
from madx.training_loop import pick_device

SPEC_FILE = "madx_base_model.json"


@dataclass
class BaseModelResult:
    path: Path
    metrics: dict[str, Any]
    cached: bool  # True when an identical earlier build was reused


def build_base_model(
    corpora: Mapping[str, str | dict | CorpusSource],
    out_dir: str | Path,
    spec: BaseModelSpec = BaseModelSpec(),
    on_event: Callable[[str, int, dict[str, float]], None] | None = None,
    cache_dir: str | Path | None = None,
) -> BaseModelResult:
    """Train a tokenizer and an MLM encoder on `corpora` (language -> source); save both to `out_dir`."""
    out_dir = Path(out_dir)
    if not corpora:
        raise ConfigError("building a base model needs at least one corpus")
    sources = {language: CorpusSource.parse(source) for language, source in sorted(corpora.items())}
    texts = {language: load_corpus(source, cache_dir=cache_dir) for language, source in sources.items()}
    fingerprint = _fingerprint(spec, {language: dataset["text"] for language, dataset in texts.items()})
    previous = _read_record(out_dir)
    if previous is not None and previous.get("fingerprint") == fingerprint:
        return BaseModelResult(out_dir, previous["metrics"], cached=True)

    notify = on_event or (lambda kind, step, metrics: None)
    device = pick_device(spec.device)
    started = time.perf_counter()
    with atomic_directory(out_dir) as staging:
        tokenizer_dir = staging / "tokenizer"
        all_lines = [line for dataset in texts.values() for line in dataset["text"]]
        tokenizer = train_sentencepiece_tokenizer(all_lines, tokenizer_dir, spec.vocab_size, spec.max_length)
        train, held_out = [], []
        for language, dataset in texts.items():
            chunks = chunk_corpus(dataset, tokenizer, spec.max_length, 0.05, spec.seed, f"corpus of {language}")
            train += chunks.train
            held_out += chunks.held_out

        with seeded_global_rng(spec.seed):
            model = build_model(_model_config(spec, tokenizer), head="mlm").to(device)
        own_dropout(model, torch.Generator(device=device).manual_seed(spec.seed + 2))
        optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.01)
        scheduler = get_linear_schedule_with_warmup(optimizer, min(spec.warmup_steps, spec.steps), spec.steps)
        generator = torch.Generator().manual_seed(spec.seed + 1)
        position, tokens, window = Position(), 0, []
        batch_size = min(spec.batch_size, len(train))
        model.train()
        while position.step < spec.steps:
            check(f"base model pretraining at step {position.step}/{spec.steps}")
            batch = next_batch(train, position, batch_size, spec.seed)
            loss, batch_tokens, _ = mlm_batch_loss(model, batch, tokenizer, generator, 0.15, device)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            position.step += 1
            tokens += batch_tokens
            window.append(loss.item())
            if position.step % 50 == 0 or position.step == spec.steps:
                notify("train", position.step, {"train_loss": sum(window) / len(window)})
                window = []
        seconds = time.perf_counter() - started
        held = evaluate_mlm(model, held_out, tokenizer, spec.batch_size, 0.15, spec.seed + 3, device)
        metrics = {
            **held,
            "steps": spec.steps,
            "train_sequences": len(train),
            "parameters": sum(p.numel() for p in model.parameters()),
            "seconds": round(seconds, 2),
            "tokens_per_second": tokens / seconds,
            "vocab_size": len(tokenizer),
        }
        notify("eval", position.step, held)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)  # beside the weights, so from_pretrained(folder) finds both
        shutil.rmtree(tokenizer_dir)
        record = {
            "fingerprint": fingerprint,
            "spec": spec.to_dict(),
            "corpora": {language: source.describe() for language, source in sources.items()},
            "metrics": metrics,
        }
        (staging / SPEC_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return BaseModelResult(out_dir, metrics, cached=False)


def _model_config(spec: BaseModelSpec, tokenizer) -> XLMRobertaConfig:
    return xlmr_config(tokenizer, vocab_size=len(tokenizer), hidden=spec.hidden_size, layers=spec.num_layers,
                       heads=spec.num_heads, ffn=spec.intermediate_size, max_length=spec.max_length,
                       dropout=spec.dropout)


def _fingerprint(spec: BaseModelSpec, texts: Mapping[str, list[str]]) -> str:
    digest = hashlib.sha256(json.dumps({**spec.to_dict(), "seeding": SEEDING_VERSION}, sort_keys=True).encode())
    for language in sorted(texts):
        digest.update(language.encode() + b"\0")
        for line in texts[language]:
            digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def _read_record(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / SPEC_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
