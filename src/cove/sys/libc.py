"""Calling libc functions through `_ctypes`, the C core of `ctypes`, without `ctypes`.

`import ctypes` costs ~2 ms (its Python layer builds dozens of types); every runtime
command pays it. The runtime only calls a dozen libc functions that take C ints, longs and
pointers to bytes, so this module defines just what that needs: a function-pointer type
that records errno, and `c_long` for arguments and results.

Arguments: Python ints are passed as C int; use `Long(value)` for long/unsigned long and
size_t; bytes are passed as `const char *` (the callee must not write to them); None is
NULL.
"""

from __future__ import annotations

import _ctypes
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    _SimpleInt = _ctypes._SimpleCData[int]  # generic only in the stubs
else:
    _SimpleInt = _ctypes._SimpleCData


class Long(_SimpleInt):
    _type_ = "l"


class _Char(_ctypes._SimpleCData):  # type: ignore[type-arg]
    _type_ = "c"


class _Function(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = Long


class _Library:
    """The running program's global symbols (libc), as ctypes.CDLL(None) gives them."""

    def __init__(self) -> None:
        # dlopen(NULL): the running program; its stub wants a name.
        self._handle = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]
        self._functions: dict[str, Any] = {}

    def function(self, name: str) -> Any:
        found = self._functions.get(name)
        if found is None:
            # CFuncPtr((name, library)) resolves the symbol in library._handle.
            found = self._functions[name] = _Function((name, self))  # type: ignore[arg-type]
        return found


_LIBRARY = _Library()


def call(name: str, *args: Any) -> int:
    """Call libc's `name`; returns its result as a Python int (errno is kept)."""
    result: int = _LIBRARY.function(name)(*args)
    return result


def errno() -> int:
    """errno as the last call() left it."""
    value: int = _ctypes.get_errno()
    return value


def pin(data: bytes) -> tuple[object, int]:
    """A C copy of `data` and its address, for structures that hold a pointer; keep the
    first value alive while the address is in use."""
    array_type: Any = type("CharArray", (_ctypes.Array,), {"_type_": _Char, "_length_": len(data)})
    array = array_type.from_buffer_copy(data)
    address: int = _ctypes.addressof(array)
    return array, address
