"""The create body (Config + HostConfig + NetworkingConfig) as the engine's options."""

from __future__ import annotations

from typing import Any

import pytest

from cove.api.containers_create import mount_option, platform_of, publish_specs, translate
from cove.api.containers_lifecycle import update_changes
from cove.api.errors import BadParameter
from cove.engine.create_options import MountOption

# What the docker CLI 28 sends for `docker run -d --name x busybox sleep 1` (captured)
CLI_BODY: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
    "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": None, "Cmd": ["sleep", "1"], "Image": "busybox",
    "Volumes": {}, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": {},
    "HostConfig": {
        "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
        "NetworkMode": "default", "PortBindings": {},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False,
        "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0], "CapAdd": None,
        "CapDrop": None, "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [],
        "ExtraHosts": None, "GroupAdd": None, "IpcMode": "", "Cgroup": "", "Links": None,
        "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
        "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
        "ShmSize": 0, "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
        "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [],
        "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0,
        "MemorySwap": 0, "MemorySwappiness": -1, "OomKillDisable": False, "PidsLimit": 0,
        "Ulimits": [], "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None,
    },
    "NetworkingConfig": {"EndpointsConfig": {"default": {
        "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
        "DriverOpts": None, "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "",
        "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0, "DNSNames": None,
    }}},
}  # fmt: skip


def body(**host: Any) -> dict[str, Any]:
    return {"Image": "bb:1", "HostConfig": host}


def test_the_clis_defaults_are_the_engines_defaults() -> None:
    wanted = translate(CLI_BODY)
    assert wanted.image == "busybox"
    assert wanted.warnings == []
    assert wanted.runtime == "cove"
    options = wanted.options
    assert options.cmd == ["sleep", "1"]
    assert options.entrypoint is None
    assert options.network == "bridge"
    assert options.memory is None and options.pids_limit is None and options.cpus is None
    assert options.publish == [] and options.volumes == [] and options.mounts == []
    settings = wanted.settings
    assert settings.auto_remove is False
    assert settings.restart_policy == {"Name": "no", "MaximumRetryCount": 0}
    assert settings.to_json()["attach_stdout"] is False
    assert "extra" not in settings.to_json()


def test_config_fields() -> None:
    wanted = translate({
        "Image": "bb:1", "Cmd": "true", "Entrypoint": [""], "Env": ["A=1"],
        "WorkingDir": "/w", "User": "1:2", "Labels": {"a": "b"}, "Hostname": "h",
        "Domainname": "d.example", "Tty": True, "OpenStdin": True, "StopSignal": "SIGINT",
        "StopTimeout": 3, "Volumes": {"/data": {}},
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000},
    })  # fmt: skip
    options = wanted.options
    assert options.cmd == ["true"]
    assert options.entrypoint == []  # --entrypoint "": none
    assert (options.env, options.workdir, options.user) == (["A=1"], "/w", "1:2")
    assert (options.hostname, options.domainname) == ("h", "d.example")
    assert options.tty and options.interactive
    assert options.volumes == ["/data"]  # an anonymous volume
    assert options.stop_signal == "SIGINT"
    assert wanted.settings.stop_timeout == 3
    assert wanted.settings.tty and wanted.settings.stdin
    assert wanted.settings.healthcheck == {"Test": ["CMD", "true"], "Interval": 1_000_000_000}


def test_resources() -> None:
    options = translate(body(
        Memory=64 << 20, MemorySwap=-1, MemoryReservation=32 << 20, NanoCpus=1_500_000_000,
        CpuShares=512, CpuQuota=50000, CpuPeriod=100000, CpusetCpus="0", PidsLimit=-1,
        BlkioWeight=300, ShmSize=1 << 20, OomKillDisable=True,
        BlkioDeviceReadBps=[{"Path": "/dev/sda", "Rate": 1024}],
        Ulimits=[{"Name": "nofile", "Soft": 10, "Hard": 20}],
        Devices=[{"PathOnHost": "/dev/fuse", "PathInContainer": "", "CgroupPermissions": ""}],
    )).options  # fmt: skip
    assert options.memory == 64 << 20 and options.memory_swap == -1
    assert options.memory_reservation == 32 << 20
    assert options.cpus == "1.5"
    assert (options.cpu_shares, options.cpu_quota, options.cpu_period) == (512, 50000, 100000)
    assert options.cpuset_cpus == "0" and options.pids_limit == -1
    assert options.blkio_weight == 300 and options.shm_size == 1 << 20
    assert options.oom_kill_disable
    assert options.device_read_bps == ["/dev/sda:1024"]
    assert options.ulimits == ["nofile=10:20"]
    assert options.devices == ["/dev/fuse:/dev/fuse:rwm"]


def test_host_fields() -> None:
    wanted = translate(body(
        Binds=["/src:/dst:ro"], Tmpfs={"/run": "size=1m", "/x": ""}, CapAdd=["NET_ADMIN"],
        CapDrop=["MKNOD"], Privileged=True, SecurityOpt=["no-new-privileges"], Init=True,
        ReadonlyRootfs=True, Sysctls={"net.ipv4.ip_forward": "1"}, GroupAdd=["10"],
        Dns=["1.1.1.1"], DnsSearch=["ex"], DnsOptions=["ndots:2"],
        ExtraHosts=["db:10.0.0.2", "cache=10.0.0.3"], AutoRemove=True, Runtime="runc",
        LogConfig={"Type": "json-file", "Config": {"max-size": "1m"}},
        RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 2},
    ))  # fmt: skip
    options = wanted.options
    assert options.volumes == ["/src:/dst:ro"]
    assert options.tmpfs == ["/run:size=1m", "/x"]
    assert (options.cap_add, options.cap_drop) == (["NET_ADMIN"], ["MKNOD"])
    assert options.privileged and options.init and options.read_only
    assert options.security_opt == ["no-new-privileges"]
    assert options.sysctls == {"net.ipv4.ip_forward": "1"}
    assert options.group_add == ["10"]
    assert (options.dns, options.dns_search, options.dns_options) == (
        ["1.1.1.1"], ["ex"], ["ndots:2"])  # fmt: skip
    assert options.add_hosts == ["db:10.0.0.2", "cache:10.0.0.3"]
    assert wanted.settings.auto_remove
    assert wanted.settings.log_opts == {"max-size": "1m"}
    assert wanted.settings.restart_policy == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert wanted.runtime == "runc"


def test_port_bindings_as_publish_flags() -> None:
    assert publish_specs({
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
        "443": [{"HostIp": "", "HostPort": ""}, {"HostIp": "127.0.0.1", "HostPort": "8443"}],
        "9000/tcp": None,
    }) == ["8080:80/tcp", "127.0.0.1::53/udp", "443/tcp", "127.0.0.1:8443:443/tcp"]  # fmt: skip
    with pytest.raises(BadParameter, match="invalid port"):
        publish_specs({"http": []})


def test_publish_all_publishes_the_exposed_ports() -> None:
    wanted = translate({"Image": "bb:1", "ExposedPorts": {"90/tcp": {}, "53/udp": {}},
                        "HostConfig": {"PublishAllPorts": True}})  # fmt: skip
    assert wanted.options.publish_all
    assert sorted(wanted.options.expose) == ["53/udp", "90/tcp"]  # -P takes them (the engine)
    plain = translate({"Image": "bb:1", "ExposedPorts": {"90/tcp": {}, "8000-8001": {}}})
    assert plain.options.publish == [] and not plain.options.publish_all
    assert plain.options.expose == ["90/tcp", "8000-8001/tcp"]
    with pytest.raises(BadParameter, match="invalid port"):
        translate({"Image": "bb:1", "ExposedPorts": {"http": {}}})


def test_mounts() -> None:
    bind = mount_option({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True,
                         "BindOptions": {"Propagation": "rshared"}}, 0)  # fmt: skip
    assert bind == MountOption(type="bind", target="/b", source="/a", read_only=True,
                               propagation="rshared")  # fmt: skip
    volume = mount_option({"Type": "volume", "Source": "v", "Target": "/d",
                           "VolumeOptions": {"NoCopy": True, "Labels": {"l": "1"}}}, 0)  # fmt: skip
    assert volume.volume_nocopy and volume.volume_labels == {"l": "1"}
    tmpfs = mount_option({"Type": "tmpfs", "Target": "/t",
                          "TmpfsOptions": {"SizeBytes": 1024, "Mode": 0o700}}, 0)  # fmt: skip
    assert (tmpfs.tmpfs_size, tmpfs.tmpfs_mode) == (1024, 0o700)
    with pytest.raises(BadParameter, match="BindOptions"):
        mount_option({"Type": "volume", "Target": "/d", "BindOptions": {}}, 0)
    with pytest.raises(BadParameter, match="Source is required"):
        mount_option({"Type": "bind", "Target": "/d"}, 0)
    with pytest.raises(BadParameter, match="npipe"):
        mount_option({"Type": "npipe", "Target": "/d"}, 0)
    with pytest.raises(BadParameter, match="Target is required"):
        mount_option({"Type": "tmpfs"}, 0)


def test_networking_config() -> None:
    wanted = translate({
        "Image": "bb:1", "HostConfig": {"NetworkMode": "front"},
        "NetworkingConfig": {"EndpointsConfig": {"front": {
            "IPAMConfig": {"IPv4Address": "10.9.0.5"}, "Aliases": ["web", "www"]}}},
    })  # fmt: skip
    assert wanted.options.network == "front"
    assert wanted.options.ip == "10.9.0.5"
    assert wanted.options.network_aliases == ["web", "www"]
    # one network named in EndpointsConfig and the default mode: that network
    lone = translate({"Image": "bb:1", "NetworkingConfig": {"EndpointsConfig": {"back": None}}})
    assert lone.options.network == "back"
    # several networks (API 1.44): the mode's first, the others connected, with their aliases
    endpoints = {"back": {"Aliases": ["db"]}, "front": {"Aliases": ["web"]}}
    both = translate({"Image": "bb:1", "HostConfig": {"NetworkMode": "front"},
                      "NetworkingConfig": {"EndpointsConfig": endpoints}})  # fmt: skip
    assert (both.options.network, both.options.network_aliases) == ("front", ["web"])
    assert both.options.connect == [{"network": "back", "aliases": ["db"]}]
    unnamed = translate({"Image": "bb:1", "NetworkingConfig": {"EndpointsConfig": {
        "one": {}, "two": {}}}})  # fmt: skip
    assert unnamed.options.network == "one"
    assert unnamed.options.connect == [{"network": "two", "aliases": []}]
    with pytest.raises(BadParameter, match=r"EndpointsConfig\[back\]\.IPAMConfig"):
        chosen = {"front": {}, "back": {"IPAMConfig": {"IPv4Address": "10.1.1.1"}}}
        translate({"Image": "bb:1", "HostConfig": {"NetworkMode": "front"},
                   "NetworkingConfig": {"EndpointsConfig": chosen}})  # fmt: skip
    assert translate({"Image": "bb:1", "NetworkDisabled": True}).options.network == "none"


@pytest.mark.parametrize("field,value", [
    ("Links", ["a:b"]), ("DeviceRequests", [{"Count": -1}]), ("MaskedPaths", []),
    ("VolumeDriver", "nfs"), ("Isolation", "hyperv"), ("UsernsMode", "private"),
])  # fmt: skip
def test_refused_fields_name_themselves(field: str, value: Any) -> None:
    with pytest.raises(BadParameter, match=field):
        translate(body(**{field: value}))


def test_namespace_cgroup_and_process_fields_reach_the_options() -> None:
    options = translate(body(
        PidMode="container:db", IpcMode="shareable", UTSMode="host", CgroupnsMode="host",
        CgroupParent="/batch", OomScoreAdj=500, MemorySwappiness=10, CpuRealtimePeriod=1000,
        CpuRealtimeRuntime=500, BlkioWeightDevice=[{"Path": "/dev/sda", "Weight": 10}],
        DeviceCgroupRules=["c 1:3 rwm"], Annotations={"a": "b"}, VolumesFrom=["x:ro"],
    )).options  # fmt: skip
    assert (options.pid, options.ipc, options.uts, options.cgroupns) == (
        "container:db",
        "shareable",
        "host",
        "host",
    )
    assert (options.cgroup_parent, options.oom_score_adj, options.memory_swappiness) == (
        "/batch",
        500,
        10,
    )
    assert (options.cpu_rt_period, options.cpu_rt_runtime) == (1000, 500)
    assert options.blkio_weight_device == ["/dev/sda:10"]
    assert options.device_cgroup_rules == ["c 1:3 rwm"] and options.annotations == {"a": "b"}
    assert options.volumes_from == ["x:ro"]
    assert translate(body()).options.memory_swappiness is None
    mac = translate({"Image": "bb:1", "MacAddress": "02:42:ac:11:00:02"}).options
    assert mac.mac_address == "02:42:ac:11:00:02"


@pytest.mark.parametrize("field,value", [
    ("CpuCount", 2), ("KernelMemory", 1 << 20),
])  # fmt: skip
def test_warned_fields_name_themselves(field: str, value: Any) -> None:
    wanted = translate(body(**{field: value}))
    assert any(field in warning for warning in wanted.warnings)


def test_log_drivers() -> None:
    assert translate(body(LogConfig={"Type": "local"})).warnings
    with pytest.raises(BadParameter, match="syslog"):
        translate(body(LogConfig={"Type": "syslog"}))


@pytest.mark.parametrize("bad", [
    [], {"Image": ""}, {"Image": 3}, {"Image": "bb:1", "Env": "A=1"},
    {"Image": "bb:1", "Tty": "yes"}, {"Image": "bb:1", "HostConfig": {"Memory": "1g"}},
    {"Image": "bb:1", "HostConfig": []}, {"Image": "bb:1", "Labels": {"a": 1}},
])  # fmt: skip
def test_malformed_bodies_are_400(bad: Any) -> None:
    with pytest.raises(BadParameter):
        translate(bad)


def test_platform() -> None:
    assert platform_of("") == ("", "")
    assert platform_of("linux/amd64") == ("linux", "amd64")
    assert platform_of("Linux") == ("linux", "")


def test_update_body() -> None:
    # what `docker update --memory 96m` sends: zeros mean "unchanged"
    changes, policy = update_changes({
        "Memory": 96 << 20, "MemorySwap": 0, "CpuShares": 0, "NanoCpus": 0, "PidsLimit": None,
        "CpusetCpus": "", "KernelMemory": 0, "MemorySwappiness": -1,
        "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
    })  # fmt: skip
    assert changes == {"memory": 96 << 20}
    assert policy is None
    changes, policy = update_changes({"NanoCpus": 250_000_000, "PidsLimit": 10,
                                      "RestartPolicy": {"Name": "always"}})  # fmt: skip
    assert changes == {"cpus": "0.25", "pids_limit": 10}
    assert policy == {"Name": "always"}
    with pytest.raises(BadParameter, match="Devices"):
        update_changes({"Devices": [{"PathOnHost": "/dev/null"}]})
    with pytest.raises(BadParameter):
        update_changes({"Memory": "1g"})


def test_console_size_is_the_terminals_from_the_start() -> None:
    assert translate(body(ConsoleSize=[33, 101])).console_size == (33, 101)
    assert translate(body(ConsoleSize=[0, 0])).console_size is None  # the client resizes
    assert translate(body()).console_size is None
    for bad in ([1], [-1, 5], "33x101"):
        with pytest.raises(BadParameter, match="ConsoleSize"):
            translate(body(ConsoleSize=bad))
