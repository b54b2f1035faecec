"""Error handling: every misuse exits non-zero and a failed create leaves nothing behind.

Every test runs against cove, runc and crun through the `runtime` fixture.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.lib.bundle import Bundle
from tests.lib.probe import wait_for_file
from tests.lib.runtimes import Result, Runtime, process_state, wait_for

pytestmark = pytest.mark.root

BundleFactory = Callable[..., Bundle]


def assert_failed_and_gone(runtime: Runtime, res: Result, container_id: str) -> None:
    """The command failed and no trace of the container is left."""
    assert res.returncode != 0, res
    assert res.stderr.strip() or res.stdout.strip(), "failure without any message"
    assert not runtime.state(container_id).ok
    assert container_id not in runtime.list("--quiet").check().stdout.split()
    assert container_id not in [e["id"] for e in runtime.list_json()]
    assert not (runtime.root / container_id).exists()


# -- ids ----------------------------------------------------------------------
def test_duplicate_id_on_create(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("sleep", "60")
    runtime.create(b, b.id).check()
    before = runtime.state_json(b.id)

    other = bundle("other")
    other.probe("sleep", "60")
    res = runtime.create(other, b.id)
    assert res.returncode != 0, res

    after = runtime.state_json(b.id)
    assert after["pid"] == before["pid"]
    assert after["status"] == "created"
    assert after["bundle"] == before["bundle"]
    assert runtime.list("--quiet").check().stdout.split() == [b.id]


def test_duplicate_id_on_run(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("sleep", "60")
    runtime.run(b, b.id, "--detach").check()
    pid = runtime.state_json(b.id)["pid"]
    res = runtime.run(b, b.id, "--detach")
    assert res.returncode != 0, res
    state = runtime.state_json(b.id)
    assert (state["pid"], state["status"]) == (pid, "running")


@pytest.mark.parametrize("command", ["state", "start", "kill", "delete", "ps"])
def test_unknown_id(runtime: Runtime, command: str) -> None:
    cid = runtime.new_id("missing")
    res = runtime.call(command, cid)
    assert res.returncode != 0, res
    assert not (runtime.root / cid).exists()


def test_delete_force_unknown_id_succeeds(runtime: Runtime) -> None:
    """`delete --force` is idempotent: runc and crun both exit 0 for an unknown id."""
    cid = runtime.new_id("missing")
    runtime.delete(cid, force=True).check()
    assert not (runtime.root / cid).exists()


# -- wrong state --------------------------------------------------------------
def test_start_running_container_fails(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("signals", "/tmp/ready")
    runtime.create(b, b.id).check()
    runtime.start(b.id).check()
    assert wait_for_file(b.host_path("/tmp/ready"))
    res = runtime.start(b.id)
    assert res.returncode != 0, res
    assert runtime.status(b.id) == "running"


def test_start_stopped_container_fails(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("exit", "0")
    runtime.create(b, b.id).check()
    runtime.start(b.id).check()
    assert runtime.wait_status(b.id, "stopped") == "stopped"
    res = runtime.start(b.id)
    assert res.returncode != 0, res
    assert runtime.status(b.id) == "stopped"


def test_kill_stopped_container_fails(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("exit", "0")
    runtime.create(b, b.id).check()
    runtime.start(b.id).check()
    assert runtime.wait_status(b.id, "stopped") == "stopped"
    res = runtime.kill(b.id, "KILL")
    assert res.returncode != 0, res


def test_delete_running_container(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("sleep", "60")
    runtime.run(b, b.id, "--detach").check()
    pid = runtime.state_json(b.id)["pid"]

    res = runtime.delete(b.id)
    assert res.returncode != 0, res
    assert runtime.status(b.id) == "running"
    assert process_state(pid) not in (None, "Z")

    runtime.delete(b.id, force=True).check()
    assert runtime.status(b.id) is None
    assert not (runtime.root / b.id).exists()
    assert wait_for(lambda: process_state(pid) in (None, "Z", "X"), timeout=5)


# -- bad bundles ----------------------------------------------------------------
def test_missing_config(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.remove_config()
    assert_failed_and_gone(runtime, runtime.create(b, b.id), b.id)


def test_malformed_config(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.write_raw('{"ociVersion": "1.0.2", "process": {')
    assert_failed_and_gone(runtime, runtime.create(b, b.id), b.id)


def test_config_not_an_object(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.write_raw("[1, 2, 3]\n")
    assert_failed_and_gone(runtime, runtime.create(b, b.id), b.id)


def test_missing_rootfs(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.config["root"]["path"] = "no-such-rootfs"
    assert_failed_and_gone(runtime, runtime.create(b, b.id), b.id)


def test_missing_rootfs_on_run(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.config["root"]["path"] = "no-such-rootfs"
    assert_failed_and_gone(runtime, runtime.run(b, b.id), b.id)


def test_missing_bundle_directory(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    cid = runtime.new_id()
    res = runtime.create(b.path / "does-not-exist", cid)
    assert_failed_and_gone(runtime, res, cid)


def test_unknown_namespace_type(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.add_namespace("bogus")
    assert_failed_and_gone(runtime, runtime.create(b, b.id), b.id)


def test_empty_args(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.set_args()
    assert_failed_and_gone(runtime, runtime.create(b, b.id), b.id)


def test_missing_executable(runtime: Runtime, bundle: BundleFactory) -> None:
    """Both references look the executable up at create time and fail there."""
    b = bundle()
    b.set_args("/bin/does-not-exist")
    assert_failed_and_gone(runtime, runtime.create(b, b.id), b.id)


def test_failed_create_does_not_disturb_others(runtime: Runtime, bundle: BundleFactory) -> None:
    good = bundle("good")
    good.probe("sleep", "60")
    runtime.create(good, good.id).check()

    bad = bundle("bad")
    bad.config["root"]["path"] = "no-such-rootfs"
    assert_failed_and_gone(runtime, runtime.create(bad, bad.id), bad.id)

    assert runtime.status(good.id) == "created"
    assert runtime.list("--quiet").check().stdout.split() == [good.id]
