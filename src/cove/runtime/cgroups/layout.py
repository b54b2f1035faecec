"""Where the host's cgroup hierarchies are: v1, pure v2, or hybrid (v1 plus cgroup2)."""

from __future__ import annotations

from cove.oci.data import Data

V1 = "v1"
V2 = "v2"
HYBRID = "hybrid"


class Hierarchy(Data):
    __slots__ = ("mountpoint", "options", "version")

    def __init__(
        self,
        mountpoint: str,
        version: int,  # 1 or 2
        options: tuple[str, ...],
    ) -> None:
        self.mountpoint = mountpoint
        self.version = version
        # v1: the mount's super options naming controllers ("cpu", "name=systemd"); v2: ().
        self.options = options

    @property
    def fs_data(self) -> str:
        return ",".join(self.options)


class Layout(Data):
    __slots__ = ("hierarchies",)

    def __init__(
        self,
        hierarchies: tuple[Hierarchy, ...],
    ) -> None:
        self.hierarchies = hierarchies

    @property
    def mode(self) -> str:
        versions = {h.version for h in self.hierarchies}
        if versions == {2}:
            return V2
        return HYBRID if 2 in versions else V1

    @property
    def unified(self) -> Hierarchy | None:
        return next((h for h in self.hierarchies if h.version == 2), None)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def parse_mountinfo(text: str) -> Layout:
    hierarchies = []
    seen: set[str] = set()
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        tail = right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype, super_options = tail[0], tail[2]
        mountpoint = _unescape(fields[4])
        if fstype not in ("cgroup", "cgroup2") or mountpoint in seen:
            continue
        seen.add(mountpoint)
        if fstype == "cgroup2":
            hierarchies.append(Hierarchy(mountpoint, 2, ()))
        else:
            options = tuple(
                o
                for o in super_options.split(",")
                if o not in ("rw", "ro") and not o.startswith(("release_agent=", "clone_children"))
            )
            hierarchies.append(Hierarchy(mountpoint, 1, options))
    return Layout(tuple(hierarchies))


def host_layout() -> Layout:
    with open("/proc/self/mountinfo") as mountinfo:
        return parse_mountinfo(mountinfo.read())
