"""The real system calls, through ctypes into libc."""

from __future__ import annotations

import ctypes
import os

from cove.errors import SyscallFailed

_libc = ctypes.CDLL(None, use_errno=True)
_X86_64 = os.uname().machine == "x86_64"
_SYS_PIVOT_ROOT = 155 if _X86_64 else 41
_SYS_KEYCTL = 250 if _X86_64 else 219
_KEYCTL_JOIN_SESSION_KEYRING = 1


def _fail(what: str) -> SyscallFailed:
    errno = ctypes.get_errno()
    return SyscallFailed(what, errno, os.strerror(errno))


def _cstr(value: str) -> bytes:
    return os.fsencode(value)


class LinuxSyscalls:
    """Calls libc for each operation; raises SyscallFailed on -1."""

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
        if (
            _libc.mount(
                _cstr(source) if source else None,
                _cstr(target),
                _cstr(fstype) if fstype else None,
                ctypes.c_ulong(flags),
                _cstr(data) if data else None,
            )
            != 0
        ):
            raise _fail(f"mount {source or fstype!r} on {target!r}")

    def umount2(self, target: str, flags: int = 0) -> None:
        if _libc.umount2(_cstr(target), flags) != 0:
            raise _fail(f"umount {target!r}")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        if _libc.syscall(_SYS_PIVOT_ROOT, _cstr(new_root), _cstr(put_old)) != 0:
            raise _fail(f"pivot_root to {new_root!r}")

    def unshare(self, flags: int) -> None:
        if _libc.unshare(flags) != 0:
            raise _fail(f"unshare({flags:#x})")

    def setns(self, fd: int, nstype: int) -> None:
        if _libc.setns(fd, nstype) != 0:
            raise _fail(f"setns({nstype:#x})")

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        if _libc.sethostname(raw, len(raw)) != 0:
            raise _fail(f"sethostname {name!r}")

    def setdomainname(self, name: str) -> None:
        raw = name.encode()
        if _libc.setdomainname(raw, len(raw)) != 0:
            raise _fail(f"setdomainname {name!r}")

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> int:
        result: int = _libc.prctl(
            option,
            ctypes.c_ulong(arg2),
            ctypes.c_ulong(arg3),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        )
        if result < 0:
            raise _fail(f"prctl({option})")
        return result

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        # _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set.
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)(
            effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF,
            effective >> 32, permitted >> 32, inheritable >> 32,
        )  # fmt: skip
        if _libc.capset(header, data) != 0:
            raise _fail("capset")

    def join_session_keyring(self, name: str) -> None:
        if _libc.syscall(_SYS_KEYCTL, _KEYCTL_JOIN_SESSION_KEYRING, _cstr(name)) < 0:
            raise _fail(f"keyctl(join session keyring {name!r})")

    def setgroups(self, gids: list[int]) -> None:
        array = (ctypes.c_uint * len(gids))(*gids)
        if _libc.setgroups(ctypes.c_size_t(len(gids)), array) != 0:
            raise _fail(f"setgroups {gids}")
