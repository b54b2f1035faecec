"""specgen: the mounts of the OCI spec: read-only root, -v, --mount, --tmpfs, /dev/shm,
the image's host binds and volumes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cove.engine.create_options import CreateOptions, MountOption
from cove.engine.spec_mounts import volume_requests
from cove.errors import InvalidArgument
from cove.image.bootstrap import HOST_BINDS_LABEL
from cove.image.image_config import ExecutionConfig
from tests.unit.engine.specgen_helpers import MiB, bad, gen, mount_at, spec
from tests.unit.engine.specgen_helpers import rootfs as rootfs

# --- mounts ------------------------------------------------------------------------------


def test_read_only_root(rootfs: Path) -> None:
    assert spec(rootfs, CreateOptions(read_only=True))["root"]["readonly"] is True


def test_volume_binds(rootfs: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = spec(rootfs, CreateOptions(volumes=[f"{src}:/data", f"{src}/:/ro:ro,Z",
                                               f"{src}:/shared:rshared"]))  # fmt: skip
    expected = {"destination": "/data", "type": "bind", "source": str(src),
                "options": ["rbind", "rprivate"]}  # fmt: skip
    assert mount_at(data, "/data") == expected
    assert mount_at(data, "/ro")["options"] == ["rbind", "ro", "rprivate"]
    assert mount_at(data, "/shared")["options"] == ["rbind", "rshared"]


def test_volume_errors(rootfs: Path, tmp_path: Path) -> None:
    bad(rootfs, CreateOptions(volumes=[f"{tmp_path}/nope:/x"]), "--volume", "does not exist")
    bad(rootfs, CreateOptions(volumes=["named:/x"]), "--volume", "'named' was not prepared")
    bad(rootfs, CreateOptions(volumes=["/x"]), "--volume", "'/x' was not prepared")
    bad(rootfs, CreateOptions(volumes=["./rel:/x"]), "--volume", "absolute host path")
    bad(rootfs, CreateOptions(volumes=[f"{tmp_path}:/x:nocopy"]), "--volume", "'nocopy'")
    bad(rootfs, CreateOptions(volumes=[f"{tmp_path}:rel"]), "--volume", "absolute")
    bad(rootfs, CreateOptions(volumes=[f"{tmp_path}:/"]), "--volume", "over /")
    bad(rootfs, CreateOptions(volumes=[f"{tmp_path}:/x:bogus"]), "--volume", "'bogus'")
    bad(rootfs, CreateOptions(volumes=[f"{tmp_path}:/x", f"{tmp_path}:/x/"]), "duplicate", "/x")


def test_mount_flag(rootfs: Path, tmp_path: Path) -> None:
    options = CreateOptions(mounts=[
        f"type=bind,source={tmp_path},target=/b,readonly,bind-propagation=rslave",
        f"type=bind,src={tmp_path},dst=/nr,bind-nonrecursive",
        "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770",
        MountOption(type="bind", source=str(tmp_path), target="/obj"),
    ])  # fmt: skip
    data = spec(rootfs, options)
    assert mount_at(data, "/b")["options"] == ["rbind", "ro", "rslave"]
    assert mount_at(data, "/nr")["options"] == ["bind", "rprivate"]
    tmpfs = mount_at(data, "/t")
    assert tmpfs["type"] == "tmpfs"
    assert f"size={MiB}" in tmpfs["options"] and "mode=1770" in tmpfs["options"]
    assert mount_at(data, "/obj")["source"] == str(tmp_path)


def test_mount_flag_errors(rootfs: Path, tmp_path: Path) -> None:
    bad(rootfs, CreateOptions(mounts=["type=volume,source=v,target=/x"]), "--mount", "prepared")
    bad(rootfs, CreateOptions(mounts=["type=bind,target=/x"]), "--mount", "source")
    bad(rootfs, CreateOptions(mounts=[f"type=bind,source={tmp_path}/no,target=/x"]),
        "--mount", "does not exist")  # fmt: skip
    bad(rootfs, CreateOptions(mounts=["type=tmpfs,target=/x,colour=red"]), "'colour'")
    bad(rootfs, CreateOptions(mounts=["type=nfs,target=/x"]), "unknown type")


def test_tmpfs_flag(rootfs: Path) -> None:
    data = spec(rootfs, CreateOptions(tmpfs=["/run", "/exec:exec,size=2m,mode=755"]))
    assert mount_at(data, "/run") == {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                                      "options": ["nosuid", "nodev", "noexec"]}  # fmt: skip
    assert mount_at(data, "/exec")["options"] == ["nosuid", "nodev", "exec", "size=2m", "mode=755"]
    bad(rootfs, CreateOptions(tmpfs=["run"]), "--tmpfs", "absolute")
    bad(rootfs, CreateOptions(tmpfs=["/x:size=lots"]), "--tmpfs size", "'lots'")


def test_user_mount_replaces_a_default(rootfs: Path) -> None:
    data = spec(rootfs, CreateOptions(tmpfs=["/dev/shm:size=1g"]))
    shm = mount_at(data, "/dev/shm")
    assert shm["source"] == "tmpfs" and "size=1g" in shm["options"]


def test_mounts_sorted_parents_first(rootfs: Path, tmp_path: Path) -> None:
    data = spec(rootfs, CreateOptions(volumes=[f"{tmp_path}:/a/b/c", f"{tmp_path}:/a"]))
    destinations = [m["destination"] for m in data["mounts"]]
    assert destinations.index("/a") < destinations.index("/a/b/c")


def test_shm_size(rootfs: Path) -> None:
    shm = mount_at(spec(rootfs, CreateOptions(shm_size="128m")), "/dev/shm")
    assert f"size={128 * MiB}" in shm["options"]
    bad(rootfs, CreateOptions(shm_size="big"), "--shm-size", "'big'")
    bad(rootfs, CreateOptions(shm_size="0b"), "--shm-size")


def test_image_host_binds(rootfs: Path) -> None:
    label = json.dumps([{"source": "/usr", "destination": "/usr"},
                        {"source": "/var/lib", "destination": "/var/lib"}])  # fmt: skip
    image = ExecutionConfig(cmd=("sh",), labels={HOST_BINDS_LABEL: label})
    data = spec(rootfs, image=image)
    assert data["mounts"][0] == {"destination": "/usr", "type": "bind", "source": "/usr",
                                 "options": ["rbind", "ro", "rprivate"]}  # fmt: skip
    assert mount_at(data, "/var/lib")["options"] == ["rbind", "ro", "rprivate"]


def test_image_volumes_left_for_the_engine(rootfs: Path, tmp_path: Path) -> None:
    image = ExecutionConfig(cmd=("sh",), volumes=("/data", "/cache/"))
    result = gen(rootfs, CreateOptions(volumes=[f"{tmp_path}:/data"]), image=image)
    assert result.volumes == ["/cache"]
    assert all(m["destination"] != "/cache" for m in result.spec["mounts"])


def test_volumes_prepared_by_the_engine(rootfs: Path, tmp_path: Path) -> None:
    image = ExecutionConfig(cmd=("sh",), volumes=("/cache", "/data"))
    options = CreateOptions(
        volumes=["named:/n:ro,nocopy", "/anon", f"{tmp_path}:/data"],
        mounts=["type=volume,source=other,target=/o,readonly", "type=volume,target=/m"],
    )
    folders = {key: f"/v/{key.strip('/')}" for key in ("named", "/anon", "other", "/m", "/cache")}
    result = gen(rootfs, options, image=image, volumes=folders)
    data = result.spec
    assert mount_at(data, "/n") == {"destination": "/n", "type": "bind", "source": "/v/named",
                                    "options": ["rbind", "ro", "rprivate"]}  # fmt: skip
    assert mount_at(data, "/anon")["source"] == "/v/anon"
    assert mount_at(data, "/o")["options"] == ["rbind", "ro", "rprivate"]
    assert mount_at(data, "/m")["source"] == "/v/m"
    cache = mount_at(data, "/cache")
    assert (cache["source"], cache["options"]) == ("/v/cache", ["rbind", "rprivate"])
    assert mount_at(data, "/data")["source"] == str(tmp_path)
    assert result.volumes == ["/cache"]


def test_volume_requests(tmp_path: Path) -> None:
    image = ExecutionConfig(cmd=("sh",), volumes=("/cache/", "/data", "/t", "/cache", "/"))
    options = CreateOptions(
        volumes=["named:/n:ro,nocopy", "/anon/", f"{tmp_path}:/data"],
        mounts=["type=volume,source=other,target=/o,volume-label=k=v,volume-opt=type=tmpfs,"
                "volume-opt=device=tmpfs", "type=volume,target=/m,volume-nocopy"],
        tmpfs=["/t:size=1m"],
    )  # fmt: skip
    found = volume_requests(image, options)
    assert [(r.key, r.destination, r.read_only, r.nocopy) for r in found] == [
        ("named", "/n", True, True), ("/anon", "/anon", False, False),
        ("other", "/o", False, False), ("/m", "/m", False, True),
        ("/cache", "/cache", False, False),
    ]  # fmt: skip
    assert found[0].mode == "ro,nocopy" and found[2].labels == {"k": "v"}
    assert found[2].options == {"type": "tmpfs", "device": "tmpfs"}
    for text in ("bad$name:/x", "a:/x", "-dash:/x"):
        with pytest.raises(InvalidArgument, match="invalid volume name"):
            volume_requests(image, CreateOptions(volumes=[text]))
    with pytest.raises(InvalidArgument, match="invalid volume name"):
        volume_requests(image, CreateOptions(mounts=["type=volume,source=a/b,target=/x"]))
