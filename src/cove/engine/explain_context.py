"""The context of `cove run --explain` (`cove.engine.explain`): the parsed spec, the
container's cgroup folders, and the helpers that write shell words and "# why:" lines.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass

from cove.oci.resources import LinuxResources, parse_resources
from cove.oci.runtime_spec import Process, Spec
from cove.runtime.cgroups import cgroup_relpath


@dataclass(frozen=True)
class Hierarchy:
    """One cgroup folder of the container and the controllers that share it."""

    path: str
    mountpoint: str
    controllers: tuple[str, ...]


@dataclass(frozen=True)
class Context:
    spec: Spec
    resources: LinuxResources
    container_id: str
    cgroup_paths: dict[str, str]
    hierarchies: tuple[Hierarchy, ...]
    root_ref: str  # how a command names the rootfs: the shell variable ROOT

    @classmethod
    def build(cls, spec: Spec, container_id: str, cgroup_paths: dict[str, str]) -> Context:
        relpath = cgroup_relpath(spec.linux.cgroups_path, container_id)
        safe = shlex.quote(spec.root.path) == spec.root.path
        return cls(
            spec=spec,
            resources=parse_resources(spec.linux.resources),
            container_id=container_id,
            cgroup_paths=dict(cgroup_paths),
            hierarchies=_hierarchies(cgroup_paths, relpath),
            root_ref="$ROOT" if safe else '"$ROOT"',
        )

    def at_root(self, path: str) -> str:
        """`path` inside the rootfs, as a shell word."""
        return self.root_ref + quote_path("/" + path.lstrip("/"))

    @property
    def cgroup_v2(self) -> bool:
        return set(self.cgroup_paths) == {""}

    def new_namespace(self, ns_type: str) -> bool:
        namespace = self.spec.linux.namespace(ns_type)
        return namespace is not None and not namespace.path

    @property
    def user_namespace(self) -> bool:
        return self.spec.linux.namespace("user") is not None

    @property
    def process(self) -> Process | None:
        return self.spec.process


def _hierarchies(cgroup_paths: dict[str, str], relpath: str) -> tuple[Hierarchy, ...]:
    grouped: dict[str, list[str]] = {}
    for controller, path in cgroup_paths.items():
        grouped.setdefault(path, []).append(controller)
    return tuple(
        Hierarchy(path, _mountpoint(path, relpath), tuple(names)) for path, names in grouped.items()
    )


def _mountpoint(path: str, relpath: str) -> str:
    """The hierarchy's mount point: `path` less the container's cgroup path."""
    if relpath and path.endswith(relpath) and len(path) > len(relpath):
        return path[: -len(relpath)]
    return posixpath.dirname(path)


def quote_path(path: str) -> str:
    return shlex.quote(path)


def why(text: str) -> str:
    return f"# why: {text}"


def echo(value: object, directory: str, name: str) -> str:
    return f"echo {shlex.quote(str(value))} > {quote_path(posixpath.join(directory, name))}"
