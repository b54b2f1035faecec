"""`cove import`: a root filesystem tarball becomes a one-layer image.

The layer is kept uncompressed in the local store (its digest is then its diff_id, and
import costs one pass over the data); compression is for pushing to a registry.
`--change` takes the Dockerfile instructions that only set configuration.
"""

from __future__ import annotations

import json
import platform
import shlex
import time
from typing import Any, BinaryIO

from cove.errors import InvalidArgument
from cove.image.manifest import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, canonical_json
from cove.image.reference import parse_reference
from cove.image.store import ImageStore
from cove.image.store_index import ImageRecord

_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
                  "s390x": "s390x", "riscv64": "riscv64"}  # fmt: skip
CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "VOLUME",
                       "WORKDIR", "STOPSIGNAL", "ONBUILD")  # fmt: skip


def import_tarball(
    store: ImageStore,
    stream: BinaryIO,
    name: str | None = None,
    changes: tuple[str, ...] = (),
    message: str = "",
    source: str = "-",
) -> ImageRecord:
    execution = apply_changes({}, changes)
    reference = None if name is None else parse_reference(name)
    if reference is not None and reference.digest is not None:
        raise InvalidArgument(f"cannot import to a digest reference: {name}")
    layer = store.put_blob(iter(lambda: stream.read(1 << 20), b""))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config: dict[str, Any] = {
        "architecture": _ARCHITECTURES.get(platform.machine(), platform.machine()),
        "os": "linux",
        "created": created,
        "config": execution,
        "rootfs": {"type": "layers", "diff_ids": [str(layer.digest)]},
        "history": [{"created": created, "created_by": f"cove import {source}",
                     **({"comment": message} if message else {})}],
    }  # fmt: skip
    config_blob = canonical_json(config)
    config_info = store.put_blob(config_blob)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": str(config_info.digest),
                   "size": config_info.size},
        "layers": [{"mediaType": OCI_LAYER, "digest": str(layer.digest), "size": layer.size}],
    }  # fmt: skip
    manifest_info = store.put_blob(canonical_json(manifest))
    return store.add_image(manifest_info.digest, names=[] if reference is None else [reference])


def apply_changes(execution: dict[str, Any], changes: tuple[str, ...]) -> dict[str, Any]:
    """Apply `--change` instructions (Dockerfile syntax) to an image config's `config`."""
    for change in changes:
        instruction, _, argument = change.strip().partition(" ")
        keyword = instruction.upper()
        argument = argument.strip()
        if keyword not in CHANGE_INSTRUCTIONS:
            raise InvalidArgument(
                f"--change {change!r}: {instruction} cannot be used here "
                f"(only {', '.join(CHANGE_INSTRUCTIONS)})"
            )
        if not argument:
            raise InvalidArgument(f"--change {change!r}: {keyword} needs an argument")
        if keyword in ("CMD", "ENTRYPOINT"):
            execution["Cmd" if keyword == "CMD" else "Entrypoint"] = _command(argument, change)
        elif keyword == "ENV":
            env = [e for e in execution.get("Env", [])]
            for key, value in _pairs(argument, change):
                env = [e for e in env if not e.startswith(key + "=")] + [f"{key}={value}"]
            execution["Env"] = env
        elif keyword == "LABEL":
            labels = dict(execution.get("Labels") or {})
            labels.update(_pairs(argument, change))
            execution["Labels"] = labels
        elif keyword == "EXPOSE":
            ports = dict(execution.get("ExposedPorts") or {})
            for port in argument.split():
                ports[port if "/" in port else f"{port}/tcp"] = {}
            execution["ExposedPorts"] = ports
        elif keyword == "VOLUME":
            volumes = dict(execution.get("Volumes") or {})
            paths = _json_list(argument) if argument.startswith("[") else argument.split()
            volumes.update({path: {} for path in paths})
            execution["Volumes"] = volumes
        elif keyword == "USER":
            execution["User"] = argument
        elif keyword == "WORKDIR":
            execution["WorkingDir"] = argument
        elif keyword == "STOPSIGNAL":
            execution["StopSignal"] = argument
        else:  # ONBUILD
            execution.setdefault("OnBuild", []).append(argument)
    return execution


def _command(argument: str, change: str) -> list[str]:
    if argument.startswith("["):
        return _json_list(argument, change)
    return ["/bin/sh", "-c", argument]


def _json_list(argument: str, change: str = "") -> list[str]:
    try:
        value = json.loads(argument)
    except ValueError:
        raise InvalidArgument(f"--change {change or argument!r}: malformed JSON array") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"--change {change or argument!r}: expected a JSON array of strings")
    return value


def _pairs(argument: str, change: str) -> list[tuple[str, str]]:
    """KEY=VALUE pairs (quoted as a shell would), or the old `KEY VALUE` form."""
    words = shlex.split(argument)
    if "=" not in words[0]:
        key, _, value = argument.partition(" ")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, has_value, value = word.partition("=")
        if not has_value or not key:
            raise InvalidArgument(f"--change {change!r}: expected KEY=VALUE, got {word!r}")
        pairs.append((key, value))
    return pairs
