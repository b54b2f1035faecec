"""cove-runtime run [--bundle B] [--detach] [--keep] [--pid-file F] ... ID"""

from __future__ import annotations

from cove.cli.runtime import GlobalOptions
from cove.cli.runtime.common import exactly, linux, parse_verb, store, warner
from cove.cli.runtime.flags import Flag
from cove.cli.runtime.verb_create import FLAGS as CREATE_FLAGS
from cove.cli.runtime.verb_create import create_options
from cove.runtime.container_run import RunOptions, run_container

FLAGS = [
    *CREATE_FLAGS,
    Flag("detach", aliases=("d",), help="return once the container runs"),
    Flag("keep", help="keep the container's state after it exits"),
]


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb("run", "[flags] CONTAINER_ID", FLAGS, args)
    if parsed is None:
        return 0
    (container_id,) = exactly(parsed, 1, "run", "the container id")
    run_options = RunOptions(
        create=create_options(parsed), detach=parsed.switch("detach"), keep=parsed.switch("keep")
    )
    return run_container(store(options), container_id, run_options, linux(), warner(options))
