"""The host folders of an image made by `cove image bootstrap --from-host` (its label
`io.cove.image.host-binds`: /usr, /etc, /var/lib, and /bin, /lib... on a host without
merged /usr), in a container: copy-on-write, one copy per container.

Each folder is an overlayfs mount in the container: its lower layers are the image's own
files at that path (its layer folders' `usr/`..., top layer first: the bootstrap
skeleton's /usr/sbin/policy-rc.d, what a Containerfile FROM it COPYs to /usr/local/bin)
over the host's folder; its
upper and work dirs are in the container's snapshot folder,
`<root>/snapshots/ctr-ID/host/NAME/{upper,work}` (NAME: the destination, "/" as "_").
So `apt-get install` inside writes the container's copy only: the host's folders never
change, and the copy goes with the container (`rm` removes the snapshot folder, `system
check --repair` an orphaned one). The runtime makes the mount (a spec mount of type
overlay) inside the container's mount namespace: the host's mount table never has it, and
it goes when the container's processes do. The copy outlives a stop: `start` mounts it again.

- `--read-only`: no upper dir. A read-only overlay when the image has files of its own
  there (overlayfs needs two lower layers without an upper), else a read-only bind.
- A root where overlayfs does not work (the copy snapshotter), or a path that overlayfs
  options cannot carry (`,` `:` `\\`, or more than a page of options): read-only binds,
  as before this module existed, and a warning saying so.
- Overlay on overlay: a host whose root is itself overlayfs gives lower layers on overlayfs
  (stacking depth 2, the kernel's limit); the layer folders and upper dirs under the engine
  root may be on it too.
- An engine root under /var/lib (the default, /var/lib/cove) puts the /var/lib copy inside
  its own lower layer: overlayfs mounts it, and inside the container that copy's upper and
  work dirs fail with ELOOP instead of showing themselves (the rest of the engine's folder
  shows as it did through the read-only binds).
- The upper dirs are not part of the root snapshot: `cove diff` and `cove commit` read the
  snapshot's own upper dir, so what a container changed in these folders is neither listed
  nor committed (an image committed from such a container keeps the label: its containers
  see the host's folders afresh). `cove image mount` binds them read-only
  (`cove.engine.images`).
- The kernel does not promise what an overlay shows when its lower layer changes under it
  (the host upgrading packages while a container runs): files the container copied up keep
  its version; the others show the host's current one, as the read-only binds did.

`plan` decides (it reads the layer folders only), `make_dirs` creates the upper and work
dirs, `spec_mount` renders one OCI mount.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cove.image.bootstrap import host_binds

HOST_DIRS_FOLDER = "host"  # under the container's snapshot folder
_OVERLAY_SPECIAL = (",", ":", "\\", "\n")


@dataclass(frozen=True)
class HostDir:
    """One host folder in a container. `upper` "" is read-only (with `lowers` a read-only
    overlay, else a bind of `source`)."""

    source: str  # the host's folder: the bottom layer
    destination: str  # in the container, normalised
    lowers: tuple[str, ...] = ()  # the image's own files there, top layer first
    upper: str = ""
    work: str = ""

    @property
    def layers(self) -> tuple[str, ...]:
        return (*self.lowers, self.source)


def destination_of(raw: str) -> str:
    path = posixpath.normpath("/" + raw.lstrip("/"))
    return "/" + path.lstrip("/")


def dir_name(destination: str) -> str:
    """The folder name of a destination's upper and work dirs: "/var/lib" -> "var_lib"."""
    return destination.strip("/").replace("/", "_") or "_"


def plan(
    labels: Mapping[str, str],
    snapshot_dir: str,
    layer_folders: Sequence[str],
    *,
    read_only: bool = False,
    overlay_works: bool = True,
) -> tuple[list[HostDir], list[str]]:
    """(the image's host folders as the container gets them, warnings). `layer_folders`:
    the image's unpacked layers, bottom first (as `LayerStore.ensure` gives them)."""
    pairs = host_binds(dict(labels))
    if not pairs:
        return [], []
    warnings: list[str] = []
    found: list[HostDir] = []
    for source, raw in pairs:
        destination = destination_of(raw)
        lowers = tuple(_image_files(layer_folders, destination))
        if read_only:
            found.append(HostDir(source, destination, lowers))
            continue
        folder = os.path.join(snapshot_dir, HOST_DIRS_FOLDER, dir_name(destination))
        found.append(HostDir(source, destination, lowers, os.path.join(folder, "upper"),
                             os.path.join(folder, "work")))  # fmt: skip
    if read_only:
        return [_readable(d) for d in found], warnings
    reason = ""
    if not overlay_works:
        reason = "overlayfs does not work under the engine's root"
    else:
        bad = [p for d in found for p in (*d.layers, d.upper, d.work) if not _carried(p)]
        if bad:
            reason = f"overlayfs options cannot name {bad[0]!r}"
        elif any(len(_overlay_data(d)) >= os.sysconf("SC_PAGE_SIZE") for d in found):
            reason = "the overlayfs options would be longer than a page"
    if reason:
        names = ", ".join(d.destination for d in found)
        warnings.append(f"the host's folders ({names}) are read-only in this container: {reason}")
        return [HostDir(d.source, d.destination) for d in found], warnings
    folders = [dir_name(d.destination) for d in found]
    if len(set(folders)) != len(folders):  # "/a_b" and "/a/b": never made by bootstrap
        warnings.append("the host's folders are read-only in this container: two share a name")
        return [HostDir(d.source, d.destination) for d in found], warnings
    return found, warnings


def _readable(host_dir: HostDir) -> HostDir:
    if host_dir.lowers and all(_carried(p) for p in host_dir.layers):
        if len(_overlay_data(host_dir)) < os.sysconf("SC_PAGE_SIZE"):
            return host_dir
    return HostDir(host_dir.source, host_dir.destination)


def _carried(path: str) -> bool:
    return not any(c in path for c in _OVERLAY_SPECIAL)


def _image_files(layer_folders: Sequence[str], destination: str) -> list[str]:
    """The layers' own folders at `destination`, top layer first, those with something in
    them (the skeleton's empty mount points add nothing); a path that leaves its layer
    through a symlink is not used."""
    found = []
    for folder in reversed(layer_folders):
        path = os.path.join(folder, destination.lstrip("/"))
        inside = os.path.join(os.path.realpath(folder), destination.lstrip("/"))
        if os.path.realpath(path) != inside or not os.path.isdir(path):
            continue
        try:
            if not os.listdir(path):
                continue
        except OSError:
            continue
        found.append(path)
    return found


def make_dirs(host_dirs: Sequence[HostDir]) -> None:
    """Creates the upper and work dirs (kept when they exist: a container started again
    finds its copy). The upper dir takes the host folder's mode and owner: it is the root
    of what the container sees there."""
    for host_dir in host_dirs:
        if not host_dir.upper:
            continue
        os.makedirs(os.path.dirname(host_dir.upper), mode=0o700, exist_ok=True)
        info = os.stat(host_dir.source)
        try:
            os.mkdir(host_dir.upper, 0o700)
        except FileExistsError:
            pass
        else:
            os.chown(host_dir.upper, info.st_uid, info.st_gid)
            os.chmod(host_dir.upper, info.st_mode & 0o7777)
        os.makedirs(host_dir.work, mode=0o700, exist_ok=True)


def _overlay_data(host_dir: HostDir) -> str:
    return ",".join(_overlay_options(host_dir))


def _overlay_options(host_dir: HostDir) -> list[str]:
    options = ["lowerdir=" + ":".join(host_dir.layers)]
    if host_dir.upper:
        options += [f"upperdir={host_dir.upper}", f"workdir={host_dir.work}"]
    return options


def spec_mount(host_dir: HostDir) -> dict[str, Any]:
    """The OCI mount of one host folder."""
    if host_dir.upper:
        return {"destination": host_dir.destination, "type": "overlay", "source": "overlay",
                "options": _overlay_options(host_dir)}  # fmt: skip
    if host_dir.lowers:
        return {"destination": host_dir.destination, "type": "overlay", "source": "overlay",
                "options": ["ro", *_overlay_options(host_dir)]}  # fmt: skip
    return {"destination": host_dir.destination, "type": "bind", "source": host_dir.source,
            "options": ["rbind", "ro", "rprivate"]}  # fmt: skip


def read_only_binds(labels: Mapping[str, str]) -> list[HostDir]:
    """The host folders as read-only binds (no storage of the container's: a spec made
    without `plan`)."""
    return [HostDir(source, destination_of(raw)) for source, raw in host_binds(dict(labels))]
