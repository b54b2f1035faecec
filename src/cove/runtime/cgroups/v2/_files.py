"""Reading and writing cgroup v2 interface files, shared by the controller modules.

Writes open the file with O_WRONLY|O_TRUNC and never O_CREAT: cgroupfs refuses to create
files anyway, and a fake tree in a unit test must not grow a file the kernel would not
have. One value is one write(2), as the kernel parses each write on its own.
"""

from __future__ import annotations

import os

from cove.errors import CgroupError

# What runc reports for a "max" limit read as a number (Go's math.MaxUint64).
MAX_UINT64 = (1 << 64) - 1


def write_raw(file: str, value: str) -> None:
    """One write of `value` to an existing file (tests wrap this to record writes)."""
    fd = os.open(file, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def write(path: str, name: str, value: str, field: str) -> None:
    """Write `value` to `path/name`; a refusal raises CgroupError naming the spec field."""
    file = os.path.join(path, name)
    try:
        write_raw(file, value)
    except FileNotFoundError:
        raise CgroupError(
            f"{field}: cannot set {value}: {file} does not exist (controller not enabled "
            "or not supported by this kernel)"
        ) from None
    except OSError as exc:
        raise CgroupError(f"{field}: cannot set {value} in {file}: {exc.strerror}") from None


def read(path: str, name: str) -> str | None:
    """The file's content, or None when the file does not exist."""
    try:
        with open(os.path.join(path, name)) as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise CgroupError(f"cannot read {os.path.join(path, name)}: {exc.strerror}") from None


def exists(path: str, name: str) -> bool:
    return os.path.exists(os.path.join(path, name))


def number(text: str) -> int:
    """A single-value file's number; "max" reads as MAX_UINT64, as runc reports it."""
    text = text.strip()
    return MAX_UINT64 if text == "max" else int(text)


def read_number(path: str, name: str) -> int | None:
    text = read(path, name)
    return None if text is None or not text.strip() else number(text)


def flat_keyed(text: str) -> dict[str, int]:
    """A flat-keyed file ("key value" lines: cpu.stat, memory.stat, memory.events)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        value = value.strip()
        if key and value:
            try:
                values[key] = number(value)
            except ValueError:
                continue
    return values


def read_flat_keyed(path: str, name: str) -> dict[str, int] | None:
    text = read(path, name)
    return None if text is None else flat_keyed(text)


def nested_keyed(text: str) -> dict[str, dict[str, int]]:
    """A nested-keyed file ("8:0 rbytes=1 wbytes=2" lines: io.stat)."""
    values: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        key, *pairs = fields
        entry = values.setdefault(key, {})
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if sep:
                try:
                    entry[name] = number(value)
                except ValueError:
                    continue
    return values
