"""The `cove network` and `cove port` commands in-process, without root: connect and
disconnect at the IPAM level against a fake data plane (and the error when there is none),
`cove port` against container records, ls/inspect output."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from cove.cli.engine import run as cli
from cove.engine.network import NetworkService, ipam
from cove.engine.network.ports import PortBinding
from cove.engine.state import ContainerRecord, ContainerStore
from cove.errors import NetworkError

DATA_PLANE = "cove.engine.network.attach"
HOST = [IPv4Network("192.0.2.0/24")]


def cid(n: int) -> str:
    return f"{n:02x}" * 32  # distinct from the first digit on


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import cove.engine.containers

    monkeypatch.setattr(ipam, "host_networks", lambda: HOST)
    # records say "running" without a monitor: no clean-up of them
    monkeypatch.setattr(cove.engine.containers, "needs_cleanup", lambda store, record: False)
    with ContainerStore(tmp_path) as store:
        for n, name, status, mode in [(1, "web", "running", "bridge"), (2, "db", "created", ""),
                                      (3, "hosted", "running", "host"),
                                      (4, "alone", "created", "none")]:  # fmt: skip
            config = {"network": mode} if mode else {}
            store.add(ContainerRecord(id=cid(n), name=name, image_id="sha256:0", image_name="i",
                                      status=status, config=config))  # fmt: skip
    return tmp_path


class FakeDataPlane:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str]] = []
        self.fail = False

    def module(self) -> types.ModuleType:
        module = types.ModuleType(DATA_PLANE)
        module.connect = self.connect  # type: ignore[attr-defined]
        module.disconnect = self.disconnect  # type: ignore[attr-defined]
        return module

    def connect(self, root: str, network: Any, record: Any, lease: Any) -> dict[str, Any]:
        self.calls.append(("connect", network.name, record.name, lease.ip))
        if self.fail:
            raise NetworkError("veth trouble")
        return {"name": network.name, "network_id": network.id, "ip": lease.ip}

    def disconnect(self, root: str, network: Any, record: Any) -> None:
        self.calls.append(("disconnect", network.name, record.name, ""))
        if self.fail:
            raise NetworkError("veth trouble")


@pytest.fixture
def plane(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDataPlane]:
    fake = FakeDataPlane()
    monkeypatch.setitem(sys.modules, DATA_PLANE, fake.module())
    yield fake


def service(root: Path) -> NetworkService:
    return NetworkService(str(root), host_networks=lambda: HOST)


def settings(root: Path, n: int) -> dict[str, Any]:
    with ContainerStore(root) as store:
        return dict(store.get(cid(n)).settings)


@pytest.mark.parametrize("verb", ["connect", "disconnect"])
def test_without_the_data_plane(
    root: Path, verb: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, DATA_PLANE, None)  # the import fails
    assert cli(["--root", str(root), "network", verb, "bridge", "db"]) == 125
    assert capsys.readouterr().err == f"cove: network {verb} needs the data plane (not available)\n"
    assert service(root).leases_of(cid(2)) == []


def test_connect_and_disconnect(
    root: Path, plane: FakeDataPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--root", str(root), "network"]
    assert cli([*base, "create", "--subnet", "10.3.0.0/24", "app"]) == 0
    app = service(root).get("app")
    # a running container is plugged in now, a created one at its start
    assert cli([*base, "connect", "--alias", "www", "--alias", "front", "app", "web"]) == 0
    assert cli([*base, "connect", "--ip", "10.3.0.77", "app", cid(2)[:12]]) == 0
    assert plane.calls == [("connect", "app", "web", "10.3.0.2")]
    (lease,) = service(root).leases_of(cid(1))
    assert (lease.ip, lease.aliases) == ("10.3.0.2", ("www", "front"))
    assert settings(root, 1) == {"connected": ["app"], "networks": [
        {"name": "app", "network_id": app.id, "ip": "10.3.0.2"}]}  # fmt: skip
    assert settings(root, 2) == {"connected": ["app"]}
    assert service(root).leases_of(cid(2))[0].ip == "10.3.0.77"
    capsys.readouterr()
    assert cli([*base, "connect", "app", "web"]) == 1
    assert "endpoint with name web already exists in network app" in capsys.readouterr().err
    assert cli([*base, "connect", "bridge", "web"]) == 1  # its --network
    assert "endpoint with name web already exists in network bridge" in capsys.readouterr().err
    assert cli([*base, "connect", "app", "hosted"]) == 1
    assert "sharing network namespace" in capsys.readouterr().err
    assert cli([*base, "connect", "app", "alone"]) == 1
    assert "private (none) mode" in capsys.readouterr().err
    # the inspect of the network names its containers
    assert cli([*base, "inspect", "-f", "{{json .Containers}}", "app"]) == 0
    attached = json.loads(capsys.readouterr().out)
    assert {v["Name"]: v["IPv4Address"] for v in attached.values()} == {
        "web": "10.3.0.2/24", "db": "10.3.0.77/24"}  # fmt: skip
    assert cli([*base, "rm", "app"]) == 1
    assert "has active endpoints (containers: web, db)" in capsys.readouterr().err
    assert cli([*base, "disconnect", "app", "web"]) == 0
    assert plane.calls[-1] == ("disconnect", "app", "web", "")
    assert service(root).leases_of(cid(1)) == []
    assert settings(root, 1) == {"networks": []}
    assert cli([*base, "disconnect", "app", "web"]) == 1
    assert f"container {cid(1)[:12]} is not connected to network app" in capsys.readouterr().err
    assert cli([*base, "disconnect", "-f", "app", "web"]) == 0
    calls = len(plane.calls)
    assert cli([*base, "disconnect", "app", "db"]) == 0
    assert len(plane.calls) == calls  # nothing to unplug in a created container
    assert settings(root, 2) == {} and service(root).leases(app) == []
    assert cli([*base, "rm", "app"]) == 0


def test_failed_connect_gives_the_address_back(root: Path, plane: FakeDataPlane) -> None:
    assert cli(["--root", str(root), "network", "create", "app"]) == 0
    plane.fail = True
    assert cli(["--root", str(root), "network", "connect", "app", "web"]) == 1
    assert service(root).leases_of(cid(1)) == [] and settings(root, 1) == {}
    plane.fail = False
    assert cli(["--root", str(root), "network", "connect", "app", "web"]) == 0
    plane.fail = True
    assert cli(["--root", str(root), "network", "disconnect", "app", "web"]) == 1
    assert len(service(root).leases_of(cid(1))) == 1  # still plugged in as far as we know
    assert settings(root, 1)["connected"] == ["app"]
    assert cli(["--root", str(root), "network", "disconnect", "-f", "app", "web"]) == 0
    assert service(root).leases_of(cid(1)) == [] and "connected" not in settings(root, 1)


def test_disconnect_force_of_a_removed_container(root: Path, plane: FakeDataPlane) -> None:
    net = service(root).default()
    service(root).allocate(net, cid(9))  # a container that no longer exists
    assert cli(["--root", str(root), "network", "disconnect", "bridge", cid(9)]) == 1
    assert cli(["--root", str(root), "network", "disconnect", "-f", "bridge", cid(9)[:12]]) == 0
    assert service(root).leases(net) == []


def test_connect_to_pseudo_networks_is_refused(
    root: Path, plane: FakeDataPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["--root", str(root), "network", "connect", "host", "web"]) == 1
    assert "connected to host network" in capsys.readouterr().err
    assert plane.calls == []


def test_ls_and_inspect_output(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--root", str(root), "network"]
    assert cli([*base, "create", "--label", "a=1", "--internal", "app"]) == 0
    app_id = capsys.readouterr().out.strip()
    assert len(app_id) == 64
    assert cli([*base, "ls"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [line.split()[1:] for line in lines[1:]] == [
        ["app", "bridge", "local"], ["bridge", "bridge", "local"], ["host", "host", "local"],
        ["none", "null", "local"]]  # fmt: skip
    assert lines[1].split()[0] == app_id[:12]
    assert cli([*base, "ls", "-q", "--no-trunc", "--filter", "label=a=1"]) == 0
    assert capsys.readouterr().out == app_id + "\n"
    assert cli([*base, "ls", "--format", "{{.Name}}:{{.Internal}}:{{.Labels}}",
                 "-f", "type=custom"]) == 0  # fmt: skip
    assert capsys.readouterr().out == "app:true:a=1\n"
    assert cli([*base, "ls", "--format", "json", "-f", "name=app"]) == 0
    assert json.loads(capsys.readouterr().out)["ID"] == app_id[:12]
    assert cli([*base, "ls", "--filter", "bogus=1"]) == 1
    assert "invalid filter 'bogus'" in capsys.readouterr().err
    assert cli([*base, "inspect", "app", "nope"]) == 1
    captured = capsys.readouterr()
    assert [doc["Name"] for doc in json.loads(captured.out)] == ["app"]
    assert captured.err == "Error: network nope not found\n"
    assert cli([*base, "rm", "-f", "nope"]) == 0
    assert cli([*base, "prune", "-f"]) == 0
    assert capsys.readouterr().out == "Deleted Networks:\napp\n"  # rm -f of none: silent


class FakeContainers:
    record: ContainerRecord

    def __init__(self, root: str) -> None:
        pass

    def get(self, term: str) -> ContainerRecord:
        return self.record


def test_port(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import cove.engine.containers

    ports = [PortBinding("", 8080, 80, "tcp"), PortBinding("127.0.0.1", 5353, 53, "udp"),
             PortBinding("", 0, 9000, "tcp"), PortBinding("10.0.0.1", 8081, 80, "tcp")]  # fmt: skip
    FakeContainers.record = ContainerRecord(
        id=cid(1), name="web", image_id="sha256:0", image_name="i", status="running",
        settings={"ports": [p.to_dict() for p in ports]})  # fmt: skip
    monkeypatch.setattr(cove.engine.containers, "ContainerService", FakeContainers)
    base = ["--root", str(root), "port", "web"]
    assert cli(base) == 0
    assert capsys.readouterr().out == ("53/udp -> 127.0.0.1:5353\n80/tcp -> 0.0.0.0:8080\n"
                                       "80/tcp -> 10.0.0.1:8081\n")  # fmt: skip
    assert cli([*base, "80"]) == 0
    assert capsys.readouterr().out == "0.0.0.0:8080\n10.0.0.1:8081\n"
    assert cli([*base, "53/udp"]) == 0
    assert capsys.readouterr().out == "127.0.0.1:5353\n"
    assert cli([*base, "53"]) == 1
    assert capsys.readouterr().err == "Error: no public port '53/tcp' published for web\n"
    assert cli([*base, "eighty"]) == 1
    FakeContainers.record = ContainerRecord(
        id=cid(1), name="web", image_id="sha256:0", image_name="i", status="exited",
        settings={"ports": [p.to_dict() for p in ports]})  # fmt: skip
    assert cli(base) == 0
    assert capsys.readouterr().out == ""  # a stopped container publishes nothing, as Docker's
