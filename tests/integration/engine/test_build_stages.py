"""`cove build`: multi-stage builds (artifacts, --target, parallel stages), the command line
(contexts on stdin, Containerfile, -f, -q, --iidfile, tags, progress), and bad input:
clear errors naming the Dockerfile line, and nothing left behind after a failure."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.integration.engine.build_support import (
    build,
    built,
    engine,
    inspect,
    nothing_left,
    run_in,
    stored_config,
    text,
    write_context,
)
from tests.integration.image.test_import import cove, cove_cli
from tests.integration.image.test_registry import Registry, registry

__all__ = ["engine", "registry"]  # the fixtures

pytestmark = pytest.mark.root

MULTI = """\
FROM bb:1 AS compile
RUN mkdir /out && echo "binary v1" > /out/app
FROM bb:1 AS broken
RUN echo this stage must not run; exit 9
FROM bb:1 AS tests
COPY --from=compile /out/app /app
RUN grep -q v1 /app
FROM scratch AS final
COPY --from=compile /out/app /app
COPY --from=bb:1 /bin/busybox /bin/busybox
CMD ["/bin/busybox", "cat", "/app"]
"""


def test_multi_stage_copies_an_artifact_and_skips_unused_stages(
    engine: Path, tmp_path: Path
) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": MULTI})
    image, progress = built(engine, context, "-t", "final:1")
    assert "this stage must not run" not in progress
    assert "STEP 1/6: FROM bb:1 AS compile" in progress  # only compile and final: 2 + 4
    assert "STEP 3/6: FROM scratch AS final" in progress
    assert run_in(engine, "final:1") == "binary v1\n"
    config = stored_config(engine, image)
    assert len(config["rootfs"]["diff_ids"]) == 2  # scratch + two COPY layers
    tests, progress = built(engine, context, "--target", "tests")
    assert "this stage must not run" not in progress
    assert run_in(engine, tests, "cat", "/app") == "binary v1\n"
    res = build(engine, context, "--target", "broken")
    assert res.returncode == 1
    assert "Dockerfile:4: RUN echo this stage must not run; exit 9: exit code 9" in text(res)[1]
    res = build(engine, context, "--target", "nosuch")
    assert res.returncode == 1 and "target stage 'nosuch' could not be found" in text(res)[1]


PARALLEL = """\
FROM bb:1 AS left
RUN cut -d" " -f1 /proc/uptime > /start; sleep 2; cut -d" " -f1 /proc/uptime > /end
FROM bb:1 AS right
RUN cut -d" " -f1 /proc/uptime > /start; sleep 2; cut -d" " -f1 /proc/uptime > /end
FROM bb:1
COPY --from=left /start /end /left/
COPY --from=right /start /end /right/
"""


def test_independent_stages_build_in_parallel(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": PARALLEL})
    image, progress = built(engine, context)
    times = run_in(engine, image, "cat", "/left/start", "/left/end", "/right/start", "/right/end")
    left_start, left_end, right_start, right_end = (float(t) for t in times.split())
    assert left_start < right_end and right_start < left_end  # the two RUNs overlapped
    # parallel stages' lines carry their names; the last stage builds alone
    assert "[left] STEP 2/7: RUN cut" in progress
    assert "[right] STEP 4/7: RUN cut" in progress
    assert "\nSTEP 5/7: FROM bb:1" in progress


def test_a_failing_stage_stops_the_parallel_one(engine: Path, tmp_path: Path) -> None:
    dockerfile = """\
FROM bb:1 AS slow
RUN sleep 60
FROM bb:1 AS fails
RUN sleep 1; exit 5
FROM bb:1
COPY --from=slow /etc/hostname /a
COPY --from=fails /etc/hostname /b
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    started = time.monotonic()
    res = build(engine, context)
    assert res.returncode == 1
    assert "Dockerfile:4: RUN sleep 1; exit 5: exit code 5" in text(res)[1]  # the real error
    assert time.monotonic() - started < 40  # the slow stage's container was stopped
    nothing_left(engine)


def test_cli_contexts_and_options(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Containerfile": "FROM bb:1\nCOPY f /f\n",
                                               "f": "from the context\n"})  # fmt: skip
    iidfile = tmp_path / "iid"
    res = build(engine, context, "-q", "-t", "one:1", "-t", "two:2", "--iidfile", str(iidfile))
    out, err = text(res)
    assert res.returncode == 0 and err == ""  # -q: only the id, on stdout
    image = out.strip()
    assert iidfile.read_text() == image
    assert inspect(engine, "one:1")["Id"] == image == inspect(engine, "two:2")["Id"]
    assert run_in(engine, "two:2", "cat", "/f") == "from the context\n"
    # -f elsewhere, relative to the current directory
    other = write_context(tmp_path / "other", {"Build.file": "FROM bb:1\nRUN echo other > /o\n"})
    res = build(engine, context, "-q", "-f", str(other / "Build.file"))
    assert res.returncode == 0, text(res)[1]
    assert run_in(engine, text(res)[0].strip(), "cat", "/o") == "other\n"
    # a Dockerfile on stdin: no context files
    res = build(engine, "-", "-q", stdin=b"FROM bb:1\nRUN echo piped > /p\n")
    assert res.returncode == 0, text(res)[1]
    assert run_in(engine, text(res)[0].strip(), "cat", "/p") == "piped\n"
    res = build(engine, "-", stdin=b"FROM bb:1\nCOPY f /f\n")
    assert res.returncode == 1 and "Dockerfile:2: COPY f: no such file" in text(res)[1]
    # a tar of the context on stdin (gzip)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in (("Dockerfile", b"FROM bb:1\nCOPY in-tar /in-tar\n"),
                           ("in-tar", b"tarred\n")):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    res = build(engine, "-", "-q", "-t", "tarred", stdin=raw.getvalue())
    assert res.returncode == 0, text(res)[1]
    assert run_in(engine, "tarred", "cat", "/in-tar") == "tarred\n"
    # `cove image build` is the same verb
    alias = cove(engine, "image", "build", "-q", str(context))
    assert alias.returncode == 0 and alias.stdout.strip() == image
    nothing_left(engine)


def test_tty_progress_is_redrawn_in_place(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM bb:1\nRUN echo out-$((6*7))\n"})
    res = build(engine, context, "--progress", "tty")
    err = text(res)[1]
    assert res.returncode == 0, err
    assert "\x1b[" in err and "[+] Building" in err  # cursor movements, a header
    assert "=> [stage-0 2/2] RUN echo out-$((6*7))  DONE" in err
    assert "    out-42" in err  # the step's last lines under it while it ran
    res = build(engine, context, "--progress", "tty")
    assert "=> [stage-0 2/2] RUN echo out-$((6*7))  CACHED" in text(res)[1]


ERRORS = {
    "FROM bb:1\nFORM x\n": "Dockerfile:2: unknown instruction: FORM",
    "RUN true\n": "Dockerfile:1: RUN before the first FROM",
    "FROM bb:1\nCOPY ../x /x\n":
        "Dockerfile:2: COPY ../x: forbidden path outside the build context",
    "FROM bb:1\nCOPY absent /x\n": "Dockerfile:2: COPY absent: no such file or directory",
    "FROM bb:1 AS builder\nFROM bb:1\nCOPY --from=biulder /x /x\n":
        "Dockerfile:3: COPY --from=biulder: no stage is named 'biulder'; did you mean stage "
        "'builder'?",
    "FROM bb:1\nCOPY --from=127.0.0.1:9/no/such:image /x /x\n":
        "Dockerfile:2: 127.0.0.1:9/no/such:image: the image is not here and cannot be pulled",
    "FROM bb:1 AS a\nCOPY --from=b /x /x\nFROM bb:1 AS b\nCOPY --from=a /x /x\n":
        "circular dependency between build stages",
    "FROM 127.0.0.1:9/absent:1\n":
        "Dockerfile:1: 127.0.0.1:9/absent:1: the image is not here and cannot be pulled",
}  # fmt: skip


def test_bad_input_is_an_error_naming_the_line(engine: Path, tmp_path: Path) -> None:
    for dockerfile, message in ERRORS.items():
        context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
        res = build(engine, context)
        assert res.returncode == 1, dockerfile
        assert message in text(res)[1], (dockerfile, text(res)[1])
    nothing_left(engine)


def test_failing_run_reports_its_exit_code_and_leaves_nothing(engine: Path, tmp_path: Path) -> None:
    dockerfile = """\
FROM bb:1
COPY data /data
RUN --mount=type=cache,target=/c echo partial > /written; \\
    for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "line $i"; done; echo oops >&2; exit 42
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile, "data": "d\n"})
    res = build(engine, context, "-t", "never")
    out, err = text(res)
    assert res.returncode == 1 and out == ""
    message = err[err.index("Error: ") :]
    assert message.startswith("Error: Dockerfile:3: RUN --mount=type=cache,target=/c echo")
    assert ": exit code 42\nlast lines of output:\n" in message
    assert "  line 12\n  oops" in message and "  line 2\n" not in message  # the last lines
    assert cove(engine, "image", "inspect", "never").returncode != 0
    nothing_left(engine)  # no container, mount, snapshot, scratch folder or stray layer
    # the steps before it are cached: the fixed file builds on them
    (context / "Dockerfile").write_text(dockerfile.replace("exit 42", "exit 0"))
    image, progress = built(engine, context)
    assert progress.count("--> Using cache") == 1  # the COPY
    assert run_in(engine, image, "cat", "/written") == "partial\n"
    nothing_left(engine)


def test_base_images_are_pulled_when_absent_or_asked(
    engine: Path, tmp_path: Path, registry: Registry
) -> None:
    remote = f"{registry.address}/test/bb:1"
    assert cove(engine, "tag", "bb:1", remote).returncode == 0
    assert cove(engine, "push", remote).returncode == 0
    fresh = tmp_path / "fresh"
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {remote}\nRUN echo ok > /ok\n"})
    image, progress = built(fresh, context)
    assert f"note: pulling {remote}" in progress
    assert run_in(fresh, image, "cat", "/ok") == "ok\n"
    _, progress = built(fresh, context)
    assert "pulling" not in progress  # present now
    again, progress = built(fresh, context, "--pull")
    assert f"note: pulling {remote}" in progress and again == image
    no_shell = write_context(tmp_path / "scratch", {"Dockerfile": "FROM scratch\nRUN true\n"})
    res = build(fresh, no_shell)
    assert res.returncode == 1 and "Dockerfile:2: RUN true: " in text(res)[1]
    nothing_left(fresh)


def test_a_build_killed_mid_way_is_cleaned_up_by_the_next(engine: Path, tmp_path: Path) -> None:
    dockerfile = "FROM bb:1\nRUN --mount=type=bind,source=.,target=/ctx,rw sleep 60\n"
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    process = subprocess.Popen(
        [cove_cli(), "--root", str(engine), "build", "--progress", "plain", str(context)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and cove(engine, "ps", "-q").stdout == "":
            time.sleep(0.1)
        assert cove(engine, "ps", "-q").stdout != "", "the RUN step did not start"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert any(p.name.startswith("build-") for p in (engine / "snapshots").iterdir())
    other = write_context(tmp_path / "other", {"Dockerfile": "FROM bb:1\nRUN true\n"})
    built(engine, other)
    nothing_left(engine)  # the next build removed the container, the mount, the scratch


def test_sigterm_stops_a_build_and_cleans_up(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM bb:1\nRUN sleep 60\n"})
    process = subprocess.Popen(
        [cove_cli(), "--root", str(engine), "build", "--progress", "plain", str(context)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and cove(engine, "ps", "-q").stdout == "":
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=30) != 0
    nothing_left(engine)
