"""The io controller on cgroup v2: io.weight / io.bfq.weight and io.max.

The spec's blockIO speaks v1 blkio. Weights are 10..1000 there: io.bfq.weight takes them
as they are (1..1000), io.weight (1..10000) takes them converted. Both files are written
when present, so the weight holds whichever scheduler or io.cost policy a disk uses.
"""

from __future__ import annotations

from cove.errors import CgroupError
from cove.runtime.cgroups.v2 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import BlockIO, DeviceRate, LinuxResources

_FIELD = "linux.resources.blockIO"

# spec field, io.max key
_THROTTLES = (
    ("throttle_read_bps", "throttleReadBpsDevice", "rbps"),
    ("throttle_write_bps", "throttleWriteBpsDevice", "wbps"),
    ("throttle_read_iops", "throttleReadIOPSDevice", "riops"),
    ("throttle_write_iops", "throttleWriteIOPSDevice", "wiops"),
)


def blkio_to_io_weight(weight: int) -> int:
    """v1 blkio weight (10..1000) to v2 io.weight (1..10000), the OCI/runc linear map."""
    weight = min(max(weight, 10), 1000)
    return 1 + (weight - 10) * 9999 // 990


def _write_weight(path: str, key: str, weight: int, field: str) -> None:
    """`key` is "default" or "MAJ:MIN"."""
    written = False
    if _files.exists(path, "io.bfq.weight"):
        # Plain "N" for the default: what every bfq version accepts.
        text = str(weight) if key == "default" else f"{key} {weight}"
        _files.write(path, "io.bfq.weight", text, field)
        written = True
    if _files.exists(path, "io.weight"):
        _files.write(path, "io.weight", f"{key} {blkio_to_io_weight(weight)}", field)
        written = True
    if not written:
        raise CgroupError(
            f"{field}: cannot set weight {weight}: {path} has neither io.weight nor "
            "io.bfq.weight (no bfq scheduler nor io.cost in this kernel)"
        )


def _apply(path: str, block_io: BlockIO) -> None:
    # leafWeight (the weight of the cgroup's own tasks against its children) is v1 only;
    # ignored, as runc does on v2.
    if block_io.weight:  # 0 means unset
        _write_weight(path, "default", block_io.weight, f"{_FIELD}.weight")
    for device in block_io.weight_device:
        _write_weight(
            path, f"{device.major}:{device.minor}", device.value, f"{_FIELD}.weightDevice"
        )
    for attribute, field, key in _THROTTLES:
        rates: tuple[DeviceRate, ...] = getattr(block_io, attribute)
        for rate in rates:
            # A rate of 0 removes the limit in v1; in io.max that is "max".
            value = "max" if rate.value == 0 else str(rate.value)
            _files.write(
                path, "io.max", f"{rate.major}:{rate.minor} {key}={value}", f"{_FIELD}.{field}"
            )


class _IOController:
    name = "io"

    def apply(self, path: str, resources: LinuxResources) -> None:
        if resources.block_io is not None:
            _apply(path, resources.block_io)

    def stats(self, path: str, data: dict[str, Any]) -> None:
        text = _files.read(path, "io.stat")
        if text is None:
            return
        service_bytes: list[dict[str, Any]] = []
        serviced: list[dict[str, Any]] = []
        for device, values in sorted(_files.nested_keyed(text).items()):
            major, sep, minor = device.partition(":")
            if not sep or not major.isdigit() or not minor.isdigit():
                continue
            for key, table, op in (("rbytes", service_bytes, "Read"),
                                   ("wbytes", service_bytes, "Write"),
                                   ("rios", serviced, "Read"),
                                   ("wios", serviced, "Write")):  # fmt: skip
                if key in values:
                    table.append(
                        {"major": int(major), "minor": int(minor), "op": op, "value": values[key]}
                    )
        data["blkio"] = {
            "ioServiceBytesRecursive": service_bytes,
            "ioServicedRecursive": serviced,
        }


CONTROLLER = _IOController()
