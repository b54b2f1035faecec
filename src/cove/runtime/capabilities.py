"""Linux capabilities: names to bits, and applying the five sets to the container process.

Order (as the kernel requires): drop the bounding set while still root, keep the permitted
set across the uid switch (PR_SET_KEEPCAPS), then capset() effective/permitted/inheritable,
then raise the ambient ones. execve then computes the final sets by the kernel's rules.
"""

from __future__ import annotations

from cove.errors import InvalidSpec, ProcessSetupError, SyscallFailed
from cove.oci.data import Data
from cove.sys import constants as c

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.oci.runtime_spec import Capabilities
    from cove.sys import Syscalls

# Numbering from linux/capability.h.
CAPABILITY_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
_NUMBERS = {name: number for number, name in enumerate(CAPABILITY_NAMES)}
ALL_KNOWN = (1 << len(CAPABILITY_NAMES)) - 1


class CapabilitySets(Data):
    """The five sets as bit masks (bit N = capability N)."""

    __slots__ = ("ambient", "bounding", "effective", "inheritable", "permitted")

    def __init__(
        self, bounding: int, effective: int, inheritable: int, permitted: int, ambient: int
    ) -> None:
        self.bounding = bounding
        self.effective = effective
        self.inheritable = inheritable
        self.permitted = permitted
        self.ambient = ambient


def to_mask(names: tuple[str, ...], field: str) -> int:
    mask = 0
    for name in names:
        number = _NUMBERS.get(name.upper() if name.upper().startswith("CAP_") else "")
        if number is None:
            raise InvalidSpec(f"{field}: unknown capability {name!r}")
        mask |= 1 << number
    return mask


def convert(caps: Capabilities) -> CapabilitySets:
    field = "process.capabilities."
    return CapabilitySets(
        bounding=to_mask(caps.bounding, field + "bounding"),
        effective=to_mask(caps.effective, field + "effective"),
        inheritable=to_mask(caps.inheritable, field + "inheritable"),
        permitted=to_mask(caps.permitted, field + "permitted"),
        ambient=to_mask(caps.ambient, field + "ambient"),
    )


def names(mask: int) -> list[str]:
    return [name for number, name in enumerate(CAPABILITY_NAMES) if mask >> number & 1]


def own_bounding_set() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return ALL_KNOWN


def clamp_to_available(sets: CapabilitySets, available: int) -> CapabilitySets:
    """Refuse capabilities this runtime does not have, naming them.

    A config asking for every capability (a privileged container) gets what the runtime
    has instead: that request means "all of them", not these exact bits.
    """
    if sets.bounding & ALL_KNOWN == ALL_KNOWN:
        return CapabilitySets(*(mask & available for mask in _masks(sets)))
    requested = sets.bounding | sets.effective | sets.permitted | sets.inheritable | sets.ambient
    missing = requested & ~available & ALL_KNOWN
    if missing:
        raise InvalidSpec(
            f"process.capabilities: {', '.join(names(missing))} not available: the runtime "
            "itself lacks it (not in its bounding set)"
        )
    return sets


def _masks(sets: CapabilitySets) -> tuple[int, int, int, int, int]:
    return (sets.bounding, sets.effective, sets.inheritable, sets.permitted, sets.ambient)


def drop_bounding(sys: Syscalls, bounding: int) -> None:
    """Remove every capability not in `bounding` from the bounding set (needs root)."""
    last = _last_cap()
    for number in range(last + 1):
        if not bounding >> number & 1:
            try:
                sys.prctl(c.PR_CAPBSET_DROP, number)
            except SyscallFailed as exc:
                raise ProcessSetupError(f"cannot drop capability {number}: {exc}") from None


def apply_sets(sys: Syscalls, sets: CapabilitySets) -> None:
    """After the uid switch: set effective/permitted/inheritable, then raise ambient."""
    try:
        sys.capset(sets.effective, sets.permitted, sets.inheritable)
    except SyscallFailed as exc:
        raise ProcessSetupError(f"cannot set capabilities: {exc}") from None
    sys.prctl(c.PR_SET_KEEPCAPS, 0)
    for number in range(len(CAPABILITY_NAMES)):
        if sets.ambient >> number & 1:
            try:
                sys.prctl(c.PR_CAP_AMBIENT, c.PR_CAP_AMBIENT_RAISE, number)
            except SyscallFailed:
                # The kernel allows ambient only when also permitted and inheritable; runc
                # ignores the others as well, so the default spec works unchanged.
                continue


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as last:
            return int(last.read())
    except OSError:
        return len(CAPABILITY_NAMES) - 1
