"""cove-runtime features: what this runtime supports, as JSON (runc 1.1+'s document)."""

from __future__ import annotations

import json
import sys

from cove.cli.runtime import GlobalOptions
from cove.cli.runtime.common import exactly, parse_verb
from cove.runtime.features import features


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb("features", "", [], args)
    if parsed is None:
        return 0
    exactly(parsed, 0, "features", "no arguments")
    sys.stdout.write(json.dumps(features(), indent=2) + "\n")
    return 0
