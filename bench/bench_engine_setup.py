"""Set-up and plumbing for `engine_bench.py`: the settings, the two engines (cove and
podman, each in its own temporary storage), the run's context with its leak check after
a removal, importing the image, and the clean-up and leak checks.

Standard library only.  Every process this module stops is found by its PID, and only
if its command line names this run's private storage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_procs import Proc, Spawner, error_line, processes, progress, reap_orphans
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


# --------------------------------------------------------------------------- the run


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, spawner: Spawner) -> None:
        self.args = args
        self.workdir = workdir
        self.spawner = spawner
        self.cove: Engine | None = None
        self.podman: Engine | None = None
        self.podman_note = ""
        self.problems: list[str] = []
        self.report: dict[str, Any] = {"scenarios": {}, "problems": self.problems}

    @property
    def engines(self) -> list[Engine]:
        return [e for e in (self.cove, self.podman) if e is not None]

    def problem(self, text: str) -> None:
        self.problems.append(text)
        print(f"  problem: {text}")

    def removal_check(self, engine: Engine, ids: Sequence[str], baseline: set[str]) -> float:
        """After a removal: nothing listed, no monitor or clean-up left (waits for them:
        returns the seconds waited), no new mount, cgroup or attach socket."""
        left = set(list_ids(engine)) & set(ids)
        if left:
            self.problem(f"{engine.name}: {len(left)} removed containers still listed by ps -a")
        waited, procs = wait_settled(engine)
        for proc in procs[:5]:
            self.problem(
                f"{engine.name}: process {proc.pid} ({proc.exe}) still running "
                f"{waited:.0f} s after rm -f: {proc.cmdline[:120]}"
            )
        # A mount right below the root is a storage driver's home (podman's overlay
        # driver bind-mounts pr/overlay onto itself), not a container's.
        root = engine.dirs[0]
        new_mounts = {m for m in leaked_mounts(root) if Path(m).parent != root} - baseline
        if new_mounts:
            self.problem(
                f"{engine.name}: {len(new_mounts)} mounts left after rm -f, e.g. "
                f"{sorted(new_mounts)[0]}"
            )
        cgroups = leaked_cgroups(set(ids))
        if cgroups:
            self.problem(
                f"{engine.name}: {len(cgroups)} cgroups left after rm -f, e.g. {cgroups[0]}"
            )
        if engine.name == "cove":
            socks = leaked_sockets(set(ids))
            if socks:
                self.problem(f"cove: {len(socks)} attach sockets left after rm -f, e.g. {socks[0]}")
        return waited


def setup(b: Bench, cove_path: str, tarball: Path) -> None:
    b.cove = make_cove(cove_path, b.workdir)
    untimed(b.cove, ["import", str(tarball), b.cove.image], "import", CALL_TIMEOUT_S)
    podman = shutil.which("podman")
    if podman is None:
        b.podman_note = "podman not found on PATH: podman columns are skipped"
        return
    if shutil.which("conmon") is None and not Path("/usr/libexec/podman/conmon").exists():
        b.podman_note = "conmon not found: podman columns are skipped"
        return
    engine = make_podman(podman, b.workdir)
    b.podman = engine  # cleaned up even if the import fails
    try:
        untimed(engine, ["import", str(tarball), engine.image], "import", CALL_TIMEOUT_S * 2)
        # One untimed container proves the configuration works on this host.
        probe = ["run", *engine.run_flags, "--rm", engine.image, "true"]
        untimed(engine, probe, "run probe", CALL_TIMEOUT_S)
    except BenchError as exc:
        b.podman_note = f"podman set-up failed, podman columns are skipped: {exc}"
        b.problems.append(b.podman_note)
        b.podman = None
        b.problems.extend(teardown([engine], None))
