"""`cove run --explain`, step 2 (`cove.engine.explain`): the container's cgroup folders,
the values written to their files (cgroup v1, one folder per hierarchy, or v2, one folder
with the controllers handed down), and the shell joining them.

The file names and units are the runtime's own (cove.runtime.cgroups.v1 / v2), so the text
follows what cove-runtime writes.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable

from cove.engine.explain_context import Context, Hierarchy, echo, quote_path, why
from cove.errors import CgroupError
from cove.oci.resources import CPU, BlockIO, DeviceRate, DeviceRule, LinuxResources, Memory
from cove.runtime.cgroups.v1 import memory as v1_memory
from cove.runtime.cgroups.v1.devices import DEFAULT_ALLOWED_DEVICES, rule_lines
from cove.runtime.cgroups.v2.cpu import shares_to_weight
from cove.runtime.cgroups.v2.io import blkio_to_io_weight
from cove.runtime.cgroups.v2.memory import swap_max

# cgroup v2 controllers the runtime asks every parent to hand down (the kernel ones).
_V2_CONTROLLERS = ("cpuset", "cpu", "memory", "pids", "io", "hugetlb")


def cgroups(ctx: Context) -> list[str]:
    if not ctx.hierarchies:
        return ["# no cgroup folders given: the container gets no cgroup of its own"]
    lines = [why("the kernel counts what the container uses and holds it to its limits")]
    lines += [f"mkdir -p {quote_path(h.path)}" for h in ctx.hierarchies]
    if ctx.cgroup_v2:
        lines += _v2_enable(ctx.hierarchies[0])
        lines += _v2_writes(ctx.resources, ctx.hierarchies[0].path)
    else:
        lines += _v1_cpuset_inherit(ctx)
        lines += _v1_writes(ctx)
    lines.append(why("the shell joins first: all it starts below, the container too, counts"))
    if ctx.new_namespace("cgroup"):
        lines.append("# and the cgroup namespace made next has this cgroup as its root")
    lines += [f"echo $$ > {quote_path(h.path + '/cgroup.procs')}" for h in ctx.hierarchies]
    return lines


# cgroup v1 ---------------------------------------------------------------------------------


def _v1_cpuset_inherit(ctx: Context) -> list[str]:
    """A new v1 cpuset cgroup has no cpus nor mems: the runtime copies its parent's."""
    found = [h for h in ctx.hierarchies if "cpuset" in h.controllers]
    if not found:
        return []
    lines = [why("a new cpuset cgroup has no CPUs nor memory nodes: copy the parent's")]
    parent = found[0].mountpoint
    for part in found[0].path[len(parent) :].strip("/").split("/"):
        child = posixpath.join(parent, part)
        for name in ("cpuset.cpus", "cpuset.mems"):
            source, target = posixpath.join(parent, name), posixpath.join(child, name)
            lines.append(f"cat {quote_path(source)} > {quote_path(target)}")
        parent = child
    return lines


_V1Writer = Callable[[LinuxResources, str], list[str]]


def _v1_writes(ctx: Context) -> list[str]:
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
        lines.append(echo(limit, path, v1_memory.LIMIT))
    if swap is not None:
        lines.append(echo(swap, path, v1_memory.MEMSW_LIMIT) + "  # memory+swap, if accounted")
    if memory.reservation:
        lines.append(echo(memory.reservation, path, v1_memory.SOFT_LIMIT))
    if memory.kernel:
        lines.append(echo(memory.kernel, path, v1_memory.KMEM_LIMIT) + "  # if the kernel has it")
    if memory.kernel_tcp:
        lines.append(echo(memory.kernel_tcp, path, v1_memory.KMEM_TCP_LIMIT))
    if memory.swappiness is not None:
        lines.append(echo(memory.swappiness, path, "memory.swappiness"))
    if memory.disable_oom_killer is not None:
        lines.append(echo(1 if memory.disable_oom_killer else 0, path, "memory.oom_control"))
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
    return [echo(value, path, name) for name, value in steps if value is not None]


def _v1_cpuset(res: LinuxResources, path: str) -> list[str]:
    cpu = res.cpu
    assert cpu is not None
    steps = (("cpuset.cpus", cpu.cpus), ("cpuset.mems", cpu.mems))
    return [echo(value, path, name) for name, value in steps if value]


def _v1_pids(res: LinuxResources, path: str) -> list[str]:
    limit = res.pids_limit
    assert limit is not None
    return [echo(limit if limit > 0 else "max", path, "pids.max")]


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
        lines.append(echo(block_io.weight, path, "blkio.weight") + "  # or blkio.bfq.weight")
    if block_io.leaf_weight:
        lines.append(echo(block_io.leaf_weight, path, "blkio.leaf_weight"))
    for rate in block_io.weight_device:
        lines.append(echo(_device_value(rate), path, "blkio.weight_device"))
    for attribute, name, _key in _THROTTLES:
        rates: tuple[DeviceRate, ...] = getattr(block_io, attribute)
        lines += [echo(_device_value(rate), path, name) for rate in rates]
    return lines


def _device_value(rate: DeviceRate) -> str:
    return f"{rate.major}:{rate.minor} {rate.value}"


def _v1_hugetlb(res: LinuxResources, path: str) -> list[str]:
    lines = []
    for item in res.hugepage_limits:
        lines.append(echo(item.limit, path, f"hugetlb.{item.page_size}.limit_in_bytes"))
        rsvd = f"hugetlb.{item.page_size}.rsvd.limit_in_bytes"
        lines.append(echo(item.limit, path, rsvd) + "  # if the kernel has it")
    return lines


def _v1_net_cls(res: LinuxResources, path: str) -> list[str]:
    return [echo(res.network_class_id, path, "net_cls.classid")]


def _v1_net_prio(res: LinuxResources, path: str) -> list[str]:
    return [
        echo(f"{item.name} {item.priority}", path, "net_prio.ifpriomap")
        for item in res.network_priorities
    ]


def _v1_devices(res: LinuxResources, path: str) -> list[str]:
    lines = [why("only the devices the rules allow can be opened or created")]
    lines += _device_rule_lines(res.devices, path)
    extra = _extra_defaults(res.devices)
    if extra:
        lines.append(why("then the runtime's own defaults, as runc adds them"))
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
        lines += [echo(text, path, name) for text in rule_lines(rule)]
    return lines


# cgroup v2 ---------------------------------------------------------------------------------


def _v2_enable(hierarchy: Hierarchy) -> list[str]:
    """+controller in cgroup.subtree_control of every parent, from the mount down."""
    root = hierarchy.mountpoint.rstrip("/") or "/"
    parents = [root]
    for part in hierarchy.path[len(root) :].strip("/").split("/")[:-1]:
        parents.append(posixpath.join(parents[-1], part))
    wanted = " ".join("+" + name for name in _V2_CONTROLLERS)
    lines = [why("cgroup v2 hands a controller down only where each parent enables it")]
    lines += [echo(wanted, parent, "cgroup.subtree_control") for parent in parents]
    return lines


def _v2_writes(res: LinuxResources, path: str) -> list[str]:
    lines: list[str] = []
    if res.cpu is not None:
        lines += _v2_cpuset(res.cpu, path) + _v2_cpu(res.cpu, path)
    lines += _v2_memory(res.memory, path)
    if res.pids_limit is not None:
        lines.append(echo(res.pids_limit if res.pids_limit > 0 else "max", path, "pids.max"))
    if res.block_io is not None:
        lines += _v2_io(res.block_io, path)
    for item in res.hugepage_limits:
        lines.append(echo(item.limit, path, f"hugetlb.{item.page_size}.max"))
        rsvd = f"hugetlb.{item.page_size}.rsvd.max"
        lines.append(echo(item.limit, path, rsvd) + "  # if the kernel has it")
    if res.devices:
        lines.append(
            f"# devices: {len(res.devices)} rules and the runtime's defaults become an eBPF"
            " program attached here (v2 has no devices.allow)"
        )
    lines += [echo(value, path, key) for key, value in res.unified.items()]
    if res.network_class_id is not None or res.network_priorities:
        lines.append("# linux.resources.network: no net_cls/net_prio on cgroup v2: ignored")
    return lines


def _v2_cpuset(cpu: CPU, path: str) -> list[str]:
    steps = (("cpuset.cpus", cpu.cpus), ("cpuset.mems", cpu.mems))
    return [echo(value, path, name) for name, value in steps if value is not None]


def _v2_cpu(cpu: CPU, path: str) -> list[str]:
    lines = []
    if cpu.realtime_runtime or cpu.realtime_period:
        lines.append("# linux.resources.cpu.realtime*: cgroup v2 has none: refused")
    if cpu.shares:
        lines.append(echo(shares_to_weight(cpu.shares), path, "cpu.weight"))
    if cpu.quota is not None or cpu.period is not None:
        quota = "max" if cpu.quota is None or cpu.quota < 0 else str(cpu.quota)
        text = quota if cpu.period is None else f"{quota} {cpu.period}"
        lines.append(echo(text, path, "cpu.max"))
    if cpu.burst is not None:
        lines.append(echo(cpu.burst, path, "cpu.max.burst"))
    if cpu.idle is not None:
        lines.append(echo(cpu.idle, path, "cpu.idle"))
    return lines


def _v2_memory(memory: Memory | None, path: str) -> list[str]:
    lines = []
    if memory is not None:
        if memory.swappiness is not None:
            lines.append("# linux.resources.memory.swappiness: none on cgroup v2: refused")
        if memory.disable_oom_killer:
            lines.append("# linux.resources.memory.disableOOMKiller: not on cgroup v2: refused")
        lines += _v2_memory_limits(memory, path)
    lines.append(echo(1, path, "memory.oom.group") + "  # an OOM kill ends the whole container")
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
            lines.append(echo(swap_text, path, "memory.swap.max") + "  # swap alone on v2")
    elif limit == -1:
        lines.append(echo("max", path, "memory.swap.max"))
    if limit is not None:
        lines.append(echo("max" if limit == -1 else limit, path, "memory.max"))
    if memory.reservation is not None:
        low = "max" if memory.reservation == -1 else memory.reservation
        lines.append(echo(low, path, "memory.low"))
    return lines


def _v2_io(block_io: BlockIO, path: str) -> list[str]:
    lines = []
    if block_io.weight:
        lines.append(why("io.bfq.weight takes the weight as it is, io.weight scaled (if present)"))
        lines.append(echo(block_io.weight, path, "io.bfq.weight"))
        lines.append(echo(f"default {blkio_to_io_weight(block_io.weight)}", path, "io.weight"))
    for rate in block_io.weight_device:
        device = f"{rate.major}:{rate.minor}"
        lines.append(echo(f"{device} {rate.value}", path, "io.bfq.weight"))
        lines.append(echo(f"{device} {blkio_to_io_weight(rate.value)}", path, "io.weight"))
    for attribute, _name, key in _THROTTLES:
        rates: tuple[DeviceRate, ...] = getattr(block_io, attribute)
        for rate in rates:
            value = "max" if rate.value == 0 else str(rate.value)
            lines.append(echo(f"{rate.major}:{rate.minor} {key}={value}", path, "io.max"))
    return lines
