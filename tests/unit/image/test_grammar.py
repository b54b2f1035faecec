"""The reference and digest grammars are checked by hand (a pull imports `re` only after
its first request); they agree with the regular expressions that define them."""

from __future__ import annotations

import random
import re

from cove.image import digest, reference

DOMAIN = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
RULES = [
    (reference._is_component, r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"),
    (reference._is_registry, rf"(?:{DOMAIN}(?:\.{DOMAIN})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"),
    (reference._is_tag, r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"),
    (
        reference._is_digest_syntax,
        r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}",
    ),
    (reference._is_image_id, r"[a-f0-9]{64}"),
    (digest._is_algorithm, r"[a-z0-9]+(?:[+._-][a-z0-9]+)*"),
]
PIECES = ["a", "Z", "0", "9", "f", "F", "-", "--", "_", "__", "___", ".", "..", "+", ":",
          "[", "]", "::1", "sha256", "abc" * 11, "0" * 64, "é", "٣", "\n", " ", "5000"]  # fmt: skip


def test_hand_written_rules_match_their_regular_expressions() -> None:
    rng = random.Random(4)
    compiled = [(rule, re.compile(pattern)) for rule, pattern in RULES]
    for _ in range(20000):
        if rng.random() < 0.5:
            text = "".join(rng.choice("aZ09f-_.+:[]/ é٣") for _ in range(rng.randint(0, 12)))
        else:
            text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 6)))
        if rng.random() < 0.02:
            text = "a" * rng.randint(125, 131)
        for rule, pattern in compiled:
            assert rule(text) == bool(pattern.fullmatch(text)), (rule.__name__, text)
