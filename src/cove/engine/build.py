"""`cove build`: an image from a Dockerfile (Containerfile) and a context directory.

The entry point the CLI (`cove build`) and the API (`POST /build`) share:
`BuildService(root).build(BuildRequest(...), reporter) -> image id`.

- The Dockerfile is parsed and planned by `cove.image.build` (the front end): the stages
  the target needs, their bases, and the levels in which they can be built.
- Stages run level by level; the stages of one level in parallel threads (at most two,
  and never more than the CPUs). The reporter is called under one lock.
- Each stage is `cove.engine.build_stage.StageBuilder`; every step's result is an
  untagged intermediate image, remembered by the step cache (`<root>/build/cache.db`).
- At the end `--label`s are added to the final config, and the tags applied.

Reproducibility: layer mtimes are clamped to the timestamp (`--timestamp`, else the
SOURCE_DATE_EPOCH build arg, else 0), and configs' `created` is that timestamp when one is
given (else now): the same context then gives the same image id in any fresh engine root.

On failure the build's containers, mounts and partial layers are gone; the intermediate
images of the steps that succeeded stay (they are the cache), as with Docker.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cove.engine.build_cache import BuildCache
from cove.engine.build_layers import created_text, store_image, sweep
from cove.engine.build_secrets import BuildSecrets, StepResources
from cove.engine.build_sources import SourceRoot
from cove.engine.build_stage import BaseImage, BuildState, StageBuilder
from cove.errors import BuildError, CoveError, DockerfileError, InvalidReference, NoSuchImage
from cove.image.build import load_ignore_rules, parse_dockerfile, plan
from cove.image.reference import Reference, parse_reference
from cove.image.store import ImageStore

MAX_PARALLEL = 2
NETWORK_MODES = ("default", "none", "host")


@dataclass(frozen=True)
class BuildRequest:
    """What to build (see the module docstring)."""

    context_dir: str  # a directory on disk (the CLI/API unpack tars/stdin there first)
    dockerfile: str = ""  # relative to context_dir or absolute; "" = Dockerfile or Containerfile
    dockerfile_text: str | None = None  # given instead of a file (`-f -`)
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    network: str = "default"  # default|none|host for RUN steps
    labels: Mapping[str, str] = field(default_factory=dict)
    timestamp: int | None = None  # None: mtimes 0, `created` now (unless SOURCE_DATE_EPOCH)
    quiet: bool = False
    secrets: BuildSecrets = field(default_factory=BuildSecrets)  # --secret, --ssh (CLI only)
    resources: StepResources = field(default_factory=StepResources)  # of every RUN container


class BuildReporter(Protocol):
    """Progress, called from the building thread(s), one call at a time."""

    def step(self, number: int, total: int, stage: str, text: str) -> None: ...
    def cached(self) -> None: ...
    def output(self, data: bytes) -> None: ...
    def step_done(self, image_id: str) -> None: ...
    def note(self, message: str) -> None: ...
    def intermediate_container(self, container_id: str, removed: bool) -> None: ...


class NullReporter:
    """A reporter that reports nothing."""

    def step(self, number: int, total: int, stage: str, text: str) -> None:
        pass

    def cached(self) -> None:
        pass

    def output(self, data: bytes) -> None:
        pass

    def step_done(self, image_id: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def intermediate_container(self, container_id: str, removed: bool) -> None:
        pass


class _Locked:
    """The reporter behind one lock (stages may build in parallel)."""

    def __init__(self, reporter: BuildReporter) -> None:
        self._reporter = reporter
        self._lock = threading.Lock()

    def step(self, number: int, total: int, stage: str, text: str) -> None:
        with self._lock:
            self._reporter.step(number, total, stage, text)

    def cached(self) -> None:
        with self._lock:
            self._reporter.cached()

    def output(self, data: bytes) -> None:
        with self._lock:
            self._reporter.output(data)

    def step_done(self, image_id: str) -> None:
        with self._lock:
            self._reporter.step_done(image_id)

    def note(self, message: str) -> None:
        with self._lock:
            self._reporter.note(message)

    def intermediate_container(self, container_id: str, removed: bool) -> None:
        with self._lock:
            self._reporter.intermediate_container(container_id, removed)


def _timestamp(request: BuildRequest) -> int | None:
    value: object = request.timestamp
    if value is None:
        value = request.build_args.get("SOURCE_DATE_EPOCH")
        if value in (None, ""):
            return None
    try:
        number = int(str(value))
    except ValueError:
        raise BuildError(f"invalid timestamp {value!r}: expected seconds since 1970") from None
    if number < 0:
        raise BuildError(f"invalid timestamp {number}: it must not be negative")
    return number


def _tags(request: BuildRequest) -> list[Reference]:
    refs = []
    for tag in request.tags:
        try:
            ref = parse_reference(tag)
        except InvalidReference as exc:
            raise BuildError(f"invalid tag {tag!r}: {exc}") from None
        if ref.digest is not None:
            raise BuildError(f"invalid tag {tag!r}: a tag cannot be a digest reference")
        refs.append(ref)
    return refs


class BuildService:
    def __init__(self, root: str) -> None:
        self.root = root
        self._pull_lock = threading.Lock()

    # --- inputs ------------------------------------------------------------------------

    def _dockerfile(self, request: BuildRequest, context: str) -> tuple[str, str, str | None]:
        """(text, name for messages, path for the ignore file lookup)."""
        if request.dockerfile_text is not None:
            return request.dockerfile_text, "Dockerfile", None
        given = request.dockerfile
        if not given:
            for candidate in ("Dockerfile", "Containerfile"):
                if os.path.isfile(os.path.join(context, candidate)):
                    given = candidate
                    break
            else:
                raise BuildError(f"no Dockerfile or Containerfile in the build context {context}")
        path = given if os.path.isabs(given) else os.path.join(context, given)
        if not os.path.isabs(given):
            # A Dockerfile in the context (perhaps an untrusted tar) is read only if it
            # resolves inside the context: a link to a host file is refused.
            inside = os.path.realpath(context)
            if not os.path.realpath(path).startswith(inside.rstrip("/") + "/"):
                raise BuildError(f"the Dockerfile {given} points outside the build context")
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise BuildError(f"cannot read the Dockerfile {path}: {exc.strerror}") from None
        name = given if not os.path.isabs(given) else os.path.basename(given)
        return data.decode("utf-8", "surrogateescape"), name, given

    def _base_image(self, state_store: ImageStore, reporter: _Locked, pull: bool,
                    pulled: dict[str, str], file: str) -> BaseImage:  # fmt: skip
        def base_image(reference: str, platform: str | None, line: int) -> str:
            with self._pull_lock:
                if reference in pulled:
                    return pulled[reference]
                if not pull:
                    try:
                        found = str(state_store.resolve(reference).id)
                        pulled[reference] = found
                        return found
                    except NoSuchImage:
                        pass
                reporter.note(f"pulling {reference}")
                from cove.image.registry.pull import pull as registry_pull

                try:
                    result = registry_pull(state_store, reference, platform=platform)
                except CoveError as exc:
                    raise DockerfileError(
                        f"{reference}: the image is not here and cannot be pulled: {exc}",
                        file=file,
                        line=line,
                    ) from None
                pulled[reference] = str(result.image.id)
                return pulled[reference]

        return base_image

    # --- the build -----------------------------------------------------------------------

    def build(self, request: BuildRequest, reporter: BuildReporter) -> str:
        """Build; the final image id ("sha256:..."), tagged. BuildError/DockerfileError
        (naming the Dockerfile line) on failure."""
        if request.network not in NETWORK_MODES:
            raise BuildError(f"invalid network mode {request.network!r} for RUN steps "
                             f"({', '.join(NETWORK_MODES)})")  # fmt: skip
        tags = _tags(request)
        timestamp = _timestamp(request)
        context = os.path.abspath(request.context_dir)
        if not os.path.isdir(context):
            raise BuildError(f"the build context {context} is not a directory")
        text, name, ignore_key = self._dockerfile(request, context)
        dockerfile = parse_dockerfile(text, filename=name)
        locked = _Locked(reporter)
        for note in dockerfile.notes:
            locked.note(str(note))
        build_plan = plan(dockerfile, target=request.target, build_args=dict(request.build_args))
        for note in build_plan.notes:
            locked.note(str(note))
        if build_plan.unused_build_args:
            locked.note("one or more build args were not consumed: "
                        + ", ".join(build_plan.unused_build_args))  # fmt: skip
        rules = load_ignore_rules(context, ignore_key)
        sweep(self.root)  # (the RUN containers of killed builds go at the first RUN step)
        scratch = os.path.join(self.root, "build", "tmp", f"{os.getpid()}-{os.urandom(8).hex()}")
        os.makedirs(scratch, mode=0o700, exist_ok=True)
        try:
            with ImageStore(os.path.join(self.root, "images")) as store, \
                    BuildCache(self.root) as cache, \
                    SourceRoot(context, rules=rules) as source:  # fmt: skip
                state = BuildState(
                    root=self.root, store=store, cache=cache, plan=build_plan, reporter=locked,
                    context=source, context_dir=context, scratch_dir=scratch,
                    network=request.network, no_cache=request.no_cache,
                    mtime=timestamp or 0, timestamp=timestamp, created=created_text(timestamp),
                    total=sum(1 + len(s.stage.instructions) for s in build_plan.stages),
                    base_image=self._base_image(store, locked, request.pull, {}, name),
                    secrets=request.secrets, resources=request.resources,
                )  # fmt: skip
                self._stages(state)
                image = state.results[build_plan.target].image
                if request.labels:
                    child = image.child()
                    labels = dict(child.execution.get("Labels") or {})
                    labels.update(request.labels)
                    child.execution["Labels"] = labels
                    shell = list(child.execution.get("Shell") or ["/bin/sh", "-c"])
                    comment = "LABEL " + " ".join(f"{k}={v}" for k, v in request.labels.items())
                    child.add_history(state.created, " ".join(shell) + " #(nop)  " + comment,
                                      empty_layer=True)  # fmt: skip
                    store_image(store, child)
                    image = child
                if not image.image_id:
                    raise BuildError("no image was made: the target stage is FROM scratch "
                                     "with no instruction")  # fmt: skip
                record = store.resolve(image.image_id)
                for ref in tags:
                    store.tag(record, ref)
                return image.image_id
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _stages(self, state: BuildState) -> None:
        build_plan = state.plan
        firsts: dict[int, int] = {}
        number = 1
        for stage_plan in sorted(build_plan.stages, key=lambda s: s.index):
            firsts[stage_plan.index] = number
            number += 1 + len(stage_plan.stage.instructions)
        width = min(MAX_PARALLEL, os.cpu_count() or 1)
        for level in build_plan.levels:
            builders = [StageBuilder(state, build_plan[index], firsts[index]) for index in level]
            if len(builders) == 1 or width == 1:
                for builder in builders:
                    state.results[builder.plan.index] = builder.build()
                continue
            from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

            with ThreadPoolExecutor(max_workers=min(width, len(builders)),
                                    thread_name_prefix="cove-build") as pool:  # fmt: skip
                futures = {pool.submit(b.build): b.plan.index for b in builders}
                try:
                    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                    if any(f.exception() is not None for f in done):
                        state.cancelled.set()
                    wait(futures)
                except BaseException:
                    state.cancelled.set()
                    raise
                errors = [f.exception() for f in futures if f.exception() is not None]
                if errors:
                    real = [e for e in errors if "another stage failed" not in str(e)]
                    raise (real or errors)[0]  # type: ignore[misc]
                for future, index in futures.items():
                    state.results[index] = future.result()
