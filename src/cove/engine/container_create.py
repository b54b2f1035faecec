"""`create`: an image and options become a container record, a prepared overlay snapshot and
a bundle (config.json); nothing runs yet. Every step is undone if a later one fails."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cove.engine.create_options import CreateOptions, parse_bytes
from cove.engine.state import ContainerRecord, ContainerStore, new_id
from cove.errors import CoveError, InvalidArgument
from cove.image.layers import LayerStore
from cove.image.snapshot import OverlaySnapshotter, choose_snapshotter
from cove.image.store import ImageStore

INIT_ENV = "COVE_INIT"
INSTALLED_INIT = "/usr/local/libexec/cove/cove-init"
DEFAULT_STOP_TIMEOUT = 10


@dataclass
class RunSettings:
    """What `docker run` takes besides the OCI spec: stored as the record's `settings`."""

    auto_remove: bool = False
    tty: bool = False
    stdin: bool = False
    log_opts: dict[str, str] | None = None
    stop_timeout: int | None = None
    # the API's RestartPolicy {Name, MaximumRetryCount} (cove.engine.restart_policy)
    restart_policy: dict[str, Any] | None = None
    # the API's Healthcheck as given (cove.engine.healthcheck); create stores the resolved one
    healthcheck: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, False, {})}

    @classmethod
    def from_json(cls, data: Any) -> RunSettings:
        return cls(
            auto_remove=bool(data.get("auto_remove", False)),
            tty=bool(data.get("tty", False)),
            stdin=bool(data.get("stdin", False)),
            log_opts=dict(data.get("log_opts") or {}),
            stop_timeout=data.get("stop_timeout"),
            restart_policy=_mapping(data.get("restart_policy")),
            healthcheck=_mapping(data.get("healthcheck")),
        )


def _mapping(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, dict) else None


def check_log_opts(opts: dict[str, str]) -> tuple[int, int]:
    """Docker's json-file options: max-size (a size, -1 for none) and max-file (>= 1)."""
    size, files = 0, 1
    for key, value in opts.items():
        if key == "max-size":
            size = 0 if value == "-1" else parse_bytes(value, "--log-opt max-size")
        elif key == "max-file":
            if not value.isdigit() or int(value) < 1:
                raise InvalidArgument(
                    f"invalid value '{value}' for flag --log-opt max-file: want a number >= 1"
                )
            files = int(value)
        elif key in ("compress", "labels", "env", "tag", "mode"):
            continue  # accepted as docker does; compress and the rest change nothing here
        else:
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
    if files > 1 and size == 0:
        raise InvalidArgument("--log-opt max-file requires max-size to be set")
    return size, files


def snapshot_key(container_id: str) -> str:
    return "ctr-" + container_id[:32]


def init_binary() -> str:
    for candidate in (os.environ.get(INIT_ENV, ""), INSTALLED_INIT):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise InvalidArgument(f"--init: cove-init is not installed ({INSTALLED_INIT})")


def create_container(
    store: ContainerStore,
    root: str,
    image: str,
    options: CreateOptions,
    settings: RunSettings,
    *,
    name: str = "",
    runtime: str = "cove",
    warn: Callable[[str], None] | None = None,
    keep_mounted: bool = False,
    console_size: tuple[int, int] | None = None,
) -> ContainerRecord:
    """Create the container (status "created"). With `keep_mounted` its root filesystem
    stays mounted for an immediate start (`run`); otherwise it is mounted by `start`.
    `console_size` (rows, columns: the caller's terminal) sizes a `-t` container's terminal
    from the start, before its process can ask (a later resize would race with it)."""
    from cove.engine.host_dirs import make_dirs as make_host_dirs
    from cove.engine.host_dirs import plan as plan_host_dirs
    from cove.engine.oci_runtime import runtime_for
    from cove.engine.spec_mounts import volume_requests
    from cove.engine.specgen import generate_spec
    from cove.engine.volumes import VolumeService

    check_log_opts(settings.log_opts or {})
    if settings.stop_timeout is not None and settings.stop_timeout < -1:
        raise InvalidArgument(f"invalid value '{settings.stop_timeout}' for flag --stop-timeout")
    from cove.engine import healthcheck
    from cove.engine.restart_policy import check_restart_policy

    policy = check_restart_policy(settings.restart_policy, auto_remove=settings.auto_remove)
    healthcheck.check_config(settings.healthcheck)
    runtime_for(runtime, root)  # an unknown --runtime fails before anything is made
    if options.volumes_from:
        from cove.engine import volumes_from

        options = volumes_from.expand(store, options)
    container_id = new_id()
    undo: list[Callable[[], None]] = []
    try:
        with ImageStore(os.path.join(root, "images")) as images:
            image_record = images.resolve(image)
            config = images.config(image_record)
            folders = LayerStore(os.path.join(root, "layers")).ensure(images, image_record)
        # volumes: named in the record before they exist (so none is removed under us)
        volumes = VolumeService(root, records=lambda: store.list(all=True))
        requests = volume_requests(config.config, options)
        planned = volumes.plan(requests)
        made: list[str] = []
        undo.append(lambda: volumes.discard(made))
        record = store.add(ContainerRecord(
            id=container_id, name=name, image_id=str(image_record.id), image_name=image,
            runtime=runtime, config=_jsonable(asdict(options)),
            settings={**settings.to_json(), **({"volumes": planned} if planned else {})},
        ))  # fmt: skip
        undo.append(lambda: forget(store, container_id))
        snapshots = choose_snapshotter(root)
        key = snapshot_key(container_id)
        snapshots.prepare(key, list(reversed(folders)))
        undo.append(lambda: snapshots.remove(key))
        host_dirs, host_warnings = plan_host_dirs(
            config.config.labels, snapshots.path(key), folders, read_only=options.read_only,
            overlay_works=isinstance(snapshots, OverlaySnapshotter),
        )  # fmt: skip
        make_host_dirs(host_dirs)  # in the snapshot's folder: removed with it
        rootfs = snapshots.mount(key)
        sources = volumes.prepare(requests, planned, rootfs, made)
        from cove.engine.network import attach
        from cove.engine.network.create_check import check_create

        network = check_create(root, store, options,
                               [*config.config.exposed_ports, *options.expose])  # fmt: skip
        joined = network.joined
        shared: dict[str, str] = {}
        shm = ""
        if options.pid or options.ipc:
            from cove.engine import container_namespaces

            shared = container_namespaces.joined_paths(store, record.config, running=False)
            shm = container_namespaces.shm_source(store, container_id, record.config)
        generated = generate_spec(
            config, options, rootfs, container_id=container_id, image_name=image,
            init_binary=init_binary() if options.init else None, volumes=sources,
            network_namespace=f"/proc/{joined.pid}/ns/net" if joined and joined.pid else "",
            etc_dir=str(attach.etc_dir(store, container_id, record.config)),
            host_dirs=host_dirs, joined_namespaces=shared, shm_source=shm,
        )  # fmt: skip
        if joined is None:
            attach.write_etc_files(store.container_dir(container_id), record.config,
                                   str(generated.spec.get("hostname") or ""))  # fmt: skip
        for warning in network.warnings + host_warnings + generated.warnings:
            if warn is not None:
                warn(warning)
        process = generated.spec.get("process") or {}
        if console_size is not None and process.get("terminal"):
            process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
        bundle = store.container_dir(container_id) / "bundle"
        bundle.mkdir(parents=True, exist_ok=True)
        _write_atomic(bundle / "config.json", json.dumps(generated.spec))
        settings_json = dict(record.settings)
        settings_json["stop_signal"] = generated.stop_signal
        settings_json["restart_policy"] = policy
        if network.bindings:
            settings_json["port_bindings"] = [b.to_dict() for b in network.bindings]
        if options.connect:  # the networks after the first: as `network connect` records them
            settings_json["connected"] = [
                {"network": str(e["network"]), "aliases": [str(a) for a in e.get("aliases") or ()]}
                for e in options.connect
            ]
        health = healthcheck.resolve(settings.healthcheck, healthcheck.image_healthcheck(config))
        settings_json.pop("healthcheck", None)
        if health is not None:
            settings_json["healthcheck"] = health
        from cove.engine.monitor import log_file_path

        log_path = log_file_path(store.container_dir(container_id), container_id)
        record = store.update_state(
            container_id, bundle=str(bundle), rootfs=rootfs, settings=settings_json,
            log_path=str(log_path),
        )  # fmt: skip
        if not keep_mounted:
            snapshots.unmount(rootfs)
        return record
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except CoveError:
                continue
        raise


def forget(store: ContainerStore, container_id: str) -> None:
    """Drop the record and the container's folder (the caller holds no lock on it)."""
    directory = store.container_dir(container_id)
    store.remove(container_id)
    shutil.rmtree(directory, ignore_errors=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _jsonable(value: object) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(json.dumps(value, default=str))
    return loaded
