"""`cove run --explain`, the process steps (`cove.engine.explain`): 3. the namespaces
(joined with nsenter, made with unshare, the id maps, the session keyring), 8. the hostname
and the resource limits, 10. the program (umask, cwd, no_new_privs, the exec).
"""

from __future__ import annotations

import shlex

from cove.engine.explain_context import Context, quote_path, why
from cove.engine.explain_security import seccomp_lines
from cove.oci.runtime_spec import Process

# Namespace type -> the long option of unshare(1) and nsenter(1).
_NS_OPTIONS = {
    "mount": "--mount", "network": "--net", "uts": "--uts", "pid": "--pid", "ipc": "--ipc",
    "user": "--user", "cgroup": "--cgroup", "time": "--time",
}  # fmt: skip
# What each namespace keeps to the container (for the "why" line).
_NS_WHAT = {
    "mount": "mounts", "network": "network", "uts": "hostname", "pid": "process ids",
    "ipc": "IPC", "user": "user ids", "cgroup": "cgroup tree", "time": "clocks",
}  # fmt: skip
# The order the runtime's setup child joins existing namespaces in (user first, mount last).
_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")
_RLIM_INFINITY = 2**64 - 1  # "unlimited" as the runtime spec writes it (a uint64)
_DEFAULT_UMASK = 0o022  # what the runtime sets when process.user.umask is absent


# --- 3. namespaces -------------------------------------------------------------------------


def namespaces(ctx: Context) -> list[str]:
    namespaces = ctx.spec.linux.namespaces
    joined = sorted((ns for ns in namespaces if ns.path), key=lambda ns: _JOIN_ORDER.index(ns.type))
    new = [ns.type for ns in namespaces if not ns.path]
    lines = []
    if new:
        what = ", ".join(_NS_WHAT[name] for name in new)
        lines.append(why(f"its own {what}: the host's stay out of sight"))
    if joined:
        paths = [f"{_NS_OPTIONS[ns.type]}={quote_path(ns.path)}" for ns in joined]
        lines.append("nsenter " + " ".join(paths))
    if new:
        flags = [*(_NS_OPTIONS[name] for name in new), "--fork", *_time_offsets(ctx)]
        lines.append("unshare " + " ".join(flags))
    if "user" in new:
        lines += _id_maps(ctx)
    if ctx.container_id:
        lines.append(why("a keyring of its own: the container cannot read the host's keys"))
        lines.append(f"keyctl session {shlex.quote('_ses.' + ctx.container_id)}")
    return lines


def _time_offsets(ctx: Context) -> list[str]:
    return [f"--{clock}={offset.secs}" for clock, offset in ctx.spec.linux.time_offsets.items()]


def _id_maps(ctx: Context) -> list[str]:
    linux = ctx.spec.linux
    lines = []
    first = linux.uid_mappings[0] if linux.uid_mappings else None
    if first is not None:
        lines.append(
            why(
                f"written from the host (PID: the new shell's pid there): uid "
                f"{first.container_id} inside is uid {first.host_id} outside"
            )
        )
    for name, mappings in (("uid_map", linux.uid_mappings), ("gid_map", linux.gid_mappings)):
        entries = [f"{m.container_id} {m.host_id} {m.size}" for m in mappings]
        if len(entries) == 1:
            lines.append(f"echo {shlex.quote(entries[0])} > /proc/PID/{name}")
        elif entries:
            quoted = " ".join(shlex.quote(entry) for entry in entries)
            lines.append(f"printf '%s\\n' {quoted} > /proc/PID/{name}")
    return lines


# --- 8. hostname and limits ----------------------------------------------------------------


def identity(ctx: Context) -> list[str]:
    lines = []
    if ctx.spec.hostname:
        lines.append(f"hostname {shlex.quote(ctx.spec.hostname)}")
    if ctx.spec.domainname:
        lines.append(f"domainname {shlex.quote(ctx.spec.domainname)}")
    process = ctx.process
    if process is not None:
        lines += _rlimits(process)
        if process.oom_score_adj is not None:
            lines.append(f"echo {process.oom_score_adj} > /proc/$$/oom_score_adj")
    if lines:
        lines.append("# (cove-runtime create stops here; cove-runtime start goes on)")
    return lines


def _rlimits(process: Process) -> list[str]:
    options = []
    for limit in process.rlimits:
        if not limit.type.startswith("RLIMIT_"):
            continue
        name = limit.type.removeprefix("RLIMIT_").lower()
        options.append(f"--{name}={_rlimit_value(limit.soft)}:{_rlimit_value(limit.hard)}")
    return [f"prlimit --pid $$ {' '.join(options)}"] if options else []


def _rlimit_value(value: int) -> str:
    return "unlimited" if value >= _RLIM_INFINITY else str(value)


# --- 10. the program -----------------------------------------------------------------------


def program(ctx: Context) -> list[str]:
    process = ctx.process
    if process is None:
        return []
    umask = _DEFAULT_UMASK if process.user.umask is None else process.user.umask
    lines = [f"umask {umask:04o}", f"cd {quote_path(process.cwd)}"]
    if process.apparmor_profile:
        lines.append(f"# AppArmor profile {process.apparmor_profile}, from the exec on")
    if process.selinux_label:
        lines.append(f"# SELinux label {process.selinux_label}, from the exec on")
    if process.no_new_privileges:
        lines += [why("no setuid program can raise privileges again"), "setpriv --no-new-privs"]
        lines += seccomp_lines(ctx, "loaded last, after no_new_privs")
    names = [entry.partition("=")[0] for entry in process.env]
    count = f"{len(names)} variable{'s' if len(names) != 1 else ''}"
    lines.append(f"# environment: {count}" + (f": {', '.join(names)}" if names else ""))
    lines.append("exec " + shlex.join(process.args))
    return lines
