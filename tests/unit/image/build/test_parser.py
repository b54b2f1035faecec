"""cove.image.build.parser: every instruction and form, and the errors naming the line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.errors import BuildError, DockerfileError
from cove.image.build.expand import StageScope
from cove.image.build.instructions import (
    Add,
    Arg,
    ArgDecl,
    Cmd,
    CommandLine,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Heredoc,
    Instruction,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from cove.image.build.parser import parse_dockerfile, parse_duration, parse_instruction
from cove.image.build.plan import plan


def one(text: str) -> Instruction:
    """The single instruction after `FROM scratch`."""
    (instruction,) = parse_dockerfile("FROM scratch\n" + text).stages[0].instructions
    return instruction


def error(text: str) -> str:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile(text)
    return str(info.value)


# --- structure -----------------------------------------------------------------------------


def test_minimal() -> None:
    dockerfile = parse_dockerfile("FROM busybox\n")
    (stage,) = dockerfile.stages
    assert stage.index == 0 and stage.name is None and stage.instructions == ()
    assert stage.from_ == From(1, 1, "FROM busybox", image="busybox")
    assert dockerfile.filename == "Dockerfile"
    assert dockerfile.escape == "\\"


def test_stages_and_global_args() -> None:
    dockerfile = parse_dockerfile(
        "ARG A=1\nARG B\nFROM a AS one\nRUN x\nFROM b AS Two\nRUN y\nFROM one\n"
    )
    assert [arg.args for arg in dockerfile.global_args] == [(ArgDecl("A", "1"),), (ArgDecl("B"),)]
    assert [(s.index, s.name, s.from_.image) for s in dockerfile.stages] == [
        (0, "one", "a"),
        (1, "two", "b"),
        (2, None, "one"),
    ]
    assert [len(s.instructions) for s in dockerfile.stages] == [1, 1, 0]
    assert dockerfile.stage_named("TWO") is dockerfile.stages[1]
    assert dockerfile.stage_named("three") is None
    assert dockerfile.stages[2].label == "#2"


def test_instruction_names_are_case_insensitive() -> None:
    dockerfile = parse_dockerfile("from a as B\nrun echo\nCoPy x y\n")
    assert dockerfile.stages[0].name == "b"
    assert [type(i) for i in dockerfile.stages[0].instructions] == [Run, Copy]


def test_lines_and_original_text() -> None:
    dockerfile = parse_dockerfile("FROM a\n\nRUN echo \\\n  hi\nENV A=1\n")
    run, env = dockerfile.stages[0].instructions
    assert (run.line, run.end_line, run.original) == (3, 4, "RUN echo   hi")
    assert (env.line, env.original) == (5, "ENV A=1")


def test_bytes_input_and_bom() -> None:
    dockerfile = parse_dockerfile("\ufeffFROM a\n".encode())
    assert dockerfile.stages[0].from_.image == "a"


def test_filename_in_errors() -> None:
    with pytest.raises(DockerfileError, match=r"^Containerfile:2: unknown instruction: FORM$"):
        parse_dockerfile("FROM a\nFORM b\n", filename="Containerfile")


def test_duplicate_stage_names_are_noted() -> None:
    dockerfile = parse_dockerfile("FROM a AS x\nFROM b AS x\n")
    assert [str(note) for note in dockerfile.notes] == [
        "Dockerfile:2: stage name 'x' is already used at line 1; references to it mean this "
        "later stage"
    ]
    assert dockerfile.stage_named("x") is dockerfile.stages[1]


# --- FROM ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "image", "name", "platform"),
    [
        ("FROM busybox", "busybox", None, None),
        ("FROM scratch", "scratch", None, None),
        ("FROM busybox:1.36 AS build", "busybox:1.36", "build", None),
        ("FROM busybox as Build", "busybox", "build", None),
        ("FROM --platform=linux/arm64 busybox", "busybox", None, "linux/arm64"),
        ("FROM --platform=$BUILDPLATFORM ${IMG} AS b-1.x_y", "${IMG}", "b-1.x_y", "$BUILDPLATFORM"),
        ("FROM reg:5000/a/b@sha256:" + "0" * 64, "reg:5000/a/b@sha256:" + "0" * 64, None, None),
    ],
)
def test_from(line: str, image: str, name: str | None, platform: str | None) -> None:
    from_ = parse_dockerfile(line + "\n").stages[0].from_
    assert (from_.image, from_.name, from_.platform) == (image, name, platform)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM\n", "FROM requires either one or three arguments"),
        ("FROM a b\n", "FROM requires either one or three arguments"),
        ("FROM a AS\n", "FROM requires either one or three arguments"),
        ("FROM a FOR b\n", "FROM requires either one or three arguments"),
        ("FROM a AS 1x\n", "invalid name for build stage: '1x'"),
        ("FROM a AS b/c\n", "invalid name for build stage"),
        ("FROM --plaform=x a\n", "unknown flag for FROM: --plaform"),
        ("FROM --platform a\n", "missing a value on flag --platform"),
    ],
)
def test_from_errors(text: str, message: str) -> None:
    assert error(text).startswith(f"Dockerfile:1: {message}")


def test_reserved_stage_name_is_noted() -> None:
    notes = parse_dockerfile("FROM a AS scratch\n").notes
    assert "reserved" in notes[0].message


# --- ARG -----------------------------------------------------------------------------------


def test_arg_forms() -> None:
    arg = one('ARG A B=2 C="x y" D=\n')
    assert isinstance(arg, Arg)
    assert arg.args == (ArgDecl("A"), ArgDecl("B", "2"), ArgDecl("C", '"x y"'), ArgDecl("D", ""))


def test_arg_errors() -> None:
    assert error("FROM a\nARG\n").startswith("Dockerfile:2: ARG requires at least one argument")
    assert error("FROM a\nARG =x\n").startswith("Dockerfile:2: ARG names can not be blank")


# --- ENV and LABEL -------------------------------------------------------------------------


def test_env_key_value_form() -> None:
    env = one("ENV A=1 B=\"two words\" C=a\\ b D= E='x'\n")
    assert isinstance(env, Env)
    assert env.pairs == (
        KeyValue("A", "1"),
        KeyValue("B", '"two words"'),
        KeyValue("C", "a\\ b"),
        KeyValue("D", ""),
        KeyValue("E", "'x'"),
    )


def test_env_legacy_form() -> None:
    dockerfile = parse_dockerfile("FROM a\nENV NAME some  value here\n")
    (env,) = dockerfile.stages[0].instructions
    assert isinstance(env, Env)
    assert env.pairs == (KeyValue("NAME", "some  value here", legacy=True),)
    assert "legacy" in dockerfile.notes[0].message


def test_env_over_several_lines() -> None:
    env = one("ENV A=1 \\\n    B=2\n")
    assert isinstance(env, Env)
    assert [p.key for p in env.pairs] == ["A", "B"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ENV\n", "ENV requires at least one argument"),
        ("ENV A\n", "ENV must have two arguments"),
        ("ENV A=1 B\n", "ENV: syntax error - can't find = in 'B'"),
        ("ENV =1\n", "ENV names can not be blank"),
        ("LABEL\n", "LABEL requires at least one argument"),
        ("LABEL a=b c\n", "LABEL: syntax error"),
    ],
)
def test_env_and_label_errors(text: str, message: str) -> None:
    assert error("FROM a\n" + text).startswith(f"Dockerfile:2: {message}")


def test_label() -> None:
    label = one('LABEL org.opencontainers.image.title="My app" version=1.0\n')
    assert isinstance(label, Label)
    assert label.pairs == (
        KeyValue("org.opencontainers.image.title", '"My app"'),
        KeyValue("version", "1.0"),
    )
    legacy = one("LABEL description a b\n")
    assert isinstance(legacy, Label) and legacy.pairs == (KeyValue("description", "a b", True),)


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


# --- COPY and ADD --------------------------------------------------------------------------


def test_copy() -> None:
    copy = one("COPY --from=build --chown=1000:1000 --chmod=0644 --link a *.txt dir/ /dst/\n")
    assert isinstance(copy, Copy)
    assert copy.sources == ("a", "*.txt", "dir/")
    assert copy.dest == "/dst/"
    assert (copy.from_, copy.chown, copy.chmod, copy.link) == ("build", "1000:1000", "0644", True)
    assert not copy.exec_form


def test_copy_link_is_noted() -> None:
    dockerfile = parse_dockerfile("FROM a\nCOPY --link a b\n")
    assert "--link is accepted" in dockerfile.notes[0].message


def test_copy_json_form() -> None:
    copy = one('COPY ["a file", "b", "/dst dir/"]\n')
    assert isinstance(copy, Copy)
    assert (copy.sources, copy.dest, copy.exec_form) == (("a file", "b"), "/dst dir/", True)


def test_copy_other_flags() -> None:
    copy = one("COPY --parents --exclude=*.md --exclude=tmp a b\n")
    assert isinstance(copy, Copy)
    assert copy.parents and copy.excludes == ("*.md", "tmp")


def test_copy_from_index() -> None:
    copy = one("COPY --from=0 a b\n")
    assert isinstance(copy, Copy) and copy.from_ == "0"


def test_add() -> None:
    add = one(
        "ADD --chown=app --chmod=755 --checksum=sha256:abc --keep-git-dir=true --unpack=false "
        "https://example.com/a.tar.gz /opt/\n"
    )
    assert isinstance(add, Add)
    assert add.sources == ("https://example.com/a.tar.gz",)
    assert (add.chown, add.chmod, add.checksum, add.keep_git_dir, add.unpack) == (
        "app",
        "755",
        "sha256:abc",
        True,
        False,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("COPY a\n", "COPY requires at least two arguments"),
        ("COPY\n", "COPY requires at least two arguments"),
        ("ADD a\n", "ADD requires at least two arguments"),
        ("COPY --form=x a b\n", "unknown flag for COPY: --form"),
        ("ADD --from=x a b\n", "unknown flag for ADD: --from"),
        ("COPY --from=$X a b\n", "variable expansion is not supported for --from"),
        ("COPY --from= a b\n", "COPY: --from needs"),
        ("COPY --link=maybe a b\n", "expecting a boolean value for --link"),
        ("COPY --chown a b\n", "missing a value on flag --chown"),
        ("COPY [\"a\", 'b']\n", "COPY: malformed JSON"),
    ],
)
def test_copy_errors(text: str, message: str) -> None:
    assert error("FROM a\n" + text).startswith(f"Dockerfile:2: {message}")


# --- simple instructions ---------------------------------------------------------------------


def test_workdir_user_stopsignal_maintainer() -> None:
    assert one("WORKDIR /a b\n") == Workdir(2, 2, "WORKDIR /a b", path="/a b")
    assert one("USER app:staff\n") == User(2, 2, "USER app:staff", user="app:staff")
    assert one("STOPSIGNAL SIGQUIT\n") == StopSignal(2, 2, "STOPSIGNAL SIGQUIT", signal="SIGQUIT")
    maintainer = one("MAINTAINER Jane <j@example.com>\n")
    assert maintainer == Maintainer(
        2, 2, "MAINTAINER Jane <j@example.com>", name="Jane <j@example.com>"
    )


def test_maintainer_is_deprecated() -> None:
    assert "deprecated" in parse_dockerfile("FROM a\nMAINTAINER x\n").notes[0].message


@pytest.mark.parametrize("keyword", ["WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"])
def test_single_argument_instructions_need_one(keyword: str) -> None:
    assert error(f"FROM a\n{keyword}\n") == f"Dockerfile:2: {keyword} requires exactly one argument"


def test_expose() -> None:
    expose = one("EXPOSE 80 443/tcp 53/udp 8000-8010 $PORT\n")
    assert isinstance(expose, Expose)
    assert expose.ports == ("80", "443/tcp", "53/udp", "8000-8010", "$PORT")
    assert error("FROM a\nEXPOSE\n").startswith("Dockerfile:2: EXPOSE requires at least one")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("EXPOSE 80/http\n", "EXPOSE: invalid protocol 'http'"),
        ("EXPOSE 99999\n", "EXPOSE: invalid port range '99999'"),
        ("EXPOSE 127.0.0.1:80\n", "EXPOSE: invalid port specification"),
        ("STOPSIGNAL SIGNOPE\n", "STOPSIGNAL: invalid signal: SIGNOPE"),
    ],
)
def test_literal_ports_and_signals_are_checked_early(text: str, message: str) -> None:
    assert error("FROM a\n" + text).startswith(f"Dockerfile:2: {message}")


def test_ports_and_signals_with_variables_are_checked_later() -> None:
    assert isinstance(one("EXPOSE $PORT/udp\n"), Expose)
    assert isinstance(one("STOPSIGNAL $SIG\n"), StopSignal)


def test_volume_forms() -> None:
    assert one('VOLUME ["/data", "/logs"]\n') == Volume(
        2, 2, 'VOLUME ["/data", "/logs"]', paths=("/data", "/logs"), exec_form=True
    )
    assert one("VOLUME /data /logs\n") == Volume(
        2, 2, "VOLUME /data /logs", paths=("/data", "/logs"), exec_form=False
    )
    assert error("FROM a\nVOLUME\n").startswith("Dockerfile:2: VOLUME requires at least one")
    assert error('FROM a\nVOLUME [""]\n').startswith("Dockerfile:2: VOLUME specified can not")


@pytest.mark.parametrize(("keyword", "cls"), [("CMD", Cmd), ("ENTRYPOINT", Entrypoint)])
def test_cmd_and_entrypoint_keep_their_form(keyword: str, cls: type[Cmd | Entrypoint]) -> None:
    exec_form = one(f'{keyword} ["/bin/app", "--flag"]\n')
    shell_form = one(f"{keyword} /bin/app --flag $X\n")
    assert isinstance(exec_form, cls) and isinstance(shell_form, cls)
    assert exec_form.command == CommandLine(("/bin/app", "--flag"), exec_form=True)
    assert shell_form.command == CommandLine(("/bin/app --flag $X",), exec_form=False)
    assert error(f"FROM a\n{keyword}\n").startswith(f"Dockerfile:2: {keyword} requires")


def test_entrypoint_empty_array_resets() -> None:
    entrypoint = one("ENTRYPOINT []\n")
    assert isinstance(entrypoint, Entrypoint) and entrypoint.command == CommandLine((), True)


def test_shell() -> None:
    assert one('SHELL ["powershell", "-command"]\n') == Shell(
        2, 2, 'SHELL ["powershell", "-command"]', args=("powershell", "-command")
    )
    assert "SHELL requires the arguments to be in JSON form" in error("FROM a\nSHELL sh -c\n")
    assert "SHELL requires at least one argument" in error("FROM a\nSHELL []\n")


# --- HEALTHCHECK -------------------------------------------------------------------------------


def test_healthcheck_none() -> None:
    health = one("HEALTHCHECK NONE\n")
    assert isinstance(health, Healthcheck) and health.test == ("NONE",)


def test_healthcheck_shell_form_with_options() -> None:
    health = one(
        "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms --start-interval=2s "
        "--retries=3 CMD curl -f http://localhost/ || exit 1\n"
    )
    assert isinstance(health, Healthcheck)
    assert health.test == ("CMD-SHELL", "curl -f http://localhost/ || exit 1")
    assert (health.interval, health.timeout, health.start_period, health.start_interval) == (
        30_000_000_000,
        90_000_000_000,
        500_000_000,
        2_000_000_000,
    )
    assert health.retries == 3


def test_healthcheck_exec_form_defaults() -> None:
    health = one('HEALTHCHECK cmd ["/bin/check", "-q"]\n')
    assert isinstance(health, Healthcheck)
    assert health.test == ("CMD", "/bin/check", "-q")
    assert (health.interval, health.retries) == (0, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("HEALTHCHECK\n", "HEALTHCHECK requires an argument"),
        ("HEALTHCHECK NONE x\n", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK --interval=1s NONE\n", "HEALTHCHECK NONE takes no options"),
        ("HEALTHCHECK CURL x\n", "unknown type 'CURL' in HEALTHCHECK (try CMD)"),
        ("HEALTHCHECK CMD\n", "HEALTHCHECK CMD requires a command"),
        ("HEALTHCHECK --interval=10 CMD x\n", "HEALTHCHECK: invalid duration for --interval"),
        ("HEALTHCHECK --timeout=10us CMD x\n", "HEALTHCHECK: --timeout '10us' cannot be less"),
        ("HEALTHCHECK --retries=-1 CMD x\n", "HEALTHCHECK: --retries cannot be negative"),
        ("HEALTHCHECK --retries=x CMD x\n", "HEALTHCHECK: invalid --retries"),
        ("HEALTHCHECK --every=1s CMD x\n", "unknown flag for HEALTHCHECK: --every"),
    ],
)
def test_healthcheck_errors(text: str, message: str) -> None:
    assert error("FROM a\n" + text).startswith(f"Dockerfile:2: {message}")


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("1s", 10**9),
        ("1.5s", 1_500_000_000),
        ("1h2m3s", 3_723_000_000_000),
        ("250ms", 250_000_000),
        ("10us", 10_000),
        ("7ns", 7),
        (".5m", 30_000_000_000),
    ],
)
def test_parse_duration(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "10", "1x", "s", "1s2"])
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --- ONBUILD -------------------------------------------------------------------------------


def test_onbuild() -> None:
    onbuild = one("ONBUILD COPY --chown=app . /src\n")
    assert isinstance(onbuild, Onbuild)
    assert onbuild.expression == "COPY --chown=app . /src"
    assert isinstance(onbuild.trigger, Copy)
    assert onbuild.trigger.chown == "app" and onbuild.trigger.line == 2


def test_onbuild_with_heredoc_keeps_the_body_in_the_expression() -> None:
    onbuild = one("ONBUILD RUN <<EOF\necho hi\nEOF\n")
    assert isinstance(onbuild, Onbuild)
    assert onbuild.expression == "RUN <<EOF\necho hi\nEOF"
    assert isinstance(onbuild.trigger, Run) and onbuild.trigger.heredocs == (
        Heredoc("EOF", "echo hi\n"),
    )
    again = parse_instruction(onbuild.expression, line=9)
    assert isinstance(again, Run) and again.heredocs == onbuild.trigger.heredocs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ONBUILD\n", "ONBUILD requires at least one argument"),
        ("ONBUILD ONBUILD RUN x\n", "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x\n", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD maintainer x\n", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("ONBUILD BOGUS x\n", "unknown instruction: BOGUS"),
        ("ONBUILD COPY a\n", "COPY requires at least two arguments"),
    ],
)
def test_onbuild_errors(text: str, message: str) -> None:
    assert error("FROM a\n" + text).startswith(f"Dockerfile:2: {message}")


def test_parse_instruction_for_triggers() -> None:
    instruction = parse_instruction("RUN echo \\\n  hi", line=12)
    assert isinstance(instruction, Run)
    assert (instruction.line, instruction.end_line) == (12, 12)
    assert instruction.command.args == ("echo   hi",)
    with pytest.raises(DockerfileError, match=r"^Dockerfile:4: an ONBUILD trigger must be"):
        parse_instruction("RUN a\nRUN b", line=4)
    with pytest.raises(DockerfileError, match=r"^Dockerfile:4: empty instruction"):
        parse_instruction("# nothing", line=4)


def test_parse_instruction_with_backtick_escape() -> None:
    instruction = parse_instruction("COPY c:\\a `\n d", escape="`")
    assert isinstance(instruction, Copy) and instruction.sources == ("c:\\a",)


# --- bad files -------------------------------------------------------------------------------


def test_unknown_instruction() -> None:
    assert error("FROM a\nRUN x\nFORM b\n") == "Dockerfile:3: unknown instruction: FORM"


def test_missing_from() -> None:
    assert error("RUN x\n") == (
        "Dockerfile:1: RUN before the first FROM: only ARG instructions may come before FROM"
    )
    assert error("ARG A\n# only args\n") == (
        "Dockerfile:2: missing FROM: the file has no build stage"
    )
    assert error("") == "Dockerfile:1: the file has no instructions (missing FROM)"
    assert error("# comment\n\n") == "Dockerfile:2: the file has no instructions (missing FROM)"


@pytest.mark.parametrize("keyword", ["ENV A=1", "LABEL a=b", "WORKDIR /x", "ONBUILD RUN x"])
def test_instruction_before_from(keyword: str) -> None:
    assert error(f"ARG X\n{keyword}\nFROM a\n").startswith(
        f"Dockerfile:2: {keyword.split()[0]} before the first FROM"
    )


def test_malformed_exec_form_names_the_line() -> None:
    assert error('FROM a\n\nCMD ["a", "b",]\n').startswith(
        'Dockerfile:3: CMD: malformed JSON in exec form: ["a", "b",]'
    )


def test_flag_errors_name_the_line() -> None:
    assert error("FROM a\nWORKDIR --x=1 /a\n") == "Dockerfile:2: unknown flag for WORKDIR: --x"


def test_continuation_at_end_of_file() -> None:
    assert error("FROM a\nRUN apt-get install \\\n   curl \\\n").startswith(
        "Dockerfile:2: unexpected end of file"
    )


def test_empty_continuation_is_noted() -> None:
    dockerfile = parse_dockerfile("FROM a\nRUN a \\\n\n b\n")
    assert [note.line for note in dockerfile.notes] == [2]
    assert "empty continuation line" in dockerfile.notes[0].message


def test_syntax_directive_is_noted() -> None:
    dockerfile = parse_dockerfile("# syntax=docker/dockerfile:1.7\n# check=error=true\nFROM a\n")
    assert dockerfile.directives.syntax == "docker/dockerfile:1.7"
    assert [str(note) for note in dockerfile.notes] == [
        "Dockerfile:1: # syntax=docker/dockerfile:1.7 is ignored: cove has its own Dockerfile "
        "frontend",
        "Dockerfile:2: # check= is ignored",
    ]


def test_invalid_utf8() -> None:
    with pytest.raises(DockerfileError, match=r"^Dockerfile: not valid UTF-8"):
        parse_dockerfile(b"FROM a\n\xff\n")


def test_real_world_dockerfile() -> None:
    text = r"""# syntax=docker/dockerfile:1
ARG GO_VERSION=1.22
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
# download modules first
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /out/app ./cmd/app

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/app /app
USER nonroot:nonroot
EXPOSE 8080
HEALTHCHECK --interval=10s CMD ["/app", "healthcheck"]
ENTRYPOINT ["/app"]
"""
    dockerfile = parse_dockerfile(text)
    assert [s.name for s in dockerfile.stages] == ["build", None]
    build, final = dockerfile.stages
    assert [i.keyword for i in build.instructions] == [
        "WORKDIR",
        "COPY",
        "RUN",
        "COPY",
        "ARG",
        "RUN",
    ]
    assert [i.keyword for i in final.instructions] == [
        "COPY",
        "USER",
        "EXPOSE",
        "HEALTHCHECK",
        "ENTRYPOINT",
    ]
    last_run = build.instructions[-1]
    assert isinstance(last_run, Run) and len(last_run.mounts) == 2
    assert (last_run.line, last_run.end_line) == (11, 13)


# --- robustness ------------------------------------------------------------------------------

_TOKENS = [
    "FROM a",
    "FROM a AS b",
    "FROM b",
    "ARG X=1",
    "RUN echo",
    "RUN <<EOF",
    "RUN <<-'E'",
    "EOF",
    "\tE",
    "COPY",
    "COPY --from=b",
    "COPY --from=0",
    "ADD",
    "ENV",
    "LABEL",
    "ONBUILD",
    "HEALTHCHECK",
    "CMD",
    "SHELL",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
    "--mount=type=cache,target=/c",
    "--network=none",
    '["a", "b"]',
    "['a']",
    "[",
    "]",
    " ",
    "\n",
    "\\",
    "\\\n",
    "`",
    "#",
    "# escape=`\n",
    '"',
    "'",
    "$X",
    "${X:-y}",
    "${",
    "=",
    "x",
    "/dst",
    "NONE",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=30).map("".join))
def test_parser_raises_only_dockerfile_errors(text: str) -> None:
    try:
        dockerfile = parse_dockerfile(text)
    except DockerfileError:
        return
    try:
        result = plan(dockerfile, target_platform="linux/amd64", build_platform="linux/amd64")
    except BuildError:
        return
    scopes: dict[int, StageScope] = {}
    for stage_plan in result.stages:
        base = stage_plan.base_stage
        scope = scopes[base].inherit() if base is not None else result.new_scope()
        scopes[stage_plan.index] = scope
        for instruction in stage_plan.stage.instructions:
            try:
                scope.expand(instruction)
            except DockerfileError:
                break
