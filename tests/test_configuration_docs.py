"""docs/configuration.md is what the config models say (regenerated here and compared with the
committed file), and it documents every key the shipped configs use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from flows.config_docs import COMMAND, DOCS_FILE, reference

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))

# Where the user chooses the key (a language code, a task name), the reference writes a placeholder.
CHOSEN = {("languages",): "<code>", ("tasks",): "<task>", ("tasks", "<task>", "test"): "<language>"}
# A task's train, dev and test sets share one table, keyed `<source>.KEY`.
SOURCES = {("tasks", "<task>", "train"), ("tasks", "<task>", "dev"), ("tasks", "<task>", "test", "<language>")}
# Values with spellings of their own (the guide at the top), not keys of the reference.
FREE_FORM = {"corpus", "corpora", "adapter"}


def reference_keys(data: dict, path: tuple[str, ...] = ()) -> Iterator[str]:
    """The dotted keys of a config mapping, as the reference names them."""
    for key, value in data.items():
        here = (*path, CHOSEN.get(path, str(key)))
        yield ".".join(here)
        if here in SOURCES:
            yield from (f"<source>.{name}" for name in value)
        elif isinstance(value, dict) and here[-1] not in FREE_FORM:
            yield from reference_keys(value, here)


def test_the_committed_reference_is_what_the_models_say():
    assert DOCS_FILE == REPO / "docs" / "configuration.md"
    assert DOCS_FILE.read_text(encoding="utf-8") == reference(), (
        f"docs/configuration.md is out of date with the config models: run `{COMMAND}` (python -m "
        "flows.config_docs) and commit the file")


@pytest.mark.parametrize("config", CONFIGS, ids=[path.name for path in CONFIGS])
def test_every_key_of_a_shipped_config_is_in_the_reference(config):
    text = reference()
    keys = sorted(set(reference_keys(yaml.safe_load(config.read_text(encoding="utf-8")))))
    assert "language_adapter.steps" in keys and "<source>.format" in keys  # the walk reaches both kinds
    missing = [key for key in keys if f"`{key}`" not in text]
    assert missing == [], f"{config.name}: keys not in docs/configuration.md: {missing}"
    assert "`language_adapter.stepz`" not in text
