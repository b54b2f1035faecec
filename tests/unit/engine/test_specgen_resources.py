"""specgen: resources (memory, CPUs, pids, block I/O, devices, rlimits, sysctls) and the
network namespace in the OCI spec.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.engine.create_options import CreateOptions
from cove.engine.host_info import UNLIMITED
from tests.unit.engine.specgen_helpers import MiB, bad, gen, make_host, spec
from tests.unit.engine.specgen_helpers import rootfs as rootfs

# --- resources ---------------------------------------------------------------------------


def test_memory(rootfs: Path) -> None:
    memory = spec(rootfs, CreateOptions(memory="512m"))["linux"]["resources"]["memory"]
    assert memory == {"limit": 512 * MiB, "swap": 1024 * MiB}  # Docker: swap = 2 x memory
    options = CreateOptions(memory="1g", memory_swap="1.5g", memory_reservation="256m",
                            oom_kill_disable=True)  # fmt: skip
    memory = spec(rootfs, options)["linux"]["resources"]["memory"]
    assert memory == {"limit": 1 << 30, "swap": 3 << 29, "reservation": 256 * MiB,
                      "disableOOMKiller": True}  # fmt: skip
    memory = spec(rootfs, CreateOptions(memory=64 * MiB, memory_swap="-1"))
    assert memory["linux"]["resources"]["memory"]["swap"] == -1


def test_memory_without_swap_accounting(rootfs: Path) -> None:
    host = make_host(swap_limit=False)
    result = gen(rootfs, CreateOptions(memory="64m", memory_swap="128m"), host=host)
    assert result.spec["linux"]["resources"]["memory"] == {"limit": 64 * MiB}
    assert any("swap" in w for w in result.warnings)


@pytest.mark.parametrize(
    "options, words",
    [
        (CreateOptions(memory="5x"), ("--memory", "'5x'")),
        (CreateOptions(memory="4m"), ("--memory", "6MB")),
        (CreateOptions(memory_swap="1g"), ("--memory-swap", "--memory")),
        (CreateOptions(memory="1g", memory_swap="512m"), ("--memory-swap", "'512m'")),
        (CreateOptions(memory="64m", memory_reservation="128m"), ("--memory-reservation",)),
        (CreateOptions(memory_reservation="1k"), ("--memory-reservation", "6MB")),
        (CreateOptions(cpus="-1"), ("--cpus", "'-1'")),
        (CreateOptions(cpus="lots"), ("--cpus", "'lots'")),
        (CreateOptions(cpus="3"), ("--cpus", "2 CPUs")),
        (CreateOptions(cpus="0.001"), ("--cpus",)),
        (CreateOptions(cpus="1", cpu_quota=50000), ("--cpus", "--cpu-quota")),
        (CreateOptions(cpu_period=10), ("--cpu-period", "'10'")),
        (CreateOptions(cpu_quota=10), ("--cpu-quota", "'10'")),
        (CreateOptions(cpu_shares=-5), ("--cpu-shares",)),
        (CreateOptions(cpuset_cpus="0-3"), ("--cpuset-cpus", "'0-3'", "not available")),
        (CreateOptions(cpuset_cpus="a"), ("--cpuset-cpus", "'a'")),
        (CreateOptions(cpuset_mems="1"), ("--cpuset-mems", "'1'")),
        (CreateOptions(blkio_weight=5), ("--blkio-weight", "'5'")),
        (CreateOptions(device_read_bps=["/dev/sda"]), ("--device-read-bps",)),
        (CreateOptions(device_read_bps=["/dev/nope:1mb"]), ("--device-read-bps", "/dev/nope")),
        (CreateOptions(device_write_bps=["/dev/null:1mb"]), ("--device-write-bps", "block")),
        (
            CreateOptions(device_read_iops=["/dev/sda:fast"]),
            ("--device-read-iops", "'/dev/sda:fast'"),
        ),
        (CreateOptions(ulimits=["bogus=1"]), ("--ulimit", "'bogus=1'", "unknown")),
        (CreateOptions(ulimits=["nofile=10:5"]), ("--ulimit", "soft")),
        (CreateOptions(ulimits=["nofile"]), ("--ulimit",)),
        (CreateOptions(ulimits=["nproc=x"]), ("--ulimit", "'x'")),
        (CreateOptions(sysctls={"vm.swappiness": "1"}), ("--sysctl", "vm.swappiness")),
        (CreateOptions(sysctls={"kernel.hostname": "x"}), ("--sysctl", "--hostname")),
        (CreateOptions(network="host", sysctls={"net.ipv4.ip_forward": "1"}), ("--sysctl", "host")),
        (CreateOptions(network="no such/name"), ("--network", "'no such/name'")),
        (CreateOptions(devices=["/dev/nope"]), ("--device", "/dev/nope")),
        (CreateOptions(devices=["/dev/null:/x:rwz"]), ("--device", "permissions")),
        (CreateOptions(devices=["dev/null"]), ("--device", "absolute")),
    ],
)
def test_bad_values(rootfs: Path, options: CreateOptions, words: tuple[str, ...]) -> None:
    bad(rootfs, options, *words)


def test_cpus(rootfs: Path) -> None:
    cpu = spec(rootfs, CreateOptions(cpus="1.5"))["linux"]["resources"]["cpu"]
    assert cpu == {"quota": 150000, "period": 100000}
    options = CreateOptions(cpu_shares=512, cpu_quota=20000, cpu_period=50000,
                            cpuset_cpus="0-1", cpuset_mems="0")  # fmt: skip
    cpu = spec(rootfs, options)["linux"]["resources"]["cpu"]
    assert cpu == {"shares": 512, "quota": 20000, "period": 50000, "cpus": "0-1", "mems": "0"}
    assert "cpu" not in spec(rootfs, CreateOptions(cpus="0"))["linux"]["resources"]


def test_cpu_shares_clamped_with_a_warning(rootfs: Path) -> None:
    result = gen(rootfs, CreateOptions(cpu_shares=1))
    assert result.spec["linux"]["resources"]["cpu"]["shares"] == 2
    assert any("--cpu-shares" in w for w in result.warnings)


def test_pids_limit(rootfs: Path) -> None:
    assert spec(rootfs, CreateOptions(pids_limit=100))["linux"]["resources"]["pids"] == {
        "limit": 100
    }
    assert spec(rootfs, CreateOptions(pids_limit=-1))["linux"]["resources"]["pids"] == {"limit": -1}
    assert "pids" not in spec(rootfs, CreateOptions(pids_limit=0))["linux"]["resources"]


def test_block_io(rootfs: Path) -> None:
    options = CreateOptions(blkio_weight=300, device_read_bps=["/dev/sda:1mb"],
                            device_write_bps=["/dev/sda:2m"], device_read_iops=["/dev/sda:100"],
                            device_write_iops=["/dev/sda:200"])  # fmt: skip
    block_io = spec(rootfs, options)["linux"]["resources"]["blockIO"]
    assert block_io == {
        "weight": 300,
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": MiB}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2 * MiB}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 200}],
    }


def test_devices(rootfs: Path) -> None:
    data = spec(rootfs, CreateOptions(devices=["/dev/ttyUSB0", "/dev/sda:/dev/xvda:r",
                                               "/dev/null:rw"]))  # fmt: skip
    nodes = data["linux"]["devices"]
    assert nodes[0] == {"path": "/dev/ttyUSB0", "type": "c", "major": 188, "minor": 0,
                        "fileMode": 0o666, "uid": 0, "gid": 6}  # fmt: skip
    assert nodes[1]["path"] == "/dev/xvda" and nodes[1]["type"] == "b"
    assert nodes[2]["path"] == "/dev/null"
    rules = data["linux"]["resources"]["devices"]
    assert {"allow": True, "type": "c", "major": 188, "minor": 0, "access": "rwm"} in rules
    assert {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"} in rules
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"} in rules


def test_rlimits_default_nofile_clamped(rootfs: Path) -> None:
    result = gen(rootfs)
    assert result.spec["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000}
    ]
    assert result.warnings == []  # a default is clamped without a word


def test_rlimits_explicit_ulimit_clamped_with_a_warning(rootfs: Path) -> None:
    result = gen(rootfs, CreateOptions(ulimits=["nofile=100000"]))
    assert {"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000} in result.spec["process"][
        "rlimits"
    ]
    assert len(result.warnings) == 1
    assert "--ulimit" in result.warnings[0] and "CAP_SYS_RESOURCE" in result.warnings[0]


def test_rlimits_not_clamped_with_cap_sys_resource(rootfs: Path) -> None:
    result = gen(rootfs, host=make_host(can_raise_rlimits=True))
    assert result.spec["process"]["rlimits"][0]["hard"] == 1048576
    assert result.warnings == []


def test_ulimits(rootfs: Path) -> None:
    options = CreateOptions(ulimits=["nofile=1024:4096", "nproc=100000", "core=-1", "LOCKS=5"])
    result = gen(rootfs, options)
    limits = {r["type"]: (r["soft"], r["hard"]) for r in result.spec["process"]["rlimits"]}
    assert limits["RLIMIT_NOFILE"] == (1024, 4096)
    assert limits["RLIMIT_NPROC"] == (4096, 4096)  # clamped to the host's hard 4096
    assert limits["RLIMIT_CORE"] == (UNLIMITED, UNLIMITED)  # the host allows unlimited
    assert limits["RLIMIT_LOCKS"] == (5, 5)
    assert [w for w in result.warnings if "nproc" in w]
    assert not [w for w in result.warnings if "nofile" in w]


def test_sysctls(rootfs: Path) -> None:
    options = CreateOptions(sysctls={"kernel.shmmax": "1000", "fs.mqueue.msg_max": "20",
                                     "net.ipv4.ip_unprivileged_port_start": "1024",
                                     "kernel.domainname": "example"})  # fmt: skip
    sysctls = spec(rootfs, options)["linux"]["sysctl"]
    assert sysctls["kernel.shmmax"] == "1000"
    assert sysctls["fs.mqueue.msg_max"] == "20"
    assert sysctls["net.ipv4.ip_unprivileged_port_start"] == "1024"
    assert sysctls["net.ipv4.ping_group_range"] == "0 2147483647"


def test_network_host(rootfs: Path) -> None:
    data = spec(rootfs, CreateOptions(network="host"))
    assert {"type": "network"} not in data["linux"]["namespaces"]
    assert data["hostname"] == "thehost"
    assert "sysctl" not in data["linux"]


def test_network_none(rootfs: Path) -> None:
    assert {"type": "network"} in spec(rootfs, CreateOptions(network="none"))["linux"]["namespaces"]
