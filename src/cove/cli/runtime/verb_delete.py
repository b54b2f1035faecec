"""cove-runtime delete [--force] ID"""

from __future__ import annotations

from cove.cli.runtime import GlobalOptions, log
from cove.cli.runtime.common import exactly, parse_verb, store
from cove.cli.runtime.flags import Flag
from cove.runtime.container_delete import delete_container

FLAGS = [Flag("force", aliases=("f",), help="kill the container first if it runs")]


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb("delete", "[--force] CONTAINER_ID", FLAGS, args)
    if parsed is None:
        return 0
    (container_id,) = exactly(parsed, 1, "delete", "the container id")
    for warning in delete_container(store(options), container_id, parsed.switch("force")):
        log(options, "warning", warning)
    return 0
