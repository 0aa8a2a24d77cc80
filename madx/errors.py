"""The exceptions madx raises on bad input.

Every error a user can cause is a `MadxError`: the CLI prints its message on one line and exits
non-zero, so each message says what was wrong, where (file, line, key) and what was expected.
"""

import re

_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact_credentials(text: str) -> str:
    """`user:password@` in every URI of `text` becomes `***@`: for anything logged or printed."""
    return _CREDENTIALS.sub("***@", text)


class MadxError(Exception):
    """Base class: a problem the user can fix (bad input, wrong file, unsupported model)."""


class ConfigError(MadxError):
    """An adapter, pipeline or training configuration is invalid."""


class DataError(MadxError):
    """A corpus or labeled data file is missing, empty, malformed or inconsistent."""


class CorpusTooSmallError(DataError):
    """A corpus holds too little text to train a language adapter without memorising it."""


class UnsupportedModelError(MadxError):
    """The base model's architecture has no row in the surgery table."""


class AdapterLoadError(MadxError):
    """An adapter folder is incomplete, corrupted, or does not fit the model it is loaded into."""


class TrainingFailedError(MadxError):
    """A training run ended in a state whose results would be meaningless (a tagger no better than
    always guessing the most frequent label, an MLM head worse than chance); it is not saved."""
