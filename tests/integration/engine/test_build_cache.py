"""`cove build`'s step cache (hits, misses, what invalidates it and what does not) and
reproducible images (the same context in two fresh engine roots gives the same id)."""

from __future__ import annotations

import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from tests.integration.engine.build_support import (
    build,
    built,
    engine,
    inspect,
    run_in,
    stored_config,
    text,
    write_context,
)
from tests.integration.image.test_import import cove

pytestmark = pytest.mark.root
__all__ = ["engine"]  # the fixture

STEPS = """\
FROM bb:1
ARG FLAVOUR=plain
COPY a.txt /a.txt
RUN echo "marker-$((40+2))-one $FLAVOUR"; cat /a.txt > /one
COPY b.txt /b.txt
RUN echo "marker-$((40+2))-two"; cat /b.txt > /two
CMD ["cat", "/one", "/two"]
"""


# (the output "marker-42-..." differs from the step's text, which the progress shows too)


def cached_steps(progress: str) -> int:
    return progress.count("--> Using cache")


def test_rebuild_with_nothing_changed_runs_no_step(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": STEPS, "a.txt": "A\n", "b.txt": "B\n"})
    first, progress = built(engine, context)
    assert "marker-42-one plain" in progress and "marker-42-two" in progress
    assert cached_steps(progress) == 0
    started = time.monotonic()
    second, progress = built(engine, context, "-t", "again")
    took = time.monotonic() - started
    assert second == first
    assert "marker-42-one" not in progress and "marker-42-two" not in progress  # no RUN ran
    assert cached_steps(progress) == 6  # every step after FROM
    assert took < 5, took  # no container was made
    assert run_in(engine, "again") == "A\nB\n"
    # intermediate images are kept untagged, hidden from `cove images` as Docker does
    listed = cove(engine, "images").stdout
    assert "<none>" not in listed and "again" in listed
    every = cove(engine, "images", "-a").stdout.splitlines()
    assert sum(line.startswith("<none>") for line in every) == 5  # ARG COPY RUN COPY RUN


def test_editing_a_copied_file_invalidates_from_that_step_on(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": STEPS, "a.txt": "A\n", "b.txt": "B\n"})
    built(engine, context)
    (context / "b.txt").write_text("B2\n")
    image, progress = built(engine, context)
    assert "marker-42-one" not in progress and "marker-42-two" in progress
    assert cached_steps(progress) == 3  # ARG, COPY a.txt, the first RUN
    assert run_in(engine, image) == "A\nB2\n"
    (context / "a.txt").write_text("A2\n")
    image, progress = built(engine, context)
    assert "marker-42-one" in progress and "marker-42-two" in progress
    assert cached_steps(progress) == 1  # only the ARG
    assert run_in(engine, image) == "A2\nB2\n"


def test_touching_a_file_keeps_the_cache(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": STEPS, "a.txt": "A\n", "b.txt": "B\n"})
    first, _ = built(engine, context)
    later = time.time() + 3600
    for name in ("a.txt", "b.txt"):
        os.utime(context / name, (later, later))
    (context / "a.txt").chmod(0o644)
    second, progress = built(engine, context)
    assert second == first and cached_steps(progress) == 6
    (context / "a.txt").chmod(0o600)  # a mode is content: it is copied
    third, progress = built(engine, context)
    assert third != first and "marker-42-one" in progress


def test_no_cache_and_build_args(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": STEPS, "a.txt": "A\n", "b.txt": "B\n"})
    built(engine, context)
    _, progress = built(engine, context, "--no-cache")
    assert cached_steps(progress) == 0 and "marker-42-one" in progress
    _, progress = built(engine, context, "--build-arg", "FLAVOUR=spicy")
    assert "marker-42-one spicy" in progress  # the RUN sees another value: a miss
    assert "marker-42-two" in progress  # and all after it
    _, progress = built(engine, context, "--build-arg", "FLAVOUR=spicy")
    assert cached_steps(progress) == 6


def test_a_removed_image_is_no_cache_hit(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": STEPS, "a.txt": "A\n", "b.txt": "B\n"})
    built(engine, context, "-t", "gone")
    assert cove(engine, "rmi", "gone").returncode == 0
    second, progress = built(engine, context)
    assert cached_steps(progress) == 5  # the CMD step's image was removed: made again
    assert run_in(engine, second) == "A\nB\n"


REPRODUCIBLE = """\
FROM scratch
ADD rootfs.tar /
RUN echo built > /built && mkdir -p /var/made && touch /var/made/file
WORKDIR /app
COPY app/ ./
ENV MODE=release
CMD ["cat", "/app/main.txt"]
"""


def _context(folder: Path, rootfs_tar: Path) -> Path:
    context = write_context(folder, {"Dockerfile": REPRODUCIBLE, "app/main.txt": "main\n",
                                     "app/lib/util.txt": "util\n"})  # fmt: skip
    shutil.copyfile(rootfs_tar, context / "rootfs.tar")
    return context


def test_two_fresh_roots_give_the_same_image(tmp_path: Path, busybox_rootfs: Path) -> None:
    rootfs_tar = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs_tar, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    one = _context(tmp_path / "one", rootfs_tar)
    time.sleep(1.1)  # another checkout: other mtimes
    two = _context(tmp_path / "two", rootfs_tar)
    root_a, root_b = tmp_path / "root-a", tmp_path / "root-b"
    image_a, _ = built(root_a, one, "--timestamp", "0")
    image_b, _ = built(root_b, two, "--timestamp", "0")
    assert image_a == image_b
    manifest_a = inspect(root_a, image_a)["Descriptor"]["digest"]
    assert manifest_a == inspect(root_b, image_b)["Descriptor"]["digest"]
    config = stored_config(root_a, image_a)
    assert config["created"] == "1970-01-01T00:00:00Z"
    assert {entry["created"] for entry in config["history"]} == {"1970-01-01T00:00:00Z"}
    assert run_in(root_a, image_a) == "main\n"
    # SOURCE_DATE_EPOCH (the environment, or a build arg) is a timestamp too
    res = build(root_a, one, "-q", env={"SOURCE_DATE_EPOCH": "1700000000"})
    res_b = build(root_b, two, "-q", "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
    assert res.returncode == 0 and res_b.returncode == 0, text(res)[1] + text(res_b)[1]
    epoch_a, epoch_b = text(res)[0].strip(), text(res_b)[0].strip()
    assert epoch_a == epoch_b and epoch_a != image_a
    assert stored_config(root_a, epoch_a)["created"] == "2023-11-14T22:13:20Z"
    # without a timestamp `created` is now, but the layers are the same
    plain_a, _ = built(root_a, one, "--no-cache")
    plain_b, _ = built(root_b, two, "--no-cache")
    assert plain_a != plain_b
    layers = inspect(root_a, plain_a)["RootFS"]["Layers"]
    assert layers == inspect(root_b, plain_b)["RootFS"]["Layers"]
    assert layers == inspect(root_a, image_a)["RootFS"]["Layers"]
