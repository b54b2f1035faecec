"""cove.engine.container_diff: Docker's A/C/D rules over an upper dir and its image layers."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

import pytest

from cove.engine.container_diff import (
    LayersView,
    Meta,
    UpperEntry,
    classify,
    mount_points,
    scan_upper,
)

DIR = Meta(True, 4096, stat.S_IFDIR | 0o755, 1_000 * 10**9)
FILE = Meta(False, 3, stat.S_IFREG | 0o644, 1_000 * 10**9)
EMPTY = Meta(False, 0, stat.S_IFREG | 0o644, 1_000 * 10**9)


class FakeLower:
    def __init__(self, files: dict[str, Meta]) -> None:
        self.files = files

    def stat(self, path: str) -> Meta | None:
        return self.files.get(path)

    def children(self, path: str) -> Iterable[str]:
        prefix = path.rstrip("/") + "/"
        return {p[len(prefix) :].split("/")[0] for p in self.files if p.startswith(prefix)}


IMAGE = FakeLower({
    "/etc": DIR, "/etc/passwd": FILE, "/etc/group": FILE, "/bin": DIR, "/bin/sh": FILE,
    "/opt": DIR, "/opt/a": FILE, "/opt/b": FILE, "/opt/sub": DIR, "/opt/sub/c": FILE,
})  # fmt: skip


def lines(changes: list[tuple[str, str]]) -> list[str]:
    return [f"{kind} {path}" for kind, path in changes]


def test_added_changed_deleted_with_parents_first() -> None:
    newer = Meta(True, 4096, stat.S_IFDIR | 0o755, 2_000 * 10**9)
    upper = [
        UpperEntry("/etc", newer, children=frozenset({"group", "passwd", "new"})),
        UpperEntry("/etc/group", FILE, whiteout=True),
        UpperEntry("/etc/new", FILE),
        UpperEntry("/etc/passwd", FILE),
        UpperEntry("/tmp", DIR, children=frozenset({"x"})),
        UpperEntry("/tmp/x", FILE),
    ]
    assert lines(classify(upper, IMAGE)) == [
        "C /etc", "D /etc/group", "A /etc/new", "C /etc/passwd", "A /tmp", "A /tmp/x",
    ]  # fmt: skip


def test_a_copied_up_directory_is_listed_only_for_its_children() -> None:
    # /bin copied up unchanged (same size, mode, mtime): not a change by itself...
    same = [UpperEntry("/bin", DIR, children=frozenset({"sh"})), UpperEntry("/bin/sh", FILE)]
    assert lines(classify(same, IMAGE)) == ["C /bin/sh"]
    # ...but the parent of an addition or a deletion always is
    added = [UpperEntry("/bin", DIR, children=frozenset({"ls"})), UpperEntry("/bin/ls", FILE)]
    assert lines(classify(added, IMAGE)) == ["C /bin", "A /bin/ls"]
    gone = [UpperEntry("/bin", DIR), UpperEntry("/bin/sh", FILE, whiteout=True)]
    assert lines(classify(gone, IMAGE)) == ["C /bin", "D /bin/sh"]


def test_an_opaque_directory_lists_what_it_hides() -> None:
    upper = [
        UpperEntry("/opt", DIR, opaque=True, children=frozenset({"b", "z"})),
        UpperEntry("/opt/b", FILE),
        UpperEntry("/opt/z", FILE),
    ]
    assert lines(classify(upper, IMAGE)) == [
        "C /opt", "D /opt/a", "C /opt/b", "D /opt/sub", "A /opt/z",
    ]  # fmt: skip


def test_sorted_by_components_as_dockers_walk() -> None:
    upper = [UpperEntry("/a-b", FILE), UpperEntry("/a", DIR, children=frozenset({"x"})),
             UpperEntry("/a/x", FILE)]  # fmt: skip
    assert [p for _, p in classify(upper, FakeLower({}))] == ["/a", "/a/x", "/a-b"]


def test_mount_targets_made_by_the_runtime_are_not_changes() -> None:
    upper = [
        UpperEntry("/dev", DIR), UpperEntry("/proc", DIR),
        UpperEntry("/etc", DIR, children=frozenset({"hosts"})), UpperEntry("/etc/hosts", EMPTY),
        UpperEntry("/data", DIR, children=frozenset({"f"})), UpperEntry("/data/f", FILE),
    ]  # fmt: skip
    points = {"/dev", "/proc", "/etc/hosts", "/data"}
    assert lines(classify(upper, IMAGE, points)) == ["A /data", "A /data/f"]


def test_scan_and_layers_on_real_directories(tmp_path: Path) -> None:
    lower_top, lower_base, upper = tmp_path / "l1", tmp_path / "l0", tmp_path / "upper"
    for folder in (lower_base / "etc", lower_base / "var" / "log", lower_top / "etc", upper):
        folder.mkdir(parents=True)
    (lower_base / "etc" / "passwd").write_text("root")
    (lower_base / "etc" / "old").write_text("x")
    (lower_base / "var" / "log" / "a").write_text("x")
    (lower_top / "etc" / "motd").write_text("hi")
    (upper / "etc").mkdir()
    (upper / "etc" / "motd").write_text("changed")
    (upper / "etc" / "added").write_text("new")
    entries = list(scan_upper(str(upper)))
    assert [e.path for e in entries] == ["/etc", "/etc/added", "/etc/motd"]
    layers = LayersView([str(lower_top), str(lower_base)])
    assert layers.stat("/etc/passwd") is not None and layers.stat("/nope") is None
    assert layers.children("/etc") == {"passwd", "old", "motd"}
    result = lines(classify(entries, layers))
    assert "A /etc/added" in result and "C /etc/motd" in result and "C /etc" in result


@pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts are 0/0 devices: mknod needs root")
def test_real_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "group").write_text("g")
    (lower / "opt").mkdir()
    (lower / "opt" / "gone").write_text("x")
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc" / "group", stat.S_IFCHR | 0o600, 0)
    (upper / "opt").mkdir()
    os.setxattr(upper / "opt", "trusted.overlay.opaque", b"y")
    (upper / "opt" / "fresh").write_text("y")
    os.mknod(lower / "etc" / "shadow", stat.S_IFCHR | 0o600, 0)  # a lower whiteout
    layers = LayersView([str(lower)])
    assert layers.stat("/etc/shadow") is None
    result = lines(classify(scan_upper(str(upper)), layers))
    assert result == ["C /etc", "D /etc/group", "C /opt", "A /opt/fresh", "D /opt/gone"]


def test_mount_points_of_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"mounts": [{"destination": "/proc"},'
                                          ' {"destination": "etc/hosts/"}]}')  # fmt: skip
    assert mount_points(str(tmp_path)) == {"/proc", "/etc/hosts"}
    assert mount_points(str(tmp_path / "missing")) == set()
