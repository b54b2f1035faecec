"""Helpers shared by the benchmarks (`runtime_bench.py`, `image_bench.py`, ...): statistics,
ratios and tables for the report, untimed helper commands, the busybox image tarball of
the engine benchmarks, and a local docker-registry.

Standard library only; the scripts import it from their own folder (`python bench/...`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REGISTRY = Path("/usr/bin/docker-registry")


class BenchError(Exception):
    """A runtime call, a tool or a set-up step failed; the message says which and why."""


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


def median(stats: dict[str, float] | None) -> float | None:
    return None if stats is None else stats["median"]


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


def table(title: str, rows: list[tuple[str, dict[str, float] | None, str | None]],
          mbytes: float | None = None) -> None:  # fmt: skip
    """rows: (label, stats, error); with ``mbytes`` a MB/s column (size / median)."""
    print(f"\n== {title}")
    header = f"{'tool':<40}{'median':>10}{'p90':>10}{'min':>10}"
    header += f"{'MB/s':>9}" if mbytes is not None else ""
    print(header + "   (ms)")
    print("-" * len(header))
    for label, st, error in rows:
        if st is None:
            print(f"{label:<40}{error or 'not measured'}")
            continue
        line = f"{label:<40}{st['median']:>10.1f}{st['p90']:>10.1f}{st['min']:>10.1f}"
        if mbytes is not None:
            line += f"{mbytes / (st['median'] / 1000):>9.1f}"
        print(line)


# --------------------------------------------------------------------------- processes


def run_checked(argv: Sequence[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """An untimed set-up or check command; BenchError with its stderr when it fails."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
            **kwargs,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{what}: {exc}") from exc
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise BenchError(f"{what}: exit {proc.returncode}: {lines[-1] if lines else ''}")
    return proc


def first_line(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if proc.returncode == 0 and lines else "unknown"


def remove_tree(path: Path) -> None:
    """Delete a fresh directory, unmounting anything a tool left mounted below it."""
    if not path.exists():
        return
    prefix = str(path) + "/"
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[1].startswith(prefix)]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def build_image_tar(workdir: Path, busybox: Path) -> Path:
    """A busybox rootfs as tools/build-busybox-rootfs.sh makes it, tarred."""
    rootfs = workdir / "rootfs"
    for sub in ("bin", "dev", "etc", "proc", "sys", "tmp", "root"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    (rootfs / "bin" / "busybox").chmod(0o755)

    def check(argv: list[str], what: str) -> None:
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BenchError(f"{what}: {exc}") from exc
        if proc.returncode != 0:
            raise BenchError(f"{what}: exit {proc.returncode}: {proc.stderr.strip()}")

    check(["chroot", str(rootfs), "/bin/busybox", "--install", "-s", "/bin"], "busybox --install")
    if not (rootfs / "bin" / "true").is_symlink():
        raise BenchError("busybox --install -s /bin made no applet links")
    (rootfs / "tmp").chmod(0o1777)
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (rootfs / "etc" / "group").write_text("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
    tarball = workdir / "rootfs.tar"
    check(["tar", "-cf", str(tarball), "-C", str(rootfs), "."], "tar -cf rootfs")
    shutil.rmtree(rootfs)
    return tarball


# --------------------------------------------------------------------------- registry


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Registry:
    """Debian's docker-registry on 127.0.0.1, with its own storage; stopped by PID."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = folder / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {folder / 'data'}\nhttp:\n  addr: {self.address}\n"
        )
        self.log_path = folder / "registry.log"
        self.log = open(self.log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [str(REGISTRY), "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise BenchError(f"docker-registry did not start: {self.log_path.read_text().strip()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def spawn_timed(
    argv: Sequence[str], env: dict[str, str], null_fd: int, err_fd: int
) -> tuple[int, int]:
    """Run ``argv`` (argv[0] absolute) with stdin/stdout on ``null_fd`` and stderr into
    ``err_fd`` (emptied first); returns (elapsed ns from spawn to reap, exit code)."""
    os.ftruncate(err_fd, 0)
    actions = [
        (os.POSIX_SPAWN_DUP2, null_fd, 0),
        (os.POSIX_SPAWN_DUP2, null_fd, 1),
        (os.POSIX_SPAWN_DUP2, err_fd, 2),
    ]
    start = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], list(argv), env, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    return time.perf_counter_ns() - start, os.waitstatus_to_exitcode(status)
