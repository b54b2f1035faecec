"""cove-runtime list [--format table|json] [--quiet]"""

from __future__ import annotations

import json
import sys

from cove.cli.runtime import GlobalOptions
from cove.cli.runtime.common import exactly, parse_verb, store
from cove.cli.runtime.flags import Flag
from cove.errors import InvalidArgument
from cove.runtime.container_list import list_containers

FLAGS = [
    Flag("format", takes_value=True, aliases=("f",), help="table (default) or json"),
    Flag("quiet", aliases=("q",), help="print only the ids"),
]


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb("list", "[--format table|json] [--quiet]", FLAGS, args)
    if parsed is None:
        return 0
    exactly(parsed, 0, "list", "no arguments")
    output_format = parsed.text("format", "table")
    if output_format not in ("table", "json"):
        raise InvalidArgument(f"--format: expected table or json, got {output_format!r}")
    states = list_containers(store(options))
    if parsed.switch("quiet"):
        sys.stdout.write("".join(f"{s.id}\n" for s in states))
    elif output_format == "json":
        sys.stdout.write(json.dumps([s.to_json() for s in states]) + "\n")
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [
            (s.id, str(s.pid), s.status, s.bundle, s.created, s.owner or "root") for s in states
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            sys.stdout.write(
                "   ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n"
            )
    return 0
