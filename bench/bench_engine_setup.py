"""Set-up and plumbing for `engine_bench.py`: the settings, a timed spawner with a
timeout, the two engines (cove and podman, each in its own temporary storage), reading
processes and their memory from /proc, and the clean-up and leak checks.

Standard library only.  Every process this module stops is found by its PID, and only
if its command line names this run's private storage.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import BenchError, first_line

SCENARIOS = ("run", "starts", "rm", "memory")
SCENARIO_TITLES = {
    "run": "1 run",
    "starts": "2 starts in a fixed time",
    "rm": "3 rm -f",
    "memory": "4 supervision memory",
}
DEFAULTS = {"runs": 20, "duration": 30.0, "count": 100, "containers": 20}
QUICK = {"runs": 3, "duration": 3.0, "count": 5, "containers": 3}

TARGET_RUN = 0.4  # cove run --rm median <= 0.4x podman's
TARGET_STARTS = 3.0  # cove starts >= 3x podman's in the same time
TARGET_RM = 0.5  # cove rm -f per container <= 0.5x podman's
TARGET_MONITOR_KB = 1024  # cove monitor PSS per container <= 1 MB

COVE_CANDIDATES = (Path("/usr/local/bin/cove"), Path("/opt/cove/venv/bin/cove"))
IMAGE = "bb:1"
PODMAN_IMAGE = "localhost/bb:1"
# podman's defaults fail on this host: crun refuses hybrid cgroups, and root lacks
# CAP_SYS_RESOURCE with a hard RLIMIT_NOFILE of 20000 (see DESIGN.md, "This machine").
PODMAN_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
CALL_TIMEOUT_S = 60.0  # one engine command (run, run -d, rm -f of one container)
BULK_TIMEOUT_S = 600.0  # one command on many containers (rm -f of --count ids)
SETTLE_TIMEOUT_S = 60.0  # background work of an engine after rm -f
PR_SET_CHILD_SUBREAPER = 36


# --------------------------------------------------------------------------- processes


@dataclass
class Outcome:
    elapsed_ns: int
    code: int
    stdout: str
    stderr: str

    def last_error(self) -> str:
        return error_line(self.stderr or self.stdout)


def error_line(text: str) -> str:
    """The line of a failed command's output that says why: podman's "Error: ..." line
    (its last line may be "See 'podman --help'"), else the last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Error:"):
            return line
    return lines[-1] if lines else "(no output)"


def progress(text: str, done: bool = False) -> None:
    """A progress line, rewritten in place on a terminal; only the last one otherwise."""
    if sys.stdout.isatty():
        print(f"\r  {text}", end="\n" if done else "", flush=True)
    elif done:
        print(f"  {text}", flush=True)


class Spawner:
    """posix_spawn + pidfd + waitpid, timed with perf_counter_ns, with a timeout.

    stdin is /dev/null; stdout and stderr go to scratch files (never pipes: a detached
    container's monitor may inherit them and would keep a pipe open).  ``inflight`` is
    the PID of the command running now, so an interrupt can stop exactly that one.
    """

    def __init__(self, workdir: Path) -> None:
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        self._null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self._out = os.open(workdir / "stdout.log", flags, 0o600)
        self._err = os.open(workdir / "stderr.log", flags, 0o600)
        self.inflight: int | None = None

    def run(self, argv: Sequence[str], env: dict[str, str], timeout: float) -> Outcome:
        """Run ``argv`` (argv[0] absolute); BenchError if it cannot start or times out."""
        for fd in (self._out, self._err):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        actions = [
            (os.POSIX_SPAWN_DUP2, self._null, 0),
            (os.POSIX_SPAWN_DUP2, self._out, 1),
            (os.POSIX_SPAWN_DUP2, self._err, 2),
        ]
        start = time.perf_counter_ns()
        try:
            pid = os.posix_spawn(argv[0], list(argv), env, file_actions=actions)
        except OSError as exc:
            raise BenchError(f"{argv[0]}: {exc}") from exc
        self.inflight = pid
        try:
            pidfd = os.pidfd_open(pid)
            try:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                if not poller.poll(timeout * 1000):
                    self.kill_inflight()
                    raise BenchError(
                        f"{Path(argv[0]).name} {' '.join(argv[1:6])} ...: "
                        f"no exit after {timeout:.0f} s (killed)"
                    )
            finally:
                os.close(pidfd)
            _, status = os.waitpid(pid, 0)
            elapsed = time.perf_counter_ns() - start
        except BaseException:
            self.kill_inflight()
            raise
        self.inflight = None
        return Outcome(
            elapsed, os.waitstatus_to_exitcode(status), self._read(self._out), self._read(self._err)
        )

    def kill_inflight(self) -> None:
        pid, self.inflight = self.inflight, None
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    @staticmethod
    def _read(fd: int) -> str:
        return os.pread(fd, 1 << 20, 0).decode(errors="replace")

    def close(self) -> None:
        self.kill_inflight()
        for fd in (self._null, self._out, self._err):
            os.close(fd)


def become_subreaper() -> bool:
    """Adopt the engines' daemonized processes (monitors, conmon, clean-up commands) so
    that they are reaped when they exit: this machine's PID 1 does not reap them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans() -> None:
    """Reap adopted processes that have exited; never blocks.  Only called between
    commands, when no command of the Spawner is running."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@dataclass
class Proc:
    pid: int
    exe: str  # basename of /proc/PID/exe ("" if unreadable)
    cmdline: str  # arguments joined by spaces


def processes() -> list[Proc]:
    """Every process with a readable command line (kernel threads have none)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        if not raw:
            continue
        try:
            exe = os.path.basename(os.readlink(f"/proc/{entry.name}/exe"))
        except OSError:
            exe = ""
        found.append(
            Proc(
                int(entry.name),
                exe,
                raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace"),
            )
        )
    return found


def memory_kb(pid: int) -> dict[str, int] | None:
    """Pss, Rss and private (Private_Clean + Private_Dirty) of /proc/PID/smaps_rollup."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            text = f.read()
    except OSError:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            values[parts[0].rstrip(":")] = int(parts[1])
    if "Pss" not in values:
        return None
    return {
        "pss": values["Pss"],
        "rss": values.get("Rss", 0),
        "private": values.get("Private_Clean", 0) + values.get("Private_Dirty", 0),
    }


# --------------------------------------------------------------------------- engines


@dataclass
class Engine:
    """One engine in its own temporary storage.  ``marker`` is a path that appears in
    the command line of every process the engine leaves running for this run (its
    private root), so those processes can be told apart from anyone else's."""

    name: str
    binary: str
    prefix: list[str]
    env: dict[str, str]
    image: str
    run_flags: list[str]  # after `run`
    rm_flags: list[str]  # after `rm`
    monitor_exe: str  # basename of the per-container supervisor's executable
    marker: str
    dirs: list[Path]
    version: str = ""
    ids: set[str] = field(default_factory=set)  # every container id ever started

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, *args]

    def run_argv(self, *args: str) -> list[str]:
        return self.argv("run", *self.run_flags, *args)

    def rm_argv(self, ids: Iterable[str]) -> list[str]:
        return self.argv("rm", *self.rm_flags, *ids)


def find_cove(explicit: str | None) -> str | None:
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for path in COVE_CANDIDATES:
        if os.access(path, os.X_OK):
            return str(path)
    return shutil.which("cove")


def make_cove(binary: str, workdir: Path) -> Engine:
    root = workdir / "cove"
    root.mkdir()
    return Engine(
        name="cove",
        binary=binary,
        prefix=[binary, "--root", str(root)],
        env=dict(os.environ),
        image=IMAGE,
        run_flags=[],
        rm_flags=["-f"],
        monitor_exe="cove-monitor",
        marker=str(root),
        dirs=[root],
        version=" ".join(first_line([binary, "version"]).split()),
    )


def make_podman(binary: str, workdir: Path) -> Engine:
    # Short names: podman refuses a --runroot of 50 characters or more.
    root, runroot, tmpdir, tmp = (workdir / n for n in ("pr", "prr", "ptd", "ptmp"))
    for d in (root, runroot, tmpdir, tmp):
        d.mkdir()
    conf = workdir / "containers.conf"
    conf.write_text(PODMAN_CONF)
    env = {**os.environ, "CONTAINERS_CONF": str(conf), "TMPDIR": str(tmp)}
    return Engine(
        name="podman",
        binary=binary,
        prefix=[binary, "--root", str(root), "--runroot", str(runroot), "--tmpdir", str(tmpdir)],
        env=env,
        image=PODMAN_IMAGE,
        run_flags=["--network", "none"],
        # -t 0: kill at once, as `docker rm -f` and `cove rm -f` do; podman's default is
        # SIGTERM, then SIGKILL 10 s later (sleep as PID 1 ignores SIGTERM).
        rm_flags=["-f", "-t", "0"],
        monitor_exe="conmon",
        marker=str(root),
        dirs=[root, runroot, tmpdir, tmp],
        version=first_line([binary, "--version"]),
    )


def untimed(
    engine: Engine,
    args: Sequence[str],
    what: str,
    timeout: float = BULK_TIMEOUT_S,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """A set-up, listing or clean-up command; BenchError (with its last stderr line) when
    it fails and ``check`` is set."""
    try:
        proc = subprocess.run(
            engine.argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=engine.env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{engine.name} {what}: {exc}") from exc
    finally:
        reap_orphans()
    if check and proc.returncode != 0:
        raise BenchError(
            f"{engine.name} {what}: exit {proc.returncode}: "
            f"{error_line(proc.stderr or proc.stdout)}"
        )
    return proc


def list_ids(engine: Engine) -> list[str]:
    out = untimed(engine, ["ps", "-a", "-q", "--no-trunc"], "ps -a", CALL_TIMEOUT_S).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def running_ids(engine: Engine) -> list[str]:
    out = untimed(engine, ["ps", "-q", "--no-trunc"], "ps", CALL_TIMEOUT_S).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def start_detached(spawner: Spawner, engine: Engine) -> tuple[str, int]:
    """`run -d IMAGE sleep 3600`: (full container id, elapsed ns)."""
    out = spawner.run(
        engine.run_argv("-d", engine.image, "sleep", "3600"), engine.env, CALL_TIMEOUT_S
    )
    lines = out.stdout.strip().splitlines()
    cid = lines[-1].strip() if lines else ""
    if len(cid) == 64 and all(c in "0123456789abcdef" for c in cid):
        engine.ids.add(cid)
    if out.code != 0:
        raise BenchError(f"{engine.name} run -d: exit {out.code}: {out.last_error()}")
    if len(cid) != 64:
        raise BenchError(f"{engine.name} run -d printed no container id: {out.stdout!r}")
    return cid, out.elapsed_ns


def start_many(spawner: Spawner, engine: Engine, count: int, what: str) -> list[str]:
    """Start ``count`` detached containers, untimed; all of them must be running."""
    ids = []
    for i in range(count):
        ids.append(start_detached(spawner, engine)[0])
        reap_orphans()
        progress(f"{engine.name}: {what}: started {i + 1}/{count}", done=i == count - 1)
    running = set(running_ids(engine))
    missing = [cid[:12] for cid in ids if cid not in running]
    if missing:
        raise BenchError(
            f"{engine.name}: {len(missing)} of {count} containers are not "
            f"running: {', '.join(missing[:5])}"
        )
    return ids


def engine_procs(engine: Engine) -> list[Proc]:
    """Processes whose command line names this engine's private root: its monitors (and
    any clean-up command still running), never the containers' own processes."""
    me = os.getpid()
    return [p for p in processes() if engine.marker in p.cmdline and p.pid != me]


def monitors(engine: Engine, ids: Iterable[str]) -> dict[str, Proc]:
    """Container id -> its supervisor process (cove-monitor or conmon), matched by the
    executable's name and the full id in its command line."""
    wanted = set(ids)
    found: dict[str, Proc] = {}
    for proc in processes():
        if proc.exe != engine.monitor_exe:
            continue
        for cid in wanted:
            if cid in proc.cmdline:
                found[cid] = proc
                break
    return found


def wait_settled(engine: Engine, timeout: float = SETTLE_TIMEOUT_S) -> tuple[float, list[Proc]]:
    """Wait until no process names the engine's root; (seconds waited, leftovers)."""
    start = time.monotonic()
    while True:
        reap_orphans()
        left = engine_procs(engine)
        waited = time.monotonic() - start
        if not left or waited >= timeout:
            return waited, left
        time.sleep(0.02)


# --------------------------------------------------------------------------- clean-up


def remove_all(engine: Engine) -> list[str]:
    """Remove every container of the engine's private storage (it holds nothing else);
    returns problems seen, as text."""
    problems = []
    try:
        if engine.name == "podman":
            untimed(engine, ["rm", "-a", *engine.rm_flags], "rm -af")
        else:
            ids = list_ids(engine)
            if ids:
                untimed(engine, ["rm", *engine.rm_flags, *ids], "rm -f (clean-up)")
    except BenchError as exc:
        problems.append(str(exc))
    return problems


def stop_leftovers(engine: Engine) -> list[str]:
    """Processes naming the engine's private root after its containers are removed: a
    leak.  Reported, then killed by PID."""
    waited, left = wait_settled(engine, timeout=10.0)
    problems = []
    for proc in left:
        problems.append(
            f"{engine.name}: process {proc.pid} ({proc.exe or '?'}) still "
            f"running {waited:.0f} s after clean-up: {proc.cmdline[:160]}"
        )
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        time.sleep(0.2)
        reap_orphans()
    return problems


def leaked_mounts(prefix: Path) -> list[str]:
    head = str(prefix) + "/"
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(head)]


def leaked_cgroups(ids: set[str]) -> list[Path]:
    """Cgroup directories (two levels below each hierarchy) named after a container id,
    e.g. /sys/fs/cgroup/memory/cove/ID or .../libpod_parent/libpod-ID."""
    if not ids:
        return []
    found = []
    base = Path("/sys/fs/cgroup")
    hierarchies = [p for p in base.iterdir() if p.is_dir() and not p.is_symlink()]
    for hierarchy in hierarchies:
        for parent in (p for p in hierarchy.iterdir() if p.is_dir()):
            try:
                children = [c for c in parent.iterdir() if c.is_dir()]
            except OSError:
                continue
            for child in children:
                if any(cid in child.name for cid in ids):
                    found.append(child)
    return found


def leaked_sockets(ids: set[str]) -> list[Path]:
    """cove's attach sockets live in /run/cove/attach (named by the id's first 32 hex
    digits), outside --root: one left there after rm is a leak."""
    folder = Path("/run/cove/attach")
    if not folder.is_dir() or not ids:
        return []
    prefixes = {cid[:32] for cid in ids}
    return [p for p in folder.iterdir() if p.name.split(".")[0] in prefixes]


def podman_reset(engine: Engine) -> list[str]:
    try:
        untimed(engine, ["system", "reset", "-f"], "system reset", CALL_TIMEOUT_S * 2)
    except BenchError as exc:
        return [str(exc)]
    return []


def remove_tree(path: Path) -> None:
    """Delete a directory, unmounting anything still mounted below it first."""
    if not path.exists():
        return
    for mount in sorted(leaked_mounts(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, timeout=30)
    shutil.rmtree(path, ignore_errors=True)


def teardown(engines: Sequence[Engine], workdir: Path | None) -> list[str]:
    """Remove every container, check for leaks (processes, mounts, cgroups, sockets),
    undo them, delete the engines' storage and ``workdir``.  Returns the problems seen."""
    problems: list[str] = []
    for engine in engines:
        problems += remove_all(engine)
        problems += stop_leftovers(engine)
        if engine.name == "podman":
            problems += podman_reset(engine)
        for mount in leaked_mounts(engine.dirs[0]):
            problems.append(f"{engine.name}: mount left after removing all: {mount}")
        for cgroup in leaked_cgroups(engine.ids):
            problems.append(f"{engine.name}: cgroup left after removing all: {cgroup}")
            try:
                cgroup.rmdir()
            except OSError as exc:
                problems.append(f"  (could not remove it: {exc})")
        if engine.name == "cove":
            for sock in leaked_sockets(engine.ids):
                problems.append(f"cove: attach socket left after removing all: {sock}")
                sock.unlink(missing_ok=True)
        for d in engine.dirs:
            remove_tree(d)
    if workdir is not None:
        remove_tree(workdir)
    reap_orphans()
    return problems
