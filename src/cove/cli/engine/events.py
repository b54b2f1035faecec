"""cove events [--since T] [--until T] [-f KEY=VALUE]... [--format json|TEMPLATE]"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", default="", help="from this time (RFC 3339, unix, 10m)")
    parser.add_argument("--until", default="", help="up to this time, then stop")
    parser.add_argument("-f", "--filter", action="append", default=[],
                        help="type=, event=, container=, image=, label=")  # fmt: skip
    parser.add_argument("--format", default="", help="json or a {{.Field}} template")


def format_event(event: Mapping[str, Any], template: str = "") -> str:
    """One line as `docker events` prints it: the default text, `json`, or a template
    over Docker's field names (.Type, .Action, .Actor.ID, .Actor.Attributes.name, .Time...)."""
    from cove.engine.events import format_time

    if template in ("json", "{{json .}}"):
        return json.dumps(event, separators=(",", ":"))
    if template:
        from cove.cli.engine.formatting import render

        fields = {
            "Status": event.get("status", ""), "ID": event.get("id", ""),
            "From": event.get("from", ""), "Type": event.get("Type", ""),
            "Action": event.get("Action", ""), "Actor": event.get("Actor", {}),
            "Scope": event.get("scope", ""), "Time": event.get("time", 0),
            "TimeNano": event.get("timeNano", 0),
        }  # fmt: skip
        return render(template, fields)
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    pairs = ", ".join(f"{k}={v}" for k, v in sorted(attributes.items()))
    text = (f"{format_time(int(event.get('timeNano') or 0))} {event.get('Type', '')} "
            f"{event.get('Action', '')} {actor.get('ID', '')}")  # fmt: skip
    return text + (f" ({pairs})" if pairs else "")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.container_logs import parse_since
    from cove.engine.events import matches, parse_filters, stream_events

    filters = parse_filters(args.filter)
    since = parse_since(args.since) if args.since else 0
    until = parse_since(args.until, flag="--until") if args.until else 0
    for event in stream_events(context.root, since_ns=since, until_ns=until):
        if matches(event, filters):
            sys.stdout.write(format_event(event, args.format) + "\n")
            sys.stdout.flush()
    return 0
