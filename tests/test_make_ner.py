"""The synthetic NER generator: deterministic, valid IOB2, and the committed files match it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "data"
LABELS = {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}
TEST_LANGUAGES = ["de", "es", "sw", "yo", "ha", "mi"]


def _load_make_ner():
    spec = importlib.util.spec_from_file_location("make_ner", DATA / "make_ner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_ner = _load_make_ner()


def _generate(out: Path, *extra: str) -> dict[str, bytes]:
    assert make_ner.main(["--out", str(out), "--quiet", *extra]) == 0
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.conll"))}


def _sentences(text: str, where: str) -> list[list[tuple[str, str]]]:
    """Parse independently of make_ner: one `token<TAB>tag` per line, blank line between sentences."""
    assert text.endswith("\n") and not text.endswith("\n\n\n"), where
    sentences: list[list[tuple[str, str]]] = []
    for block in text.rstrip("\n").split("\n\n"):
        rows = block.split("\n")
        assert all(row.count("\t") == 1 for row in rows), f"{where}: {block[:200]!r}"
        sentences.append([tuple(row.split("\t")) for row in rows])
    return sentences


def _check_iob2(sentences: list[list[tuple[str, str]]], where: str) -> set[str]:
    types: set[str] = set()
    for n, sentence in enumerate(sentences):
        previous = "O"
        for token, tag in sentence:
            assert tag in LABELS, f"{where} sentence {n}: tag {tag!r}"
            assert token and token == token.strip() and " " not in token, f"{where} sentence {n}: token {token!r}"
            if tag.startswith("I-"):
                assert previous in (f"B-{tag[2:]}", f"I-{tag[2:]}"), f"{where} sentence {n}: {tag} after {previous}"
            if tag != "O":
                types.add(tag[2:])
            previous = tag
    return types


@pytest.fixture(scope="module")
def default_files(tmp_path_factory) -> dict[str, bytes]:
    return _generate(tmp_path_factory.mktemp("ner-default"))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path):
    small = ["--train-size", "60", "--dev-size", "20", "--test-size", "20"]
    first = _generate(tmp_path / "a", "--seed", "5", *small)
    again = _generate(tmp_path / "b", "--seed", "5", *small)
    other = _generate(tmp_path / "c", "--seed", "6", *small)
    assert first == again
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)


def test_layout_and_sizes(default_files: dict[str, bytes]):
    expected = {"en/train.conll", "en/dev.conll", "en/test.conll"} | {f"{lang}/test.conll" for lang in TEST_LANGUAGES}
    assert set(default_files) == expected
    sizes = {name: len(_sentences(data.decode("utf-8"), name)) for name, data in default_files.items()}
    assert sizes["en/train.conll"] == 1500 and sizes["en/dev.conll"] == 300
    assert all(sizes[f"{lang}/test.conll"] == 300 for lang in TEST_LANGUAGES)


def test_every_file_is_valid_iob2_with_all_entity_types(default_files: dict[str, bytes]):
    for name, data in default_files.items():
        sentences = _sentences(data.decode("utf-8"), name)
        assert _check_iob2(sentences, name) == {"PER", "LOC", "ORG"}, name
        assert any(tag.startswith("I-") for s in sentences for _, tag in s), f"{name}: no multi-token names"
        assert any(all(tag == "O" for _, tag in s) for s in sentences), f"{name}: no sentence without entities"


def test_committed_files_match_the_script(default_files: dict[str, bytes]):
    committed = {str(p.relative_to(DATA / "ner")): p.read_bytes() for p in sorted((DATA / "ner").rglob("*.conll"))}
    assert committed.keys() == default_files.keys()
    stale = [name for name in committed if committed[name] != default_files[name]]
    assert not stale, f"data/ner is out of date for {stale}: run `python data/make_ner.py` and commit the result"


def test_test_entities_are_mostly_unseen_in_english_training(default_files: dict[str, bytes]):
    train = set(make_ner.entities(_sentences(default_files["en/train.conll"].decode("utf-8"), "train")))
    for lang in TEST_LANGUAGES:
        mentions = make_ner.entities(_sentences(default_files[f"{lang}/test.conll"].decode("utf-8"), lang))
        seen = sum(m in train for m in mentions) / len(mentions)
        assert seen < 0.25, f"{lang}: {seen:.0%} of test mentions occur in en/train"


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("He was born in Rio de Janeiro, Brazil.", ["He", "was", "born", "in", "Rio", "de", "Janeiro", ",", "Brazil", "."]),
        ("Anne-Marie joined Procter & Gamble.", ["Anne-Marie", "joined", "Procter", "&", "Gamble", "."]),
        ("zai ɗauki sababbin ma'aikata.", ["zai", "ɗauki", "sababbin", "ma'aikata", "."]),
        ("dukkan ’yan-adam", ["dukkan", "’yan-adam"]),
        ("A bí i ní Ilé-Ifẹ̀.", ["A", "bí", "i", "ní", "Ilé-Ifẹ̀", "."]),
        ("(Kenya)", ["(", "Kenya", ")"]),
    ],
)
def test_tokenize(text: str, tokens: list[str]):
    assert make_ner.tokenize(text) == tokens


def test_unknown_language_is_an_error(tmp_path: Path, capsys):
    assert make_ner.main(["--out", str(tmp_path), "--languages", "xx"]) == 1
    assert "no templates for ['xx']" in capsys.readouterr().err
