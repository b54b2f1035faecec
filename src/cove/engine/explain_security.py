"""`cove run --explain`, step 9 (`cove.engine.explain`): the privileges the process drops:
the seccomp filter (a summary: it has no command of its own), the capability sets, the user
and groups.
"""

from __future__ import annotations

import shlex

from cove.engine.explain_context import Context, why
from cove.oci.runtime_spec import Capabilities
from cove.oci.seccomp import SeccompProfile, parse_seccomp
from cove.runtime.capabilities import CAPABILITY_NAMES


def privileges(ctx: Context) -> list[str]:
    process = ctx.process
    if process is None:
        return []
    lines = []
    if not process.no_new_privileges:
        lines += seccomp_lines(ctx, "loaded while CAP_SYS_ADMIN is still held")
    lines += _capabilities(process.capabilities)
    user = process.user
    groups = ",".join(str(gid) for gid in user.additional_gids)
    group_option = f"--groups={groups}" if groups else "--clear-groups"
    lines.append(f"setpriv --reuid={user.uid} --regid={user.gid} {group_option}")
    return lines


def seccomp_lines(ctx: Context, when: str) -> list[str]:
    raw = ctx.spec.linux.seccomp
    if raw is None:
        return ["# seccomp: none: every system call is allowed"]
    profile = parse_seccomp(raw)
    return [
        why(f"a BPF filter checks every system call; {when}"),
        "# seccomp: " + _seccomp_summary(profile),
    ]


def _seccomp_summary(profile: SeccompProfile) -> str:
    by_action: dict[str, set[str]] = {}
    for rule in profile.syscalls:
        by_action.setdefault(rule.action, set()).update(rule.names)
    parts = [f"default {profile.default_action}"]
    allowed = by_action.pop("SCMP_ACT_ALLOW", set())
    if allowed:
        parts.append(f"{len(allowed)} syscalls allowed")
    parts += [f"{len(names)} with {action}" for action, names in by_action.items()]
    parts.append(f"{len(profile.syscalls)} rules")
    arches = " ".join(a.removeprefix("SCMP_ARCH_").lower() for a in profile.architectures)
    parts.append(f"arch {arches or 'native'}")
    return ", ".join(parts)


def _capabilities(caps: Capabilities | None) -> list[str]:
    if caps is None:
        return ["# capabilities: none given: the process keeps all the runtime has"]
    kept = len(caps.bounding)
    dropped = sum(1 for name in CAPABILITY_NAMES if name not in caps.bounding)
    lines = [
        why(f"root here keeps {kept} capabilities; {dropped} of {len(CAPABILITY_NAMES)} dropped"),
        f"capsh --caps={shlex.quote(_cap_text(caps))}",
    ]
    if caps.ambient:
        lines[-1] += " --addamb=" + ",".join(name.lower() for name in caps.ambient)
    return lines


def _cap_text(caps: Capabilities) -> str:
    """cap_from_text(3) of the sets: the bounding set's names, each with its e/i/p flags."""
    sets = (("e", caps.effective), ("i", caps.inheritable), ("p", caps.permitted))
    names = dict.fromkeys([*caps.bounding, *caps.effective, *caps.permitted, *caps.inheritable])
    clauses: dict[str, list[str]] = {}
    for name in names:
        flags = "".join(flag for flag, members in sets if name in members)
        clauses.setdefault(flags, []).append(name.lower())
    return " ".join(",".join(members) + "=" + flags for flags, members in clauses.items())
