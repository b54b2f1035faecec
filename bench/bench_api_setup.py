"""Set-up for `api_bench.py`: the two engines as the Docker clients see them (`cove
serve` on a root of its own, a private dockerd from tests/lib/dockerd.py), the run's
context, importing the busybox image into both, and the clean-up.

Every process this module stops is stopped by its PID.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import BenchError, build_image_tar, remove_tree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.lib.dockerd
from tests.lib.dockerd import DockerdUnavailable, PrivateDockerd, start_dockerd

IMAGE = "bb:1"
CALL_TIMEOUT_S = 60.0


# --------------------------------------------------------------------------- engines


@dataclass
class Side:
    """One engine as the clients see it: a socket URL and the CLI's environment."""

    name: str
    url: str
    env: dict[str, str]
    version: str = ""
    error: str = ""
    client: Any = None


class CoveServer:
    """`cove --root ROOT serve -H unix://SOCKET`, its log in a file; stopped by PID."""

    def __init__(self, cove: str, root: Path, workdir: Path) -> None:
        self.cove = cove
        self.root = root
        self.socket = workdir / "cove.sock"
        self.log_path = workdir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, log_level: str = "info") -> None:
        self.stop()
        self.socket.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [self.cove, "--root", str(self.root), "serve", "-H", f"unix://{self.socket}",
                 "--log-level", log_level],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"cove serve did not start: {self.log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text.strip()[-1500:]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.cove, "--root", str(self.root), *args], capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip


def docker_env(url: str, config: Path) -> dict[str, str]:
    config.mkdir(exist_ok=True)
    return {**os.environ, "DOCKER_HOST": url, "DOCKER_CONFIG": str(config),
            "DOCKER_CLI_HINTS": "false"}  # fmt: skip


def docker(side: Side, *args: str) -> subprocess.CompletedProcess[str]:
    """An untimed docker CLI call; BenchError with its last stderr line when it fails."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=side.env,
                          timeout=CALL_TIMEOUT_S, stdin=subprocess.DEVNULL)  # fmt: skip
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise BenchError(f"{side.name}: docker {' '.join(args)}: exit {proc.returncode}: "
                         f"{lines[-1] if lines else ''}")  # fmt: skip
    return proc


# --------------------------------------------------------------------------- context


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    docker_cli: str
    serve: CoveServer | None = None
    dockerd: PrivateDockerd | None = None
    sides: list[Side] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=lambda: {"scenarios": {}})

    def problem(self, text: str) -> None:
        self.problems.append(text)
        print(f"  problem: {text}")

    def side(self, name: str) -> Side | None:
        return next((s for s in self.sides if s.name == name and not s.error), None)

    def turns(self, round_index: int) -> list[Side]:
        """The working engines, in an order that flips every round."""
        working = [s for s in self.sides if not s.error]
        return working if round_index % 2 == 0 else working[::-1]

    def check_empty(self, what: str) -> None:
        for side in self.sides:
            if side.error:
                continue
            left = docker(side, "ps", "-aq").stdout.split()
            if left:
                self.problem(f"{side.name}: {len(left)} containers left after {what}")
                docker(side, "rm", "-f", *left)


def setup(b: Bench, cove_path: str) -> None:
    tarball = build_image_tar(b.workdir, Path(b.args.busybox))
    root = b.workdir / "cove"
    server = CoveServer(cove_path, root, b.workdir)
    b.serve = server
    for argv in (["import", str(tarball), "busybox:latest"], ["tag", "busybox:latest", IMAGE]):
        res = server.cli(*argv)
        if res.returncode != 0:
            raise BenchError(f"cove {argv[0]}: {res.stderr.strip()}")
    server.start()
    url = f"unix://{server.socket}"
    b.sides.append(Side("cove", url, docker_env(url, b.workdir / "docker-config-cove")))

    archive = b.workdir / "busybox.tar"
    res = server.cli("save", "-o", str(archive), IMAGE)
    if res.returncode != 0:
        raise BenchError(f"cove save: {res.stderr.strip()}")
    try:
        b.dockerd = start_dockerd(b.workdir / "dockerd")
        url = b.dockerd.url
        dockerd = Side("dockerd", url, docker_env(url, b.workdir / "docker-config-dockerd"))
        b.sides.append(dockerd)
        docker(dockerd, "load", "-i", str(archive))
    except (DockerdUnavailable, BenchError) as exc:
        note = f"dockerd set-up failed, its columns are skipped: {exc}"
        b.sides.append(Side("dockerd", "", {}, error=note))
        b.problems.append(note)
    archive.unlink(missing_ok=True)
    for side in b.sides:
        if side.error:
            continue
        side.version = docker(side, "version", "--format", "{{.Server.Version}} "
                              "(API {{.Server.APIVersion}})").stdout.strip()  # fmt: skip
        docker(side, "run", "--rm", "--network", "none", IMAGE, "true")  # the probe


def teardown(b: Bench) -> list[str]:
    """Stop cove serve and remove its containers, stop dockerd (its helper removes its
    containers and state), delete the work folder."""
    problems: list[str] = []
    for side in b.sides:
        if side.client is not None:
            side.client.close()
    if b.serve is not None:
        try:
            b.serve.stop()
            left = b.serve.cli("ps", "-aq").stdout.split()
            if left:
                problems.append(f"cove: {len(left)} containers left, removed")
                b.serve.cli("rm", "-f", *left)
        except (OSError, subprocess.SubprocessError) as exc:
            problems.append(f"cove: {exc}")
    if b.dockerd is not None:
        problems += [f"dockerd: {text}" for text in b.dockerd.stop()]
    remove_tree(b.workdir)
    return problems
