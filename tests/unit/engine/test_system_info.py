"""The /info document (`cove info`, GET /info): the engine's id, the backing file system,
the cgroup features, and the document's shape on an empty root."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from cove.engine.host_info import HostInfo
from cove.engine.system_info import (
    backing_filesystem,
    cgroup_features,
    engine_id,
    system_info,
)


def test_backing_filesystem_is_the_longest_mount_prefix(tmp_path: Path) -> None:
    spaced = tmp_path / "with space"
    (spaced / "deeper").mkdir(parents=True)
    (tmp_path / "cove").mkdir()
    escaped = str(spaced).replace(" ", "\\040")
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        f"30 22 0:26 / {tmp_path} rw,nosuid shared:2 - tmpfs tmpfs rw\n"
        f"31 30 0:27 / {escaped} rw shared:3 - xfs /dev/vdb rw\n"
        f"40 22 0:30 / {tmp_path / 'cove'} rw shared:4 - btrfs /dev/vdc rw\n"
    )
    assert backing_filesystem("/", str(info)) == "extfs"  # Docker's name for ext2/3/4
    assert backing_filesystem(str(tmp_path), str(info)) == "tmpfs"
    assert backing_filesystem(str(spaced / "deeper"), str(info)) == "xfs"
    assert backing_filesystem(str(spaced / "not" / "made"), str(info)) == "xfs"  # yet to be
    assert backing_filesystem(f"{tmp_path}x", str(info)) == "extfs"  # not under tmp_path
    assert backing_filesystem(str(tmp_path / "cove" / "images"), str(info)) == "btrfs"
    assert backing_filesystem("/", str(tmp_path / "missing")) == "unknown"


def test_engine_id_is_made_once_and_kept(tmp_path: Path) -> None:
    root = tmp_path / "root"
    found: list[str] = []
    threads = [threading.Thread(target=lambda: found.append(engine_id(str(root))))
               for _ in range(8)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1  # racing first callers agree
    assert engine_id(str(root)) == found[0] == (root / "engine-id").read_text().strip()
    assert sorted(p.name for p in root.iterdir()) == ["engine-id"]  # no temporary left


def test_cgroup_features_v1(tmp_path: Path) -> None:
    for path in ("memory/memory.limit_in_bytes", "memory/memory.oom_control",
                 "cpu/cpu.cfs_period_us", "cpu/cpu.cfs_quota_us", "cpu/cpu.shares",
                 "pids/cgroup.procs"):  # fmt: skip
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text("")
    features = cgroup_features(HostInfo(cgroup_v2=False, swap_limit=False), str(tmp_path))
    assert features["MemoryLimit"] and features["CpuCfsQuota"] and features["CPUShares"]
    assert features["PidsLimit"] and features["OomKillDisable"]
    assert not features["CPUSet"] and not features["SwapLimit"]
    assert not features["KernelMemoryTCP"]


def test_cgroup_features_v2(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    features = cgroup_features(HostInfo(cgroup_v2=True, swap_limit=True), str(tmp_path))
    assert all(features[k] for k in ("MemoryLimit", "SwapLimit", "CpuCfsPeriod", "CPUShares",
                                     "CPUSet", "PidsLimit"))  # fmt: skip
    (tmp_path / "cgroup.controllers").write_text("io\n")
    features = cgroup_features(HostInfo(cgroup_v2=True, swap_limit=False), str(tmp_path))
    assert not any(features.values())


def test_system_info_of_an_empty_root(tmp_path: Path) -> None:
    info = system_info(str(tmp_path / "root"), event_listeners=2)
    json.dumps(info)  # plain JSON
    assert (info["Containers"], info["ContainersRunning"], info["Images"]) == (0, 0, 0)
    assert info["NEventsListener"] == 2
    assert info["Driver"] in ("overlay2", "vfs") and info["DriverStatus"][0][0] == (
        "Backing Filesystem")  # fmt: skip
    assert info["DockerRootDir"] == str(tmp_path / "root")
    assert info["ID"] == engine_id(str(tmp_path / "root"))
    for key in ("MemoryLimit", "SwapLimit", "IPv4Forwarding", "LiveRestoreEnabled"):
        assert isinstance(info[key], bool)
    assert isinstance(info["Labels"], list) and isinstance(info["Warnings"], list)
    assert all(isinstance(v["path"], str) for v in info["Runtimes"].values())
