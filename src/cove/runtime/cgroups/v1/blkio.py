"""blkio (v1): proportional I/O weights and per-device throttling; I/O counters.

Spec field (blockIO.)       kernel file (cgroup-v1/blkio-controller.rst)
weight                      blkio.weight, or blkio.bfq.weight where only BFQ offers one
leafWeight                  blkio.leaf_weight (CFQ only: an error where it is missing)
weightDevice                blkio.weight_device (or blkio.bfq.weight_device): "MAJ:MIN W"
throttleReadBpsDevice       blkio.throttle.read_bps_device     "MAJ:MIN RATE"
throttleWriteBpsDevice      blkio.throttle.write_bps_device
throttleReadIOPSDevice      blkio.throttle.read_iops_device
throttleWriteIOPSDevice     blkio.throttle.write_iops_device

Per-device files take one device per write; a rate of 0 removes the device's limit. A
weight of 0 means "not set", as runc reads it. Kernels since 5.0 dropped CFQ, so
blkio.weight is gone there and the BFQ scheduler's files are the only weights (they act
only on devices that use BFQ: other devices refuse a per-device weight).

Stats come from the throttling layer, which counts every bio whatever the scheduler:
blkio.throttle.io_service_bytes_recursive and io_serviced_recursive (the non-recursive
files on kernels without those), as runc's ioServiceBytesRecursive/ioServicedRecursive.
"""

from __future__ import annotations

from cove.runtime.cgroups.v1 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import DeviceRate, LinuxResources

FIELD = "linux.resources.blockIO"

_THROTTLE = (
    ("throttle_read_bps", "throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
    ("throttle_write_bps", "throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
    ("throttle_read_iops", "throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
    ("throttle_write_iops", "throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"),
)

_STATS = (
    ("ioServiceBytesRecursive", "blkio.throttle.io_service_bytes"),
    ("ioServicedRecursive", "blkio.throttle.io_serviced"),
)


class BlkioController:
    name = "blkio"

    def apply(self, path: str, resources: LinuxResources) -> None:
        block_io = resources.block_io
        if block_io is None:
            return
        weight_file, weight_device_file = _weight_files(path)
        if block_io.weight:
            _files.write(path, weight_file, block_io.weight, f"{FIELD}.weight")
        if block_io.leaf_weight:
            if not _files.exists(path, "blkio.leaf_weight"):
                raise _files.unsupported(f"{FIELD}.leafWeight", "blkio.leaf_weight", path)
            _files.write(path, "blkio.leaf_weight", block_io.leaf_weight, f"{FIELD}.leafWeight")
        _write_devices(path, weight_device_file, block_io.weight_device, "weightDevice")
        for attr, key, name in _THROTTLE:
            _write_devices(path, name, getattr(block_io, attr), key)

    def stats(self, path: str, data: dict[str, Any]) -> None:
        blkio: dict[str, Any] = {}
        for key, base in _STATS:
            text = _files.read(path, f"{base}_recursive")
            if text is None:
                text = _files.read(path, base)
            blkio[key] = _entries(text or "", path, base)
        data["blkio"] = blkio


CONTROLLER = BlkioController()


def _weight_files(path: str) -> tuple[str, str]:
    if not _files.exists(path, "blkio.weight") and _files.exists(path, "blkio.bfq.weight"):
        return "blkio.bfq.weight", "blkio.bfq.weight_device"
    return "blkio.weight", "blkio.weight_device"


def _write_devices(path: str, name: str, rates: tuple[DeviceRate, ...], key: str) -> None:
    for index, rate in enumerate(rates):
        line = f"{rate.major}:{rate.minor} {rate.value}"
        _files.write(path, name, line, f"{FIELD}.{key}[{index}]")


def _entries(text: str, path: str, name: str) -> list[dict[str, Any]]:
    """Lines "MAJ:MIN OP VALUE" (or "MAJ:MIN VALUE"); the closing "Total N" is skipped."""
    entries: list[dict[str, Any]] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) not in (2, 3) or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        entries.append(
            {
                "major": _files.parse_int(major, path, name),
                "minor": _files.parse_int(minor, path, name),
                "op": fields[1] if len(fields) == 3 else "",
                "value": _files.parse_int(fields[-1], path, name),
            }
        )
    return entries
