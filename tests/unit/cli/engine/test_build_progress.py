"""`cove build`'s progress: plain lines (prefixed by stage on worker threads) and the live
terminal display."""

from __future__ import annotations

import io
import threading

from cove.cli.engine.build_progress import PlainReporter, TtyReporter

ID = "sha256:" + "ab" * 32


def test_plain_lines() -> None:
    out = io.StringIO()
    reporter = PlainReporter(out)
    reporter.step(1, 2, "stage-0", "FROM bb:1")
    reporter.step_done(ID)
    reporter.step(2, 2, "stage-0", "RUN make")
    reporter.output(b"compiling\npart")
    reporter.output(b"ial\n")
    reporter.cached()
    reporter.step_done(ID)
    reporter.note("careful")
    assert out.getvalue() == (
        "STEP 1/2: FROM bb:1\n--> abababababab\nSTEP 2/2: RUN make\ncompiling\npartial\n"
        "--> Using cache abababababab\nnote: careful\n"
    )


def test_plain_lines_of_parallel_stages_carry_the_stage() -> None:
    out = io.StringIO()
    reporter = PlainReporter(out)

    def stage() -> None:
        reporter.step(3, 5, "left", "RUN x")
        reporter.output(b"one\ntw")
        reporter.output(b"o\nthree")
        reporter.step_done(ID)

    worker = threading.Thread(target=stage)
    worker.start()
    worker.join()
    assert out.getvalue().splitlines() == [
        "[left] STEP 3/5: RUN x", "[left] one", "[left] two", "[left] three",
        "[left] --> abababababab",
    ]  # fmt: skip


def test_tty_display() -> None:
    out = io.StringIO()
    reporter = TtyReporter(out, columns=60)
    reporter.step(1, 2, "s", "FROM bb:1")
    reporter.step_done(ID)
    reporter.step(2, 2, "s", "RUN " + "x" * 100)
    reporter.output(b"line 1\nline 2\n")
    screen = out.getvalue()
    assert "=> [s 1/2] FROM bb:1  DONE" in screen
    assert "    line 2" in screen and "\x1b[" in screen
    assert all(len(line) <= 62 for line in screen.replace("\x1b[K", "").split("\n"))
    reporter.close(failed=True)
    assert out.getvalue().rstrip().endswith("    line 2")
    assert "ERROR" in out.getvalue()
