"""The system-call layer: the calls Python's os module lacks, behind one interface.

`Syscalls` is the interface. `LinuxSyscalls` (cove.sys.linux) calls libc through ctypes;
`RecordingSyscalls` (cove.sys.fake) records every call so unit tests can check the exact
sequence without root. Every failure raises `cove.errors.SyscallFailed` naming the call
and its arguments.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Syscalls(Protocol):
        def mount(
            self, source: str, target: str, fstype: str, flags: int, data: str = ""
        ) -> None: ...

        def umount2(self, target: str, flags: int = 0) -> None: ...

        def pivot_root(self, new_root: str, put_old: str) -> None: ...

        def unshare(self, flags: int) -> None: ...

        def setns(self, fd: int, nstype: int) -> None: ...

        def sethostname(self, name: str) -> None: ...

        def setdomainname(self, name: str) -> None: ...

        def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> int: ...

        def setgroups(self, gids: list[int]) -> None: ...

        def capset(self, effective: int, permitted: int, inheritable: int) -> None: ...

        def join_session_keyring(self, name: str) -> None: ...
