"""`cove build --secret/--ssh` with `RUN --mount=type=secret|ssh`: the step sees them, the
image, its layers and the step cache never hold them (cove.engine.build_secrets)."""

from __future__ import annotations

import glob
import hashlib
import os
import socket
from pathlib import Path

import pytest

from tests.integration.engine.build_support import (
    build,
    built,
    cove,
    engine,
    nothing_left,
    run_in,
    text,
    write_context,
)

pytestmark = pytest.mark.root
__all__ = ["engine"]  # the fixture

SECRET = "s3cret-value-7f1c"


def secret_folders() -> list[str]:
    return glob.glob("/dev/shm/cove-build-secrets-*")


def blobs_holding(root: Path, needle: str) -> list[str]:
    """Stored blobs (layers, configs) whose bytes contain `needle`."""
    blobs = root / "images" / "blobs" / "sha256"
    return [p.name for p in blobs.iterdir() if needle.encode() in p.read_bytes()]


def test_a_secret_file_is_seen_by_its_step_only(engine: Path, tmp_path: Path) -> None:
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(SECRET)
    dockerfile = """\
FROM bb:1
RUN --mount=type=secret,id=token \\
    sh -c 'sha256sum < /run/secrets/token | cut -c1-16 > /file-hash && \\
           stat -c %a:%u:%g /run/secrets/token > /default-perm && \\
           ( echo x > /run/secrets/token 2>/dev/null || echo read-only > /ro )'
RUN --mount=type=secret,id=token,target=/etc/app/key,mode=0440,uid=5,gid=6,env=APP_KEY \\
    sh -c 'echo -n "$APP_KEY" | sha256sum | cut -c1-16 > /env-hash && \\
           stat -c %a:%u:%g /etc/app/key > /perm'
RUN --mount=type=secret,id=token,env=ONLY_ENV \\
    sh -c 'test -n "$ONLY_ENV" && ! test -e /run/secrets/token && touch /ok'
RUN --mount=type=secret,id=absent sh -c '! test -e /run/secrets/absent && touch /skipped'
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    image, _ = built(engine, context, "--secret", f"id=token,src={secret_file}")
    out = run_in(engine, image, "cat", "/default-perm", "/ro", "/perm", "/ok", "/skipped")
    assert out.split() == ["400:0:0", "read-only", "440:5:6"]
    expected = hashlib.sha256(SECRET.encode()).hexdigest()[:16]
    assert run_in(engine, image, "cat", "/file-hash", "/env-hash").split() == [expected] * 2
    traces = run_in(engine, image, "sh", "-c", "ls -d /run /run/secrets /etc/app 2>&1; env")
    assert traces.count("No such file or directory") == 3 and SECRET not in traces
    assert blobs_holding(engine, SECRET) == []  # no layer, config or history holds it
    assert secret_folders() == []

    # the value is not part of the cache key: another secret reuses the cached steps
    secret_file.write_text("another-value")
    _, progress = built(engine, context, "--secret", f"id=token,src={secret_file}")
    assert progress.count("--> Using cache") == 4
    nothing_left(engine)


def test_secrets_from_the_environment_and_required_ones(
    engine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dockerfile = """\
FROM bb:1
RUN --mount=type=secret,id=FROM_ENV --mount=type=secret,id=named \\
    sh -c 'cat /run/secrets/FROM_ENV /run/secrets/named > /both'
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    monkeypatch.setenv("FROM_ENV", "by-id\n")
    monkeypatch.setenv("OTHER_VAR", "by-env\n")
    image, _ = built(engine, context, "--secret", "id=FROM_ENV",
                     "--secret", "id=named,env=OTHER_VAR")  # fmt: skip
    assert run_in(engine, image, "cat", "/both") == "by-id\nby-env\n"

    required = write_context(tmp_path / "req", {"Dockerfile": (
        "FROM bb:1\nRUN --mount=type=secret,id=needed,required=true true\n"
    )})  # fmt: skip
    res = build(engine, required)
    out, err = text(res)
    assert res.returncode == 1 and out == ""
    assert "Dockerfile:2" in err and "secret needed is required" in err, err
    nothing_left(engine)


def test_an_ssh_agent_socket_is_forwarded(engine: Path, tmp_path: Path) -> None:
    agent_path = tmp_path / "agent.sock"
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    agent.bind(str(agent_path))
    agent.listen(1)
    try:
        dockerfile = """\
FROM bb:1
RUN --mount=type=ssh sh -c 'test -S "$SSH_AUTH_SOCK" && echo "$SSH_AUTH_SOCK" > /where'
RUN --mount=type=ssh,id=deploy,target=/agent sh -c 'test -S /agent && touch /second'
"""
        context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
        image, _ = built(engine, context, "--ssh", f"default={agent_path}",
                         "--ssh", f"deploy={agent_path}")  # fmt: skip
        assert run_in(engine, image, "cat", "/where", "/second") == "/run/buildkit/ssh_agent.0\n"
        gone = run_in(engine, image, "sh", "-c", "ls -d /run /agent 2>&1 || true")
        assert gone.count("No such file or directory") == 2
    finally:
        agent.close()
    nothing_left(engine)


def test_bad_secret_and_ssh_flags(
    engine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM bb:1\n"})
    plain_file = tmp_path / "not-a-socket"
    plain_file.write_text("")
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    for args, message in (
        (["--secret", "src=/etc/hostname"], "it needs id=ID"),
        (["--secret", "id=x,src=/nonexistent/file"], "cannot read /nonexistent/file"),
        (["--secret", "id=x,env=COVE_TEST_UNSET_VARIABLE"], "is not set"),
        (["--secret", "id=x,colour=blue"], "unknown key 'colour'"),
        (["--ssh", f"default={plain_file}"], "is not an agent's socket"),
        (["--ssh", "default"], "SSH_AUTH_SOCK is not set"),
    ):
        res = build(engine, context, *args)
        out, err = text(res)
        assert (res.returncode, out) == (1, ""), (args, err)
        assert message in err, (args, err)


def test_system_check_removes_the_secrets_of_a_killed_build(engine: Path) -> None:
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}"):
        pid += 1
    left = Path(f"/dev/shm/cove-build-secrets-{pid}-abcd")
    left.mkdir()
    (left / "0").write_text(SECRET)
    try:
        found = cove(engine, "system", "check")
        assert f"{left} left by a killed build" in found.stdout, found.stdout
        cove(engine, "system", "check", "--repair")
        assert not left.exists()
    finally:
        if left.exists():
            (left / "0").unlink()
            left.rmdir()
