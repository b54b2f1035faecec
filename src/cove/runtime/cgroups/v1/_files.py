"""Reading and writing cgroup v1 control files, shared by the controller modules.

Every value goes to the kernel in one write(2) on a fresh descriptor, the way the kernel's
cgroup files expect it (a rule file such as devices.allow takes one rule per write).
Failures become CgroupError naming the spec field, the value and the cgroup directory.
Reading is lenient: a file the kernel does not provide reads as missing (None, 0, {}),
since controllers' optional files come and go between kernel versions.
"""

from __future__ import annotations

import errno
import os

from cove.errors import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


def exists(path: str, name: str) -> bool:
    return os.path.exists(os.path.join(path, name))


def write_raw(path: str, name: str, value: str) -> None:
    """Write `value` to path/name in one write(2); OSError passes through."""
    fd = os.open(os.path.join(path, name), os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def failure(field: str, value: object, path: str, exc: OSError, hint: str = "") -> CgroupError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOENT:
        reason = f"{reason} (no {os.path.basename(exc.filename or '') or 'such file'})"
    return CgroupError(f"{field}: cannot set {value} in {path}: {reason}{hint}")


def unsupported(field: str, name: str, path: str) -> CgroupError:
    return CgroupError(f"{field}: not supported by this kernel (no {name} in {path})")


def write(path: str, name: str, value: object, field: str) -> None:
    """Write `value` (formatted with str) to path/name; CgroupError names `field`."""
    try:
        write_raw(path, name, str(value))
    except OSError as exc:
        raise failure(field, value, path, exc) from None


def write_settling(
    path: str,
    steps: Iterable[tuple[str, object, str]],
    explain: Callable[[str, OSError], str] | None = None,
) -> None:
    """Write (file, value, field) steps whose kernel checks depend on each other.

    Some pairs must be written in an order that depends on the current values (memory
    below memory+swap, cfs quota against period and burst). Each step that the kernel
    refuses with EINVAL is retried after the others went in; when a round makes no
    progress, the first refusal is raised. `explain(file, error)` may add a hint to the
    message of the step that failed.
    """
    pending = list(steps)
    while pending:
        refused: list[tuple[tuple[str, object, str], OSError]] = []
        for step in pending:
            name, value, field = step
            try:
                write_raw(path, name, str(value))
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    hint = explain(name, exc) if explain else ""
                    raise failure(field, value, path, exc, hint) from None
                refused.append((step, exc))
        if not refused:
            return
        if len(refused) == len(pending):
            (name, value, field), first = refused[0]
            hint = explain(name, first) if explain else ""
            raise failure(field, value, path, first, hint) from None
        pending = [step for step, _ in refused]


def read(path: str, name: str) -> str | None:
    """The file's text, or None when the kernel does not provide it."""
    try:
        with open(os.path.join(path, name)) as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CgroupError(
            f"cannot read {os.path.join(path, name)}: {exc.strerror or exc}"
        ) from None


def read_int(path: str, name: str, default: int = 0) -> int:
    text = read(path, name)
    if text is None or not text.strip():
        return default
    return parse_int(text.strip(), path, name)


def read_ints(path: str, name: str) -> list[int]:
    """A whitespace-separated list of numbers (cpuacct.usage_percpu)."""
    text = read(path, name)
    return [] if text is None else [parse_int(word, path, name) for word in text.split()]


def read_keyed(path: str, name: str) -> dict[str, int]:
    """A flat keyed file: one "key value" pair per line (memory.stat, cpu.stat)."""
    text = read(path, name)
    result: dict[str, int] = {}
    if text is None:
        return result
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key and value.strip():
            result[key] = parse_int(value.strip(), path, name)
    return result


def parse_int(text: str, path: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CgroupError(
            f"cannot read {os.path.join(path, name)}: expected a number, got {text!r}"
        ) from None


def parse_list(text: str) -> list[int]:
    """A kernel list such as "0-3,8,10-11" as numbers."""
    result: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        result.extend(range(int(low), int(high or low) + 1))
    return result
