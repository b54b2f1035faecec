"""Network and volume routes through the real clients: create, ls, inspect, connect,
disconnect, rm, prune; two containers reaching each other by name on a created network;
a named volume written by one container and read by another. Results are checked with the
engine's own CLI (`api.cove(...)`) too."""

from __future__ import annotations

import json
from typing import Any

import pytest
from docker import errors as docker_errors  # type: ignore[import-untyped]
from docker import types as docker_types

from tests.compat.conftest import ApiServer, DockerCli

HTTPD = "mkdir -p /www && echo hello-over-api > /www/index.html && exec httpd -f -p 80 -h /www"


def get(url: str) -> str:
    """Fetch `url`, retried while the server comes up (timeout(1) bounds each try: busybox's
    own wget -T crashes in Debian 12's busybox-static)."""
    return (f"i=0; while [ $i -lt 40 ]; do timeout 3 wget -q -O- {url} && exit 0; "
            "i=$((i+1)); sleep 0.25; done; exit 8")  # fmt: skip


def cove_json(api: ApiServer, *args: str) -> Any:
    res = api.cove(*args)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


# --- networks ------------------------------------------------------------------------------


def test_network_create_ls_inspect_rm(api: ApiServer, docker: DockerCli) -> None:
    res = docker("network", "create", "--subnet", "10.231.7.0/24", "--gateway", "10.231.7.254",
                 "--label", "team=compat", "--internal", "apinet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    network_id = res.stdout.strip()
    assert len(network_id) == 64
    (engine_view,) = cove_json(api, "network", "inspect", "apinet")
    assert engine_view["Id"] == network_id and engine_view["Internal"] is True
    assert engine_view["IPAM"]["Config"] == [{"Subnet": "10.231.7.0/24",
                                              "Gateway": "10.231.7.254"}]  # fmt: skip
    assert engine_view["Labels"] == {"team": "compat"}
    res = docker("network", "ls", "--format", "{{.Name}} {{.Driver}}")
    assert res.returncode == 0, res.stderr
    listed = dict(line.split() for line in res.stdout.splitlines())
    assert listed["apinet"] == "bridge" and listed["bridge"] == "bridge"
    assert listed["host"] == "host" and listed["none"] == "null"
    res = docker("network", "ls", "-q", "--no-trunc", "--filter", "label=team=compat")
    assert res.stdout.split() == [network_id]
    res = docker("network", "ls", "--format", "{{.Name}}", "--filter", "type=custom")
    assert res.stdout.split() == ["apinet"]
    res = docker("network", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Internal}}",
                 network_id[:12])  # fmt: skip
    assert res.returncode == 0 and res.stdout.split() == ["apinet", "bridge", "true"]
    res = docker("network", "create", "apinet")
    assert res.returncode == 1 and "already exists" in res.stderr
    res = docker("network", "rm", "apinet")
    assert res.returncode == 0 and res.stdout.strip() == "apinet", res.stderr
    assert api.cove("network", "inspect", "apinet").returncode != 0
    res = docker("network", "inspect", "apinet")
    assert res.returncode == 1 and "not found" in res.stderr
    for builtin in ("bridge", "host", "none"):
        res = docker("network", "rm", builtin)
        assert res.returncode == 1 and "pre-defined network" in res.stderr, res.stderr


def test_network_connect_disconnect_and_in_use(api: ApiServer, docker: DockerCli) -> None:
    assert docker("network", "create", "--subnet", "10.231.8.0/24", "joinme").returncode == 0
    created = api.cove("create", "--name", "joiner", "bb:1", "sleep", "60")
    assert created.returncode == 0, created.stderr
    res = docker("network", "connect", "--ip", "10.231.8.9", "--alias", "jo", "joinme", "joiner")
    assert res.returncode == 0, res.stderr
    (engine_view,) = cove_json(api, "network", "inspect", "joinme")
    (endpoint,) = engine_view["Containers"].values()
    assert endpoint["Name"] == "joiner" and endpoint["IPv4Address"] == "10.231.8.9/24"
    res = docker("network", "connect", "joinme", "joiner")
    assert res.returncode == 1 and "already exists in network joinme" in res.stderr
    res = docker("network", "rm", "joinme")
    assert res.returncode == 1 and "has active endpoints" in res.stderr, res.stderr
    res = docker("network", "disconnect", "joinme", "joiner")
    assert res.returncode == 0, res.stderr
    (engine_view,) = cove_json(api, "network", "inspect", "joinme")
    assert engine_view["Containers"] == {}
    res = docker("network", "disconnect", "joinme", "no-such-container")
    assert res.returncode == 1 and "does not exist" in res.stderr, res.stderr
    res = docker("network", "prune", "-f")
    assert res.returncode == 0 and "joinme" in res.stdout, res.stderr
    assert api.cove("network", "inspect", "joinme").returncode != 0


def test_containers_on_a_network_reach_each_other_by_name(
    api: ApiServer, docker: DockerCli
) -> None:
    assert docker("network", "create", "talk").returncode == 0
    res = docker("run", "-d", "--network", "talk", "--name", "server", "bb:1", "sh", "-c", HTTPD)
    assert res.returncode == 0, res.stderr
    res = docker("run", "--rm", "--network", "talk", "bb:1", "sh", "-c", get("http://server/"),
                 timeout=90)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hello-over-api\n"
    # a container connected later reaches it too, through the API's connect
    created = docker("create", "--name", "latecomer", "bb:1", "sh", "-c", get("http://server/"))
    assert created.returncode == 0, created.stderr
    assert docker("network", "connect", "talk", "latecomer").returncode == 0
    res = docker("start", "-a", "latecomer", timeout=90)
    assert res.returncode == 0 and res.stdout == "hello-over-api\n", res.stderr
    # a running container plugged in by the server (the data plane from a worker thread)
    res = docker("run", "-d", "--name", "live", "bb:1", "sh", "-c", HTTPD)
    assert res.returncode == 0, res.stderr
    assert docker("network", "connect", "talk", "live").returncode == 0
    res = docker("exec", "live", "ip", "-o", "-4", "addr", "show", "eth1")
    assert res.returncode == 0 and "inet " in res.stdout, res.stdout + res.stderr
    res = docker("run", "--rm", "--network", "talk", "bb:1", "sh", "-c", get("http://live/"),
                 timeout=90)  # fmt: skip
    assert res.returncode == 0 and res.stdout == "hello-over-api\n", res.stderr
    assert docker("network", "disconnect", "talk", "live").returncode == 0
    res = docker("exec", "live", "ip", "-o", "link")
    assert res.returncode == 0 and "eth1" not in res.stdout, res.stdout + res.stderr


def test_run_on_two_networks_at_once(api: ApiServer, docker: DockerCli) -> None:
    """`docker run --network a --network b` (API 1.44: both in EndpointsConfig at create):
    the container is on both, reachable by name on each; the default bridge does not mix
    with user networks."""
    for name in ("front", "back"):
        assert docker("network", "create", name).returncode == 0
    res = docker("run", "-d", "--network", "front", "--network", "back", "--name", "both",
                 "bb:1", "sh", "-c", HTTPD)  # fmt: skip
    assert res.returncode == 0, res.stderr
    inspected = docker("inspect", "both")
    assert inspected.returncode == 0, inspected.stderr
    shown = json.loads(inspected.stdout)[0]["NetworkSettings"]["Networks"]
    assert set(shown) == {"front", "back"}, shown
    for name in ("front", "back"):
        res = docker("run", "--rm", "--network", name, "bb:1", "sh", "-c", get("http://both/"),
                     timeout=90)  # fmt: skip
        assert res.returncode == 0 and res.stdout == "hello-over-api\n", res.stderr
    res = docker("run", "--rm", "--network", "bridge", "--network", "front", "bb:1", "true")
    assert res.returncode != 0 and "non-user-defined" in res.stderr, res.stderr


def test_sdk_networks(api: ApiServer, client: Any) -> None:
    network = client.networks.create(
        "sdknet", driver="bridge", labels={"made-by": "sdk"},
        ipam=docker_types.IPAMConfig(pool_configs=[
            docker_types.IPAMPool(subnet="10.231.9.0/24",
                                                         iprange="10.231.9.128/25")]),
    )  # fmt: skip
    assert network.name == "sdknet" and len(network.id) == 64
    assert client.networks.get("sdknet").attrs["IPAM"]["Config"][0]["IPRange"] == (
        "10.231.9.128/25")  # fmt: skip
    assert [n.name for n in client.networks.list(names=["sdknet"])] == ["sdknet"]
    assert [n.id for n in client.networks.list(filters={"label": "made-by=sdk"})] == [network.id]
    created = api.cove("create", "--name", "sdk-member", "bb:1", "true")
    assert created.returncode == 0, created.stderr
    network.connect("sdk-member", aliases=["member"])
    network.reload()
    (endpoint,) = network.attrs["Containers"].values()
    assert endpoint["Name"] == "sdk-member"
    assert endpoint["IPv4Address"].startswith("10.231.9.")
    address = int(endpoint["IPv4Address"].split("/")[0].rsplit(".", 1)[1])
    assert address >= 128  # from the IPRange
    with pytest.raises(docker_errors.APIError) as raised:
        network.remove()
    assert raised.value.status_code == 409
    network.disconnect("sdk-member", force=True)
    network.remove()
    with pytest.raises(docker_errors.NotFound):
        client.networks.get("sdknet")
    with pytest.raises(docker_errors.APIError) as raised:
        client.networks.get("bridge").remove()
    assert raised.value.status_code == 403
    with pytest.raises(docker_errors.APIError) as raised:
        client.networks.create("bad", driver="overlay")
    assert raised.value.status_code == 400
    report = client.networks.prune()
    assert report["NetworksDeleted"] is None


# --- volumes -------------------------------------------------------------------------------


def test_volume_create_ls_inspect_rm_prune(api: ApiServer, docker: DockerCli) -> None:
    res = docker("volume", "create", "--label", "tier=data", "apivol")
    assert res.returncode == 0 and res.stdout.strip() == "apivol", res.stderr
    engine_view = cove_json(api, "volume", "inspect", "apivol")[0]
    assert engine_view["Labels"] == {"tier": "data"} and engine_view["Driver"] == "local"
    res = docker("volume", "ls", "--format", "{{.Name}} {{.Driver}}")
    assert res.returncode == 0 and "apivol local" in res.stdout.splitlines(), res.stdout
    res = docker("volume", "ls", "-q", "--filter", "label=tier=data")
    assert res.stdout.split() == ["apivol"]
    res = docker("volume", "inspect", "--format", "{{.Mountpoint}}", "apivol")
    assert res.returncode == 0 and res.stdout.strip() == engine_view["Mountpoint"]
    res = docker("volume", "rm", "apivol")
    assert res.returncode == 0, res.stderr
    assert api.cove("volume", "inspect", "apivol").returncode != 0
    res = docker("volume", "inspect", "apivol")
    assert res.returncode == 1 and "no such volume" in res.stderr.lower()
    res = docker("volume", "rm", "apivol")
    assert res.returncode == 1 and "no such volume" in res.stderr.lower()
    assert docker("volume", "rm", "-f", "apivol").returncode == 0
    # prune: named volumes only with --all (API 1.42+)
    assert docker("volume", "create", "keepme").returncode == 0
    res = docker("volume", "prune", "-f")
    assert res.returncode == 0 and "keepme" not in res.stdout, res.stderr
    res = docker("volume", "prune", "-f", "--all")
    assert res.returncode == 0 and "keepme" in res.stdout, res.stderr
    assert api.cove("volume", "inspect", "keepme").returncode != 0


def test_a_named_volume_carries_data_between_containers(api: ApiServer, docker: DockerCli) -> None:
    assert docker("volume", "create", "shared").returncode == 0
    res = docker("run", "--rm", "-v", "shared:/data", "bb:1", "sh", "-c",
                 "echo written-by-one > /data/note")  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = docker("run", "--rm", "-v", "shared:/data:ro", "bb:1", "cat", "/data/note")
    assert res.returncode == 0 and res.stdout == "written-by-one\n", res.stderr
    engine_view = cove_json(api, "volume", "inspect", "shared")[0]
    with open(f"{engine_view['Mountpoint']}/note") as note:
        assert note.read() == "written-by-one\n"
    created = docker("create", "--name", "holder", "-v", "shared:/data", "bb:1", "true")
    assert created.returncode == 0, created.stderr
    res = docker("volume", "rm", "shared")
    assert res.returncode == 1 and "volume is in use" in res.stderr, res.stderr
    assert docker("rm", "holder").returncode == 0
    assert docker("volume", "rm", "shared").returncode == 0


def test_sdk_volumes(api: ApiServer, client: Any) -> None:
    volume = client.volumes.create("sdkvol", driver="local", labels={"a": "b"},
                                   driver_opts={"type": "tmpfs", "device": "tmpfs",
                                                "o": "size=8m"})  # fmt: skip
    assert volume.name == "sdkvol" and volume.attrs["Options"]["type"] == "tmpfs"
    assert client.volumes.get("sdkvol").attrs["Labels"] == {"a": "b"}
    assert [v.name for v in client.volumes.list(filters={"label": "a=b"})] == ["sdkvol"]
    assert client.api.volumes(filters={"name": "no-such"}) == {"Volumes": [], "Warnings": []}
    created = api.cove("create", "--name", "vol-user", "-v", "sdkvol:/v", "bb:1", "true")
    assert created.returncode == 0, created.stderr
    with pytest.raises(docker_errors.APIError) as raised:
        volume.remove()
    assert raised.value.status_code == 409
    assert api.cove("rm", "vol-user").returncode == 0
    report = client.volumes.prune(filters={"label": "a=b", "all": "true"})
    assert report["VolumesDeleted"] == ["sdkvol"]
    with pytest.raises(docker_errors.NotFound):
        client.volumes.get("sdkvol")
    with pytest.raises(docker_errors.NotFound):
        client.api.remove_volume("sdkvol")
    # force: no error for a missing one (docker-py's remove_volume drops its force flag)
    response = client.api._delete(client.api._url("/volumes/{0}", "sdkvol"), params={"force": 1})
    assert response.status_code == 204, response.text
    plain = client.volumes.create("plain")
    plain.remove()
    assert api.cove("volume", "inspect", "plain").returncode != 0
    with pytest.raises(docker_errors.APIError) as raised:
        client.volumes.create("bad", driver="nfs-plugin")
    assert raised.value.status_code == 400
