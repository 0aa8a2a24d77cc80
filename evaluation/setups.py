"""The evaluation setups: what sits under the task adapter when a target language is scored, and
which adapters each one needs. One table, SETUPS; the zero-shot matrix, the report, the config and
the flows read it (a new setup is a new row).

    setup       task adapter trained on           at test: under the task adapter
    madx        the source's language adapter     the target's language adapter (MAD-X)
    madx-2.0    the source's language adapter     the target's, no adapters in the last layer (MAD-X 2.0)
    madx-noinv  the source's adapter without INV  the target's adapter without INV (MAD-X -INV)
    en-la       the source's language adapter     the source's language adapter (as trained)
    no-la       the source's language adapter     nothing (the language adapter removed)
    ta-only     no language adapter               nothing (MAD-X -LAD -INV)

A setup's `family` is the family of language adapters its task adapter is trained on
(madx/config.py LANGUAGE_ADAPTER_FAMILIES, which a test holds this table to: `madx` as configured, `noinv` without the invertible
adapter), None for none. Setups of one family share its task adapters; `ta-only` has its own.
(The names say "en" because English is the usual source; the source is whatever the config says.)

Torch-free, so a config names and checks them without loading a model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from madx.errors import ConfigError

MADX = "madx"  # the family of the configured language adapters (MAD-X's own)
TA_ONLY = "ta-only"  # the family of task adapters trained with no language adapter under them

Active = Literal["target", "source", "none"]


@dataclass(frozen=True)
class Setup:
    """One way to score a task adapter on a target language."""

    meaning: str  # what the report says it is
    family: str | None  # language-adapter family its task adapter is trained on; None: no language adapter
    active: Active  # the language adapter under the task adapter at test: the target's, the source's, none
    skip_last_layer: bool = False  # the adapters of the last layer left out at test (MAD-X 2.0)

    @property
    def task_family(self) -> str:
        """The family of the task adapter it scores: its language adapters', or `ta-only`."""
        return self.family or TA_ONLY


# In the report's order: MAD-X and its variants, then the baselines.
SETUPS: dict[str, Setup] = {
    "madx": Setup("Stack(target language adapter, task adapter): MAD-X zero-shot transfer, the target's language "
                  "adapter swapped in under the task adapter trained on the source's", MADX, "target"),
    "madx-2.0": Setup("madx with the adapters of the last layer left out at test (MAD-X 2.0)", MADX, "target",
                      skip_last_layer=True),
    "madx-noinv": Setup("madx with language adapters trained without invertible adapters, and a task adapter trained "
                        "on the source's (MAD-X −INV): what the invertible adapter contributes", "noinv", "target"),
    "en-la": Setup("Stack(source language adapter, task adapter): the task adapter as trained, the source's language "
                   "adapter kept", MADX, "source"),
    "no-la": Setup("the madx task adapter alone, its language adapter removed at test (its inputs shift: a shaky "
                   "reference)", MADX, "none"),
    "ta-only": Setup("a task adapter trained and tested with no language adapter (MAD-X −LAD −INV): the honest "
                     "no-language-adapter baseline", None, "none"),
}
DEFAULT_SETUPS = ("madx", "en-la", "no-la")
# Setups that put the target's own language adapter under the task adapter.
NEEDS_TARGET_ADAPTER = frozenset(name for name, setup in SETUPS.items() if setup.active == "target")
# What MAD-X claims, as differences of setups (a minus b): each reported when both were scored.
COMPARISONS = (("madx", "en-la"), ("madx", "ta-only"), ("madx", "no-la"), ("madx", "madx-noinv"))

def check_setups(setups: Iterable[str]) -> tuple[str, ...]:
    setups = tuple(setups)
    unknown = [s for s in setups if s not in SETUPS]
    if unknown or not setups:
        raise ConfigError(f"unknown evaluation setup(s) {unknown}; choose from {list(SETUPS)}")
    return setups


def language_adapter_families(setups: Iterable[str]) -> tuple[str, ...]:
    """The language-adapter families `setups` need (every language's adapter of each: a family's task
    adapters train on its source adapter, and its target setups load the targets'), in table order."""
    wanted = set(setups)
    return tuple(dict.fromkeys(setup.family for name, setup in SETUPS.items() if name in wanted and setup.family))


def task_adapter_families(setups: Iterable[str]) -> tuple[str, ...]:
    """The task-adapter families `setups` score (madx, noinv, ta-only), in table order."""
    wanted = set(setups)
    return tuple(dict.fromkeys(setup.task_family for name, setup in SETUPS.items() if name in wanted))
