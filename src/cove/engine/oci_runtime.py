"""How the engine drives an OCI runtime: `OCIRuntime`, and `SubprocessRuntime` for any
runc-compatible binary (cove-runtime, runc, crun, or a path given to `--runtime`).

Every call runs

    [argv_prefix...] BINARY --root <engine root>/runtime/<name> --log <file> \
        [--log-format json] VERB [flags...] ID [args...]

- `--root` is private to the engine (and to the runtime name), so two engines, or the same
  engine with two runtimes, never see each other's containers.
- `--log` is a fresh file per call, read back when the call fails, so `RuntimeFailed`
  carries the runtime's own message (JSON log lines when the runtime supports
  `--log-format json`, else text; the captured stderr when the log is empty).
- `--systemd-cgroup` is never passed: cove manages cgroups through cgroupfs.
- Every call has a timeout. The runtime runs in its own session; on a timeout (or any
  exception while waiting) the whole process group is killed with SIGKILL and reaped, and
  `RuntimeTimedOut` is raised. Output is captured through temporary files, never pipes, so
  a container that inherits the runtime's stdio cannot block the caller; `create` and
  `exec` give the runtime (hence the container) the caller's stdio, /dev/null by default.

What differs between runtimes is described by `RuntimeTraits`, one record per runtime, not by
special cases in the calls:

- `log_format`: "json" or "text".
- `has_events`: whether `events --stats` exists (crun 1.8 has no `events` verb). Without it
  `events_stats` reads the container's cgroup files itself and returns the same shape as
  runc's `events --stats` data (cpu.usage, memory.usage, pids).
- `refuses_hybrid_cgroups`: the runtime will not run on a "hybrid" cgroup host (cgroup v1
  controllers plus an empty cgroup2 mount at /sys/fs/cgroup/unified, Ubuntu 20.04's
  default): crun says "cgroups in hybrid mode not supported". The *hybrid workaround*
  (`hybrid_workaround_prefix`) runs such a runtime as
  `unshare --mount --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec
  "$0" "$@"' BINARY ...`: in a private mount namespace where the cgroup2 mount is hidden the
  host looks like plain cgroup v1, which the runtime supports. `runtime_for` applies it
  whenever the traits say so and `is_cgroup_hybrid()` is true; nothing else knows about it.

Traits are known for cove, runc and crun (by the binary's name); for any other binary they
are probed once from its `--help` output.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal as signal_module
import subprocess
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cove.errors import (
    RuntimeFailed,
    RuntimeNoSuchContainer,
    RuntimeNotFound,
    RuntimeTimedOut,
)

DEFAULT_TIMEOUT = 30.0
DEFAULT_RUNTIME = "cove"
COVE_RUNTIME_PATH = Path("/usr/local/bin/cove-runtime")
CGROUP_ROOT = Path("/sys/fs/cgroup")
UNIFIED_MOUNT = CGROUP_ROOT / "unified"
LOG_DIR_NAME = ".logs"  # under <engine root>/runtime/, beside the per-runtime roots

_ERROR_LEVELS = frozenset({"error", "fatal", "panic"})


# --- what the engine sees ------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeState:
    """The OCI state document of a container, as the runtime reports it.

    `status` is one of creating, created, running, paused, stopped; `pid` is 0 when the
    container has no process.
    """

    id: str
    status: str
    pid: int
    bundle: str
    created: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuntimeState:
        annotations = data.get("annotations") or {}
        return cls(
            id=str(data.get("id", "")),
            status=str(data.get("status", "")),
            pid=int(data.get("pid") or 0),
            bundle=str(data.get("bundle", "")),
            created=str(data.get("created", "")),
            annotations={str(k): str(v) for k, v in dict(annotations).items()},
        )


Stdio = tuple[int | IO[Any] | None, int | IO[Any] | None, int | IO[Any] | None]


class OCIRuntime(ABC):
    """The one way the engine reaches an OCI runtime.

    Every verb raises `RuntimeFailed` (with the runtime's own message) when the runtime
    refuses, `RuntimeNoSuchContainer` (a `RuntimeFailed`) when the runtime holds no state for
    the id, and `RuntimeTimedOut` (a `RuntimeFailed`) when it does not answer in time.
    `timeout=None` means the runtime's default timeout.
    """

    name: str

    @abstractmethod
    def create(
        self,
        container_id: str,
        bundle: str | os.PathLike[str],
        *,
        pid_file: str | os.PathLike[str],
        console_socket: str | os.PathLike[str] | None = None,
        preserve_fds: int = 0,
        stdio: Stdio | None = None,
        timeout: float | None = None,
    ) -> None:
        """Create the container from `bundle`; its init waits for `start`. The init inherits
        `stdio` (stdin, stdout, stderr; /dev/null for None) and, with `preserve_fds`, the
        caller's fds 3 .. 3+preserve_fds-1."""

    @abstractmethod
    def start(self, container_id: str, *, timeout: float | None = None) -> None: ...

    @abstractmethod
    def state(self, container_id: str, *, timeout: float | None = None) -> RuntimeState: ...

    @abstractmethod
    def kill(
        self,
        container_id: str,
        signal: int | str = signal_module.SIGTERM,
        all: bool = False,
        *,
        timeout: float | None = None,
    ) -> None: ...

    @abstractmethod
    def delete(
        self, container_id: str, force: bool = False, *, timeout: float | None = None
    ) -> None: ...

    @abstractmethod
    def pause(self, container_id: str, *, timeout: float | None = None) -> None: ...

    @abstractmethod
    def resume(self, container_id: str, *, timeout: float | None = None) -> None: ...

    @abstractmethod
    def update(
        self,
        container_id: str,
        resources: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> None:
        """Apply `resources` (an OCI `linux.resources` object) to the running container."""

    @abstractmethod
    def exec(
        self,
        container_id: str,
        process: Mapping[str, Any],
        *,
        detach: bool,
        pid_file: str | os.PathLike[str] | None = None,
        console_socket: str | os.PathLike[str] | None = None,
        preserve_fds: int = 0,
        stdio: Stdio | None = None,
        timeout: float | None = None,
    ) -> int:
        """Run `process` (an OCI `process` object) in the container. Detached: returns 0 once
        the process runs (its pid is written to `pid_file`). Attached: waits for it and returns
        its exit status (`timeout` still applies: pass a large one for long processes)."""

    @abstractmethod
    def ps(self, container_id: str, *, timeout: float | None = None) -> list[int]:
        """Host pids of the container's processes."""

    @abstractmethod
    def events_stats(self, container_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        """One sample of resource figures: the `data` object of runc's `events --stats`."""


# --- runtime traits and the hybrid workaround ----------------------------------------------


@dataclass(frozen=True)
class RuntimeTraits:
    """What a runtime binary supports (see the module docstring)."""

    log_format: str = "json"
    has_events: bool = True
    refuses_hybrid_cgroups: bool = False


KNOWN_TRAITS: dict[str, RuntimeTraits] = {
    "cove": RuntimeTraits(),
    "cove-runtime": RuntimeTraits(),
    "runc": RuntimeTraits(),
    "crun": RuntimeTraits(has_events=False, refuses_hybrid_cgroups=True),
}


def cgroup_mounts(
    mounts_file: str | os.PathLike[str] = "/proc/self/mounts",
) -> list[tuple[str, str, str]]:
    """(mount point, fstype, options) of every cgroup/cgroup2 mount."""
    found: list[tuple[str, str, str]] = []
    try:
        text = Path(mounts_file).read_text()
    except OSError:
        return found
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in ("cgroup", "cgroup2"):
            found.append((fields[1].replace("\\040", " "), fields[2], fields[3]))
    return found


def is_cgroup_hybrid(mounts_file: str | os.PathLike[str] = "/proc/self/mounts") -> bool:
    """cgroup v1 controllers mounted beside a cgroup2 mount at /sys/fs/cgroup/unified."""
    mounts = cgroup_mounts(mounts_file)
    has_v1 = any(fstype == "cgroup" for _, fstype, _ in mounts)
    unified = any(mnt == str(UNIFIED_MOUNT) and fstype == "cgroup2" for mnt, fstype, _ in mounts)
    return has_v1 and unified


def hybrid_workaround_prefix() -> tuple[str, ...]:
    """The argv prefix that runs the runtime (the next word, `$0`) in a private mount
    namespace with the cgroup2 mount at /sys/fs/cgroup/unified unmounted."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeNotFound("hybrid workaround", "unshare(1) is not installed")
    script = f'umount {UNIFIED_MOUNT} && exec "$0" "$@"'
    return (unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script)


@functools.lru_cache(maxsize=32)
def _probe_traits(binary: str, mtime_ns: int) -> RuntimeTraits:
    del mtime_ns  # part of the cache key only
    try:
        res = subprocess.run(
            [binary, "--help"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
        text = (res.stdout + res.stderr).decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    return RuntimeTraits(
        log_format="json" if "log-format" in text else "text",
        has_events=re.search(r"^\s*events\b", text, re.MULTILINE) is not None,
    )


def traits_for(binary: str) -> RuntimeTraits:
    """Known traits by the binary's name, else probed from `BINARY --help` (cached)."""
    known = KNOWN_TRAITS.get(os.path.basename(binary))
    if known is not None:
        return known
    try:
        mtime = os.stat(binary).st_mtime_ns
    except OSError:
        mtime = 0
    return _probe_traits(binary, mtime)


def _find_binary(name: str) -> str:
    if name == DEFAULT_RUNTIME:
        candidates = [
            str(COVE_RUNTIME_PATH),
            str(Path(sys.executable).parent / "cove-runtime"),
            "cove-runtime",
        ]
    elif "/" in name:
        candidates = [name]
    else:
        candidates = [name, f"/usr/sbin/{name}", f"/usr/bin/{name}"]
    for cand in candidates:
        found = shutil.which(cand)
        if found:
            return os.path.abspath(found)
    if "/" in name:
        why = "no executable file at that path"
    else:
        why = f"not found (looked for {', '.join(candidates)})"
    raise RuntimeNotFound(name, why)


def runtime_for(
    name: str | None,
    engine_root: str | os.PathLike[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> SubprocessRuntime:
    """The runtime for `--runtime NAME`: "cove" (the default; /usr/local/bin/cove-runtime,
    else beside sys.executable, else on PATH), "runc", "crun", another name on PATH, or a
    path to any runc-compatible binary. Its state lives in `<engine_root>/runtime/<name>`,
    where <name> is "cove" or the binary's file name."""
    wanted = name or DEFAULT_RUNTIME
    binary = _find_binary(wanted)
    runtime_name = DEFAULT_RUNTIME if wanted == DEFAULT_RUNTIME else os.path.basename(binary)
    traits = traits_for(binary)
    prefix: tuple[str, ...] = ()
    if traits.refuses_hybrid_cgroups and is_cgroup_hybrid():
        prefix = hybrid_workaround_prefix()
    return SubprocessRuntime(
        runtime_name, binary, prefix, engine_root=engine_root, traits=traits, timeout=timeout
    )


# --- reading the runtime's error -----------------------------------------------------------

_LOGFMT_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def _logfmt(line: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in _LOGFMT_FIELD.findall(line):
        if value.startswith('"'):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        fields[key] = value
    return fields


def error_from_log(text: str) -> str:
    """The runtime's error message from a `--log` file's content ("" when it holds none).

    JSON lines (`{"level": "error", "msg": ...}`) and logfmt lines (`level=error msg="..."`)
    count only at error level and above; other lines (plain text logs) all count. The last
    error wins: runtimes write the outermost, most complete message last.
    """
    errors: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                if str(entry.get("level", "error")).lower() in _ERROR_LEVELS:
                    errors.append(str(entry.get("msg", "")).strip() or line)
                continue
        fields = _logfmt(line)
        if "level" in fields and "msg" in fields:
            if fields["level"].lower() in _ERROR_LEVELS:
                errors.append(fields["msg"].strip())
            continue
        errors.append(line)
    return errors[-1] if errors else ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --- cgroup figures for runtimes without `events` ------------------------------------------


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return 0
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def _read_keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def cgroup_stats(
    pid: int, mounts_file: str | os.PathLike[str] = "/proc/self/mounts"
) -> dict[str, Any]:
    """The cpu, memory and pids figures of `pid`'s cgroups, in the shape of runc's
    `events --stats` data (a subset: cpu.usage, memory.usage/cache/raw, pids)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return {}
    v1: dict[str, Path] = {}
    v2: Path | None = None
    mounts = cgroup_mounts(mounts_file)
    for line in lines:
        hierarchy, controllers, rel = line.split(":", 2)
        rel = rel.lstrip("/")
        if hierarchy == "0" and controllers == "":
            for mnt, fstype, _ in mounts:
                if fstype == "cgroup2":
                    path = Path(mnt) / rel
                    if (path / "cgroup.controllers").is_file() and (
                        path / "cgroup.controllers"
                    ).read_text().strip():
                        v2 = path
            continue
        for ctrl in controllers.split(","):
            for mnt, fstype, opts in mounts:
                if fstype == "cgroup" and ctrl in opts.split(","):
                    v1[ctrl] = Path(mnt) / rel
    data: dict[str, Any] = {}
    if v1:
        if "cpuacct" in v1:
            total = _read_int(v1["cpuacct"] / "cpuacct.usage") or 0
            try:
                percpu = [
                    int(x) for x in (v1["cpuacct"] / "cpuacct.usage_percpu").read_text().split()
                ]
            except (OSError, ValueError):
                percpu = []
            data["cpu"] = {"usage": {"total": total, "percpu": percpu}}
        if "memory" in v1:
            mem = v1["memory"]
            raw = _read_keyed(mem / "memory.stat")
            data["memory"] = {
                "cache": raw.get("total_cache", raw.get("cache", 0)),
                "usage": {
                    "usage": _read_int(mem / "memory.usage_in_bytes") or 0,
                    "limit": _read_int(mem / "memory.limit_in_bytes") or 0,
                    "max": _read_int(mem / "memory.max_usage_in_bytes") or 0,
                    "failcnt": _read_int(mem / "memory.failcnt") or 0,
                },
                "raw": raw,
            }
        if "pids" in v1:
            data["pids"] = {
                "current": _read_int(v1["pids"] / "pids.current") or 0,
                "limit": _read_int(v1["pids"] / "pids.max") or 0,
            }
    elif v2 is not None:
        cpu = _read_keyed(v2 / "cpu.stat")
        data["cpu"] = {"usage": {"total": cpu.get("usage_usec", 0) * 1000, "percpu": []}}
        raw = _read_keyed(v2 / "memory.stat")
        data["memory"] = {
            "cache": raw.get("file", 0),
            "usage": {
                "usage": _read_int(v2 / "memory.current") or 0,
                "limit": _read_int(v2 / "memory.max") or 0,
                "max": _read_int(v2 / "memory.peak") or 0,
                "failcnt": _read_keyed(v2 / "memory.events").get("max", 0),
            },
            "raw": raw,
        }
        data["pids"] = {
            "current": _read_int(v2 / "pids.current") or 0,
            "limit": _read_int(v2 / "pids.max") or 0,
        }
    return data


# --- the subprocess implementation ---------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    returncode: int
    stdout: str
    stderr: str
    log: str


class SubprocessRuntime(OCIRuntime):
    """A runc-compatible binary run as a subprocess per verb.

    `argv_prefix` goes before the binary (a wrapper such as the hybrid workaround, which
    receives the binary as its next word). The runtime's state root is
    `<engine_root>/runtime/<name>`; the per-call log files live in
    `<engine_root>/runtime/.logs/` and are removed after each call.
    """

    def __init__(
        self,
        name: str,
        binary: str | os.PathLike[str],
        argv_prefix: Sequence[str] = (),
        *,
        engine_root: str | os.PathLike[str],
        traits: RuntimeTraits | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not name or "/" in name or name == LOG_DIR_NAME:
            raise ValueError(f"invalid runtime name {name!r}")
        self.name = name
        self.binary = os.fspath(binary)
        self.argv_prefix = tuple(argv_prefix)
        self.traits = traits if traits is not None else traits_for(self.binary)
        self.timeout = timeout
        self.runtime_dir = Path(engine_root) / "runtime"
        self.root = self.runtime_dir / name
        self.log_dir = self.runtime_dir / LOG_DIR_NAME

    def __repr__(self) -> str:
        return f"SubprocessRuntime({self.name!r}, {self.binary!r}, root={str(self.root)!r})"

    # -- argv ---------------------------------------------------------------------------
    def command(self, verb: str, *args: str, log_file: str | os.PathLike[str]) -> list[str]:
        """The full argv of one call (never with --systemd-cgroup)."""
        argv = [*self.argv_prefix, self.binary, "--root", str(self.root)]
        argv += ["--log", os.fspath(log_file)]
        if self.traits.log_format == "json":
            argv += ["--log-format", "json"]
        return [*argv, verb, *args]

    # -- plumbing -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _scratch(self, verb: str) -> Iterator[Path]:
        """A fresh log file for one call, removed afterwards."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, path = tempfile.mkstemp(prefix=f"{verb}-", suffix=".log", dir=self.log_dir)
        os.close(fd)
        try:
            yield Path(path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    @contextlib.contextmanager
    def _data_file(self, verb: str, data: Mapping[str, Any]) -> Iterator[Path]:
        """A JSON document (process.json, resources) handed to the runtime by path."""
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, path = tempfile.mkstemp(prefix=f"{verb}-", suffix=".json", dir=self.log_dir)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            yield Path(path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _run(
        self,
        verb: str,
        container_id: str,
        args: Sequence[str],
        *,
        timeout: float | None,
        stdio: Stdio | None = None,
        spawns: bool = False,
        pass_fds: Sequence[int] = (),
    ) -> _Outcome:
        """Run one verb to completion. `spawns`: the runtime leaves a process behind that
        inherits its stdio (create, exec), so that stdio is the caller's (/dev/null by
        default) instead of capture files."""
        limit = self.timeout if timeout is None else timeout
        with contextlib.ExitStack() as stack:
            log_path = stack.enter_context(self._scratch(verb))
            argv = self.command(verb, *args, log_file=log_path)
            out = stack.enter_context(tempfile.TemporaryFile())
            err = stack.enter_context(tempfile.TemporaryFile())
            if spawns:
                stdin, stdout, stderr = stdio or (None, None, None)
                streams: tuple[Any, Any, Any] = (
                    subprocess.DEVNULL if stdin is None else stdin,
                    subprocess.DEVNULL if stdout is None else stdout,
                    subprocess.DEVNULL if stderr is None else stderr,
                )
            else:
                streams = (subprocess.DEVNULL, out, err)
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=streams[0],
                    stdout=streams[1],
                    stderr=streams[2],
                    pass_fds=tuple(pass_fds),
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise RuntimeFailed(
                    self.name, verb, container_id, f"cannot run {argv[0]}: {exc.strerror}"
                ) from None
            try:
                rc = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                self._kill_group(proc)
                raise RuntimeTimedOut(
                    self.name, verb, container_id, f"timed out after {limit:g}s (killed)"
                ) from None
            except BaseException:
                self._kill_group(proc)
                raise
            return _Outcome(rc, _read_back(out), _read_back(err), _read_text(log_path))

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal_module.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()

    def _failure(
        self, verb: str, container_id: str, outcome: _Outcome, *, may_be_missing: bool = True
    ) -> RuntimeFailed:
        """The error for a failed call: the runtime's message from the log, else its last
        stderr line, else its exit status. `RuntimeNoSuchContainer` when the runtime holds
        no state for the id (never for `create`, where that is normal)."""
        message = (
            error_from_log(outcome.log)
            or _last_line(outcome.stderr)
            or f"exit status {outcome.returncode}"
        )
        if may_be_missing and not (self.root / container_id).exists():
            return RuntimeNoSuchContainer(self.name, verb, container_id, message)
        return RuntimeFailed(self.name, verb, container_id, message)

    def _check(
        self,
        verb: str,
        container_id: str,
        args: Sequence[str],
        *,
        timeout: float | None,
    ) -> _Outcome:
        outcome = self._run(verb, container_id, args, timeout=timeout)
        if outcome.returncode != 0:
            raise self._failure(verb, container_id, outcome)
        return outcome

    def _json(self, verb: str, container_id: str, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            line = text.strip().splitlines()[0] if text.strip() else ""
            try:
                return json.loads(line)
            except ValueError:
                raise RuntimeFailed(
                    self.name, verb, container_id, f"output is not JSON: {text[:200]!r}"
                ) from None

    # -- verbs --------------------------------------------------------------------------
    def create(
        self,
        container_id: str,
        bundle: str | os.PathLike[str],
        *,
        pid_file: str | os.PathLike[str],
        console_socket: str | os.PathLike[str] | None = None,
        preserve_fds: int = 0,
        stdio: Stdio | None = None,
        timeout: float | None = None,
    ) -> None:
        args = ["--bundle", os.fspath(bundle), "--pid-file", os.fspath(pid_file)]
        if console_socket is not None:
            args += ["--console-socket", os.fspath(console_socket)]
        if preserve_fds:
            args += ["--preserve-fds", str(preserve_fds)]
        outcome = self._run(
            "create",
            container_id,
            [*args, container_id],
            timeout=timeout,
            stdio=stdio,
            spawns=True,
            pass_fds=range(3, 3 + preserve_fds),
        )
        if outcome.returncode != 0:
            raise self._failure("create", container_id, outcome, may_be_missing=False)

    def start(self, container_id: str, *, timeout: float | None = None) -> None:
        self._check("start", container_id, [container_id], timeout=timeout)

    def state(self, container_id: str, *, timeout: float | None = None) -> RuntimeState:
        outcome = self._check("state", container_id, [container_id], timeout=timeout)
        data = self._json("state", container_id, outcome.stdout)
        if not isinstance(data, dict):
            raise RuntimeFailed(self.name, "state", container_id, "state is not a JSON object")
        return RuntimeState.from_json(data)

    def kill(
        self,
        container_id: str,
        signal: int | str = signal_module.SIGTERM,
        all: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        sig = str(int(signal)) if isinstance(signal, int) else signal
        args = [*(["--all"] if all else []), container_id, sig]
        self._check("kill", container_id, args, timeout=timeout)

    def delete(
        self, container_id: str, force: bool = False, *, timeout: float | None = None
    ) -> None:
        args = [*(["--force"] if force else []), container_id]
        self._check("delete", container_id, args, timeout=timeout)

    def pause(self, container_id: str, *, timeout: float | None = None) -> None:
        self._check("pause", container_id, [container_id], timeout=timeout)

    def resume(self, container_id: str, *, timeout: float | None = None) -> None:
        self._check("resume", container_id, [container_id], timeout=timeout)

    def update(
        self,
        container_id: str,
        resources: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> None:
        with self._data_file("update", resources) as path:
            args = ["--resources", str(path), container_id]
            self._check("update", container_id, args, timeout=timeout)

    def exec(
        self,
        container_id: str,
        process: Mapping[str, Any],
        *,
        detach: bool,
        pid_file: str | os.PathLike[str] | None = None,
        console_socket: str | os.PathLike[str] | None = None,
        preserve_fds: int = 0,
        stdio: Stdio | None = None,
        timeout: float | None = None,
    ) -> int:
        with self._data_file("exec", process) as path:
            args = ["--process", str(path)]
            if detach:
                args.append("--detach")
            if pid_file is not None:
                args += ["--pid-file", os.fspath(pid_file)]
            if console_socket is not None:
                args += ["--console-socket", os.fspath(console_socket)]
            if preserve_fds:
                args += ["--preserve-fds", str(preserve_fds)]
            outcome = self._run(
                "exec",
                container_id,
                [*args, container_id],
                timeout=timeout,
                stdio=stdio,
                spawns=True,
                pass_fds=range(3, 3 + preserve_fds),
            )
        if outcome.returncode == 0:
            return 0
        # Attached, the runtime exits with the process's status: that is a failure of the
        # runtime only if it logged an error.
        if detach or error_from_log(outcome.log):
            raise self._failure("exec", container_id, outcome)
        return outcome.returncode

    def ps(self, container_id: str, *, timeout: float | None = None) -> list[int]:
        outcome = self._check(
            "ps", container_id, ["--format", "json", container_id], timeout=timeout
        )
        data = self._json("ps", container_id, outcome.stdout)
        if data is None:
            return []
        if not isinstance(data, list):
            raise RuntimeFailed(self.name, "ps", container_id, "ps output is not a JSON list")
        return sorted(int(pid) for pid in data)

    def events_stats(self, container_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        if not self.traits.has_events:
            state = self.state(container_id, timeout=timeout)
            if state.pid <= 0 or state.status not in ("created", "running", "paused"):
                raise RuntimeFailed(
                    self.name, "events", container_id, f"container is {state.status}"
                )
            return cgroup_stats(state.pid)
        args = ["--stats", container_id]
        outcome = self._check("events", container_id, args, timeout=timeout)
        event = self._json("events", container_id, outcome.stdout)
        if not isinstance(event, dict):
            raise RuntimeFailed(self.name, "events", container_id, "event is not a JSON object")
        data = event.get("data", {})
        return dict(data) if isinstance(data, dict) else {}


def _read_back(f: IO[bytes]) -> str:
    f.flush()
    f.seek(0)
    return f.read().decode(errors="replace")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
