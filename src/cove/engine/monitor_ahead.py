"""Process F of `monitor.launch`, forked ahead: when `cove run` begins, before the engine
has the container's bundle.

F's work before the runtime can clone the container's init is mostly Python loading the
runtime (its spec reader, cgroup controllers, the init's code: ~20 ms), and the init waits
on it. Forked when the command begins, F loads all that on the second core while the
engine loads its own modules and creates the container; `launch` then only hands F the
runtime and the options, and F goes on from step 3 of the table in cove.engine.monitor.

    who     when                    what
    E       the command begins      pipes: sync, go, stdout, stderr, stdin; fork F0, which
                                    forks F and exits; E keeps sync's and go's ends
    F                               setsid (so a ^C meant for E's start does not reach
                                    F), loads the runtime's modules, reads go to its end
    E       launch                  writes go: the pickled (runtime, options); closes it
    F                               drops the pipes the options do not use (a tty; no -i),
                                    then is `monitor.become_monitor`
    E       no launch (an error,    closes go: F reads an empty message and exits
            the command ended)

Pickle is safe here: both ends are this program, one forked from the other.
"""

from __future__ import annotations

import os

WARM_INTERVAL = 0.004  # seconds: well under a grace period (~10 ms here)
WARM_FOR = 2.0  # seconds: a CLI busier than that before its launch (a pull) goes without

TYPE_CHECKING = False
if TYPE_CHECKING:  # (this module loads before anything else of the engine: F forks sooner)
    from cove.engine.monitor import MonitorOptions
    from cove.engine.oci_runtime_api import OCIRuntime


class LauncherAhead:
    """E's side of an F forked ahead: used by one `launch`, or closed."""

    def __init__(self, sync_r: int, go_w: int) -> None:
        self._sync_r = sync_r
        self._go_w = go_w

    @classmethod
    def fork(cls) -> LauncherAhead:
        sync_r, sync_w = os.pipe()
        go_r, go_w = os.pipe()
        pipes = (*os.pipe(), *os.pipe(), *os.pipe())  # stdout, stderr, stdin: (read, write)
        try:
            first = os.fork()
            if first == 0:  # F0
                try:
                    if os.fork() == 0:  # F
                        os.close(sync_r)
                        os.close(go_w)
                        _wait_for_launch(go_r, sync_w, pipes)
                finally:
                    os._exit(0)
            os.waitpid(first, 0)
        except BaseException:
            os.close(sync_r)
            os.close(go_w)
            raise
        finally:
            for fd in (sync_w, go_r, *pipes):
                os.close(fd)
        return cls(sync_r, go_w)

    def go(self, runtime: OCIRuntime, options: MonitorOptions) -> int:
        """Hand F the launch; returns the sync pipe's read end (the caller reads and
        closes it). F gone already shows there as a monitor that exited before it was
        ready."""
        if self._go_w < 0:
            raise ValueError("this launcher was used or closed")
        import pickle

        sync_r, self._sync_r = self._sync_r, -1
        message = pickle.dumps((runtime, options))
        try:
            view = memoryview(message)
            while view:
                view = view[os.write(self._go_w, view) :]
        except BrokenPipeError:
            pass
        finally:
            os.close(self._go_w)
            self._go_w = -1
        return sync_r

    def close(self) -> None:
        """No launch: F exits (idempotent; nothing after `go`)."""
        for fd in (self._go_w, self._sync_r):
            if fd >= 0:
                os.close(fd)
        self._go_w = self._sync_r = -1


def _wait_for_launch(go_r: int, sync_w: int, pipes: tuple[int, ...]) -> None:
    """Process F until the launch: never returns."""
    os.setsid()
    try:
        preload_runtime()
    except Exception:  # (a module that fails loads again where it is used, and says why)
        pass
    import pickle

    from cove.engine.monitor import MonitorOptions, become_monitor, monitor_binary
    from cove.engine.oci_runtime_api import OCIRuntime

    runtime, options = pickle.loads(_read_launch(go_r))
    os.close(go_r)
    assert isinstance(runtime, OCIRuntime) and isinstance(options, MonitorOptions)
    out_r, out_w, err_r, err_w, in_r, in_w = pipes
    unused = (out_r, out_w, err_r, err_w, in_r, in_w) if options.tty else (
        (in_r, in_w) if not options.stdin else ())  # fmt: skip
    for fd in unused:
        os.close(fd)
    if options.tty:
        out_r = out_w = err_r = err_w = in_r = in_w = -1
    elif not options.stdin:
        in_r = in_w = -1
    become_monitor(runtime, options, monitor_binary(), sync_w,
                   (out_r, out_w, err_r, err_w, in_r, in_w))  # fmt: skip


def _read_launch(go_r: int) -> bytes:
    """The whole go message; meanwhile the kernel's cgroup-move grace period is kept passed
    (cove.runtime.cgroups.prewarm), so that init's move into its cgroup, ~10 ms after the
    message, does not wait ~15 ms for one; for WARM_FOR seconds at most (a `run` that
    pulls its image first then pays the wait once). An empty message: F exits."""
    import select
    import time

    from cove.runtime.cgroups.prewarm import keep_warm, own_cgroup_procs

    try:
        procs = own_cgroup_procs()
    except OSError:
        procs = ""
    warm_until = time.monotonic() + WARM_FOR
    chunks = []
    while True:
        warming = procs and time.monotonic() < warm_until
        ready, _, _ = select.select([go_r], [], [], WARM_INTERVAL if warming else None)
        if not ready:
            keep_warm(procs)
            continue
        chunk = os.read(go_r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    if not chunks:
        os._exit(0)
    return b"".join(chunks)


def preload_runtime() -> None:
    """The modules F uses: the monitor's launch, the engine's runtime classes (unpickled),
    and those cove-runtime's create loads (its own, and those it loads as it goes)."""
    import cove.engine.monitor
    import cove.engine.oci_runtime_library
    import cove.oci.seccomp
    import cove.runtime.cgroups.prewarm
    import cove.runtime.cgroups.v1
    import cove.runtime.cgroups.v2
    import cove.runtime.container_create
    import cove.runtime.devices
    import cove.runtime.process.execute
    import cove.runtime.process.init
    import cove.runtime.rootfs
    import cove.runtime.seccomp_bpf
    import cove.runtime.terminal
    import cove.sys.linux

    cove.runtime.cgroups.v1.controllers()
    cove.runtime.cgroups.v2.controllers()
