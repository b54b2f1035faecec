"""cove.image.build.plan: stages, dependencies, targets, order and pruning."""

from __future__ import annotations

import pytest

from cove.errors import BuildError, DockerfileError
from cove.image.build.parser import parse_dockerfile
from cove.image.build.plan import BuildPlan, Dependency, plan


def make_plan(text: str, **kwargs: object) -> BuildPlan:
    kwargs.setdefault("target_platform", "linux/amd64")
    kwargs.setdefault("build_platform", "linux/amd64")
    return plan(parse_dockerfile(text), **kwargs)  # type: ignore[arg-type]


def error(text: str, **kwargs: object) -> str:
    with pytest.raises(DockerfileError) as info:
        make_plan(text, **kwargs)
    return str(info.value)


def test_single_stage() -> None:
    result = make_plan("FROM busybox\nRUN x\n")
    assert result.target == 0
    assert result.levels == ((0,),)
    (stage,) = result.stages
    assert (stage.base_stage, stage.base_image, stage.platform) == (None, "busybox", None)
    assert stage.images == ("busybox",)
    assert stage.depends_on == ()
    assert result.target_plan is stage


def test_scratch_is_no_image_to_fetch() -> None:
    (stage,) = make_plan("FROM scratch\nCOPY a /\n").stages
    assert stage.base_image == "scratch" and stage.images == ()


MULTI = """\
ARG GO=1.22
FROM golang:${GO} AS build
RUN go build
FROM alpine AS tools
RUN apk add x
FROM build AS test
RUN go test
FROM scratch AS final
COPY --from=build /out/app /app
COPY --from=tools /usr/bin/x /x
COPY --from=nginx:alpine /etc/nginx /etc/nginx
"""


def test_multi_stage_levels_and_pruning() -> None:
    result = make_plan(MULTI)
    assert result.target == 3
    assert result.levels == ((0, 1), (3,))  # "test" is not needed
    assert [s.index for s in result.stages] == [0, 1, 3]
    build, tools, final = result.stages
    assert build.base_image == "golang:1.22"
    assert final.depends_on == (0, 1)
    assert final.images == ("nginx:alpine",)
    assert final.dependencies == (
        Dependency(8, "FROM", None, "scratch"),
        Dependency(9, "COPY", 0, None),
        Dependency(10, "COPY", 1, None),
        Dependency(11, "COPY", None, "nginx:alpine"),
    )
    assert (build.level, tools.level, final.level) == (0, 0, 1)
    with pytest.raises(KeyError):
        result[2]


def test_target_selects_and_prunes() -> None:
    result = make_plan(MULTI, target="TEST")
    assert result.target == 2
    assert result.levels == ((0,), (2,))
    test = result[2]
    assert (test.base_stage, test.base_image) == (0, None)
    assert test.depends_on == (0,)


def test_unknown_target_lists_the_stages() -> None:
    with pytest.raises(
        BuildError,
        match=r"target stage 'nope' could not be found \(stages: build, tools, test, final\)",
    ):
        make_plan(MULTI, target="nope")
    with pytest.raises(BuildError, match=r"none has a name"):
        make_plan("FROM a\n", target="x")


def test_from_a_stage_is_case_insensitive_and_uses_global_args() -> None:
    result = make_plan("ARG BASE=Builder\nFROM a AS builder\nFROM ${BASE}\n")
    assert result[1].base_stage == 0


def test_from_an_earlier_stage_with_a_tag_is_an_image() -> None:
    result = make_plan("FROM a AS base\nFROM base:1\n")
    assert result[1].base_stage is None and result[1].base_image == "base:1"


def test_from_a_later_stage_name_is_an_image() -> None:
    result = make_plan("FROM later\nFROM b AS later\n", target="later")
    assert result.levels == ((1,),)
    other = make_plan("FROM later\nFROM b AS later\nFROM c\nCOPY --from=0 /a /b\n")
    assert other[0].base_image == "later"


def test_duplicate_names_resolve_to_the_latest_earlier_stage() -> None:
    result = make_plan("FROM a AS x\nFROM b AS x\nFROM x\nCOPY --from=x /a /b\n")
    assert result[2].base_stage == 1
    assert result[2].depends_on == (1,)
    assert result.levels == ((1,), (2,))


def test_copy_from_index_and_run_mount_from() -> None:
    result = make_plan(
        "FROM a\nFROM b AS second\nFROM c\nCOPY --from=0 /x /y\n"
        "RUN --mount=type=bind,from=second,target=/s --mount=type=cache,from=img:1,target=/c x\n"
    )
    final = result[2]
    assert final.depends_on == (0, 1)
    assert final.images == ("c", "img:1")
    assert result.levels == ((0, 1), (2,))


def test_diamond_levels() -> None:
    result = make_plan(
        "FROM a AS base\nFROM base AS left\nFROM base AS right\n"
        "FROM base\nCOPY --from=left /l /l\nCOPY --from=right /r /r\n"
    )
    assert result.levels == ((0,), (1, 2), (3,))


def test_platform_is_expanded() -> None:
    result = make_plan(
        "FROM --platform=$BUILDPLATFORM a AS build\nFROM --platform=${TARGETPLATFORM} b\n"
        "COPY --from=build /a /b\n",
        target_platform="linux/arm64",
    )
    assert result[0].platform == "linux/amd64"
    assert result[1].platform == "linux/arm64"
    assert result.global_args["TARGETARCH"] == "arm64"


def test_build_args_reach_from_lines() -> None:
    result = make_plan("ARG TAG=1\nFROM img:$TAG\n", build_args={"TAG": "2"})
    assert result.stages[0].base_image == "img:2"
    assert result.global_args["TAG"] == "2"


def test_target_stage_arg() -> None:
    result = make_plan("FROM a AS one\nFROM b AS two\n", target="one")
    assert result.global_args["TARGETSTAGE"] == "one"


def test_new_scope_carries_the_plan_values() -> None:
    result = make_plan("# escape=`\nARG G=g\nFROM a\nARG G\nARG B\n", build_args={"B": "b"})
    scope = result.new_scope(["PATH=/bin"])
    for instruction in result.stages[0].stage.instructions:
        scope.expand(instruction)
    assert scope.args == {"G": "g", "B": "b"}
    assert scope.escape == "`"
    assert scope.expand_word("a` b") == "a b"
    assert scope.config_env() == ["PATH=/bin"]


# --- unused build args -------------------------------------------------------------------------


def test_unused_build_args() -> None:
    result = make_plan(
        "ARG GLOBAL\nFROM a AS unused\nARG ONLY_IN_UNUSED\nFROM b\nARG USED\n",
        build_args={
            "GLOBAL": "1",
            "USED": "2",
            "ONLY_IN_UNUSED": "3",
            "TYPO": "4",
            "HTTP_PROXY": "p",
            "TARGETARCH": "x",
        },
    )
    assert result.unused_build_args == ("ONLY_IN_UNUSED", "TYPO")
    assert result.build_args["USED"] == "2"


# --- errors --------------------------------------------------------------------------------------


def test_copy_from_own_stage_is_a_cycle() -> None:
    message = error("FROM a AS self\nRUN x\nCOPY --from=self /a /b\n")
    assert message.startswith("Dockerfile:3: circular dependency between build stages: self -> ")
    assert "COPY at line 3" in message


def test_copy_from_own_index_is_a_cycle() -> None:
    assert error("FROM a\nFROM b\nCOPY --from=1 /a /b\n").startswith(
        "Dockerfile:3: circular dependency between build stages: #1 -> #1 (COPY at line 3)"
    )


def test_cycle_through_two_stages_names_both_lines() -> None:
    message = error("FROM a AS one\nCOPY --from=two /x /y\nFROM b AS two\nCOPY --from=one /x /y\n")
    assert message.startswith("Dockerfile:")
    assert "circular dependency between build stages" in message
    assert "line 2" in message and "line 4" in message


def test_forward_reference_is_an_error() -> None:
    assert error("FROM a AS one\nCOPY --from=two /x /y\nFROM b AS two\n") == (
        "Dockerfile:2: COPY refers to stage two (line 3), which is defined after the current "
        "stage one: a stage can only use earlier stages"
    )
    assert error("FROM a\nCOPY --from=1 /x /y\nFROM b\n").startswith(
        "Dockerfile:2: COPY refers to stage #1 (line 3)"
    )
    assert error("FROM a\nRUN --mount=from=two,target=/t x\nFROM b AS two\n").startswith(
        "Dockerfile:2: RUN refers to stage two"
    )


def test_forward_reference_in_an_unbuilt_stage_is_still_an_error() -> None:
    assert error("FROM a AS x\nCOPY --from=y /a /b\nFROM b AS y\nFROM c\n").startswith(
        "Dockerfile:2: COPY refers to stage y"
    )


def test_stage_index_out_of_range() -> None:
    assert error("FROM a\nCOPY --from=5 /x /y\n").startswith(
        "Dockerfile:2: COPY --from=5: invalid stage index 5 (the file has 1 stage)"
    )


def test_unknown_stage_name_in_from_is_an_image() -> None:
    result = make_plan("FROM a\nCOPY --from=builder /x /y\n")
    assert result.stages[0].images == ("a", "builder")
    assert [str(note) for note in result.notes] == [
        "Dockerfile:2: COPY --from=builder: no stage is named 'builder'; using the image "
        "'builder' (stages: none has a name)"
    ]


def test_unknown_stage_close_to_a_stage_name_is_an_error() -> None:
    text = "FROM a AS builder\nRUN x\nFROM b\nCOPY --from=biulder /x /y\n"
    assert error(text) == (
        "Dockerfile:4: COPY --from=biulder: no stage is named 'biulder'; did you mean stage "
        "'builder'? (stages: builder; to use the image 'biulder', write it with a tag: "
        "biulder:latest)"
    )
    tagged = make_plan(text.replace("biulder", "biulder:latest"))
    assert tagged.stages[-1].images == ("b", "biulder:latest")
    assert error("FROM a AS builder\nFROM b\nRUN --mount=from=buildr,target=/t x\n").startswith(
        "Dockerfile:3: RUN --mount=from=buildr: no stage is named 'buildr'; did you mean stage "
        "'builder'?"
    )


def test_unknown_stage_that_is_no_valid_image_is_an_error() -> None:
    assert error("FROM a AS one\nFROM b\nCOPY --from=Two_Stage! /x /y\n") == (
        "Dockerfile:3: COPY --from=Two_Stage!: no stage is named 'two_stage!' (stages: one) "
        "and it is not a valid image reference"
    )


def test_from_an_invalid_image_reference() -> None:
    assert error("ARG TAG=a:b\nFROM busybox:$TAG\n").startswith(
        "Dockerfile:2: FROM busybox:a:b: invalid reference"
    )


def test_blank_base_name_names_the_line() -> None:
    assert error("FROM a\nFROM $NOTHING\n").startswith(
        "Dockerfile:2: base name ($NOTHING) should not be blank"
    )


# --- ONBUILD in base stages -------------------------------------------------------------------


def test_onbuild_triggers_of_a_base_stage_add_dependencies() -> None:
    result = make_plan(
        "FROM a AS assets\nFROM b AS base\nONBUILD COPY --from=assets /x /y\nFROM base\n"
    )
    assert result[2].depends_on == (0, 1)
    assert result[1].depends_on == ()
    assert result.levels == ((0, 1), (2,))


def test_onbuild_forward_reference_is_reported_at_the_onbuild_line() -> None:
    assert error(
        "FROM a AS base\nONBUILD COPY --from=late /x /y\nFROM base\nFROM c AS late\n"
    ).startswith("Dockerfile:2: COPY refers to stage late")
