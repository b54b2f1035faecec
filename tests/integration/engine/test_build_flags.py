"""cove build's flags for the RUN containers (--add-host, --shm-size, --ulimit), --platform
and --output (the image's files as a folder or a tar)."""

from __future__ import annotations

import platform
import tarfile
from pathlib import Path

import pytest

from tests.integration.engine.build_support import (
    build,
    built,
    engine,
    nothing_left,
    run_in,
    text,
    write_context,
)

pytestmark = pytest.mark.root
__all__ = ["engine"]  # the fixture

OTHER_PLATFORM = "linux/s390x" if platform.machine() != "s390x" else "linux/amd64"
STEPS = """\
FROM bb:1
RUN grep myhost /etc/hosts > /hosts-line || true
RUN df -k /dev/shm | tail -1 | awk '{print $2}' > /shm-kb
RUN ulimit -n > /nofile
RUN echo built > /built.txt
"""


def test_run_step_resources(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": STEPS})
    image, _ = built(engine, context, "--add-host", "myhost:10.9.8.7", "--shm-size", "16m",
                     "--ulimit", "nofile=123:456")  # fmt: skip
    out = run_in(engine, image, "cat", "/hosts-line", "/shm-kb", "/nofile")
    lines = out.splitlines()
    assert lines[0].split() == ["10.9.8.7", "myhost"] and lines[1:] == ["16384", "123"], out
    for args, message in ((["--ulimit", "nofile=abc"], "nofile"),
                          (["--add-host", "nocolon"], "--add-host"),
                          (["--shm-size", "lots"], "--shm-size"),
                          (["--platform", OTHER_PLATFORM], "platform only")):  # fmt: skip
        res = build(engine, context, *args)
        assert res.returncode == 1 and message in text(res)[1], (args, text(res)[1])
    nothing_left(engine)


def test_output_as_a_folder_and_a_tar(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": STEPS})
    folder = tmp_path / "out"
    image, _ = built(engine, context, "--output", str(folder))
    assert (folder / "built.txt").read_text() == "built\n"
    assert (folder / "bin" / "busybox").is_file()
    archive = tmp_path / "fs.tar"
    again, _ = built(engine, context, "-o", f"type=tar,dest={archive}")
    assert again == image
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "built.txt" in names and "bin/busybox" in names
    streamed = build(engine, context, "-o", "type=tar,dest=-")
    assert streamed.returncode == 0 and streamed.stdout[257:262] == b"ustar"
    taken = build(engine, context, "--output", str(folder))  # not empty: refused
    assert taken.returncode == 1 and "not an empty folder" in text(taken)[1]
    bad = build(engine, context, "--output", "type=registry,dest=x")
    assert bad.returncode == 1 and "type is local or tar" in text(bad)[1]
    nothing_left(engine)
