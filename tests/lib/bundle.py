"""OCI bundles for tests: a private rootfs copy plus an editable config dict."""

from __future__ import annotations

import copy
import json
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PROBE = "/bin/coveprobe"


def new_container_id(prefix: str = "ct") -> str:
    """A short id, unique enough to never collide between tests or runs."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def baseline_config(reference: Mapping[str, Any]) -> dict[str, Any]:
    """The reference spec adjusted to what every test starts from.

    Differences from `runc spec`: no terminal (tests capture stdio), a writable
    root (tests drop files in /tmp that the host side reads back) and a probe
    as the default process.
    """
    config: dict[str, Any] = copy.deepcopy(dict(reference))
    process = config.setdefault("process", {})
    process["terminal"] = False
    process["args"] = [PROBE, "pid"]
    process.setdefault("cwd", "/")
    config.setdefault("root", {})["path"] = "rootfs"
    config["root"]["readonly"] = False
    return config


class Bundle:
    """One test's bundle directory.

    `config` is a plain dict; edit it freely. Runtime drivers call
    `save_if_dirty()` before create/run, so edits are written automatically;
    `save()` writes explicitly. `write_raw()` and `remove_config()` freeze the
    file on disk so deliberately broken configs are never overwritten.
    """

    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        self.path = path
        self.config = config
        self.id = new_container_id()
        self._saved: str | None = None
        self._frozen = False

    # -- locations -------------------------------------------------------
    @property
    def rootfs(self) -> Path:
        return self.path / str(self.config.get("root", {}).get("path", "rootfs"))

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def host_path(self, container_path: str) -> Path:
        """Where an absolute in-container path lives in the rootfs on the host."""
        return self.rootfs / container_path.lstrip("/")

    # -- persistence -----------------------------------------------------
    def save(self) -> Path:
        text = json.dumps(self.config, indent=2)
        self.config_path.write_text(text + "\n")
        self._saved = text
        self._frozen = False
        return self.config_path

    def save_if_dirty(self) -> None:
        if self._frozen:
            return
        if json.dumps(self.config, indent=2) != self._saved:
            self.save()

    def write_raw(self, text: str) -> None:
        self.config_path.write_text(text)
        self._frozen = True

    def remove_config(self) -> None:
        self.config_path.unlink(missing_ok=True)
        self._frozen = True

    # -- config editing shortcuts ----------------------------------------
    @property
    def process(self) -> dict[str, Any]:
        proc: dict[str, Any] = self.config.setdefault("process", {})
        return proc

    def set_args(self, *args: str) -> Bundle:
        self.process["args"] = list(args)
        return self

    def probe(self, *args: str) -> Bundle:
        """Make the container process `coveprobe ARGS...`."""
        return self.set_args(PROBE, *args)

    def shell(self, script: str) -> Bundle:
        """Make the container process `sh -c SCRIPT`."""
        return self.set_args("/bin/sh", "-c", script)

    def set_env(self, name: str, value: str) -> Bundle:
        env = [e for e in self.process.get("env", []) if not e.startswith(name + "=")]
        env.append(f"{name}={value}")
        self.process["env"] = env
        return self

    def add_mount(
        self,
        destination: str,
        mount_type: str,
        source: str,
        options: Sequence[str] = (),
    ) -> Bundle:
        mount: dict[str, Any] = {
            "destination": destination,
            "type": mount_type,
            "source": source,
        }
        if options:
            mount["options"] = list(options)
        self.config.setdefault("mounts", []).append(mount)
        return self

    @property
    def linux(self) -> dict[str, Any]:
        linux: dict[str, Any] = self.config.setdefault("linux", {})
        return linux

    def namespaces(self) -> list[str]:
        return [str(ns["type"]) for ns in self.linux.get("namespaces", [])]

    def add_namespace(self, ns_type: str, path: str | None = None) -> Bundle:
        spaces = [ns for ns in self.linux.get("namespaces", []) if ns.get("type") != ns_type]
        entry: dict[str, Any] = {"type": ns_type}
        if path is not None:
            entry["path"] = path
        spaces.append(entry)
        self.linux["namespaces"] = spaces
        return self

    def remove_namespace(self, ns_type: str) -> Bundle:
        self.linux["namespaces"] = [
            ns for ns in self.linux.get("namespaces", []) if ns.get("type") != ns_type
        ]
        return self

    def set_rlimit(self, rlimit_type: str, soft: int, hard: int) -> Bundle:
        limits = [r for r in self.process.get("rlimits", []) if r.get("type") != rlimit_type]
        limits.append({"type": rlimit_type, "soft": soft, "hard": hard})
        self.process["rlimits"] = limits
        return self

    def add_capability(self, cap: str, *sets: str) -> Bundle:
        """Add `cap` to the given capability sets (default: bounding, effective, permitted)."""
        caps = self.process.setdefault("capabilities", {})
        for name in sets or ("bounding", "effective", "permitted"):
            current = caps.setdefault(name, [])
            if cap not in current:
                current.append(cap)
        return self


def make_bundle(
    parent: Path,
    rootfs_source: Path,
    reference: Mapping[str, Any],
    name: str = "bundle",
) -> Bundle:
    """Create `parent/name` with a full (not hardlinked) rootfs copy and a baseline config."""
    path = parent / name
    path.mkdir(parents=True)
    # a real copy: tests may write into their rootfs, the session copy must stay pristine
    subprocess.run(["cp", "-a", str(rootfs_source), str(path / "rootfs")], check=True)
    bundle = Bundle(path, baseline_config(reference))
    bundle.save()
    return bundle
