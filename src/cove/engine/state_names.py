"""Container names (`cove.engine.state`): docker's rule for a name, and random
adjective_surname names for containers created without one.
"""

from __future__ import annotations

import random
import re

from cove.errors import InvalidArgument

NAME_PATTERN = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def check_name(name: str) -> str:
    """`name` without its leading '/', if docker would accept it."""
    if not NAME_PATTERN.match(name):
        raise InvalidArgument(
            f"invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name.lstrip("/")


# --- random names --------------------------------------------------------------------------

ADJECTIVES = (
    "amber", "brave", "calm", "clever", "cosy", "crisp", "curious", "daring", "eager",
    "earnest", "fancy", "fearless", "festive", "fond", "gallant", "gentle", "glad", "golden",
    "happy", "hardy", "humble", "jolly", "keen", "kind", "lively", "loyal", "lucid", "merry",
    "mellow", "modest", "nimble", "noble", "patient", "plucky", "polite", "proud", "quiet",
    "quick", "rapid", "serene", "sharp", "shiny", "silent", "steady", "sunny", "swift",
    "tender", "upbeat", "vivid", "witty", "zesty",
)  # fmt: skip

SURNAMES = (
    "agnesi", "babbage", "bardeen", "bohr", "boole", "cannon", "carson", "curie", "darwin",
    "dijkstra", "einstein", "euler", "faraday", "fermat", "fermi", "feynman", "franklin",
    "galileo", "gauss", "goodall", "hamilton", "hawking", "hertz", "hodgkin", "hopper",
    "hypatia", "johnson", "kepler", "knuth", "lamarr", "leakey", "lovelace", "maxwell",
    "meitner", "mendel", "morse", "newton", "noether", "pascal", "pasteur", "planck",
    "ritchie", "sagan", "shannon", "tesla", "thompson", "turing", "volta", "wilson", "wozniak",
    "yalow",
)  # fmt: skip


def random_name(rng: random.Random | None = None) -> str:
    """A docker-style name: adjective_surname."""
    pick = rng or random.SystemRandom()
    return f"{pick.choice(ADJECTIVES)}_{pick.choice(SURNAMES)}"
