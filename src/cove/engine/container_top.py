"""`cove top`: a container's processes as the host's ps(1) shows them (docker's way: run
`ps ARGS` on the host, keep the lines whose PID column is one of the container's pids)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from cove.engine.oci_runtime import runtime_for
from cove.engine.state import ContainerRecord
from cove.errors import CoveError, InvalidArgument, InvalidState

DEFAULT_PS_ARGS = ("-ef",)


def parse_ps(output: str, pids: Sequence[int]) -> tuple[list[str], list[list[str]]]:
    """(titles, rows) of the lines of `output` (ps's) whose PID (else LWP) is in `pids`;
    the last column takes the rest of the line (a command with spaces)."""
    lines = output.split("\n")
    titles = lines[0].split() if lines else []
    pid_index = -1
    for index, title in enumerate(titles):
        if title == "PID":
            pid_index = index
        elif title == "LWP" and pid_index == -1:
            pid_index = index
    if pid_index == -1:
        raise InvalidArgument("Couldn't find PID field in ps output")
    wanted = set(pids)
    rows = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) <= pid_index:
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise InvalidArgument(f"unexpected pid '{fields[pid_index]}' in ps output") from None
        if pid in wanted:
            last = len(titles) - 1
            rows.append([*fields[:last], " ".join(fields[last:])])
    return titles, rows


def top(
    root: str, record: ContainerRecord, ps_args: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    if record.status not in ("running", "paused"):
        raise InvalidState(f"Container {record.id} is not running")
    pids = runtime_for(record.runtime, root).ps(record.id)
    argv = ["ps", *(ps_args or DEFAULT_PS_ARGS)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CoveError(f"cannot run ps: {exc}") from None
    if done.returncode != 0:
        raise InvalidArgument(f"ps: {done.stderr.strip() or f'exit status {done.returncode}'}")
    return parse_ps(done.stdout, pids)
