"""The `features` document (runc 1.1+ shape) that containerd reads to learn our abilities."""

from __future__ import annotations

from cove.oci.default_spec import SPEC_VERSION
from cove.oci.runtime_spec import HOOK_NAMES, NAMESPACE_TYPES
from cove.runtime.capabilities import CAPABILITY_NAMES
from cove.runtime.config import PROPAGATION_FLAGS, known_mount_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def features() -> dict[str, Any]:
    linux: dict[str, Any] = {
        "namespaces": list(NAMESPACE_TYPES),
        "capabilities": list(CAPABILITY_NAMES),
        "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
        "apparmor": {"enabled": True},
        "selinux": {"enabled": True},
        "intelRdt": {"enabled": False},
        "mountExtensions": {"idmap": {"enabled": False}},
    }
    try:
        from cove.runtime.seccomp import features as seccomp_features

        linux["seccomp"] = seccomp_features()
    except ImportError:
        linux["seccomp"] = {"enabled": False}
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(HOOK_NAMES),
        "mountOptions": sorted(known_mount_options() | set(PROPAGATION_FLAGS)),
        "linux": linux,
        "annotations": {"org.opencontainers.runtime-spec.features": "cove-runtime"},
    }
