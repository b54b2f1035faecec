"""A recording fake of the system-call layer for unit tests (no root needed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cove.errors import SyscallFailed


@dataclass
class RecordingSyscalls:
    """Records each call as a tuple ("name", args...); never touches the kernel.

    `fail_on` maps a call name to an errno, to test error paths.
    """

    calls: list[tuple[object, ...]] = field(default_factory=list)
    fail_on: dict[str, int] = field(default_factory=dict)
    next_pid: int = 4242

    def _record(self, name: str, *args: object) -> None:
        self.calls.append((name, *args))
        if name in self.fail_on:
            raise SyscallFailed(f"{name} (fake)", self.fail_on[name], "injected failure")

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
        self._record("mount", source, target, fstype, flags, data)

    def umount2(self, target: str, flags: int = 0) -> None:
        self._record("umount2", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def setns(self, fd: int, nstype: int) -> None:
        self._record("setns", fd, nstype)

    def sethostname(self, name: str) -> None:
        self._record("sethostname", name)

    def setdomainname(self, name: str) -> None:
        self._record("setdomainname", name)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> int:
        self._record("prctl", option, arg2, arg3)
        return 0

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self._record("capset", effective, permitted, inheritable)

    def join_session_keyring(self, name: str) -> None:
        self._record("join_session_keyring", name)

    def setgroups(self, gids: list[int]) -> None:
        self._record("setgroups", list(gids))

    def mounts(self) -> list[tuple[object, ...]]:
        """Only the mount-table changes, in order."""
        return [c for c in self.calls if c[0] in ("mount", "umount2", "pivot_root")]
