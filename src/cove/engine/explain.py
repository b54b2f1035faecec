"""`cove run --explain`: a container's isolation, step by step, as shell commands.

`explain(spec, ...)` reads an OCI runtime spec (config.json as a dict) and writes, in the
order cove-runtime performs them, the commands a person would type as root to build the
same container by hand: the overlay root, the cgroup files and the values written to them,
unshare, the mounts, the device nodes, pivot_root, the hidden paths, the limits and the
privileges dropped, and finally the exec. Each step is a numbered heading ("# 3.
namespaces") with a "# why:" line where the reason is not obvious.

It is a reading aid, not a script to run: a few steps have no command of their own
(seccomp, the eBPF device filter of cgroup v2) and appear as comments, and a masked path is
shown as a tmpfs since the spec does not say whether it is a file or a folder. The cgroup
files and units are the runtime's own (cove.runtime.cgroups.v1 / v2), and so are the
default devices, /dev links and device cgroup rules, so the text follows the runtime.
Nothing here touches the system.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cove.errors import CgroupError
from cove.oci.resources import (
    CPU,
    BlockIO,
    DeviceRate,
    DeviceRule,
    LinuxResources,
    Memory,
    parse_resources,
)
from cove.oci.runtime_spec import Capabilities, Device, Mount, Process, Spec, parse_spec
from cove.oci.seccomp import SeccompProfile, parse_seccomp
from cove.runtime.capabilities import CAPABILITY_NAMES
from cove.runtime.cgroups import cgroup_relpath
from cove.runtime.cgroups.v1 import memory as v1_memory
from cove.runtime.cgroups.v1.devices import DEFAULT_ALLOWED_DEVICES, rule_lines
from cove.runtime.cgroups.v2.cpu import shares_to_weight
from cove.runtime.cgroups.v2.io import blkio_to_io_weight
from cove.runtime.cgroups.v2.memory import swap_max
from cove.runtime.devices import DEFAULT_DEVICES, DEV_SYMLINKS

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
# Mount options runc accepts that change nothing for the kernel.
_NO_KERNEL_EFFECT = frozenset({"tmpcopyup", "nocopyup", "copyup", "private-label"})
# cgroup v2 controllers the runtime asks every parent to hand down (the kernel ones).
_V2_CONTROLLERS = ("cpuset", "cpu", "memory", "pids", "io", "hugetlb")
_RLIM_INFINITY = 2**64 - 1  # "unlimited" as the runtime spec writes it (a uint64)
_DEFAULT_UMASK = 0o022  # what the runtime sets when process.user.umask is absent


def explain(
    spec: dict[str, Any],
    *,
    container_id: str,
    rootfs_mount: dict[str, str] | None,
    cgroup_paths: dict[str, str],
) -> list[str]:
    """The steps of creating and starting the container of `spec`, as shell lines.

    `rootfs_mount` is the overlay snapshot under the root ("lowerdir", "upperdir",
    "workdir", "target"; other keys become overlay options) or None for a plain folder.
    `cgroup_paths` maps each cgroup v1 controller to the container's cgroup folder in it
    ("" for a cgroup2 folder: alone on a v2 host, beside the controllers on a hybrid one).
    Raises InvalidSpec when `spec` is not a runtime spec cove-runtime could read.
    """
    ctx = _Context.build(parse_spec(spec), container_id, cgroup_paths)
    sections: list[tuple[str, list[str]]] = [
        ("root filesystem", _root_filesystem(ctx, rootfs_mount)),
        ("control groups", _cgroups(ctx)),
        ("namespaces", _namespaces(ctx)),
        ("mounts, inside the new mount namespace", _mounts(ctx)),
        ("device nodes", _devices(ctx)),
        ("switch to the new root", _switch_root(ctx)),
        ("kernel settings and hidden paths", _finalize(ctx)),
        ("hostname and limits", _identity(ctx)),
        ("privileges", _privileges(ctx)),
        ("the program", _program(ctx)),
    ]
    lines: list[str] = []
    number = 0
    for title, body in sections:
        if not body:
            continue
        number += 1
        if lines:
            lines.append("")
        lines.append(f"# {number}. {title}")
        lines.extend(body)
    return lines


def render(lines: list[str]) -> str:
    """The lines as one text to print (newline-terminated)."""
    return "".join(line + "\n" for line in lines)


# --- context -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hierarchy:
    """One cgroup folder of the container and the controllers that share it."""

    path: str
    mountpoint: str
    controllers: tuple[str, ...]


@dataclass(frozen=True)
class _Context:
    spec: Spec
    resources: LinuxResources
    container_id: str
    cgroup_paths: dict[str, str]
    hierarchies: tuple[_Hierarchy, ...]
    root_ref: str  # how a command names the rootfs: the shell variable ROOT

    @classmethod
    def build(cls, spec: Spec, container_id: str, cgroup_paths: dict[str, str]) -> _Context:
        relpath = cgroup_relpath(spec.linux.cgroups_path, container_id)
        safe = shlex.quote(spec.root.path) == spec.root.path
        return cls(
            spec=spec,
            resources=parse_resources(spec.linux.resources),
            container_id=container_id,
            cgroup_paths=dict(cgroup_paths),
            hierarchies=_hierarchies(cgroup_paths, relpath),
            root_ref="$ROOT" if safe else '"$ROOT"',
        )

    def at_root(self, path: str) -> str:
        """`path` inside the rootfs, as a shell word."""
        return self.root_ref + _quote_path("/" + path.lstrip("/"))

    @property
    def cgroup_v2(self) -> bool:
        return set(self.cgroup_paths) == {""}

    def new_namespace(self, ns_type: str) -> bool:
        namespace = self.spec.linux.namespace(ns_type)
        return namespace is not None and not namespace.path

    @property
    def user_namespace(self) -> bool:
        return self.spec.linux.namespace("user") is not None

    @property
    def process(self) -> Process | None:
        return self.spec.process


def _hierarchies(cgroup_paths: dict[str, str], relpath: str) -> tuple[_Hierarchy, ...]:
    grouped: dict[str, list[str]] = {}
    for controller, path in cgroup_paths.items():
        grouped.setdefault(path, []).append(controller)
    return tuple(
        _Hierarchy(path, _mountpoint(path, relpath), tuple(names))
        for path, names in grouped.items()
    )


def _mountpoint(path: str, relpath: str) -> str:
    """The hierarchy's mount point: `path` less the container's cgroup path."""
    if relpath and path.endswith(relpath) and len(path) > len(relpath):
        return path[: -len(relpath)]
    return posixpath.dirname(path)


def _quote_path(path: str) -> str:
    return shlex.quote(path)


def _why(text: str) -> str:
    return f"# why: {text}"


def _echo(value: object, directory: str, name: str) -> str:
    return f"echo {shlex.quote(str(value))} > {_quote_path(posixpath.join(directory, name))}"


# --- 1. root filesystem --------------------------------------------------------------------


def _root_filesystem(ctx: _Context, rootfs_mount: dict[str, str] | None) -> list[str]:
    root = ctx.spec.root.path
    lines = [f"ROOT={shlex.quote(root)}"]
    if not root.startswith("/"):
        lines.insert(0, _why("root.path is relative: to the bundle folder"))
    if rootfs_mount is None:
        lines.insert(0, _why("no overlay: this folder is the container's / as it is"))
        return lines
    target = rootfs_mount.get("target", root)
    where = ctx.root_ref if target == root else _quote_path(target)
    layers = ("lowerdir", "upperdir", "workdir")
    options = [f"{key}={rootfs_mount[key]}" for key in layers if key in rootfs_mount]
    options += [
        f"{key}={value}"
        for key, value in rootfs_mount.items()
        if key not in layers and key != "target"
    ]
    lines.insert(0, _why("the image's layers stay read-only; the container writes on top"))
    lines.append(f"mount -t overlay overlay -o {shlex.quote(','.join(options))} {where}")
    return lines


# --- 2. control groups ---------------------------------------------------------------------


def _cgroups(ctx: _Context) -> list[str]:
    if not ctx.hierarchies:
        return ["# no cgroup folders given: the container gets no cgroup of its own"]
    lines = [_why("the kernel counts what the container uses and holds it to its limits")]
    lines += [f"mkdir -p {_quote_path(h.path)}" for h in ctx.hierarchies]
    if ctx.cgroup_v2:
        lines += _v2_enable(ctx.hierarchies[0])
        lines += _v2_writes(ctx.resources, ctx.hierarchies[0].path)
    else:
        lines += _v1_cpuset_inherit(ctx)
        lines += _v1_writes(ctx)
    lines.append(_why("the shell joins first: all it starts below, the container too, counts"))
    if ctx.new_namespace("cgroup"):
        lines.append("# and the cgroup namespace made next has this cgroup as its root")
    lines += [f"echo $$ > {_quote_path(h.path + '/cgroup.procs')}" for h in ctx.hierarchies]
    return lines


# cgroup v1 ---------------------------------------------------------------------------------


def _v1_cpuset_inherit(ctx: _Context) -> list[str]:
    """A new v1 cpuset cgroup has no cpus nor mems: the runtime copies its parent's."""
    found = [h for h in ctx.hierarchies if "cpuset" in h.controllers]
    if not found:
        return []
    lines = [_why("a new cpuset cgroup has no CPUs nor memory nodes: copy the parent's")]
    parent = found[0].mountpoint
    for part in found[0].path[len(parent) :].strip("/").split("/"):
        child = posixpath.join(parent, part)
        for name in ("cpuset.cpus", "cpuset.mems"):
            source, target = posixpath.join(parent, name), posixpath.join(child, name)
            lines.append(f"cat {_quote_path(source)} > {_quote_path(target)}")
        parent = child
    return lines


_V1Writer = Callable[[LinuxResources, str], list[str]]


def _v1_writes(ctx: _Context) -> list[str]:
    res = ctx.resources
    writers: tuple[tuple[str, str, bool, _V1Writer], ...] = (
        ("memory", "memory", res.memory is not None, _v1_memory),
        ("cpu", "cpu", res.cpu is not None and _cpu_bandwidth_set(res.cpu), _v1_cpu),
        ("cpuset", "cpu", res.cpu is not None and bool(res.cpu.cpus or res.cpu.mems),
         _v1_cpuset),
        ("pids", "pids", res.pids_limit is not None, _v1_pids),
        ("blkio", "blockIO", res.block_io is not None, _v1_blkio),
        ("hugetlb", "hugepageLimits", bool(res.hugepage_limits), _v1_hugetlb),
        ("net_cls", "network", res.network_class_id is not None, _v1_net_cls),
        ("net_prio", "network", bool(res.network_priorities), _v1_net_prio),
        ("devices", "devices", bool(res.devices), _v1_devices),
    )  # fmt: skip
    lines: list[str] = []
    for controller, field, wanted, writer in writers:
        if not wanted:
            continue
        path = ctx.cgroup_paths.get(controller)
        if path is None:
            lines.append(f"# linux.resources.{field}: no {controller} cgroup here: not applied")
            continue
        lines += writer(res, path)
    if res.unified:
        lines.append("# linux.resources.unified: needs cgroup v2: cove-runtime refuses it here")
    return lines


def _cpu_bandwidth_set(cpu: CPU) -> bool:
    values = (cpu.shares, cpu.quota, cpu.period, cpu.burst, cpu.idle)
    realtime = (cpu.realtime_period, cpu.realtime_runtime)
    return any(value is not None for value in (*values, *realtime))


def _v1_memory(res: LinuxResources, path: str) -> list[str]:
    memory = res.memory
    assert memory is not None
    limit = memory.limit or None
    swap = memory.swap or None
    if limit == -1 and swap is None:
        swap = -1
    lines = []
    if limit is not None:
        lines.append(_echo(limit, path, v1_memory.LIMIT))
    if swap is not None:
        lines.append(_echo(swap, path, v1_memory.MEMSW_LIMIT) + "  # memory+swap, if accounted")
    if memory.reservation:
        lines.append(_echo(memory.reservation, path, v1_memory.SOFT_LIMIT))
    if memory.kernel:
        lines.append(_echo(memory.kernel, path, v1_memory.KMEM_LIMIT) + "  # if the kernel has it")
    if memory.kernel_tcp:
        lines.append(_echo(memory.kernel_tcp, path, v1_memory.KMEM_TCP_LIMIT))
    if memory.swappiness is not None:
        lines.append(_echo(memory.swappiness, path, "memory.swappiness"))
    if memory.disable_oom_killer is not None:
        lines.append(_echo(1 if memory.disable_oom_killer else 0, path, "memory.oom_control"))
    return lines


def _v1_cpu(res: LinuxResources, path: str) -> list[str]:
    cpu = res.cpu
    assert cpu is not None
    steps = (
        ("cpu.shares", cpu.shares or None), ("cpu.cfs_period_us", cpu.period or None),
        ("cpu.cfs_quota_us", cpu.quota or None), ("cpu.cfs_burst_us", cpu.burst),
        ("cpu.rt_period_us", cpu.realtime_period or None),
        ("cpu.rt_runtime_us", cpu.realtime_runtime or None), ("cpu.idle", cpu.idle),
    )  # fmt: skip
    return [_echo(value, path, name) for name, value in steps if value is not None]


def _v1_cpuset(res: LinuxResources, path: str) -> list[str]:
    cpu = res.cpu
    assert cpu is not None
    steps = (("cpuset.cpus", cpu.cpus), ("cpuset.mems", cpu.mems))
    return [_echo(value, path, name) for name, value in steps if value]


def _v1_pids(res: LinuxResources, path: str) -> list[str]:
    limit = res.pids_limit
    assert limit is not None
    return [_echo(limit if limit > 0 else "max", path, "pids.max")]


_THROTTLES = (
    ("throttle_read_bps", "blkio.throttle.read_bps_device", "rbps"),
    ("throttle_write_bps", "blkio.throttle.write_bps_device", "wbps"),
    ("throttle_read_iops", "blkio.throttle.read_iops_device", "riops"),
    ("throttle_write_iops", "blkio.throttle.write_iops_device", "wiops"),
)


def _v1_blkio(res: LinuxResources, path: str) -> list[str]:
    block_io = res.block_io
    assert block_io is not None
    lines = []
    if block_io.weight:
        lines.append(_echo(block_io.weight, path, "blkio.weight") + "  # or blkio.bfq.weight")
    if block_io.leaf_weight:
        lines.append(_echo(block_io.leaf_weight, path, "blkio.leaf_weight"))
    for rate in block_io.weight_device:
        lines.append(_echo(_device_value(rate), path, "blkio.weight_device"))
    for attribute, name, _key in _THROTTLES:
        rates: tuple[DeviceRate, ...] = getattr(block_io, attribute)
        lines += [_echo(_device_value(rate), path, name) for rate in rates]
    return lines


def _device_value(rate: DeviceRate) -> str:
    return f"{rate.major}:{rate.minor} {rate.value}"


def _v1_hugetlb(res: LinuxResources, path: str) -> list[str]:
    lines = []
    for item in res.hugepage_limits:
        lines.append(_echo(item.limit, path, f"hugetlb.{item.page_size}.limit_in_bytes"))
        rsvd = f"hugetlb.{item.page_size}.rsvd.limit_in_bytes"
        lines.append(_echo(item.limit, path, rsvd) + "  # if the kernel has it")
    return lines


def _v1_net_cls(res: LinuxResources, path: str) -> list[str]:
    return [_echo(res.network_class_id, path, "net_cls.classid")]


def _v1_net_prio(res: LinuxResources, path: str) -> list[str]:
    return [
        _echo(f"{item.name} {item.priority}", path, "net_prio.ifpriomap")
        for item in res.network_priorities
    ]


def _v1_devices(res: LinuxResources, path: str) -> list[str]:
    lines = [_why("only the devices the rules allow can be opened or created")]
    lines += _device_rule_lines(res.devices, path)
    extra = _extra_defaults(res.devices)
    if extra:
        lines.append(_why("then the runtime's own defaults, as runc adds them"))
        lines += _device_rule_lines(extra, path)
    return lines


def _extra_defaults(rules: tuple[DeviceRule, ...]) -> list[DeviceRule]:
    """The runtime's default rules that change something after `rules`: a default equal
    to an allow rule that no later deny overrides is left out (writing it again is a no-op)."""
    extra = []
    for default in DEFAULT_ALLOWED_DEVICES:
        last = max((i for i, rule in enumerate(rules) if rule == default), default=-1)
        if last < 0 or any(not rule.allow for rule in rules[last + 1 :]):
            extra.append(default)
    return extra


def _device_rule_lines(rules: Iterable[DeviceRule], path: str) -> list[str]:
    lines = []
    for rule in rules:
        name = "devices.allow" if rule.allow else "devices.deny"
        lines += [_echo(text, path, name) for text in rule_lines(rule)]
    return lines


# cgroup v2 ---------------------------------------------------------------------------------


def _v2_enable(hierarchy: _Hierarchy) -> list[str]:
    """+controller in cgroup.subtree_control of every parent, from the mount down."""
    root = hierarchy.mountpoint.rstrip("/") or "/"
    parents = [root]
    for part in hierarchy.path[len(root) :].strip("/").split("/")[:-1]:
        parents.append(posixpath.join(parents[-1], part))
    wanted = " ".join("+" + name for name in _V2_CONTROLLERS)
    lines = [_why("cgroup v2 hands a controller down only where each parent enables it")]
    lines += [_echo(wanted, parent, "cgroup.subtree_control") for parent in parents]
    return lines


def _v2_writes(res: LinuxResources, path: str) -> list[str]:
    lines: list[str] = []
    if res.cpu is not None:
        lines += _v2_cpuset(res.cpu, path) + _v2_cpu(res.cpu, path)
    lines += _v2_memory(res.memory, path)
    if res.pids_limit is not None:
        lines.append(_echo(res.pids_limit if res.pids_limit > 0 else "max", path, "pids.max"))
    if res.block_io is not None:
        lines += _v2_io(res.block_io, path)
    for item in res.hugepage_limits:
        lines.append(_echo(item.limit, path, f"hugetlb.{item.page_size}.max"))
        rsvd = f"hugetlb.{item.page_size}.rsvd.max"
        lines.append(_echo(item.limit, path, rsvd) + "  # if the kernel has it")
    if res.devices:
        lines.append(
            f"# devices: {len(res.devices)} rules and the runtime's defaults become an eBPF"
            " program attached here (v2 has no devices.allow)"
        )
    lines += [_echo(value, path, key) for key, value in res.unified.items()]
    if res.network_class_id is not None or res.network_priorities:
        lines.append("# linux.resources.network: no net_cls/net_prio on cgroup v2: ignored")
    return lines


def _v2_cpuset(cpu: CPU, path: str) -> list[str]:
    steps = (("cpuset.cpus", cpu.cpus), ("cpuset.mems", cpu.mems))
    return [_echo(value, path, name) for name, value in steps if value is not None]


def _v2_cpu(cpu: CPU, path: str) -> list[str]:
    lines = []
    if cpu.realtime_runtime or cpu.realtime_period:
        lines.append("# linux.resources.cpu.realtime*: cgroup v2 has none: refused")
    if cpu.shares:
        lines.append(_echo(shares_to_weight(cpu.shares), path, "cpu.weight"))
    if cpu.quota is not None or cpu.period is not None:
        quota = "max" if cpu.quota is None or cpu.quota < 0 else str(cpu.quota)
        text = quota if cpu.period is None else f"{quota} {cpu.period}"
        lines.append(_echo(text, path, "cpu.max"))
    if cpu.burst is not None:
        lines.append(_echo(cpu.burst, path, "cpu.max.burst"))
    if cpu.idle is not None:
        lines.append(_echo(cpu.idle, path, "cpu.idle"))
    return lines


def _v2_memory(memory: Memory | None, path: str) -> list[str]:
    lines = []
    if memory is not None:
        if memory.swappiness is not None:
            lines.append("# linux.resources.memory.swappiness: none on cgroup v2: refused")
        if memory.disable_oom_killer:
            lines.append("# linux.resources.memory.disableOOMKiller: not on cgroup v2: refused")
        lines += _v2_memory_limits(memory, path)
    lines.append(_echo(1, path, "memory.oom.group") + "  # an OOM kill ends the whole container")
    return lines


def _v2_memory_limits(memory: Memory, path: str) -> list[str]:
    limit = memory.limit or None
    lines = []
    if memory.swap:
        if limit is None:
            lines.append("# memory.swap.max: memory+swap less the current memory.max")
        else:
            try:
                value = swap_max(memory.swap, limit)
            except CgroupError as exc:
                return [f"# {exc}"]
            swap_text = "max" if value == -1 else value
            lines.append(_echo(swap_text, path, "memory.swap.max") + "  # swap alone on v2")
    elif limit == -1:
        lines.append(_echo("max", path, "memory.swap.max"))
    if limit is not None:
        lines.append(_echo("max" if limit == -1 else limit, path, "memory.max"))
    if memory.reservation is not None:
        low = "max" if memory.reservation == -1 else memory.reservation
        lines.append(_echo(low, path, "memory.low"))
    return lines


def _v2_io(block_io: BlockIO, path: str) -> list[str]:
    lines = []
    if block_io.weight:
        lines.append(_why("io.bfq.weight takes the weight as it is, io.weight scaled (if present)"))
        lines.append(_echo(block_io.weight, path, "io.bfq.weight"))
        lines.append(_echo(f"default {blkio_to_io_weight(block_io.weight)}", path, "io.weight"))
    for rate in block_io.weight_device:
        device = f"{rate.major}:{rate.minor}"
        lines.append(_echo(f"{device} {rate.value}", path, "io.bfq.weight"))
        lines.append(_echo(f"{device} {blkio_to_io_weight(rate.value)}", path, "io.weight"))
    for attribute, _name, key in _THROTTLES:
        rates: tuple[DeviceRate, ...] = getattr(block_io, attribute)
        for rate in rates:
            value = "max" if rate.value == 0 else str(rate.value)
            lines.append(_echo(f"{rate.major}:{rate.minor} {key}={value}", path, "io.max"))
    return lines


# --- 3. namespaces -------------------------------------------------------------------------


def _namespaces(ctx: _Context) -> list[str]:
    namespaces = ctx.spec.linux.namespaces
    joined = sorted((ns for ns in namespaces if ns.path), key=lambda ns: _JOIN_ORDER.index(ns.type))
    new = [ns.type for ns in namespaces if not ns.path]
    lines = []
    if new:
        what = ", ".join(_NS_WHAT[name] for name in new)
        lines.append(_why(f"its own {what}: the host's stay out of sight"))
    if joined:
        paths = [f"{_NS_OPTIONS[ns.type]}={_quote_path(ns.path)}" for ns in joined]
        lines.append("nsenter " + " ".join(paths))
    if new:
        flags = [*(_NS_OPTIONS[name] for name in new), "--fork", *_time_offsets(ctx)]
        lines.append("unshare " + " ".join(flags))
    if "user" in new:
        lines += _id_maps(ctx)
    if ctx.container_id:
        lines.append(_why("a keyring of its own: the container cannot read the host's keys"))
        lines.append(f"keyctl session {shlex.quote('_ses.' + ctx.container_id)}")
    return lines


def _time_offsets(ctx: _Context) -> list[str]:
    return [f"--{clock}={offset.secs}" for clock, offset in ctx.spec.linux.time_offsets.items()]


def _id_maps(ctx: _Context) -> list[str]:
    linux = ctx.spec.linux
    lines = []
    first = linux.uid_mappings[0] if linux.uid_mappings else None
    if first is not None:
        lines.append(
            _why(
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


# --- 4. mounts -----------------------------------------------------------------------------

_PROPAGATION_WHY = {
    "rprivate": "mounts made from here on stay in this namespace, and the host's stay out",
    "private": "mounts made from here on stay in this namespace, and the host's stay out",
    "rslave": "the host's new mounts still show here, but none goes back",
    "slave": "the host's new mounts still show here, but none goes back",
}


def _mounts(ctx: _Context) -> list[str]:
    propagation = ctx.spec.linux.rootfs_propagation or "rprivate"
    lines = []
    if propagation in _PROPAGATION_WHY:
        lines.append(_why(_PROPAGATION_WHY[propagation]))
    lines.append(f"mount --make-{propagation} /")
    root = ctx.root_ref
    lines.append(_why("pivot_root wants the new root to be a mount point"))
    lines.append(f"mount --rbind {root} {root}")
    if ctx.spec.mounts:
        lines.append("# (a missing mount point is made first: mkdir -p, or touch for a file)")
    for mount in ctx.spec.mounts:
        lines += _mount_lines(ctx, mount)
    return lines


def _bind_option(mount: Mount) -> str | None:
    if "rbind" in mount.options:
        return "--rbind"
    if "bind" in mount.options:
        return "--bind"
    if mount.type in ("bind", "rbind"):
        return "--" + mount.type
    return None


def _options(options: Iterable[str]) -> list[str]:
    return [o for o in options if o not in ("bind", "rbind") and o not in _NO_KERNEL_EFFECT]


def _dash_o(options: list[str]) -> str:
    return f"-o {shlex.quote(','.join(options))} " if options else ""


def _mount_lines(ctx: _Context, mount: Mount) -> list[str]:
    target = ctx.at_root(mount.destination)
    options = _options(mount.options)
    bind = _bind_option(mount)
    if bind is not None:
        return [f"mount {bind} {_dash_o(options)}{_quote_path(mount.source)} {target}"]
    if mount.type in ("cgroup", "cgroup2"):
        return _cgroup_mount(ctx, mount, target, options)
    source = shlex.quote(mount.source or mount.type)
    return [f"mount -t {shlex.quote(mount.type)} {_dash_o(options)}{source} {target}"]


def _cgroup_mount(ctx: _Context, mount: Mount, target: str, options: list[str]) -> list[str]:
    """As the runtime mounts /sys/fs/cgroup: the container's own cgroups, not the host's."""
    if not ctx.hierarchies:
        return [f"# {mount.destination}: no cgroup folders given: cove-runtime would refuse it"]
    own_namespace = ctx.new_namespace("cgroup")
    if ctx.cgroup_v2:
        path = ctx.hierarchies[0].path
        if own_namespace:
            return [f"mount -t cgroup2 {_dash_o(options)}cgroup2 {target}"]
        return [f"mount --rbind {_dash_o(options)}{_quote_path(path)} {target}"]
    why = "a tmpfs with one folder per hierarchy, each showing the container's own cgroup"
    tmpfs_options = [o for o in options if o != "ro"] + ["mode=755"]
    lines = [_why(why), f"mount -t tmpfs {_dash_o(tmpfs_options)}tmpfs {target}"]
    for hierarchy in ctx.hierarchies:
        sub = target + _quote_path("/" + posixpath.basename(hierarchy.mountpoint))
        lines.append(f"mkdir -p {sub}")
        lines.append(_hierarchy_mount(hierarchy, sub, options, own_namespace))
    if "ro" in options:
        lines.append(f"mount -o remount,ro {target}")
    return lines


def _hierarchy_mount(hierarchy: _Hierarchy, sub: str, options: list[str], own_ns: bool) -> str:
    if not own_ns:
        return f"mount --rbind {_dash_o(options)}{_quote_path(hierarchy.path)} {sub}"
    if hierarchy.controllers == ("",):
        return f"mount -t cgroup2 {_dash_o(options)}cgroup2 {sub}"
    controllers = [name for name in hierarchy.controllers if name]
    return f"mount -t cgroup {_dash_o(options + controllers)}cgroup {sub}"


# --- 5. device nodes -----------------------------------------------------------------------


def _devices(ctx: _Context) -> list[str]:
    mounts_dev = any(m.destination.rstrip("/") == "/dev" for m in ctx.spec.mounts)
    devices: list[Device] = list(DEFAULT_DEVICES) if mounts_dev else []
    devices += ctx.spec.linux.devices
    lines = []
    if devices:
        if ctx.user_namespace:
            lines.append(_why("mknod is denied in a user namespace: the host's nodes are bound"))
        else:
            lines.append(_why("/dev is an empty tmpfs: only these devices exist in it"))
    for device in devices:
        lines += _device_lines(ctx, device)
    if mounts_dev:
        lines += [
            f"ln -s {_quote_path(source)} {ctx.at_root(link)}" for source, link in DEV_SYMLINKS
        ]
    process = ctx.process
    if process is not None and process.cwd != "/":
        lines.append(f"mkdir -p {ctx.at_root(process.cwd)}  # process.cwd, if missing")
    return lines


def _device_lines(ctx: _Context, device: Device) -> list[str]:
    target = ctx.at_root(device.path)
    if ctx.user_namespace and device.type != "p":
        return [f"touch {target}", f"mount --bind {_quote_path(device.path)} {target}"]
    mode = (device.file_mode if device.file_mode is not None else 0o666) & 0o7777
    if device.type == "p":
        lines = [f"mknod -m {mode:o} {target} p"]
    else:
        lines = [f"mknod -m {mode:o} {target} {device.type} {device.major} {device.minor}"]
    if device.uid or device.gid:
        lines.append(f"chown {device.uid or 0}:{device.gid or 0} {target}")
    return lines


# --- 6. switch root ------------------------------------------------------------------------


def _switch_root(ctx: _Context) -> list[str]:
    lines = [
        _why("the rootfs becomes /, and the host's tree is detached, not just out of reach"),
        f"cd {ctx.root_ref}",
        "mkdir .oldroot",
        "pivot_root . .oldroot",
        "umount -l /.oldroot",
        "rmdir /.oldroot",
        "cd /",
    ]
    if ctx.spec.linux.rootfs_propagation in ("shared", "rshared"):
        lines.append(f"mount --make-{ctx.spec.linux.rootfs_propagation} /")
    process = ctx.process
    if process is not None and process.terminal:
        lines.append("# process.terminal: a new pty, its slave bound on /dev/console")
    return lines


# --- 7. kernel settings and hidden paths ---------------------------------------------------


def _finalize(ctx: _Context) -> list[str]:
    linux = ctx.spec.linux
    lines = [f"sysctl -w {shlex.quote(f'{key}={value}')}" for key, value in linux.sysctl.items()]
    if linux.readonly_paths:
        lines.append(_why("the kernel's knobs stay readable, not writable"))
    for path in linux.readonly_paths:
        quoted = _quote_path(path)
        lines.append(f"mount --rbind {quoted} {quoted} && mount -o remount,bind,ro {quoted}")
    if linux.masked_paths:
        lines.append(_why("what would show the host's secrets or hardware is covered"))
    for path in linux.masked_paths:
        lines.append(f"mount -t tmpfs -o ro tmpfs {_quote_path(path)}  # or /dev/null for a file")
    if ctx.spec.root.readonly:
        lines.append(_why("root.readonly: the container cannot change its own files"))
        lines.append("mount -o remount,bind,ro /")
    return lines


# --- 8. hostname and limits ----------------------------------------------------------------


def _identity(ctx: _Context) -> list[str]:
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


# --- 9. privileges -------------------------------------------------------------------------


def _privileges(ctx: _Context) -> list[str]:
    process = ctx.process
    if process is None:
        return []
    lines = []
    if not process.no_new_privileges:
        lines += _seccomp(ctx, "loaded while CAP_SYS_ADMIN is still held")
    lines += _capabilities(process.capabilities)
    user = process.user
    groups = ",".join(str(gid) for gid in user.additional_gids)
    group_option = f"--groups={groups}" if groups else "--clear-groups"
    lines.append(f"setpriv --reuid={user.uid} --regid={user.gid} {group_option}")
    return lines


def _seccomp(ctx: _Context, when: str) -> list[str]:
    raw = ctx.spec.linux.seccomp
    if raw is None:
        return ["# seccomp: none: every system call is allowed"]
    profile = parse_seccomp(raw)
    return [
        _why(f"a BPF filter checks every system call; {when}"),
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
        _why(f"root here keeps {kept} capabilities; {dropped} of {len(CAPABILITY_NAMES)} dropped"),
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


# --- 10. the program -----------------------------------------------------------------------


def _program(ctx: _Context) -> list[str]:
    process = ctx.process
    if process is None:
        return []
    umask = _DEFAULT_UMASK if process.user.umask is None else process.user.umask
    lines = [f"umask {umask:04o}", f"cd {_quote_path(process.cwd)}"]
    if process.apparmor_profile:
        lines.append(f"# AppArmor profile {process.apparmor_profile}, from the exec on")
    if process.selinux_label:
        lines.append(f"# SELinux label {process.selinux_label}, from the exec on")
    if process.no_new_privileges:
        lines += [_why("no setuid program can raise privileges again"), "setpriv --no-new-privs"]
        lines += _seccomp(ctx, "loaded last, after no_new_privs")
    names = [entry.partition("=")[0] for entry in process.env]
    count = f"{len(names)} variable{'s' if len(names) != 1 else ''}"
    lines.append(f"# environment: {count}" + (f": {', '.join(names)}" if names else ""))
    lines.append("exec " + shlex.join(process.args))
    return lines
