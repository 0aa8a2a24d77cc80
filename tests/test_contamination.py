"""Test sentences in a language adapter's corpus (language_adapters/contamination.py): found on
normalised words, removed, counted per test set, fast enough for real corpora. Their way through
the pipeline (MLflow params, the report, cache keys) is tested in test_flows.py."""

from __future__ import annotations

import random
import time
import unicodedata

import pytest
from datasets import Dataset

from conftest import TINY_TEXT
from language_adapters.contamination import (
    MIN_CONTAINED_WORDS,
    Contamination,
    ExcludedTestSet,
    SentenceIndex,
    check_corpus,
    find_contamination,
    words,
)
from madx.errors import DataError
from tagging.readers import load_labeled
from tagging.sources import LabeledSource


def test_words_ignore_case_punctuation_spacing_and_unicode_composition():
    tokenised, raw = "Kofi lives in Lagos .", "  KOFI lives in\tLagos."
    assert words(tokenised) == words(raw) == ("kofi", "lives", "in", "lagos")
    decomposed = unicodedata.normalize("NFD", "Ọjọ́ ìbí")  # Yoruba typed with combining accents
    assert words(decomposed) == words("Ọjọ́ ìbí") == ("ọjọ́", "ìbí")  # a combining accent stays in its word
    assert words('"Habari", alisema.') == ("habari", "alisema")
    assert words("2,000 people") == ("2", "000", "people")  # split the same way in a tokenised test set
    assert words(" . , ") == ()


def test_a_test_sentence_planted_in_a_corpus_is_removed_and_counted(toy_ner):
    test_set = ExcludedTestSet("ner/sw", LabeledSource("conll", path=str(toy_ner / "test.conll")))
    sentences = [sentence.tokens for sentence in load_labeled(test_set.source)]
    long_one = next(tokens for tokens in sentences if len(words(" ".join(tokens))) >= MIN_CONTAINED_WORDS)
    short_one = next(tokens for tokens in sentences if len(words(" ".join(tokens))) < MIN_CONTAINED_WORDS)
    # As a news page carries them: untokenised, inside a longer line, in capitals; the short one as a line of its own.
    inside = f"BREAKING: {' '.join(long_one[:-1]).upper()}{long_one[-1]} More later."
    alone = " ".join(short_one[:-1]) + short_one[-1]
    lines = [*TINY_TEXT[:3], inside, *TINY_TEXT[3:], alone]

    found = check_corpus(Dataset.from_dict({"text": lines}), [test_set])
    assert found.lines == len(lines)
    assert found.removed == (3, len(lines) - 1)
    assert found.matched == {"ner/sw": 2} and found.test_sets == ("ner/sw",)
    assert "removed 2 of 10 corpus lines" in found.describe() and "ner/sw: 2" in found.describe()

    kept = found.apply(Dataset.from_dict({"text": lines}))
    assert kept["text"] == TINY_TEXT
    summary = found.summary()  # what the adapter's metadata records
    assert (summary["removed_lines"], summary["matched"], summary["corpus_lines"]) == (2, {"ner/sw": 2}, 10)
    assert Contamination.from_dict(found.to_dict()) == found  # remembered on disk between runs


def test_a_line_sharing_only_a_short_sentences_words_is_kept():
    index = SentenceIndex({
        "pos/xx": [["Nothing", "happened", "today", "."],  # 3 words: only a line equal to it is the sentence
                   ["The", "rain", "fell", "all", "night", "."]],  # 5 words: a line containing it is removed
        "ner/yy": [["Four", "words", "only", "here", "."]],
    })
    assert index.matches(words("Nothing happened today in Lagos, the police said.")) == set()
    assert index.matches(words("Nothing happened today.")) == {"pos/xx"}
    assert index.matches(words("He said four words only here and left.")) == set()  # 4 words inside a line
    assert index.matches(words("Four words only here!")) == {"ner/yy"}
    assert index.matches(words("In Accra the rain fell all night, and roads closed.")) == {"pos/xx"}
    assert index.matches(words("the rain fell all day")) == set()  # the same start, another sentence


def test_a_line_holding_sentences_of_two_test_sets_counts_for_both():
    index = SentenceIndex({"pos/hau": [["A", "b", "c", "d", "e"]], "ner/hau": [["a", "b", "c", "d", "e", "."]]})
    found = find_contamination(["x a b c d e y", "nothing here"], index)
    assert found.removed == (0,) and found.matched == {"ner/hau": 1, "pos/hau": 1}
    assert found.matched_text() == "ner/hau: 1, pos/hau: 1"


def test_nothing_to_remove_and_a_changed_or_fully_removed_corpus():
    nothing = find_contamination(TINY_TEXT, SentenceIndex({"ner/sw": [["Unrelated", "words", "."]]}))
    assert nothing.removed == () and nothing.matched_text() == "none"
    assert "none of the 8 corpus lines" in nothing.describe()
    corpus = Dataset.from_dict({"text": TINY_TEXT})
    assert nothing.apply(corpus) is corpus

    with pytest.raises(DataError, match=r"corpus news\.txt has 7 lines, but its test-sentence check saw 8"):
        nothing.apply(Dataset.from_dict({"text": TINY_TEXT[:7]}), "corpus news.txt")
    everything = find_contamination(TINY_TEXT[:1], SentenceIndex({"ner/en": [TINY_TEXT[0].split()]}))
    with pytest.raises(DataError, match="every line of corpus holds a sentence of a test set"):
        everything.apply(Dataset.from_dict({"text": TINY_TEXT[:1]}))


def test_a_10k_line_corpus_against_5k_test_sentences_is_an_index_lookup_not_a_scan():
    """An index lookup per window of words: linear in the corpus, however many test sentences. Here
    ~0.4 s on a busy 2-core machine; even a plain `sentence in line` over every pair took ~40 s."""
    rng = random.Random(0)
    vocabulary = [f"w{i}" for i in range(5000)]

    def sentence(low: int, high: int) -> list[str]:
        return rng.choices(vocabulary, k=rng.randint(low, high))

    test_sentences = [sentence(5, 25) for _ in range(5000)]
    lines = [" ".join(sentence(10, 40)) for _ in range(10_000)]
    planted = rng.sample(range(len(lines)), 50)
    for row in planted:  # a test sentence inside the line, with the line's own words around it
        lines[row] = f"{lines[row]} {' '.join(rng.choice(test_sentences))}."

    started = time.perf_counter()
    index = SentenceIndex({"pos/xx": test_sentences})
    found = find_contamination(lines, index)
    elapsed = time.perf_counter() - started
    assert found.removed == tuple(sorted(planted))
    assert elapsed < 5, f"{elapsed:.1f} s"


def test_the_report_has_a_line_per_language_whose_corpus_held_test_sentences():
    from evaluation.report import to_markdown

    rows = [{"task": "pos", "language": lang, "setup": "madx", "source_language": "en", "scheme": "plain", "f1": 0.6}
            for lang in ("hau", "zul")]
    adapters = [{"language": "hau", "initial_perplexity": 900.0, "perplexity": 300.0, "removed_lines": 210,
                 "removed_test_sets": "ner/hau: 208, pos/hau: 161"},
                {"language": "zul", "initial_perplexity": 900.0, "perplexity": 300.0, "removed_lines": 0,
                 "removed_test_sets": "none"}]
    markdown = to_markdown(rows, "t", language_adapters=adapters)
    assert "## Test sentences removed from language-adapter corpora" in markdown
    assert ("- `hau`: 210 corpus lines left out before its adapter trained (lines holding sentences of each test "
            "set: ner/hau: 208, pos/hau: 161).") in markdown
    assert "- `zul`" not in markdown
    for adapter in adapters:
        adapter["removed_lines"] = 0
    assert "Test sentences removed" not in to_markdown(rows, "t", language_adapters=adapters)
