"""A git repository served by `git daemon` on 127.0.0.1, for builds from git contexts."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
         "-c", "init.defaultBranch=main", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def served_repo(served: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """git://127.0.0.1:PORT/app: v1 (tag), then main with a sub/ folder, and a `next`
    branch; yields the URL and the commits by name. The daemon is stopped by its pid."""
    work = served / "app"
    work.mkdir(parents=True)
    git(work, "init", "-q")
    (work / "Dockerfile").write_text("FROM bb:1\nCOPY version /version\n")
    (work / "version").write_text("one\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "one")
    git(work, "tag", "v1")
    commits = {"one": git(work, "rev-parse", "HEAD")}
    (work / "version").write_text("two\n")
    (work / "sub").mkdir()
    (work / "sub" / "Dockerfile").write_text("FROM bb:1\nCOPY here /here\n")
    (work / "sub" / "here").write_text("from sub\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "two")
    commits["two"] = git(work, "rev-parse", "HEAD")
    git(work, "checkout", "-qb", "next")
    (work / "version").write_text("next\n")
    git(work, "commit", "-qam", "next")
    git(work, "checkout", "-q", "main")
    port = free_port()
    daemon = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={served}",
         "--listen=127.0.0.1", f"--port={port}", str(served)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/app", commits
    finally:
        daemon.terminate()
        daemon.wait(10)
