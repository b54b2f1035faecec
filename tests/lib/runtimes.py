"""Drivers for runc-compatible OCI runtimes (cove-runtime, runc, crun).

A `Runtime` wraps one binary with a private `--root` state directory. Every
subcommand method returns a `Result` (a `subprocess.CompletedProcess[str]`
with helpers); nothing raises on a non-zero exit, so error cases are tested
the same way as successes. `cleanup()` force-deletes every container the
driver touched and reports anything left behind.

stdout/stderr are captured through temporary files, not pipes: a detached or
created container inherits the runtime's stdio, and a pipe it holds open would
block the caller until the container exits.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

from .bundle import Bundle, new_container_id

DEFAULT_TIMEOUT = 30.0
RUNTIME_NAMES = ("cove", "runc", "crun")
COVE_FALLBACK = "/opt/cove/venv/bin/cove-runtime"


class RuntimeTimeout(AssertionError):
    """A runtime command did not finish in time (it has been killed)."""


class Result(subprocess.CompletedProcess[str]):
    """A finished runtime command."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"output is not JSON ({exc}):\n{self.describe()}") from None

    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def check(self) -> Result:
        """Return self if the command succeeded, else fail the test with all details."""
        if self.returncode != 0:
            raise AssertionError(f"command failed:\n{self.describe()}")
        return self

    def describe(self) -> str:
        argv = " ".join(str(a) for a in self.args)
        return (
            f"$ {argv}\nexit status: {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    def __str__(self) -> str:
        return self.describe()


BundleArg = Bundle | str | os.PathLike[str]


def _bundle_path(bundle: BundleArg) -> str:
    if isinstance(bundle, Bundle):
        bundle.save_if_dirty()
        return str(bundle.path)
    return os.fspath(bundle)


def _read(f: IO[bytes]) -> str:
    f.flush()
    f.seek(0)
    return f.read().decode(errors="replace")


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, to tell a process from a later one reusing its pid."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[19])


def process_state(pid: int) -> str | None:
    """The one-letter state of PID (R, S, Z, ...), or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()[0]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@dataclass
class _Tracked:
    pid: int | None = None
    start_time: int | None = None


class Runtime:
    """One runtime binary with its own state directory.

    `argv` is the command prefix (e.g. `["/usr/sbin/runc"]`, or a wrapper that
    ends by exec'ing the runtime); `root` becomes `--root ROOT`.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        root: Path,
        timeout: float = DEFAULT_TIMEOUT,
        watch: Sequence[Path] = (),
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.root = root
        self.timeout = timeout
        # directories (e.g. the test's tmp_path) where no host mount may be left behind
        self.watch = [root, *watch]
        # how long cleanup() lets a container's init take to die after delete --force
        self.exit_grace = 5.0
        self.root.mkdir(parents=True, exist_ok=True)
        self._tracked: dict[str, _Tracked] = {}

    def __repr__(self) -> str:
        return f"Runtime({self.name!r}, root={str(self.root)!r})"

    # -- plumbing --------------------------------------------------------
    def command(self, *args: str | os.PathLike[str]) -> list[str]:
        """The full argv for `runtime --root ROOT ARGS...`."""
        return [*self.argv, "--root", str(self.root), *(os.fspath(a) for a in args)]

    def call(
        self,
        *args: str | os.PathLike[str],
        timeout: float | None = None,
        input: str | None = None,
        stdin: int | IO[Any] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> Result:
        """Run `runtime --root ROOT ARGS...` to completion and capture its output."""
        argv = self.command(*args)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                argv,
                stdin=(
                    subprocess.PIPE
                    if input is not None
                    else (subprocess.DEVNULL if stdin is None else stdin)
                ),
                stdout=out,
                stderr=err,
                env=env,
                cwd=cwd,
                pass_fds=tuple(pass_fds),
                start_new_session=True,
            )
            try:
                if input is not None:
                    assert proc.stdin is not None
                    with contextlib.suppress(BrokenPipeError):
                        proc.stdin.write(input.encode())
                    proc.stdin.close()
                rc = proc.wait(timeout=self.timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuntimeTimeout(
                    f"{self.name}: timed out: {' '.join(argv)}\n"
                    f"--- stdout ---\n{_read(out)}\n--- stderr ---\n{_read(err)}"
                ) from None
            return Result(argv, rc, _read(out), _read(err))

    def popen(
        self,
        *args: str | os.PathLike[str],
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
        stdin: int | IO[Any] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> subprocess.Popen[bytes]:
        """Start `runtime --root ROOT ARGS...` without waiting (e.g. a foreground `run`)."""
        return subprocess.Popen(
            self.command(*args),
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=tuple(pass_fds),
            start_new_session=True,
        )

    def run_background(
        self,
        bundle: BundleArg,
        container_id: str,
        *extra: str,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
        stdin: int | IO[Any] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> subprocess.Popen[bytes]:
        """Start a foreground `run --bundle B EXTRA... ID` and return without waiting."""
        self.track(container_id)
        return self.popen(
            "run",
            "--bundle",
            _bundle_path(bundle),
            *extra,
            container_id,
            stdout=stdout,
            stderr=stderr,
            stdin=stdin,
            pass_fds=pass_fds,
        )

    def track(self, container_id: str) -> None:
        """Remember an id so that cleanup() deletes it (done by run/create automatically)."""
        self._tracked.setdefault(container_id, _Tracked())

    def new_id(self, prefix: str = "ct") -> str:
        return new_container_id(prefix)

    # -- subcommands -----------------------------------------------------
    def run(self, bundle: BundleArg, container_id: str, *extra: str, **kw: Any) -> Result:
        """`run --bundle B EXTRA... ID` (add "--detach" etc. through `extra`)."""
        self.track(container_id)
        res = self.call("run", "--bundle", _bundle_path(bundle), *extra, container_id, **kw)
        if res.ok and ("--detach" in extra or "-d" in extra):
            self._remember_pid(container_id)
        return res

    def create(self, bundle: BundleArg, container_id: str, *extra: str, **kw: Any) -> Result:
        """`create --bundle B EXTRA... ID`."""
        self.track(container_id)
        res = self.call("create", "--bundle", _bundle_path(bundle), *extra, container_id, **kw)
        if res.ok:
            self._remember_pid(container_id)
        return res

    def start(self, container_id: str, **kw: Any) -> Result:
        return self.call("start", container_id, **kw)

    def state(self, container_id: str, **kw: Any) -> Result:
        """`state ID`; use `.json()` on the result, or `state_json()`."""
        return self.call("state", container_id, **kw)

    def state_json(self, container_id: str) -> dict[str, Any]:
        """The parsed state of a container that must exist."""
        data = self.state(container_id).check().json()
        assert isinstance(data, dict), data
        return data

    def status(self, container_id: str) -> str | None:
        """The "status" field, or None when `state` fails (e.g. deleted)."""
        res = self.state(container_id)
        if not res.ok:
            return None
        return str(res.json().get("status"))

    def wait_status(self, container_id: str, wanted: str, timeout: float = 10.0) -> str | None:
        """Poll until the container reaches status `wanted`; return the last status seen."""
        last: list[str | None] = [None]

        def reached() -> bool:
            last[0] = self.status(container_id)
            return last[0] == wanted

        wait_for(reached, timeout=timeout, interval=0.05)
        return last[0]

    def kill(
        self, container_id: str, sig: str | int | None = None, *extra: str, **kw: Any
    ) -> Result:
        """`kill EXTRA... ID [SIGNAL]` (e.g. extra=("--all",))."""
        args: list[str] = ["kill", *extra, container_id]
        if sig is not None:
            args.append(str(sig))
        return self.call(*args, **kw)

    def delete(self, container_id: str, force: bool = False, **kw: Any) -> Result:
        args = ["delete", *(["--force"] if force else []), container_id]
        return self.call(*args, **kw)

    def exec(
        self,
        container_id: str,
        *command: str,
        options: Sequence[str] = (),
        **kw: Any,
    ) -> Result:
        """`exec OPTIONS... ID COMMAND...` (e.g. options=("--env", "A=b", "--cwd", "/tmp"))."""
        return self.call("exec", *options, container_id, *command, **kw)

    def list(self, *extra: str, **kw: Any) -> Result:
        return self.call("list", *extra, **kw)

    def list_json(self) -> builtins.list[dict[str, Any]]:
        """`list --format json`, with runc's `null` for "no containers" read as []."""
        data = self.list("--format", "json").check().json()
        return list(data or [])

    def ps(self, container_id: str, *extra: str, **kw: Any) -> Result:
        """`ps EXTRA... ID` (e.g. extra=("--format", "json"))."""
        return self.call("ps", *extra, container_id, **kw)

    def spec(self, *extra: str, **kw: Any) -> Result:
        """`spec EXTRA...`; pass cwd= or ("--bundle", DIR) to choose where config.json goes."""
        return self.call("spec", *extra, **kw)

    # -- teardown --------------------------------------------------------
    def _remember_pid(self, container_id: str) -> None:
        res = self.state(container_id)
        if not res.ok:
            return
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            pid = int(res.json().get("pid") or 0)
            if pid > 0:
                self._tracked[container_id] = _Tracked(pid, process_start_time(pid))

    def _gone(self, tracked: _Tracked) -> bool:
        return not self._still_alive(tracked)

    def _still_alive(self, tracked: _Tracked) -> bool:
        if tracked.pid is None:
            return False
        state = process_state(tracked.pid)
        if state is None or state in ("Z", "X"):
            return False
        return process_start_time(tracked.pid) == tracked.start_time

    def _listed(self) -> dict[str, int | None] | None:
        """{id: pid} from `list --format json`, or None if listing does not work."""
        try:
            res = self.list("--format", "json")
        except RuntimeTimeout:
            return None
        if not res.ok:
            return None
        try:
            entries = json.loads(res.stdout) or []
            return {str(e["id"]): (int(e["pid"]) if e.get("pid") else None) for e in entries}
        except (ValueError, TypeError, KeyError):
            return None

    def cleanup(self) -> builtins.list[str]:
        """Force-delete everything this driver created; return a list of leak reports.

        Checks: every tracked id is gone from `list`/`state`, no directory (or
        entry named after a tracked id) remains under --root, no container init
        outlives `delete --force`, no cgroup named after a tracked id remains.
        Leaked processes and empty leaked cgroup directories are removed (by
        pid / by exact path) after being reported.
        """
        problems: builtins.list[str] = []
        if not self._tracked:
            return problems
        listed = self._listed()
        for cid, tracked in self._tracked.items():
            if listed is not None and tracked.pid is None and listed.get(cid):
                tracked.pid = listed[cid]
                tracked.start_time = process_start_time(tracked.pid or 0)
            present = listed is None or cid in listed or (self.root / cid).exists()
            if not present:
                continue
            try:
                self.delete(cid, force=True)
            except RuntimeTimeout as exc:
                problems.append(f"delete --force {cid} timed out: {exc}")
        after = self._listed()
        for cid in self._tracked:
            if (after is not None and cid in after) or (after is None and self.state(cid).ok):
                problems.append(f"container {cid} still known after delete --force")
        for cid, tracked in self._tracked.items():
            if tracked.pid is None:
                continue
            if not wait_for(partial(self._gone, tracked), timeout=self.exit_grace):
                problems.append(f"container {cid}: process {tracked.pid} survived delete --force")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(tracked.pid, signal.SIGKILL)
                wait_for(partial(self._gone, tracked), timeout=5.0)
        if self.root.exists():
            leftovers = sorted(
                p.name
                for p in self.root.iterdir()
                if p.is_dir() or any(cid in p.name for cid in self._tracked)
            )
            if leftovers:
                problems.append(f"state left under {self.root}: {leftovers}")
        for cid in self._tracked:
            for path in leaked_cgroups(cid):
                problems.append(f"cgroup left behind: {path}")
                # A killed task may linger as a zombie until PID 1 reaps it (1-2 s on these
                # machines), keeping the cgroup busy: retry the removal for a while.
                wait_for(partial(_try_rmdir, path), timeout=5.0, interval=0.05)
        leaked_mounts: builtins.list[str] = []
        for base in self.watch:
            leaked_mounts += [m for m in mounts_under(base) if m not in leaked_mounts]
        for mnt in reversed(leaked_mounts):
            problems.append(f"mount left in the host namespace: {mnt}")
            subprocess.run(["umount", "--lazy", mnt], check=False, capture_output=True)
        return problems


# -- host mount leak detection -----------------------------------------------
def _unescape_mount_field(field: str) -> str:
    """/proc/self/mountinfo escapes space, tab, newline and backslash as octal."""
    out: list[str] = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(path: Path) -> list[str]:
    """Mount points of this mount namespace at or below `path`, in mount order."""
    base = os.path.realpath(path)
    found: list[str] = []
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return found
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        mnt = _unescape_mount_field(fields[4])
        if mnt == base or mnt.startswith(base.rstrip("/") + "/"):
            found.append(mnt)
    return found


def _try_rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


# -- cgroup leak detection ---------------------------------------------------
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_cgroup_dirs() -> list[Path]:
    """Directories of this process's cgroups in every mounted hierarchy."""
    dirs: list[Path] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return dirs
    mounts = cgroup_mounts()
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        for mnt, opts in mounts:
            if controllers == "" and opts == "cgroup2":
                dirs.append(mnt / rel.lstrip("/"))
            elif controllers and set(controllers.split(",")) <= opts_set(opts):
                dirs.append(mnt / rel.lstrip("/"))
    return dirs


def opts_set(opts: str) -> set[str]:
    return set(opts.split(","))


def cgroup_mounts() -> list[tuple[Path, str]]:
    """(mount point, "cgroup2" or the v1 mount options) for each cgroup mount."""
    found: list[tuple[Path, str]] = []
    try:
        text = Path("/proc/self/mounts").read_text()
    except OSError:
        return found
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        if fields[2] == "cgroup2":
            found.append((Path(fields[1]), "cgroup2"))
        elif fields[2] == "cgroup":
            found.append((Path(fields[1]), fields[3]))
    return found


def leaked_cgroups(container_id: str) -> list[Path]:
    """Cgroup directories named after `container_id` in the usual places."""
    bases: set[Path] = {mnt for mnt, _ in cgroup_mounts()}
    bases.update(_own_cgroup_dirs())
    return sorted(p for base in bases if (p := base / container_id).is_dir())


# -- locating binaries -------------------------------------------------------
def is_cgroup_hybrid() -> bool:
    """cgroup v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified."""
    mounts = cgroup_mounts()
    has_v1 = any(opts != "cgroup2" for _, opts in mounts)
    unified = CGROUP_ROOT / "unified"
    return has_v1 and any(mnt == unified and opts == "cgroup2" for mnt, opts in mounts)


def find_binary(name: str) -> str | None:
    """Locate a runtime; $COVE_RUNTIME, $RUNC or $CRUN override the search."""
    override = os.environ.get({"cove": "COVE_RUNTIME"}.get(name, name.upper()))
    if override:
        return shutil.which(override)
    candidates: Iterable[str]
    if name == "cove":
        beside_python = str(Path(sys.executable).parent / "cove-runtime")
        candidates = ("cove-runtime", beside_python, COVE_FALLBACK)
    elif name == "runc":
        candidates = ("runc", "/usr/sbin/runc", "/usr/bin/runc")
    elif name == "crun":
        candidates = ("crun", "/usr/bin/crun")
    else:
        candidates = (name,)
    for cand in candidates:
        found = shutil.which(cand)
        if found:
            return found
    return None


def runtime_argv(name: str) -> tuple[list[str] | None, str]:
    """The command prefix for runtime `name`, or (None, why it is unavailable)."""
    binary = find_binary(name)
    if binary is None:
        var = {"cove": "COVE_RUNTIME"}.get(name, name.upper())
        if os.environ.get(var):
            return None, f"${var}={os.environ[var]} not found"
        what = f"cove-runtime (PATH or {COVE_FALLBACK})" if name == "cove" else name
        return None, f"{what} not installed"
    if name == "crun" and is_cgroup_hybrid():
        # crun refuses hybrid cgroups; hide the cgroup2 mount in a private mount namespace
        unshare = shutil.which("unshare")
        if unshare is None:
            return None, "crun needs unshare(1) on a hybrid cgroup host"
        script = f'umount {CGROUP_ROOT / "unified"} && exec "$0" "$@"'
        return [unshare, "--mount", "--propagation", "private", "sh", "-c", script, binary], ""
    return [binary], ""
