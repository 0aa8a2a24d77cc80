"""Sub-word label alignment and the way back: `encode_tagged` turns tagged sentences into model
rows (one label id on the first sub-token of each word, long sentences split into windows of
whole words), `predictions_to_tags` turns the model's per-sub-token answers back into one tag per
word.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from madx.errors import ConfigError, DataError
from tagging.corpus import TaggedSentence
from tagging.scheme import LabelSet, check_known_tags

logger = logging.getLogger(__name__)

# Columns of `encode_tagged`'s dataset: what the model consumes, and what maps predictions back.
MODEL_COLUMNS = ("input_ids", "attention_mask", "labels")
ALIGNMENT_COLUMNS = ("word_ids", "sentence_index", "n_words")
IGNORE_INDEX = -100  # the label torch's cross-entropy skips: special tokens, non-first sub-tokens


def encode_tagged(
    sentences: Iterable[TaggedSentence],
    tokenizer: PreTrainedTokenizerBase,
    label_set: LabelSet,
    max_length: int = 128,
    batch_size: int = 1000,
) -> datasets.Dataset:
    """Tokenise pre-split sentences and align word tags to sub-tokens, one row per window.

    Columns: `input_ids`, `attention_mask`, `labels` (MODEL_COLUMNS: what the model takes; drop
    the others before a collator) and `word_ids`, `sentence_index`, `n_words` (ALIGNMENT_COLUMNS,
    for `predictions_to_tags`). The FIRST sub-token of each word gets the word's label id; later
    sub-tokens and special tokens get -100. `word_ids` holds, per position, the word's index in
    its whole sentence (-1 for special tokens).

    Long sentences are split, not truncated: a sentence whose sub-tokens do not fit `max_length`
    (special tokens included) becomes several consecutive rows ("windows") of whole words, with
    no overlap, so every word is trained on and every word is scored. Only a single word longer
    than a whole window loses its tail sub-tokens; its first sub-token (and so its label) stays.
    A word the tokenizer turns into nothing (empty, zero-width space) is encoded as the unknown
    token, so it too gets a position and a prediction. Rows are in sentence order.

    Raises `DataError` if a tag is not in `label_set` (all unknown tags listed), `ConfigError` for
    a slow tokenizer (no `word_ids`) or a `max_length` that leaves no room for words.
    """
    sentences = list(sentences)
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"{type(tokenizer).__name__} is not a fast tokenizer; label alignment needs word_ids()")
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise ConfigError(f"max_length={max_length} leaves no room for words next to the special tokens")
    check_known_tags(sentences, label_set)

    aligner = _Aligner(tokenizer, label_set.label2id, max_length, budget)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(sentences), batch_size):
        chunk = sentences[start : start + batch_size]
        # One batched call for the common case; only odd or long sentences are encoded again.
        encodings = tokenizer([s.tokens for s in chunk], is_split_into_words=True, verbose=False)
        for offset, sentence in enumerate(chunk):
            rows.extend(aligner.sentence_rows(sentence, start + offset, encodings, offset))
    if aligner.split_sentences or aligner.truncated_words:
        logger.info(
            "encode_tagged: %d sentence(s) longer than max_length=%d split into windows; "
            "%d over-long word(s) kept only their first %d sub-tokens",
            aligner.split_sentences, max_length, aligner.truncated_words, budget,
        )  # fmt: skip
    columns = {name: [row[name] for row in rows] for name in (*MODEL_COLUMNS, *ALIGNMENT_COLUMNS)}
    return datasets.Dataset.from_dict(columns)


@dataclass
class _Aligner:
    """The per-sentence part of `encode_tagged` (with its counters for the log line)."""

    tokenizer: PreTrainedTokenizerBase
    label2id: dict[str, int]
    max_length: int
    budget: int  # sub-tokens per row, special tokens excluded
    split_sentences: int = 0
    truncated_words: int = 0

    def sentence_rows(self, sentence: TaggedSentence, index: int, encodings: Any, offset: int) -> list[dict[str, Any]]:
        words = list(sentence.tokens)
        word_ids = encodings.word_ids(offset)
        counts = Counter(word for word in word_ids if word is not None)
        empty = [position for position in range(len(words)) if counts[position] == 0]
        if empty:
            if self.tokenizer.unk_token is None:
                raise DataError(f"{sentence.where(empty[0])}: word {words[empty[0]]!r} has no sub-tokens")
            for position in empty:
                words[position] = self.tokenizer.unk_token
            encoding = self.tokenizer(words, is_split_into_words=True, verbose=False)
            word_ids = encoding.word_ids()
            counts = Counter(word for word in word_ids if word is not None)
            input_ids, attention_mask = encoding["input_ids"], encoding["attention_mask"]
        else:
            input_ids, attention_mask = encodings["input_ids"][offset], encodings["attention_mask"][offset]
        if sum(counts.values()) <= self.budget:
            return [self._row(sentence, index, 0, input_ids, attention_mask, word_ids)]
        self.split_sentences += 1
        self.truncated_words += sum(1 for count in counts.values() if count > self.budget)
        rows: list[dict[str, Any]] = []
        for first, end in _windows([counts[position] for position in range(len(words))], self.budget):
            rows.extend(self._window_rows(sentence, index, words, first, end))
        return rows

    def _window_rows(
        self, sentence: TaggedSentence, index: int, words: list[str], first: int, end: int
    ) -> list[dict[str, Any]]:
        encoding = self.tokenizer(
            words[first:end], is_split_into_words=True, truncation=True, max_length=self.max_length
        )
        word_ids = encoding.word_ids()
        present = {word for word in word_ids if word is not None}
        if end - first > 1 and len(present) < end - first:
            # The window was measured on the whole sentence; should a tokenizer encode a word
            # differently on its own, halve the window rather than drop a word.
            middle = (first + end) // 2
            return [
                *self._window_rows(sentence, index, words, first, middle),
                *self._window_rows(sentence, index, words, middle, end),
            ]
        return [self._row(sentence, index, first, encoding["input_ids"], encoding["attention_mask"], word_ids)]

    def _row(self, sentence: TaggedSentence, index: int, first: int, input_ids: Sequence[int],
             attention_mask: Sequence[int], word_ids: Sequence[int | None]) -> dict[str, Any]:  # fmt: skip
        labels: list[int] = []
        positions: list[int] = []
        previous: int | None = None
        for word in word_ids:
            if word is None:
                labels.append(IGNORE_INDEX)
                positions.append(-1)
            else:
                labels.append(self.label2id[sentence.tags[first + word]] if word != previous else IGNORE_INDEX)
                positions.append(first + word)
            previous = word
        return {
            "input_ids": list(input_ids),
            "attention_mask": list(attention_mask),
            "labels": labels,
            "word_ids": positions,
            "sentence_index": index,
            "n_words": len(sentence.tokens),
        }


def _windows(counts: list[int], budget: int) -> list[tuple[int, int]]:
    """Greedy [first, end) word runs whose sub-token counts sum to at most `budget`.

    A word longer than the budget on its own becomes a one-word window (truncated when encoded).
    """
    windows: list[tuple[int, int]] = []
    first, used = 0, 0
    for position, count in enumerate(counts):
        if used + count > budget and position > first:
            windows.append((first, position))
            first, used = position, 0
        used += count
    windows.append((first, len(counts)))
    return windows


def predictions_to_tags(
    encoded: datasets.Dataset | Mapping[str, Sequence[Any]],
    predictions: Any,
    label_set: LabelSet,
) -> list[list[str]]:
    """Per-word predicted tags, one list per sentence, in sentence order (`sentence_index`).

    `predictions` has one entry per row of `encoded` (what `encode_tagged` returned): label ids
    per sub-token position (rows may be padded, e.g. with -100 by `Trainer.predict`) or logits
    (an extra last axis, arg-maxed here); numpy arrays, CPU tensors or nested lists. Position p
    of a row must be position p of that row's `input_ids` (right padding, the default for XLM-R
    and BERT). A word's tag is the prediction at its FIRST sub-token, the position that carried
    its label in training. Raises ValueError if shapes or ids do not fit `encoded`.
    """
    if isinstance(encoded, datasets.Dataset):
        encoded = encoded.select_columns(list(ALIGNMENT_COLUMNS)).to_dict()
    if hasattr(predictions, "detach"):
        predictions = predictions.detach().cpu().numpy()
    word_id_rows, sentence_rows, n_words = (encoded[name] for name in ALIGNMENT_COLUMNS)
    if len(predictions) != len(word_id_rows):
        raise ValueError(f"{len(predictions)} prediction rows for {len(word_id_rows)} encoded rows")
    tags: dict[int, list[str | None]] = {}
    rows = zip(word_id_rows, sentence_rows, n_words, predictions)
    for row, (word_ids, sentence, count, predicted) in enumerate(rows):
        predicted = np.asarray(predicted)
        if predicted.ndim == 2:
            predicted = predicted.argmax(axis=-1)
        if predicted.ndim != 1 or len(predicted) < len(word_ids):
            raise ValueError(f"row {row}: predictions of shape {predicted.shape} for {len(word_ids)} positions")
        sentence_tags = tags.setdefault(sentence, [None] * count)
        previous = -1
        for position, word in enumerate(word_ids):
            if word >= 0 and word != previous:
                label_id = int(predicted[position])
                if not 0 <= label_id < len(label_set):
                    raise ValueError(
                        f"row {row}, position {position}: predicted id {label_id} is not a label id "
                        f"(0..{len(label_set) - 1})"
                    )
                sentence_tags[word] = label_set.labels[label_id]
            previous = word
    if sorted(tags) != list(range(len(tags))):
        raise ValueError("encoded rows do not cover sentences 0..n-1; pass the whole encode_tagged output")
    result: list[list[str]] = []
    for sentence in range(len(tags)):
        missing = [word for word, tag in enumerate(tags[sentence]) if tag is None]
        if missing:
            raise ValueError(f"sentence {sentence}: words {missing[:10]} have no prediction")
        result.append([tag for tag in tags[sentence] if tag is not None])
    return result
