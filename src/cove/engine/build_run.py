"""RUN: a container from the intermediate image, run through the engine's container service
(never the runtime directly), its output streamed, its changes taken as a layer.

The container gets the stage's RUN environment (ENV, then ARG values, then proxy build
args), the image's WORKDIR, USER and SHELL, the step's network (`default` is Docker's:
the bridge), no health check, and its `--mount`s:

- `type=cache`: a folder of the engine root kept between builds, bind-mounted, never part
  of the layer; held for the step (`cove.engine.build_cache_mounts`: `sharing=locked`
  holds it alone; a prune skips it). With `from=`, a new folder starts as a copy of what
  that stage or image has at `source`.
- `type=bind`: from the context (read-only: the context folder itself; `rw`: an overlay
  of it whose writes are dropped) or from another stage or an image (an overlay of its
  layers), the source resolved inside that root.
- `type=tmpfs`: a tmpfs.
- `type=secret` and `type=ssh`: what `cove build --secret/--ssh` gave
  (`cove.engine.build_secrets`).
- `RUN <<EOF` whose script starts with `#!` runs the script as a file (`/dev/pipes/EOF`,
  as BuildKit names it); other heredocs are given to the shell with the command.

Whatever happens, the container is removed (with its anonymous volumes: VOLUME paths are
volumes in RUN containers, so what a RUN writes there is not kept, as Docker's legacy
builder does). A non-zero exit is a DockerfileError naming the line, with the exit code
and the last lines of output.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import select
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cove.engine.attach import EXIT, STDERR, STDOUT, AttachClient
from cove.engine.build_cache_mounts import held_cache_mount
from cove.engine.build_layers import MountedImage, NewLayer, layer_from_upper, prune_placeholders
from cove.engine.build_secrets import BuildSecrets, MissingSecret, StepResources, step_secrets
from cove.engine.container_create import RunSettings, snapshot_key
from cove.engine.container_diff import mount_points
from cove.engine.containers import ContainerService
from cove.engine.create_options import CreateOptions, MountOption
from cove.engine.rootfs_path import real_path
from cove.engine.volume_data import copy_image_content
from cove.errors import BuildError, CoveError, DockerfileError, StepFailed
from cove.image.build.instructions import Mount, Run
from cove.image.snapshot import OverlaySnapshotter, choose_snapshotter
from cove.image.store import ImageStore

TAIL_BYTES = 4096
TAIL_LINES = 10
BUILD_LABEL = "io.cove.build.pid"  # on RUN containers: the builder's pid (see build.py)


@dataclass
class RunMounts:
    """The `--mount`s of one RUN as container mounts, and what must be undone after."""

    options: list[MountOption]
    stack: contextlib.ExitStack
    env: list[str]  # what secret mounts with env= add to the step's environment


def run_argv(run: Run, shell: Sequence[str], scripts: str) -> tuple[list[str], list[MountOption]]:
    """The argv of a RUN (and the mount a `#!` heredoc script needs, made in `scripts`)."""
    script = run.heredoc_script
    if script is not None:
        if script.content.startswith("#!"):
            os.makedirs(scripts, mode=0o755, exist_ok=True)
            path = os.path.join(scripts, script.name)
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as out:
                out.write(script.content)
            os.chmod(path, 0o755)
            mount = MountOption(type="bind", target="/dev/pipes", source=scripts, read_only=True)
            return [f"/dev/pipes/{script.name}"], [mount]
        return [*shell, script.content], []
    if run.heredocs:
        return [*shell, run.shell_text()], []
    return run.command.argv(shell), []


def run_mounts(
    run: Run,
    *,
    root: str,
    store: ImageStore,
    workdir: str,
    context_dir: str,
    image_for: Callable[[str], str],
    file: str,
    secrets: BuildSecrets,
) -> RunMounts:
    """Container mounts for the `--mount`s of `run` (expanded); `image_for(from_value)`
    gives the image id a `from=` names (a stage's result or an image); `secrets` what the
    secret and ssh mounts take (cove.engine.build_secrets)."""
    stack = contextlib.ExitStack()
    options: list[MountOption] = []
    try:
        try:
            private = step_secrets(run.mounts, secrets, workdir, stack)
        except MissingSecret as exc:
            raise DockerfileError(f"RUN: {exc}", file=file, line=run.line) from None
        options += private.mounts
        for mount in run.mounts:
            target = posixpath.normpath(posixpath.join(workdir or "/", mount.target))
            spec = f"RUN --mount=type={mount.type},target={mount.target}"
            if mount.type == "cache":
                seed = None
                if mount.from_ is not None:
                    seed = _cache_seed(mount, stack, root=root, store=store,
                                       image_for=image_for, spec=spec, file=file,
                                       line=run.line)  # fmt: skip
                folder = stack.enter_context(held_cache_mount(root, mount, seed))
                options.append(MountOption(type="bind", source=folder, target=target,
                                           read_only=mount.readonly))  # fmt: skip
            elif mount.type == "tmpfs":
                options.append(MountOption(type="tmpfs", target=target, tmpfs_size=mount.size))
            elif mount.type in ("secret", "ssh"):
                continue  # done above
            elif mount.type == "bind":
                source = _bind_source(mount, stack, root=root, store=store,
                                      context_dir=context_dir, image_for=image_for, spec=spec,
                                      file=file, line=run.line)  # fmt: skip
                options.append(MountOption(type="bind", source=source, target=target,
                                           read_only=mount.readonly))  # fmt: skip
            else:
                raise DockerfileError(f"{spec}: mounts of type {mount.type} are not supported "
                                      "by cove build", file=file, line=run.line)  # fmt: skip
    except BaseException:
        stack.close()
        raise
    return RunMounts(options, stack, private.env)


def _cache_seed(mount: Mount, stack: contextlib.ExitStack, *, root: str, store: ImageStore,
                image_for: Callable[[str], str], spec: str, file: str,
                line: int) -> Callable[[str], bool]:  # fmt: skip
    """What fills a new cache folder of `from=`: a copy of what the stage or image has at
    `source` (its root by default). The image is mounted only if the folder is new."""

    def seed(folder: str) -> bool:
        assert mount.from_ is not None
        mounted = MountedImage(root, store, image_for(mount.from_))
        stack.callback(mounted.close)
        if not copy_image_content(mounted.path, mount.source or "/", folder):
            raise DockerfileError(f"{spec}: no folder {mount.source or '/'} in {mount.from_}",
                                  file=file, line=line)  # fmt: skip
        return True

    return seed


def _bind_source(mount: Mount, stack: contextlib.ExitStack, *, root: str, store: ImageStore,
                 context_dir: str, image_for: Callable[[str], str], spec: str, file: str,
                 line: int) -> str:  # fmt: skip
    if mount.from_ is None and mount.readonly:
        base = context_dir
    else:
        if mount.from_ is None:
            mounted = MountedImage(root, lower_dirs=[context_dir])
        else:
            mounted = MountedImage(root, store, image_for(mount.from_))
        stack.callback(mounted.close)
        base = mounted.path
    fd = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        resolved = real_path(fd, mount.source or "/").lstrip("/")
    finally:
        os.close(fd)
    path = os.path.join(base, resolved) if resolved else base
    if not os.path.lexists(path):
        where = "the build context" if mount.from_ is None else mount.from_
        raise DockerfileError(f"{spec}: no {mount.source or '/'} in {where}", file=file,
                              line=line)  # fmt: skip
    return path


class _Tail:
    """The last bytes of a step's output, for the error message."""

    def __init__(self) -> None:
        self.data = b""

    def add(self, chunk: bytes) -> None:
        self.data = (self.data + chunk)[-TAIL_BYTES:]

    def lines(self) -> list[str]:
        text = self.data.decode("utf-8", "replace")
        return [line for line in text.splitlines() if line.strip()][-TAIL_LINES:]


def _pump(
    client: AttachClient,
    output: Callable[[bytes], None],
    tail: _Tail,
    stop: Callable[[], bool],
) -> int | None:
    while True:
        try:
            ready, _, _ = select.select([client], [], [], 0.5)
        except InterruptedError:
            continue
        if not ready:
            if stop():
                raise BuildError("the build was stopped: another stage failed")
            continue
        frames = client.read_frames()
        if frames is None:
            return None
        for kind, payload in frames:
            if kind == EXIT:
                return int(payload or b"0")
            if kind in (STDOUT, STDERR) and payload:
                tail.add(payload)
                output(payload)


def run_step(
    *,
    root: str,
    store: ImageStore,
    image_id: str,
    argv: list[str],
    env: list[str],
    network: str,
    mounts: list[MountOption],
    mtime: int,
    output: Callable[[bytes], None],
    warn: Callable[[str], None],
    container: Callable[[str, bool], None],
    text: str,
    resources: StepResources | None = None,
    file: str,
    line: int,
    stop: Callable[[], bool] = lambda: False,
) -> NewLayer | None:
    """Run one RUN step in a container of `image_id`; its changes as a stored layer (None
    when it changed nothing). The container is removed in every case (also when `stop()`
    says the build stops: another stage failed); `container(id, removed)` hears of it
    when it runs and when it is gone."""
    service = ContainerService(root)
    labels = {BUILD_LABEL: str(os.getpid())}
    given = resources or StepResources()
    options = CreateOptions(cmd=argv, entrypoint=[], env=list(env), network=network,
                            mounts=list(mounts), labels=labels,
                            add_hosts=list(given.add_hosts), shm_size=given.shm_size or None,
                            ulimits=list(given.ulimits))  # fmt: skip
    settings = RunSettings(healthcheck={"Test": ["NONE"]})
    record = None
    tail = _Tail()
    try:
        try:
            record, client = service.run(image_id, options, settings, attach=True, warn=warn)
        except BuildError:
            raise
        except CoveError as exc:  # the command cannot start (no shell in the image, no user)
            raise DockerfileError(f"RUN {text}: {exc}", file=file, line=line) from None
        assert client is not None
        container(record.id, False)
        try:
            code = _pump(client, output, tail, stop)
        finally:
            client.close()
        service.finish(record.id)
        if code is None:
            raise BuildError(f"{file}:{line}: RUN {text}: lost the connection to the "
                             "container's monitor")  # fmt: skip
        if code != 0:
            lines = tail.lines()
            detail = ("\nlast lines of output:\n" + "\n".join(f"  {x}" for x in lines)
                      if lines else "")  # fmt: skip
            raise StepFailed(f"RUN {text}: exit code {code}{detail}", command=argv,
                             exit_code=code, file=file, line=line)  # fmt: skip
        snapshots = choose_snapshotter(root)
        assert isinstance(snapshots, OverlaySnapshotter)
        mount = snapshots.describe(snapshot_key(record.id))
        lowers = list(mount.lowerdirs)
        prune_placeholders(mount.upperdir, lowers, mount_points(record.bundle))
        return layer_from_upper(store, lowers, mount.upperdir, mtime)
    finally:
        if record is not None:
            try:
                service.remove(record.id, force=True, volumes=True)
            except CoveError as exc:
                warn(f"cannot remove the build container {record.short_id}: {exc}")
            else:
                container(record.id, True)


def remove_stale_containers(root: str) -> None:
    """The RUN containers of builds killed mid-way (their label names the builder's pid)."""
    if not os.path.exists(os.path.join(root, "containers.db")):
        return
    service = ContainerService(root)
    for record in service.list(all_containers=True):
        labels = record.config.get("labels") or {}
        owner = str(labels.get(BUILD_LABEL, "")) if isinstance(labels, dict) else ""
        if not owner.isdigit() or int(owner) == os.getpid():
            continue
        try:
            os.kill(int(owner), 0)
            continue  # that build still runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        try:
            service.remove(record.id, force=True, volumes=True)
        except CoveError:
            continue
