"""Which adapters run, in what order: `Stack("sw", "ner")` is MAD-X zero-shot transfer.

Small value objects, hashable and serialisable, so a setup can be logged, cached and compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from madx.errors import ConfigError


class Stack:
    """Adapters applied one after another in every layer; the first one's invertible adapter
    (if it has one) runs on the embeddings, and its inverse before an MLM head's vocabulary projection."""

    __slots__ = ("names",)

    def __init__(self, *names: str):
        if not names:
            raise ConfigError("Stack needs at least one adapter name")
        if len(set(names)) != len(names):
            raise ConfigError(f"Stack lists an adapter twice: {list(names)}")
        for name in names:
            if not isinstance(name, str) or not name:
                raise ConfigError(f"adapter names in a Stack are non-empty strings, got {name!r}")
        self.names: tuple[str, ...] = tuple(names)

    @property
    def first(self) -> str:
        return self.names[0]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stack) and other.names == self.names

    def __hash__(self) -> int:
        return hash(("Stack", self.names))

    def __repr__(self) -> str:
        return f"Stack({', '.join(map(repr, self.names))})"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "stack", "children": list(self.names)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stack:
        if data.get("type") != "stack" or not isinstance(data.get("children"), list):
            raise ConfigError(f"not a serialised Stack: {data!r}")
        return cls(*data["children"])


def as_stack(setup: Stack | str | list[str] | tuple[str, ...] | None) -> Stack | None:
    """A single adapter name is a one-adapter Stack; None means no adapter runs."""
    if setup is None or isinstance(setup, Stack):
        return setup
    if isinstance(setup, str):
        return Stack(setup)
    if isinstance(setup, (list, tuple)):
        return Stack(*setup) if setup else None
    raise ConfigError(f"an adapter setup is a name, a list of names or a Stack, got {type(setup).__name__}")
