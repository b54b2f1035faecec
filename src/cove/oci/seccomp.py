"""The `linux.seccomp` section of config.json as typed, immutable data.

`parse_seccomp` checks the names the spec defines (actions, architectures, operators,
flags) and the shape of every field, and names the field in each error
("linux.seccomp.syscalls[3].action: unknown action 'SCMP_ACT_FOO'"). Whether this host
can apply a profile (libseccomp's architectures, SCMP_ACT_NOTIFY, kernel flags) is the
runtime's question: see `cove.runtime.seccomp`.

Syscall names are not checked here: a name the host's libseccomp does not know is skipped
when the filter is built, as runc does, so one profile serves old and new kernels.
"""

from __future__ import annotations

from cove.errors import InvalidSpec
from cove.oci.data import Data
from cove.oci.reader import Field, opt_int, opt_str

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Every action of the runtime spec; SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD by another name.
ACTIONS = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
)
# The actions whose result carries a number: errnoRet (EPERM when absent).
ACTIONS_WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
ARCHITECTURES = (
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
)
OPERATORS = (
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)
FLAGS = (
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
)
MAX_ARGS = 6  # a system call has at most six arguments: index 0 to 5
_UINT64_END = 1 << 64
_RET_DATA_END = 1 << 16  # the 16 bits of SECCOMP_RET_DATA carry errnoRet


class SeccompArg(Data):
    """One condition on an argument: `args[index] OP value` (MASKED_EQ: `& value ==
    value_two`)."""

    __slots__ = ("index", "op", "value", "value_two")

    def __init__(self, index: int, op: str, value: int, value_two: int = 0) -> None:
        self.index = index
        self.op = op
        self.value = value
        self.value_two = value_two


class SeccompSyscall(Data):
    """One rule: `action` for the calls in `names` whose arguments match `args`.

    Conditions on different arguments must all hold. Several conditions on the same
    argument cannot be combined in one libseccomp rule: like runc, the runtime then adds
    one rule per condition, so any of them matching is enough.
    """

    __slots__ = ("action", "args", "errno_ret", "names")

    def __init__(
        self,
        names: tuple[str, ...],
        action: str,
        errno_ret: int | None = None,
        args: tuple[SeccompArg, ...] = (),
    ) -> None:
        self.names = names
        self.action = action
        self.errno_ret = errno_ret
        self.args = args


class SeccompProfile(Data):
    __slots__ = (
        "architectures",
        "default_action",
        "default_errno_ret",
        "flags",
        "listener_metadata",
        "listener_path",
        "syscalls",
    )

    def __init__(
        self,
        default_action: str,
        default_errno_ret: int | None = None,
        architectures: tuple[str, ...] = (),
        flags: tuple[str, ...] = (),
        listener_path: str = "",
        listener_metadata: str = "",
        syscalls: tuple[SeccompSyscall, ...] = (),
    ) -> None:
        self.default_action = default_action
        self.default_errno_ret = default_errno_ret
        self.architectures = architectures
        self.flags = flags
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata
        self.syscalls = syscalls

    def uses_notify(self) -> bool:
        return self.default_action == "SCMP_ACT_NOTIFY" or any(
            rule.action == "SCMP_ACT_NOTIFY" for rule in self.syscalls
        )


def parse_seccomp(data: Any, path: str = "linux.seccomp") -> SeccompProfile:
    """Convert the decoded `linux.seccomp` object (or a reader `Field` over it)."""
    node = (data if isinstance(data, Field) else Field(data, path)).obj()
    default_action = _action(node.need("defaultAction"))
    if default_action == "SCMP_ACT_NOTIFY":
        raise node.need("defaultAction").fail("SCMP_ACT_NOTIFY cannot be the default action")
    syscalls = node.get("syscalls")
    profile = SeccompProfile(
        default_action=default_action,
        default_errno_ret=_errno_ret(node, "defaultErrnoRet"),
        architectures=_names(node, "architectures", ARCHITECTURES, "architecture"),
        flags=_names(node, "flags", FLAGS, "flag"),
        listener_path=opt_str(node, "listenerPath"),
        listener_metadata=opt_str(node, "listenerMetadata"),
        syscalls=() if syscalls is None else tuple(_syscall(item) for item in syscalls.items()),
    )
    if profile.listener_path and not profile.listener_path.startswith("/"):
        raise node.need("listenerPath").fail(
            f"must be an absolute path, got {profile.listener_path!r}"
        )
    if profile.uses_notify() and not profile.listener_path:
        raise node.fail("SCMP_ACT_NOTIFY needs listenerPath, the seccomp agent's socket")
    return profile


def _action(node: Field) -> str:
    action = node.as_str()
    if action not in ACTIONS:
        raise node.fail(f"unknown action {action!r}")
    return action


def _errno_ret(parent: Field, key: str) -> int | None:
    value = opt_int(parent, key)
    if value is not None and not 0 <= value < _RET_DATA_END:
        raise parent.need(key).fail(f"out of range: {value} (0 to {_RET_DATA_END - 1})")
    return value


def _names(parent: Field, key: str, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    child = parent.get(key)
    if child is None:
        return ()
    found: list[str] = []
    for item in child.items():
        name = item.as_str()
        if name not in known:
            raise item.fail(f"unknown {what} {name!r}")
        if name not in found:
            found.append(name)
    return tuple(found)


def _syscall(node: Field) -> SeccompSyscall:
    names_node = node.need("names")
    names = names_node.strs()
    if not names:
        raise names_node.fail("must name at least one system call")
    for index, name in enumerate(names):
        if not name:
            raise InvalidSpec(f"{names_node.path}[{index}]: empty system call name")
    args = node.get("args")
    return SeccompSyscall(
        names=names,
        action=_action(node.need("action")),
        errno_ret=_errno_ret(node, "errnoRet"),
        args=() if args is None else _args(args),
    )


def _args(node: Field) -> tuple[SeccompArg, ...]:
    args = []
    for item in node.items():
        index_node = item.need("index")
        index = index_node.as_int()
        if not 0 <= index < MAX_ARGS:
            raise index_node.fail(f"out of range: {index} (a system call has arguments 0 to 5)")
        op_node = item.need("op")
        op = op_node.as_str()
        if op not in OPERATORS:
            raise op_node.fail(f"unknown operator {op!r}")
        args.append(
            SeccompArg(
                index=index,
                op=op,
                value=_uint64(item, "value", required=True),
                value_two=_uint64(item, "valueTwo", required=False),
            )
        )
    return tuple(args)


def _uint64(parent: Field, key: str, required: bool) -> int:
    child = parent.need(key) if required else parent.get(key)
    if child is None:
        return 0
    value = child.as_int()
    if not 0 <= value < _UINT64_END:
        raise child.fail(f"out of range: {value} (an unsigned 64-bit value)")
    return value
