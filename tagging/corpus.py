"""Tagged sentences and corpora: what every source of labeled data becomes.

Every source (CoNLL file, CoNLL-U file, Hugging Face dataset, a tagged corpus from a package
registry converted in the cache) becomes the same thing, a `TaggedCorpus` of `TaggedSentence`s
(words + one tag per word + where they came from), so the training loop and the evaluation never
care which format the data had.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from madx.errors import DataError


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence: its words, one tag per word, and where it came from (for error messages).

    `origin` is the file path or dataset description, `index` the sentence's 0-based position in
    its source (the row for a dataset), `lines` the 1-based line of each word in a file, if any.
    """

    tokens: list[str]
    tags: list[str]
    origin: str = "<memory>"
    index: int = 0
    lines: list[int] | None = None

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.tags):
            raise DataError(
                f"{self.where()}: {len(self.tokens)} words but {len(self.tags)} tags; "
                "expected exactly one tag per word"
            )
        if self.lines is not None and len(self.lines) != len(self.tokens):
            raise ValueError(f"{self.where()}: {len(self.lines)} line numbers for {len(self.tokens)} words")

    def where(self, position: int | None = None) -> str:
        """`file:line` of a word (or of the sentence's first word); `origin, row i` without lines."""
        if self.lines:
            return f"{self.origin}:{self.lines[0 if position is None else position]}"
        if position is None:
            return f"{self.origin}, row {self.index} (0-based)"
        return f"{self.origin}, row {self.index}, word {position} (0-based)"


@dataclass(frozen=True)
class TaggedCorpus:
    """The sentences of one source, in source order, and a one-line description of the source."""

    sentences: list[TaggedSentence]
    source: str

    def __len__(self) -> int:
        return len(self.sentences)

    def __iter__(self) -> Iterator[TaggedSentence]:
        return iter(self.sentences)

    def __getitem__(self, index: int) -> TaggedSentence:
        return self.sentences[index]

    @property
    def n_words(self) -> int:
        return sum(len(sentence.tokens) for sentence in self.sentences)

    def tag_counts(self) -> Counter[str]:
        return Counter(tag for sentence in self.sentences for tag in sentence.tags)

    def tag_sequences(self) -> list[list[str]]:
        """The gold tags as `score_tagging` wants them: one list per sentence (copies)."""
        return [list(sentence.tags) for sentence in self.sentences]
