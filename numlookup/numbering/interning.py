"""Small integer ids for repeated values, so arrays can refer to them by index."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class Interner(Generic[T]):
    """``interner(value)`` is the index of ``value`` in ``interner.items``, added on first sight."""

    def __init__(self, existing: Iterable[T] = ()) -> None:
        self.items: list[T] = list(existing)
        self.index: dict[T, int] = {item: i for i, item in enumerate(self.items)}

    def __call__(self, item: T) -> int:
        found = self.index.get(item)
        if found is None:
            found = self.index[item] = len(self.items)
            self.items.append(item)
        return found
