"""The image config document (OCI `application/vnd.oci.image.config.v1+json` or Docker's):
its types and RFC 3339 timestamps. Parsing is `cove.image.manifest.parse_config`.
"""

from __future__ import annotations

import re

from cove.image.canonical import canonical_json
from cove.image.digest import Digest
from cove.image.platform import Platform
from cove.image.records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any

_EXEC_KEYS = frozenset(
    {
        "User",
        "ExposedPorts",
        "Env",
        "Entrypoint",
        "Cmd",
        "Volumes",
        "WorkingDir",
        "Labels",
        "StopSignal",
    }
)


class ExecutionConfig(Record):
    """The `config` member of an image config: defaults for containers of the image.

    `entrypoint`/`cmd` are None when absent (not the same as an empty list for docker's
    override rules). Other members (Healthcheck, Shell, OnBuild, ArgsEscaped, ...) are
    kept in `extra` under their JSON names.
    """

    __slots__ = (
        "cmd",
        "entrypoint",
        "env",
        "exposed_ports",
        "extra",
        "labels",
        "stop_signal",
        "user",
        "volumes",
        "working_dir",
    )
    _field_order = (
        "user",
        "exposed_ports",
        "env",
        "entrypoint",
        "cmd",
        "volumes",
        "working_dir",
        "labels",
        "stop_signal",
        "extra",
    )

    def __init__(
        self,
        user: str = "",
        exposed_ports: tuple[str, ...] = (),
        env: tuple[str, ...] = (),
        entrypoint: tuple[str, ...] | None = None,
        cmd: tuple[str, ...] | None = None,
        volumes: tuple[str, ...] = (),
        working_dir: str = "",
        labels: dict[str, str] | None = None,
        stop_signal: str = "",
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.user = user
        self.exposed_ports = exposed_ports
        self.env = env
        self.entrypoint = entrypoint
        self.cmd = cmd
        self.volumes = volumes
        self.working_dir = working_dir
        self.labels: dict[str, str] = {} if labels is None else labels
        self.stop_signal = stop_signal
        self.extra: dict[str, Any] = {} if extra is None else extra

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = {volume: {} for volume in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        return out


class History(Record):
    __slots__ = ("author", "comment", "created", "created_by", "empty_layer")
    _field_order = ("created", "created_by", "author", "comment", "empty_layer")

    def __init__(
        self,
        created: str = "",
        created_by: str = "",
        author: str = "",
        comment: str = "",
        empty_layer: bool = False,
    ) -> None:
        self.created = created
        self.created_by = created_by
        self.author = author
        self.comment = comment
        self.empty_layer = empty_layer

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in (
            ("created", self.created),
            ("created_by", self.created_by),
            ("author", self.author),
            ("comment", self.comment),
        ):
            if value:
                out[key] = value
        if self.empty_layer:
            out["empty_layer"] = True
        return out


_CONFIG_KEYS = frozenset(
    {
        "created",
        "author",
        "architecture",
        "os",
        "os.version",
        "os.features",
        "variant",
        "config",
        "rootfs",
        "history",
    }
)


class ImageConfig(Record):
    """The image config (OCI `application/vnd.oci.image.config.v1+json` or Docker's).

    Its digest is the image id. `diff_ids` are the digests of the uncompressed layers.
    `raw` (the bytes it was parsed from) takes no part in equality and repr.
    """

    __slots__ = (
        "architecture",
        "author",
        "config",
        "created",
        "diff_ids",
        "extra",
        "history",
        "os",
        "os_features",
        "os_version",
        "raw",
        "variant",
    )
    _field_order = (
        "architecture",
        "os",
        "diff_ids",
        "variant",
        "os_version",
        "os_features",
        "created",
        "author",
        "config",
        "history",
        "extra",
        "raw",
    )
    _hidden = ("raw",)

    def __init__(
        self,
        architecture: str,
        os: str,
        diff_ids: tuple[Digest, ...] = (),
        variant: str = "",
        os_version: str = "",
        os_features: tuple[str, ...] = (),
        created: str = "",
        author: str = "",
        config: ExecutionConfig | None = None,
        history: tuple[History, ...] = (),
        extra: dict[str, Any] | None = None,
        raw: bytes = b"",
    ) -> None:
        self.architecture = architecture
        self.os = os
        self.diff_ids = diff_ids
        self.variant = variant
        self.os_version = os_version
        self.os_features = os_features
        self.created = created
        self.author = author
        self.config = ExecutionConfig() if config is None else config
        self.history = history
        self.extra: dict[str, Any] = {} if extra is None else extra
        #: the bytes this was parsed from (b"" for a config built in memory)
        self.raw = raw

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant, self.os_version)

    def created_time(self) -> datetime | None:
        """`created` as an aware datetime (RFC 3339, nanoseconds truncated), or None."""
        return parse_time(self.created)

    def to_json(self) -> bytes:
        out: dict[str, Any] = dict(self.extra)
        out.update(architecture=self.architecture, os=self.os)
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.created:
            out["created"] = self.created
        if self.author:
            out["author"] = self.author
        out["config"] = self.config.to_json()
        out["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in self.diff_ids]}
        if self.history:
            out["history"] = [entry.to_json() for entry in self.history]
        return canonical_json(out)

    def content(self) -> bytes:
        return self.raw or self.to_json()

    @property
    def digest(self) -> Digest:
        """The image id."""
        return Digest.of(self.content())


_TIME_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", re.IGNORECASE)


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 timestamp as Go writes it (up to nanoseconds) -> aware datetime, or None
    when `text` is empty or not such a timestamp."""
    match = _TIME_RE.fullmatch(text.strip()) if text else None
    if match is None:
        return None
    base, fraction, zone = match.groups()
    fraction = (fraction or "")[:7]  # "." and at most 6 digits
    zone = "+00:00" if zone is None or zone.upper() == "Z" else zone
    from datetime import datetime

    try:
        return datetime.fromisoformat(base + fraction + zone)
    except ValueError:
        return None
