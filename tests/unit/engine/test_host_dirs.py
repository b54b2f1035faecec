"""host_dirs: the copy-on-write plan of an image's host folders (layer folders and snapshot
folder in a temporary folder, no root), its OCI mounts, and the dirs it makes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cove.engine.create_options import CreateOptions
from cove.engine.host_dirs import HostDir, dir_name, make_dirs, plan, spec_mount
from cove.engine.spec_mounts import _mounts
from cove.image.bootstrap import HOST_BINDS_LABEL
from cove.image.image_config import ExecutionConfig
from tests.unit.engine.test_specgen import make_host


def label(*pairs: tuple[str, str]) -> dict[str, str]:
    return {HOST_BINDS_LABEL: json.dumps([{"source": s, "destination": d} for s, d in pairs])}


LABELS = label(("/usr", "/usr"), ("/etc", "/etc"), ("/var/lib", "var/lib"))


@pytest.fixture
def layers(tmp_path: Path) -> list[str]:
    """Three layers, bottom first: the skeleton (a file in usr, an empty etc), one with files
    in usr and etc, one whose var/lib is a link out of the layer."""
    skeleton, second, third = (tmp_path / "layers" / name for name in ("1", "2", "3"))
    (skeleton / "usr" / "sbin").mkdir(parents=True)
    (skeleton / "usr" / "sbin" / "policy-rc.d").write_text("exit 101\n")
    (skeleton / "etc").mkdir()
    (skeleton / "var" / "lib").mkdir(parents=True)
    (second / "usr" / "bin").mkdir(parents=True)
    (second / "etc").mkdir()
    (second / "etc" / "motd").write_text("hi\n")
    outside = tmp_path / "outside"
    (outside / "state").mkdir(parents=True)
    (third / "var").mkdir(parents=True)
    (third / "var" / "lib").symlink_to(outside)
    return [str(skeleton), str(second), str(third)]


def test_no_label_no_host_folders(tmp_path: Path) -> None:
    assert plan({}, str(tmp_path / "snap"), []) == ([], [])


def test_copy_on_write_over_the_host_with_the_images_own_files_on_top(
    tmp_path: Path, layers: list[str]
) -> None:
    snap = str(tmp_path / "snap")
    found, warnings = plan(LABELS, snap, layers)
    assert warnings == []
    skeleton, second, _third = layers
    assert found == [
        HostDir("/usr", "/usr", (f"{second}/usr", f"{skeleton}/usr"),
                f"{snap}/host/usr/upper", f"{snap}/host/usr/work"),
        HostDir("/etc", "/etc", (f"{second}/etc",), f"{snap}/host/etc/upper",
                f"{snap}/host/etc/work"),
        # the skeleton's var/lib is empty, the third layer's leaves the layer: neither is used
        HostDir("/var/lib", "/var/lib", (), f"{snap}/host/var_lib/upper",
                f"{snap}/host/var_lib/work"),
    ]  # fmt: skip
    assert spec_mount(found[0]) == {
        "destination": "/usr", "type": "overlay", "source": "overlay",
        "options": [f"lowerdir={second}/usr:{skeleton}/usr:/usr",
                    f"upperdir={snap}/host/usr/upper", f"workdir={snap}/host/usr/work"],
    }  # fmt: skip
    assert spec_mount(found[2])["options"][0] == "lowerdir=/var/lib"


def test_read_only_containers(tmp_path: Path, layers: list[str]) -> None:
    found, warnings = plan(LABELS, str(tmp_path / "snap"), layers, read_only=True)
    assert warnings == [] and all(not d.upper and not d.work for d in found)
    skeleton, second, _third = layers
    # files of the image's own over the host's: a read-only overlay (two lower layers at least)
    assert spec_mount(found[0]) == {
        "destination": "/usr", "type": "overlay", "source": "overlay",
        "options": ["ro", f"lowerdir={second}/usr:{skeleton}/usr:/usr"],
    }  # fmt: skip
    # nothing of the image's own: a read-only bind, as before copy-on-write
    assert spec_mount(found[2]) == {
        "destination": "/var/lib", "type": "bind", "source": "/var/lib",
        "options": ["rbind", "ro", "rprivate"],
    }  # fmt: skip
    assert not (tmp_path / "snap").exists()  # plan makes nothing


@pytest.mark.parametrize(
    ("snap", "overlay_works", "reason"),
    [
        ("snap", False, "overlayfs does not work under the engine's root"),
        ("a,b/snap", True, "overlayfs options cannot name"),
        ("a:b/snap", True, "overlayfs options cannot name"),
        ("x" * 2100 + "/snap", True, "the overlayfs options would be longer than a page"),
    ],
)
def test_read_only_binds_when_overlayfs_cannot_do_it(
    tmp_path: Path, layers: list[str], snap: str, overlay_works: bool, reason: str
) -> None:
    found, warnings = plan(LABELS, str(tmp_path / snap), layers, overlay_works=overlay_works)
    assert found == [HostDir("/usr", "/usr"), HostDir("/etc", "/etc"),
                     HostDir("/var/lib", "/var/lib")]  # fmt: skip
    assert len(warnings) == 1
    assert warnings[0].startswith("the host's folders (/usr, /etc, /var/lib) are read-only")
    assert reason in warnings[0]
    assert all(spec_mount(d)["type"] == "bind" for d in found)


def test_names_of_the_upper_dirs() -> None:
    assert [dir_name(d) for d in ("/usr", "/var/lib", "/lib64")] == ["usr", "var_lib", "lib64"]


def test_make_dirs_takes_the_host_folders_mode_and_keeps_a_copy(tmp_path: Path) -> None:
    source = tmp_path / "host-usr"
    source.mkdir(mode=0o750)
    os.chmod(source, 0o750)  # whatever the umask
    snap = tmp_path / "snap"
    snap.mkdir()
    wanted = HostDir(str(source), "/usr", (), str(snap / "host/usr/upper"),
                     str(snap / "host/usr/work"))  # fmt: skip
    make_dirs([wanted, HostDir("/etc", "/etc")])
    upper = os.stat(wanted.upper)
    assert upper.st_mode & 0o7777 == 0o750 and upper.st_uid == os.stat(source).st_uid
    assert os.path.isdir(wanted.work) and sorted(os.listdir(snap / "host")) == ["usr"]
    (Path(wanted.upper) / "kept").write_text("x")
    make_dirs([wanted])  # a container started again finds its copy
    assert (Path(wanted.upper) / "kept").read_text() == "x"


def test_spec_mounts_host_folders_first(tmp_path: Path, layers: list[str]) -> None:
    image = ExecutionConfig(cmd=("sh",), labels=LABELS)
    found, _ = plan(LABELS, str(tmp_path / "snap"), layers)
    mounts, _volumes = _mounts(image, CreateOptions(), make_host(), False, None, found)
    assert [m["destination"] for m in mounts[:4]] == ["/usr", "/etc", "/var/lib", "/proc"]
    assert [m["type"] for m in mounts[:3]] == ["overlay"] * 3
    # without a plan (a spec made outside the engine's create): read-only binds
    mounts, _volumes = _mounts(image, CreateOptions(), make_host(), False)
    assert mounts[2] == {"destination": "/var/lib", "type": "bind", "source": "/var/lib",
                         "options": ["rbind", "ro", "rprivate"]}  # fmt: skip
