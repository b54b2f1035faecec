"""Which stages a build runs, on what, and in what order.

- A stage's base is an earlier stage when its FROM (expanded with the global scope)
  names one (case-insensitive); otherwise an image (`scratch`: none).
- `COPY --from=X` and `RUN --mount=...,from=X` name a stage (by name or index) or else
  an image. They may not name the stage they are in (a cycle) nor a later stage (a
  forward reference: the stage would not be built yet); both are errors naming the
  lines. ONBUILD triggers of a base *stage* run in the stage built on it, so their
  `--from`s count for that stage (triggers of base *images* are the executor's).
- The target is the last stage, or `--target NAME`; only the stages it needs are built.
- `levels`: stages grouped so each depends only on earlier groups; the stages of a
  group can be built in parallel.
- A `--from` that names no stage must be a valid image reference; a plain name close to
  a stage's name (`--from=biulder`) is an error taken for a typo (a tag, `name:latest`,
  says the image is meant); other plain names are noted. A FROM image must be a valid
  reference.
- Unused build args: `--build-arg`s no ARG in the global scope or in a built stage
  declares (the built-in proxy and platform args excepted), for a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

from cove.errors import BuildError, DockerfileError, InvalidReference
from cove.image.build.expand import (
    BUILTIN_ARGS,
    StageScope,
    automatic_args,
    expand_from,
    global_scope,
)
from cove.image.build.instructions import Arg, Copy, Instruction, Note, Onbuild, Run
from cove.image.reference import parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from cove.image.build.instructions import Dockerfile, Stage
    from cove.image.platform import Platform


@dataclass(frozen=True)
class Dependency:
    """A stage's use of another stage or of an image, and where it is written."""

    line: int
    keyword: str  # FROM, COPY, RUN
    stage: int | None  # the stage used, or None for an image
    image: str | None  # the image used (COPY --from=busybox), or None for a stage


@dataclass(frozen=True)
class StagePlan:
    """One stage to build."""

    stage: Stage
    base_stage: int | None  # the stage it is built on, or None
    base_image: str | None  # else the image it is built on (`scratch` for none)
    platform: str | None  # FROM --platform, expanded
    dependencies: tuple[Dependency, ...]  # COPY --from / RUN --mount from= (and the base)
    level: int  # 0: needs no other stage

    @property
    def index(self) -> int:
        return self.stage.index

    @property
    def depends_on(self) -> tuple[int, ...]:
        """The stages this one needs, base included, in index order."""
        return tuple(sorted({d.stage for d in self.dependencies if d.stage is not None}))

    @property
    def images(self) -> tuple[str, ...]:
        """The images this one needs (base image included, `scratch` excluded)."""
        seen = dict.fromkeys(d.image for d in self.dependencies if d.image is not None)
        return tuple(image for image in seen if image.lower() != "scratch")


@dataclass(frozen=True)
class BuildPlan:
    """The stages to build for one target, in an order that respects dependencies."""

    dockerfile: Dockerfile
    target: int
    stages: tuple[StagePlan, ...]  # by level, then index
    levels: tuple[tuple[int, ...], ...]  # stage indexes per level
    global_args: dict[str, str]  # what FROM lines saw; what `ARG NAME` in a stage picks up
    build_args: dict[str, str]
    unused_build_args: tuple[str, ...]
    notes: tuple[Note, ...] = ()  # `--from` values taken for images, ...

    def __getitem__(self, index: int) -> StagePlan:
        for plan in self.stages:
            if plan.index == index:
                return plan
        raise KeyError(index)

    @property
    def target_plan(self) -> StagePlan:
        return self[self.target]

    def new_scope(self, image_env: Iterable[str] | Mapping[str, str] = ()) -> StageScope:
        """The scope a stage built on an image starts with (`image_env`: the image's
        `config.Env`); a stage built on a stage starts with `parent_scope.inherit()`."""
        return StageScope(
            global_args=self.global_args,
            build_args=self.build_args,
            image_env=image_env,
            file=self.dockerfile.filename,
            escape=self.dockerfile.escape,
        )


def _stage_reference(dockerfile: Dockerfile, value: str) -> int | None:
    """The index of the stage `value` names (a name, case-insensitive, or an index)."""
    if value.isdigit():
        return int(value)
    stage = dockerfile.stage_named(value)
    return None if stage is None else stage.index


def _uses(instruction: Instruction) -> Iterator[tuple[str, str]]:
    """(keyword, from-value) of each use of another stage or image in `instruction`."""
    if isinstance(instruction, Onbuild):
        return
    if isinstance(instruction, Copy) and instruction.from_ is not None:
        yield "COPY", instruction.from_
    elif isinstance(instruction, Run):
        for mount in instruction.mounts:
            if mount.from_ is not None:
                yield "RUN", mount.from_


def _spelled(keyword: str, value: str) -> str:
    return f"RUN --mount=from={value}" if keyword == "RUN" else f"{keyword} --from={value}"


def _check_image(
    dockerfile: Dockerfile, keyword: str, value: str, line: int, notes: list[Note]
) -> None:
    """A `--from` that names no stage is an image: it must be a valid reference; a plain
    name close to a stage name is taken for a typo (write a tag to mean the image)."""
    names = [stage.name for stage in dockerfile.stages if stage.name is not None]
    listing = ", ".join(names) if names else "none has a name"
    try:
        parse_reference(value)
    except InvalidReference:
        raise DockerfileError(
            f"{_spelled(keyword, value)}: no stage is named {value.lower()!r} (stages: {listing}) "
            "and it is not a valid image reference",
            file=dockerfile.filename,
            line=line,
        ) from None
    if any(ch in value for ch in "/:@"):
        return
    import difflib

    close = difflib.get_close_matches(value.lower(), names, n=1, cutoff=0.8)
    if close:
        raise DockerfileError(
            f"{_spelled(keyword, value)}: no stage is named {value!r}; did you mean stage "
            f"{close[0]!r}? (stages: {listing}; to use the image {value!r}, write it with a "
            f"tag: {value}:latest)",
            file=dockerfile.filename,
            line=line,
        )
    notes.append(
        Note(
            dockerfile.filename,
            line,
            f"{_spelled(keyword, value)}: no stage is named {value!r}; using the image "
            f"{value!r} (stages: {listing})",
        )
    )


def _dependencies(
    dockerfile: Dockerfile, instructions: list[Instruction], notes: list[Note]
) -> list[Dependency]:
    out = []
    count = len(dockerfile.stages)
    for instruction in instructions:
        for keyword, value in _uses(instruction):
            index = _stage_reference(dockerfile, value)
            if value.isdigit():
                assert index is not None
                if index >= count:
                    raise DockerfileError(
                        f"{_spelled(keyword, value)}: invalid stage index {index} (the file has "
                        f"{count} stage{'s' if count != 1 else ''})",
                        file=dockerfile.filename,
                        line=instruction.line,
                    )
            if index is None:
                _check_image(dockerfile, keyword, value, instruction.line, notes)
                out.append(Dependency(instruction.line, keyword, None, value))
            else:
                out.append(Dependency(instruction.line, keyword, index, None))
    return out


def _check_cycles(dockerfile: Dockerfile, edges: dict[int, list[Dependency]]) -> None:
    """A cycle between stages is an error naming the lines that close it."""
    state: dict[int, int] = {}  # 1: on the path, 2: done
    path: list[tuple[int, Dependency | None]] = []

    def visit(node: int, via: Dependency | None) -> None:
        state[node] = 1
        path.append((node, via))
        for dep in edges.get(node, []):
            assert dep.stage is not None
            if state.get(dep.stage) == 1:
                start = next(i for i, (n, _) in enumerate(path) if n == dep.stage)
                cycle = [*path[start + 1 :], (dep.stage, dep)]
                stages = dockerfile.stages
                steps = " -> ".join(
                    f"{stages[n].label} ({d.keyword} at line {d.line})"
                    for n, d in cycle
                    if d is not None
                )
                raise DockerfileError(
                    f"circular dependency between build stages: {stages[dep.stage].label} -> "
                    f"{steps}",
                    file=dockerfile.filename,
                    line=dep.line,
                )
            if state.get(dep.stage) is None:
                visit(dep.stage, dep)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, None)


def plan(
    dockerfile: Dockerfile,
    *,
    target: str | None = None,
    build_args: Mapping[str, str] | None = None,
    target_platform: str | Platform | None = None,
    build_platform: str | Platform | None = None,
) -> BuildPlan:
    """The plan to build `target` (default: the last stage)."""
    build_args = dict(build_args or {})
    stages = dockerfile.stages
    if target is None:
        target_index = len(stages) - 1
    else:
        found = dockerfile.stage_named(target)
        if found is None:
            names = [stage.name for stage in stages if stage.name is not None]
            listing = ", ".join(names) if names else "none has a name"
            raise BuildError(f"target stage {target!r} could not be found (stages: {listing})")
        target_index = found.index
    target_name = stages[target_index].name
    scope = global_scope(
        dockerfile,
        build_args,
        automatic_args(target_platform, build_platform, target_name),
    )

    # bases: FROM names an earlier stage, else an image
    notes: list[Note] = []
    bases: list[tuple[int | None, str | None, str | None]] = []
    for stage in stages:
        image, platform = expand_from(
            stage.from_, scope, file=dockerfile.filename, escape=dockerfile.escape
        )
        base_stage = None
        for earlier in stages[: stage.index]:
            if earlier.name is not None and earlier.name == image.lower():
                base_stage = earlier.index  # the latest earlier stage of that name
        if base_stage is None and image != "scratch":
            try:
                parse_reference(image)
            except InvalidReference as exc:
                raise DockerfileError(
                    f"FROM {image}: {exc}", file=dockerfile.filename, line=stage.line
                ) from None
        bases.append((base_stage, None if base_stage is not None else image, platform))

    # dependencies, with the ONBUILD triggers of base stages
    deps: dict[int, list[Dependency]] = {}
    for stage in stages:
        base_stage, base_image, _ = bases[stage.index]
        instructions = list(stage.instructions)
        if base_stage is not None:
            triggers = [
                i.trigger for i in stages[base_stage].instructions if isinstance(i, Onbuild)
            ]
            instructions = [*triggers, *instructions]
        found_deps = _dependencies(dockerfile, instructions, notes)
        head = Dependency(stage.line, "FROM", base_stage, base_image)
        deps[stage.index] = [head, *found_deps]

    stage_edges = {i: [d for d in ds if d.stage is not None] for i, ds in deps.items()}
    _check_cycles(dockerfile, stage_edges)
    for index, edges in stage_edges.items():
        for dep in edges:
            assert dep.stage is not None
            if dep.stage > index:
                later = stages[dep.stage]
                raise DockerfileError(
                    f"{dep.keyword} refers to stage {later.label} (line {later.line}), which is "
                    f"defined after the current stage {stages[index].label}: a stage can only "
                    "use earlier stages",
                    file=dockerfile.filename,
                    line=dep.line,
                )

    # the stages the target needs
    needed: set[int] = set()
    todo = [target_index]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        todo.extend(d.stage for d in stage_edges[index] if d.stage is not None)

    levels_of: dict[int, int] = {}
    for index in sorted(needed):  # dependencies always have smaller indexes
        parents = [d.stage for d in stage_edges[index] if d.stage is not None]
        levels_of[index] = 1 + max((levels_of[p] for p in parents), default=-1)
    depth = max(levels_of.values()) + 1
    levels = tuple(
        tuple(sorted(i for i, level in levels_of.items() if level == n)) for n in range(depth)
    )
    plans = tuple(
        StagePlan(
            stage=stages[index],
            base_stage=bases[index][0],
            base_image=bases[index][1],
            platform=bases[index][2],
            dependencies=tuple(deps[index]),
            level=levels_of[index],
        )
        for level in levels
        for index in level
    )

    declared = {decl.name for arg in dockerfile.global_args for decl in arg.args}
    for index in needed:
        for instruction in stages[index].instructions:
            if isinstance(instruction, Arg):
                declared.update(decl.name for decl in instruction.args)
    unused = tuple(sorted(k for k in build_args if k not in declared and k not in BUILTIN_ARGS))
    return BuildPlan(
        dockerfile=dockerfile,
        target=target_index,
        stages=plans,
        levels=levels,
        global_args=scope,
        build_args=build_args,
        unused_build_args=unused,
        notes=tuple(notes),
    )
