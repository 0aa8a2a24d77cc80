"""Train a task adapter and its token head on labeled source-language data, on top of the frozen
source-language adapter: `Stack(<source LA>, task)` is active, only the task adapter and head train.
Without a language adapter (the MAD-X paper's -LAD baseline, setup `ta-only`) `Stack(task)` is.

Each epoch ends with an evaluation on the dev set; the weights of the epoch with the best dev F1
are the ones saved.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from madx.composition import Stack
from madx.config import resolve_config
from madx.errors import ConfigError, DataError, TrainingFailedError
from madx.fileutil import without_folders
from madx.adapter_files import load_adapter, save_adapter
from madx.pretrained import load_config, load_model, load_tokenizer, usable_length
from madx.model import AdapterModel
from madx.seeding import derive_seed, own_dropout, seeded_global_rng
from madx.stopping import check
from madx.training_loop import make_optimizer, metrics_file, pick_device, refuse_non_finite, without_timings
from tagging.alignment import IGNORE_INDEX, encode_tagged
from tagging.corpus import TaggedCorpus
from tagging.metrics import dev_score_key, flatten_scores, majority_score, metric_name
from tagging.predict import evaluate_tagging, pad_rows
from tagging.readers import load_labeled
from tagging.scheme import LabelSet, check_iob2
from tagging.sources import LabeledSource
from task_adapters.settings import TaskAdapterTraining

EventCallback = Callable[[str, int, dict[str, float]], None]


@dataclass
class TaskAdapterResult:
    adapter_dir: Path
    metrics: dict[str, float]  # best dev scores (flattened) + training facts
    history: list[dict[str, float]]
    label_set: LabelSet
    source_language: str
    majority_label: str = ""  # the most frequent training label (the majority baseline answers it everywhere)


def as_corpus(data: LabeledSource | TaggedCorpus) -> TaggedCorpus:
    return data if isinstance(data, TaggedCorpus) else load_labeled(data)


def train_task_adapter(
    base_model: str | Path,
    task: str,
    source_language_adapter: str | Path | None,
    train: LabeledSource | TaggedCorpus,
    dev: LabeledSource | TaggedCorpus,
    out_dir: str | Path,
    training: TaskAdapterTraining = TaskAdapterTraining(),
    label_set: LabelSet | None = None,
    tokenizer: str | Path | None = None,
    on_event: EventCallback | None = None,
    metadata: dict[str, Any] | None = None,
    source_language: str | None = None,
) -> TaskAdapterResult:
    """Train task adapter `task` under Stack(<source LA>, task); save the best-dev epoch to `out_dir`.

    `source_language_adapter` None trains it under Stack(task), with no language adapter; then
    `source_language` names the language of the labeled data (with an adapter, the adapter's name
    does). The saved metadata records both: `source_language`, and `language_adapter` (the source
    adapter's name, or None)."""
    if source_language_adapter is None and not source_language:
        raise ConfigError(f"task adapter {task!r} without a language adapter needs `source_language`: the language "
                          "of its labeled data, which evaluation scores it against")
    notify = on_event or (lambda kind, step, metrics: None)
    device = pick_device(training.device)
    train_corpus, dev_corpus = as_corpus(train), as_corpus(dev)
    label_set = label_set or LabelSet.from_sentences(train_corpus)
    if label_set.scheme == "iob2" and training.strict_iob2:
        check_iob2(train_corpus)

    base_config = load_config(base_model)  # an unsupported architecture fails here, before any work
    tok = load_tokenizer(tokenizer or base_model)
    max_length = usable_length(base_config, tok, training.max_length)
    train_rows = encode_tagged(train_corpus, tok, label_set, max_length)
    dev_rows = encode_tagged(dev_corpus, tok, label_set, max_length)  # fails on labels unseen in train
    if len(train_rows) < training.batch_size:
        raise DataError(
            f"training set {train_corpus.source} has {len(train_rows)} rows; one batch needs {training.batch_size}"
        )

    # Init, data order and dropout all come from this seed: the configured one and the task.
    seed = derive_seed(training.seed, "task_adapter", task)
    with seeded_global_rng(seed):
        model = load_model(base_model, "token", num_labels=len(label_set)).to(device)
        am = AdapterModel(model)
        language_adapter = None
        if source_language_adapter is not None:
            language_adapter = source_language = load_adapter(am, source_language_adapter, with_head=False)
        am.add_adapter(task, resolve_config(training.adapter))
        am.new_token_head(label_set.id2label)
    own_dropout(model, torch.Generator(device=device).manual_seed(seed + 1))
    am.set_active(Stack(task) if language_adapter is None else Stack(language_adapter, task))
    count = am.train_adapter(task, train_head=True)

    steps_per_epoch = len(train_rows) // training.batch_size
    total_steps = steps_per_epoch * training.epochs
    optimizer, scheduler = make_optimizer(
        am, training.learning_rate, training.weight_decay, round(training.warmup_ratio * total_steps), total_steps
    )
    # Whole columns as lists, read from Arrow once: indexing a datasets Column row by row reads
    # Arrow again every time (~45 us a row, 64 reads a step).
    input_ids, labels = train_rows["input_ids"][:], train_rows["labels"][:]
    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"f1": -1.0}
    started, tokens, step = time.perf_counter(), 0, 0
    for epoch in range(1, training.epochs + 1):
        model.train()
        order = torch.randperm(len(input_ids), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        epoch_loss = 0.0
        for start in range(0, steps_per_epoch * training.batch_size, training.batch_size):
            check(f"task adapter {task!r} at step {step}/{total_steps} (nothing saved: it retrains from the start)")
            batch = order[start : start + training.batch_size]
            ids = pad_rows([input_ids[i] for i in batch], tok.pad_token_id)
            gold = pad_rows([labels[i] for i in batch], IGNORE_INDEX)
            attention = (ids != tok.pad_token_id).long()
            loss = model(input_ids=ids.to(device), attention_mask=attention.to(device), labels=gold.to(device)).loss
            refuse_non_finite(loss.item(), f"task adapter {task!r}", step + 1)
            loss.backward()
            if training.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], training.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            epoch_loss += loss.item()
            tokens += int(attention.sum())
            step += 1
        dev_scores = evaluate_tagging(
            model, dev_corpus, tok, label_set, max_length, training.eval_batch_size, device, dev_rows
        )
        row = {"epoch": epoch, "step": step, "train_loss": epoch_loss / steps_per_epoch, **flatten_scores(dev_scores, "dev_")}
        history.append(row)
        # tracked and shown under the name of what it is (word accuracy for POS), not only as `dev_f1`
        notify("eval", epoch, {**row, dev_score_key(label_set.scheme): dev_scores["f1"]})
        if dev_scores["f1"] > best["f1"]:
            best = {"f1": dev_scores["f1"], "epoch": epoch, "scores": dev_scores, "state": _trainable_state(am)}
    seconds = time.perf_counter() - started
    baseline = majority_baseline(train_corpus, dev_corpus, label_set.scheme)
    _refuse_no_better_than_majority(task, best["scores"]["f1"], baseline, label_set.scheme, training, step)

    _restore_state(am, best["state"])
    metrics = {
        **flatten_scores(best["scores"], "dev_"),
        "dev_majority_baseline": baseline.score,
        "best_epoch": best["epoch"],
        "epochs": training.epochs,
        "steps": step,
        "train_rows": len(train_rows),
        "tokens_per_second": tokens / seconds,
        "trainable_parameters": count.trainable,
        "total_parameters": count.total,
    }
    metadata = {
        "kind": "task_adapter",
        "task": task,
        "source_language": source_language,
        "language_adapter": language_adapter,  # None: trained with no language adapter under it
        "label_scheme": label_set.scheme,
        "labels": list(label_set.labels),
        "majority_label": baseline.label,
        "train": without_folders(train_corpus.source),
        "dev": without_folders(dev_corpus.source),
        "training": training.to_dict(),
        "metrics": without_timings(metrics),
        **(metadata or {}),
    }
    save_adapter(
        am, task, out_dir, with_head=True, metadata=metadata,
        extra_files=metrics_file(metrics, history),
    )
    return TaskAdapterResult(Path(out_dir), metrics, history, label_set, source_language, baseline.label)


@dataclass(frozen=True)
class MajorityBaseline:
    """What a tagger scores on dev by always answering the most frequent training label."""

    label: str
    score: float  # word accuracy for plain tag sets, entity F1 for IOB2 (0 when the majority label is O)


def majority_baseline(train: TaggedCorpus, dev: TaggedCorpus, scheme: str) -> MajorityBaseline:
    label = train.tag_counts().most_common(1)[0][0]
    return MajorityBaseline(label, majority_score(dev.tag_sequences(), label, scheme))


def _refuse_no_better_than_majority(task: str, best: float, baseline: MajorityBaseline, scheme: str,
                                    training: TaskAdapterTraining, steps: int) -> None:
    if best < baseline.score + training.min_gain_over_majority:
        raise TrainingFailedError(
            f"task adapter {task!r}: best dev {metric_name(scheme)} {100 * best:.1f} % after {steps} steps is not "
            f"clearly above the majority-label baseline {100 * baseline.score:.1f} % (always {baseline.label!r}; "
            f"required margin {100 * training.min_gain_over_majority:.0f} points): the tagger did not learn, so its "
            "zero-shot scores would mean nothing. Nothing was saved. Check the learning rate and epochs, and the "
            "source language adapter it is stacked on (a language adapter fitted to a random MLM head breaks it)"
        )


def _trainable_state(am: AdapterModel) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in am.model.named_parameters() if p.requires_grad}


def _restore_state(am: AdapterModel, state: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, param in am.model.named_parameters():
            if name in state:
                param.copy_(state[name])
