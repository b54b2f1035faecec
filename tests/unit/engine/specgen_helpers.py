"""Helpers of the specgen tests (`test_specgen*.py`): a fake host (`make_host`: hybrid
cgroups, nofile hard limit 20000, no CAP_SYS_RESOURCE, two CPUs, fake `stat` for devices),
a root filesystem with users (`make_rootfs`), and shorthands for generating a spec.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from cove.engine.create_options import CreateOptions
from cove.engine.host_info import UNLIMITED, HostInfo
from cove.engine.specgen import GeneratedSpec, generate_spec
from cove.errors import InvalidArgument
from cove.image.image_config import ExecutionConfig, ImageConfig
from cove.runtime.capabilities import CAPABILITY_NAMES

CID = "0123456789abcdef0123456789abcdef"
MiB = 1 << 20
ALL_BUT_SYS_RESOURCE = tuple(n for n in CAPABILITY_NAMES if n != "CAP_SYS_RESOURCE")


def _device(kind: int, major: int, minor: int, mode: int = 0o660) -> os.stat_result:
    return os.stat_result((kind | mode, 0, 0, 1, 0, 6, 0, 0, 0, 0),
                          {"st_rdev": os.makedev(major, minor)})  # fmt: skip


DEVICES = {
    "/dev/sda": _device(stat.S_IFBLK, 8, 0),
    "/dev/ttyUSB0": _device(stat.S_IFCHR, 188, 0, 0o666),
    "/dev/null": _device(stat.S_IFCHR, 1, 3, 0o666),
}


def fake_stat(path: str) -> os.stat_result:
    if path in DEVICES:
        return DEVICES[path]
    return os.stat(path)


def make_host(**changes: Any) -> HostInfo:
    host = HostInfo(
        cgroup_v2=False,
        rlimit_hard={"nofile": 20000, "nproc": 4096, "core": UNLIMITED},
        can_raise_rlimits=False,
        nr_open=1048576,
        capabilities=ALL_BUT_SYS_RESOURCE,
        cpus_online={0, 1},
        mems_online={0},
        swap_limit=True,
        kernel=(6, 1),
        machine="x86_64",
        hostname="thehost",
        stat=fake_stat,
        devices=lambda: [("/dev/sda", DEVICES["/dev/sda"]), ("/dev/null", DEVICES["/dev/null"])],
    )
    for key, value in changes.items():
        setattr(host, key, value)
    return host


IMAGE = ExecutionConfig(cmd=("/bin/sh",), env=("PATH=/usr/bin:/bin", "LANG=C.UTF-8"))


def gen(
    rootfs: Path,
    options: CreateOptions | None = None,
    image: ExecutionConfig | ImageConfig | None = IMAGE,
    host: HostInfo | None = None,
    **kw: Any,
) -> GeneratedSpec:
    return generate_spec(
        image,
        options or CreateOptions(),
        str(rootfs),
        container_id=CID,
        image_name="test:1",
        host=host or make_host(),
        **kw,
    )


def spec(rootfs: Path, options: CreateOptions | None = None, **kw: Any) -> dict[str, Any]:
    return gen(rootfs, options, **kw).spec


def mount_at(data: dict[str, Any], destination: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in data["mounts"] if m["destination"] == destination]
    assert len(found) == 1, (destination, data["mounts"])
    return found[0]


def bad(rootfs: Path, options: CreateOptions, *words: str, **kw: Any) -> str:
    with pytest.raises(InvalidArgument) as info:
        gen(rootfs, options, **kw)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


def make_rootfs(tmp_path: Path) -> Path:
    """A root filesystem with just /etc/passwd and /etc/group (users alice and bob)."""
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
        "bob:x:1001:1001::/home/bob:/bin/sh\n"
    )
    (root / "etc" / "group").write_text(
        "root:x:0:\nalice:x:1000:\nbob:x:1001:\nstaff:x:50:alice,bob\naudio:x:29:alice\n"
    )
    return root


def caps_of(rootfs: Path, options: CreateOptions, **kw: Any) -> list[str]:
    caps = spec(rootfs, options, **kw)["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"]
    result: list[str] = caps["bounding"]
    return result


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    """`make_rootfs` as a fixture (import it as `rootfs as rootfs`)."""
    return make_rootfs(tmp_path)
