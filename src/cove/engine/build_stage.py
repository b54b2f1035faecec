"""One stage of a build: its base, then each instruction as one step.

A step expands its instruction (`StageScope`), looks its key up in the cache (parent image
+ instruction + what else it depends on, see `cove.engine.build_cache`), and on a miss
makes a new intermediate image: metadata instructions change the config and add a history
entry with `empty_layer`; WORKDIR also makes the folder (in a layer) when the image lacks
it; RUN runs a container (`cove.engine.build_run`); COPY and ADD write into a mount of the
image (`cove.engine.build_copy`). Every step's image is stored untagged, as the legacy
Docker builder's intermediate images are, and the cache remembers it.

History entries are written as Docker's legacy builder writes them: `/bin/sh -c #(nop)
ENV A=1` for metadata (the image's SHELL first), `/bin/sh -c make` for RUN (`|N K=V ...`
in front when build args are in its environment), `/bin/sh -c #(nop) COPY file:HASH in
/dest ` for COPY/ADD.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import posixpath
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cove.engine import build_copy
from cove.engine.build_cache import BuildCache, step_key
from cove.engine.build_layers import (
    MountedImage,
    NewLayer,
    WorkingImage,
    default_path,
    drop_blob,
    layer_from_upper,
    load_image,
    scratch_image,
    store_image,
)
from cove.engine.build_secrets import BuildSecrets, StepResources
from cove.engine.build_sources import SourceRoot, content_hash
from cove.errors import BuildError, CoveError, DockerfileError
from cove.image.build import BuildPlan, StagePlan, StageScope, parse_instruction
from cove.image.build.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
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
from cove.image.store import ImageStore

DEFAULT_SHELL = ["/bin/sh", "-c"]
RUN_NETWORKS = {"default": "bridge", "none": "none", "host": "host"}  # RUN --network -> engine
#: (reference, platform, line) -> the id of that image, pulled when it is not here
BaseImage = Callable[[str, str | None, int], str]


class StepReporter(Protocol):
    """What a step reports to (the build's reporter, behind its lock)."""

    def step(self, number: int, total: int, stage: str, text: str) -> None: ...
    def cached(self) -> None: ...
    def output(self, data: bytes) -> None: ...
    def step_done(self, image_id: str) -> None: ...
    def note(self, message: str) -> None: ...
    def intermediate_container(self, container_id: str, removed: bool) -> None: ...


@dataclass
class StageResult:
    image: WorkingImage
    scope: StageScope


@dataclass
class BuildState:
    """What the stages of one build share."""

    root: str
    store: ImageStore
    cache: BuildCache
    plan: BuildPlan
    reporter: StepReporter
    context: SourceRoot
    context_dir: str
    scratch_dir: str
    network: str  # default, none or host
    no_cache: bool
    mtime: int  # the layers' timestamp
    timestamp: int | None  # the build's timestamp, when given
    created: str  # configs' and history's `created`
    total: int
    base_image: BaseImage  # (reference, platform, line) -> id
    secrets: BuildSecrets = field(default_factory=BuildSecrets)  # --secret, --ssh
    resources: StepResources = field(default_factory=StepResources)  # --add-host, ...
    results: dict[int, StageResult] = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event)
    run_lock: threading.Lock = field(default_factory=threading.Lock)
    stale_swept: bool = False  # the RUN containers of killed builds, at the first RUN step

    @property
    def file(self) -> str:
        return self.plan.dockerfile.filename


def describe(instruction: Instruction) -> dict[str, Any]:
    """The instruction as the cache key sees it: its fields without line numbers."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()
                    if k not in ("line", "end_line", "original")}  # fmt: skip
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value

    fields = strip(dataclasses.asdict(instruction))
    return {"keyword": instruction.keyword, **fields}


def _go_list(values: list[str]) -> str:
    """Go's %q of a []string: `["a" "b"]`."""
    return "[" + " ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def _go_duration(ns: int) -> str:
    if ns == 0:
        return "0s"
    seconds = ns / 1e9
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    fraction = seconds - int(seconds)
    text = f"{secs + fraction:g}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def _step_text(instruction: Instruction) -> str:
    return instruction.original.split("\n", 1)[0]


class StageBuilder:
    """Builds one stage of `state.plan`; step numbers start at `first`."""

    def __init__(self, state: BuildState, stage_plan: StagePlan, first: int) -> None:
        self.state = state
        self.plan = stage_plan
        self.number = first
        stage = stage_plan.stage
        self.label = stage.name or f"stage-{stage.index}"
        self.image = WorkingImage({})
        self.scope: StageScope | None = None
        self.cmd_set = False
        self._key = ""
        self._triggers = False  # running base-image ONBUILD triggers (no cache report)

    # --- the stage ---------------------------------------------------------------------

    def build(self) -> StageResult:
        state = self.state
        stage = self.plan.stage
        reporter = state.reporter
        reporter.step(self.number, state.total, self.label, _step_text(stage.from_))
        self._check_cancelled()
        if self.plan.base_stage is not None:
            parent = state.results[self.plan.base_stage]
            self.image = WorkingImage(copy.deepcopy(parent.image.config),
                                      list(parent.image.layers), parent.image.image_id)  # fmt: skip
            self.scope = parent.scope.inherit()
        else:
            if self.plan.base_image in (None, "scratch"):
                self.image = scratch_image()
            else:
                assert self.plan.base_image is not None
                image_id = state.base_image(self.plan.base_image, self.plan.platform, stage.line)
                self.image = load_image(state.store, image_id)
            default_path(self.image)
            self.scope = state.plan.new_scope(self.image.execution.get("Env") or [])
        triggers = list(self.image.execution.pop("OnBuild", None) or [])
        if triggers:  # part of the FROM step, as Docker runs them
            self._triggers = True
            reporter.note(f"{self.label}: executing {len(triggers)} build trigger"
                          f"{'s' if len(triggers) != 1 else ''}")  # fmt: skip
            for text in triggers:
                trigger = parse_instruction(str(text), filename=state.file, line=stage.line,
                                            escape=state.plan.dockerfile.escape)  # fmt: skip
                if isinstance(trigger, (From, Onbuild, Maintainer)):
                    raise DockerfileError(
                        f"{trigger.keyword} is not allowed as an ONBUILD trigger: {text}",
                        file=state.file,
                        line=stage.line,
                    )
                self._run(trigger)
            self._triggers = False
        if self.image.image_id:
            reporter.step_done(self.image.image_id)
        for instruction in stage.instructions:
            self.number += 1
            reporter.step(self.number, state.total, self.label, _step_text(instruction))
            self._run(instruction)
            if self.image.image_id:
                reporter.step_done(self.image.image_id)
        assert self.scope is not None
        return StageResult(self.image, self.scope)

    def _check_cancelled(self) -> None:
        if self.state.cancelled.is_set():
            raise BuildError("the build was stopped: another stage failed")

    def _run(self, instruction: Instruction) -> None:
        self._check_cancelled()
        assert self.scope is not None
        expanded = self.scope.expand(instruction)
        if isinstance(expanded, Run):
            self._run_step(expanded)
        elif isinstance(expanded, (Copy, Add)):
            self._copy_step(expanded)
        elif isinstance(expanded, Workdir):
            self._workdir_step(expanded)
        else:
            self._metadata_step(expanded, instruction)

    # --- the cache ---------------------------------------------------------------------

    def _cached(self, material: dict[str, Any]) -> bool:
        """Look the step up; on a hit the stage goes on from the cached image."""
        state = self.state
        material = {**material, "timestamp": state.timestamp}
        self._key = step_key(self.image.parent_key, material)
        if state.no_cache:
            return False
        image_id = state.cache.get(self._key)
        if image_id is None:
            return False
        try:
            self.image = load_image(state.store, image_id)
        except CoveError:
            state.cache.forget(self._key)
            return False
        if not self._triggers:
            state.reporter.cached()
        return True

    def _commit(self, child: WorkingImage, layer: NewLayer | None, created_by: str) -> None:
        state = self.state
        if layer is not None:
            child.add_layer(layer.descriptor, layer.diff_id)
        child.add_history(state.created, created_by, empty_layer=layer is None)
        parent = self.image.parent_key
        try:
            store_image(state.store, child)
        except BaseException:
            if layer is not None:
                drop_blob(state.store, str(layer.descriptor["digest"]))
            raise
        state.cache.put(self._key, parent, child.image_id)
        self.image = child

    def _nop(self, comment: str, *, single: bool = False) -> str:
        shell = list(self.image.execution.get("Shell") or DEFAULT_SHELL)
        return " ".join(shell) + (" #(nop) " if single else " #(nop)  ") + comment

    def _stored_id(self) -> str:
        """The current image's id, storing it first if it has none (scratch)."""
        if not self.image.image_id:
            store_image(self.state.store, self.image)
        return self.image.image_id

    # --- metadata ----------------------------------------------------------------------

    def _metadata_step(self, instruction: Instruction, written: Instruction) -> None:
        material: dict[str, Any] = {"instruction": describe(instruction)}
        if isinstance(instruction, Entrypoint):
            material["cmd_set"] = self.cmd_set
        cmd_set = self.cmd_set
        if isinstance(instruction, Cmd):
            self.cmd_set = True
        if self._cached(material):
            return
        child = self.image.child()
        if isinstance(written, Arg):  # as written: a --build-arg value stays out of history
            comment = "ARG " + " ".join(
                d.name if d.default is None else f"{d.name}={d.default}" for d in written.args
            )
        else:
            comment = self._apply(child, instruction, cmd_set)
        self._commit(child, None, self._nop(comment))

    def _apply(self, image: WorkingImage, instruction: Instruction, cmd_set: bool) -> str:
        """Change `image`'s config as `instruction` says; Docker's history comment."""
        assert self.scope is not None
        config = image.execution
        shell = list(config.get("Shell") or DEFAULT_SHELL)
        if isinstance(instruction, Env):
            config["Env"] = self.scope.config_env()
            return "ENV " + " ".join(f"{p.key}={p.value}" for p in instruction.pairs)
        if isinstance(instruction, Label):
            labels = dict(config.get("Labels") or {})
            labels.update({p.key: p.value for p in instruction.pairs})
            config["Labels"] = labels
            return "LABEL " + " ".join(f"{p.key}={p.value}" for p in instruction.pairs)
        if isinstance(instruction, User):
            config["User"] = instruction.user
            return f"USER {instruction.user}"
        if isinstance(instruction, Expose):
            ports = dict(config.get("ExposedPorts") or {})
            ports.update({port: {} for port in instruction.ports})
            config["ExposedPorts"] = ports
            return "EXPOSE " + " ".join(instruction.ports)
        if isinstance(instruction, Volume):
            volumes = dict(config.get("Volumes") or {})
            volumes.update({path: {} for path in instruction.paths})
            config["Volumes"] = volumes
            return "VOLUME [" + " ".join(instruction.paths) + "]"
        if isinstance(instruction, Cmd):
            config["Cmd"] = instruction.command.argv(shell)
            return f"CMD {_go_list(config['Cmd'])}"
        if isinstance(instruction, Entrypoint):
            if instruction.command.exec_form and not instruction.command.args:
                config.pop("Entrypoint", None)
            else:
                config["Entrypoint"] = instruction.command.argv(shell)
            if not cmd_set:
                config.pop("Cmd", None)
            return f"ENTRYPOINT {_go_list(list(config.get('Entrypoint') or []))}"
        if isinstance(instruction, Shell):
            config["Shell"] = list(instruction.args)
            return "SHELL [" + " ".join(instruction.args) + "]"
        if isinstance(instruction, StopSignal):
            config["StopSignal"] = instruction.signal
            return f"STOPSIGNAL {instruction.signal}"
        if isinstance(instruction, Healthcheck):
            check: dict[str, Any] = {"Test": list(instruction.test)}
            for key, value in (("Interval", instruction.interval),
                               ("Timeout", instruction.timeout),
                               ("StartPeriod", instruction.start_period),
                               ("StartInterval", instruction.start_interval),
                               ("Retries", instruction.retries)):  # fmt: skip
                if value:
                    check[key] = value
            config["Healthcheck"] = check
            times = " ".join(f'"{_go_duration(v)}"' for v in (instruction.interval,
                             instruction.timeout, instruction.start_period,
                             instruction.start_interval))  # fmt: skip
            test = _go_list(list(instruction.test))
            return f"HEALTHCHECK &{{{test} {times} {instruction.retries}}}"
        if isinstance(instruction, Onbuild):
            config["OnBuild"] = [*list(config.get("OnBuild") or []), instruction.expression]
            return f"ONBUILD {instruction.expression}"
        if isinstance(instruction, Maintainer):
            image.config["author"] = instruction.name
            return f"MAINTAINER {instruction.name}"
        raise DockerfileError(f"{instruction.keyword} cannot be used here",
                              file=self.state.file, line=instruction.line)  # fmt: skip

    # --- WORKDIR -------------------------------------------------------------------------

    def _workdir_step(self, instruction: Workdir) -> None:
        current = str(self.image.execution.get("WorkingDir") or "/")
        path = posixpath.normpath(posixpath.join(current, instruction.path))
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        if self._cached({"instruction": describe(instruction), "workdir": path}):
            return
        child = self.image.child()
        child.execution["WorkingDir"] = path
        state = self.state
        layer = None
        with MountedImage(state.root, state.store, self.image.image_id) as target:
            made = build_copy.make_dir(target.path, path, str(child.execution.get("User") or ""),
                                       file=state.file, line=instruction.line)  # fmt: skip
            target.unmount()
            if made:
                layer = layer_from_upper(state.store, target.lowers, target.upper, state.mtime)
        self._commit(child, layer, self._nop(f"WORKDIR {path}", single=True))

    # --- RUN -----------------------------------------------------------------------------

    def _from_image(self, value: str, line: int) -> str:
        """The image id a `--from` / `from=` value names: a stage's result or an image."""
        state = self.state
        dockerfile = state.plan.dockerfile
        stage = None
        if value.isdigit():
            stage = dockerfile.stages[int(value)] if int(value) < len(dockerfile.stages) else None
        else:
            stage = dockerfile.stage_named(value)
        if stage is not None and stage.index < self.plan.stage.index:
            result = state.results.get(stage.index)
            if result is None:
                raise BuildError(f"{state.file}:{line}: stage {stage.label} was not built")
            if not result.image.image_id:
                raise DockerfileError(f"stage {stage.label} made no image (FROM scratch with no "
                                      "step)", file=state.file, line=line)  # fmt: skip
            return result.image.image_id
        return state.base_image(value, None, line)

    def _run_step(self, instruction: Run) -> None:
        state = self.state
        assert self.scope is not None
        config = self.image.execution
        shell = list(config.get("Shell") or DEFAULT_SHELL)
        wanted = instruction.network if instruction.network not in (None, "default") else None
        network = RUN_NETWORKS[wanted or state.network]
        if instruction.security == "insecure":
            raise DockerfileError("RUN --security=insecure is not supported by cove build",
                                  file=state.file, line=instruction.line)  # fmt: skip
        env = self.scope.run_env()
        workdir = str(config.get("WorkingDir") or "/")
        sources: dict[str, str] = {}
        for mount in instruction.mounts:
            if mount.type != "bind":
                continue
            if mount.from_ is not None:
                sources[mount.from_] = self._from_image(mount.from_, instruction.line)
            else:
                found = state.context.resolve(
                    mount.source or ".",
                    keyword="RUN --mount",
                    file=state.file,
                    line=instruction.line,
                )
                sources[f"context:{mount.source}"] = content_hash(state.context, found)
        material = {"instruction": describe(instruction), "env": env, "network": network,
                    "sources": sources}  # fmt: skip
        if self._cached(material):
            return
        # Only a step that runs loads the container engine: a cached build never does.
        from cove.engine.build_run import remove_stale_containers, run_argv, run_mounts, run_step

        with state.run_lock:
            if not state.stale_swept:
                remove_stale_containers(state.root)
                state.stale_swept = True
        scripts = os.path.join(state.scratch_dir, f"heredoc-{os.urandom(6).hex()}")
        try:
            argv, script_mounts = run_argv(instruction, shell, scripts)
            image_id = self._stored_id()
            mounts = run_mounts(
                instruction, root=state.root, store=state.store, workdir=workdir,
                context_dir=state.context_dir, file=state.file, secrets=state.secrets,
                image_for=lambda value: sources.get(value) or self._from_image(
                    value, instruction.line),
            )  # fmt: skip
            with mounts.stack:
                layer = run_step(
                    root=state.root, store=state.store, image_id=image_id, argv=argv,
                    env=env + mounts.env,
                    network=network, mounts=script_mounts + mounts.options, mtime=state.mtime,
                    output=state.reporter.output, warn=state.reporter.note,
                    container=state.reporter.intermediate_container, resources=state.resources,
                    text=_step_text(instruction).removeprefix("RUN ").strip(),
                    stop=state.cancelled.is_set,
                    file=state.file, line=instruction.line,
                )  # fmt: skip
        finally:
            shutil.rmtree(scripts, ignore_errors=True)
        shown = [*shell, instruction.shell_text()] if instruction.heredocs else argv
        args = self.scope.arg_pairs()
        prefix = [f"|{len(args)}", *(f"{k}={v}" for k, v in args)] if args else []
        self._commit(self.image.child(), layer, " ".join([*prefix, *shown]))

    # --- COPY and ADD ----------------------------------------------------------------------

    def _copy_step(self, instruction: Copy | Add) -> None:
        state = self.state
        workdir = str(self.image.execution.get("WorkingDir") or "/")
        with contextlib.ExitStack() as stack:
            from_id = None
            root: SourceRoot | None = state.context
            if isinstance(instruction, Copy) and instruction.from_ is not None:
                from_id = self._from_image(instruction.from_, instruction.line)
                if self._cached({"instruction": describe(instruction), "from": from_id,
                                 "workdir": workdir}):  # fmt: skip
                    return
                source = MountedImage(state.root, state.store, from_id)
                stack.callback(source.close)
                root = stack.enter_context(SourceRoot(source.path, context=False))
            downloads = os.path.join(state.scratch_dir, f"add-{os.urandom(6).hex()}")
            os.makedirs(downloads, mode=0o700, exist_ok=True)
            stack.callback(shutil.rmtree, downloads, ignore_errors=True)
            job = build_copy.prepare(instruction, root=root, workdir=workdir,
                                     download_dir=downloads, file=state.file)  # fmt: skip
            if from_id is None and self._cached(
                {"instruction": describe(instruction), "content": job.content, "workdir": workdir}
            ):
                return
            with MountedImage(state.root, state.store, self.image.image_id) as target:
                build_copy.perform(job, target.path, mtime=state.mtime,
                                   scratch_dir=state.scratch_dir, file=state.file,
                                   line=instruction.line)  # fmt: skip
                target.unmount()
                layer = layer_from_upper(state.store, target.lowers, target.upper, state.mtime)
        self._commit(self.image.child(), layer, self._nop(job.created_by, single=True))
