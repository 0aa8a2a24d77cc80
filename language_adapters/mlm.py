"""MLM data: tokenise, concatenate, chunk; hold out a slice; mask dynamically (15 %, 80/10/10)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from madx.errors import DataError
from madx.surgery import architecture_of, get_path


# Fewer held-out sequences than this give perplexities too rough to compare: flagged, not refused.
MIN_HELD_OUT_SEQUENCES = 20


@dataclass(frozen=True)
class MlmChunks:
    """Fixed-length token sequences (`<s> ... </s>`), split into training and held-out sets."""

    train: list[list[int]]
    held_out: list[list[int]]


def chunk_corpus(
    texts: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    held_out_fraction: float,
    seed: int,
    description: str = "corpus",
) -> MlmChunks:
    """Tokenise every line, join them with `</s>`, cut into `max_length` sequences, split off a held-out slice.

    Concatenation wastes no positions on padding; the last, shorter chunk is kept (the collator pads).
    The held-out slice is a seeded random choice of chunks, at least one.
    """
    if max_length < 8:
        raise DataError(f"max_length must be at least 8, got {max_length}")
    body = max_length - 2  # room for <s> and </s>
    stream: list[int] = []
    sep = tokenizer.sep_token_id
    for batch in texts.iter(batch_size=1000):
        for ids in tokenizer(batch["text"], add_special_tokens=False, verbose=False)["input_ids"]:
            stream.extend(ids)
            stream.append(sep)
    chunks = [
        [tokenizer.cls_token_id, *stream[start : start + body], sep] for start in range(0, len(stream), body)
    ]
    if len(chunks) < 2:
        raise DataError(
            f"{description} is too small: {len(stream)} tokens make {len(chunks)} sequence(s) of length {max_length}; "
            "need at least 2 (one to train on, one held out)"
        )
    order = torch.randperm(len(chunks), generator=torch.Generator().manual_seed(seed)).tolist()
    n_held_out = max(1, round(held_out_fraction * len(chunks)))
    held = set(order[:n_held_out])
    return MlmChunks(
        train=[c for i, c in enumerate(chunks) if i not in held],
        held_out=[c for i, c in enumerate(chunks) if i in held],
    )


def pad_batch(chunks: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence; return input ids and attention mask."""
    width = max(len(chunk) for chunk in chunks)
    ids = torch.full((len(chunks), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(chunks), width), dtype=torch.long)
    for row, chunk in enumerate(chunks):
        ids[row, : len(chunk)] = torch.tensor(chunk)
        mask[row, : len(chunk)] = 1
    return ids, mask


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    tokenizer: PreTrainedTokenizerBase,
    generator: torch.Generator,
    probability: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's dynamic masking: pick `probability` of the real tokens as targets; of those 80 % become
    `<mask>`, 10 % a random token, 10 % stay. Special tokens and padding are never targets.

    Returns (masked input ids, labels with -100 on non-targets). Draws only from `generator`, so a
    run is reproducible and resumable from the generator's saved state.
    """
    special = torch.tensor(
        [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.mask_token_id]
    )
    candidates = attention_mask.bool() & ~torch.isin(input_ids, special)
    draws = torch.rand(input_ids.shape, generator=generator)
    targets = candidates & (draws < probability)
    if not targets.any() and candidates.any():
        # A tiny batch can draw no target at all, which makes the loss NaN; take the first token.
        first = candidates.flatten().nonzero()[0]
        targets.view(-1)[first] = True
    labels = torch.where(targets, input_ids, torch.full_like(input_ids, -100))
    action = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(len(tokenizer), input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[targets & (action < 0.8)] = tokenizer.mask_token_id
    replace = targets & (action >= 0.8) & (action < 0.9)
    masked[replace] = random_ids[replace]
    return masked, labels


def masked_lm_logits(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    targets: torch.Tensor,
    vocabulary: torch.Tensor | None = None,
) -> torch.Tensor:
    """Vocabulary logits at the target positions only: (n_targets, vocab), or (n_targets,
    len(vocabulary)) when `vocabulary` (sorted token ids) restricts the softmax.

    The MLM head's vocabulary projection is most of an MLM step's work on a small model; running it
    on the ~15 % of positions that are targets (instead of every position, as `model(labels=...)`
    does) gives the same loss for a fraction of the cost. Adapters and the invertible adapter's
    inverse (a hook on the projection) run as usual.
    """
    head = get_path(model, architecture_of(model).mlm_head)
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    if vocabulary is None:
        return head(hidden[targets])
    with restricted_projection(model, vocabulary):
        return head(hidden[targets])


@contextlib.contextmanager
def restricted_projection(model, vocabulary: torch.Tensor) -> Iterator[None]:
    """Inside the block the MLM head projects onto the rows `vocabulary` of its (tied) output
    embedding only. The projection module keeps its hooks (the invertible adapter's inverse runs
    first, as always); only its matrix product is narrowed, so a 250k-token vocabulary costs what
    the corpus's few thousand distinct tokens cost."""
    decoder = get_path(model, architecture_of(model).mlm_decoder)

    def narrowed(features: torch.Tensor) -> torch.Tensor:
        bias = decoder.bias[vocabulary] if decoder.bias is not None else None
        return F.linear(features, decoder.weight[vocabulary], bias)

    decoder.forward = narrowed  # an instance attribute shadows the class's forward; hooks still run
    try:
        yield
    finally:
        del decoder.forward


def corpus_vocabulary(sequences: list[list[int]]) -> torch.Tensor:
    """The sorted distinct token ids of `sequences`: the candidates of a corpus-restricted softmax."""
    return torch.unique(torch.tensor([token for sequence in sequences for token in sequence], dtype=torch.long))


def mlm_batch_loss(
    model,
    chunks: list[list[int]],
    tokenizer: PreTrainedTokenizerBase,
    generator: torch.Generator,
    probability: float,
    device: torch.device,
    reduction: str = "mean",
    vocabulary: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int, int]:
    """Pad, mask and run one MLM batch; return (loss over targets, real tokens, targets).

    With `vocabulary` (sorted ids that include every target) the softmax runs over those tokens only."""
    ids, attention = pad_batch(chunks, tokenizer.pad_token_id)
    masked, labels = mask_tokens(ids, attention, tokenizer, generator, probability)
    targets = labels != -100
    gold = labels[targets]
    if vocabulary is not None:
        positions = torch.searchsorted(vocabulary, gold).clamp(max=len(vocabulary) - 1)
        if not torch.equal(vocabulary[positions], gold):
            raise ValueError("a restricted MLM vocabulary must contain every target token")
        gold = positions  # the targets' positions among the candidates
    logits = masked_lm_logits(model, masked.to(device), attention.to(device), targets.to(device),
                              None if vocabulary is None else vocabulary.to(device))
    loss = F.cross_entropy(logits, gold.to(device), reduction=reduction)
    return loss, int(attention.sum()), int(targets.sum())


@torch.inference_mode()
def evaluate_mlm(
    model,
    held_out: list[list[int]],
    tokenizer,
    batch_size: int,
    probability: float,
    seed: int,
    device: torch.device,
) -> dict[str, float]:
    """Held-out MLM loss (mean over masked tokens) and perplexity. The masks come from `seed` afresh
    on every call, so every evaluation of a run scores the same targets and the curve is comparable."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    total_loss, total_targets = 0.0, 0
    for start in range(0, len(held_out), batch_size):
        chunk = held_out[start : start + batch_size]
        loss, _, targets = mlm_batch_loss(model, chunk, tokenizer, generator, probability, device, reduction="sum")
        total_loss += loss.item()
        total_targets += targets
    loss = total_loss / max(total_targets, 1)
    return {"mlm_loss": loss, "perplexity": math.exp(min(loss, 50.0))}
