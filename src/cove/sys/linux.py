"""The real system calls, into libc (see cove.sys.libc for how)."""

from __future__ import annotations

import os
import struct

from cove.errors import SyscallFailed
from cove.sys.libc import Long, call, errno

_X86_64 = os.uname().machine == "x86_64"
_SYS_PIVOT_ROOT = 155 if _X86_64 else 41
_SYS_KEYCTL = 250 if _X86_64 else 219
_KEYCTL_JOIN_SESSION_KEYRING = 1


def _fail(what: str) -> SyscallFailed:
    number = errno()
    return SyscallFailed(what, number, os.strerror(number))


def _cstr(value: str) -> bytes:
    return os.fsencode(value)


class LinuxSyscalls:
    """Calls libc for each operation; raises SyscallFailed on -1."""

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
        if call(
            "mount",
            _cstr(source) if source else None,
            _cstr(target),
            _cstr(fstype) if fstype else None,
            Long(flags),
            _cstr(data) if data else None,
        ):
            raise _fail(f"mount {source or fstype!r} on {target!r}")

    def umount2(self, target: str, flags: int = 0) -> None:
        if call("umount2", _cstr(target), flags):
            raise _fail(f"umount {target!r}")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        # syscall() is variadic: pass every integer as a long.
        if call("syscall", Long(_SYS_PIVOT_ROOT), _cstr(new_root), _cstr(put_old)):
            raise _fail(f"pivot_root to {new_root!r}")

    def unshare(self, flags: int) -> None:
        if call("unshare", flags):
            raise _fail(f"unshare({flags:#x})")

    def setns(self, fd: int, nstype: int) -> None:
        if call("setns", fd, nstype):
            raise _fail(f"setns({nstype:#x})")

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        if call("sethostname", raw, Long(len(raw))):
            raise _fail(f"sethostname {name!r}")

    def setdomainname(self, name: str) -> None:
        raw = name.encode()
        if call("setdomainname", raw, Long(len(raw))):
            raise _fail(f"setdomainname {name!r}")

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> int:
        # prctl() is variadic with unsigned long arguments.
        result = call("prctl", option, Long(arg2), Long(arg3), Long(0), Long(0))
        if result < 0:
            raise _fail(f"prctl({option})")
        return result

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        # _LINUX_CAPABILITY_VERSION_3, two 32-bit words per set. The kernel writes to the
        # header only when the version is wrong, which it is not: read-only bytes are fine.
        header = struct.pack("=Ii", 0x20080522, 0)
        low, high = 0xFFFFFFFF, 32
        data = struct.pack(
            "=6I",
            effective & low, permitted & low, inheritable & low,
            effective >> high, permitted >> high, inheritable >> high,
        )  # fmt: skip
        if call("capset", header, data):
            raise _fail("capset")

    def join_session_keyring(self, name: str) -> None:
        if call("syscall", Long(_SYS_KEYCTL), Long(_KEYCTL_JOIN_SESSION_KEYRING), _cstr(name)) < 0:
            raise _fail(f"keyctl(join session keyring {name!r})")

    def setgroups(self, gids: list[int]) -> None:
        array = struct.pack(f"={len(gids)}I", *gids)
        if call("setgroups", Long(len(gids)), array if gids else None):
            raise _fail(f"setgroups {gids}")
