"""Seccomp filters: a parsed `linux.seccomp` profile compiled by libseccomp and loaded.

The binding is pyseccomp (ctypes over the system's libseccomp.so.2). It is imported only
when a container has a profile, so the others never pay for it (~20 ms: ctypes, and
`ctypes.util.find_library`, which runs `ldconfig -p`).

Where each step belongs:
- `compile_filter` (or `compile_check`) in the runtime, before the fork: it imports
  pyseccomp and so loads libseccomp from the host. It must never first happen after
  pivot_root, where the library (and `ldconfig`) would come from the container's image
  and cove's own source is out of reach (so import this module before it, too). The
  compiled filter lives in memory, so the forked init inherits it. `load_filter`, which
  compiles and loads in one go, is only for a process that has not pivoted.
- `CompiledFilter.load` in the container's process, after which only execve follows. The
  kernel accepts a filter from a process with no_new_privs set or with CAP_SYS_ADMIN:
  with `process.noNewPrivileges` load it last (after no_new_privs); without it load it
  while CAP_SYS_ADMIN is still held, before capabilities are dropped (runc does the
  same). The filter never sets no_new_privs by itself (libseccomp would, by default).

Behaviour follows runc: SCMP_ACT_ERRNO and SCMP_ACT_TRACE return EPERM unless
`errnoRet` (`defaultErrnoRet` for the default action) says otherwise, and errnoRet is
ignored for other actions; names this libseccomp does not know are skipped (each one
noted in `CompiledFilter.notes`); a rule whose action is the default action is skipped
(libseccomp refuses it); several conditions on one argument become one rule per
condition. SCMP_ACT_NOTIFY and SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (which only means
something with it) are not supported: cove has no seccomp agent (listenerPath) support.
"""

from __future__ import annotations

import errno as _errno
import os

from cove.errors import InvalidSpec, ProcessSetupError
from cove.oci.seccomp import ACTIONS, ARCHITECTURES, FLAGS, OPERATORS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from cove.oci.seccomp import SeccompProfile, SeccompSyscall

_PATH = "linux.seccomp"
_NR_SCMP_ERROR = -1  # what libseccomp resolves an unknown syscall name to
_NOT_SUPPORTED = "is not supported by cove: it has no seccomp agent (listenerPath) support"
# libseccomp's API level (seccomp_api_get) at which the kernel offers each feature.
_ACTION_API_LEVEL = {"SCMP_ACT_KILL_PROCESS": 3, "SCMP_ACT_LOG": 3}
_FLAG_API_LEVEL = {
    "SECCOMP_FILTER_FLAG_TSYNC": 2,
    "SECCOMP_FILTER_FLAG_LOG": 3,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}


class CompiledFilter:
    """A filter built by libseccomp and not loaded yet.

    `notes` lists what was skipped while building (unknown syscall names, rules equal
    to the default action), one line each, for a debug log.
    """

    __slots__ = ("_filter", "notes")

    def __init__(self, syscall_filter: Any, notes: tuple[str, ...]) -> None:
        self._filter = syscall_filter
        self.notes = notes

    def load(self) -> None:
        """Install the filter on the calling thread (with TSYNC: on all its threads)."""
        try:
            self._filter.load()
        except OSError as exc:
            hint = ""
            if exc.errno == _errno.EACCES:
                hint = (
                    " (without no_new_privileges the kernel wants CAP_SYS_ADMIN: load the"
                    " filter before dropping capabilities)"
                )
            raise ProcessSetupError(
                f"{_PATH}: cannot load the filter: {_strerror(exc)}{hint}"
            ) from None

    def export_pfc(self) -> str:
        """libseccomp's pseudo filter code: readable text of the whole filter."""
        return self._export("export_pfc").decode()

    def export_bpf(self) -> bytes:
        """The BPF program the kernel would get (struct sock_filter entries)."""
        return self._export("export_bpf")

    def _export(self, method: str) -> bytes:
        # A memory file, not a pipe: the text of a big profile overflows a pipe's buffer.
        fd = os.memfd_create("cove-seccomp", os.MFD_CLOEXEC)
        try:
            getattr(self._filter, method)(_Descriptor(fd))
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)


class _Descriptor:
    """The `.fileno()` that pyseccomp's export functions want, over a raw descriptor."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


def compile_filter(profile: SeccompProfile) -> CompiledFilter:
    """Build the filter of `profile` without loading it; InvalidSpec if it cannot be."""
    check_supported(profile)
    sc = _pyseccomp()
    default = _action_value(
        sc, profile.default_action, profile.default_errno_ret, f"{_PATH}.defaultAction"
    )
    try:
        syscall_filter = sc.SyscallFilter(default)
    except OSError as exc:
        raise InvalidSpec(
            f"{_PATH}.defaultAction: libseccomp refuses {profile.default_action}: {_strerror(exc)}"
        ) from None
    # libseccomp sets no_new_privs while loading unless told not to; the spec's
    # process.noNewPrivileges decides that, not the presence of a filter.
    syscall_filter.set_attr(sc.Attr.CTL_NNP, 0)
    try:
        # the kernel's own errno from seccomp_load (EACCES...), not libseccomp's ECANCELED
        syscall_filter.set_attr(sc.Attr.API_SYSRAWRC, 1)
    except OSError:  # libseccomp before 2.5 returns the raw errno anyway
        pass
    _add_architectures(sc, syscall_filter, profile)
    _set_flags(sc, syscall_filter, profile)
    notes: list[str] = []
    for index, rule in enumerate(profile.syscalls):
        _add_rule(sc, syscall_filter, default, index, rule, notes)
    return CompiledFilter(syscall_filter, tuple(notes))


def compile_check(profile: SeccompProfile) -> None:
    """Reject a profile that cannot be built (for `create`, before anything starts)."""
    compile_filter(profile)


def load_filter(profile: SeccompProfile) -> None:
    """Build and load in one step (see the module's note on where each belongs)."""
    compile_filter(profile).load()


def check_supported(profile: SeccompProfile) -> None:
    """The parts of a valid profile cove cannot apply: InvalidSpec naming the field.
    Needs no libseccomp."""
    if profile.default_action == "SCMP_ACT_NOTIFY":
        raise InvalidSpec(f"{_PATH}.defaultAction: SCMP_ACT_NOTIFY {_NOT_SUPPORTED}")
    for index, rule in enumerate(profile.syscalls):
        if rule.action == "SCMP_ACT_NOTIFY":
            raise InvalidSpec(f"{_PATH}.syscalls[{index}].action: SCMP_ACT_NOTIFY {_NOT_SUPPORTED}")
    for index, flag in enumerate(profile.flags):
        if flag == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV":
            raise InvalidSpec(
                f"{_PATH}.flags[{index}]: {flag} is not supported by cove: it only applies"
                " to SCMP_ACT_NOTIFY, and cove has no seccomp agent (listenerPath) support"
            )


def features() -> dict[str, Any]:
    """The `linux.seccomp` part of the `features` document (runc's shape)."""
    try:
        sc = _pyseccomp()
    except ProcessSetupError:
        return {"enabled": False}
    level = _api_level(sc)
    actions = [
        action
        for action in ACTIONS
        if action != "SCMP_ACT_NOTIFY" and level >= _ACTION_API_LEVEL.get(action, 1)
    ]
    return {
        "enabled": True,
        "actions": sorted(actions),
        "operators": sorted(OPERATORS),
        "archs": sorted(name for name in ARCHITECTURES if _arch_token(name)),
        "knownFlags": list(FLAGS),
        "supportedFlags": [flag for flag in FLAGS if level >= _FLAG_API_LEVEL.get(flag, 1 << 30)],
    }


def libseccomp_version() -> str:
    """ "MAJOR.MINOR.MICRO" of the libseccomp pyseccomp loaded (ProcessSetupError without)."""
    import ctypes

    _pyseccomp()

    class Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    function = _library().seccomp_version
    function.argtypes = ()
    function.restype = ctypes.POINTER(Version)
    version = function().contents
    return f"{version.major}.{version.minor}.{version.micro}"


# -- building -----------------------------------------------------------------------------


def _action_value(sc: ModuleType, action: str, errno_ret: int | None, where: str) -> int:
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return int(sc.KILL_THREAD)
    if action == "SCMP_ACT_KILL_PROCESS":
        return int(sc.KILL_PROCESS)
    if action == "SCMP_ACT_TRAP":
        return int(sc.TRAP)
    if action == "SCMP_ACT_ALLOW":
        return int(sc.ALLOW)
    if action == "SCMP_ACT_LOG":
        return int(sc.LOG)
    if action == "SCMP_ACT_ERRNO":
        return int(sc.ERRNO(_errno.EPERM if errno_ret is None else errno_ret))
    if action == "SCMP_ACT_TRACE":
        return int(sc.TRACE(_errno.EPERM if errno_ret is None else errno_ret))
    if action == "SCMP_ACT_NOTIFY":
        raise InvalidSpec(f"{where}: SCMP_ACT_NOTIFY {_NOT_SUPPORTED}")
    raise InvalidSpec(f"{where}: unknown action {action!r}")


def _add_architectures(sc: ModuleType, syscall_filter: Any, profile: SeccompProfile) -> None:
    for index, name in enumerate(profile.architectures):
        where = f"{_PATH}.architectures[{index}]"
        token = _arch_token(name)
        if not token:
            raise InvalidSpec(f"{where}: {name} is not supported by libseccomp {_version_or()}")
        try:
            syscall_filter.add_arch(token)
        except OSError as exc:
            if exc.errno != _errno.EEXIST:  # the native architecture is always there
                raise InvalidSpec(f"{where}: cannot add {name}: {_strerror(exc)}") from None


def _set_flags(sc: ModuleType, syscall_filter: Any, profile: SeccompProfile) -> None:
    attributes = {
        "SECCOMP_FILTER_FLAG_TSYNC": sc.Attr.CTL_TSYNC,
        "SECCOMP_FILTER_FLAG_LOG": sc.Attr.CTL_LOG,
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW": sc.Attr.CTL_SSB,
    }
    for index, flag in enumerate(profile.flags):
        where = f"{_PATH}.flags[{index}]"
        if flag not in attributes:
            raise InvalidSpec(f"{where}: {flag} is not supported by cove")
        try:
            syscall_filter.set_attr(attributes[flag], 1)
        except OSError as exc:
            raise InvalidSpec(
                f"{where}: {flag} is not supported by libseccomp {_version_or()} or this "
                f"kernel: {_strerror(exc)}"
            ) from None


def _add_rule(
    sc: ModuleType,
    syscall_filter: Any,
    default: int,
    index: int,
    rule: SeccompSyscall,
    notes: list[str],
) -> None:
    where = f"{_PATH}.syscalls[{index}]"
    action = _action_value(sc, rule.action, rule.errno_ret, f"{where}.action")
    if action == default:
        notes.append(f"{where}: the same action as the default action: skipped")
        return
    conditions = [
        sc.Arg(arg.index, getattr(sc, arg.op[len("SCMP_CMP_") :]), arg.value, arg.value_two)
        for arg in rule.args
    ]
    indexes = [arg.index for arg in rule.args]
    if len(set(indexes)) < len(indexes):
        # libseccomp cannot hold two conditions on one argument in a rule: one rule each
        groups = [[condition] for condition in conditions]
    else:
        groups = [conditions]
    for name_index, name in enumerate(rule.names):
        number = _resolve(sc, name)
        if number == _NR_SCMP_ERROR:
            notes.append(f"{where}.names[{name_index}]: unknown system call {name!r}: skipped")
            continue
        for group in groups:
            try:
                syscall_filter.add_rule(action, number, *group)
            except OSError as exc:
                raise InvalidSpec(
                    f"{where}: libseccomp refuses the rule for {name!r}: {_strerror(exc)}"
                ) from None


def _resolve(sc: ModuleType, name: str) -> int:
    """The native number of `name` (negative pseudo numbers for other architectures' calls),
    or -1 when libseccomp does not know it."""
    try:
        return int(sc.resolve_syscall(sc.Arch.NATIVE, name))
    except (ValueError, UnicodeError):  # an embedded NUL, a lone surrogate
        return _NR_SCMP_ERROR


# -- the library --------------------------------------------------------------------------


def _pyseccomp() -> ModuleType:
    """Import pyseccomp (loading libseccomp.so.2); ProcessSetupError when it cannot be."""
    try:
        import pyseccomp  # type: ignore[import-untyped]
    except ImportError:
        raise ProcessSetupError(
            f"{_PATH}: the Python package pyseccomp is not installed (pip install pyseccomp)"
        ) from None
    except (RuntimeError, OSError) as exc:  # pyseccomp raises RuntimeError without the lib
        raise ProcessSetupError(
            f"{_PATH}: cannot load libseccomp.so.2 (Debian package libseccomp2): {exc}"
        ) from None
    module: ModuleType = pyseccomp
    return module


def _library() -> Any:
    """The libseccomp pyseccomp loaded, for the calls it does not wrap."""
    import ctypes

    return ctypes.CDLL("libseccomp.so.2")


def _arch_token(name: str) -> int:
    """libseccomp's token for SCMP_ARCH_NAME, 0 when this libseccomp does not know it."""
    import ctypes

    function = _library().seccomp_arch_resolve_name
    function.argtypes = (ctypes.c_char_p,)
    function.restype = ctypes.c_uint32
    return int(function(name[len("SCMP_ARCH_") :].lower().encode()))


def _api_level(sc: ModuleType) -> int:
    try:
        return int(sc.get_api())
    except NotImplementedError:  # libseccomp before 2.4
        return 1


def _version_or() -> str:
    try:
        return libseccomp_version()
    except (ProcessSetupError, AttributeError):
        return "(unknown version)"


def _strerror(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()
