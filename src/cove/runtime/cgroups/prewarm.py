"""Start the kernel's cgroup-migration grace period early, in a throwaway process.

Moving a task between cgroups takes a global lock (cgroup_threadgroup_rwsem) in write
mode, and the first writer waits for an RCU grace period: about 10 ms on these hosts,
the largest single cost of starting a container (runc pays it too). Writers that come
while the lock's grace period is pending or just passed share it. So `create`, `run` and
`exec`, which will move a process ~10 ms later, first fork a tiny process that "moves"
itself into the cgroup it is already in (a no-op that takes the lock), and carry on with
their imports meanwhile. The real move then finds the grace period passed and takes
~0.1 ms. Any failure here is ignored: it only loses the head start.
"""

from __future__ import annotations

import os


def start_prewarm() -> int:
    """Fork the throwaway writer; returns its pid (0 if it could not start)."""
    try:
        procs = own_cgroup_procs()
        pid = os.fork()
    except OSError:
        return 0
    if pid == 0:
        try:
            fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            os.write(fd, b"0")  # "0" means the writing process itself
        except OSError:
            pass
        os._exit(0)
    return pid


def keep_warm(procs: str) -> None:
    """The same no-op move, from this process, into `procs` (its own cgroup's
    cgroup.procs, see `own_cgroup_procs`): repeated more often than a grace period, it
    keeps the lock's grace period passed, so a real move meanwhile never waits. The first
    call waits for the grace period itself."""
    try:
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    except OSError:
        pass


def reap(pid: int) -> None:
    """Collect the throwaway writer if it has finished (it never takes long)."""
    if pid:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def own_cgroup_procs() -> str:
    """cgroup.procs of our own cgroup in the first hierarchy /proc/self/cgroup names."""
    with open("/proc/self/cgroup") as cgroups:
        for line in cgroups:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            name = controllers.split(",")[0].removeprefix("name=") if controllers else "unified"
            for base in (f"/sys/fs/cgroup/{name}", "/sys/fs/cgroup"):
                procs = f"{base}{path.rstrip('/')}/cgroup.procs"
                if os.path.exists(procs):
                    return procs
    raise OSError("no cgroup.procs of our own found")
