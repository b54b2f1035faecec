"""cove.cli.runtime (the package's __init__): main(argv), global flags, verb dispatch.

Every call passes argv (main(None) would os._exit) and a --root under tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cove import __version__
from cove.cli import runtime as cli
from cove.cli.runtime import main
from cove.oci.default_spec import SPEC_VERSION, default_spec
from cove.oci.runtime_spec import load_spec


@pytest.fixture(autouse=True)
def isolated_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Even a test that forgets --root never reads the real /run/cove-runtime."""
    root = tmp_path / "default-root"
    monkeypatch.setenv("COVE_RUNTIME_ROOT", str(root))
    return root


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    assert err.startswith("cove-runtime: ")
    return err


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["help"], []])
def test_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cove-runtime")
    for verb in cli.VERBS:
        assert f"  {verb} " in out


@pytest.mark.parametrize("argv", [["--version"], ["-v"], ["version"]])
def test_version(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 0
    assert capsys.readouterr().out == f"cove-runtime version {__version__}\nspec: {SPEC_VERSION}\n"


def test_unknown_verb(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate", "x"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert one_line_error(captured.err) == (
        "cove-runtime: unknown command 'frobnicate' (see cove-runtime --help)\n"
    )


def test_unknown_global_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--frob", "list"]) == 1
    assert "unknown global flag '--frob'" in one_line_error(capsys.readouterr().err)


def test_bad_log_format(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--log-format", "yaml", "--root", str(tmp_path), "list"]) == 1
    assert "--log-format: expected text or json, got 'yaml'" in capsys.readouterr().err


def test_global_flag_missing_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--root"]) == 1
    assert "flag '--root' needs a value" in one_line_error(capsys.readouterr().err)


# --- spec ---------------------------------------------------------------------------------


def test_spec_writes_config_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["spec", "--bundle", str(tmp_path)]) == 0
    config = tmp_path / "config.json"
    assert json.loads(config.read_text()) == default_spec()
    assert load_spec(str(config)).oci_version == SPEC_VERSION
    assert capsys.readouterr().out == ""


def test_spec_rootless(tmp_path: Path) -> None:
    assert main(["spec", "--rootless", "-b", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "config.json").read_text())
    assert written == default_spec(rootless=True)


def test_spec_in_current_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["spec"]) == 0
    assert (tmp_path / "config.json").is_file()


def test_spec_refuses_to_overwrite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text("mine")
    assert main(["spec", "--bundle", str(tmp_path)]) == 1
    assert config.read_text() == "mine"
    err = one_line_error(capsys.readouterr().err)
    assert f"{config} exists" in err


def test_spec_missing_bundle_dir(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["spec", "--bundle", str(tmp_path / "nope")]) == 1
    assert "cannot write" in one_line_error(capsys.readouterr().err)


def test_spec_takes_no_arguments(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["spec", "--bundle", str(tmp_path), "extra"]) == 1
    assert "spec: expected no arguments, got 1" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "config.json").exists()


# --- state and list on an empty root ------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_state_of_unknown_id(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, where: str
) -> None:
    root = ["--root", str(tmp_path)]
    argv = [*root, "state", "ghost"] if where == "before" else ["state", *root, "ghost"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert one_line_error(captured.err) == "cove-runtime: container 'ghost' does not exist\n"


def test_state_of_invalid_id(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--root", str(tmp_path), "state", "../etc"]) == 1
    assert "invalid container id '../etc'" in one_line_error(capsys.readouterr().err)


def test_state_needs_one_id(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--root", str(tmp_path), "state"]) == 1
    assert "state: expected the container id, got 0" in capsys.readouterr().err


def test_list_json_on_empty_root(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--root", str(tmp_path / "empty"), "list", "--format", "json"]) == 0
    assert capsys.readouterr().out == "[]\n"


def test_list_table_and_quiet_on_empty_root(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["--root", str(tmp_path), "list"]) == 0
    assert capsys.readouterr().out.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert main(["--root", str(tmp_path), "list", "-q"]) == 0
    assert capsys.readouterr().out == ""


def test_list_bad_format(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--root", str(tmp_path), "list", "--format", "xml"]) == 1
    assert "--format: expected table or json, got 'xml'" in capsys.readouterr().err


def test_env_root_is_used(capsys: pytest.CaptureFixture[str], isolated_root: Path) -> None:
    assert main(["state", "ghost"]) == 1
    assert "'ghost' does not exist" in capsys.readouterr().err
    assert main(["list", "--format=json"]) == 0
    assert capsys.readouterr().out == "[]\n"


def test_verb_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cove-runtime list")
    assert "--format" in out


def test_verb_unknown_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--root", str(tmp_path), "list", "--bogus"]) == 1
    assert one_line_error(capsys.readouterr().err) == "cove-runtime: unknown flag '--bogus'\n"


# --- logging and unexpected errors --------------------------------------------------------


def test_errors_go_to_the_json_log(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    argv = ["--root", str(tmp_path), "--log", str(log), "--log-format", "json", "state", "gh"]
    assert main(argv) == 1
    (line,) = log.read_text().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "error"
    assert entry["msg"] == "container 'gh' does not exist"
    assert entry["time"].endswith("Z")
    assert "does not exist" in capsys.readouterr().err


def test_errors_go_to_the_text_log(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    assert main(["--log", str(log), "--root", str(tmp_path), "state", "gh"]) == 1
    text = log.read_text()
    assert text.startswith('time="')
    assert "level=error msg=\"container 'gh' does not exist\"" in text


def test_systemd_cgroup_warns(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--systemd-cgroup", "--root", str(tmp_path), "list", "-q"]) == 0
    assert "warning: --systemd-cgroup" in capsys.readouterr().err


def test_internal_error_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cove.cli.runtime import verb_list

    def broken(options: object, args: list[str]) -> int:
        raise KeyError("surprise")

    monkeypatch.setattr(verb_list, "run", broken)
    assert main(["--root", str(tmp_path), "list"]) == 1
    err = one_line_error(capsys.readouterr().err)
    assert err == "cove-runtime: internal error: KeyError: 'surprise'\n"


def test_internal_error_traceback_with_debug(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cove.cli.runtime import verb_list

    def broken(options: object, args: list[str]) -> int:
        raise KeyError("surprise")

    monkeypatch.setattr(verb_list, "run", broken)
    assert main(["--debug", "--root", str(tmp_path), "list"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_keyboard_interrupt_is_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cove.cli.runtime import verb_list

    def interrupted(options: object, args: list[str]) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(verb_list, "run", interrupted)
    assert main(["--root", str(tmp_path), "list"]) == 130
