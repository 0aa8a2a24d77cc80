"""Batched tagging inference: length-sorted batches with dynamic padding, no gradients."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from tagging.alignment import encode_tagged, predictions_to_tags
from tagging.corpus import TaggedCorpus
from tagging.metrics import score_tagging, sentence_counts
from tagging.scheme import LabelSet


def pad_rows(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(row) for row in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


@torch.inference_mode()
def predict_label_ids(
    model, encoded: Dataset, pad_token_id: int, batch_size: int = 64, device: torch.device | str = "cpu"
) -> list[list[int]]:
    """Arg-max label id per sub-token position for every row of `encoded`, in row order.

    Rows are batched by length (sorted), so a batch pads only to its own longest row: on mixed
    lengths this does far less work than padding everything to `max_length`.
    """
    model.eval()
    input_ids = encoded["input_ids"][:]  # a list, read from Arrow once (not once a row)
    order = sorted(range(len(input_ids)), key=lambda i: len(input_ids[i]))
    predictions: list[list[int] | None] = [None] * len(input_ids)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        ids = pad_rows([input_ids[i] for i in batch], pad_token_id)
        attention = (ids != pad_token_id).long() if pad_token_id is not None else torch.ones_like(ids)
        logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits
        best = logits.argmax(dim=-1).cpu()
        for row, index in enumerate(batch):
            predictions[index] = best[row, : len(input_ids[index])].tolist()
    return predictions  # type: ignore[return-value]


def evaluate_tagging(
    model,
    corpus: TaggedCorpus,
    tokenizer: PreTrainedTokenizerBase,
    label_set: LabelSet,
    max_length: int = 128,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    encoded: Dataset | None = None,
) -> dict:
    """Score the model's tags on `corpus` (seqeval for IOB2, accuracy for plain tag sets).

    `encoded` may be passed when the same corpus is scored many times (one encoding, many setups).
    """
    encoded = encoded if encoded is not None else encode_tagged(corpus, tokenizer, label_set, max_length)
    label_ids = predict_label_ids(model, encoded, tokenizer.pad_token_id, batch_size, device)
    predicted = predictions_to_tags(encoded, label_ids, label_set)
    gold = corpus.tag_sequences()
    scores = score_tagging(gold, predicted, label_set.scheme)
    # per sentence, for intervals by resampling sentences (a list: flatten_scores leaves it out)
    scores["sentence_counts"] = sentence_counts(gold, predicted, label_set.scheme)
    return scores
