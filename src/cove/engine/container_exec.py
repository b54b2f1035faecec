"""`exec`: run another process in a running container, from the container's own process
settings (env, user, capabilities, rlimits, no_new_privs) with docker's overrides."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cove.engine.oci_runtime import runtime_for
from cove.engine.state import ContainerRecord
from cove.errors import InvalidArgument, InvalidState

ATTACHED_TIMEOUT = 10.0 * 365 * 24 * 3600  # an attached exec runs as long as it likes


@dataclass
class ExecOptions:
    command: list[str]
    detach: bool = False
    interactive: bool = False
    tty: bool = False
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    privileged: bool = False
    console_size: tuple[int, int] | None = None  # rows, columns of the caller's terminal (-t)


def exec_process(record: ContainerRecord, options: ExecOptions) -> dict[str, Any]:
    """The OCI process object for `options` in `record`'s container."""
    if not options.command:
        raise InvalidArgument("exec: no command given")
    spec = json.loads((Path(record.bundle) / "config.json").read_text())
    process: dict[str, Any] = dict(spec.get("process") or {})
    process["args"] = list(options.command)
    process["terminal"] = options.tty
    process.pop("consoleSize", None)
    if options.tty and options.console_size is not None:  # sized before the process can ask
        process["consoleSize"] = {"height": options.console_size[0],
                                  "width": options.console_size[1]}  # fmt: skip
    env = list(process.get("env") or [])
    for item in options.env:
        name = item.split("=", 1)[0]
        env = [e for e in env if e.split("=", 1)[0] != name]
        if "=" in item:
            env.append(item)
    process["env"] = env
    if options.workdir:
        process["cwd"] = options.workdir
    if options.user:
        from cove.engine.users import resolve_user

        user = resolve_user(record.rootfs, options.user, record.image_name)
        process["user"] = {"uid": user.uid, "gid": user.gid,
                           "additionalGids": list(user.additional_gids)}  # fmt: skip
    if options.privileged:
        from cove.engine.host_info import HostInfo
        from cove.runtime.capabilities import CAPABILITY_NAMES

        host = HostInfo.probe()
        caps = [name for name in CAPABILITY_NAMES if name in host.capabilities]
        process["capabilities"] = {k: caps for k in
                                   ("bounding", "effective", "permitted")}  # fmt: skip
    return process


def exec_in(root: str, record: ContainerRecord, options: ExecOptions) -> int:
    """Run it; attached: its exit status (the CLI's stdio is the process's)."""
    if record.status != "running":
        raise InvalidState(f"Container {record.id} is not running")
    process = exec_process(record, options)
    runtime = runtime_for(record.runtime, root)
    stdin = 0 if options.interactive or options.tty else None
    from cove.engine import events

    exec_id, command = os.urandom(32).hex(), " ".join(options.command)
    events.emit(root, f"exec_create: {command}", record, execID=exec_id)
    events.emit(root, f"exec_start: {command}", record, execID=exec_id)
    if options.detach:
        return runtime.exec(record.id, process, detach=True, stdio=(None, None, None))
    status = runtime.exec(record.id, process, detach=False, stdio=(stdin, 1, 2),
                          timeout=ATTACHED_TIMEOUT)  # fmt: skip
    events.emit(root, "exec_die", record, execID=exec_id, exitCode=status)
    return status


# --- an exec the caller runs as its own subprocess (the API server) ------------------------


@dataclass
class ExecCommand:
    """The runtime command line that runs one process attached in a container, for a caller
    that spawns and waits for it itself (the API server runs it as an asyncio subprocess,
    never forking in-process). The runtime exits with the process's status; when it could
    not start the process its message is in `log_file` (`failure`). `remove` the files once
    done."""

    argv: list[str]
    process_file: Path
    pid_file: Path
    log_file: Path

    def failure(self) -> str:
        """The runtime's error ("" when the process ran)."""
        from cove.engine.oci_runtime_logs import error_from_log

        try:
            return error_from_log(self.log_file.read_text(errors="replace"))
        except OSError:
            return ""

    def pid(self) -> int:
        """The process's host pid, once the runtime wrote it (0 before)."""
        try:
            return int(self.pid_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def remove(self) -> None:
        for path in (self.process_file, self.pid_file, self.log_file):
            path.unlink(missing_ok=True)


def exec_command(
    root: str, record: ContainerRecord, options: ExecOptions, *, console_socket: str = ""
) -> ExecCommand:
    """The command for `options` in `record`'s running container (`console_socket`: where
    the runtime sends the pty master of a `tty` process)."""
    import tempfile

    if record.status != "running":
        raise InvalidState(f"Container {record.id} is not running")
    process = exec_process(record, options)
    runtime = runtime_for(record.runtime, root)
    runtime.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    prefix = f"exec-{record.id[:12]}-"  # forget_scratch removes what a crash leaves
    files = []
    for suffix in (".json", ".pid", ".log"):
        fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=runtime.log_dir)
        os.close(fd)
        files.append(Path(path))
    process_file, pid_file, log_file = files
    process_file.write_text(json.dumps(process))
    pid_file.unlink()  # the runtime creates it once the process runs
    args = ["--process", str(process_file), "--pid-file", str(pid_file)]
    if console_socket:
        args += ["--console-socket", console_socket]
    argv = runtime.command("exec", *args, record.id, log_file=log_file)
    return ExecCommand(argv, process_file, pid_file, log_file)
