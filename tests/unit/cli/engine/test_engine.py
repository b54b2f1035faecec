"""The `cove` command line: dispatch, global flags, docker's exit codes."""

from __future__ import annotations

import importlib

import pytest

from cove.cli import engine


def test_every_command_module_loads_and_declares_its_arguments() -> None:
    from cove.cli.engine.parser import CommandParser

    for name, (module_name, _) in engine.COMMANDS.items():
        module = importlib.import_module(f"cove.cli.engine.{module_name}")
        module.add_arguments(CommandParser(prog=f"cove {name}"))
        assert callable(module.run)


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert engine.run(["--help"]) == 0
    out = capsys.readouterr().out
    for name in engine.COMMANDS:
        assert name in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert engine.run(["frobnicate"]) == engine.USAGE_ERROR
    err = capsys.readouterr().err
    assert "frobnicate" in err and "Traceback" not in err


def test_bad_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert engine.run(["version", "--bogus"]) == engine.USAGE_ERROR
    assert "--bogus" in capsys.readouterr().err


def test_root_flag_and_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COVE_ROOT", "/tmp/from-env")
    assert engine.run(["version", "--format", "json"]) == 0
    assert '"Root": "/tmp/from-env"' in capsys.readouterr().out
    assert engine.run(["--root", "/tmp/from-flag", "version", "--format", "json"]) == 0
    assert '"Root": "/tmp/from-flag"' in capsys.readouterr().out
