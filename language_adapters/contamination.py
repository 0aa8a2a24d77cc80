"""Test sentences in a language adapter's corpus: found, counted and left out before it trains.

Unlabeled text and test sets come from overlapping sources (news sites, Wikipedia): 115 of the 601
sentences of MasakhaPOS's Hausa test set are lines of a Hausa news corpus. An adapter trained on
them has seen the very sentences it is scored on, and the zero-shot score it is judged by goes up
for the wrong reason. So each corpus is checked against every test set of the pipeline (all tasks,
all languages), and a corpus line is removed when, as a sequence of normalised words (`words`), it

  - equals a test sentence (of any length), or
  - contains a test sentence of at least MIN_CONTAINED_WORDS words as a contiguous run.

Shorter sentences ("Thank you .", "He did not say .") turn up in any text, so a line that merely
contains one says nothing about where it came from; equal to it, the line is the sentence.

The check is an index lookup, not a substring scan: test sentences of MIN_CONTAINED_WORDS or more
words are indexed by their first MIN_CONTAINED_WORDS words, and each corpus line looks up each of
its windows of that many words, so the cost grows with the corpus's words, not with corpus lines
times test sentences.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from madx.errors import DataError
from tagging.sources import LabeledSource

if TYPE_CHECKING:
    from datasets import Dataset

# A test sentence this long, found inside a corpus line, marks the line as taken from the test set.
MIN_CONTAINED_WORDS = 5
# Bumped whenever what `words` or the matching rules produce changes (results remembered on disk
# under an older version are then recomputed).
MATCHING_VERSION = 1


class _WordCharacters(dict):
    """A `str.translate` table: letters, combining marks and digits stay, every other character
    (punctuation, symbols, spaces) becomes a space. Filled on first sight of a character; a corpus
    uses a few hundred. Marks stay so that a word like Yoruba `ẹ̀tọ́` (which keeps a combining
    accent even in NFC) stays one word."""

    def __missing__(self, code: int) -> str:
        character = chr(code)
        kept = character if unicodedata.category(character)[0] in "LMN" else " "
        self[code] = kept
        return kept


_WORD_CHARACTERS = _WordCharacters()


def words(text: str) -> tuple[str, ...]:
    """`text` as the check compares it: NFC, case-folded, split into runs of letters, marks and digits.

    Punctuation separates words instead of belonging to them because test sets are tokenised and
    corpora are not: "Kano ." and "Kano." (or `" Kano "` and `"Kano"`) are the same words only once
    punctuation is a separator, whatever spaces a tokeniser put around it. Case is folded because
    a sentence reused as a headline or quoted at a line's start differs in case only, and five
    words in the same order are evidence enough without it."""
    return tuple(unicodedata.normalize("NFC", text).translate(_WORD_CHARACTERS).casefold().split())


@dataclass(frozen=True)
class ExcludedTestSet:
    """A test set whose sentences no language adapter may train on, and the name it is reported
    under (`task/language`, e.g. `pos/hau`)."""

    name: str
    source: LabeledSource


class SentenceIndex:
    """The sentences of some test sets, as normalised words, indexed for `find_contamination`."""

    def __init__(self, test_sets: Mapping[str, Iterable[Sequence[str]]]):
        """`test_sets`: test set name -> its sentences, each a list of tokens."""
        self.names = tuple(test_sets)
        # normalised sentence -> the test sets that have it
        self._owners: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for name, sentences in test_sets.items():
            for tokens in sentences:
                sentence = words(" ".join(tokens))
                if sentence:  # a sentence of punctuation only has no words to find
                    self._owners[sentence].add(name)
        # first MIN_CONTAINED_WORDS words -> the sentences long enough to be found inside a line
        self._by_start: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
        for sentence in self._owners:
            if len(sentence) >= MIN_CONTAINED_WORDS:
                self._by_start[sentence[:MIN_CONTAINED_WORDS]].append(sentence)

    @classmethod
    def load(cls, test_sets: Sequence[ExcludedTestSet]) -> SentenceIndex:
        """Read every test set (`tagging.readers.load_labeled`; a bad file is a DataError naming it)."""
        from tagging.readers import load_labeled

        return cls({test_set.name: [sentence.tokens for sentence in load_labeled(test_set.source)]
                    for test_set in test_sets})

    def __len__(self) -> int:
        return len(self._owners)

    def matches(self, line: tuple[str, ...]) -> set[str]:
        """The test sets with a sentence that `line` (normalised words) equals or contains."""
        found = set(self._owners.get(line, ()))
        for start in range(len(line) - MIN_CONTAINED_WORDS + 1):
            for sentence in self._by_start.get(line[start : start + MIN_CONTAINED_WORDS], ()):
                if line[start : start + len(sentence)] == sentence:
                    found |= self._owners[sentence]
        return found


@dataclass(frozen=True)
class Contamination:
    """What the check found in one corpus: the lines to leave out, and whose sentences they hold."""

    lines: int  # corpus lines checked (rows of the loaded corpus)
    removed: tuple[int, ...] = ()  # 0-based rows holding a test sentence, in order
    matched: dict[str, int] = field(default_factory=dict)  # test set name -> removed lines with one of its sentences
    test_sets: tuple[str, ...] = ()  # every test set checked against

    def digest(self) -> str:
        """sha256 of the removed rows: with the corpus's own fingerprint, what decides the text trained on."""
        return hashlib.sha256(json.dumps(self.removed).encode()).hexdigest()

    def matched_text(self) -> str:
        """"pos/hau: 115, ner/hau: 2" (most lines first), or "none"."""
        ranked = sorted(self.matched.items(), key=lambda item: (-item[1], item[0]))
        return ", ".join(f"{name}: {count}" for name, count in ranked) or "none"

    def describe(self) -> str:
        """One line for the log: what was removed, or that nothing was."""
        if not self.test_sets:
            return f"no test set to check the corpus ({self.lines:,} lines) against"
        if not self.removed:
            return f"none of the {self.lines:,} corpus lines holds a sentence of the {len(self.test_sets)} test set(s)"
        return (f"removed {len(self.removed):,} of {self.lines:,} corpus lines holding test sentences "
                f"({self.matched_text()}) before training")

    def summary(self) -> dict[str, Any]:
        """What a saved adapter records (its rows are in `removed_sha256`, not listed)."""
        return {"corpus_lines": self.lines, "removed_lines": len(self.removed), "matched": dict(self.matched),
                "test_sets_checked": list(self.test_sets), "removed_sha256": self.digest(),
                "matching_version": MATCHING_VERSION}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Contamination:
        return cls(int(data["lines"]), tuple(data["removed"]), dict(data["matched"]), tuple(data["test_sets"]))

    def apply(self, corpus: Dataset, description: str = "corpus") -> Dataset:
        """`corpus` (the one this was computed on) without the removed rows."""
        if len(corpus) != self.lines:
            raise DataError(f"{description} has {len(corpus):,} lines, but its test-sentence check saw {self.lines:,}: "
                            "it changed since; run again to check it anew")
        if not self.removed:
            return corpus
        if len(self.removed) == self.lines:
            raise DataError(f"every line of {description} holds a sentence of a test set ({self.matched_text()}): "
                            "nothing is left to train a language adapter on")
        removed = set(self.removed)
        return corpus.select([row for row in range(self.lines) if row not in removed])


def find_contamination(texts: Iterable[str], index: SentenceIndex) -> Contamination:
    """Check every line of `texts` against `index`."""
    removed: list[int] = []
    matched: Counter[str] = Counter()
    lines = 0
    for row, text in enumerate(texts):
        lines += 1
        owners = index.matches(words(text)) if len(index) else ()
        if owners:
            removed.append(row)
            matched.update(owners)
    return Contamination(lines, tuple(removed), dict(sorted(matched.items())), index.names)


def check_corpus(corpus: Dataset, test_sets: Sequence[ExcludedTestSet]) -> Contamination:
    """Check a loaded corpus (`language_adapters.corpus.load_corpus`) against `test_sets`."""
    index = SentenceIndex.load(test_sets)
    return find_contamination((text for batch in corpus.iter(batch_size=10_000) for text in batch["text"]), index)
