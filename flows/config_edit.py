"""Adding a language to a pipeline YAML file: what `madx add-language CODE --corpus X --save` writes.

The file is the user's: its comments, blank lines, key order and quoting stay byte for byte. The
round-trip loader of ruamel.yaml says where the `languages` mapping and its entries are (line,
column, flow or block style); the new entry is written in the style of its siblings and inserted
after the mapping's last line. (A full round-trip dump is not used: it re-indents sequences, and it
moves a comment that ends the mapping, such as a section heading above `tasks:`, below the new
entry.) The result is then checked twice: read back, it must be the old file plus that one entry;
loaded as a pipeline config, it must be valid, or the old text is put back.

A relative corpus path typed on the command line is relative to the current directory, while a path
in the YAML is relative to the file's folder (see `flows.config.load_pipeline_config`): the entry
names the same file, relative to the YAML's folder.
"""

from __future__ import annotations

import copy
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError as RuamelYAMLError

from flows.config import _CODE, LanguageConfig, load_pipeline_config, resolve_corpus
from language_adapters.settings import CorpusSource
from madx.errors import ConfigError, MadxError
from madx.fileutil import atomic_write


@dataclass(frozen=True)
class LanguageEdit:
    """What adding one language to one YAML file takes (`plan_language`); nothing is written yet."""

    path: Path  # the file to write: a symlink's target, so that the link stays a link
    code: str
    lines: str  # the entry as YAML lines, indented as they go under the file's `languages:`
    original: bytes  # the file as read
    new_text: str | None  # the file with the entry added; None when the file has that language already


def check_schedule(schedule: str) -> None:
    """Refuse anything but a 5-field cron expression (the rule of `schedule:` in a pipeline YAML)."""
    try:
        LanguageConfig(corpus="-", schedule=schedule)
    except ValidationError as error:
        raise ConfigError("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())) from None


def corpus_for_flow(corpus: str, base: Path | None = None) -> str:
    """`corpus` as given on a command line run in `base` (default: the current directory), with a
    relative text or disk: path made absolute: the same corpus wherever it is read from."""
    location, prefix = _path_part(corpus)
    if location is None or Path(location).is_absolute():
        return corpus.strip()
    return prefix + str((Path(base or Path.cwd()) / location).resolve())


def corpus_for_config(corpus: str, config_dir: Path, base: Path | None = None) -> str:
    """`corpus` as the YAML in `config_dir` must say it: a relative path typed in `base` (default:
    the current directory) becomes relative to `config_dir` (absolute when there is no relative
    way, e.g. another drive); anything else stays as typed."""
    location, prefix = _path_part(corpus)
    if location is None or Path(location).is_absolute():
        return corpus.strip()
    absolute = Path(corpus_for_flow(corpus, base).removeprefix(prefix))
    try:
        return prefix + Path(os.path.relpath(absolute, Path(config_dir).resolve())).as_posix()
    except ValueError:
        return prefix + str(absolute)


def _path_part(corpus: str) -> tuple[str | None, str]:
    """(the file path in `corpus`, the prefix before it), or (None, "") when it names no local path."""
    spec = corpus.strip()
    if spec.startswith("disk:") and spec[5:]:
        return spec[5:], "disk:"
    try:
        return (spec, "") if CorpusSource.parse(spec).kind == "text" else (None, "")
    except MadxError as error:
        raise ConfigError(f"--corpus {corpus!r}: {error}") from None


def plan_language(path: str | Path, code: str, corpus: str | None, schedule: str | None = None, *,
                  base: Path | None = None) -> LanguageEdit:
    """The edit that adds `languages: {CODE: {corpus: CORPUS, schedule: SCHEDULE}}` to the YAML at
    `path`, or a ConfigError naming the file when it cannot be made: no `languages` mapping, or
    CODE there already with another corpus or schedule. `base`: where a relative corpus path
    typed by the user starts (default: the current directory)."""
    shown = Path(path)
    if not _CODE.match(code):
        raise ConfigError(f"language code {code!r}: use letters, digits, '_' and '-' only (e.g. sw, yo, qu)")
    if schedule is not None:
        check_schedule(schedule)
    target = Path(os.path.realpath(shown))
    if not target.is_file():
        raise ConfigError(f"config file {shown} does not exist")
    try:
        original = target.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read {shown}: {error.strerror or error}") from None
    try:
        text = original.decode("utf-8")
        document = YAML(typ="rt").load(text)
        plain = yaml.safe_load(text)  # as load_pipeline_config reads it
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not UTF-8 text") from None
    except (RuamelYAMLError, yaml.YAMLError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}" if mark else str(shown)
        raise ConfigError(f"{where}: not valid YAML ({getattr(error, 'problem', None) or error})") from None
    languages = document.get("languages") if isinstance(document, CommentedMap) else None
    if not isinstance(languages, CommentedMap) or not isinstance(plain.get("languages"), dict):
        raise ConfigError(f"{shown} has no `languages` mapping to add {code!r} to")

    if code in plain["languages"]:  # (as the loader reads keys: in YAML 1.1, an unquoted `no:` is False)
        _check_same(shown, code, plain["languages"][code], corpus, schedule, target.parent, base)
        existing = {code: plain["languages"][code]}
        return LanguageEdit(target, code, _lines(existing, _indent(languages), flow=True), original, None)
    if corpus is None:
        raise ConfigError(f"{code!r} is not in {shown}: give its corpus (--corpus udhr:{code}, a text file, ...)")
    entry = {"corpus": corpus_for_config(corpus, target.parent, base)}
    if schedule is not None:
        entry["schedule"] = schedule
    if languages.fa.flow_style():
        raise ConfigError(f"{shown}: `languages` is written in flow style ({{...}}), which madx does not edit; "
                          f"add {code} to it yourself: {_lines({code: entry}, 0, flow=True).strip()}")
    column = _indent(languages)
    flow, inner = _sibling_style(languages, column)
    lines = _lines({code: entry}, column, flow, inner)

    newline = "\r\n" if "\r\n" in text else "\n"
    rows = text.splitlines(keepends=True)
    end = _end_of_block(rows, *document.lc.key("languages"))
    before = "".join(rows[:end])
    if before and not before.endswith(("\n", "\r")):
        before += newline
    new_text = before + lines.replace("\n", newline) + "".join(rows[end:])
    expected = copy.deepcopy(plain)
    expected["languages"][code] = entry
    try:
        unchanged = yaml.safe_load(new_text) == expected
    except yaml.YAMLError:
        unchanged = False
    if not unchanged:  # a layout this module does not understand: leave the file to its author
        raise ConfigError(f"{shown}: could not add {code!r} without changing anything else; add these lines "
                          f"under `languages:` yourself:\n{lines.rstrip()}")
    return LanguageEdit(target, code, lines, original, new_text)


def language_lines(path: str | Path, code: str, corpus: str, schedule: str | None = None, *,
                   base: Path | None = None) -> str:
    """The YAML lines that add CODE under `languages:` of the file at `path`, written without
    reading it (for a user to add by hand): `  CODE: {corpus: ..., schedule: "..."}`."""
    entry = {"corpus": corpus_for_config(corpus, Path(os.path.realpath(path)).parent, base)}
    if schedule is not None:
        entry["schedule"] = schedule
    return _lines({code: entry}, 2, flow=True)


def add_language_to_config(path: str | Path, code: str, corpus: str | None, schedule: str | None = None, *,
                           base: Path | None = None) -> str:
    """Add `languages: {CODE: {corpus: CORPUS, schedule: SCHEDULE}}` to the pipeline YAML at `path`
    and return the lines added (those already there when it has CODE with the same corpus).

    Comments and layout are kept; the file is replaced atomically (same permissions) and loaded
    again with `load_pipeline_config`: if that fails, the old text is put back and a ConfigError
    says why. A file that cannot be written is a ConfigError too, naming the file."""
    edit = plan_language(path, code, corpus, schedule, base=base)
    if edit.new_text is None:
        return edit.lines
    # A rename replaces even a read-only file (and root may write any): respect the mode instead.
    if not os.access(edit.path, os.W_OK) or not edit.path.stat().st_mode & 0o222:
        raise ConfigError(f"cannot write {path}: the file is read-only")
    try:
        _write(edit.path, edit.new_text.encode("utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        load_pipeline_config(path)
    except MadxError as error:
        _write(edit.path, edit.original)
        raise ConfigError(f"adding {code!r} would make {path} invalid, so it is left as it was: {error}") from None
    return edit.lines


# -- helpers -------------------------------------------------------------------------------------
def _check_same(shown: Path, code: str, existing: Any, corpus: str | None, schedule: str | None,
                config_dir: Path, base: Path | None) -> None:
    """Refuse when CODE is in the file with another corpus or schedule than the ones given."""
    if not isinstance(existing, dict):
        raise ConfigError(f"{shown}: languages.{code} is not a mapping with a corpus; fix it there first")

    def resolve(value: str) -> str:
        return str((config_dir / value).resolve()) if not Path(value).is_absolute() else value

    if corpus is not None:
        try:
            same = CorpusSource.parse(resolve_corpus(existing.get("corpus"), resolve)) == \
                CorpusSource.parse(corpus_for_flow(corpus, base))
        except MadxError:
            same = False
        if not same:
            raise ConfigError(f"{shown}: languages.{code} is there already, with corpus "
                              f"{json.dumps(existing.get('corpus'))}, not {corpus!r}; edit it there, or choose "
                              "another language code")
    if schedule is not None and existing.get("schedule") != schedule:
        now = f"schedule {existing['schedule']!r}" if existing.get("schedule") else "no schedule"
        raise ConfigError(f"{shown}: languages.{code} is there already, with {now}; set `schedule: \"{schedule}\"` "
                          "there yourself")


def _indent(languages: CommentedMap) -> int:
    """The column of the entries of a block mapping (2 for a new one)."""
    return languages.lc.key(next(iter(languages)))[1] if languages else 2


def _sibling_style(languages: CommentedMap, column: int) -> tuple[bool, int]:
    """(flow style?, indent of a block entry's keys under its code), as the last entry is written."""
    last = languages[next(reversed(languages))] if languages else None
    if isinstance(last, CommentedMap) and not last.fa.flow_style() and last:
        return False, max(1, last.lc.key(next(iter(last)))[1] - column)
    return True, 2


def _end_of_block(rows: list[str], line: int, column: int) -> int:
    """The index of the row after the block under the key at (line, column): its last content row or
    comment indented deeper than the key. A comment at the key's column or left of it, and blank
    rows, belong to what follows (a section heading above the next key), unless more of the block
    comes after them."""
    end = line + 1
    for index in range(line + 1, len(rows)):
        stripped = rows[index].strip()
        if not stripped:
            continue
        indent = len(rows[index]) - len(rows[index].lstrip(" "))
        if indent > column:
            end = index + 1
        elif not stripped.startswith("#"):
            break
    return end


def _lines(entries: dict[str, dict[str, Any]], column: int, flow: bool, inner: int = 2) -> str:
    """`entries` (code -> {key: value}) as YAML lines at `column`: `code: {key: value, ...}` in flow
    style, else one `key: value` line each, `inner` columns deeper."""
    pad, out = " " * column, []
    for code, entry in entries.items():
        if flow or not isinstance(entry, dict):
            out.append(f"{pad}{_scalar(code)}: {_flow(entry)}")
            continue
        out.append(f"{pad}{_scalar(code)}:")
        out += [f"{pad}{' ' * inner}{_scalar(key)}: {_value(key, value)}" for key, value in entry.items()]
    return "".join(line + "\n" for line in out)


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {_value(k, v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


def _value(key: str, value: Any) -> str:
    if key == "schedule" and isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # quoted, as the shipped configs write a cron
    return _flow(value)


def _scalar(value: Any) -> str:
    """`value` as a YAML scalar: plain when YAML 1.1 (PyYAML, which the loader uses) and 1.2
    (ruamel) both read it back as the same string in a block and in a flow mapping, else
    double-quoted (JSON's escapes are YAML's)."""
    if not isinstance(value, str):
        return json.dumps(value)
    readers = (yaml.safe_load, YAML(typ="safe", pure=True).load)
    try:
        plain = all(read(document) == {"k": value} for read in readers
                    for document in (f"k: {value}\n", f"{{k: {value}}}\n"))
    except Exception:  # noqa: BLE001 - any parse error means: quote it
        plain = False
    return value if plain else json.dumps(value, ensure_ascii=False)


def _write(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, keeping its permission bits."""
    mode = stat.S_IMODE(path.stat().st_mode)

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)
        os.chmod(tmp, mode)

    atomic_write(path, write)
