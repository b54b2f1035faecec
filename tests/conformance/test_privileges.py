"""Capabilities and no_new_privs as the kernel enforces them, for cove, runc and crun."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from tests.lib.bundle import Bundle
from tests.lib.probe import last_json
from tests.lib.runtimes import Runtime

pytestmark = pytest.mark.root

BundleFactory = Callable[..., Bundle]


def test_mount_needs_cap_sys_admin(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.shell("mkdir -p /mnt/x; mount -t tmpfs none /mnt/x 2>&1; echo status=$?")
    res = runtime.run(b, b.id)
    res.check()
    assert "status=0" not in res.stdout
    assert "permission denied" in res.stdout.lower() or "not permitted" in res.stdout.lower()
    b2 = bundle("admin")
    b2.add_capability("CAP_SYS_ADMIN")
    b2.shell("mkdir -p /mnt/x; mount -t tmpfs none /mnt/x 2>&1; echo status=$?")
    res2 = runtime.run(b2, b2.id)
    res2.check()
    assert "status=0" in res2.stdout


def test_raw_socket_needs_cap_net_raw(runtime: Runtime, bundle: BundleFactory) -> None:
    """busybox ping opens a raw ICMP socket; only loopback, inside the container's netns."""
    b = bundle()
    b.shell("ping -c 1 -W 1 127.0.0.1 2>&1; echo status=$?")
    out = runtime.run(b, b.id).stdout.lower()
    assert "permission denied" in out or "not permitted" in out, out
    b2 = bundle("raw")
    b2.add_capability("CAP_NET_RAW")
    b2.shell("ping -c 1 -W 1 127.0.0.1 2>&1; echo status=$?")
    out2 = runtime.run(b2, b2.id).stdout.lower()
    assert "permission denied" not in out2 and "not permitted" not in out2, out2


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_setuid_binary_and_no_new_privileges(
    runtime: Runtime, bundle: BundleFactory, no_new_privileges: bool
) -> None:
    b = bundle()
    # A setuid-root copy of the probe: with no_new_privs, exec keeps the caller's euid.
    suid = b.host_path("/bin/suidprobe")
    shutil.copy(b.host_path("/bin/coveprobe"), suid)
    suid.chmod(0o4755)
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.process["noNewPrivileges"] = no_new_privileges
    b.set_args("/bin/suidprobe", "ids")
    res = runtime.run(b, b.id)
    res.check()
    ids = last_json(res.stdout)
    assert ids["uid"] == 1000
    assert ids["euid"] == (1000 if no_new_privileges else 0)
