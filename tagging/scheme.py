"""Label sets and tagging schemes: which tags a head predicts (a tag's position is its label id),
whether they are IOB2 entity tags or plain (POS-like) tags, and the checks that data fits them.

Tags are never silently changed: an unknown tag is an error that lists every unknown tag, because
mapping it to `O` would quietly inflate or deflate the scores the whole project is about.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from madx.errors import DataError
from tagging.corpus import TaggedSentence

Scheme = Literal["iob2", "plain"]

# The one definition of the IOB2 tags, for the data checks here and for scoring (tagging.metrics):
# an entity tag is B-<type> or I-<type>, and an IOB2 tag is O or an entity tag (`is_iob2_tag`).
# PREFIXED_TAG also admits the IOBES/BILOU prefixes, so that such tag sets are named as what they are.
ENTITY_TAG = re.compile(r"[BI]-.+")
PREFIXED_TAG = re.compile(r"[BIESLU]-.+")


def is_iob2_tag(tag: str) -> bool:
    """Whether `tag` is O, B-<type> or I-<type>."""
    return tag == "O" or ENTITY_TAG.fullmatch(tag) is not None


def detect_scheme(tags: Iterable[str]) -> Scheme:
    """"iob2" if every non-O tag is B-<type> or I-<type>; "plain" (POS-like) otherwise.

    IOBES/BILOU tag sets raise `DataError` rather than being scored as plain tags: entity-level
    F1 would silently turn into token accuracy. Convert them to IOB2 first.
    """
    entity_tags = {tag for tag in tags if tag != "O"}
    if all(ENTITY_TAG.fullmatch(tag) for tag in entity_tags):
        return "iob2"
    if all(PREFIXED_TAG.fullmatch(tag) for tag in entity_tags):
        raise DataError(
            f"tags {sorted(entity_tags)[:12]} look like IOBES/BILOU; only IOB2 (B-/I-) entity tags are "
            "supported: convert the data to IOB2"
        )
    outside = sorted(tag for tag in entity_tags if not ENTITY_TAG.fullmatch(tag))
    if len(outside) < len(entity_tags):  # some B-/I- tags, some not: a typo, not a POS tag set
        raise DataError(
            f"tags {outside[:12]} are outside the IOB2 scheme of the other tags (O, B-<type>, I-<type>); "
            "fix them, or use one tagging scheme throughout"
        )
    return "plain"


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of tags; a tag's position is its label id in the classification head.

    Given explicitly (`LabelSet(("O", "B-PER", "I-PER"))`, order kept) or built from training
    data with `from_sentences` / `from_tags` (deterministic order, see `from_tags`).
    """

    labels: tuple[str, ...]
    scheme: Scheme = field(init=False)

    def __post_init__(self) -> None:
        labels = tuple(self.labels)
        if not labels:
            raise DataError("a label set needs at least one label")
        bad = [label for label in labels if not isinstance(label, str) or not label or label != label.strip()]
        if bad:
            raise DataError(f"labels must be non-empty strings without surrounding spaces, got {bad}")
        duplicates = sorted(label for label, count in Counter(labels).items() if count > 1)
        if duplicates:
            raise DataError(f"label set lists {duplicates} more than once")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "scheme", detect_scheme(labels))

    @classmethod
    def from_tags(cls, tags: Iterable[str]) -> LabelSet:
        """The label set of some observed tags, in a deterministic order.

        IOB2: `O` first (always present, it is the "no entity" answer), then per entity type in
        sorted order B-type before I-type; both are included for every type seen, so an I-X that
        only the test data has is still a known label. Plain: `O` first if present, then sorted.
        """
        observed = set(tags)
        if not observed:
            raise DataError("cannot build a label set: there are no tags")
        if detect_scheme(observed) == "iob2":
            types = sorted({tag[2:] for tag in observed if tag != "O"})
            return cls(("O", *(f"{prefix}-{kind}" for kind in types for prefix in "BI")))
        return cls(tuple(sorted(observed, key=lambda tag: (tag != "O", tag))))

    @classmethod
    def from_sentences(cls, sentences: Iterable[TaggedSentence]) -> LabelSet:
        """`from_tags` over every tag of the sentences (a `TaggedCorpus` works too); a tag outside the
        IOB2 scheme of the others is reported with where it first occurs."""
        sentences = list(sentences)
        tags = {tag for sentence in sentences for tag in sentence.tags}
        if any(ENTITY_TAG.fullmatch(tag) for tag in tags) and not all(PREFIXED_TAG.fullmatch(t) for t in tags - {"O"}):
            for sentence in sentences:
                for position, tag in enumerate(sentence.tags):
                    if not is_iob2_tag(tag):
                        raise DataError(
                            f"{sentence.where(position)}: tag {tag!r} is outside the IOB2 scheme of the other "
                            "tags (expected O, B-<type> or I-<type>)"
                        )
        return cls.from_tags(tags)

    @cached_property
    def label2id(self) -> dict[str, int]:
        return {label: index for index, label in enumerate(self.labels)}

    @cached_property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, tag: object) -> bool:
        return tag in self.label2id


def check_known_tags(
    sentences: Iterable[TaggedSentence], label_set: LabelSet, against: str = "the label set"
) -> None:
    """DataError listing EVERY tag that `label_set` lacks, with counts and first locations.

    Use it on evaluation data against the training label set: such tags are reported, never
    mapped to O (that would count entities the model can never find as silently absent).
    """
    unknown: dict[str, list[Any]] = {}  # tag -> [count, location of the first one]
    for sentence in sentences:
        for position, tag in enumerate(sentence.tags):
            if tag not in label_set:
                entry = unknown.setdefault(tag, [0, sentence.where(position)])
                entry[0] += 1
    if unknown:
        listed = "; ".join(f"{tag!r} x{count} (first at {where})" for tag, (count, where) in sorted(unknown.items()))
        raise DataError(
            f"{len(unknown)} tag(s) not in {against} {list(label_set.labels)}: {listed}. They are not "
            "mapped to O: fix the data, or build the label set from data that has these tags"
        )


def check_iob2(sentences: Iterable[TaggedSentence]) -> None:
    """Strict IOB2: every non-O tag is B-X or I-X, and an I-X follows B-X or I-X. DataError otherwise."""
    problems: list[str] = []
    for sentence in sentences:
        previous: str | None = None
        for position, tag in enumerate(sentence.tags):
            if not is_iob2_tag(tag):
                problems.append(f"{sentence.where(position)}: tag {tag!r} is not O, B-<type> or I-<type>")
            elif tag.startswith("I-") and previous not in (f"B-{tag[2:]}", tag):
                after = "starts the sentence" if previous is None else f"follows {previous!r}"
                problems.append(
                    f"{sentence.where(position)}: {tag!r} {after}; strict IOB2 requires it to follow "
                    f"'B-{tag[2:]}' or {tag!r}"
                )
            previous = tag
    if problems:
        more = f" (and {len(problems) - 1} more such tags)" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
