"""cove-runtime events [--stats] [--interval 5s] ID"""

from __future__ import annotations

import json
import sys

from cove.cli.runtime import GlobalOptions
from cove.cli.runtime.common import exactly, parse_verb, store
from cove.cli.runtime.flags import Flag
from cove.errors import InvalidArgument
from cove.runtime.container_events import events, stats_event

FLAGS = [
    Flag("stats", help="print the figures once and exit"),
    Flag("interval", takes_value=True, help="seconds between figures (5s, 500ms, 2)"),
]


def parse_interval(text: str) -> float:
    number, scale = text, 1.0
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            number, scale = text[: -len(suffix)], factor
            break
    try:
        seconds = float(number) * scale
    except ValueError:
        raise InvalidArgument(f"--interval: expected a duration like 5s, got {text!r}") from None
    if seconds <= 0:
        raise InvalidArgument(f"--interval: must be positive, got {text!r}")
    return seconds


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb("events", "[--stats] [--interval DURATION] CONTAINER_ID", FLAGS, args)
    if parsed is None:
        return 0
    (container_id,) = exactly(parsed, 1, "events", "the container id")
    if parsed.switch("stats"):
        sys.stdout.write(json.dumps(stats_event(store(options), container_id)) + "\n")
        return 0
    interval = parse_interval(parsed.text("interval", "5s"))
    for event in events(store(options), container_id, interval):
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()
    return 0
