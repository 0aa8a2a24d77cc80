"""Train a SentencePiece tokenizer that loads as an ordinary XLM-R tokenizer.

Used by the demo's base model and by the tests' tiny models. transformers 5 ignores a
`vocab_file=` argument to `XLMRobertaTokenizer` (it silently builds a 5-token vocabulary), so the
only reliable route is the one the hub uses: `sentencepiece.bpe.model` in a folder, then
`from_pretrained(folder)`, then `save_pretrained` so `AutoTokenizer` finds a `tokenizer.json`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm
from transformers import PreTrainedTokenizerBase, XLMRobertaTokenizer

from madx.errors import DataError
from madx.fileutil import atomic_directory


def train_sentencepiece_tokenizer(
    lines: Iterable[str],
    out_dir: str | Path,
    vocab_size: int = 8000,
    model_max_length: int = 512,
    seed_sentencepiece_size: int = 1_000_000,
) -> PreTrainedTokenizerBase:
    """Train a unigram SentencePiece model on `lines`, save an XLM-R tokenizer folder, return it.

    `vocab_size` is an upper bound: a small corpus yields fewer pieces rather than an error.
    Character coverage is 1.0 because the corpora are multilingual and small; dropping rare
    characters would map whole low-resource words to `<unk>`.
    """
    sentences = [line.strip() for line in lines if line.strip()]
    if not sentences:
        raise DataError(f"cannot train a tokenizer for {out_dir}: the text is empty")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        seed_sentencepiece_size=seed_sentencepiece_size,
        num_threads=1,
        minloglevel=2,  # silence SentencePiece's per-step INFO logging
    )
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as staging:
        (staging / "sentencepiece.bpe.model").write_bytes(model.getvalue())
        tokenizer = XLMRobertaTokenizer.from_pretrained(str(staging), model_max_length=model_max_length)
        if len(tokenizer) <= 5:
            raise DataError(f"tokenizer trained for {out_dir} has only {len(tokenizer)} entries")
        tokenizer.save_pretrained(str(staging))
    return XLMRobertaTokenizer.from_pretrained(str(out_dir))
