"""cove.image.build.instructions: the records' helpers."""

from __future__ import annotations

import dataclasses

import pytest

import cove.image.build as build
from cove.image.build.instructions import (
    INSTRUCTION_TYPES,
    CommandLine,
    Heredoc,
    Note,
    Run,
    Workdir,
)


def test_command_line_argv() -> None:
    assert CommandLine(("a", "b c"), True).argv() == ["a", "b c"]
    assert CommandLine(("echo $X",), False).argv() == ["/bin/sh", "-c", "echo $X"]
    assert CommandLine(("dir",), False).argv(["cmd", "/S", "/C"]) == ["cmd", "/S", "/C", "dir"]
    assert str(CommandLine(("a", 'b"c'), True)) == '["a", "b\\"c"]'
    assert str(CommandLine(("echo hi",), False)) == "echo hi"


def test_run_heredoc_helpers() -> None:
    doc = Heredoc("EOF", "echo 1\n")
    script = Run(1, 3, "RUN <<EOF", command=CommandLine(("<<EOF",), False), heredocs=(doc,))
    assert script.heredoc_script is doc
    assert script.shell_text() == "<<EOF\necho 1\nEOF"
    piped = dataclasses.replace(script, command=CommandLine(("sh <<EOF",), False))
    assert piped.heredoc_script is None
    plain = Run(1, 1, "RUN x", command=CommandLine(("x",), False))
    assert plain.heredoc_script is None and plain.shell_text() == "x"


def test_records_are_frozen_and_comparable() -> None:
    a = Workdir(1, 1, "WORKDIR /a", path="/a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.path = "/b"  # type: ignore[misc]
    assert a == Workdir(1, 1, "WORKDIR /a", path="/a")
    assert hash(a) == hash(Workdir(1, 1, "WORKDIR /a", path="/a"))


def test_keywords_and_layers() -> None:
    assert sorted(INSTRUCTION_TYPES) == [
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    ]
    layered = sorted(k for k, cls in INSTRUCTION_TYPES.items() if cls.changes_filesystem)
    assert layered == ["ADD", "COPY", "RUN", "WORKDIR"]


def test_note_text() -> None:
    assert str(Note("Containerfile", 3, "something")) == "Containerfile:3: something"


def test_package_exports() -> None:
    for name in build.__all__:
        assert hasattr(build, name), name
    dockerfile = build.parse_dockerfile("FROM a\n")
    assert build.plan(dockerfile).target == 0
