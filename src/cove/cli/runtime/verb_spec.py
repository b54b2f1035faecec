"""cove-runtime spec [--bundle B] [--rootless]"""

from __future__ import annotations

import json
import os

from cove.cli.runtime import GlobalOptions
from cove.cli.runtime.common import exactly, parse_verb
from cove.cli.runtime.flags import Flag
from cove.errors import InvalidArgument
from cove.oci.default_spec import default_spec

FLAGS = [
    Flag("bundle", takes_value=True, aliases=("b",), help="write config.json in this folder"),
    Flag("rootless", help="a spec for a container started without root"),
]


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb("spec", "[--bundle DIR] [--rootless]", FLAGS, args)
    if parsed is None:
        return 0
    exactly(parsed, 0, "spec", "no arguments")
    path = os.path.join(parsed.text("bundle", "."), "config.json")
    try:
        with open(path, "x") as config:
            json.dump(default_spec(rootless=parsed.switch("rootless")), config, indent="\t")
            config.write("\n")
    except FileExistsError:
        raise InvalidArgument(f"{path} exists: remove it first") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot write {path}: {exc.strerror}") from None
    return 0
