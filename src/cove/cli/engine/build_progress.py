"""How `cove build` shows its progress (a `cove.engine.build.BuildReporter`).

- `PlainReporter`: lines, as podman's builder writes them: `STEP 3/5: RUN make`, the
  step's output as it comes, `--> Using cache 1a2b3c4d5e6f` / `--> 1a2b3c4d5e6f`. When
  stages build in parallel (on the builder's worker threads) every line carries the
  stage's name, `[builder] ...`, and output is written a whole line at a time.
- `TtyReporter`: a live display redrawn in place on a terminal: finished steps scroll up
  as one line each (`CACHED` or their time); each running step shows under it its last
  few lines of output.

Both write to `stream` (the CLI gives stderr: stdout carries only the image id).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TextIO

TAIL = 5
_REDRAW_EVERY = 0.1


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


class PlainReporter:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._stage: dict[int, str] = {}
        self._partial: dict[int, bytes] = {}
        self._cached: set[int] = set()

    def _prefix(self) -> str:
        if threading.current_thread() is threading.main_thread():
            return ""
        return f"[{self._stage.get(threading.get_ident(), '?')}] "

    def _line(self, text: str) -> None:
        self.stream.write(self._prefix() + text + "\n")
        self.stream.flush()

    def _flush_partial(self) -> None:
        rest = self._partial.pop(threading.get_ident(), b"")
        if rest:
            self._line(rest.decode("utf-8", "replace"))

    def step(self, number: int, total: int, stage: str, text: str) -> None:
        self._flush_partial()
        self._stage[threading.get_ident()] = stage
        self._line(f"STEP {number}/{total}: {text}")

    def cached(self) -> None:
        self._cached.add(threading.get_ident())

    def output(self, data: bytes) -> None:
        ident = threading.get_ident()
        if not self._prefix():
            self.stream.write(data.decode("utf-8", "replace"))
            self.stream.flush()
            return
        buffered = self._partial.get(ident, b"") + data
        *lines, rest = buffered.split(b"\n")
        self._partial[ident] = rest
        for line in lines:
            self._line(line.decode("utf-8", "replace"))

    def step_done(self, image_id: str) -> None:
        self._flush_partial()
        ident = threading.get_ident()
        if ident in self._cached:
            self._cached.discard(ident)
            self._line(f"--> Using cache {_short(image_id)}")
        else:
            self._line(f"--> {_short(image_id)}")

    def note(self, message: str) -> None:
        self._line(f"note: {message}")

    def intermediate_container(self, container_id: str, removed: bool) -> None:
        pass  # podman's plain lines do not name the RUN containers

    def close(self, failed: bool = False) -> None:
        self._flush_partial()


@dataclass
class _Row:
    number: int
    total: int
    stage: str
    text: str
    started: float
    status: str = "running"
    ended: float = 0.0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL))
    partial: str = ""

    def title(self) -> str:
        return f"=> [{self.stage} {self.number}/{self.total}] {self.text}"


class TtyReporter:
    """The live display (see the module docstring). `columns` keeps lines from wrapping,
    which would break the redraw."""

    def __init__(self, stream: TextIO, columns: int = 80) -> None:
        self.stream = stream
        self.columns = columns if columns >= 20 else 80
        self.started = time.monotonic()
        self._rows: dict[int, _Row] = {}  # running, by thread
        self._drawn = 0
        self._last = 0.0
        self._done = 0

    def _fit(self, text: str) -> str:
        text = text.replace("\t", "  ").replace("\r", "")
        return text if len(text) < self.columns else text[: self.columns - 2] + "…"

    def _status(self, row: _Row, status: str) -> str:
        """The row's title cut to leave room for its status, which is always shown."""
        room = self.columns - len(status) - 3
        title = row.title()
        if len(title) > room:
            title = title[: max(room - 1, 8)] + "…"
        return f"{title}  {status}"

    def _erase(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._last < _REDRAW_EVERY:
            return
        self._last = now
        self._erase()
        lines = [f"[+] Building {now - self.started:.1f}s ({self._done} steps done)"]
        for row in self._rows.values():
            lines.append(self._status(row, f"{now - row.started:.1f}s"))
            lines.extend(self._fit(f"    {line}") for line in row.tail)
        self.stream.write("".join(line + "\x1b[K\n" for line in lines))
        self._drawn = len(lines)
        self.stream.flush()

    def _finish(self, row: _Row, status: str) -> None:
        row.status = status
        row.ended = time.monotonic()
        self._done += 1
        self._erase()
        end = "CACHED" if status == "cached" else f"DONE {row.ended - row.started:.1f}s"
        self.stream.write(self._status(row, end) + "\n")
        self._draw()

    def step(self, number: int, total: int, stage: str, text: str) -> None:
        ident = threading.get_ident()
        previous = self._rows.pop(ident, None)
        if previous is not None and previous.status == "running":
            self._finish(previous, "done")
        self._rows[ident] = _Row(number, total, stage, text, time.monotonic())
        self._draw()

    def cached(self) -> None:
        row = self._rows.get(threading.get_ident())
        if row is not None:
            row.status = "cached"

    def output(self, data: bytes) -> None:
        row = self._rows.get(threading.get_ident())
        if row is None:
            return
        text = row.partial + data.decode("utf-8", "replace")
        *lines, row.partial = text.split("\n")
        quiet_so_far = not row.tail
        row.tail.extend(line for line in lines if line.strip())
        self._draw(force=quiet_so_far)  # then at most every _REDRAW_EVERY seconds

    def step_done(self, image_id: str) -> None:
        row = self._rows.pop(threading.get_ident(), None)
        if row is not None:
            self._finish(row, "cached" if row.status == "cached" else "done")

    def intermediate_container(self, container_id: str, removed: bool) -> None:
        pass

    def note(self, message: str) -> None:
        self._erase()
        self.stream.write(self._fit(f"note: {message}") + "\n")
        self._draw()

    def close(self, failed: bool = False) -> None:
        """Leave the steps still running on the screen (on failure: with their last
        lines, marked ERROR)."""
        self._erase()
        for row in self._rows.values():
            end = "ERROR" if failed else "DONE"
            self.stream.write(self._status(row, end) + "\n")
            for line in row.tail if failed else ():
                self.stream.write(self._fit(f"    {line}") + "\n")
        self._rows.clear()
        self.stream.flush()
