"""`launch` for a multi-threaded caller (the API server): the fork-based launch runs in a
fresh single-threaded interpreter instead.

Forking a process that has other threads copies whatever locks they hold (the import lock,
logging's, the allocator's) into the child, where nobody releases them; the launcher's child
runs Python code (cove's runtime library) before it execs, so it could hang. A threaded
caller therefore spawns `python -m cove.engine.monitor_spawn`, sends the launch request as
one JSON document on stdin, and reads back either the Launched record or the error:

    stdin   {"runtime": NAME_OR_PATH, "engine_root": DIR, "options": {MonitorOptions}}
    stdout  {"launched": {monitor_pid, monitor_start, container_pid, warnings}}
         or {"error": MESSAGE, "type": CLASS_NAME}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cove.engine.monitor import LAUNCH_TIMEOUT, Launched, MonitorOptions, launch
from cove.engine.oci_runtime_api import OCIRuntime
from cove.errors import CoveError, MonitorError


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
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cove.engine.monitor_spawn"],
            input=json.dumps(request), capture_output=True, text=True, env=env,
            timeout=LAUNCH_TIMEOUT + 10, close_fds=True, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise MonitorError(f"the container launcher did not answer in {exc.timeout:g}s") from exc
    answer = _last_json(done.stdout)
    if answer is None:
        detail = (done.stderr or done.stdout).strip()[-2000:]
        raise MonitorError(f"the container launcher failed ({done.returncode}): {detail}")
    if "error" in answer:
        raise _error_from(answer)
    got = answer["launched"]
    return Launched(int(got["monitor_pid"]), int(got["monitor_start"]),
                    int(got["container_pid"]), list(got.get("warnings", [])))  # fmt: skip


def _runtime_name(runtime: OCIRuntime) -> str:
    from cove.engine.oci_runtime_library import LibraryRuntime

    if isinstance(runtime, LibraryRuntime):
        return "cove"
    return str(getattr(runtime, "binary", runtime.name))


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


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


def main() -> int:
    request = json.loads(sys.stdin.read())
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
        answer: dict[str, Any] = {"error": str(exc), "type": type(exc).__name__}
    except Exception as exc:  # reported to the parent, which raises it as a CoveError
        answer = {"error": f"{type(exc).__name__}: {exc}", "type": "CoveError"}
    else:
        answer = {"launched": {
            "monitor_pid": launched.monitor_pid, "monitor_start": launched.monitor_start,
            "container_pid": launched.container_pid, "warnings": launched.warnings,
        }}  # fmt: skip
    sys.stdout.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
