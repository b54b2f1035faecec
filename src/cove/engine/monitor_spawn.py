"""`launch` for a multi-threaded caller (the API server): the fork-based launch runs in a
single-threaded fork server instead.

Forking a process that has other threads copies whatever locks they hold (the import lock,
logging's, the allocator's) into the child, where nobody releases them; the launcher's child
runs Python code (cove's runtime library) before it execs, so it could hang. A threaded
caller therefore starts, once, a fork server: `python -m cove.engine.monitor_spawn --serve`,
a single-threaded process that has imported the launch path already. Each launch is one
JSON line to its stdin; it forks a child that runs `launch` and writes one JSON line back
(one write of less than PIPE_BUF bytes, so answers of concurrent children never mix). A
fork costs about a millisecond where a new interpreter costs tens.

    request (stdin)   {"id": N, "runtime": NAME_OR_PATH, "engine_root": DIR,
                       "options": {MonitorOptions}}
    answer (stdout)   {"id": N, "launched": {monitor_pid, monitor_start, container_pid,
                       warnings}}  or  {"id": N, "error": MESSAGE, "type": CLASS_NAME}

If the fork server dies, waiting launches fail with MonitorError and the next launch starts
a new one. Without `--serve`, the module answers one request read from stdin (a one-shot
launcher, for debugging).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from cove.engine.monitor import LAUNCH_TIMEOUT, Launched, MonitorOptions, launch
from cove.engine.oci_runtime_api import OCIRuntime
from cove.errors import CoveError, MonitorError

PIPE_BUF = 4096
MAX_MESSAGE = 2000


def launch_in_subprocess(runtime: OCIRuntime, options: MonitorOptions) -> Launched:
    from cove.engine.oci_runtime_subprocess import SubprocessRuntime

    if not isinstance(runtime, SubprocessRuntime):
        raise MonitorError(f"cannot launch through a subprocess with {runtime!r}")
    request = {
        "runtime": _runtime_name(runtime),
        "engine_root": str(runtime.runtime_dir.parent),
        "options": {
            "container_id": options.container_id,
            "bundle": str(options.bundle),
            "container_dir": str(options.container_dir),
            "tty": options.tty,
            "stdin": options.stdin,
            "log_max_size": options.log_max_size,
            "log_max_file": options.log_max_file,
            "exit_command": list(options.exit_command),
            "health_interval_ms": options.health_interval_ms,
            "health_command": list(options.health_command),
            "loopback": options.loopback,
        },
    }
    answer = _fork_server().call(request)
    if "error" in answer:
        raise _error_from(answer)
    got = answer["launched"]
    return Launched(int(got["monitor_pid"]), int(got["monitor_start"]),
                    int(got["container_pid"]), list(got.get("warnings", [])))  # fmt: skip


class _Slot:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: dict[str, Any] | None = None


class ForkServer:
    """The caller's side: one fork server process, started when first needed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._waiting: dict[int, _Slot] = {}
        self._next_id = 0

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        slot = _Slot()
        with self._lock:
            process = self._running()
            request_id = self._next_id
            self._next_id += 1
            self._waiting[request_id] = slot
            line = json.dumps({"id": request_id, **request}).encode() + b"\n"
            try:
                assert process.stdin is not None
                process.stdin.write(line)
                process.stdin.flush()
            except OSError as exc:
                self._waiting.pop(request_id, None)
                raise MonitorError(f"the container launcher is gone: {exc}") from exc
        if not slot.done.wait(LAUNCH_TIMEOUT + 10):
            with self._lock:
                self._waiting.pop(request_id, None)
            raise MonitorError(f"the container launcher did not answer in {LAUNCH_TIMEOUT + 10:g}s")
        if slot.answer is None:
            raise MonitorError("the container launcher exited before it answered")
        return slot.answer

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = src + (os.pathsep + path if path else "")
        process = subprocess.Popen(
            [sys.executable, "-m", "cove.engine.monitor_spawn", "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
        )  # fmt: skip
        self._process = process
        reader = threading.Thread(target=self._read_answers, args=(process,),
                                  name="cove-fork-server", daemon=True)  # fmt: skip
        reader.start()
        return process

    def _read_answers(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            try:
                answer = json.loads(raw)
                slot = self._waiting.pop(int(answer["id"]))
            except (ValueError, KeyError, TypeError):
                continue
            slot.answer = answer
            slot.done.set()
        process.wait()
        with self._lock:
            if self._process is process:
                self._process = None
            # Only requests written to this process can be lost with it.
            lost = list(self._waiting.items())
            self._waiting.clear()
        for _, slot in lost:
            slot.done.set()

    def close(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is not None and process.stdin is not None:
            process.stdin.close()  # the server exits at EOF; running launches finish
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


_SERVER_LOCK = threading.Lock()
_SERVER: ForkServer | None = None


def _fork_server() -> ForkServer:
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None:
            _SERVER = ForkServer()
        return _SERVER


def _runtime_name(runtime: OCIRuntime) -> str:
    from cove.engine.oci_runtime_library import LibraryRuntime

    if isinstance(runtime, LibraryRuntime):
        return "cove"
    return str(getattr(runtime, "binary", runtime.name))


def _error_from(answer: dict[str, Any]) -> CoveError:
    """The child's exception, as the same class when it is one of cove.errors' simple ones
    (one message argument), else a CoveError with its message."""
    import cove.errors as errors

    cls = getattr(errors, str(answer.get("type", "")), None)
    message = str(answer["error"])
    if isinstance(cls, type) and issubclass(cls, CoveError):
        try:
            return cls(message)
        except TypeError:
            pass
    return CoveError(message)


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    try:
        from cove.engine.oci_runtime_select import runtime_for

        runtime = runtime_for(request["runtime"], request["engine_root"])
        given = request["options"]
        options = MonitorOptions(
            container_id=given["container_id"], bundle=Path(given["bundle"]),
            container_dir=Path(given["container_dir"]), tty=given["tty"], stdin=given["stdin"],
            log_max_size=given["log_max_size"], log_max_file=given["log_max_file"],
            exit_command=given["exit_command"], health_interval_ms=given["health_interval_ms"],
            health_command=given["health_command"], loopback=given["loopback"],
        )  # fmt: skip
        launched = launch(runtime, options)
    except CoveError as exc:
        return {"error": str(exc)[:MAX_MESSAGE], "type": type(exc).__name__}
    except Exception as exc:  # reported to the parent, which raises it as a CoveError
        return {"error": f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE], "type": "CoveError"}
    warnings = [w[:500] for w in launched.warnings[:4]]
    return {"launched": {
        "monitor_pid": launched.monitor_pid, "monitor_start": launched.monitor_start,
        "container_pid": launched.container_pid, "warnings": warnings,
    }}  # fmt: skip


def _encode(request_id: object, answer: dict[str, Any]) -> bytes:
    data = json.dumps({"id": request_id, **answer}).encode() + b"\n"
    if len(data) >= PIPE_BUF:  # keep it one atomic write
        short = {"error": str(answer.get("error", "launch answer too long"))[:1000],
                 "type": answer.get("type", "CoveError")}  # fmt: skip
        data = json.dumps({"id": request_id, **short}).encode() + b"\n"
    return data


def serve() -> int:
    """The fork server's loop: one forked child per request line; reaps them."""
    import select

    # The launch path, imported once here so that each fork has it already.
    import cove.engine.oci_runtime_library
    import cove.engine.oci_runtime_select  # noqa: F401

    buffer = b""
    while True:
        ready, _, _ = select.select([0], [], [], 1.0)
        _reap()
        if not ready:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            try:
                request = json.loads(line)
            except ValueError:
                continue
            if os.fork() == 0:
                status = 1
                try:
                    os.write(1, _encode(request.get("id"), _answer(request)))
                    status = 0
                finally:
                    os._exit(status)
    while _reap(block=True):
        pass
    return 0


def _reap(block: bool = False) -> bool:
    """Reap finished children; False when there are none left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True
        if block:
            return True


def main() -> int:
    if sys.argv[1:] == ["--serve"]:
        return serve()
    request = json.loads(sys.stdin.read())
    sys.stdout.write(json.dumps(_answer(request)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
