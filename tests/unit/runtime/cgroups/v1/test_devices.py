"""cgroups.v1.devices on a fake devices cgroup."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from cove.errors import CgroupError
from cove.oci.resources import DeviceRule, LinuxResources, parse_resources
from cove.runtime.cgroups.v1 import devices
from tests.unit.runtime.cgroups.v1.conftest import FakeKernel

DEFAULT_WRITES = [
    ("devices.allow", "c *:* m"),
    ("devices.allow", "b *:* m"),
    ("devices.allow", "c 1:3 rwm"),
    ("devices.allow", "c 1:5 rwm"),
    ("devices.allow", "c 1:7 rwm"),
    ("devices.allow", "c 1:8 rwm"),
    ("devices.allow", "c 1:9 rwm"),
    ("devices.allow", "c 5:0 rwm"),
    ("devices.allow", "c 5:1 rwm"),
    ("devices.allow", "c 5:2 rwm"),
    ("devices.allow", "c 136:* rwm"),
    ("devices.allow", "c 10:200 rwm"),
]


def test_default_allow_list_has_the_dev_nodes() -> None:
    nodes = {(r.type, r.major, r.minor) for r in devices.DEFAULT_ALLOWED_DEVICES}
    for node in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, None)]:
        assert ("c", *node) in nodes
    assert all(rule.allow for rule in devices.DEFAULT_ALLOWED_DEVICES)


def test_deny_all_then_spec_rules_then_defaults(kernel: FakeKernel) -> None:
    path = kernel.cgroup("devices")
    assert devices.CONTROLLER.name == "devices"
    resources = parse_resources(
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                {"allow": True, "type": "b", "major": 8, "access": "r"},
                {"allow": False, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
            ]
        }
    )
    devices.CONTROLLER.apply(path, resources)
    assert kernel.writes == [
        ("devices.deny", "a"),
        ("devices.allow", "c 10:229 rw"),
        ("devices.allow", "b 8:* r"),
        ("devices.deny", "c 5:1 rwm"),
        *DEFAULT_WRITES,
    ]


def test_rules_without_deny_all_keep_the_kernel_default(kernel: FakeKernel) -> None:
    path = kernel.cgroup("devices")
    rules = (DeviceRule(allow=False, type="b", major=None, minor=None, access="rwm"),)
    devices.CONTROLLER.apply(path, LinuxResources(devices=rules))
    assert kernel.writes == [("devices.deny", "b *:* rwm"), *DEFAULT_WRITES]


def test_no_rules_leave_the_cgroup_alone(kernel: FakeKernel) -> None:
    path = kernel.cgroup("devices")
    devices.CONTROLLER.apply(path, LinuxResources())
    data: dict[str, Any] = {}
    devices.CONTROLLER.stats(path, data)
    assert (kernel.writes, data) == ([], {})


@pytest.mark.parametrize(
    ("rule", "lines"),
    [
        (DeviceRule(allow=True), ["a"]),
        (DeviceRule(allow=False, access="mwr"), ["a"]),
        (DeviceRule(allow=True, access="r"), ["c *:* r", "b *:* r"]),
        (DeviceRule(allow=True, type="c", major=4, minor=None, access="w"), ["c 4:* w"]),
        (DeviceRule(allow=True, type="b", major=None, minor=0, access="m"), ["b *:0 m"]),
    ],
)
def test_rule_lines(rule: DeviceRule, lines: list[str]) -> None:
    assert devices.rule_lines(rule) == lines


def test_refused_rule_names_its_index(kernel: FakeKernel) -> None:
    path = kernel.cgroup("devices")
    kernel.refuse("devices.allow", errno.EPERM, lambda v: v == "a")
    rules = (DeviceRule(allow=False, type="c", major=1, minor=1), DeviceRule(allow=True))
    with pytest.raises(CgroupError) as caught:
        devices.CONTROLLER.apply(path, LinuxResources(devices=rules))
    assert str(caught.value) == (
        f"linux.resources.devices[1]: cannot set a in {path}: Operation not permitted"
    )


def test_refused_default_rule_is_named(kernel: FakeKernel) -> None:
    path = kernel.cgroup("devices")
    kernel.refuse("devices.allow", errno.EPERM, lambda v: v == "c 5:1 rwm")
    with pytest.raises(CgroupError, match=r"^linux\.resources\.devices \(default rule c 5:1 rwm\)"):
        devices.CONTROLLER.apply(path, LinuxResources(devices=(DeviceRule(allow=False),)))
