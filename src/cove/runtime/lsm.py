"""AppArmor profiles and SELinux labels: applied where the host has them, else a warning.

Both take effect at execve: the label to switch to is written to /proc/self/attr/...
just before it, as runc does.
"""

from __future__ import annotations

import os

from cove.errors import ProcessSetupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.runtime.config import ContainerConfig, ProcessConfig


def host_has_apparmor() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as enabled:
            return enabled.read().strip() == "Y"
    except OSError:
        return False


def host_has_selinux() -> bool:
    return os.path.isdir("/sys/fs/selinux") and os.path.exists("/sys/fs/selinux/enforce")


def warnings_for(config: ContainerConfig) -> list[str]:
    warnings = []
    if config.process.apparmor_profile and not host_has_apparmor():
        warnings.append(
            f"process.apparmorProfile: {config.process.apparmor_profile!r} not applied: "
            "AppArmor is not enabled on this host"
        )
    if not host_has_selinux():
        if config.process.selinux_label:
            warnings.append(
                f"process.selinuxLabel: {config.process.selinux_label!r} not applied: "
                "SELinux is not enabled on this host"
            )
        if config.mount_label:
            warnings.append(
                f"linux.mountLabel: {config.mount_label!r} not applied: SELinux is not "
                "enabled on this host"
            )
    return warnings


def apply_exec_labels(process: ProcessConfig) -> None:
    """Ask for the profile/label to take effect at the coming execve."""
    if process.apparmor_profile and host_has_apparmor():
        path = "/proc/self/attr/apparmor/exec"
        if not os.path.exists(path):
            path = "/proc/self/attr/exec"
        _write_attr(path, f"exec {process.apparmor_profile}", "process.apparmorProfile")
    if process.selinux_label and host_has_selinux():
        _write_attr("/proc/self/attr/exec", process.selinux_label, "process.selinuxLabel")


def _write_attr(path: str, value: str, field: str) -> None:
    try:
        with open(path, "w") as attr:
            attr.write(value)
    except OSError as exc:
        raise ProcessSetupError(f"{field}: cannot apply {value!r}: {exc.strerror}") from None
