"""The build cache on disk: `cove system df` counts the folders of RUN --mount=type=cache,
`cove builder prune` removes those no build holds, `-a` the step cache too, and `cove
system prune` includes it (cove.engine.build_prune)."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.engine.build_support import (
    build,
    built,
    cove,
    engine,
    nothing_left,
    run_in,
    text,
    write_context,
)

pytestmark = pytest.mark.root
__all__ = ["engine"]  # the fixture

CACHED_RUN = """\
FROM bb:1
RUN --mount=type=cache,target=/cache \\
    sh -c 'dd if=/dev/zero of=/cache/blob bs=1k count=64 2>/dev/null; ls /cache | wc -l > /n'
"""


def cache_folders(root: Path) -> list[str]:
    base = root / "build" / "cache-mounts"
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []


def df_build_cache_row(root: Path) -> list[str]:
    res = cove(root, "system", "df")
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if line.startswith("Build Cache"))
    return row.split()[2:]  # TOTAL ACTIVE SIZE RECLAIMABLE


def test_df_counts_cache_mounts_and_prune_removes_them(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": CACHED_RUN})
    assert df_build_cache_row(engine) == ["0", "0", "0B", "0B"]
    built(engine, context)
    folders = cache_folders(engine)
    assert len(folders) == 1
    total, active, size, free = df_build_cache_row(engine)
    assert (total, active) == ("1", "0") and size == free and size.endswith("kB"), size
    verbose = cove(engine, "system", "df", "-v").stdout
    row = rf"^{folders[0][:12]}\s+exec.cachemount\s+6\d(\.\d)?kB\s.*\s1\s+false$"
    assert re.search(row, verbose, re.M), verbose  # used by one step

    pruned = cove(engine, "builder", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith(f"Deleted build cache objects:\n{folders[0]}\n")
    assert re.search(r"Total reclaimed space: 6\d(\.\d+)?kB", pruned.stdout), pruned.stdout
    assert cache_folders(engine) == []
    assert df_build_cache_row(engine) == ["0", "0", "0B", "0B"]
    again = cove(engine, "builder", "prune", "-f")
    assert again.stdout == "Total reclaimed space: 0B\n"

    # the mount starts empty again; the steps stay cached without -a
    image, _ = built(engine, context, "--no-cache")
    assert run_in(engine, image, "cat", "/n").strip() == "1"
    nothing_left(engine)


def test_prune_all_forgets_the_steps_but_keeps_tagged_images(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": CACHED_RUN + "ENV DONE=1\n"})
    first, _ = built(engine, context, "-t", "pruned:1")
    _, progress = built(engine, context, "-t", "pruned:1")
    assert progress.count("--> Using cache") == 2
    every_before = set(cove(engine, "images", "-a", "-q", "--no-trunc").stdout.split())
    pruned = cove(engine, "builder", "prune", "-a", "-f")
    assert pruned.returncode == 0, pruned.stderr
    deleted = pruned.stdout.split("\n\n")[0].splitlines()[1:]
    removed_images = {line for line in deleted if line.startswith("sha256:")}
    assert removed_images and first not in removed_images  # the RUN step's image went
    every_after = set(cove(engine, "images", "-a", "-q", "--no-trunc").stdout.split())
    assert every_after == every_before - removed_images and first in every_after
    assert cache_folders(engine) == []
    _, progress = built(engine, context, "-t", "pruned:1")
    assert "Using cache" not in progress  # every step ran again
    nothing_left(engine)


def test_a_cache_mount_in_use_is_kept(engine: Path, tmp_path: Path) -> None:
    # The step waits until the test creates `go` in the context (bind-mounted live).
    context = write_context(tmp_path / "ctx", {"Dockerfile": (
        "FROM bb:1\n"
        "RUN --mount=type=cache,target=/cache --mount=type=bind,source=.,target=/ctx \\\n"
        "    sh -c 'touch /cache/x; i=0; while [ ! -e /ctx/go ] && [ $i -lt 900 ]; do \\\n"
        "           sleep 0.1; i=$((i+1)); done; test -e /ctx/go'\n"
    )})  # fmt: skip
    result: list[subprocess.CompletedProcess[bytes]] = []
    runner = threading.Thread(target=lambda: result.append(build(engine, context)))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and df_build_cache_row(engine)[:2] != ["1", "1"]:
            time.sleep(0.1)
        assert df_build_cache_row(engine)[:2] == ["1", "1"]  # in use while the step runs
        pruned = cove(engine, "builder", "prune", "-a", "-f")
        assert pruned.returncode == 0, pruned.stderr
        assert "Deleted build cache objects" not in pruned.stdout
        assert len(cache_folders(engine)) == 1
    finally:
        (context / "go").write_text("")
        runner.join(120)
    assert result and result[0].returncode == 0, text(result[0])[1]
    assert cove(engine, "builder", "prune", "-f").stdout.startswith("Deleted build cache")
    nothing_left(engine)


def test_system_prune_includes_the_build_cache(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": CACHED_RUN})
    built(engine, context, "-t", "kept:1")
    folders = cache_folders(engine)
    res = cove(engine, "system", "prune", "-f")
    assert res.returncode == 0, res.stderr
    assert f"Deleted build cache objects:\n{folders[0]}\n" in res.stdout
    assert cache_folders(engine) == []
    assert cove(engine, "image", "inspect", "kept:1").returncode == 0


def test_bad_builder_prune_arguments(engine: Path) -> None:
    for args, code, message in (
        (["--filter", "label=x"], 125, "invalid filter 'label'"),
        (["--filter", "until=yesterday"], 1, "until"),
        (["--keep-storage", "lots"], 1, "--keep-storage"),
    ):
        res = cove(engine, "builder", "prune", "-f", *args)
        assert (res.returncode, res.stdout) == (code, ""), (args, res.stderr)
        assert message in res.stderr, (args, res.stderr)


def test_system_check_repairs_what_a_killed_prune_left(engine: Path) -> None:
    import os

    base = engine / "build" / "cache-mounts"
    doomed = base / f".{'d' * 32}.0badcafe.pruning"
    (doomed / "deep").mkdir(parents=True)
    (doomed / "deep" / "file").write_text("half removed")
    orphan = base / f"{'e' * 32}.json"
    orphan.write_text("{}")
    partial = base / f"{'f' * 32}.12345678.partial"
    partial.mkdir()
    os.utime(partial, (time.time() - 3600, time.time() - 3600))
    found = cove(engine, "system", "check")
    assert found.stdout.count("build cache") == 3, found.stdout
    assert cove(engine, "system", "check", "--repair").returncode == 0
    assert list(base.iterdir()) == []
    assert cove(engine, "system", "check").stdout == "nothing to repair\n"


def test_a_cache_mount_from_a_stage_starts_as_its_copy(engine: Path, tmp_path: Path) -> None:
    dockerfile = """\
FROM bb:1 AS seed
RUN mkdir -p /deps && echo seeded > /deps/a && chown 7:8 /deps
FROM bb:1
RUN --mount=type=cache,target=/c,from=seed,source=/deps,id=seeded \\
    sh -c 'cat /c/a > /seen; stat -c %u:%g /c > /owner; echo more >> /c/a'
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    first, _ = built(engine, context)
    assert run_in(engine, first, "cat", "/seen", "/owner") == "seeded\n7:8\n"
    again, _ = built(engine, context, "--no-cache")  # the folder is kept, not seeded again
    assert run_in(engine, again, "cat", "/seen") == "seeded\nmore\n"
    missing = write_context(tmp_path / "missing", {"Dockerfile": (
        "FROM bb:1\nRUN --mount=type=cache,target=/c,from=bb:1,source=/nope,id=x true\n"
    )})  # fmt: skip
    res = build(engine, missing)
    assert res.returncode == 1 and "Dockerfile:2" in text(res)[1], text(res)[1]
    assert "no folder /nope in bb:1" in text(res)[1]
    assert [p for p in (engine / "build" / "cache-mounts").iterdir() if "partial" in p.name] == []
    nothing_left(engine)
