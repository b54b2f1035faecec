"""Set-up and measuring for `runtime_bench.py`: the scenarios' settings, timed spawning
(posix_spawn, child subreaper), the busybox rootfs and bundles, the runtimes and their
calls, the checks that a scenario's settings were applied, and interleaved measuring.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import BenchError, first_line, spawn_timed

RUNTIME_NAMES = ("cove", "runc", "crun")
SCENARIOS = ("run", "lifecycle", "limits", "seccomp")
# What the table and the ratios call each scenario.
SCENARIO_LABELS = {
    "run": "run",
    "lifecycle": "lifecycle",
    "limits": "run+limits",
    "seccomp": "run+seccomp",
}
CALLS_PER_SAMPLE = {"run": 1, "lifecycle": 3, "limits": 1, "seccomp": 1}
# Scenarios made of one `run` call: measured in the same rounds, each runtime in turn.
RUN_SCENARIOS = ("run", "limits", "seccomp")
# The bundle (config.json) each scenario uses; run and lifecycle share the plain one.
BUNDLE_OF = {"run": "plain", "lifecycle": "plain", "limits": "limits", "seccomp": "seccomp"}
MIB = 1024 * 1024
# No blkio weight: this host's kernel has no blkio.weight.
LIMITS_RESOURCES: dict[str, Any] = {
    "memory": {"limit": 256 * MIB, "swap": 256 * MIB},
    "cpu": {"quota": 50000, "period": 100000},
    "pids": {"limit": 100},
}
TARGET_VS_RUNC = 0.8
TARGET_VS_CRUN = 2.0

REPO_ROOT = Path(__file__).resolve().parent.parent
SECCOMP_PROFILES = REPO_ROOT / "tests" / "lib" / "seccomp_profiles.py"
DEFAULT_PYTHON = Path("/opt/cove/venv/bin/python")
DEFAULT_COVE = Path("/opt/cove/venv/bin/cove-runtime")
# What `cove-runtime run` imports: the CLI, the verb, the syscalls and the init's modules.
HOT_MODULE = "cove.cli.runtime"
HOT_IMPORT = (
    "import cove.cli.runtime, cove.cli.runtime.verb_run, cove.sys.linux, cove.runtime.process.init"
)
UNIFIED_MOUNT = Path("/sys/fs/cgroup/unified")
# "$0" is the program to run, so the same wrapper can run crun or true.
WRAPPER_SCRIPT = f'umount {UNIFIED_MOUNT} && exec "$0" "$@"'
STATE_TIMEOUT_S = 10.0
PR_SET_CHILD_SUBREAPER = 36


# --------------------------------------------------------------------------- process helpers


class Spawner:
    """Spawns a command with posix_spawn and times it until it is reaped.

    stdin and stdout go to /dev/null, stderr to a scratch file so that a detached
    container (which inherits the stdio of ``create``) can never block a pipe.
    """

    def __init__(self, workdir: Path) -> None:
        self._null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        self._err = os.open(workdir / "stderr.log", flags, 0o600)
        self.env = dict(os.environ)

    def timed(self, argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, int]:
        """Run ``argv`` (argv[0] absolute); return (elapsed ns, exit code)."""
        return spawn_timed(argv, env or self.env, self._null, self._err)

    def last_stderr(self) -> str:
        text = os.pread(self._err, 4096, 0).decode(errors="replace").strip()
        return text.splitlines()[-1] if text else "(no stderr)"

    def close(self) -> None:
        os.close(self._null)
        os.close(self._err)


def become_subreaper() -> bool:
    """Adopt orphaned container processes so they can be reaped (pid 1 may not)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans() -> None:
    """Reap exited container processes adopted by this process; never blocks."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# --------------------------------------------------------------------------- rootfs and bundles


def build_rootfs(dest: Path, busybox: Path) -> None:
    """A busybox rootfs: /bin/busybox plus its applet symlinks, made inside a chroot."""
    for sub in ("bin", "dev", "etc", "proc", "sys", "tmp", "root"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    (dest / "bin" / "busybox").chmod(0o755)
    proc = subprocess.run(
        ["chroot", str(dest), "/bin/busybox", "--install", "-s", "/bin"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not (dest / "bin" / "true").is_symlink():
        raise BenchError(f"busybox --install in chroot failed: {proc.stderr.strip()}")


def default_spec(workdir: Path) -> dict[str, Any]:
    """config.json from ``runc spec`` (crun or cove-runtime if runc is absent)."""
    specdir = workdir / "spec"
    specdir.mkdir()
    for tool in ("runc", "crun", "cove-runtime"):
        path = shutil.which(tool)
        if path is None:
            continue
        proc = subprocess.run([path, "spec"], cwd=specdir, capture_output=True, text=True)
        if proc.returncode == 0 and (specdir / "config.json").exists():
            spec: dict[str, Any] = json.loads((specdir / "config.json").read_text())
            return spec
    raise BenchError("no runtime could produce a default spec (`runc spec`)")


def load_seccomp_profile() -> dict[str, Any]:
    """``default_profile()`` of tests/lib/seccomp_profiles.py, loaded from its file.

    Loaded by path rather than imported as ``tests.lib.seccomp_profiles`` from the
    repository root: a stray top-level ``tests`` package elsewhere on the path
    (some packages install one) cannot shadow it.
    """
    spec = importlib.util.spec_from_file_location("cove_bench_seccomp", SECCOMP_PROFILES)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot load {SECCOMP_PROFILES}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        profile: dict[str, Any] = module.default_profile()
    except (OSError, AttributeError, AssertionError, SyntaxError) as exc:
        raise BenchError(f"{SECCOMP_PROFILES}: {exc!r}") from exc
    return profile


def scenario_config(
    spec: dict[str, Any], variant: str, seccomp: dict[str, Any] | None
) -> dict[str, Any]:
    """config.json of one bundle variant: plain, limits or seccomp."""
    config: dict[str, Any] = json.loads(json.dumps(spec))
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    config["root"]["path"] = "rootfs"
    linux = config.setdefault("linux", {})
    if variant == "limits":
        resources = linux.setdefault("resources", {})
        resources.update(json.loads(json.dumps(LIMITS_RESOURCES)))
    elif variant == "seccomp":
        if seccomp is None:
            raise BenchError("no seccomp profile")
        linux["seccomp"] = json.loads(json.dumps(seccomp))
    return config


def make_bundle(bundle: Path, rootfs: Path, config: dict[str, Any]) -> None:
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True)
    (bundle / "config.json").write_text(json.dumps(config, indent=2))


# --------------------------------------------------------------------------- runtimes


@dataclass
class Runtime:
    name: str
    label: str
    binary: str | None
    prefix: list[str] = field(default_factory=list)
    wrapped: bool = False
    version: str = ""
    state_root: Path = Path()
    # Bundle directory per variant (see BUNDLE_OF).
    bundles: dict[str, Path] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)

    def bundle(self, scenario: str) -> Path:
        return self.bundles[BUNDLE_OF[scenario]]

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, "--root", str(self.state_root), *args]


def find_cove(explicit: str | None) -> str | None:
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    if os.access(DEFAULT_COVE, os.X_OK):
        return str(DEFAULT_COVE)
    return shutil.which("cove-runtime")


def hybrid_cgroups() -> bool:
    return os.path.ismount(UNIFIED_MOUNT)


def wrapper_prefix(program: str) -> list[str]:
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    sh = shutil.which("sh") or "/bin/sh"
    return [unshare, "--mount", "--propagation", "private", sh, "-c", WRAPPER_SCRIPT, program]


def make_runtime(name: str, cove_path: str | None, workdir: Path) -> Runtime:
    binary = cove_path if name == "cove" else shutil.which(name)
    label = "cove-runtime" if name == "cove" else name
    rt = Runtime(name=name, label=label, binary=binary)
    if binary is None:
        return rt
    rt.version = first_line([binary, "--version"])
    if name == "crun" and hybrid_cgroups():
        rt.prefix, rt.wrapped = wrapper_prefix(binary), True
    else:
        rt.prefix = [binary]
    rt.state_root = workdir / f"state-{name}"
    rt.state_root.mkdir()
    return rt


def force_delete(rt: Runtime, cid: str) -> None:
    try:
        subprocess.run(
            rt.argv("delete", "--force", cid),
            capture_output=True,
            timeout=STATE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        pass
    reap_orphans()


def call(spawner: Spawner, rt: Runtime, cid: str, *args: str) -> int:
    """One timed runtime call; on failure the container is force-deleted."""
    elapsed, code = spawner.timed(rt.argv(*args))
    if code != 0:
        message = spawner.last_stderr()
        force_delete(rt, cid)
        rt.pending.discard(cid)
        raise BenchError(f"`{args[0]}` exited {code}: {message}")
    return elapsed


def wait_stopped(rt: Runtime, cid: str) -> None:
    """Poll ``state`` until the container is stopped (not timed)."""
    deadline = time.monotonic() + STATE_TIMEOUT_S
    while True:
        reap_orphans()
        proc = subprocess.run(
            rt.argv("state", cid),
            capture_output=True,
            text=True,
            timeout=STATE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise BenchError(f"`state` exited {proc.returncode}: {proc.stderr.strip()}")
        try:
            status = json.loads(proc.stdout).get("status")
        except json.JSONDecodeError as exc:
            raise BenchError(f"`state` printed invalid JSON: {exc}") from exc
        if status == "stopped":
            return
        if time.monotonic() > deadline:
            raise BenchError(f"container still {status!r} after {STATE_TIMEOUT_S:.0f}s")
        time.sleep(0.001)


def run_once(spawner: Spawner, rt: Runtime, cid: str, bundle: Path) -> dict[str, int]:
    rt.pending.add(cid)
    elapsed = call(spawner, rt, cid, "run", "--bundle", str(bundle), cid)
    rt.pending.discard(cid)
    return {"run": elapsed}


def lifecycle_once(spawner: Spawner, rt: Runtime, cid: str, bundle: Path) -> dict[str, int]:
    rt.pending.add(cid)
    phases = {"create": call(spawner, rt, cid, "create", "--bundle", str(bundle), cid)}
    phases["start"] = call(spawner, rt, cid, "start", cid)
    try:
        wait_stopped(rt, cid)
    except (BenchError, OSError, subprocess.TimeoutExpired) as exc:
        force_delete(rt, cid)
        rt.pending.discard(cid)
        raise BenchError(str(exc)) from exc
    phases["delete"] = call(spawner, rt, cid, "delete", cid)
    rt.pending.discard(cid)
    return phases


# --------------------------------------------------------------------------- checks

# Run once, untimed, in the limits and seccomp bundles' rootfs: the container prints the
# cgroup files it can see (v1 below the controller's mount, v2 in the unified tree;
# first at the path /proc/self/cgroup gives, then at the mount's root, which is the
# container's cgroup when the runtime bind-mounts it) and its seccomp state.
CHECK_SCRIPT = r"""
cg() {
  p=$(awk -F: -v c="$1" '$2 == c || ("," $2 ",") ~ ("," c ",") { print $3; exit }' \
    /proc/self/cgroup)
  for f in "/sys/fs/cgroup/$1$p/$2" "/sys/fs/cgroup/$1/$2"; do
    if [ -r "$f" ]; then echo "$2 $(cat "$f")"; return; fi
  done
}
cg memory memory.limit_in_bytes; cg memory memory.memsw.limit_in_bytes
cg cpu cpu.cfs_quota_us; cg pids pids.max
cg "" memory.max; cg "" memory.swap.max; cg "" cpu.max; cg "" pids.max
grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status
"""

# Each setting with the values that show it applied: cgroup v1 file, then v2 file.
CHECK_EXPECT: dict[str, dict[str, list[tuple[str, str]]]] = {
    "limits": {
        "memory": [
            ("memory.limit_in_bytes", str(256 * MIB)),
            ("memory.max", str(256 * MIB)),
        ],
        # v2 takes memory+swap = memory as no swap at all.
        "swap": [("memory.memsw.limit_in_bytes", str(256 * MIB)), ("memory.swap.max", "0")],
        "cpu": [("cpu.cfs_quota_us", "50000"), ("cpu.max", "50000 100000")],
        "pids": [("pids.max", "100")],
    },
    "seccomp": {
        "seccomp filter": [("Seccomp:", "2")],
        "no_new_privs": [("NoNewPrivs:", "1")],
    },
}


def parse_check(output: str) -> dict[str, list[str]]:
    """Every value the check script printed for each key (a v2 key can repeat)."""
    seen: dict[str, list[str]] = {}
    for line in output.splitlines():
        fields = line.split(None, 1)
        if fields:
            seen.setdefault(fields[0], []).append(fields[1].strip() if len(fields) > 1 else "")
    return seen


def check_applied(rt: Runtime, scenario: str, config: dict[str, Any], workdir: Path) -> str:
    """'ok', or which setting the container did not see, or why the check failed."""
    bundle = workdir / f"check-{scenario}-{rt.name}"
    bundle.mkdir()
    checked = json.loads(json.dumps(config))
    checked["process"]["args"] = ["/bin/sh", "-c", CHECK_SCRIPT]
    checked["root"]["path"] = str(rt.bundle(scenario) / "rootfs")
    (bundle / "config.json").write_text(json.dumps(checked, indent=2))
    cid = f"bench-check-{scenario}-{rt.name}-{os.getpid()}"
    rt.pending.add(cid)
    try:
        proc = subprocess.run(
            rt.argv("run", "--bundle", str(bundle), cid),
            capture_output=True,
            text=True,
            timeout=STATE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        force_delete(rt, cid)
        return f"check failed: {exc}"
    finally:
        rt.pending.discard(cid)
        reap_orphans()
    if proc.returncode != 0:
        force_delete(rt, cid)
        lines = proc.stderr.strip().splitlines()
        return f"check failed: exit {proc.returncode}: {lines[-1] if lines else ''}"
    seen = parse_check(proc.stdout)
    missing = []
    for setting, accepted in CHECK_EXPECT[scenario].items():
        if not any(value in seen.get(key, []) for key, value in accepted):
            found = [f"{key} {v}" for key, _ in accepted for v in seen.get(key, [])]
            missing.append(f"{setting} ({', '.join(found) or 'not visible'})")
    return "ok" if not missing else "not applied: " + "; ".join(missing)


# --------------------------------------------------------------------------- measuring


@dataclass
class Series:
    """Samples of one probe: total ns per sample plus per-phase ns."""

    name: str
    once: Callable[[int], dict[str, int]]
    totals: list[int] = field(default_factory=list)
    phases: dict[str, list[int]] = field(default_factory=dict)
    error: str | None = None


def measure(series: list[Series], runs: int, warmup: int, title: str) -> None:
    """Interleaved rounds: every live probe once per round; warm-up rounds are dropped."""
    total_rounds = warmup + runs
    gc.disable()
    try:
        for i in range(total_rounds):
            for s in series:
                if s.error is not None:
                    continue
                try:
                    phases = s.once(i)
                except (BenchError, OSError) as exc:
                    s.error = str(exc)
                    print(f"\n  {s.name}: failed: {exc}", file=sys.stderr)
                    continue
                if i >= warmup:
                    s.totals.append(sum(phases.values()))
                    for key, value in phases.items():
                        s.phases.setdefault(key, []).append(value)
            print(f"\r  {title}: round {i + 1}/{total_rounds}", end="", file=sys.stderr)
    finally:
        gc.enable()
        print(file=sys.stderr)
