"""cove-runtime start ID"""

from __future__ import annotations

from cove.cli.runtime import GlobalOptions, log
from cove.cli.runtime.common import exactly, parse_verb, store
from cove.runtime.container_start import start_container


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb("start", "CONTAINER_ID", [], args)
    if parsed is None:
        return 0
    (container_id,) = exactly(parsed, 1, "start", "the container id")
    for warning in start_container(store(options), container_id):
        log(options, "warning", warning)
    return 0
