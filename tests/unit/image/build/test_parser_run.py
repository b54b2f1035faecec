"""cove.image.build.parser: RUN (shell and exec forms, --mount, --network, --security) and
heredocs (RUN, COPY, ADD)."""

from __future__ import annotations

import pytest

from cove.image.build.instructions import (
    Add,
    Cmd,
    CommandLine,
    Copy,
    Heredoc,
    Run,
)
from cove.image.build.parser import parse_dockerfile
from tests.unit.image.build.parser_helpers import error, one

# --- RUN -----------------------------------------------------------------------------------


def test_run_shell_form() -> None:
    run = one("RUN echo 'hello' && ls $HOME\n")
    assert isinstance(run, Run)
    assert run.command == CommandLine(("echo 'hello' && ls $HOME",), exec_form=False)
    assert run.command.argv() == ["/bin/sh", "-c", "echo 'hello' && ls $HOME"]
    assert run.command.argv(["bash", "-eu", "-c"]) == [
        "bash",
        "-eu",
        "-c",
        "echo 'hello' && ls $HOME",
    ]


def test_run_exec_form() -> None:
    run = one('RUN ["echo", "$HOME", "a b"]\n')
    assert isinstance(run, Run)
    assert run.command == CommandLine(("echo", "$HOME", "a b"), exec_form=True)
    assert run.command.argv(["ignored"]) == ["echo", "$HOME", "a b"]
    assert str(run.command) == '["echo", "$HOME", "a b"]'


def test_run_empty_exec_form_is_allowed() -> None:
    run = one("RUN []\n")
    assert isinstance(run, Run) and run.command == CommandLine((), True)


def test_run_shell_form_starting_with_a_bracket() -> None:
    run = one('RUN [ -f /etc/passwd ] && [ "$A" = b ]\n')
    assert isinstance(run, Run) and not run.command.exec_form


def test_run_cache_mount() -> None:
    run = one(
        "RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1,gid=2"
        " pip install x\n"
    )
    assert isinstance(run, Run)
    (mount,) = run.mounts
    assert (mount.type, mount.target, mount.id, mount.sharing) == (
        "cache",
        "/root/.cache",
        "pip",
        "locked",
    )
    assert (mount.mode, mount.uid, mount.gid, mount.readonly) == (0o755, 1, 2, False)
    assert run.mount_specs == (
        "type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1,gid=2",
    )


def test_run_bind_tmpfs_and_several_mounts() -> None:
    run = one(
        "RUN --mount=type=bind,source=src,target=/src,from=build,rw "
        "--mount=type=tmpfs,target=/tmp,size=64m --mount=target=/x make\n"
    )
    assert isinstance(run, Run)
    bind, tmpfs, default = run.mounts
    assert (bind.type, bind.source, bind.target, bind.from_, bind.readonly) == (
        "bind",
        "src",
        "/src",
        "build",
        False,
    )
    assert (tmpfs.type, tmpfs.size) == ("tmpfs", 64 << 20)
    assert (default.type, default.readonly) == ("bind", True)
    assert run.command.args == ("make",)


def test_run_mount_with_variables_is_kept_for_later() -> None:
    run = one("RUN --mount=type=cache,target=$DIR,uid=$UID x\n")
    assert isinstance(run, Run)
    assert run.mounts[0].target == "$DIR" and run.mounts[0].uid is None


@pytest.mark.parametrize("network", ["none", "default", "host"])
def test_run_network(network: str) -> None:
    run = one(f"RUN --network={network} wget x\n")
    assert isinstance(run, Run) and run.network == network


def test_run_security() -> None:
    run = one("RUN --security=insecure x\n")
    assert isinstance(run, Run) and run.security == "insecure"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RUN\n", "RUN requires at least one argument"),
        ("RUN --network=bridge x\n", "RUN: unsupported network mode 'bridge'"),
        ("RUN --security=loose x\n", "RUN: unsupported security mode"),
        ("RUN --mount=type=nfs,target=/x x\n", "RUN --mount=type=nfs,target=/x: unsupported"),
        ("RUN --mount=type=cache x\n", "RUN --mount=type=cache: mount type cache needs a target"),
        ("RUN --mount=type=cache,target=/x,bogus=1 y\n", "RUN --mount=type=cache,target=/x,bogus"),
        ("RUN --mount=type=cache,target=/x,from=$S y\n", "variable expansion is not supported"),
        ("RUN --mnt=type=cache x\n", "unknown flag for RUN: --mnt"),
        ("RUN --network=none --network=host x\n", "duplicate flag for RUN: --network"),
        ("RUN [\"echo\", 'hi']\n", "RUN: malformed JSON in exec form"),
        ('RUN ["echo", 1]\n', "RUN: when using the JSON array syntax"),
    ],
)
def test_run_errors(text: str, message: str) -> None:
    assert error("FROM a\n" + text).startswith(f"Dockerfile:2: {message}")


# --- heredocs ------------------------------------------------------------------------------


def test_run_heredoc_script() -> None:
    run = one("RUN <<EOF\napt-get update\napt-get install -y x\nEOF\n")
    assert isinstance(run, Run)
    assert run.heredocs == (Heredoc("EOF", "apt-get update\napt-get install -y x\n"),)
    assert run.heredoc_script == run.heredocs[0]
    assert (run.line, run.end_line) == (2, 5)


def test_run_heredoc_as_stdin_of_a_command() -> None:
    run = one("RUN python3 <<EOF\nprint(1)\nEOF\n")
    assert isinstance(run, Run)
    assert run.heredoc_script is None
    assert run.shell_text() == "python3 <<EOF\nprint(1)\nEOF"


def test_several_heredocs_on_one_line() -> None:
    dockerfile = parse_dockerfile(
        "FROM a\nRUN cat <<A >a && cat <<-'B' >b\none\nA\n\ttwo $X\n\tB\nRUN next\n"
    )
    run, following = dockerfile.stages[0].instructions
    assert isinstance(run, Run)
    assert run.heredocs == (
        Heredoc("A", "one\n"),
        Heredoc("B", "two $X\n", expand=False, chomp=True),
    )
    assert run.shell_text() == "cat <<A >a && cat <<-'B' >b\none\nA\ntwo $X\nB"
    assert following.line == 7


def test_heredoc_with_a_file_descriptor() -> None:
    run = one("RUN cat 3<<X\nbody\nX\n")
    assert isinstance(run, Run) and run.heredocs[0].fd == 3


def test_heredoc_after_a_continuation() -> None:
    run = one("RUN --network=none \\\n  cat <<EOF\nx\nEOF\n")
    assert isinstance(run, Run)
    assert run.heredocs == (Heredoc("EOF", "x\n"),)
    assert run.network == "none"


def test_run_exec_form_has_no_heredocs() -> None:
    dockerfile = parse_dockerfile('FROM a\nRUN ["cat", "<<EOF"]\nRUN x\n')
    first, second = dockerfile.stages[0].instructions
    assert isinstance(first, Run) and first.heredocs == ()
    assert second.line == 3


def test_copy_heredoc_creates_files() -> None:
    copy = one('COPY <<EOF <<"RAW" /etc/\nhello $NAME\nEOF\nno $EXPANSION\nRAW\n')
    assert isinstance(copy, Copy)
    assert copy.sources == ()
    assert copy.dest == "/etc/"
    assert copy.heredocs == (
        Heredoc("EOF", "hello $NAME\n"),
        Heredoc("RAW", "no $EXPANSION\n", expand=False),
    )


def test_copy_heredoc_mixed_with_paths() -> None:
    copy = one("COPY a.txt <<file.txt b.txt /dst/\ncontent\nfile.txt\n")
    assert isinstance(copy, Copy)
    assert copy.sources == ("a.txt", "b.txt")
    assert copy.heredocs == (Heredoc("file.txt", "content\n"),)


def test_add_heredoc() -> None:
    add = one("ADD <<EOF /x\ny\nEOF\n")
    assert isinstance(add, Add) and add.heredocs == (Heredoc("EOF", "y\n"),)


def test_heredocs_only_for_run_copy_add() -> None:
    dockerfile = parse_dockerfile("FROM a\nCMD cat <<EOF\nRUN x\n")
    cmd, run = dockerfile.stages[0].instructions
    assert isinstance(cmd, Cmd) and cmd.command.args == ("cat <<EOF",)
    assert isinstance(run, Run)


def test_unterminated_heredoc_names_the_instruction_line() -> None:
    assert error("FROM a\nRUN <<EOF\necho\n").startswith("Dockerfile:2: unterminated heredoc")


def test_heredoc_body_is_not_comment_or_continuation_processed() -> None:
    run = one("RUN <<EOF\n# keep me\nline \\\nEOF\n")
    assert isinstance(run, Run) and run.heredocs[0].content == "# keep me\nline \\\n"
