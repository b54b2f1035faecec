"""A small typed reader over decoded JSON that names the field in every error."""

from __future__ import annotations

from cove.errors import InvalidSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any


class Field:
    """A JSON value with the dotted path that leads to it, for error messages."""

    __slots__ = ("path", "value")

    def __init__(self, value: Any, path: str) -> None:
        self.value = value
        self.path = path

    def fail(self, problem: str) -> InvalidSpec:
        return InvalidSpec(f"{self.path or 'the document'}: {problem}")

    def _child_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def obj(self) -> Field:
        if not isinstance(self.value, dict):
            raise self.fail(f"expected an object, got {_kind(self.value)}")
        return self

    def get(self, key: str) -> Field | None:
        """The member `key`, or None when it is absent or JSON null."""
        value = self.obj().value.get(key)
        return None if value is None else Field(value, self._child_path(key))

    def need(self, key: str) -> Field:
        child = self.get(key)
        if child is None:
            raise InvalidSpec(f"{self._child_path(key)}: required field is missing")
        return child

    def items(self) -> Iterator[Field]:
        if not isinstance(self.value, list):
            raise self.fail(f"expected an array, got {_kind(self.value)}")
        for index, value in enumerate(self.value):
            yield Field(value, f"{self.path}[{index}]")

    def as_str(self) -> str:
        if not isinstance(self.value, str):
            raise self.fail(f"expected a string, got {_kind(self.value)}")
        return self.value

    def as_int(self) -> int:
        # bool is an int in Python but not in JSON.
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            raise self.fail(f"expected an integer, got {_kind(self.value)}")
        return self.value

    def as_bool(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail(f"expected true or false, got {_kind(self.value)}")
        return self.value

    def strs(self) -> tuple[str, ...]:
        return tuple(item.as_str() for item in self.items())

    def ints(self) -> tuple[int, ...]:
        return tuple(item.as_int() for item in self.items())

    def str_map(self) -> dict[str, str]:
        members: Mapping[str, Any] = self.obj().value
        return {key: Field(value, self._child_path(key)).as_str() for key, value in members.items()}


def opt_str(parent: Field, key: str, default: str = "") -> str:
    child = parent.get(key)
    return default if child is None else child.as_str()


def opt_int(parent: Field, key: str, default: int | None = None) -> int | None:
    child = parent.get(key)
    return default if child is None else child.as_int()


def opt_bool(parent: Field, key: str, default: bool = False) -> bool:
    child = parent.get(key)
    return default if child is None else child.as_bool()


def opt_strs(parent: Field, key: str) -> tuple[str, ...]:
    child = parent.get(key)
    return () if child is None else child.strs()


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
