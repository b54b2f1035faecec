"""cove-runtime resume ID"""

from __future__ import annotations

from cove.cli.runtime import GlobalOptions
from cove.cli.runtime.common import exactly, parse_verb, store
from cove.runtime.container_pause import resume_container


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb("resume", "CONTAINER_ID", [], args)
    if parsed is None:
        return 0
    (container_id,) = exactly(parsed, 1, "resume", "the container id")
    resume_container(store(options), container_id)
    return 0
