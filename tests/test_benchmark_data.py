"""The benchmark data: `${data_root}` in a pipeline YAML (from $MADX_DATA_ROOT, the `data_root:` key or
the folder `madx data fetch` fills), and `madx data fetch` from a mirror or from upstream URLs, every
file checked against its pinned sha256.

The real files are read from the shared mirror (`../shared/data` beside the checkout, or
$MADX_SHARED_DATA); nothing of them is copied into the repository. Downloads are tested with file://
URLs (no network here)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from flows_support import run_madx
from madx.benchmark_data import (BENCHMARK_FILES, CONVERSIONS, DataFile, Upstream, default_data_root, fetch_file,
                                 select, with_base_url)
from madx.errors import ConfigError, DataError

from conftest import SHARED, needs_shared_data

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_data_root_from_the_caller(monkeypatch):
    """Each test says where its data root is: not the shell's $MADX_DATA_ROOT (conftest already points
    MADX_CACHE_DIR, and so the default data folder, at an empty session folder)."""
    monkeypatch.delenv("MADX_DATA_ROOT", raising=False)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# -- ${data_root} in a config ---------------------------------------------------------------------------
def data_folder(root: Path) -> Path:
    """A small data root: a corpus and a CoNLL test set, where a config names them."""
    (root / "text").mkdir(parents=True)
    (root / "text" / "hau.txt").write_text("Kano ta ce .\nYa ce .\n", encoding="utf-8")
    (root / "masakhapos" / "hau").mkdir(parents=True)
    (root / "masakhapos" / "hau" / "dev.txt").write_text("Kano PROPN\nta AUX\n\nYa PRON\n\n", encoding="utf-8")
    return root


def pipeline(folder: Path, toy_ner: Path, **top: object) -> Path:
    """A pipeline YAML whose Hausa corpus and test set lie under ${data_root}."""
    data = {
        "name": "data-root", "output_dir": "out", "base_model": {"name_or_path": "xlm-roberta-base"},
        **top,
        "languages": {"en": {"corpus": "udhr:en"}, "hau": {"corpus": "${data_root}/text/hau.txt"}},
        "tasks": {"pos": {
            "train": {"format": "conll", "path": str(toy_ner / "train.conll")},
            "dev": {"format": "conll", "path": str(toy_ner / "dev.conll")},
            "test": {"hau": {"format": "conll", "path": "${data_root}/masakhapos/hau/dev.txt"}},
        }},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def named_files(config) -> tuple[str, str]:
    return config.corpus("hau").location, config.tasks["pos"].test["hau"].path


def test_data_root_from_the_environment_wins_over_the_key(tmp_path, toy_ner, monkeypatch):
    from flows.config import load_pipeline_config

    by_key, by_environment = data_folder(tmp_path / "by-key"), data_folder(tmp_path / "by-env")
    config = pipeline(tmp_path / "project", toy_ner, data_root="../by-key")
    assert named_files(load_pipeline_config(config)) == (
        str(by_key / "text" / "hau.txt"), str(by_key / "masakhapos" / "hau" / "dev.txt"))
    assert load_pipeline_config(config).data_root == by_key  # relative to the YAML, like every path

    monkeypatch.setenv("MADX_DATA_ROOT", str(by_environment))
    assert named_files(load_pipeline_config(config)) == (
        str(by_environment / "text" / "hau.txt"), str(by_environment / "masakhapos" / "hau" / "dev.txt"))


def test_the_folder_madx_data_fetch_fills_is_the_default_when_it_holds_the_files(tmp_path, toy_ner):
    from flows.config import load_pipeline_config

    config = pipeline(tmp_path / "project", toy_ner)
    default = default_data_root()
    assert default.is_relative_to(os.environ["MADX_CACHE_DIR"])  # the session's folder, not the user's
    data_folder(default)
    try:
        assert named_files(load_pipeline_config(config))[1] == str(default / "masakhapos" / "hau" / "dev.txt")
        (default / "text" / "hau.txt").unlink()
        with pytest.raises(ConfigError, match=rf"no data root is set; {default} lacks text/hau.txt: set MADX_DATA_ROOT"):
            load_pipeline_config(config)
    finally:
        shutil.rmtree(default)  # the session's cache folder: later tests expect no default data root


def test_no_data_root_fails_before_anything_loads_with_one_line_saying_how(tmp_path, toy_ner, capfd, monkeypatch):
    config = pipeline(tmp_path / "project", toy_ner)
    result = run_madx(capfd, monkeypatch, "run", config)
    assert result.code == 1
    assert result.errors == [
        f"error: {config}: languages.hau.corpus (and 1 more key(s)) uses ${{data_root}}, but no data root is set: "
        f"set MADX_DATA_ROOT=/path/to/data or `data_root: PATH` in the config (relative to it), or run `madx data "
        f"fetch` to download the benchmark data into {default_data_root()}, where configs find it by default"]
    assert not (tmp_path / "project" / "out").exists()  # nothing started


@pytest.mark.parametrize("written, named", [
    ("${DATA_ROOT}/text/hau.txt", "${DATA_ROOT}"),
    ("${HOME}/text/hau.txt", "${HOME}"),
    ("${data_root/text/hau.txt", "an unclosed ${"),
])
def test_any_other_variable_is_an_error_naming_its_key(tmp_path, toy_ner, written, named):
    from flows.config import load_pipeline_config

    config = pipeline(tmp_path / "project", toy_ner, data_root=str(data_folder(tmp_path / "data")))
    data = yaml.safe_load(config.read_text())
    data["languages"]["hau"]["corpus"] = written
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_pipeline_config(config)
    assert str(raised.value) == (f"{config}: languages.hau.corpus: {written!r} uses {named}; the only variable a "
                                 "config knows is ${data_root} (the benchmark data folder)")


def test_a_data_root_that_is_no_folder_is_named_with_where_it_was_set(tmp_path, toy_ner, monkeypatch):
    from flows.config import load_pipeline_config

    config = pipeline(tmp_path / "project", toy_ner, data_root="../missing")
    with pytest.raises(ConfigError, match=rf"data_root: \.\./missing: {tmp_path / 'missing'} is not a folder"):
        load_pipeline_config(config)
    monkeypatch.setenv("MADX_DATA_ROOT", str(tmp_path / "also-missing"))
    with pytest.raises(ConfigError, match=rf"MADX_DATA_ROOT={tmp_path / 'also-missing'}: .* is not a folder"):
        load_pipeline_config(config)


@needs_shared_data
def test_a_small_config_reads_masakhapos_and_news_text_through_the_data_root(tmp_path, toy_ner, monkeypatch):
    from flows.config import load_pipeline_config
    from language_adapters.corpus import read_text_lines
    from tagging.packaged import UPOS
    from tagging.readers import load_labeled

    monkeypatch.setenv("MADX_DATA_ROOT", str(SHARED))
    config = load_pipeline_config(pipeline(tmp_path / "project", toy_ner))
    hausa = load_labeled(config.labeled("pos", "test", "hau"))
    assert config.tasks["pos"].test["hau"].path == str(SHARED / "masakhapos" / "hau" / "dev.txt")
    assert len(hausa.sentences) == 150
    assert {tag for sentence in hausa.sentences for tag in sentence.tags} <= set(UPOS)
    assert len(read_text_lines(Path(config.corpus("hau").location))) == 5716


# -- madx data fetch ------------------------------------------------------------------------------------
@needs_shared_data
def test_the_table_is_the_mirror_manifest():
    manifest = json.loads((SHARED / "MANIFEST.json").read_text())
    assert {row.path: row.sha256 for row in BENCHMARK_FILES} == manifest["sha256"]
    commits = {row.upstream.repository: row.upstream.commit for row in BENCHMARK_FILES if row.upstream.commit}
    for source in manifest["sources"].values():  # "github owner/name @ commit"
        repository, commit = source.removeprefix("github ").split(" @ ")
        assert commits[repository] == commit


@needs_shared_data
def test_fetch_from_the_mirror_copies_every_file_and_checks_it(tmp_path, capfd, monkeypatch):
    into = tmp_path / "data"
    first = run_madx(capfd, monkeypatch, "data", "fetch", "--mirror", SHARED, "--into", into)
    assert first.code == 0, first.err
    assert f"benchmark data in {into}: {len(BENCHMARK_FILES)} copied" in first.out
    assert files_under(into) == sorted(row.path for row in BENCHMARK_FILES)
    for row in BENCHMARK_FILES:
        assert (into / row.path).read_bytes() == (SHARED / row.path).read_bytes()
    again = run_madx(capfd, monkeypatch, "data", "fetch", "--mirror", SHARED, "--into", into)
    assert f"{len(BENCHMARK_FILES)} already there" in again.out


def synthetic_row(upstream_folder: Path, local: bytes, conversion: str = "none", path: str = "pos/xx/dev.txt"
                  ) -> DataFile:
    """A row of the table for a file this test makes, whose upstream lies in a local folder."""
    upstream = Upstream("Test", "test/test", "0" * 40, "test data", base_url=upstream_folder.as_uri())
    return DataFile(path, sha256(local), upstream, f"data/{Path(path).name}", conversion)


def test_a_tampered_mirror_file_is_refused_and_nothing_is_written(tmp_path):
    good = b"Kano PROPN\n\n"
    row = synthetic_row(tmp_path / "upstream", good)
    mirror, into = tmp_path / "mirror", tmp_path / "data"
    (mirror / "pos" / "xx").mkdir(parents=True)
    (mirror / row.path).write_bytes(b"Kano NOUN\n\n")  # one tag changed
    with pytest.raises(DataError) as raised:
        fetch_file(row, into, mirror)
    assert str(raised.value) == (
        f"{into / row.path}: the mirror's {mirror / row.path} has sha256 {sha256(b'Kano NOUN' + bytes([10, 10]))}, "
        f"expected {row.sha256}; refusing a file that is not the pinned one (nothing was written)")
    assert files_under(into) == []

    (mirror / row.path).write_bytes(good)
    assert fetch_file(row, into, mirror) == "copied"
    assert (into / row.path).read_bytes() == good


def test_a_wrong_file_already_in_the_data_root_is_refused_and_left_alone(tmp_path):
    row = synthetic_row(tmp_path / "upstream", b"Kano PROPN\n\n")
    into = tmp_path / "data"
    (into / "pos" / "xx").mkdir(parents=True)
    (into / row.path).write_bytes(b"edited\n")
    with pytest.raises(DataError, match=rf"{into / row.path} has sha256 {sha256(b'edited' + bytes([10]))}, expected "
                                        rf"{row.sha256}: it is not the pinned file; delete it"):
        fetch_file(row, into)
    assert (into / row.path).read_bytes() == b"edited\n"


# Upstream bytes and the local file each conversion makes of them (written out by hand).
CONVERTED = {
    "none": (b"Kano PROPN\nta AUX\n\n", b"Kano PROPN\nta AUX\n\n"),
    "strip-en-prefix": (b"en:Sioux\tB-ORG\nen:Falls\tI-ORG\n\nen::\tO\nen:en:x\tO\n\n",
                        b"Sioux\tB-ORG\nFalls\tI-ORG\n\n:\tO\nen:x\tO\n\n"),
    "words-per-line": ("Olurukoba B-PER\nya O\nce O\n. O\n\n\n\"\"\"\" O\nKano B-LOC\n\n".encode(),
                       "Olurukoba ya ce .\n\"\"\"\" Kano\n".encode()),
    "conllu-upos": (b"# sent_id = 1\n1-2\twon't\t_\t_\t_\t_\t_\t_\t_\t_\n1\two\twill\tAUX\tMD\t_\t3\taux\t_\t_\n"
                    b"2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_\n3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_\n"
                    b"3.1\tgo\tgo\tVERB\tVB\t_\t_\t_\t0:root\t_\n\n# sent_id = 2\n1\tOk\tok\tINTJ\tUH\t_\t0\troot\t_\t_\n\n",
                    b"wo AUX\nn't PART\ngo VERB\n\nOk INTJ\n\n"),
}


@pytest.mark.parametrize("conversion", sorted(CONVERSIONS))
def test_a_download_from_a_file_url_is_converted_and_checked(tmp_path, conversion):
    upstream_bytes, local = CONVERTED[conversion]
    row = synthetic_row(tmp_path / "upstream", local, conversion)
    (tmp_path / "upstream" / "data").mkdir(parents=True)
    (tmp_path / "upstream" / row.upstream_path).write_bytes(upstream_bytes)
    assert row.url == (tmp_path / "upstream" / "data" / "dev.txt").as_uri()
    assert fetch_file(row, tmp_path / "data") == "downloaded"
    assert (tmp_path / "data" / row.path).read_bytes() == local
    assert fetch_file(row, tmp_path / "data") == "already there"


def test_a_download_that_converts_to_other_bytes_is_refused(tmp_path):
    row = synthetic_row(tmp_path / "upstream", b"Sioux\tB-ORG\n\n", "strip-en-prefix")
    (tmp_path / "upstream" / "data").mkdir(parents=True)
    (tmp_path / "upstream" / row.upstream_path).write_bytes(b"en:Sioux\tB-LOC\n\n")
    with pytest.raises(DataError, match=rf"{row.url} with strip-en-prefix \(the `en:` prefix of every token removed\) "
                                        rf"has sha256 {sha256(b'Sioux' + bytes([9]) + b'B-LOC' + bytes([10, 10]))}, "
                                        rf"expected {row.sha256}"):
        fetch_file(row, tmp_path / "data")
    with pytest.raises(DataError, match=r"upstream/data/missing.txt \(.*No such file"):
        fetch_file(DataFile("x.txt", row.sha256, row.upstream, "data/missing.txt"), tmp_path / "data")
    assert files_under(tmp_path / "data") == []


@needs_shared_data
def test_the_real_rows_rebuild_the_mirror_files_from_their_upstream_layout(tmp_path):
    """WikiANN and the news text from upstream-shaped files made back from the mirror's (the `en:` prefix
    put back; each word of a text line given a tag): the real rows' paths, conversions and sha256."""
    upstream = tmp_path / "upstream"
    rows = with_base_url(select(["wikiann", "text"]), upstream.as_uri())
    for row in rows:
        local = (SHARED / row.path).read_text(encoding="utf-8")
        if row.conversion == "strip-en-prefix":
            remade = "\n".join(f"en:{line}" if line else line for line in local.split("\n"))
        else:
            remade = "".join("".join(f"{word} O\n" for word in line.split(" ")) + "\n" for line in local.splitlines())
        (upstream / row.upstream_path).parent.mkdir(parents=True, exist_ok=True)
        (upstream / row.upstream_path).write_text(remade, encoding="utf-8")
    assert {row.conversion for row in rows} == {"strip-en-prefix", "words-per-line"} and len(rows) == 9
    for row in rows:
        assert fetch_file(row, tmp_path / "data") == "downloaded"
        assert (tmp_path / "data" / row.path).read_bytes() == (SHARED / row.path).read_bytes()


def test_files_without_a_pinned_upstream_say_why_they_cannot_be_downloaded(tmp_path, capfd, monkeypatch):
    ud = select(["ud/en_ewt/dev.txt"])[0]
    assert ud.url is None
    with pytest.raises(DataError, match="ud/en_ewt/dev.txt cannot be downloaded: the UD release these were made from "
                                        "is not recorded"):
        fetch_file(ud, tmp_path / "data")
    result = run_madx(capfd, monkeypatch, "data", "fetch", "--only", "ud", "--into", tmp_path / "data")
    assert result.code == 0
    assert "not fetched: ud/en_ewt/dev.txt, ud/en_ewt/test.txt, ud/en_ewt/train.txt: the UD release" in result.out


def test_only_selects_by_folder_or_file_and_refuses_what_matches_nothing():
    assert [row.path for row in select(["masakhapos/hau"])] == ["masakhapos/hau/dev.txt", "masakhapos/hau/test.txt"]
    assert [row.path for row in select(["text/hau.txt", "wikiann/en/dev.txt"])] == [
        "text/hau.txt", "wikiann/en/dev.txt"]
    assert len(select()) == 58
    with pytest.raises(DataError, match=r"no benchmark file lies under 'masakhapo'; the folders are masakhaner2, "
                                        r"masakhapos, sib200, text, ud, wikiann"):
        select(["masakhapo"])
