"""`SubprocessRuntime`: the `OCIRuntime` of any runc-compatible binary, run as a subprocess
per verb (see `cove.engine.oci_runtime` for how every call is made).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal as signal_module
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cove.engine.oci_runtime_api import (
    DEFAULT_TIMEOUT,
    LOG_DIR_NAME,
    OCIRuntime,
    RuntimeState,
    Stdio,
)
from cove.engine.oci_runtime_cgroups import cgroup_stats
from cove.engine.oci_runtime_logs import _last_line, _read_back, _read_text, error_from_log
from cove.engine.oci_runtime_traits import RuntimeTraits, traits_for
from cove.errors import RuntimeFailed, RuntimeNoSuchContainer, RuntimeTimedOut

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
    def _scratch(self, verb: str, container_id: str = "") -> Iterator[Path]:
        """A fresh log file for one call, removed afterwards."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Named after the container, so that a call killed before its clean-up (a timed-out
        # healthcheck) leaves a file `forget_scratch` finds once the container stops.
        fd, path = tempfile.mkstemp(prefix=_scratch_prefix(verb, container_id), suffix=".log",
                                    dir=self.log_dir)  # fmt: skip
        os.close(fd)
        try:
            yield Path(path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    @contextlib.contextmanager
    def _data_file(
        self, verb: str, data: Mapping[str, Any], container_id: str = ""
    ) -> Iterator[Path]:
        """A JSON document (process.json, resources) handed to the runtime by path."""
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, path = tempfile.mkstemp(prefix=_scratch_prefix(verb, container_id), suffix=".json",
                                    dir=self.log_dir)  # fmt: skip
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
            log_path = stack.enter_context(self._scratch(verb, container_id))
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
            held = SignalsHeld()
            try:
                with held:
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
                held.deliver()
                raise RuntimeFailed(
                    self.name, verb, container_id, f"cannot run {argv[0]}: {exc.strerror}"
                ) from None
            try:
                held.deliver()
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
        with self._data_file("update", resources, container_id) as path:
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
        with self._data_file("exec", process, container_id) as path:
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


class SignalsHeld:
    """Python's handlers of SIGTERM, SIGINT and SIGHUP held off while a runtime process
    starts, then run by `deliver`. A handler that raises inside Popen (a healthcheck ended
    by its monitor) would orphan the runtime: it would run on, unkillable by its caller, and
    write its --log after the caller removed it. Only the main thread runs Python's signal
    handlers, so elsewhere this holds nothing."""

    SIGNALS = (signal_module.SIGTERM, signal_module.SIGINT, signal_module.SIGHUP)

    def __init__(self) -> None:
        self._handlers: dict[int, Any] = {}
        self._arrived: list[int] = []

    def __enter__(self) -> SignalsHeld:
        for signum in self.SIGNALS:
            handler = signal_module.getsignal(signum)
            if not callable(handler):
                continue  # the default action or ignored: nothing runs in Python
            try:
                signal_module.signal(signum, self._hold)
            except ValueError:
                break  # not the main thread
            self._handlers[signum] = handler
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._handlers.items():
            signal_module.signal(signum, handler)
        self._handlers.clear()

    def _hold(self, signum: int, _frame: object) -> None:
        self._arrived.append(signum)

    def deliver(self) -> None:
        """Run the handlers of the signals that arrived meanwhile (they may raise)."""
        arrived, self._arrived = self._arrived, []
        for signum in arrived:
            signal_module.raise_signal(signum)


def _scratch_prefix(verb: str, container_id: str) -> str:
    return f"{verb}-{container_id[:12]}-" if container_id else f"{verb}-"


def forget_scratch(runtime_dir: str | os.PathLike[str], container_id: str) -> None:
    """Remove the scratch files of calls about `container_id` that were killed before their
    own clean-up (called once the container has stopped: no call about it runs then)."""
    log_dir = Path(runtime_dir) / LOG_DIR_NAME
    marker = f"-{container_id[:12]}-"
    try:
        names = os.listdir(log_dir)
    except OSError:
        return
    for name in names:
        if marker in name:
            with contextlib.suppress(OSError):
                os.unlink(log_dir / name)
