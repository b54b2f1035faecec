"""`linux.resources` of the runtime spec (and of `update -r`) as typed data.

Every field is optional: None means "not set, leave the kernel's value alone".
"""

from __future__ import annotations

from cove.errors import InvalidSpec
from cove.oci.data import Data
from cove.oci.reader import Field, opt_bool, opt_int, opt_str

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class DeviceRule(Data):
    """One devices cgroup rule: allow or deny `access` (r, w, m) to type/major/minor.

    type "a" means all devices; major/minor None means any (written as "*")."""

    __slots__ = ("access", "allow", "major", "minor", "type")

    def __init__(
        self,
        allow: bool,
        type: str = "a",
        major: int | None = None,
        minor: int | None = None,
        access: str = "rwm",
    ) -> None:
        self.allow = allow
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access


class Memory(Data):
    __slots__ = (
        "check_before_update", "disable_oom_killer", "kernel", "kernel_tcp", "limit",
        "reservation", "swap", "swappiness", "use_hierarchy",
    )  # fmt: skip

    def __init__(
        self,
        limit: int | None = None,
        reservation: int | None = None,
        swap: int | None = None,
        kernel: int | None = None,
        kernel_tcp: int | None = None,
        swappiness: int | None = None,
        disable_oom_killer: bool | None = None,
        use_hierarchy: bool | None = None,
        check_before_update: bool | None = None,
    ) -> None:
        # limit, reservation and swap are bytes; -1 means unlimited. swap is memory+swap
        # as the OCI spec (and runc) define it.
        self.limit = limit
        self.reservation = reservation
        self.swap = swap
        self.kernel = kernel
        self.kernel_tcp = kernel_tcp
        self.swappiness = swappiness
        self.disable_oom_killer = disable_oom_killer
        self.use_hierarchy = use_hierarchy
        self.check_before_update = check_before_update


class CPU(Data):
    __slots__ = (
        "burst", "cpus", "idle", "mems", "period", "quota", "realtime_period",
        "realtime_runtime", "shares",
    )  # fmt: skip

    def __init__(
        self,
        shares: int | None = None,
        quota: int | None = None,
        period: int | None = None,
        burst: int | None = None,
        realtime_runtime: int | None = None,
        realtime_period: int | None = None,
        cpus: str | None = None,
        mems: str | None = None,
        idle: int | None = None,
    ) -> None:
        # shares: v1 cpu.shares (2..262144), converted to cpu.weight on v2.
        # quota/period: microseconds; quota -1 means unlimited.
        self.shares = shares
        self.quota = quota
        self.period = period
        self.burst = burst
        self.realtime_runtime = realtime_runtime
        self.realtime_period = realtime_period
        self.cpus = cpus
        self.mems = mems
        self.idle = idle


class DeviceRate(Data):
    """A per-device value: a weight (blkio weight_device) or a rate (bytes or ops/s)."""

    __slots__ = ("major", "minor", "value")

    def __init__(self, major: int, minor: int, value: int) -> None:
        self.major = major
        self.minor = minor
        self.value = value


class BlockIO(Data):
    __slots__ = (
        "leaf_weight", "throttle_read_bps", "throttle_read_iops", "throttle_write_bps",
        "throttle_write_iops", "weight", "weight_device",
    )  # fmt: skip

    def __init__(
        self,
        weight: int | None = None,
        leaf_weight: int | None = None,
        weight_device: tuple[DeviceRate, ...] = (),
        throttle_read_bps: tuple[DeviceRate, ...] = (),
        throttle_write_bps: tuple[DeviceRate, ...] = (),
        throttle_read_iops: tuple[DeviceRate, ...] = (),
        throttle_write_iops: tuple[DeviceRate, ...] = (),
    ) -> None:
        self.weight = weight
        self.leaf_weight = leaf_weight
        self.weight_device = weight_device
        self.throttle_read_bps = throttle_read_bps
        self.throttle_write_bps = throttle_write_bps
        self.throttle_read_iops = throttle_read_iops
        self.throttle_write_iops = throttle_write_iops


class HugepageLimit(Data):
    __slots__ = ("limit", "page_size")

    def __init__(self, page_size: str, limit: int) -> None:
        self.page_size = page_size  # "2MB", "1GB"
        self.limit = limit


class NetworkPriority(Data):
    __slots__ = ("name", "priority")

    def __init__(self, name: str, priority: int) -> None:
        self.name = name
        self.priority = priority


class LinuxResources(Data):
    __slots__ = (
        "block_io", "cpu", "devices", "hugepage_limits", "memory", "network_class_id",
        "network_priorities", "pids_limit", "unified",
    )  # fmt: skip

    def __init__(
        self,
        devices: tuple[DeviceRule, ...] = (),
        memory: Memory | None = None,
        cpu: CPU | None = None,
        pids_limit: int | None = None,
        block_io: BlockIO | None = None,
        hugepage_limits: tuple[HugepageLimit, ...] = (),
        network_class_id: int | None = None,
        network_priorities: tuple[NetworkPriority, ...] = (),
        unified: dict[str, str] | None = None,
    ) -> None:
        self.devices = devices
        self.memory = memory
        self.cpu = cpu
        self.pids_limit = pids_limit  # <= 0 means unlimited, as runc
        self.block_io = block_io
        self.hugepage_limits = hugepage_limits
        self.network_class_id = network_class_id
        self.network_priorities = network_priorities
        self.unified = {} if unified is None else unified


def parse_resources(data: Any, path: str = "linux.resources") -> LinuxResources:
    node = Field(data, path).obj()
    memory = node.get("memory")
    cpu = node.get("cpu")
    pids = node.get("pids")
    block_io = node.get("blockIO")
    network = node.get("network")
    unified = node.get("unified")
    return LinuxResources(
        devices=tuple(_device_rule(item) for item in _items(node, "devices")),
        memory=None if memory is None else _memory(memory),
        cpu=None if cpu is None else _cpu(cpu),
        pids_limit=None if pids is None else opt_int(pids, "limit"),
        block_io=None if block_io is None else _block_io(block_io),
        hugepage_limits=tuple(
            HugepageLimit(item.need("pageSize").as_str(), item.need("limit").as_int())
            for item in _items(node, "hugepageLimits")
        ),
        network_class_id=None if network is None else opt_int(network, "classID"),
        network_priorities=()
        if network is None
        else tuple(
            NetworkPriority(item.need("name").as_str(), item.need("priority").as_int())
            for item in _items(network, "priorities")
        ),
        unified=None if unified is None else unified.str_map(),
    )


def _items(node: Field, key: str) -> list[Field]:
    child = node.get(key)
    return [] if child is None else list(child.items())


def _device_rule(item: Field) -> DeviceRule:
    dev_type = item.get("type")
    kind = "a" if dev_type is None else dev_type.as_str()
    if kind not in ("a", "c", "b"):
        raise item.need("type").fail(f"device rule type must be a, c or b, got {kind!r}")
    access = opt_str(item, "access", "rwm")
    if not access or set(access) - set("rwm"):
        raise item.need("access").fail(f"access must be made of r, w and m, got {access!r}")
    return DeviceRule(
        allow=item.need("allow").as_bool(),
        type=kind,
        major=_optional_id(item, "major"),
        minor=_optional_id(item, "minor"),
        access=access,
    )


def _optional_id(item: Field, key: str) -> int | None:
    value = opt_int(item, key)
    if value is not None and value < 0:
        return None  # -1 is how some tools write "any"
    return value


def _memory(node: Field) -> Memory:
    memory = Memory(
        limit=opt_int(node, "limit"),
        reservation=opt_int(node, "reservation"),
        swap=opt_int(node, "swap"),
        kernel=opt_int(node, "kernel"),
        kernel_tcp=opt_int(node, "kernelTCP"),
        swappiness=opt_int(node, "swappiness"),
        disable_oom_killer=None if node.get("disableOOMKiller") is None
        else opt_bool(node, "disableOOMKiller"),
        use_hierarchy=None if node.get("useHierarchy") is None
        else opt_bool(node, "useHierarchy"),
        check_before_update=None if node.get("checkBeforeUpdate") is None
        else opt_bool(node, "checkBeforeUpdate"),
    )  # fmt: skip
    for key, value in (("limit", memory.limit), ("reservation", memory.reservation),
                       ("swap", memory.swap)):  # fmt: skip
        if value is not None and value < -1:
            raise node.need(key).fail(f"must be -1 (unlimited) or a number of bytes, got {value}")
    if memory.swappiness is not None and not 0 <= memory.swappiness <= 100:
        raise node.need("swappiness").fail(f"must be 0..100, got {memory.swappiness}")
    if (
        memory.limit is not None
        and memory.swap is not None
        and memory.limit > 0
        and 0 <= memory.swap < memory.limit
    ):
        raise node.need("swap").fail(
            f"memory+swap ({memory.swap}) must not be below the memory limit ({memory.limit})"
        )
    return memory


def _cpu(node: Field) -> CPU:
    cpu = CPU(
        shares=opt_int(node, "shares"),
        quota=opt_int(node, "quota"),
        period=opt_int(node, "period"),
        burst=opt_int(node, "burst"),
        realtime_runtime=opt_int(node, "realtimeRuntime"),
        realtime_period=opt_int(node, "realtimePeriod"),
        cpus=opt_str(node, "cpus") or None,
        mems=opt_str(node, "mems") or None,
        idle=opt_int(node, "idle"),
    )
    if cpu.period is not None and not 1000 <= cpu.period <= 1_000_000:
        raise node.need("period").fail(f"must be 1000..1000000 microseconds, got {cpu.period}")
    if cpu.quota is not None and cpu.quota != -1 and cpu.quota < 1000:
        raise node.need("quota").fail(f"must be -1 or at least 1000 microseconds, got {cpu.quota}")
    if cpu.shares is not None and cpu.shares < 0:
        raise node.need("shares").fail(f"must not be negative, got {cpu.shares}")
    for key, value in (("cpus", cpu.cpus), ("mems", cpu.mems)):
        if value is not None and not _is_cpu_list(value):
            raise node.need(key).fail(f"expected a list like 0-3,5, got {value!r}")
    return cpu


def _is_cpu_list(text: str) -> bool:
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and (not high.isdigit() or int(high) < int(low))):
            return False
    return True


def _rates(node: Field, key: str, value_key: str) -> tuple[DeviceRate, ...]:
    rates = []
    for item in _items(node, key):
        value = item.need(value_key).as_int()
        if value < 0:
            raise item.need(value_key).fail(f"must not be negative, got {value}")
        rates.append(DeviceRate(item.need("major").as_int(), item.need("minor").as_int(), value))
    return tuple(rates)


def _block_io(node: Field) -> BlockIO:
    weight = opt_int(node, "weight")
    if weight is not None and weight != 0 and not 10 <= weight <= 1000:
        raise node.need("weight").fail(f"must be 10..1000, got {weight}")
    return BlockIO(
        weight=weight,
        leaf_weight=opt_int(node, "leafWeight"),
        weight_device=_rates(node, "weightDevice", "weight"),
        throttle_read_bps=_rates(node, "throttleReadBpsDevice", "rate"),
        throttle_write_bps=_rates(node, "throttleWriteBpsDevice", "rate"),
        throttle_read_iops=_rates(node, "throttleReadIOPSDevice", "rate"),
        throttle_write_iops=_rates(node, "throttleWriteIOPSDevice", "rate"),
    )


def check_known(data: Any, path: str = "linux.resources") -> None:
    """Reject misspelt top-level keys (a typo silently ignored would be a missing limit)."""
    known = {"devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network",
             "unified", "rdma"}  # fmt: skip
    if isinstance(data, dict):
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidSpec(f"{path}: unknown field(s) {', '.join(unknown)}")
