"""devices (v1): which device nodes the cgroup's tasks may open (r, w) or create (m).

Spec field          kernel files (cgroup-v1/devices.rst)
devices[]           devices.allow / devices.deny, one "TYPE MAJ:MIN ACCESS" per write,
                    "*" for a major or minor that is not given

The rules go in spec order, each to devices.allow or devices.deny, so a list that starts
with a deny-all ({"allow": false, "access": "rwm"}) first writes "a" to devices.deny
(which drops every exception and makes the cgroup deny by default) and then opens what
the later rules allow. After the spec's rules come DEFAULT_ALLOWED_DEVICES, the devices
every container gets in /dev, whatever the spec says, as runc does. An empty rule list
leaves the cgroup alone (the kernel default is allow-all; `update` without devices keeps
what create set).
"""

from __future__ import annotations

from cove.oci.resources import DeviceRule
from cove.runtime.cgroups.v1 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources

FIELD = "linux.resources.devices"

# Appended to every container's rules, as runc appends its AllowedDevices.
DEFAULT_ALLOWED_DEVICES: tuple[DeviceRule, ...] = (
    DeviceRule(allow=True, type="c", major=None, minor=None, access="m"),  # mknod, as runc
    DeviceRule(allow=True, type="b", major=None, minor=None, access="m"),
    DeviceRule(allow=True, type="c", major=1, minor=3, access="rwm"),  # /dev/null
    DeviceRule(allow=True, type="c", major=1, minor=5, access="rwm"),  # /dev/zero
    DeviceRule(allow=True, type="c", major=1, minor=7, access="rwm"),  # /dev/full
    DeviceRule(allow=True, type="c", major=1, minor=8, access="rwm"),  # /dev/random
    DeviceRule(allow=True, type="c", major=1, minor=9, access="rwm"),  # /dev/urandom
    DeviceRule(allow=True, type="c", major=5, minor=0, access="rwm"),  # /dev/tty
    DeviceRule(allow=True, type="c", major=5, minor=1, access="rwm"),  # /dev/console
    DeviceRule(allow=True, type="c", major=5, minor=2, access="rwm"),  # /dev/ptmx
    DeviceRule(allow=True, type="c", major=136, minor=None, access="rwm"),  # /dev/pts/*
    DeviceRule(allow=True, type="c", major=10, minor=200, access="rwm"),  # /dev/net/tun
)


class DevicesController:
    name = "devices"

    def apply(self, path: str, resources: LinuxResources) -> None:
        rules = resources.devices
        if not rules:
            return
        for index, rule in enumerate(rules):
            _write_rule(path, rule, f"{FIELD}[{index}]")
        for rule in DEFAULT_ALLOWED_DEVICES:
            _write_rule(path, rule, f"{FIELD} (default rule {rule_lines(rule)[0]})")

    def stats(self, path: str, data: dict[str, Any]) -> None:
        return None  # no figures


CONTROLLER = DevicesController()


def rule_lines(rule: DeviceRule) -> list[str]:
    """The line(s) to write for `rule`.

    The kernel reads a rule of type "a" as "every device, all access" whatever follows,
    so "a" with only some of r, w, m becomes the same access on every char and block
    device.
    """
    if rule.type == "a":
        if set(rule.access) >= set("rwm"):
            return ["a"]
        return [f"c *:* {rule.access}", f"b *:* {rule.access}"]
    major = "*" if rule.major is None else str(rule.major)
    minor = "*" if rule.minor is None else str(rule.minor)
    return [f"{rule.type} {major}:{minor} {rule.access}"]


def _write_rule(path: str, rule: DeviceRule, field: str) -> None:
    name = "devices.allow" if rule.allow else "devices.deny"
    for line in rule_lines(rule):
        _files.write(path, name, line, field)
