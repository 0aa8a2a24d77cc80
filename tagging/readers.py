"""Readers: CoNLL and CoNLL-U files and Hugging Face datasets, each to a `TaggedCorpus`, and
`load_labeled`, the one entry point that reads what a `LabeledSource` describes.

Files are read strictly as UTF-8 (`madx.fileutil.read_utf8_lines`); every error names the file
and line (or the dataset, row and word) and says what was expected.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets

from madx.errors import DataError
from madx.fileutil import read_utf8_lines
from tagging import packaged
from tagging.corpus import TaggedCorpus, TaggedSentence
from tagging.sources import CONLLU_COLUMNS, LabeledSource, conllu_column, packaged_corpus_id

logger = logging.getLogger(__name__)


def load_labeled(source: LabeledSource) -> TaggedCorpus:
    """Read the sentences a `LabeledSource` describes. Raises `DataError` on any data problem."""
    if source.format == "hf":
        return read_hf(
            name=source.name,
            path=source.path,
            config=source.config,
            split=source.split,
            data_files=source.data_files,
            token_column=source.token_column or "tokens",
            tag_column=None if source.tag_column is None else str(source.tag_column),
            label_names=source.label_names,
            max_sentences=source.max_sentences,
        )
    if source.format == "conll":
        corpus = read_conll(source.path, tag_column=-1 if source.tag_column is None else int(source.tag_column))
    elif source.format == "conllu":
        corpus = read_conllu(source.path, tag_column=str(source.tag_column or "upos"))
    else:  # packaged: converted once into the cache, then read like any CoNLL file
        path = packaged.converted_path(packaged_corpus_id(source.name), str(source.split))
        corpus = read_conll(path, tag_column=1)
        corpus = TaggedCorpus(corpus.sentences, source=source.describe())
    if source.max_sentences is not None and len(corpus) > source.max_sentences:
        corpus = TaggedCorpus(corpus.sentences[: source.max_sentences],
                              source=f"{corpus.source}, first {source.max_sentences} sentences")  # fmt: skip
    return corpus


# --------------------------------------------------------------------------------------------
# File readers
# --------------------------------------------------------------------------------------------

_COLUMN_SEPARATOR = re.compile(r"[ \t]+")


def _blocks(lines: Iterable[tuple[int, str]]) -> Iterator[list[tuple[int, str]]]:
    """Runs of non-blank lines: the sentences of both CoNLL formats. Extra blank lines are fine."""
    block: list[tuple[int, str]] = []
    for number, text in lines:
        if text.strip(" \t"):
            block.append((number, text))
        elif block:
            yield block
            block = []
    if block:
        yield block


def _no_sentences(path: Path, expected: str) -> DataError:
    return DataError(f"{path}: no sentences found; expected {expected}, a blank line between sentences")


def _clip(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def read_conll(path: str | Path, tag_column: int = -1) -> TaggedCorpus:
    """Read a CoNLL-style file: one word per line, token in column 0, tag in `tag_column`.

    Columns are separated by runs of spaces and/or TABs (so tokens cannot contain spaces); every
    word line must have as many columns as the first one. Blank lines end sentences;
    `-DOCSTART-` lines are document markers, not words, and also end a sentence.
    """
    path = Path(path)
    origin = str(path)
    sentences: list[TaggedSentence] = []
    shape: tuple[int, int, int] | None = None  # (columns, tag index, line) fixed by the first word line
    for block in _blocks(read_utf8_lines(path)):
        runs: list[list[tuple[int, list[str]]]] = [[]]
        for number, text in block:
            fields = _COLUMN_SEPARATOR.split(text.strip(" \t"))
            if fields[0] == "-DOCSTART-":
                runs.append([])
                continue
            if shape is None:
                shape = (len(fields), _conll_tag_index(fields, tag_column, f"{origin}:{number}"), number)
            elif len(fields) != shape[0]:
                raise DataError(
                    f"{origin}:{number}: found {len(fields)} columns, expected {shape[0]} like the first "
                    f"word line (line {shape[2]}): {_clip(text)}"
                )
            runs[-1].append((number, fields))
        for run in runs:
            if run:
                sentences.append(
                    TaggedSentence(
                        tokens=[fields[0] for _, fields in run],
                        tags=[fields[shape[1]] for _, fields in run],
                        origin=origin,
                        index=len(sentences),
                        lines=[number for number, _ in run],
                    )
                )
    if not sentences:
        raise _no_sentences(path, "lines of 'token ... tag' columns")
    return TaggedCorpus(sentences, source=origin)


def _conll_tag_index(fields: list[str], tag_column: int, where: str) -> int:
    count = len(fields)
    if count < 2:
        raise DataError(
            f"{where}: found 1 column ({fields[0]!r}); expected a token and its tag separated by spaces or TABs"
        )
    index = tag_column if tag_column >= 0 else count + tag_column
    if not 1 <= index < count:
        raise DataError(
            f"{where}: tag_column={tag_column} does not exist in a line of {count} columns; "
            f"expected 1..{count - 1} or -1..-{count - 1} (column 0 is the token)"
        )
    return index


def read_conllu(path: str | Path, tag_column: str = "upos") -> TaggedCorpus:
    """Read a CoNLL-U file, tagging each word with `tag_column` ("upos", "xpos", ..., "misc:NER").

    Comment lines (`#`), multi-word token ranges (`1-2`) and empty nodes (`1.1`) are skipped: the
    words are the syntactic words, which is what UD tags. A tag of `_` (unspecified) is an error,
    since a model cannot learn "no tag"; pick another column for treebanks without it.
    """
    path = Path(path)
    origin = str(path)
    column_index, misc_key = conllu_column(tag_column, origin)
    sentences: list[TaggedSentence] = []
    for block in _blocks(read_utf8_lines(path)):
        tokens: list[str] = []
        tags: list[str] = []
        lines: list[int] = []
        for number, text in block:
            if text.startswith("#"):
                continue
            fields = text.split("\t")
            where = f"{origin}:{number}"
            if len(fields) != len(CONLLU_COLUMNS):
                raise DataError(
                    f"{where}: found {len(fields)} TAB-separated columns, expected 10 "
                    f"(ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC): {_clip(text)}"
                )
            word_id = fields[0]
            if "-" in word_id or "." in word_id:
                continue  # a range spans words listed next; an empty node is not in the surface text
            if not word_id.isdigit():
                raise DataError(
                    f"{where}: ID {word_id!r} is not a word number, a range like 1-2 or an empty node like 1.1"
                )
            tokens.append(fields[1])
            tags.append(_conllu_tag(fields[column_index], misc_key, tag_column, where))
            lines.append(number)
        if tokens:
            sentences.append(TaggedSentence(tokens, tags, origin=origin, index=len(sentences), lines=lines))
    if not sentences:
        raise _no_sentences(path, "10 TAB-separated CoNLL-U columns per word")
    return TaggedCorpus(sentences, source=origin)


def _conllu_tag(value: str, misc_key: str | None, tag_column: str, where: str) -> str:
    if misc_key is not None:
        entries = dict(item.partition("=")[::2] for item in value.split("|"))
        if not entries.get(misc_key):
            raise DataError(f"{where}: MISC {_clip(value)} has no {misc_key}=... entry; expected one on every word")
        return entries[misc_key]
    if value == "_":
        raise DataError(f"{where}: column {tag_column} is '_' (unspecified); expected a tag on every word")
    return value


# --------------------------------------------------------------------------------------------
# Hugging Face datasets (hub names, builders with data_files, save_to_disk folders)
# --------------------------------------------------------------------------------------------


# Tag columns looked for, in this order, when a source does not name one: WikiANN-style NER, then
# the Universal Dependencies layout on the hub (`upos`, `xpos`), then CoNLL-2003-style `pos_tags`.
TAG_COLUMN_CANDIDATES = ("ner_tags", "upos", "pos_tags", "xpos")


def read_hf(
    *,
    name: str | None = None,
    path: str | Path | None = None,
    config: str | None = None,
    split: str | None = None,
    data_files: str | list[str] | dict[str, str | list[str]] | None = None,
    token_column: str = "tokens",
    tag_column: str | None = None,
    label_names: Sequence[str] | None = None,
    max_sentences: int | None = None,
) -> TaggedCorpus:
    """Read word lists and tags from a `datasets` dataset: `path` -> `load_from_disk`, `name` ->
    `load_dataset(name, config, split=..., data_files=...)`.

    `tag_column=None` takes the first of TAG_COLUMN_CANDIDATES the dataset has. Tags are ClassLabel
    ids (mapped to their names through the feature, as in WikiANN and UD `upos`), strings, or plain
    integer ids when `label_names` says what id i means; integer ids without names are an error,
    never turned into "0", "1", ... . In a `upos` column a tag "_" marks a multi-word token of the
    UD hub layout ("del" listed before its syntactic words "de" "el"): such tokens are skipped, as
    `read_conllu` does, because UD tags the syntactic words. `max_sentences` reads only the first rows.
    """
    source = LabeledSource(format="hf", name=name, path=None if path is None else str(path), config=config,
                           split=split, data_files=data_files)  # fmt: skip
    origin = source.describe()
    dataset = _load_hf_split(source, origin)
    if tag_column is None:
        tag_column = _default_tag_column(dataset.column_names, origin)
    missing = [column for column in (token_column, tag_column) if column not in dataset.column_names]
    if missing:
        raise DataError(
            f"{origin}: no column {', '.join(map(repr, missing))}; its columns are {dataset.column_names} "
            "(set token_column / tag_column)"
        )
    _require_string_lists(dataset.features[token_column], origin, token_column, "word lists")
    names = _label_names(dataset.features[tag_column], origin, tag_column, label_names)
    if max_sentences is not None and max_sentences < len(dataset):
        dataset = dataset.select(range(max_sentences))

    sentences: list[TaggedSentence] = []
    skipped = 0
    rows = dataset.select_columns([token_column, tag_column]).iter(batch_size=1024)
    for row, (tokens, raw_tags) in enumerate(
        pair for batch in rows for pair in zip(batch[token_column], batch[tag_column], strict=True)
    ):
        if tokens is None or raw_tags is None:
            raise DataError(f"{origin}, row {row} (0-based): {token_column} or {tag_column} is missing (null)")
        if len(tokens) != len(raw_tags):
            raise DataError(f"{origin}, row {row} (0-based): {len(tokens)} words but {len(raw_tags)} tags; "
                            "expected exactly one tag per word")  # fmt: skip
        tags = [_hf_tag(tag, names, origin, row, i, tag_column) for i, tag in enumerate(raw_tags)]
        words = list(tokens)
        if tag_column == "upos" and "_" in tags:
            kept = [i for i, tag in enumerate(tags) if tag != "_"]
            skipped += len(tags) - len(kept)
            words, tags = [words[i] for i in kept], [tags[i] for i in kept]
        sentences.append(TaggedSentence(words, tags, origin=origin, index=row))
    if not sentences:
        raise DataError(f"{origin}: the split has no rows")
    if skipped:
        logger.info("%s: skipped %d multi-word token(s) tagged '_' in column upos", origin, skipped)
    cut = max_sentences is not None and len(sentences) == max_sentences
    return TaggedCorpus(sentences, source=f"{origin}, first {max_sentences} sentences" if cut else origin)


def _default_tag_column(columns: list[str], origin: str) -> str:
    for candidate in TAG_COLUMN_CANDIDATES:
        if candidate in columns:
            return candidate
    raise DataError(
        f"{origin}: no tag column given and none of {list(TAG_COLUMN_CANDIDATES)} is present; its columns are "
        f"{columns} (set tag_column)"
    )


def _load_hf_split(source: LabeledSource, origin: str) -> datasets.Dataset:
    split = source.split or "train"
    try:
        if source.path is not None:
            loaded = datasets.load_from_disk(source.path)
        else:
            loaded = datasets.load_dataset(source.name, source.config, split=split, data_files=source.data_files)
    except (OSError, ValueError) as err:  # missing file or folder, offline hub, unknown split or config
        raise DataError(f"cannot load {origin}: {err}") from err
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{origin}: no split {split!r}; the saved dataset has {list(loaded)}")
        loaded = loaded[split]
    if not isinstance(loaded, datasets.Dataset):
        raise DataError(f"{origin}: expected a Dataset or DatasetDict, got {type(loaded).__name__}")
    return loaded


def _inner_feature(feature: Any) -> Any:
    """The element feature of a list-valued column (`List`, `Sequence`, `LargeList`), else None."""
    return getattr(feature, "feature", None)


def _require_string_lists(feature: Any, origin: str, column: str, what: str) -> None:
    inner = _inner_feature(feature)
    if not (isinstance(inner, datasets.Value) and inner.dtype in ("string", "large_string")):
        raise DataError(f"{origin}: column {column!r} has type {feature}; expected {what}, a sequence of strings")


def _label_names(feature: Any, origin: str, column: str, given: Sequence[str] | None = None) -> list[str] | None:
    """What a tag id means: the ClassLabel names of the column, `given` for plain integer ids, or
    None if the column already holds tag strings."""
    inner = _inner_feature(feature)
    if isinstance(inner, datasets.ClassLabel):
        if given is not None and list(given) != list(inner.names):
            raise DataError(
                f"{origin}: label_names {list(given)} differ from the ClassLabel names {inner.names} of column "
                f"{column!r}; drop label_names (the dataset names its ids itself)"
            )
        return list(inner.names)
    if isinstance(inner, datasets.Value) and inner.dtype in ("string", "large_string"):
        if given is not None:
            raise DataError(f"{origin}: column {column!r} holds tag strings; label_names only apply to integer ids")
        return None
    if isinstance(inner, datasets.Value) and inner.dtype.startswith(("int", "uint")):
        if given is not None:
            return list(given)
        raise DataError(
            f"{origin}: column {column!r} holds integer tag ids ({feature}) without ClassLabel names, so what "
            "id 0, 1, ... means is unknown; give the names in the source's label_names (id i -> label_names[i]), "
            "or store tag strings (JSON/CSV files lose ClassLabel names: use parquet / save_to_disk to keep them)"
        )
    raise DataError(
        f"{origin}: column {column!r} has type {feature}; expected a sequence of ClassLabel ids or of tag "
        "strings (JSON/CSV files lose ClassLabel names: store tag strings, or use parquet / save_to_disk)"
    )


def _hf_tag(tag: Any, names: list[str] | None, origin: str, row: int, word: int, column: str) -> str:
    if tag is None:
        raise DataError(f"{origin}, row {row}, word {word} (0-based): column {column!r} has no tag (null)")
    if names is None:
        return tag
    if not 0 <= tag < len(names):
        raise DataError(
            f"{origin}, row {row}, word {word} (0-based): tag id {tag} is not a label id; "
            f"expected 0..{len(names) - 1} for {names}"
        )
    return names[tag]
