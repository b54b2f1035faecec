"""A create that fails says why in one line, exits 1 and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.lib.bundle import Bundle
from tests.lib.runtimes import Runtime, leaked_cgroups


def _break_missing_executable(config: dict[str, Any]) -> None:
    config["process"]["args"] = ["/no/such/program"]


def _break_unknown_sysctl(config: dict[str, Any]) -> None:
    config["linux"]["sysctl"] = {"net.no_such_key": "1"}


def _break_rlimit_above_hard(config: dict[str, Any]) -> None:
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1 << 30, "hard": 1 << 30}]


def _break_missing_capability(config: dict[str, Any]) -> None:
    config["process"]["capabilities"]["bounding"].append("CAP_SYS_RESOURCE")


def _break_mount_through_file(config: dict[str, Any]) -> None:
    # /bin/sh is a file: a directory cannot be mounted below it.
    config["mounts"].append({"destination": "/bin/sh/sub", "type": "tmpfs", "source": "tmpfs"})


def _break_unknown_capability(config: dict[str, Any]) -> None:
    config["process"]["capabilities"]["effective"].append("CAP_FLY")


CASES = {
    "missing-executable": (_break_missing_executable, "/no/such/program"),
    "unknown-sysctl": (_break_unknown_sysctl, "net.no_such_key"),
    "rlimit-above-hard": (_break_rlimit_above_hard, "CAP_SYS_RESOURCE"),
    "missing-capability": (_break_missing_capability, "CAP_SYS_RESOURCE"),
    "mount-through-file": (_break_mount_through_file, "/bin/sh"),
    "unknown-capability": (_break_unknown_capability, "CAP_FLY"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_failed_create_is_explained_and_cleaned(
    case: str, make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    breaker, named = CASES[case]
    breaker(b.config)
    container_id = rt.new_id("fail")
    res = rt.create(b, container_id)
    assert res.returncode == 1, res.describe()
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.describe()
    assert named in lines[0], res.describe()
    assert not (rt.root / container_id).exists()
    assert leaked_cgroups(container_id) == []
    assert rt.list_json() == []
    # the id can be used again at once
    b2 = bundle("again")
    rt.create(b2, container_id).check()
    assert rt.status(container_id) == "created"


@pytest.mark.parametrize(
    ("destination", "link"),
    [
        ("/../../../tmp/cove-escape", None),
        ("/evil/inside", "../../../../../../tmp"),
    ],
    ids=["dotdot", "relative-symlink"],
)
def test_mount_destination_escaping_the_rootfs_is_refused(
    destination: str,
    link: str | None,
    make_runtime: Callable[[str], Runtime],
    bundle: Callable[..., Bundle],
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    if link is not None:
        (b.rootfs / "evil").symlink_to(link)
    b.config["mounts"].append({"destination": destination, "type": "tmpfs", "source": "tmpfs"})
    container_id = rt.new_id("escape")
    res = rt.create(b, container_id)
    assert res.returncode == 1, res.describe()
    assert "outside the container's root" in res.stderr and destination in res.stderr
    assert not Path("/tmp/cove-escape").exists()
    assert not (rt.root / container_id).exists()


def test_absolute_symlink_destination_stays_inside(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle], tmp_path: Path
) -> None:
    """An absolute link means the container's root: the mount lands inside the rootfs."""
    rt = make_runtime("cove")
    b = bundle()
    host_dir = tmp_path / "host-side"
    host_dir.mkdir()
    (b.rootfs / "abs").symlink_to(str(host_dir))
    b.config["mounts"].append({"destination": "/abs/inside", "type": "tmpfs", "source": "tmpfs"})
    b.process["args"] = ["sh", "-c", "grep -c ' /abs/inside\\| /.*/inside ' /proc/self/mounts"]
    res = rt.run(b, b.id)
    res.check()
    assert not (host_dir / "inside").exists()
    assert (b.rootfs / str(host_dir).lstrip("/") / "inside").is_dir()
