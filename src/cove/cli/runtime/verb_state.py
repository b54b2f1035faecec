"""cove-runtime state ID"""

from __future__ import annotations

import json
import sys

from cove.cli.runtime import GlobalOptions
from cove.cli.runtime.common import exactly, parse_verb, store
from cove.runtime.container_state import container_state


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb("state", "CONTAINER_ID", [], args)
    if parsed is None:
        return 0
    (container_id,) = exactly(parsed, 1, "state", "the container id")
    state = container_state(store(options), container_id)
    sys.stdout.write(json.dumps(state.to_json(), indent=2) + "\n")
    return 0
