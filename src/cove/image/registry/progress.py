"""Progress of pulls and pushes: events in the shape of docker's JSON message stream, and a
renderer for the command line.

An event is what `docker pull` streams over its API (`{"status", "id", "progressDetail":
{"current", "total"}}`): the API server can forward `to_json()` as is, the CLI renders it
with `ProgressPrinter`:

    on a terminal   one line per layer, redrawn in place (cursor up, clear line):
                        a1b2c3d4e5f6: Downloading [=====>          ]  1.2MB/5MB
    otherwise       plain lines, one per status change (no byte counts in between)
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from cove.image.records import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

BAR_WIDTH = 50


class ProgressEvent(FrozenRecord):
    """`id` is a layer's short id (12 hex digits) or "" for a message about the whole image;
    `current`/`total` are byte counts while downloading or uploading."""

    __slots__ = ("current", "id", "status", "total")
    _field_order = ("status", "id", "current", "total")
    status: str
    id: str
    current: int | None
    total: int | None

    def __init__(
        self, status: str, id: str = "", current: int | None = None, total: int | None = None
    ) -> None:
        self._init(status, id, current, total)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.id:
            out["id"] = self.id
        if self.current is not None:
            detail: dict[str, int] = {"current": self.current}
            if self.total:
                detail["total"] = self.total
            out["progressDetail"] = detail
            out["progress"] = progress_bar(self.current, self.total)
        return out

    def line(self, *, bar: bool = True) -> str:
        text = f"{self.id}: {self.status}" if self.id else self.status
        if bar and self.current is not None:
            text += " " + progress_bar(self.current, self.total)
        return text


#: what pull and push report to (called from worker threads)
Progress = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    """A `Progress` that ignores everything."""


def human_size(size: float) -> str:
    """Docker's decimal sizes with 3 significant digits: 512B, 1.2MB, 5MB."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.3g}{unit}"
        size /= 1000
    raise AssertionError("unreachable")


def progress_bar(current: int, total: int | None) -> str:
    """`[=====>      ]  1.2MB/5MB`, or just the byte count without a total."""
    if not total or total <= 0:
        return human_size(current)
    filled = min(BAR_WIDTH, int(BAR_WIDTH * current / total))
    arrow = ">" if filled < BAR_WIDTH else ""
    bar = "=" * filled + arrow + " " * (BAR_WIDTH - filled - len(arrow))
    return f"[{bar}] {human_size(current):>7}/{human_size(total)}"


class ProgressPrinter:
    """Renders events to a text stream, redrawing per-layer lines on a terminal."""

    def __init__(self, out: TextIO, *, terminal: bool | None = None) -> None:
        self.out = out
        self.terminal = out.isatty() if terminal is None else terminal
        self._lock = threading.Lock()
        self._rows: dict[str, int] = {}  # layer id -> line number from the top of our block
        self._lines = 0
        self._last_status: dict[str, str] = {}

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if self.terminal:
                self._draw(event)
            else:
                self._plain(event)
            self.out.flush()

    def _plain(self, event: ProgressEvent) -> None:
        if event.id and self._last_status.get(event.id) == event.status:
            return  # byte counts only: plain output stays one line per change
        if event.id:
            self._last_status[event.id] = event.status
        self.out.write(event.line(bar=False) + "\n")

    def _draw(self, event: ProgressEvent) -> None:
        if not event.id:
            self.out.write(event.line() + "\n")
            self._rows.clear()  # a message ends the block of layer lines
            self._lines = 0
            return
        row = self._rows.get(event.id)
        if row is None:
            self._rows[event.id] = self._lines
            self._lines += 1
            self.out.write("\x1b[2K" + event.line() + "\n")
            return
        up = self._lines - row
        self.out.write(f"\x1b[{up}A\x1b[2K\r{event.line()}\r\x1b[{up}B")
