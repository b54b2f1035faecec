"""Progress events and their rendering: docker-like bars, in place on a terminal."""

from __future__ import annotations

import io

from cove.image.registry.progress import ProgressEvent, ProgressPrinter, human_size, progress_bar


def test_human_size_and_bar() -> None:
    assert human_size(512) == "512B"
    assert human_size(1_200_000) == "1.2MB"
    assert human_size(5_000_000) == "5MB"
    bar = progress_bar(1_200_000, 5_000_000)
    assert bar.startswith("[" + "=" * 12 + ">" + " " * 37 + "]")
    assert bar.endswith("1.2MB/5MB")
    assert progress_bar(5, 5).startswith("[" + "=" * 50 + "]")
    assert progress_bar(2048, None) == "2.05kB"


def test_event_json_is_dockers_shape() -> None:
    event = ProgressEvent("Downloading", "abc", 10, 100)
    out = event.to_json()
    assert out["status"] == "Downloading" and out["id"] == "abc"
    assert out["progressDetail"] == {"current": 10, "total": 100}
    assert ProgressEvent("Digest: x").to_json() == {"status": "Digest: x"}


def test_plain_output_one_line_per_change() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, terminal=False)
    printer(ProgressEvent("Pulling from a/b", "1"))
    for current in (1, 2, 3):
        printer(ProgressEvent("Downloading", "aaa", current, 3))
    printer(ProgressEvent("Pull complete", "aaa"))
    assert out.getvalue() == ("1: Pulling from a/b\naaa: Downloading\naaa: Pull complete\n")


def test_terminal_output_redraws_in_place() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, terminal=True)
    printer(ProgressEvent("Pulling fs layer", "aaa"))
    printer(ProgressEvent("Pulling fs layer", "bbb"))
    mark = len(out.getvalue())
    printer(ProgressEvent("Downloading", "aaa", 1, 2))
    redraw = out.getvalue()[mark:]
    assert redraw.startswith("\x1b[2A\x1b[2K\raaa: Downloading [")
    assert redraw.endswith("\r\x1b[2B")
    mark = len(out.getvalue())
    printer(ProgressEvent("Pull complete", "bbb"))
    assert out.getvalue()[mark:].startswith("\x1b[1A\x1b[2K\rbbb: Pull complete")
