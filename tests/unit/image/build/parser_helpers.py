"""Helpers of the Containerfile parser's tests (`test_parser*.py`)."""

from __future__ import annotations

import pytest

from cove.errors import DockerfileError
from cove.image.build.instructions import Instruction
from cove.image.build.parser import parse_dockerfile


def one(text: str) -> Instruction:
    """The single instruction after `FROM scratch`."""
    (instruction,) = parse_dockerfile("FROM scratch\n" + text).stages[0].instructions
    return instruction


def error(text: str) -> str:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile(text)
    return str(info.value)
