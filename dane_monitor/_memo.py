"""Values worked out once per object, for objects that never change once made.

A monitor asks the same questions every cycle, and the validator hands out the same Answer
(and RRset, and the chain memo the same certificate) objects for as long as it holds them.
What is derived from such an object alone (its report, its text, a survey entry) is worked
out once: keyed on the object's identity, with the object kept alive beside its value so
that its id cannot be reused by another object while the value is remembered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class ByIdentity(Generic[V]):
    """``memo(obj, make)``: ``make(obj)``, once per object; at most ``size`` kept (all
    forgotten at once when full: the same few objects come back every cycle)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: dict[int, tuple[Any, V]] = {}

    def __call__(self, obj: Any, make: Callable[[Any], V]) -> V:
        hit = self._kept.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = make(obj)
        if len(self._kept) >= self.size:
            self._kept.clear()
        self._kept[id(obj)] = (obj, value)
        return value
