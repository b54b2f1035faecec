"""Plain data classes for the image modules, without `dataclasses`' cost at import.

`cove pull` starts a fresh interpreter; `@dataclass` generates and compiles code for every
class when its module is imported, and loads `inspect` (with `ast`, `dis`, `tokenize`) to
do so: several milliseconds at start-up and again at exit. These bases give what the image
types used from dataclasses, from `__slots__` and hand-written `__init__`s:

- `Record` (`cove.oci.data.Data`): equality and repr over the fields, `replace()`. The
  fields are `__slots__` (sorted, as ruff wants them) in the order `_field_order` gives,
  the declaration order of the dataclass this was: repr and `_init()` follow it. Fields
  named in `_hidden` (the `raw` bytes a document was parsed from) take no part in equality
  and repr, as `field(compare=False, repr=False)`.
- `FrozenRecord`: also immutable (assigning a field raises AttributeError) and hashable
  over the compared fields, as `@dataclass(frozen=True)`. Its `__init__` sets the fields
  with `_init()`.
"""

from __future__ import annotations

from cove.oci.data import Data

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Record(Data):
    __slots__ = ()
    #: this class's own fields in declaration order (default: its `__slots__`)
    _field_order: tuple[str, ...] = ()
    #: fields left out of equality, hashing and repr
    _hidden: tuple[str, ...] = ()
    #: the fields that equality, hashing and repr look at (filled in per subclass)
    _compared: tuple[str, ...] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()  # _fields: the inherited ones, then our own __slots__
        order = cls.__dict__.get("_field_order")
        if order is not None:
            own = cls.__dict__.get("__slots__", ())
            if sorted(order) != sorted(own):
                raise TypeError(f"{cls.__name__}: _field_order must list the __slots__")
            cls._fields = (*cls._fields[: len(cls._fields) - len(own)], *order)
        cls._compared = tuple(name for name in cls._fields if name not in cls._hidden)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._compared)

    # __hash__ is None (from Data): mutable, as a non-frozen dataclass

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._compared)
        return f"{type(self).__name__}({fields})"


class FrozenRecord(Record):
    __slots__ = ()

    def _init(self, *values: Any) -> None:
        """Set every field, in `_fields` order (for `__init__`)."""
        for name, value in zip(self._fields, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:  # type: ignore[override]  # Record's is None
        return hash(tuple(getattr(self, name) for name in self._compared))

    def __setstate__(self, state: Any) -> None:
        """Unpickling and copying: (None, {slot: value}) as object's default reduce gives."""
        slots = state[1] if isinstance(state, tuple) else state
        for name, value in (slots or {}).items():
            object.__setattr__(self, name, value)
