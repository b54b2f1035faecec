"""`cove image bootstrap --from-host`: the seed's chroot recipe as an image, run through
cove-runtime from a bundle whose root is the mounted image."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.image.test_import import cove
from tests.lib.runtimes import find_binary

pytestmark = pytest.mark.root


def run_in_image(root: Path, image: str, script: str, tmp_path: Path) -> str:
    runtime = find_binary("cove-runtime")
    assert runtime is not None
    mounted = cove(root, "image", "mount", image)
    assert mounted.returncode == 0, mounted.stderr
    try:
        bundle = tmp_path / f"bundle-{image.replace(':', '-')}"
        bundle.mkdir()
        assert subprocess.run([runtime, "spec", "--bundle", str(bundle)]).returncode == 0
        config = json.loads((bundle / "config.json").read_text())
        config["process"]["terminal"] = False
        config["process"]["args"] = ["/bin/sh", "-c", script]
        config["root"] = {"path": mounted.stdout.strip(), "readonly": True}
        (bundle / "config.json").write_text(json.dumps(config))
        command = [runtime, "--root", str(tmp_path / "state"), "run", "--bundle", str(bundle),
                   f"seed-{os.getpid()}"]  # fmt: skip
        ran = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        return ran.stdout
    finally:
        assert cove(root, "image", "unmount", image).returncode == 0
        assert str(root) not in Path("/proc/self/mountinfo").read_text()


def test_host_image_runs_the_hosts_programs(tmp_path: Path) -> None:
    root = tmp_path / "engine"
    made = cove(root, "image", "bootstrap", "--from-host", "host:seed")
    assert made.returncode == 0, made.stderr
    inspect = json.loads(cove(root, "image", "inspect", "host:seed").stdout)[0]
    assert inspect["Size"] < 1_000_000  # the host's folders are bound, not copied
    out = run_in_image(root, "host:seed", "ls /usr/bin | wc -l; touch /usr/x 2>&1; true", tmp_path)
    count, error = out.split("\n", 1)
    assert int(count) == len(os.listdir("/usr/bin"))
    assert "Read-only file system" in error


def _fake_host(path: Path) -> Path:
    """A small host: merged /usr with busybox, /etc, /var/lib, and the usual root links."""
    (path / "usr" / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", path / "usr" / "bin" / "busybox")
    for applet in ("sh", "ls", "wc", "cat", "touch", "stat"):
        (path / "usr" / "bin" / applet).symlink_to("busybox")
    (path / "etc").mkdir()
    (path / "etc" / "hostname").write_text("fake-host\n")
    (path / "var" / "lib" / "state").mkdir(parents=True)
    (path / "bin").symlink_to("usr/bin")
    return path


def test_copy_makes_a_real_layer(tmp_path: Path) -> None:
    host = _fake_host(tmp_path / "host")
    root = tmp_path / "engine"
    for name, extra in (("fake:bound", []), ("fake:copied", ["--copy"])):
        made = cove(root, "image", "bootstrap", "--from-host", "--host-root", str(host),
                    *extra, name)  # fmt: skip
        assert made.returncode == 0, made.stderr
    bound = json.loads(cove(root, "image", "inspect", "fake:bound").stdout)[0]
    copied = json.loads(cove(root, "image", "inspect", "fake:copied").stdout)[0]
    assert len(bound["RootFS"]["Layers"]) == 1 and len(copied["RootFS"]["Layers"]) == 2
    assert "io.cove.image.host-binds" in (bound["Config"]["Labels"] or {})
    assert not copied["Config"]["Labels"]
    script = "cat /etc/hostname; ls /usr/bin | wc -l; stat -c %a /tmp; ls -d /var/lib/state"
    for image in ("fake:bound", "fake:copied"):
        lines = run_in_image(root, image, script, tmp_path).split()
        assert lines == ["fake-host", "7", "1777", "/var/lib/state"], image
    # the copy is portable: it saves with the host's files inside
    saved = tmp_path / "copied.tar"
    assert cove(root, "save", "-o", str(saved), "fake:copied").returncode == 0
    assert saved.stat().st_size > (host / "usr" / "bin" / "busybox").stat().st_size


def test_a_host_root_without_usr_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "engine"
    res = cove(root, "image", "bootstrap", "--from-host", "--host-root", str(tmp_path), "x:1")
    assert res.returncode == 1 and "has no usr folder" in res.stderr
    assert cove(root, "images", "-q").stdout == ""


def test_debootstrap_image_runs(tmp_path: Path) -> None:
    """A Debian image built by debootstrap from the mirror apt uses (Debian's package
    service, which these machines reach), run through cove-runtime."""
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        pytest.skip("debootstrap (Debian package) is not installed")
    root = tmp_path / "engine"
    made = cove(root, "image", "bootstrap", "--debootstrap", "bookworm", "--include",
                "iproute2", "debian:bookworm")  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = run_in_image(root, "debian:bookworm",
                       "cat /etc/debian_version; ip -V; ip -o link | wc -l", tmp_path)  # fmt: skip
    version, iproute, links = out.strip().split("\n")
    assert version.startswith("12.")
    assert "iproute2" in iproute
    assert links == "1"  # the container's own network namespace: only lo
    assert not any((root / "tmp").iterdir())  # the debootstrap folder is gone
