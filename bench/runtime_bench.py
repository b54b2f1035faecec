#!/usr/bin/env python3
"""Start-up latency benchmark: cove-runtime against runc and crun.

Scenarios, each timed from spawning the runtime to reaping it:

* ``run``: ``<rt> --root <state> run --bundle <bundle> <id>`` of ``/bin/true``.
* ``lifecycle``: ``create`` + ``start`` + ``delete``; the wait for the container
  to stop (polling ``state``) happens between ``start`` and ``delete`` and is
  not counted.
* ``limits`` (``run+limits``): ``run`` with linux.resources setting memory (and
  swap) to 256 MiB, a CPU quota of 50000/100000 and a pids limit of 100.
* ``seccomp`` (``run+seccomp``): ``run`` with the Docker-like default profile of
  tests/lib/seccomp_profiles.py (noNewPrivileges stays true).

The runtimes are measured in interleaved rounds, so slow drift of the machine
affects all of them alike; ``run``, ``run+limits`` and ``run+seccomp`` share
their rounds, so the cost of the limits or of the filter is a difference of
figures taken side by side.  On a hybrid cgroup host crun is run through an
``unshare`` + ``sh`` wrapper that unmounts /sys/fs/cgroup/unified; the extra
cost of that wrapper is measured on its own (running ``true``) and subtracted.

Needs root.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


class BenchError(Exception):
    """A runtime call failed; the message says which and why."""


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Percentile with linear interpolation between closest ranks (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(samples_ns: Sequence[int], minus_ms: float = 0.0) -> dict[str, float]:
    """Median, p90, min and mean in milliseconds, each reduced by ``minus_ms``."""
    ms = [ns / 1e6 for ns in samples_ns]
    return {
        "median": percentile(ms, 50) - minus_ms,
        "p90": percentile(ms, 90) - minus_ms,
        "min": min(ms) - minus_ms,
        "mean": sum(ms) / len(ms) - minus_ms,
        "n": len(ms),
    }


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
        os.ftruncate(self._err, 0)
        actions = [
            (os.POSIX_SPAWN_DUP2, self._null, 0),
            (os.POSIX_SPAWN_DUP2, self._null, 1),
            (os.POSIX_SPAWN_DUP2, self._err, 2),
        ]
        start = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], list(argv), env or self.env, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        elapsed = time.perf_counter_ns() - start
        return elapsed, os.waitstatus_to_exitcode(status)

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


def first_line(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if proc.returncode == 0 and lines else "unknown"


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


# --------------------------------------------------------------------------- import time


def parse_importtime(stderr: str) -> list[tuple[str, int, int, int]]:
    """(module, self us, cumulative us, nesting level) for each ``-X importtime`` line."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # the header line
        name_field = parts[2][1:]
        level = (len(name_field) - len(name_field.lstrip(" "))) // 2
        rows.append((name_field.strip(), int(parts[0]), int(parts[1]), level))
    return rows


def hot_path_env(python: str, spawner: Spawner) -> tuple[dict[str, str] | None, str]:
    """Environment in which ``import cove.cli.runtime`` gives a real module."""
    check = f"import {HOT_MODULE} as m; assert m.__file__, 'namespace package only'"
    fallback = dict(spawner.env)
    src = str(REPO_ROOT / "src")
    fallback["PYTHONPATH"] = os.pathsep.join(p for p in (src, fallback.get("PYTHONPATH")) if p)
    message = ""
    for env, note in ((spawner.env, "venv"), (fallback, f"PYTHONPATH={src}")):
        proc = subprocess.run([python, "-c", check], capture_output=True, text=True, env=env)
        if proc.returncode == 0:
            return env, note
        lines = proc.stderr.strip().splitlines()
        message = lines[-1] if lines else f"exit {proc.returncode}"
    return None, message


def profile_imports(python: str, env: dict[str, str], runs: int, warmup: int) -> dict[str, Any]:
    """Median ``-X importtime`` figures of the hot-path import, startup imports excluded."""
    base = subprocess.run(
        [python, "-X", "importtime", "-c", "pass"], capture_output=True, text=True, env=env
    )
    startup = {row[0] for row in parse_importtime(base.stderr)}
    totals: list[int] = []
    per_module: dict[str, tuple[list[int], list[int]]] = {}
    for i in range(warmup + runs):
        proc = subprocess.run(
            [python, "-X", "importtime", "-c", HOT_IMPORT],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode != 0:
            raise BenchError(f"import failed: {proc.stderr.strip().splitlines()[-1:]}")
        if i < warmup:
            continue
        rows = [row for row in parse_importtime(proc.stderr) if row[0] not in startup]
        totals.append(sum(cum for _, _, cum, level in rows if level == 0))
        for name, self_us, cum_us, _ in rows:
            entry = per_module.setdefault(name, ([], []))
            entry[0].append(self_us)
            entry[1].append(cum_us)
    modules: list[dict[str, Any]] = [
        {"module": name, "self_us": percentile(s, 50), "cumulative_us": percentile(c, 50)}
        for name, (s, c) in per_module.items()
    ]
    modules.sort(key=lambda m: m["self_us"], reverse=True)
    return {
        "total_cumulative_us_median": percentile(totals, 50),
        "total_cumulative_us_min": min(totals),
        "module_count": len(modules),
        "startup_modules_excluded": len(startup),
        "modules": modules,
    }


def python_section(python: str, spawner: Spawner, runs: int, warmup: int) -> dict[str, Any]:
    print(f"\n== Python start-up and import of {HOT_MODULE} ({python})")
    result: dict[str, Any] = {"python": python, "version": first_line([python, "--version"])}
    env, note = hot_path_env(python, spawner)
    result["hot_path_importable"] = env is not None
    result["hot_path_note"] = note
    probes: list[tuple[str, list[str], dict[str, str] | None]] = [
        ("python -c pass", [python, "-c", "pass"], None),
        ("python -I -S -c pass", [python, "-I", "-S", "-c", "pass"], None),
    ]
    if env is not None:
        probes.append(("python -c '<run path imports>'", [python, "-c", HOT_IMPORT], env))

    def probe(argv: list[str], penv: dict[str, str] | None) -> Callable[[int], dict[str, int]]:
        def once(_: int) -> dict[str, int]:
            elapsed, code = spawner.timed(argv, penv)
            if code != 0:
                raise BenchError(f"exited {code}: {spawner.last_stderr()}")
            return {"total": elapsed}

        return once

    series = [Series(label, probe(argv, penv)) for label, argv, penv in probes]
    measure(series, runs, warmup, "python")
    result["wall"] = {
        s.name: {"error": s.error} if s.error else summarize(s.totals) for s in series
    }
    print(f"{'command':<44}{'median ms':>10}{'p90 ms':>9}{'min ms':>9}")
    for s in series:
        if s.error:
            print(f"{s.name:<44}failed: {s.error}")
            continue
        st = summarize(s.totals)
        print(f"{s.name:<44}{st['median']:>10.2f}{st['p90']:>9.2f}{st['min']:>9.2f}")

    if env is None:
        print(f"{HOT_MODULE}: not importable ({note}); import-time profile skipped")
        return result
    if note != "venv":
        print(f"note: {HOT_MODULE} is not installed in the venv; imported with {note}")
    try:
        prof = profile_imports(python, env, runs, warmup)
    except BenchError as exc:
        print(f"import-time profile failed: {exc}")
        result["importtime_error"] = str(exc)
        return result
    result["importtime"] = prof
    print(
        f"\n-X importtime, {HOT_IMPORT}: total cumulative "
        f"{prof['total_cumulative_us_median']:.0f} us median "
        f"(min {prof['total_cumulative_us_min']}) over {runs} runs, "
        f"{prof['module_count']} modules beyond the {prof['startup_modules_excluded']} "
        "imported at interpreter start-up"
    )
    print(f"top 10 modules by self time:\n{'module':<44}{'self us':>10}{'cumul. us':>11}")
    for mod in prof["modules"][:10]:
        print(f"{mod['module']:<44}{mod['self_us']:>10.0f}{mod['cumulative_us']:>11.0f}")
    return result


# --------------------------------------------------------------------------- report


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def difference(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None else value - base


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f} ms"


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "n/a"
    return "met" if value <= limit else "not met"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Start-up latency benchmark: cove-runtime against runc and crun."
    )
    parser.add_argument("--runs", type=int, default=30, help="measured runs (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up runs (default 3)")
    parser.add_argument(
        "--runtimes", default="cove,runc,crun", help="comma list from cove,runc,crun"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma list from {','.join(SCENARIOS)} (default all)",
    )
    parser.add_argument("--json", metavar="FILE", help="write all figures to FILE")
    parser.add_argument("--cove-runtime", metavar="PATH", help="cove-runtime binary to use")
    parser.add_argument(
        "--python",
        metavar="PATH",
        help=f"python for the import-time section (default {DEFAULT_PYTHON})",
    )
    parser.add_argument("--busybox", default="/bin/busybox", help="static busybox binary")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.runtimes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNTIME_NAMES]
    if unknown or not names:
        parser.error(f"--runtimes takes names from {','.join(RUNTIME_NAMES)}; got {unknown}")
    by_label = {label: name for name, label in SCENARIO_LABELS.items()}
    picked = [by_label.get(n.strip(), n.strip()) for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in picked if n not in SCENARIOS]
    if unknown or not picked:
        parser.error(f"--scenarios takes names from {','.join(SCENARIOS)}; got {unknown}")
    scenarios = [sc for sc in SCENARIOS if sc in picked]
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    if os.geteuid() != 0:
        print("runtime_bench: must run as root", file=sys.stderr)
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="cove-bench-"))
    spawner = Spawner(workdir)
    runtimes: list[Runtime] = []
    try:
        return bench(args, names, scenarios, workdir, spawner, runtimes)
    finally:
        for rt in runtimes:
            for cid in sorted(rt.pending):
                force_delete(rt, cid)
        reap_orphans()
        spawner.close()
        shutil.rmtree(workdir, ignore_errors=True)


def bench(
    args: argparse.Namespace,
    names: list[str],
    scenarios: list[str],
    workdir: Path,
    spawner: Spawner,
    runtimes: list[Runtime],
) -> int:
    subreaper = become_subreaper()
    runtimes.extend(make_runtime(n, find_cove(args.cove_runtime), workdir) for n in names)
    present = [rt for rt in runtimes if rt.binary]

    rootfs = workdir / "rootfs"
    build_rootfs(rootfs, Path(args.busybox))
    spec = default_spec(workdir)
    # A scenario that cannot be set up fails for every runtime, with this message.
    scenario_errors: dict[str, str] = {}
    seccomp: dict[str, Any] | None = None
    if "seccomp" in scenarios:
        try:
            seccomp = load_seccomp_profile()
        except BenchError as exc:
            scenario_errors["seccomp"] = str(exc)
    variants = sorted(
        {BUNDLE_OF[sc] for sc in scenarios if sc not in scenario_errors},
        key=list(BUNDLE_OF.values()).index,
    )
    configs = {v: scenario_config(spec, v, seccomp) for v in variants}
    for rt in present:
        for variant in variants:
            rt.bundles[variant] = workdir / f"bundle-{rt.name}-{variant}"
            make_bundle(rt.bundles[variant], rootfs, configs[variant])

    true_bin = shutil.which("true") or "/bin/true"
    crun = next((rt for rt in present if rt.wrapped), None)
    tag = f"{os.getpid()}-{time.time_ns() % 10**6}"

    labels = ", ".join(SCENARIO_LABELS[sc] for sc in scenarios)
    print(
        f"runtime benchmark: {args.runs} runs after {args.warmup} warm-up, "
        f"kernel {platform.release()}, {os.cpu_count()} CPUs, workdir {workdir}\n"
        f"  scenarios: {labels}"
    )
    for rt in runtimes:
        if rt.binary is None:
            print(f"  {rt.label}: not found")
        else:
            how = " (via unshare wrapper: hybrid cgroups)" if rt.wrapped else ""
            print(f"  {rt.label}: {rt.binary}, {rt.version}{how}")
    if "limits" in scenarios:
        print(f"  run+limits: linux.resources += {json.dumps(LIMITS_RESOURCES)}")
    if seccomp is not None:
        rules = seccomp["syscalls"]
        print(
            f"  run+seccomp: {SECCOMP_PROFILES.relative_to(REPO_ROOT)} default_profile(), "
            f"{sum(len(r['names']) for r in rules)} names in {len(rules)} rules, "
            f"default {seccomp['defaultAction']}, "
            f"noNewPrivileges {configs['seccomp']['process'].get('noNewPrivileges')}"
        )

    # Untimed: does each runtime apply the limits and the filter it is timed with?
    checks: dict[str, dict[str, str]] = {}
    for scenario in ("limits", "seccomp"):
        if scenario not in scenarios or scenario in scenario_errors or not present:
            continue
        checks[scenario] = {
            rt.name: check_applied(rt, scenario, configs[BUNDLE_OF[scenario]], workdir)
            for rt in present
        }
        cells = ", ".join(f"{name} {verdict}" for name, verdict in checks[scenario].items())
        print(f"  check {SCENARIO_LABELS[scenario]}, seen from inside: {cells}")

    # The series of each scenario, keyed by runtime name; reference probes separately.
    results: dict[str, dict[str, Series]] = {sc: {} for sc in scenarios}
    refs: dict[str, Series] = {}

    def reference(argv: list[str]) -> Callable[[int], dict[str, int]]:
        def once(_: int) -> dict[str, int]:
            elapsed, code = spawner.timed(argv)
            if code != 0:
                raise BenchError(f"exited {code}: {spawner.last_stderr()}")
            return {"total": elapsed}

        return once

    def per_runtime(
        rt: Runtime,
        scenario: str,
        fn: Callable[[Spawner, Runtime, str, Path], dict[str, int]],
    ) -> Callable[[int], dict[str, int]]:
        # The bundle is looked up per call: a scenario that failed to set up has none.
        return lambda i: fn(
            spawner, rt, f"bench-{scenario}-{rt.name}-{tag}-{i}", rt.bundle(scenario)
        )

    # Two blocks of interleaved rounds: the `run` scenarios together (every runtime in
    # every one of them per round), then lifecycle.  The reference probes join the first.
    blocks = [
        [sc for sc in RUN_SCENARIOS if sc in scenarios],
        [sc for sc in ("lifecycle",) if sc in scenarios],
    ]
    print(file=sys.stderr)
    for block in (b for b in blocks if b):
        series = []
        for scenario in block:
            fn = lifecycle_once if scenario == "lifecycle" else run_once
            for rt in present:
                probe = Series(
                    f"{rt.label} {SCENARIO_LABELS[scenario]}", per_runtime(rt, scenario, fn)
                )
                probe.error = scenario_errors.get(scenario)
                results[scenario][rt.name] = probe
                series.append(probe)
        if not refs:
            refs["spawn true"] = Series(f"spawn {true_bin}", reference([true_bin]))
            series.append(refs["spawn true"])
            if crun is not None:
                refs["wrapper true"] = Series(
                    f"crun wrapper running {true_bin}", reference(wrapper_prefix(true_bin))
                )
                series.append(refs["wrapper true"])
        title = ", ".join(SCENARIO_LABELS[sc] for sc in block)
        measure(series, args.runs, args.warmup, title)

    # Wrapper overhead per runtime call: wrapper(true) - plain spawn of true, medians.
    overhead_ms = 0.0
    spawn_ref = refs.get("spawn true")
    wrap_ref = refs.get("wrapper true")
    if crun is not None:
        if wrap_ref is None or wrap_ref.error or spawn_ref is None or spawn_ref.error:
            print("warning: wrapper overhead could not be measured; crun is not corrected")
        else:
            overhead_ms = (percentile(wrap_ref.totals, 50) - percentile(spawn_ref.totals, 50)) / 1e6

    report: dict[str, Any] = {
        "config": {
            "runs": args.runs,
            "warmup": args.warmup,
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "hybrid_cgroups": hybrid_cgroups(),
            "subreaper": subreaper,
            "timer": "time.perf_counter_ns around posix_spawn + waitpid",
            "scenarios": scenarios,
        },
        "scenarios": {
            sc: {
                "label": SCENARIO_LABELS[sc],
                "calls_per_sample": CALLS_PER_SAMPLE[sc],
                "measured_with": [x for b in blocks if sc in b for x in b],
                "error": scenario_errors.get(sc),
                "config_json": configs.get(BUNDLE_OF[sc]),
                "applied_check": checks.get(sc),
            }
            for sc in scenarios
        },
        "runtimes": {
            rt.name: {
                "binary": rt.binary,
                "version": rt.version,
                "wrapped": rt.wrapped,
                "status": "not found" if rt.binary is None else "ok",
            }
            for rt in runtimes
        },
        "wrapper_overhead_ms_per_call": overhead_ms,
        "results": {},
        "reference": {},
        "ratios": {},
        "cost_over_run_ms": {},
        "targets": {},
    }

    # ---- table
    print(f"\n== OCI runtime start-up, /bin/true ({args.runs} runs, ms)")
    header = f"{'runtime':<24}{'scenario':<13}{'median':>9}{'p90':>9}{'min':>9}"
    print(header)
    print("-" * len(header))
    medians: dict[str, dict[str, float | None]] = {sc: {} for sc in scenarios}
    any_ok = False
    for scenario in scenarios:
        label = SCENARIO_LABELS[scenario]
        for rt in runtimes:
            entry: dict[str, Any] = {"scenario": label}
            report["results"].setdefault(rt.name, {})[scenario] = entry
            medians[scenario][rt.name] = None
            s = results[scenario].get(rt.name)
            if rt.binary is None or s is None:
                print(f"{rt.label:<24}{label:<13}{rt.label}: not found")
                entry["status"] = "not found"
                continue
            if s.error is not None or not s.totals:
                print(f"{rt.label:<24}{label:<13}{rt.label}: failed: {s.error}")
                entry.update(status="failed", error=s.error)
                continue
            any_ok = True
            raw = summarize(s.totals)
            entry.update(
                status="ok",
                stats_ms=raw,
                samples_ms=[ns / 1e6 for ns in s.totals],
                phases_ms={k: summarize(v) for k, v in s.phases.items()},
            )
            rows = [(rt.label, raw)]
            if rt.wrapped:
                corrected = summarize(s.totals, overhead_ms * CALLS_PER_SAMPLE[scenario])
                entry["corrected_stats_ms"] = corrected
                rows = [(f"{rt.label} (raw)", raw), (f"{rt.label} (corrected)", corrected)]
            for row_label, st in rows:
                print(
                    f"{row_label:<24}{label:<13}"
                    f"{st['median']:>9.2f}{st['p90']:>9.2f}{st['min']:>9.2f}"
                )
            medians[scenario][rt.name] = rows[-1][1]["median"]
    print("-" * len(header))
    for ref in refs.values():
        if ref.error or not ref.totals:
            print(f"{ref.name}: failed: {ref.error}")
            continue
        st = summarize(ref.totals)
        report["reference"][ref.name] = st
        print(f"{ref.name:<37}{st['median']:>9.2f}{st['p90']:>9.2f}{st['min']:>9.2f}")
    if crun is not None:
        print(
            f"crun wrapper overhead per call: {overhead_ms:.2f} ms (median wrapper running "
            "true minus median plain true); corrected = raw - overhead x calls "
            "(lifecycle 3, the others 1)"
        )

    # ---- lifecycle phases
    phase_rows = [
        (rt, results["lifecycle"][rt.name])
        for rt in present
        if "lifecycle" in results
        and rt.name in results["lifecycle"]
        and results["lifecycle"][rt.name].totals
    ]
    if phase_rows:
        print(f"\nlifecycle phases, median ms{' (crun raw)' if crun else ''}:")
        print(f"{'runtime':<24}{'create':>9}{'start':>9}{'delete':>9}")
        for rt, s in phase_rows:
            cells = "".join(
                f"{percentile(s.phases[p], 50) / 1e6:>9.2f}" for p in ("create", "start", "delete")
            )
            print(f"{rt.label:<24}{cells}")

    # ---- ratios, cost of the limits and of the filter, targets
    print("\n== Ratios (median / median; crun = corrected)")
    for scenario in scenarios:
        label = SCENARIO_LABELS[scenario]
        cove = medians[scenario].get("cove")
        r_runc = ratio(cove, medians[scenario].get("runc"))
        r_crun = ratio(cove, medians[scenario].get("crun"))
        report["ratios"][scenario] = {"cove/runc": r_runc, "cove/crun": r_crun}
        print(f"{label:<13}cove/runc {fmt_ratio(r_runc):>7}   cove/crun {fmt_ratio(r_crun):>7}")
        if scenario in ("limits", "seccomp"):
            costs = {
                rt.name: difference(
                    medians[scenario].get(rt.name), medians.get("run", {}).get(rt.name)
                )
                for rt in runtimes
            }
            report["cost_over_run_ms"][scenario] = costs
            cells = ", ".join(f"{name} {fmt_ms(cost)}" for name, cost in costs.items())
            why = "" if "run" in scenarios else " (run not measured)"
            print(f"{'':<13}cost over plain run{why}: {cells}")
    run_ratios = report["ratios"].get("run", {})
    targets = [
        ("cove run median <= 0.8x runc", run_ratios.get("cove/runc"), TARGET_VS_RUNC),
        ("cove run median <= 2x crun", run_ratios.get("cove/crun"), TARGET_VS_CRUN),
    ]
    print("targets:")
    for target, value, limit in targets:
        report["targets"][target] = {
            "ratio": value,
            "limit": limit,
            "verdict": verdict(value, limit),
        }
        print(f"  {target:<32}{fmt_ratio(value):>8}  {verdict(value, limit)}")

    # ---- python start-up and import time
    python = args.python or (str(DEFAULT_PYTHON) if DEFAULT_PYTHON.exists() else sys.executable)
    report["python"] = python_section(python, spawner, args.runs, args.warmup)

    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    if not any_ok:
        print("runtime_bench: no runtime worked", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
