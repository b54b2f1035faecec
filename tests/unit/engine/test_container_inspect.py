"""cove.engine.container_inspect: `docker inspect` JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from cove.engine.container_inspect import inspect_container
from cove.engine.container_inspect_values import ZERO_TIME
from cove.engine.create_options import CreateOptions, MountOption
from cove.engine.state_records import ContainerRecord

CID = "ab" * 32
IMAGE_ID = "sha256:" + "cd" * 32
STARTED = "2026-11-29T03:42:06.123456789Z"
FINISHED = "2026-11-29T04:00:00Z"
LOG = f"/var/lib/cove/containers/{CID}/{CID}-json.log"


def options_dict(**kw: Any) -> dict[str, Any]:
    """record.config as the engine stores it: asdict(CreateOptions) through JSON."""
    loaded: dict[str, Any] = json.loads(json.dumps(asdict(CreateOptions(**kw))))
    return loaded


def make(
    status: str = "created", config: dict[str, Any] | None = None, **kw: Any
) -> ContainerRecord:
    return ContainerRecord(
        id=CID,
        name="web",
        image_id=IMAGE_ID,
        image_name="busybox:latest",
        created="2026-11-29T03:40:00.000000001Z",
        status=status,
        config=config if config is not None else options_dict(cmd=["echo", "hi"]),
        **kw,
    )


def inspect(record: ContainerRecord, **kw: Any) -> dict[str, Any]:
    kw.setdefault("spec", None)
    kw.setdefault("log_path", LOG)
    result = inspect_container(record, **kw)
    json.dumps(result)  # it is JSON as it is
    return result


# --- State and the top level -----------------------------------------------------------------


def test_created_container() -> None:
    info = inspect(make())
    assert info["Id"] == CID
    assert info["Name"] == "/web"
    assert info["Created"] == "2026-11-29T03:40:00.000000001Z"
    assert info["Image"] == IMAGE_ID
    assert info["Path"] == "echo"
    assert info["Args"] == ["hi"]
    assert info["LogPath"] == LOG
    assert info["ResolvConfPath"] == f"/var/lib/cove/containers/{CID}/resolv.conf"
    assert info["HostsPath"] == f"/var/lib/cove/containers/{CID}/hosts"
    assert info["HostnamePath"] == f"/var/lib/cove/containers/{CID}/hostname"
    assert info["Driver"] == "overlay" and info["Platform"] == "linux"
    assert info["ExecIDs"] is None
    assert info["RestartCount"] == 0
    assert info["State"] == {
        "Status": "created",
        "Running": False,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 0,
        "ExitCode": 0,
        "Error": "",
        "StartedAt": ZERO_TIME,
        "FinishedAt": ZERO_TIME,
    }
    assert ZERO_TIME == "0001-01-01T00:00:00Z"


def test_running_container() -> None:
    state = inspect(make("running", pid=4242, started_at=STARTED))["State"]
    assert state["Status"] == "running"
    assert state["Running"] is True and state["Paused"] is False
    assert state["Pid"] == 4242
    assert state["StartedAt"] == STARTED
    assert state["FinishedAt"] == ZERO_TIME


def test_paused_container_is_running_too() -> None:
    state = inspect(make("paused", pid=7, started_at=STARTED))["State"]
    assert (state["Status"], state["Running"], state["Paused"], state["Pid"]) == (
        "paused",
        True,
        True,
        7,
    )


def test_exited_container() -> None:
    record = make(
        "exited", pid=99, exit_code=137, oom_killed=True, started_at=STARTED, finished_at=FINISHED
    )
    state = inspect(record, extra={"error": "killed"})["State"]
    assert state["Running"] is False
    assert state["Pid"] == 0  # a stale pid is not shown
    assert state["ExitCode"] == 137
    assert state["OOMKilled"] is True
    assert state["Error"] == "killed"
    assert state["FinishedAt"] == FINISHED


def test_dead_container() -> None:
    state = inspect(make("dead"))["State"]
    assert state["Dead"] is True and state["Running"] is False


def test_bare_image_id_gets_its_algorithm() -> None:
    record = ContainerRecord(id=CID, name="x", image_id="cd" * 32, image_name="busybox")
    assert inspect(record)["Image"] == IMAGE_ID


# --- HostConfig ------------------------------------------------------------------------------


def test_host_config_resources() -> None:
    config = options_dict(
        memory="512m",
        memory_reservation="256m",
        cpus="1.5",
        cpu_shares=512,
        cpu_quota=50000,
        cpu_period=100000,
        cpuset_cpus="0-1",
        pids_limit=100,
        blkio_weight=300,
        oom_kill_disable=True,
        shm_size="128m",
    )
    host = inspect(make(config=config))["HostConfig"]
    assert host["Memory"] == 536870912
    assert host["MemorySwap"] == 2 * 536870912  # the daemon's default when only -m is given
    assert host["MemoryReservation"] == 268435456
    assert host["NanoCpus"] == 1500000000
    assert host["CpuShares"] == 512
    assert host["CpuQuota"] == 50000
    assert host["CpuPeriod"] == 100000
    assert host["CpusetCpus"] == "0-1"
    assert host["CpusetMems"] == ""
    assert host["PidsLimit"] == 100
    assert host["BlkioWeight"] == 300
    assert host["OomKillDisable"] is True
    assert host["ShmSize"] == 128 * 1024 * 1024


def test_host_config_defaults() -> None:
    host = inspect(make())["HostConfig"]
    assert host["Memory"] == 0 and host["MemorySwap"] == 0 and host["NanoCpus"] == 0
    assert host["ShmSize"] == 64 * 1024 * 1024
    assert host["PidsLimit"] is None
    assert host["Ulimits"] is None
    assert host["CapAdd"] is None and host["CapDrop"] is None
    assert host["SecurityOpt"] is None
    assert host["Binds"] is None
    assert host["Devices"] == []
    assert host["BlkioDeviceReadBps"] == []
    assert host["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert host["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert host["NetworkMode"] == "bridge"  # docker's default
    assert host["PortBindings"] == {}
    assert host["AutoRemove"] is False
    assert host["Runtime"] == "cove"
    assert host["Privileged"] is False and host["ReadonlyRootfs"] is False
    assert host["Init"] is False
    assert host["Tmpfs"] == {} and host["Sysctls"] == {}
    assert "Mounts" not in host


def test_memory_swap_given_or_unlimited() -> None:
    host = inspect(make(config=options_dict(memory="1g", memory_swap="-1")))["HostConfig"]
    assert (host["Memory"], host["MemorySwap"]) == (1 << 30, -1)
    host = inspect(make(config=options_dict(memory="1g", memory_swap="3g")))["HostConfig"]
    assert host["MemorySwap"] == 3 << 30


def test_invalid_stored_values_become_zero() -> None:
    config = options_dict(memory="lots", cpus="many", cpu_shares=None)
    config["cpu_quota"] = "x"
    host = inspect(make(config=config))["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["CpuShares"], host["CpuQuota"]) == (0, 0, 0, 0)


def test_host_config_lists() -> None:
    config = options_dict(
        cap_add=["NET_ADMIN"],
        cap_drop=["MKNOD"],
        security_opt=["no-new-privileges"],
        ulimits=["nofile=1024:2048", "core=unlimited"],
        device_read_bps=["/dev/sda:1mb"],
        device_write_iops=["/dev/sdb:100"],
        devices=["/dev/fuse", "/dev/sda:/dev/xvda:r", "/dev/null:rw"],
        sysctls={"net.core.somaxconn": "1024"},
        tmpfs=["/run:size=64m,noexec", "/tmp"],
        privileged=True,
        read_only=True,
        init=True,
        network="host",
    )
    host = inspect(make(config=config, runtime="runc"))["HostConfig"]
    assert host["CapAdd"] == ["NET_ADMIN"] and host["CapDrop"] == ["MKNOD"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Ulimits"] == [
        {"Name": "nofile", "Soft": 1024, "Hard": 2048},
        {"Name": "core", "Soft": -1, "Hard": -1},
    ]
    assert host["BlkioDeviceReadBps"] == [{"Path": "/dev/sda", "Rate": 1048576}]
    assert host["BlkioDeviceWriteIOps"] == [{"Path": "/dev/sdb", "Rate": 100}]
    assert host["Devices"] == [
        {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"},
        {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "r"},
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/null", "CgroupPermissions": "rw"},
    ]
    assert host["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert host["Tmpfs"] == {"/run": "size=64m,noexec", "/tmp": ""}
    assert host["Privileged"] is True and host["ReadonlyRootfs"] is True
    assert host["Init"] is True
    assert host["NetworkMode"] == "host"
    assert host["Runtime"] == "runc"


def test_extra_settings() -> None:
    extra = {
        "auto_remove": True,
        "log_max_size": "10m",
        "log_max_file": "3",
        "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 5},
        "stop_timeout": 30,
        "graph": {"MergedDir": "/m", "UpperDir": "/u", "WorkDir": "/w", "LowerDir": "/l"},
    }
    info = inspect(make(), extra=extra)
    host = info["HostConfig"]
    assert host["AutoRemove"] is True
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10m", "max-file": "3"},
    }
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 5}
    assert info["Config"]["StopTimeout"] == 30
    assert info["GraphDriver"] == {
        "Name": "overlay",
        "Data": {"MergedDir": "/m", "UpperDir": "/u", "WorkDir": "/w", "LowerDir": "/l"},
    }


def test_graph_driver_from_rootfs() -> None:
    assert inspect(make())["GraphDriver"] == {"Name": "overlay", "Data": None}
    info = inspect(make(rootfs="/var/lib/cove/snapshots/x/merged"))
    assert info["GraphDriver"]["Data"] == {"MergedDir": "/var/lib/cove/snapshots/x/merged"}


def test_system_paths_from_the_spec() -> None:
    spec = {"linux": {"maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]}}
    host = inspect(make(), spec=spec)["HostConfig"]
    assert host["MaskedPaths"] == ["/proc/kcore"]
    assert host["ReadonlyPaths"] == ["/proc/sys"]


# --- Mounts ----------------------------------------------------------------------------------


def test_mounts_from_volumes() -> None:
    config = options_dict(volumes=["/a:/b:ro", "/c:/d", "/e:/f:rw,rshared"])
    info = inspect(make(config=config))
    assert info["Mounts"] == [
        {"Type": "bind", "Source": "/a", "Destination": "/b", "Mode": "ro", "RW": False,
         "Propagation": "rprivate"},
        {"Type": "bind", "Source": "/c", "Destination": "/d", "Mode": "", "RW": True,
         "Propagation": "rprivate"},
        {"Type": "bind", "Source": "/e", "Destination": "/f", "Mode": "rw,rshared", "RW": True,
         "Propagation": "rshared"},
    ]  # fmt: skip
    assert info["HostConfig"]["Binds"] == ["/a:/b:ro", "/c:/d", "/e:/f:rw,rshared"]


def test_mounts_from_mount_flags() -> None:
    config = options_dict(
        mounts=[
            "type=bind,source=/src,target=/dst,readonly",
            MountOption(type="tmpfs", target="/scratch", tmpfs_size=1024),
            "type=nonsense",  # stored but unreadable: left out, no error
        ],
        tmpfs=["/run"],
    )
    info = inspect(make(config=config))
    assert info["Mounts"] == [
        {"Type": "bind", "Source": "/src", "Destination": "/dst", "Mode": "", "RW": False,
         "Propagation": "rprivate"},
        {"Type": "tmpfs", "Source": "", "Destination": "/scratch", "Mode": "", "RW": True,
         "Propagation": ""},
    ]  # fmt: skip
    assert info["HostConfig"]["Mounts"] == [
        {"Type": "bind", "Source": "/src", "Target": "/dst", "ReadOnly": True},
        {"Type": "tmpfs", "Target": "/scratch"},
    ]
    assert info["HostConfig"]["Tmpfs"] == {"/run": ""}


# --- Config, Path and Args -------------------------------------------------------------------


IMAGE = {
    "architecture": "amd64",
    "config": {
        "Entrypoint": ["/entry.sh"],
        "Cmd": ["serve"],
        "Env": ["PATH=/usr/bin:/bin", "MODE=prod"],
        "WorkingDir": "/srv",
        "User": "app",
        "Volumes": {"/data": {}},
        "Labels": {"maintainer": "me", "tier": "image"},
        "StopSignal": "SIGQUIT",
    },
}


def test_config_from_image_and_options() -> None:
    config = options_dict(
        env=["MODE=dev", "EXTRA=1"], labels={"tier": "web"}, tty=True, interactive=True
    )
    info = inspect(make(config=config), image_config=IMAGE)
    c = info["Config"]
    assert c["Entrypoint"] == ["/entry.sh"]
    assert c["Cmd"] == ["serve"]
    assert (info["Path"], info["Args"]) == ("/entry.sh", ["serve"])
    assert c["Env"] == ["PATH=/usr/bin:/bin", "MODE=dev", "EXTRA=1"]
    assert c["WorkingDir"] == "/srv"
    assert c["User"] == "app"
    assert c["Volumes"] == {"/data": {}}
    assert c["Labels"] == {"maintainer": "me", "tier": "web"}
    assert c["StopSignal"] == "SIGQUIT"
    assert "StopTimeout" not in c
    assert c["Image"] == "busybox:latest"
    assert c["Hostname"] == CID[:12]
    assert c["Domainname"] == ""
    assert c["Tty"] is True
    assert (c["OpenStdin"], c["AttachStdin"], c["StdinOnce"]) == (True, True, True)
    assert (c["AttachStdout"], c["AttachStderr"]) == (True, True)


def test_arguments_replace_the_image_cmd() -> None:
    info = inspect(make(config=options_dict(cmd=["ls", "-l"])), image_config=IMAGE)
    assert info["Config"]["Cmd"] == ["ls", "-l"]
    assert (info["Path"], info["Args"]) == ("/entry.sh", ["ls", "-l"])


def test_entrypoint_option_drops_the_image_cmd() -> None:
    info = inspect(make(config=options_dict(entrypoint=["top"])), image_config=IMAGE["config"])
    assert info["Config"]["Entrypoint"] == ["top"]
    assert info["Config"]["Cmd"] is None
    assert (info["Path"], info["Args"]) == ("top", [])


def test_detached_container_attaches_nothing() -> None:
    extra = {"attach_stdin": False, "attach_stdout": False, "attach_stderr": False}
    c = inspect(make(config=options_dict(interactive=True)), extra=extra)["Config"]
    assert (c["AttachStdin"], c["AttachStdout"], c["AttachStderr"]) == (False, False, False)
    assert c["OpenStdin"] is True and c["StdinOnce"] is False


def test_spec_process_wins_over_options() -> None:
    spec = {
        "hostname": "box",
        "process": {
            "args": ["/dev/cove-init", "--", "/entry.sh", "serve", "--port", "80"],
            "env": ["PATH=/bin", "HOSTNAME=box", "HOME=/root"],
            "cwd": "/work",
            "user": {"uid": 1000, "gid": 100},
        },
    }
    config = options_dict(cmd=["serve", "--port", "80"], init=True, hostname="box")
    info = inspect(make(config=config), spec=spec, image_config={"Entrypoint": ["/entry.sh"]})
    assert info["Path"] == "/entry.sh"  # the init cove put in front is not the command
    assert info["Args"] == ["serve", "--port", "80"]
    c = info["Config"]
    assert c["Cmd"] == ["serve", "--port", "80"]
    assert c["Entrypoint"] == ["/entry.sh"]
    assert c["Env"] == ["PATH=/bin", "HOSTNAME=box", "HOME=/root"]
    assert c["WorkingDir"] == "/work"
    assert c["User"] == "1000:100"
    assert c["Hostname"] == "box"


def test_spec_without_entrypoint_is_all_cmd() -> None:
    spec = {"process": {"args": ["sh", "-c", "true"], "env": [], "cwd": "/"}}
    info = inspect(make(config=options_dict()), spec=spec)
    assert info["Config"]["Cmd"] == ["sh", "-c", "true"]
    assert info["Config"]["Entrypoint"] is None
    assert (info["Path"], info["Args"]) == ("sh", ["-c", "true"])


def test_resolved_keys_win() -> None:
    config = options_dict(cmd=["x"], user="root")
    config.update(
        cmd_resolved=["a", "b"],
        entrypoint_resolved=["ep"],
        env_resolved=["K=V"],
        workdir_resolved="/r",
        user_resolved="nobody",
    )
    spec = {"process": {"args": ["ep", "a", "b"], "env": ["OTHER=1"], "cwd": "/"}}
    c = inspect(make(config=config), spec=spec, image_config=IMAGE)["Config"]
    assert (c["Cmd"], c["Entrypoint"], c["Env"]) == (["a", "b"], ["ep"], ["K=V"])
    assert (c["WorkingDir"], c["User"]) == ("/r", "nobody")


def test_stop_signal_option_and_network_settings() -> None:
    info = inspect(make(config=options_dict(stop_signal="SIGUSR1", network="host")))
    assert info["Config"]["StopSignal"] == "SIGUSR1"
    settings = info["NetworkSettings"]
    assert list(settings["Networks"]) == ["host"]
    assert settings["Networks"]["host"]["IPAddress"] == ""
    assert (settings["Bridge"], settings["SandboxID"], settings["IPAddress"]) == ("", "", "")
    assert (settings["Gateway"], settings["MacAddress"], settings["Ports"]) == ("", "", {})


def test_network_none() -> None:
    networks = inspect(make(config=options_dict(network="none")))["NetworkSettings"]["Networks"]
    assert list(networks) == ["none"]
    assert networks["none"]["Gateway"] == "" and networks["none"]["IPPrefixLen"] == 0
