"""Parity with Docker, side by side: cove's and dockerd's documents (both clients pinned
to API 1.41, dockerd's version, so that version-dependent fields match) compared shape
by shape, field by field, with the fields cove leaves out on purpose listed with their
reasons; and checks that the private dockerd leaves the host alone.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker as docker_sdk  # type: ignore[import-untyped]
import pytest

from tests.compat.conftest import ApiServer
from tests.compat.parity_support import ok
from tests.lib.dockerd import PrivateDockerd

pytestmark = pytest.mark.root


# --- cove and dockerd side by side -------------------------------------------------------------


def shape(doc: Any, path: str = "") -> dict[str, str]:
    """path -> JSON type of every field (lists by their first item)."""
    found = {path: type(doc).__name__}
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.update(shape(value, f"{path}.{key}"))
    elif isinstance(doc, list) and doc:
        found.update(shape(doc[0], f"{path}[]"))
    return found


def compare(cove_doc: Any, docker_doc: Any, allowed: dict[str, str]) -> list[str]:
    """What dockerd's document has that cove's lacks, or has with another type; null and
    an empty list or map count as the same (Go's nil slices and maps). Paths listed in
    ``allowed`` (with the reason) and everything below them are not compared."""
    ours, theirs = shape(cove_doc), shape(docker_doc)
    nullable = {"NoneType", "list", "dict"}

    def excused(path: str) -> bool:
        return any(path == p or path.startswith(p + ".") or path.startswith(p + "[")
                   for p in allowed)  # fmt: skip

    problems = []
    for path, kind in sorted(theirs.items()):
        if excused(path):
            continue
        if path not in ours:
            parent = path.rsplit(".", 1)[0] if "." in path else ""
            if ours.get(parent) != "NoneType":  # cove has null where dockerd has a map
                problems.append(f"{path}: missing (dockerd: {kind})")
        elif ours[path] != kind and not {ours[path], kind} <= nullable:
            problems.append(f"{path}: {ours[path]} (dockerd: {kind})")
    return problems


def _remove_test_objects(client: Any) -> None:
    """Every container, and the network and volume the shape test made; a failure shows
    up as the next test's conflict, if it matters."""
    steps: tuple[tuple[Any, dict[str, Any], dict[str, Any]], ...] = (
        (client.containers.list, {"all": True}, {"force": True}),
        (client.networks.list, {"names": ["parity-shape"]}, {}),
        (client.volumes.list, {"filters": {"name": "parity-shape"}}, {"force": True}),
    )
    for lister, query, options in steps:
        try:
            for item in lister(**query):
                item.remove(**options)
        except docker_sdk.errors.APIError:
            pass


@pytest.fixture
def both(api: ApiServer, dockerd: PrivateDockerd) -> Iterator[dict[str, Any]]:
    """docker-py clients for cove and dockerd, both pinned to API 1.41."""
    clients = {name: docker_sdk.DockerClient(base_url=url, version="1.41", timeout=60)
               for name, url in (("cove", api.url), ("dockerd", dockerd.url))}  # fmt: skip
    try:
        yield clients
    finally:
        for client in clients.values():
            _remove_test_objects(client)
            client.close()


# Fields dockerd 20.10 has that cove leaves out on purpose, with the reason.
NOT_COMPARED = {
    "container": {
        ".GraphDriver.Data": "storage-driver specific (vfs has none, cove's overlay has dirs)",
        ".HostConfig.KernelMemory": "cgroup v1 kmem, dropped by Docker in API 1.42",
        ".HostConfig.KernelMemoryTCP": "cgroup v1 kmem, dropped by Docker in API 1.42",
    },
    "image": {
        ".GraphDriver.Data": "storage-driver specific",
        ".ContainerConfig": "the builder's container config: cove's images have none",
        ".Container": "the builder's container id: cove's images have none",
        ".VirtualSize": "equal to Size; dropped by Docker in API 1.44",
    },
    "info": {
        ".Runtimes": "each engine names its own runtimes",
        ".KernelMemory": "cgroup v1 kmem, dropped by Docker in API 1.42",
        ".ContainerdCommit": "cove has no containerd",
        ".RuncCommit.Expected": "dropped by Docker in API 1.44",
        ".InitCommit.Expected": "dropped by Docker in API 1.44",
        ".Swarm": "cove has no swarm mode: its Swarm answer is the inactive one",
        ".Plugins": "each engine lists its own drivers",
        ".DriverStatus": "storage-driver specific",
        ".Warnings": "host-specific",
    },
    "version": {},
    "df": {
        ".BuilderSize": "deprecated, dropped by Docker in API 1.42",
        ".Containers[].SizeRootFs": "only with a size computation, as ps --size",
    },
    "network": {},
    "volume": {},
    "stats": {},
    "container-list": {},
    "image-list": {},
}


def _documents(client: Any, what: str) -> Any:
    if what == "container":
        return client.api.inspect_container("parity-shape")
    if what == "image":
        return client.api.inspect_image("bb:1")
    if what == "info":
        return client.info()
    if what == "version":
        return client.version()
    if what == "df":
        return client.df()
    if what == "network":
        return client.api.inspect_network("parity-shape")
    if what == "stats":
        return client.api.stats("parity-shape", stream=False)
    if what == "container-list":
        return client.api.containers(all=True)
    if what == "image-list":
        return client.api.images()
    return client.api.inspect_volume("parity-shape")


@pytest.mark.parametrize("what", sorted(NOT_COMPARED))
def test_documents_have_dockerds_shape(both: dict[str, Any], what: str) -> None:
    # Direct writes, so that both engines' blkio lists have entries whatever the page
    # cache holds (a cached image read no block and left cove's list empty once).
    command = ["sh", "-c", "dd if=/dev/zero of=/io-probe bs=4096 count=8 oflag=direct"
               " 2>/dev/null; exec sleep 300"]  # fmt: skip
    for client in both.values():
        client.containers.run("bb:1", command, name="parity-shape", detach=True,
                              network_mode="none", mem_limit="64m", labels={"a": "b"})  # fmt: skip
        client.networks.create("parity-shape", labels={"a": "b"})
        client.volumes.create("parity-shape", labels={"a": "b"})
    cove_doc, docker_doc = (_documents(both[name], what) for name in ("cove", "dockerd"))
    problems = compare(cove_doc, docker_doc, NOT_COMPARED[what])
    assert not problems, f"{what}: cove's document differs from dockerd's:\n" + "\n".join(problems)


def test_the_private_dockerd_leaves_the_host_alone(dockerd: PrivateDockerd) -> None:
    """dockerd and containerd run in namespaces of their own: a network dockerd creates
    is a bridge there, not on the host; their /run is theirs."""
    assert dockerd.daemon is not None
    for kind in ("net", "mnt"):
        theirs = os.readlink(f"/proc/{dockerd.daemon.pid}/ns/{kind}")
        assert theirs == os.readlink(f"/proc/{dockerd.containerd.pid}/ns/{kind}")
        assert theirs != os.readlink(f"/proc/self/ns/{kind}"), kind
    network_id = ok(dockerd.docker("network", "create", "parity-private")).strip()
    try:
        bridge = f"br-{network_id[:12]}"
        host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True)
        assert host_links.returncode == 0 and bridge not in host_links.stdout
        inside = subprocess.run(["nsenter", f"--net=/proc/{dockerd.daemon.pid}/ns/net", "ip",
                                 "-o", "link"], capture_output=True, text=True)  # fmt: skip
        assert bridge in inside.stdout  # it exists, in dockerd's namespace
    finally:
        ok(dockerd.docker("network", "rm", "parity-private"))
    assert not Path("/run/containerd/containerd.sock").exists()


def test_the_image_is_the_same_in_both(both: dict[str, Any]) -> None:
    cove_image, docker_image = (both[name].images.get("bb:1") for name in ("cove", "dockerd"))
    assert cove_image.id == docker_image.id
    assert sorted(cove_image.tags) == sorted(docker_image.tags) == ["bb:1", "busybox:latest"]
    for key in ("RootFS", "Os", "Architecture", "Created"):
        assert cove_image.attrs[key] == docker_image.attrs[key], key
    for key in ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "Labels"):
        assert cove_image.attrs["Config"].get(key) == docker_image.attrs["Config"].get(key), key
