"""cove-runtime ps [--format table|json] ID [-- ps options]"""

from __future__ import annotations

import json
import subprocess
import sys

from cove.cli.runtime import GlobalOptions
from cove.cli.runtime.common import parse_verb, store
from cove.cli.runtime.flags import Flag
from cove.errors import InvalidArgument
from cove.runtime.container_ps import container_pids

FLAGS = [Flag("format", takes_value=True, aliases=("f",), help="table (default) or json")]


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb("ps", "[--format table|json] CONTAINER_ID [-- PS_OPTIONS]", FLAGS, args)
    if parsed is None:
        return 0
    if not parsed.positional:
        raise InvalidArgument("ps: expected the container id")
    container_id, ps_options = parsed.positional[0], parsed.positional[1:]
    output_format = parsed.text("format", "table")
    if output_format not in ("table", "json"):
        raise InvalidArgument(f"--format: expected table or json, got {output_format!r}")
    pids = container_pids(store(options), container_id)
    if output_format == "json":
        if ps_options:
            raise InvalidArgument("ps: ps options cannot be used with --format json")
        sys.stdout.write(json.dumps(pids) + "\n")
        return 0
    # As runc: the host's ps output, filtered to the container's processes.
    try:
        output = subprocess.run(
            ["ps", *(ps_options or ["-ef"])], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise InvalidArgument(f"ps: running ps failed: {exc}") from None
    lines = output.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        raise InvalidArgument("ps: the ps options must include the PID column")
    column = header.index("PID")
    wanted = {str(pid) for pid in pids}
    sys.stdout.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column] in wanted:
            sys.stdout.write(line + "\n")
    return 0
