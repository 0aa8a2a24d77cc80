"""The evaluation setups: what sits under the task adapter when a target language is scored.

    madx      Stack(target language adapter, task adapter): MAD-X zero-shot transfer
    en-la     Stack(source language adapter, task adapter): the task adapter as trained
    no-la     the task adapter alone, no language adapter
    madx-2.0  madx with the adapters of the last layer left out (MAD-X 2.0)

Torch-free, so a config names and checks them without loading a model.
"""

from __future__ import annotations

from collections.abc import Iterable

from madx.errors import ConfigError

SETUPS = ("madx", "en-la", "no-la", "madx-2.0")
NEEDS_TARGET_ADAPTER = {"madx", "madx-2.0"}
DEFAULT_SETUPS = ("madx", "en-la", "no-la")


def check_setups(setups: Iterable[str]) -> tuple[str, ...]:
    setups = tuple(setups)
    unknown = [s for s in setups if s not in SETUPS]
    if unknown or not setups:
        raise ConfigError(f"unknown evaluation setup(s) {unknown}; choose from {list(SETUPS)}")
    return setups
