"""A base for plain data classes that costs nothing at import time.

The runtime's hot path starts a fresh interpreter for every command, and the
`dataclasses` decorator generates and compiles code for each class at import (milliseconds
per class, plus importing `inspect` and `typing`). `Data` gives slotted classes equality,
a readable repr and `replace()` from their `__slots__`, with hand-written `__init__`s.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self


class Data:
    __slots__: tuple[str, ...] = ()
    # Every field, inherited ones first: filled in for each subclass as it is defined.
    _fields: tuple[str, ...] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        own = cls.__dict__.get("__slots__", ())
        cls._fields = (*cls._fields, *((own,) if isinstance(own, str) else own))

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._fields)

    __hash__ = None  # type: ignore[assignment]  # mutable-by-convention data, like dataclasses

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (dataclasses.replace without the import)."""
        copy = object.__new__(type(self))
        for name in self._fields:
            object.__setattr__(copy, name, changes.pop(name, getattr(self, name)))
        if changes:
            raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(changes)}")
        return copy
