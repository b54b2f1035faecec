"""`cove pull`, `cove push`, `cove login`, `cove logout` through run_module, against the
in-process fake registry on 127.0.0.1."""

from __future__ import annotations

import io
import json
import stat
import sys
from pathlib import Path

import pytest

from cove.cli.engine import Context, run_module
from tests.unit.image.registry.fake_registry import FakeRegistry
from tests.unit.image.registry.test_pull_push import publish

VERBS = {"pull": "image_pull", "push": "image_push", "login": "login", "logout": "logout"}


def cli(
    capsys: pytest.CaptureFixture[str], root: Path, verb: str, *args: str
) -> tuple[int, str, str]:
    status = run_module(VERBS[verb], f"cove {verb}", verb, list(args), Context(str(root), False))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder / "config.json"


def test_login_pull_push_logout(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    docker_config: Path,
) -> None:
    root = tmp_path / "engine"
    with FakeRegistry(auth="bearer", users={"alice": "pw"}) as reg:
        publish(reg.state, "team/app", "1", [b"layer"])
        ref = f"{reg.address}/team/app:1"
        status, _, err = cli(capsys, root, "pull", ref)
        assert status == 1 and "login required" in err
        monkeypatch.setattr(sys, "stdin", io.StringIO("wrong\n"))
        status, _, err = cli(capsys, root, "login", "-u", "alice", "--password-stdin", reg.address)
        assert status == 1 and "refused" in err
        assert not docker_config.exists()
        monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
        status, out, _ = cli(capsys, root, "login", "-u", "alice", "--password-stdin",
                             f"http://{reg.address}/")  # fmt: skip
        assert status == 0 and out == "Login Succeeded\n"
        assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600
        assert list(json.loads(docker_config.read_text())["auths"]) == [reg.address]
        status, out, err = cli(capsys, root, "pull", ref)
        assert status == 0, err
        assert "1: Pulling from team/app" in out and out.endswith(f"\n{ref}\n")
        status, out, _ = cli(capsys, root, "pull", "-q", ref)
        assert (status, out) == (0, f"{ref}\n")
        status, out, err = cli(capsys, root, "push", f"{reg.address}/team/app:1")
        assert status == 0, err
        assert "Layer already exists" in out and "1: digest: sha256:" in out
        status, out, _ = cli(capsys, root, "logout", reg.address)
        assert (status, out) == (0, f"Removing login credentials for {reg.address}\n")
        status, out, _ = cli(capsys, root, "logout", reg.address)
        assert (status, out) == (0, f"Not logged in to {reg.address}\n")


def test_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], docker_config: Path
) -> None:
    root = tmp_path / "engine"
    status, _, err = cli(capsys, root, "pull", "--tls-verify=maybe", "x")
    assert status == 125 and "true or false" in err
    status, _, err = cli(capsys, root, "push", "127.0.0.1:1/x@sha256:" + "0" * 64)
    assert status == 1 and "digest reference" in err
    status, _, err = cli(capsys, root, "pull", "--platform", "linux/amd64/x/y", "127.0.0.1:1/x")
    assert status == 1 and "invalid platform" in err
