"""cove.sys.fake.RecordingSyscalls: the fake the other unit tests rely on."""

from __future__ import annotations

import errno

import pytest

from cove.errors import SyscallFailed
from cove.sys.fake import RecordingSyscalls


def test_records_every_call_in_order() -> None:
    fake = RecordingSyscalls()
    fake.mount("src", "/t", "tmpfs", 3, "mode=755")
    fake.mount("", "/", "", 4)
    fake.unshare(0x20000)
    fake.setns(5, 0)
    fake.sethostname("h")
    fake.setdomainname("d")
    assert fake.prctl(38, 1) == 0
    fake.setgroups((1, 2))  # type: ignore[arg-type]
    fake.capset(1, 2, 3)
    fake.join_session_keyring("_ses.ct")
    fake.pivot_root(".", ".")
    fake.umount2(".", 2)
    assert fake.calls == [
        ("mount", "src", "/t", "tmpfs", 3, "mode=755"),
        ("mount", "", "/", "", 4, ""),
        ("unshare", 0x20000),
        ("setns", 5, 0),
        ("sethostname", "h"),
        ("setdomainname", "d"),
        ("prctl", 38, 1, 0),
        ("setgroups", [1, 2]),
        ("capset", 1, 2, 3),
        ("join_session_keyring", "_ses.ct"),
        ("pivot_root", ".", "."),
        ("umount2", ".", 2),
    ]
    assert fake.mounts() == [
        fake.calls[0],
        fake.calls[1],
        ("pivot_root", ".", "."),
        ("umount2", ".", 2),
    ]


def test_fail_on_raises_after_recording() -> None:
    fake = RecordingSyscalls(fail_on={"unshare": errno.EPERM})
    fake.mount("a", "b", "c", 0)
    with pytest.raises(SyscallFailed) as info:
        fake.unshare(1)
    assert info.value.errno == errno.EPERM
    assert fake.calls[-1] == ("unshare", 1)


def test_instances_do_not_share_state() -> None:
    one, two = RecordingSyscalls(), RecordingSyscalls()
    one.sethostname("x")
    assert two.calls == []
