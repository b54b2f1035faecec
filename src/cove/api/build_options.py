"""POST /build's query, checked: `parse_options` makes the `BuildOptions` the builder
takes (BadParameter: 400, NotImplementedHere: 501); see `cove.api.build`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cove.api.build_context import check_remote
from cove.api.errors import BadParameter, NotImplementedHere
from cove.engine.build_secrets import StepResources

# Options dockerd applies to the build's containers that cove's builder does not take:
# name -> the values a client sends when the option is not used.
_UNUSED_OPTIONS: dict[str, tuple[str, ...]] = {
    "memory": ("", "0"),
    "memswap": ("", "0"),
    "cpushares": ("", "0"),
    "cpusetcpus": ("",),
    "cpusetmems": ("",),
    "cpuperiod": ("", "0"),
    "cpuquota": ("", "0"),
    "cgroupparent": ("",),
    "cachefrom": ("", "null", "[]"),
    "isolation": ("", "default"),
}


@dataclass(frozen=True)
class BuildOptions:
    """The query of POST /build, checked."""

    dockerfile: str = ""
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    network: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    quiet: bool = False
    remote: str = ""
    aux: bool = True  # {"aux": {"ID"}} (API 1.30 and later)
    warnings: tuple[str, ...] = ()
    resources: StepResources = field(default_factory=StepResources)  # of the RUN containers


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _bool(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadParameter(f"invalid boolean value {query[name]!r} for query parameter {name}")


def _json_map(text: str, what: str, allow_null: bool) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadParameter(f"error reading {what}: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadParameter(f"error reading {what}: want a JSON object of strings")
    for key, item in value.items():
        if not isinstance(item, str) and not (allow_null and item is None):
            raise BadParameter(f"error reading {what}: the value of {key!r} is not a string")
    return value


def _network(mode: str) -> str:
    if mode in ("", "default", "bridge"):
        return "default"
    if mode in ("host", "none"):
        return mode
    raise NotImplementedHere(
        f"network mode {mode!r} is not supported for builds: RUN steps use the default "
        "network (default, bridge), host or none"
    )


def _check_platform(text: str) -> None:
    from cove.image.platform import host_platform, parse_platform

    if not text.strip():
        return
    wanted = parse_platform(text)  # InvalidArgument: 400
    host = host_platform()
    if not wanted.matches(host):
        raise NotImplementedHere(
            f"cove builds images for this machine's platform only ({host}), not {wanted}"
        )


def _step_resources(query: Mapping[str, str]) -> StepResources:
    """extrahosts (NAME:IP, repeated or comma-separated), shmsize (bytes) and ulimits (a
    JSON list of {Name, Soft, Hard}) as the RUN containers take them."""
    getall = getattr(query, "getall", None)
    values = list(getall("extrahosts", [])) if getall else [query.get("extrahosts", "")]
    hosts = tuple(item.strip() for value in values for item in value.split(",") if item.strip())
    shm = query.get("shmsize", "").strip()
    if shm and not shm.isdigit():
        raise BadParameter(f"invalid shmsize {shm!r}: want a number of bytes")
    text = query.get("ulimits", "").strip()
    limits: list[str] = []
    if text and text != "null":
        try:
            given = json.loads(text)
        except ValueError:
            raise BadParameter(f"invalid ulimits {text!r}: want a JSON list") from None
        if not isinstance(given, list) or not all(isinstance(u, dict) for u in given):
            raise BadParameter("invalid ulimits: want a list of {Name, Soft, Hard}")
        limits = [f"{u.get('Name')}={u.get('Soft')}:{u.get('Hard')}" for u in given]
    return StepResources(hosts, "" if shm in ("", "0") else shm, tuple(limits))


def parse_options(
    query: Mapping[str, str], tags: list[str], version: tuple[int, int]
) -> BuildOptions:
    """The query as the builder takes it; BadParameter (400) or NotImplementedHere (501)."""
    from cove.image.reference import parse_reference

    builder = query.get("version", "").strip()
    if builder not in ("", "1"):
        raise BadParameter(
            f"builder version {builder!r} is not supported: cove serve has the legacy builder "
            "only (version=1; DOCKER_BUILDKIT=0 for the docker CLI)"
        )
    if _bool(query, "squash"):
        raise BadParameter("squash is only supported with experimental mode")
    if query.get("session", "").strip():
        raise BadParameter("build sessions are not supported: cove serve has the legacy builder")
    for tag in tags:
        reference = parse_reference(tag)  # InvalidReference: 400
        if reference.digest is not None:
            raise BadParameter(f"refusing to create a tag with a digest reference: {tag}")
    _check_platform(query.get("platform", ""))
    remote = query.get("remote", "").strip()
    if remote:
        check_remote(remote)
    build_args = {key: value for key, value in
                  _json_map(query.get("buildargs", ""), "build args", True).items()
                  if value is not None}  # fmt: skip
    warnings = tuple(
        f"[Warning] the build option {name}={query[name]} is not supported by cove and is ignored\n"
        for name, defaults in _UNUSED_OPTIONS.items()
        if query.get(name, "").strip() not in defaults
    )
    resources = _step_resources(query)
    resources.check()  # InvalidArgument: 400
    return BuildOptions(
        resources=resources,
        dockerfile=query.get("dockerfile", ""),
        tags=tuple(tags),
        build_args=build_args,
        target=query.get("target", "") or None,
        no_cache=_bool(query, "nocache"),
        pull=_bool(query, "pull"),
        network=_network(query.get("networkmode", "").strip()),
        labels=_json_map(query.get("labels", ""), "labels", False),
        quiet=_bool(query, "q"),
        remote=remote,
        aux=version >= (1, 30),
        warnings=warnings,
    )
