"""cove.image.build.expand: build args, the global scope, and expansion per stage."""

from __future__ import annotations

import pytest

from cove.errors import DockerfileError
from cove.image.build.expand import (
    BUILTIN_ARGS,
    StageScope,
    automatic_args,
    check_signal,
    expand_from,
    global_scope,
    parse_expose,
)
from cove.image.build.instructions import (
    Add,
    Arg,
    ArgDecl,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Heredoc,
    Instruction,
    KeyValue,
    Label,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from cove.image.build.parser import parse_dockerfile
from cove.image.platform import Platform


def stage_instructions(text: str) -> tuple[Instruction, ...]:
    return parse_dockerfile("FROM scratch\n" + text).stages[0].instructions


def run_all(scope: StageScope, text: str) -> list[Instruction]:
    return [scope.expand(instruction) for instruction in stage_instructions(text)]


# --- automatic args ------------------------------------------------------------------------


def test_automatic_args() -> None:
    values = automatic_args("linux/arm/v7", "linux/amd64", "final")
    assert values == {
        "TARGETPLATFORM": "linux/arm/v7",
        "TARGETOS": "linux",
        "TARGETARCH": "arm",
        "TARGETVARIANT": "v7",
        "BUILDPLATFORM": "linux/amd64",
        "BUILDOS": "linux",
        "BUILDARCH": "amd64",
        "BUILDVARIANT": "",
        "TARGETSTAGE": "final",
    }


def test_automatic_args_default_to_the_build_platform() -> None:
    values = automatic_args(build_platform=Platform("linux", "aarch64"))
    assert values["TARGETPLATFORM"] == values["BUILDPLATFORM"] == "linux/arm64"
    assert values["TARGETVARIANT"] == ""
    assert "TARGETSTAGE" not in values


def test_automatic_args_of_this_host() -> None:
    values = automatic_args()
    assert values["BUILDOS"] == "linux"
    assert values["TARGETPLATFORM"] == values["BUILDPLATFORM"]


def test_builtin_args() -> None:
    assert {"HTTP_PROXY", "http_proxy", "no_proxy", "ALL_PROXY", "TARGETARCH"} <= BUILTIN_ARGS


# --- global scope and FROM -------------------------------------------------------------------

AUTO = automatic_args("linux/amd64", "linux/amd64")


def test_global_scope() -> None:
    dockerfile = parse_dockerfile("ARG A=1\nARG B=${A}2\nARG C\nARG D=d\nARG E=$D\nFROM x\n")
    scope = global_scope(dockerfile, {"D": "override"}, AUTO)
    assert (scope["A"], scope["B"], scope["D"], scope["E"]) == ("1", "12", "override", "override")
    assert "C" not in scope
    assert scope["TARGETARCH"] == "amd64"


def test_global_default_can_use_platform_args() -> None:
    dockerfile = parse_dockerfile("ARG ARCH=${TARGETARCH}\nFROM x\n")
    assert global_scope(dockerfile, {}, AUTO)["ARCH"] == "amd64"


def test_global_scope_error_names_the_line() -> None:
    dockerfile = parse_dockerfile("ARG A=1\nARG B=${A\nFROM x\n")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: failed to process"):
        global_scope(dockerfile, {}, AUTO)


def test_expand_from() -> None:
    dockerfile = parse_dockerfile(
        "ARG IMG=busybox\nARG TAG\nFROM --platform=$BUILDPLATFORM ${IMG}:${TAG:-latest} AS b\n"
    )
    scope = global_scope(dockerfile, {}, AUTO)
    assert expand_from(dockerfile.stages[0].from_, scope) == ("busybox:latest", "linux/amd64")


def test_from_sees_only_global_args() -> None:
    dockerfile = parse_dockerfile("FROM a\nARG IMG=b\nFROM $IMG\n")
    with pytest.raises(
        DockerfileError, match=r"^Dockerfile:3: base name \(\$IMG\) should not be blank"
    ):
        expand_from(dockerfile.stages[1].from_, global_scope(dockerfile, {}, AUTO))


def test_from_empty_platform() -> None:
    dockerfile = parse_dockerfile("FROM --platform=$NOPE a\n")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:1: empty platform value"):
        expand_from(dockerfile.stages[0].from_, {})


# --- ARG in a stage --------------------------------------------------------------------------


def test_arg_default_and_build_arg_override() -> None:
    scope = StageScope(build_args={"B": "from-cli"})
    arg = scope.expand(stage_instructions("ARG A=1 B=2 C\n")[0])
    assert isinstance(arg, Arg)
    assert arg.args == (ArgDecl("A", "1"), ArgDecl("B", "from-cli"), ArgDecl("C", None))
    assert scope.args == {"A": "1", "B": "from-cli"}
    assert scope.declared == ["A", "B", "C"]


def test_arg_takes_the_global_value_when_redeclared() -> None:
    scope = StageScope(global_args={"VERSION": "1.2", "OTHER": "x"})
    assert scope.expand_word("$VERSION") == ""  # not declared in the stage yet
    run_all(scope, "ARG VERSION\n")
    assert scope.expand_word("$VERSION-$OTHER") == "1.2-"


def test_arg_default_is_expanded_with_earlier_values() -> None:
    scope = StageScope(image_env=["HOME=/root"])
    run_all(scope, "ARG A=x\nARG B=${A}y C=$HOME/z\n")
    assert scope.args == {"A": "x", "B": "xy", "C": "/root/z"}


def test_build_arg_values_are_not_expanded() -> None:
    scope = StageScope(build_args={"A": "$HOME"}, image_env=["HOME=/root"])
    run_all(scope, "ARG A\n")
    assert scope.args["A"] == "$HOME"


def test_redeclared_arg_keeps_its_value() -> None:
    scope = StageScope()
    run_all(scope, "ARG A=1\nARG A\n")
    assert scope.args == {"A": "1"}
    assert scope.declared == ["A"]


def test_platform_args_need_a_declaration_in_a_stage() -> None:
    scope = StageScope(global_args=AUTO)
    assert scope.expand_word("$TARGETARCH") == ""
    run_all(scope, "ARG TARGETARCH\n")
    assert scope.expand_word("$TARGETARCH") == "amd64"


# --- ENV -----------------------------------------------------------------------------------


def test_env_pairs_see_the_values_from_before() -> None:
    scope = StageScope()
    _first, second, third = run_all(scope, "ENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")
    assert isinstance(second, Env) and second.pairs == (
        KeyValue("abc", "bye"),
        KeyValue("def", "hello"),
    )
    assert isinstance(third, Env) and third.pairs == (KeyValue("ghi", "bye"),)
    assert scope.config_env() == ["abc=bye", "def=hello", "ghi=bye"]


def test_env_quotes_and_escapes_are_processed() -> None:
    scope = StageScope()
    (env,) = run_all(scope, 'ENV A="two words" B=a\\ b C=\'$lit\' D="$A"\n')
    assert isinstance(env, Env)
    assert [p.value for p in env.pairs] == ["two words", "a b", "$lit", ""]


def test_env_legacy_value_keeps_inner_spaces() -> None:
    scope = StageScope()
    (env,) = run_all(scope, 'ENV MSG hello   "big  world"\n')
    assert isinstance(env, Env) and env.pairs == (KeyValue("MSG", "hello   big  world", True),)


def test_env_replaces_in_place_in_the_image_env() -> None:
    scope = StageScope(image_env=["PATH=/bin", "HOME=/root"])
    run_all(scope, "ENV PATH=/opt/bin:$PATH LANG=C\n")
    assert scope.config_env() == ["PATH=/opt/bin:/bin", "HOME=/root", "LANG=C"]


def test_env_wins_over_arg_in_either_order() -> None:
    scope = StageScope(build_args={"V": "cli"})
    run_all(scope, "ARG V\nENV V=env\n")
    assert scope.expand_word("$V") == "env"
    other = StageScope(build_args={"V": "cli"})
    run_all(other, "ENV V=env\nARG V\n")
    assert other.expand_word("$V") == "env"
    assert other.arg_pairs() == []
    assert "V=env" in other.run_env() and "V=cli" not in other.run_env()


def test_image_env_as_a_mapping() -> None:
    scope = StageScope(image_env={"A": "1"})
    assert scope.expand_word("$A") == "1"


# --- environments for RUN and the image -------------------------------------------------------


def test_run_env_and_arg_pairs() -> None:
    scope = StageScope(
        build_args={"HTTP_PROXY": "http://p:3128", "no_proxy": "localhost", "UNUSED": "x"},
        image_env=["PATH=/bin"],
    )
    run_all(scope, "ARG A=1 B\nENV C=3\n")
    assert scope.run_env() == [
        "PATH=/bin",
        "C=3",
        "A=1",
        "HTTP_PROXY=http://p:3128",
        "no_proxy=localhost",
    ]
    assert scope.config_env() == ["PATH=/bin", "C=3"]
    assert scope.arg_pairs() == [("A", "1")]


def test_declared_proxy_arg_is_an_ordinary_arg() -> None:
    scope = StageScope(build_args={"HTTP_PROXY": "p"})
    assert scope.expand_word("$HTTP_PROXY") == ""
    run_all(scope, "ARG HTTP_PROXY\n")
    assert scope.arg_pairs() == [("HTTP_PROXY", "p")]


def test_inherit_carries_env_and_args() -> None:
    parent = StageScope(global_args={"G": "g"}, build_args={"B": "b"}, image_env=["PATH=/bin"])
    run_all(parent, "ARG A=1\nENV E=2\n")
    child = parent.inherit()
    assert child.expand_word("$A$E$PATH") == "12/bin"
    run_all(child, "ENV E=3\nARG B\n")
    assert parent.env["E"] == "2" and "B" not in parent.args
    assert child.args == {"A": "1", "B": "b"}


# --- which instructions expand --------------------------------------------------------------

SCOPE_ENV = ["HOME=/root", "APP=demo", "PORT=8080", "SIG=SIGQUIT", "NAME=app"]


def expanded(text: str) -> Instruction:
    scope = StageScope(image_env=SCOPE_ENV)
    (instruction,) = run_all(scope, text)
    return instruction


def test_workdir_user_volume_stopsignal_label_expand() -> None:
    assert isinstance(w := expanded("WORKDIR $HOME/${APP}\n"), Workdir) and w.path == "/root/demo"
    assert isinstance(u := expanded('USER "${NAME}":staff\n'), User) and u.user == "app:staff"
    volume = expanded("VOLUME /data/$APP $HOME\n")
    assert isinstance(volume, Volume) and volume.paths == ("/data/demo", "/root")
    volume_json = expanded('VOLUME ["/v/$APP"]\n')
    assert isinstance(volume_json, Volume) and volume_json.paths == ("/v/demo",)
    assert isinstance(s := expanded("STOPSIGNAL $SIG\n"), StopSignal) and s.signal == "SIGQUIT"
    label = expanded('LABEL "$APP.version"="1 $PORT"\n')
    assert isinstance(label, Label) and label.pairs == (KeyValue("demo.version", "1 8080"),)


def test_expose_expands_and_normalises() -> None:
    expose = expanded("EXPOSE $PORT 53/UDP 7000-7002 ${PORT}/tcp\n")
    assert isinstance(expose, Expose)
    assert expose.ports == ("8080/tcp", "53/udp", "7000/tcp", "7001/tcp", "7002/tcp")


def test_expose_variable_with_several_ports() -> None:
    scope = StageScope(image_env=["PORTS=80 443"])
    (expose,) = run_all(scope, "EXPOSE $PORTS\n")
    assert isinstance(expose, Expose) and expose.ports == ("80/tcp", "443/tcp")


def test_copy_and_add_expand_paths_and_flags() -> None:
    copy = expanded("COPY --chown=$NAME:$NAME --chmod=${MODE:-644} $APP/*.txt ${HOME}/\n")
    assert isinstance(copy, Copy)
    assert (copy.sources, copy.dest, copy.chown, copy.chmod) == (
        ("demo/*.txt",),
        "/root/",
        "app:app",
        "644",
    )
    copy_json = expanded('COPY ["$APP file", "/dst/$APP"]\n')
    assert isinstance(copy_json, Copy) and copy_json.sources == ("demo file",)
    add = expanded("ADD --checksum=$SUM https://x/$APP.tgz /opt/\n")
    assert isinstance(add, Add) and add.sources == ("https://x/demo.tgz",)
    assert add.checksum == ""


def test_copy_heredoc_bodies_expand_unless_quoted() -> None:
    copy = expanded('COPY <<A <<"B" /etc/\nhome=$HOME "q" \\$x\nA\nhome=$HOME\nB\n')
    assert isinstance(copy, Copy)
    assert copy.heredocs == (
        Heredoc("A", 'home=/root "q" $x\n'),
        Heredoc("B", "home=$HOME\n", expand=False),
    )


def test_run_mounts_expand_but_the_command_does_not() -> None:
    run = expanded(
        "RUN --mount=type=cache,target=$HOME/.cache,id=$APP,uid=${UID:-1000} echo $HOME\n"
    )
    assert isinstance(run, Run)
    (mount,) = run.mounts
    assert (mount.target, mount.id, mount.uid) == ("/root/.cache", "demo", 1000)
    assert run.command.args == ("echo $HOME",)


def test_run_heredoc_is_left_to_the_shell() -> None:
    run = expanded("RUN <<EOF\necho $HOME\nEOF\n")
    assert isinstance(run, Run) and run.heredocs[0].content == "echo $HOME\n"


@pytest.mark.parametrize(
    ("text", "cls"),
    [
        ("CMD echo $HOME\n", Cmd),
        ('ENTRYPOINT ["$HOME"]\n', Entrypoint),
        ('SHELL ["/bin/$APP"]\n', Shell),
        ("HEALTHCHECK CMD curl $HOME\n", Healthcheck),
        ("ONBUILD RUN echo $HOME\n", Onbuild),
    ],
)
def test_commands_are_not_expanded(text: str, cls: type[Instruction]) -> None:
    (original,) = stage_instructions(text)
    assert isinstance(original, cls)
    assert StageScope(image_env=SCOPE_ENV).expand(original) is original


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("WORKDIR ${HOME\n", "failed to process '${HOME'"),
        ("STOPSIGNAL SIG$BAD\n", "STOPSIGNAL: invalid signal: SIGx"),
        ("VOLUME $NOTHING\n", "VOLUME specified can not be an empty string"),
        ("EXPOSE 80/$BAD\n", "EXPOSE: invalid protocol 'x'"),
        ("EXPOSE $NOTHING:80\n", "EXPOSE: invalid port specification ':80'"),
        ("ENV $NOTHING=1\n", "ENV names can not be blank"),
        (
            "RUN --mount=type=cache,target=/x,uid=$BAD y\n",
            "RUN --mount=type=cache,target=/x,uid=$BAD",
        ),
        ("ARG A=${B:?needed}\n", "failed to process '${B:?needed}': B: needed"),
    ],
)
def test_expansion_errors_name_the_line(text: str, message: str) -> None:
    scope = StageScope(image_env=["BAD=x"], file="Containerfile")
    instructions = parse_dockerfile("FROM a\n\n" + text).stages[0].instructions
    with pytest.raises(DockerfileError) as info:
        for instruction in instructions:
            scope.expand(instruction)
    assert str(info.value).startswith(f"Containerfile:3: {message}")


# --- helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "keys"),
    [
        ("80", ["80/tcp"]),
        ("80/udp", ["80/udp"]),
        ("80/SCTP", ["80/sctp"]),
        ("1-3", ["1/tcp", "2/tcp", "3/tcp"]),
        ("65535", ["65535/tcp"]),
    ],
)
def test_parse_expose(word: str, keys: list[str]) -> None:
    assert parse_expose(word) == keys


@pytest.mark.parametrize("word", ["0", "65536", "3-1", "a", "80/", "80/tcp/x", "1.2.3.4:80"])
def test_parse_expose_errors(word: str) -> None:
    with pytest.raises(ValueError):
        parse_expose(word)


@pytest.mark.parametrize("text", ["SIGTERM", "TERM", "sigkill", "9", "SIGRTMIN+3", "RTMAX-1"])
def test_check_signal(text: str) -> None:
    assert check_signal(text) == text


@pytest.mark.parametrize("text", ["SIGNOPE", "0", "65", "", "-9"])
def test_check_signal_errors(text: str) -> None:
    with pytest.raises(ValueError):
        check_signal(text)
