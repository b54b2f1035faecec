"""cove-runtime run by an unprivileged user: `spec --rootless`, a user namespace mapping
only that user's id, and no cgroups (they are not delegated here) with a warning."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lib.bundle import Bundle
from tests.lib.runtimes import find_binary

pytestmark = pytest.mark.root

USER = 1000


def as_user(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to run as another user")
    return subprocess.run(
        [setpriv, f"--reuid={USER}", f"--regid={USER}", "--clear-groups",
         "env", "-i", "PATH=/usr/bin:/bin", "HOME=/", *argv],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_rootless_container_runs_as_mapped_root(bundle: Callable[..., Bundle]) -> None:
    binary = find_binary("cove-runtime")
    assert binary is not None
    b = bundle()
    for parent in b.path.parents:
        if parent == Path("/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    (b.path / "config.json").unlink(missing_ok=True)
    for dirpath, dirnames, filenames in os.walk(b.path):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), USER, USER)
    os.chown(b.path, USER, USER)
    spec = as_user(binary, "spec", "--rootless", cwd=b.path)
    assert spec.returncode == 0, spec.stderr
    config = json.loads((b.path / "config.json").read_text())
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": USER, "size": 1}]
    config["process"]["terminal"] = False
    config["root"]["readonly"] = False
    config["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; touch /tmp/mine"]
    (b.path / "config.json").write_text(json.dumps(config))
    state = b.path / "state"
    res = as_user(binary, "--root", str(state), "run", "rootless-1", cwd=b.path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split()
    assert lines[0] == "0"
    assert lines[1:4] == ["0", str(USER), "1"]
    assert "cgroups: not delegated" in res.stderr
    assert os.stat(b.host_path("/tmp/mine")).st_uid == USER
    assert not (state / "rootless-1").exists()


def test_rootless_mapping_beyond_own_id_goes_through_newuidmap(
    bundle: Callable[..., Bundle],
) -> None:
    """Without newuidmap: a clear error saying it is needed. With it: the mapping goes
    through it, and it refuses a user that has no /etc/subuid range (uid 1000 here)."""
    binary = find_binary("cove-runtime")
    assert binary is not None
    b = bundle()
    for parent in b.path.parents:
        if parent == Path("/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    b.config["linux"]["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user")]
    b.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.config["linux"].pop("resources", None)
    b.save()
    for dirpath, dirnames, filenames in os.walk(b.path):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), USER, USER)
    os.chown(b.path, USER, USER)
    res = as_user(binary, "--root", str(b.path / "state"), "create", "rootless-2", cwd=b.path)
    assert res.returncode == 1
    assert "newuidmap" in res.stderr and "uidMappings" in res.stderr
    if shutil.which("newuidmap"):
        assert "newuidmap failed" in res.stderr, res.stderr
    else:
        assert "needs newuidmap" in res.stderr, res.stderr
    assert not (b.path / "state" / "rootless-2").exists()
