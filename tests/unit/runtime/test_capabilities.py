"""cove.runtime.capabilities: names to bits, clamping, and the order of the system calls."""

from __future__ import annotations

import errno

import pytest

from cove.errors import InvalidSpec, ProcessSetupError, SyscallFailed
from cove.oci.runtime_spec import Capabilities
from cove.runtime import capabilities
from cove.runtime.capabilities import (
    ALL_KNOWN,
    CAPABILITY_NAMES,
    CapabilitySets,
    apply_sets,
    clamp_to_available,
    convert,
    drop_bounding,
    names,
    own_bounding_set,
    to_mask,
)
from cove.sys import constants as c
from cove.sys.fake import RecordingSyscalls

KILL, NET_BIND, AUDIT_WRITE, SYS_ADMIN = 5, 10, 29, 21


class FailingPrctl(RecordingSyscalls):
    """prctl fails for one option only (fail_on would fail every prctl)."""

    def __init__(self, option: int, err: int = errno.EPERM) -> None:
        super().__init__()
        self.option = option
        self.err = err

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> int:
        result = super().prctl(option, arg2, arg3)
        if option == self.option:
            raise SyscallFailed("prctl (fake)", self.err, "Operation not permitted")
        return result


def test_numbering_matches_linux() -> None:
    assert CAPABILITY_NAMES[0] == "CAP_CHOWN"
    assert CAPABILITY_NAMES[KILL] == "CAP_KILL"
    assert CAPABILITY_NAMES[NET_BIND] == "CAP_NET_BIND_SERVICE"
    assert CAPABILITY_NAMES[SYS_ADMIN] == "CAP_SYS_ADMIN"
    assert CAPABILITY_NAMES[AUDIT_WRITE] == "CAP_AUDIT_WRITE"
    assert CAPABILITY_NAMES[40] == "CAP_CHECKPOINT_RESTORE"
    assert len(set(CAPABILITY_NAMES)) == len(CAPABILITY_NAMES) == 41
    assert ALL_KNOWN == (1 << 41) - 1


def test_to_mask_and_names() -> None:
    mask = to_mask(("CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_KILL"), "f")
    assert mask == 1 << KILL | 1 << NET_BIND
    assert names(mask) == ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert to_mask((), "f") == 0
    assert to_mask(("cap_kill",), "f") == 1 << KILL


@pytest.mark.parametrize("bad", ["KILL", "CAP_NOPE", "", "CAP_"])
def test_to_mask_unknown(bad: str) -> None:
    with pytest.raises(InvalidSpec, match=f"^process.x: unknown capability {bad!r}"):
        to_mask(("CAP_KILL", bad), "process.x")


def test_convert_names_the_set_in_errors() -> None:
    caps = Capabilities(
        bounding=("CAP_KILL", "CAP_SYS_ADMIN"),
        effective=("CAP_KILL",),
        permitted=("CAP_KILL",),
        ambient=("CAP_KILL",),
    )
    assert convert(caps) == CapabilitySets(
        bounding=1 << KILL | 1 << SYS_ADMIN,
        effective=1 << KILL,
        inheritable=0,
        permitted=1 << KILL,
        ambient=1 << KILL,
    )
    with pytest.raises(InvalidSpec, match=r"^process\.capabilities\.ambient: unknown"):
        convert(Capabilities(ambient=("CAP_WHATEVER",)))


def test_own_bounding_set_is_a_mask() -> None:
    own = own_bounding_set()
    assert own >= 0
    assert isinstance(own, int)


def test_clamp_keeps_available_requests() -> None:
    sets = CapabilitySets(1 << KILL, 1 << KILL, 0, 1 << KILL, 0)
    assert clamp_to_available(sets, ALL_KNOWN) is sets


def test_clamp_refuses_missing_capabilities_by_name() -> None:
    sets = CapabilitySets(1 << KILL | 1 << SYS_ADMIN, 1 << SYS_ADMIN, 0, 0, 1 << NET_BIND)
    available = ALL_KNOWN & ~(1 << SYS_ADMIN | 1 << NET_BIND)
    with pytest.raises(InvalidSpec) as info:
        clamp_to_available(sets, available)
    assert str(info.value).startswith(
        "process.capabilities: CAP_NET_BIND_SERVICE, CAP_SYS_ADMIN not available"
    )


def test_clamp_all_means_what_the_runtime_has() -> None:
    available = 1 << KILL | 1 << AUDIT_WRITE
    sets = CapabilitySets(ALL_KNOWN, ALL_KNOWN, 0, ALL_KNOWN, 1 << SYS_ADMIN)
    assert clamp_to_available(sets, available) == CapabilitySets(
        available, available, 0, available, 0
    )


def test_drop_bounding_drops_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capabilities, "_last_cap", lambda: 5)
    fake = RecordingSyscalls()
    drop_bounding(fake, 1 << 1 | 1 << 4)
    assert fake.calls == [("prctl", c.PR_CAPBSET_DROP, n, 0) for n in (0, 2, 3, 5)]


def test_drop_bounding_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capabilities, "_last_cap", lambda: 3)
    with pytest.raises(ProcessSetupError, match=r"^cannot drop capability 0: "):
        drop_bounding(FailingPrctl(c.PR_CAPBSET_DROP), 0)


def test_apply_sets_order() -> None:
    fake = RecordingSyscalls()
    apply_sets(fake, CapabilitySets(0, 0b11, 0b100, 0b111, 1 << KILL | 1 << NET_BIND))
    assert fake.calls == [
        ("capset", 0b11, 0b111, 0b100),
        ("prctl", c.PR_SET_KEEPCAPS, 0, 0),
        ("prctl", c.PR_CAP_AMBIENT, c.PR_CAP_AMBIENT_RAISE, KILL),
        ("prctl", c.PR_CAP_AMBIENT, c.PR_CAP_AMBIENT_RAISE, NET_BIND),
    ]


def test_apply_sets_ignores_refused_ambient() -> None:
    fake = FailingPrctl(c.PR_CAP_AMBIENT)
    apply_sets(fake, CapabilitySets(0, 0, 0, 0, 1 << KILL | 1 << NET_BIND))
    assert [call[3] for call in fake.calls if call[1] == c.PR_CAP_AMBIENT] == [KILL, NET_BIND]


def test_apply_sets_capset_failure() -> None:
    fake = RecordingSyscalls(fail_on={"capset": errno.EPERM})
    with pytest.raises(ProcessSetupError, match=r"^cannot set capabilities: "):
        apply_sets(fake, CapabilitySets(0, 1, 0, 1, 0))
