"""Helpers of the rootfs tests (`test_rootfs*.py`): mountinfo samples, a fake that fails
chosen mounts, spec shorthands, and the autouse fixture that keeps the host's mount flags out
(import it into each test module).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from cove.errors import SyscallFailed
from cove.oci.default_spec import default_spec
from cove.runtime import rootfs
from cove.runtime.config import ContainerConfig
from cove.sys import constants as c
from cove.sys.fake import RecordingSyscalls

ConfigFactory = Callable[[dict[str, Any]], ContainerConfig]

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PURE_V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"

RO = c.MS_NOSUID | c.MS_NOEXEC | c.MS_NODEV | c.MS_RDONLY  # the default /sys options


@pytest.fixture(autouse=True)
def no_locked_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flags a remount must repeat depend on the host's mount of tmp_path: use none."""
    monkeypatch.setattr(rootfs, "_locked_flags", lambda path: 0)


class SelectiveFailure(RecordingSyscalls):
    """Fails the mount(2) calls a predicate picks (fail_on can only name a whole call)."""

    def __init__(self, predicate: Callable[[str, str, str], bool], err: int) -> None:
        super().__init__()
        self.predicate = predicate
        self.err = err

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
        super().mount(source, target, fstype, flags, data)
        if self.predicate(source, target, fstype):
            raise SyscallFailed(f"mount {target} (fake)", self.err, os.strerror(self.err))


def spec_with(mounts: list[dict[str, Any]], **linux: Any) -> dict[str, Any]:
    data = default_spec()
    data["mounts"] = mounts
    data["linux"].update(linux)
    return data


def mount_of(config: ContainerConfig, destination: str) -> Any:
    (entry,) = [m for m in config.mounts if m.destination == destination]
    return entry
