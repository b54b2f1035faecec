"""Running OCI hooks: one process per hook, the state on stdin, a deadline, always reaped.

The caller chooses the process that runs a phase's hooks (that is what puts a hook in the
runtime's or the container's namespaces) and fills the state; this module runs them:

    phase            verb    state status  where the caller runs it                 on failure
    prestart         create  creating      runtime namespaces, cwd = bundle          error
    createRuntime    create  creating      runtime namespaces, cwd = bundle          error
    createContainer  create  creating      container's init, before pivot_root       error
    startContainer   start   created       container's init, after the exec FIFO     error
    poststart        start   running       runtime namespaces, cwd = bundle          warning
    poststop         delete  stopped       runtime namespaces, cwd = bundle          warning

"error": the first failing hook raises `HookFailed` and the hooks after it do not run;
the caller then destroys the container. "warning": every hook runs, and the failures come
back as a list of messages for the caller to print.

One hook process:
- argv is `args` (args[0] is argv[0], as with execv), or [path] when `args` is empty;
- the environment is exactly `env`: nothing is inherited, no env means an empty one
  (an entry without "=" is passed as "NAME=");
- stdin is a pipe carrying the state JSON, then end-of-file; a hook that does not read
  it, or closes it early, is fine;
- stdout and stderr share one pipe; the first KiB of it goes into the failure message;
- it leads its own process group, starts with an empty signal mask and the default
  SIGPIPE/SIGXFSZ actions (Python ignores both), and inherits no other descriptor;
- with a `timeout`, SIGKILL goes to its process group at the deadline: a failure.
A hook is done when its own process exits: the runner never waits for end-of-file on the
output, which a daemon started by the hook could keep open forever.

No threads and no `subprocess` (it imports too much for the start path): fork, execve, a
close-on-exec pipe that reports a failed execve, and poll() on a pidfd, the output and
the stdin pipe. Safe in a single-threaded runtime and in a container's init. While it
runs, SIGPIPE is ignored (a hook closing stdin gives EPIPE, not death) and SIGCHLD is
not ignored (so the hook can be reaped); the caller must not reap children meanwhile.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module behind `signal`
import os
import select
import time

from cove.errors import HookFailed
from cove.oci import jsonc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from cove.oci.runtime_spec import Hook
    from cove.oci.state import State

PHASES = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)
WARNING_PHASES = frozenset({"poststart", "poststop"})
OUTPUT_LIMIT = 1024  # bytes of a hook's stdout+stderr kept for the message

_READ_SIZE = 65536
_DRAIN_READS = 16  # reads of leftover output once the hook has exited
_EXIT_EXEC_FAILED = 127


def run_hooks(phase: str, hooks: tuple[Hook, ...], state: State, cwd: str) -> list[str]:
    """Run `hooks` in order with `state` on stdin and `cwd` as working directory.

    For prestart, createRuntime, createContainer and startContainer the first failure
    raises HookFailed (phase, index, path, why) and the rest do not run. For poststart
    and poststop every hook runs and the failures are returned as warning messages.
    """
    if phase not in PHASES:
        raise ValueError(f"unknown hook phase {phase!r}")
    warnings: list[str] = []
    if not hooks:
        return warnings
    payload = jsonc.dumps(state.to_json()).encode()
    saved = _prepare_signals()
    try:
        for index, hook in enumerate(hooks):
            reason = _run_one(hook, payload, cwd)
            if reason is None:
                continue
            failure = HookFailed(phase, index, hook.path, reason)
            if phase not in WARNING_PHASES:
                raise failure
            warnings.append(str(failure))
    finally:
        _restore_signals(saved)
    return warnings


# --- one hook ------------------------------------------------------------------------------


def _run_one(hook: Hook, payload: bytes, cwd: str) -> str | None:
    """Run one hook to the end; None if it succeeded, else why it failed."""
    argv = list(hook.args) if hook.args else [hook.path]
    env = _environment(hook.env)
    fds: list[int] = []
    pid = 0
    try:
        stdin_r, stdin_w = _pipe(fds)
        out_r, out_w = _pipe(fds)
        report_r, report_w = _pipe(fds)  # close-on-exec: end-of-file means execve worked
        try:
            pid = os.fork()
        except OSError as exc:
            return f"cannot execute: fork: {_strerror(exc)}"
        if pid == 0:
            _exec_child(hook.path, argv, env, cwd, stdin_r, out_w, report_w)
        for fd in (stdin_r, out_w, report_w):
            _close(fd, fds)
        failed_exec = _read_to_end(report_r)
        if failed_exec:
            _reap(pid)
            pid = 0
            return failed_exec.decode("utf-8", "replace")
        _close(report_r, fds)
        timed_out, output, truncated = _supervise(pid, stdin_w, out_r, payload, hook.timeout, fds)
        if timed_out:
            _kill_group(pid)
        status = _reap(pid)
        pid = 0
    except OSError as exc:  # out of descriptors or processes, mostly
        return f"cannot run: {_strerror(exc)}"
    finally:
        if pid:  # interrupted (KeyboardInterrupt, an unexpected error): never leave it
            _kill_group(pid)
            _reap(pid)
        for fd in fds:
            os.close(fd)
    if timed_out:
        reason = f"timed out after {hook.timeout} s (killed)"
    elif status is None:
        reason = "exit status unknown: the process was reaped by someone else"
    elif os.WIFSIGNALED(status):
        reason = f"killed by signal {_signal_name(os.WTERMSIG(status))}"
    elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return None
    else:
        reason = f"exit status {os.waitstatus_to_exitcode(status)}"
    text = _summary(output, truncated)
    return f"{reason}; output: {text}" if text else reason


def _environment(entries: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries:
        name, _, value = entry.partition("=")
        env[name] = value
    return env


def _supervise(
    pid: int,
    stdin_w: int,
    out_r: int,
    payload: bytes,
    timeout: int | None,
    fds: list[int],
) -> tuple[bool, bytes, bool]:
    """Feed stdin, collect output and wait for the exit or the deadline.

    Returns (timed out, the first OUTPUT_LIMIT bytes of output, whether more came)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pidfd = os.pidfd_open(pid)
    fds.append(pidfd)
    os.set_blocking(stdin_w, False)
    os.set_blocking(out_r, False)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(out_r, select.POLLIN)
    poller.register(stdin_w, select.POLLOUT)
    output = bytearray()
    truncated = False
    pending = memoryview(payload)
    stdin_open = out_open = True
    while True:
        wait_ms: int | None = None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return True, bytes(output), truncated
            wait_ms = int(left * 1000) + 1
        events = poller.poll(wait_ms)
        exited = False
        for fd, mask in events:
            if fd == pidfd:
                exited = True
            elif fd == out_r and out_open:
                chunk = _read_some(out_r)
                if chunk is None:
                    poller.unregister(out_r)
                    out_open = False
                else:
                    truncated |= _keep(output, chunk)
            elif fd == stdin_w and stdin_open:
                if not mask & select.POLLERR:
                    try:
                        pending = pending[os.write(stdin_w, pending) :]
                    except BlockingIOError:
                        continue
                    except OSError:  # EPIPE: the hook closed its stdin, it had its chance
                        pending = pending[:0]
                if mask & select.POLLERR or not pending:
                    poller.unregister(stdin_w)
                    _close(stdin_w, fds)
                    stdin_open = False
        if exited:
            break
    if out_open:  # what the hook wrote before exiting; a daemon it left may hold the pipe
        for _ in range(_DRAIN_READS):
            chunk = _read_some(out_r)
            if not chunk:
                break
            truncated |= _keep(output, chunk)
    return False, bytes(output), truncated


def _read_some(fd: int) -> bytes | None:
    """Up to _READ_SIZE bytes; b"" if nothing is there yet, None at end-of-file."""
    try:
        chunk = os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return b""
    except OSError:
        return None
    return chunk or None


def _keep(output: bytearray, chunk: bytes) -> bool:
    """Append what fits under OUTPUT_LIMIT; True if something was dropped."""
    room = OUTPUT_LIMIT - len(output)
    output += chunk[: max(room, 0)]
    return len(chunk) > room


def _summary(output: bytes, truncated: bool) -> str:
    lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines()]
    text = " | ".join(line for line in lines if line)
    return f"{text} [...]" if truncated else text


def _kill_group(pid: int) -> None:
    """SIGKILL the hook's process group (it leads one), or the hook alone."""
    try:
        os.killpg(pid, _signal.SIGKILL)
        return
    except OSError:
        pass
    try:
        os.kill(pid, _signal.SIGKILL)
    except OSError:
        pass


def _reap(pid: int) -> int | None:
    """Wait for our child; its wait status, or None if it was reaped elsewhere."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return status


def _signal_name(signum: int) -> str:
    try:
        # Only on this error path: `signal` builds enums when imported. In init after
        # pivot_root the standard library may be out of reach: then the number alone.
        import signal

        return f"{signum} ({signal.Signals(signum).name})"
    except (ValueError, ImportError):
        return str(signum)


# --- the child, between fork and execve ----------------------------------------------------


def _exec_child(
    path: str,
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    stdin_r: int,
    out_w: int,
    report_w: int,
) -> NoReturn:
    """Set up stdio, cwd, signals and exec the hook; a failure is written to report_w."""
    try:
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
        _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
        for signum in (_signal.SIGPIPE, _signal.SIGXFSZ):
            _signal.signal(signum, _signal.SIG_DFL)
        # Any of these may sit on 0-2 if the runtime runs with stdio closed: lift them first.
        report_w = _above_stdio(report_w)
        stdin_r = _above_stdio(stdin_r)
        out_w = _above_stdio(out_w)
        os.dup2(stdin_r, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.closerange(3, report_w)
        os.closerange(report_w + 1, max(os.sysconf("SC_OPEN_MAX"), report_w + 1))
        try:
            os.chdir(cwd)
        except OSError as exc:
            _report(report_w, f"cannot change directory to {cwd}: {_strerror(exc)}")
        try:
            os.execve(path, argv, env)
        except OSError as exc:
            _report(report_w, f"cannot execute: {_strerror(exc)}")
        except ValueError as exc:  # a NUL byte, an environment name with "="
            _report(report_w, f"cannot execute: {exc}")
    except BaseException as exc:
        _report(report_w, f"cannot execute: {exc}")
    finally:
        os._exit(_EXIT_EXEC_FAILED)


def _above_stdio(fd: int) -> int:
    """A close-on-exec duplicate of `fd` numbered 3 or more (the low copies get replaced)."""
    while fd < 3:
        fd = os.dup(fd)
    return fd


def _report(report_w: int, message: str) -> NoReturn:
    try:
        os.write(report_w, message.encode("utf-8", "replace"))
    finally:
        os._exit(_EXIT_EXEC_FAILED)


# --- small helpers -------------------------------------------------------------------------


def _pipe(fds: list[int]) -> tuple[int, int]:
    read_end, write_end = os.pipe()  # both close-on-exec
    fds += (read_end, write_end)
    return read_end, write_end


def _close(fd: int, fds: list[int]) -> None:
    fds.remove(fd)
    os.close(fd)


def _read_to_end(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, _READ_SIZE):
        chunks.append(chunk)
    return b"".join(chunks)


def _strerror(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _prepare_signals() -> list[tuple[int, object]]:
    """Ignore SIGPIPE and un-ignore SIGCHLD for the run; returns what to restore."""
    saved: list[tuple[int, object]] = []
    wanted = ((_signal.SIGPIPE, _signal.SIG_IGN, True), (_signal.SIGCHLD, _signal.SIG_DFL, False))
    for signum, action, unless_equal in wanted:
        current = _signal.getsignal(signum)
        change = current != action if unless_equal else current == _signal.SIG_IGN
        if not change:
            continue
        try:
            saved.append((signum, _signal.signal(signum, action)))
        except (ValueError, OSError):  # not the main thread: leave it as it is
            pass
    return saved


def _restore_signals(saved: list[tuple[int, object]]) -> None:
    for signum, action in saved:
        try:
            _signal.signal(signum, action)
        except (ValueError, OSError, TypeError):
            pass
