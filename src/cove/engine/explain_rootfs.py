"""`cove run --explain`, the file system steps (`cove.engine.explain`): 1. the root
filesystem (the overlay), 4. the mounts inside the new mount namespace, 5. the device nodes,
6. pivot_root, 7. the kernel settings, read-only and masked paths.

The default devices and /dev links are the runtime's own (cove.runtime.devices). A masked
path is shown as a tmpfs since the spec does not say whether it is a file or a folder.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Iterable

from cove.engine.explain_context import Context, Hierarchy, quote_path, why
from cove.oci.runtime_spec import Device, Mount
from cove.runtime.devices import DEFAULT_DEVICES, DEV_SYMLINKS

# Mount options runc accepts that change nothing for the kernel.
_NO_KERNEL_EFFECT = frozenset({"tmpcopyup", "nocopyup", "copyup", "private-label"})


# --- 1. root filesystem --------------------------------------------------------------------


def root_filesystem(ctx: Context, rootfs_mount: dict[str, str] | None) -> list[str]:
    root = ctx.spec.root.path
    lines = [f"ROOT={shlex.quote(root)}"]
    if not root.startswith("/"):
        lines.insert(0, why("root.path is relative: to the bundle folder"))
    if rootfs_mount is None:
        lines.insert(0, why("no overlay: this folder is the container's / as it is"))
        return lines
    target = rootfs_mount.get("target", root)
    where = ctx.root_ref if target == root else quote_path(target)
    layers = ("lowerdir", "upperdir", "workdir")
    options = [f"{key}={rootfs_mount[key]}" for key in layers if key in rootfs_mount]
    options += [
        f"{key}={value}"
        for key, value in rootfs_mount.items()
        if key not in layers and key != "target"
    ]
    lines.insert(0, why("the image's layers stay read-only; the container writes on top"))
    lines.append(f"mount -t overlay overlay -o {shlex.quote(','.join(options))} {where}")
    return lines


# --- 4. mounts -----------------------------------------------------------------------------

_PROPAGATION_WHY = {
    "rprivate": "mounts made from here on stay in this namespace, and the host's stay out",
    "private": "mounts made from here on stay in this namespace, and the host's stay out",
    "rslave": "the host's new mounts still show here, but none goes back",
    "slave": "the host's new mounts still show here, but none goes back",
}


def mounts(ctx: Context) -> list[str]:
    propagation = ctx.spec.linux.rootfs_propagation or "rprivate"
    lines = []
    if propagation in _PROPAGATION_WHY:
        lines.append(why(_PROPAGATION_WHY[propagation]))
    lines.append(f"mount --make-{propagation} /")
    root = ctx.root_ref
    lines.append(why("pivot_root wants the new root to be a mount point"))
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


def _mount_lines(ctx: Context, mount: Mount) -> list[str]:
    target = ctx.at_root(mount.destination)
    options = _options(mount.options)
    bind = _bind_option(mount)
    if bind is not None:
        return [f"mount {bind} {_dash_o(options)}{quote_path(mount.source)} {target}"]
    if mount.type in ("cgroup", "cgroup2"):
        return _cgroup_mount(ctx, mount, target, options)
    source = shlex.quote(mount.source or mount.type)
    return [f"mount -t {shlex.quote(mount.type)} {_dash_o(options)}{source} {target}"]


def _cgroup_mount(ctx: Context, mount: Mount, target: str, options: list[str]) -> list[str]:
    """As the runtime mounts /sys/fs/cgroup: the container's own cgroups, not the host's."""
    if not ctx.hierarchies:
        return [f"# {mount.destination}: no cgroup folders given: cove-runtime would refuse it"]
    own_namespace = ctx.new_namespace("cgroup")
    if ctx.cgroup_v2:
        path = ctx.hierarchies[0].path
        if own_namespace:
            return [f"mount -t cgroup2 {_dash_o(options)}cgroup2 {target}"]
        return [f"mount --rbind {_dash_o(options)}{quote_path(path)} {target}"]
    reason = "a tmpfs with one folder per hierarchy, each showing the container's own cgroup"
    tmpfs_options = [o for o in options if o != "ro"] + ["mode=755"]
    lines = [why(reason), f"mount -t tmpfs {_dash_o(tmpfs_options)}tmpfs {target}"]
    for hierarchy in ctx.hierarchies:
        sub = target + quote_path("/" + posixpath.basename(hierarchy.mountpoint))
        lines.append(f"mkdir -p {sub}")
        lines.append(_hierarchy_mount(hierarchy, sub, options, own_namespace))
    if "ro" in options:
        lines.append(f"mount -o remount,ro {target}")
    return lines


def _hierarchy_mount(hierarchy: Hierarchy, sub: str, options: list[str], own_ns: bool) -> str:
    if not own_ns:
        return f"mount --rbind {_dash_o(options)}{quote_path(hierarchy.path)} {sub}"
    if hierarchy.controllers == ("",):
        return f"mount -t cgroup2 {_dash_o(options)}cgroup2 {sub}"
    controllers = [name for name in hierarchy.controllers if name]
    return f"mount -t cgroup {_dash_o(options + controllers)}cgroup {sub}"


# --- 5. device nodes -----------------------------------------------------------------------


def devices(ctx: Context) -> list[str]:
    mounts_dev = any(m.destination.rstrip("/") == "/dev" for m in ctx.spec.mounts)
    devices: list[Device] = list(DEFAULT_DEVICES) if mounts_dev else []
    devices += ctx.spec.linux.devices
    lines = []
    if devices:
        if ctx.user_namespace:
            lines.append(why("mknod is denied in a user namespace: the host's nodes are bound"))
        else:
            lines.append(why("/dev is an empty tmpfs: only these devices exist in it"))
    for device in devices:
        lines += _device_lines(ctx, device)
    if mounts_dev:
        lines += [
            f"ln -s {quote_path(source)} {ctx.at_root(link)}" for source, link in DEV_SYMLINKS
        ]
    process = ctx.process
    if process is not None and process.cwd != "/":
        lines.append(f"mkdir -p {ctx.at_root(process.cwd)}  # process.cwd, if missing")
    return lines


def _device_lines(ctx: Context, device: Device) -> list[str]:
    target = ctx.at_root(device.path)
    if ctx.user_namespace and device.type != "p":
        return [f"touch {target}", f"mount --bind {quote_path(device.path)} {target}"]
    mode = (device.file_mode if device.file_mode is not None else 0o666) & 0o7777
    if device.type == "p":
        lines = [f"mknod -m {mode:o} {target} p"]
    else:
        lines = [f"mknod -m {mode:o} {target} {device.type} {device.major} {device.minor}"]
    if device.uid or device.gid:
        lines.append(f"chown {device.uid or 0}:{device.gid or 0} {target}")
    return lines


# --- 6. switch root ------------------------------------------------------------------------


def switch_root(ctx: Context) -> list[str]:
    lines = [
        why("the rootfs becomes /, and the host's tree is detached, not just out of reach"),
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


def finalize(ctx: Context) -> list[str]:
    linux = ctx.spec.linux
    lines = [f"sysctl -w {shlex.quote(f'{key}={value}')}" for key, value in linux.sysctl.items()]
    if linux.readonly_paths:
        lines.append(why("the kernel's knobs stay readable, not writable"))
    for path in linux.readonly_paths:
        quoted = quote_path(path)
        lines.append(f"mount --rbind {quoted} {quoted} && mount -o remount,bind,ro {quoted}")
    if linux.masked_paths:
        lines.append(why("what would show the host's secrets or hardware is covered"))
    for path in linux.masked_paths:
        lines.append(f"mount -t tmpfs -o ro tmpfs {quote_path(path)}  # or /dev/null for a file")
    if ctx.spec.root.readonly:
        lines.append(why("root.readonly: the container cannot change its own files"))
        lines.append("mount -o remount,bind,ro /")
    return lines
