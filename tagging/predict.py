"""Batched tagging inference: length-sorted batches with dynamic padding, no gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from datasets import Dataset
from torch import nn
from transformers import PreTrainedTokenizerBase

from tagging.alignment import encode_tagged, predictions_to_tags
from tagging.corpus import TaggedCorpus
from tagging.metrics import score_tagging, sentence_counts
from tagging.scheme import LabelSet, Scheme


def pad_rows(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(row) for row in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def _length_sorted_batches(input_ids: list[list[int]], pad_token_id: int,
                           batch_size: int) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """(row indices, padded ids, attention mask) per batch of rows of similar length."""
    order = sorted(range(len(input_ids)), key=lambda i: len(input_ids[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        ids = pad_rows([input_ids[i] for i in batch], pad_token_id)
        attention = (ids != pad_token_id).long() if pad_token_id is not None else torch.ones_like(ids)
        yield batch, ids, attention


def _as_is() -> None:
    """The activation that leaves the model as it is."""


def predict_label_ids(
    model, encoded: Dataset, pad_token_id: int, batch_size: int = 64, device: torch.device | str = "cpu"
) -> list[list[int]]:
    """Arg-max label id per sub-token position for every row of `encoded`, in row order.

    Rows are batched by length (sorted), so a batch pads only to its own longest row: on mixed
    lengths this does far less work than padding everything to `max_length`.
    """
    return predict_label_ids_under(model, encoded, pad_token_id, {"as is": _as_is}, batch_size, device)["as is"]


HeadInputs = Callable[[dict[str, torch.Tensor], torch.Tensor], None]


@torch.inference_mode()
def predict_label_ids_under(
    model,
    encoded: Dataset,
    pad_token_id: int,
    activations: Mapping[str, Callable[[], None]],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    head: nn.Module | None = None,
    on_head_inputs: HeadInputs | None = None,
) -> dict[str, list[list[int]]]:
    """`predict_label_ids` under each of several activations of one model (name -> a call that
    activates it, e.g. an adapter setup): {name: label ids per row}.

    Every batch runs under each activation in turn (switching adapters costs microseconds), so the
    setups' states can be compared position by position without holding a whole test set's: with
    `head` (the token head) and `on_head_inputs`, each batch calls `on_head_inputs(states, words)`,
    `states` the head's input under each activation (name -> (batch, length, hidden)) and `words`
    (batch, length) True at the sub-tokens of words (not padding, not special tokens). A batch's
    predictions are the ones each activation alone gives. The last activation stays active.
    """
    if (head is None) != (on_head_inputs is None):
        raise ValueError("give both `head` and `on_head_inputs`, or neither")
    model.eval()
    input_ids = encoded["input_ids"][:]  # a list, read from Arrow once (not once a row)
    word_ids = encoded["word_ids"][:] if on_head_inputs else None
    predictions: dict[str, list[list[int] | None]] = {name: [None] * len(input_ids) for name in activations}
    captured: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda _module, args: captured.append(args[0])) if head is not None else None
    try:
        for batch, ids, attention in _length_sorted_batches(input_ids, pad_token_id, batch_size):
            states = {}
            for name, activate in activations.items():
                activate()
                captured.clear()
                logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits
                best = logits.argmax(dim=-1).cpu()
                for row, index in enumerate(batch):
                    predictions[name][index] = best[row, : len(input_ids[index])].tolist()
                if on_head_inputs is not None:
                    if len(captured) != 1:
                        raise ValueError(f"the token head ran {len(captured)} times in one forward pass, expected once")
                    states[name] = captured[0]
            if on_head_inputs is not None:
                words = pad_rows([word_ids[i] for i in batch], -1) >= 0
                on_head_inputs(states, words.to(next(iter(states.values())).device))
    finally:
        if hook is not None:
            hook.remove()
    return predictions  # type: ignore[return-value]


def score_predicted(corpus: TaggedCorpus, predicted: list[list[str]], scheme: Scheme) -> dict:
    """The scores of predicted tags (one list per sentence) against `corpus`'s gold tags, with the
    per-sentence counts the intervals resample (`sentence_counts`, a list: flatten_scores leaves it out)."""
    gold = corpus.tag_sequences()
    scores = score_tagging(gold, predicted, scheme)
    scores["sentence_counts"] = sentence_counts(gold, predicted, scheme)
    return scores


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
    return score_predicted(corpus, predictions_to_tags(encoded, label_ids, label_set), label_set.scheme)
