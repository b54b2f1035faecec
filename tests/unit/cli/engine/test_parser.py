"""`CommandParser` parses plain command lines itself and must give argparse's results; it
hands everything else to argparse. Compared on the real command modules' declarations."""

from __future__ import annotations

import argparse
import importlib

import pytest

from cove.cli.engine.parser import CommandParser, UsageError

CASES = [
    ("container_stop", ["web"]),
    ("container_stop", ["-t", "3", "web", "db"]),
    ("container_stop", ["--time=5", "web"]),
    ("container_kill", ["-s", "HUP", "web"]),
    ("container_kill", ["web", "--signal", "USR1"]),
    ("container_logs", ["-f", "--tail", "2", "-t", "web"]),
    ("container_logs", ["--since=10m", "web"]),
    ("container_rm", ["-f", "a", "b", "c"]),
    ("container_rename", ["old", "new"]),
    ("image_tag", ["busybox", "mine:1"]),
    ("image_pull", ["localhost:5000/bb:1"]),
    ("image_pull", ["--tls-verify=false", "localhost:5000/bb:1"]),
    ("container_exec", ["-it", "web", "sh", "-c", "echo hi"]),
    ("container_run", ["--rm", "-e", "A=1", "-e", "B=2", "img", "sh", "-c", "x"]),
    ("container_ps", ["-a", "--filter", "status=exited", "--format", "{{.Names}}"]),
    ("container_run", ["img"]),
    ("container_run", ["-d", "--name", "web", "img", "--rm", "-x", "a=b"]),
    ("container_run", ["-v", "/a:/b", "--volume=/c:/d:ro", "-m", "64m", "img", "true"]),
    ("container_run", ["--cpus", "1.5", "--pids-limit", "7", "--ulimit", "nofile=5", "img"]),
    ("container_run", ["-it", "img", "sh"]),
    ("container_create", ["--label", "a=1", "--label", "b", "img", "echo", "--", "x"]),
    ("container_exec", ["-e", "A=1", "web", "env"]),
    ("container_ps", ["--filter", "name=a", "-f", "status=running"]),
]


def reference(module_name: str) -> argparse.ArgumentParser:
    module = importlib.import_module(f"cove.cli.engine.{module_name}")
    parser = argparse.ArgumentParser(prog="x")
    module.add_arguments(parser)
    return parser


def ours(module_name: str) -> CommandParser:
    module = importlib.import_module(f"cove.cli.engine.{module_name}")
    parser = CommandParser(prog="x", description="")
    module.add_arguments(parser)
    return parser


@pytest.mark.parametrize(("module_name", "argv"), CASES)
def test_same_result_as_argparse(module_name: str, argv: list[str]) -> None:
    expected = vars(reference(module_name).parse_args(argv))
    assert vars(ours(module_name).parse_args(argv)) == expected


@pytest.mark.parametrize(
    ("module_name", "argv"),
    [("container_stop", []), ("container_kill", ["-s"]), ("container_rename", ["a", "b", "c"]),
     ("container_stop", ["--no-such-flag", "web"]), ("container_stop", ["-t", "x", "web"]),
     ("container_run", []), ("container_run", ["--pids-limit", "x", "img"])],
)  # fmt: skip
def test_errors_are_usage_errors(module_name: str, argv: list[str]) -> None:
    with pytest.raises(UsageError):
        ours(module_name).parse_args(argv)


def test_run_line_needs_no_argparse() -> None:
    """The usual `cove run` line is parsed without argparse (its import is milliseconds)."""
    parser = ours("container_run")
    parsed = parser.parse_args(["-d", "-e", "A=1", "--name", "w", "img", "sh", "-c", "x"])
    assert parser._real is None
    assert (parsed.env, parsed.command) == (["A=1"], ["sh", "-c", "x"])
