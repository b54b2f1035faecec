"""Installing signal handlers without `import signal` (it builds enums when imported)."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module behind `signal`

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Handler = Callable[[int, object], None] | int | None


def set_handler(signum: int, handler: Handler) -> Handler:
    """Install `handler` for `signum`; returns the previous one (for restoring)."""
    previous: Handler = _signal.signal(signum, handler)
    return previous
