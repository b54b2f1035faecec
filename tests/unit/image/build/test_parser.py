"""cove.image.build.parser: the file's structure, FROM, ARG, ENV and LABEL, bad files and
robustness; the errors naming the line. RUN and heredocs are in `test_parser_run.py`, the
other instructions in `test_parser_instructions.py`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.errors import BuildError, DockerfileError
from cove.image.build.expand import StageScope
from cove.image.build.instructions import (
    Arg,
    ArgDecl,
    Copy,
    Env,
    From,
    KeyValue,
    Label,
    Run,
)
from cove.image.build.parser import parse_dockerfile
from cove.image.build.plan import plan
from tests.unit.image.build.parser_helpers import error, one

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
