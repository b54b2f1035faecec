"""The container service: run a container from an image, list and remove containers.

This first version runs containers in the foreground only: the `cove` process itself is
the subreaper that collects the exit status (the monitor that lets detached containers
outlive the CLI comes next). Every step of `run` is undone if a later one fails: no half
made record, no overlay mount, no runtime state is left.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict

from cove.engine.create_options import CreateOptions
from cove.engine.oci_runtime import runtime_for
from cove.engine.specgen import generate_spec
from cove.engine.state import ContainerRecord, ContainerStore, new_id
from cove.errors import CoveError, InvalidState
from cove.image.layers import LayerStore
from cove.image.snapshot import choose_snapshotter
from cove.image.store import ImageStore


class ContainerService:
    def __init__(self, root: str) -> None:
        self.root = root
        self.store = ContainerStore(root)

    def run_foreground(
        self,
        image: str,
        options: CreateOptions,
        *,
        name: str = "",
        remove: bool = False,
        runtime: str = "cove",
        stdin: int | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> int:
        """Create, start and wait for a container; returns its exit code (128+N when
        killed by signal N)."""
        from cove.engine.foreground import wait_foreground

        container_id = new_id()
        undo: list[Callable[[], None]] = []
        try:
            with ImageStore(os.path.join(self.root, "images")) as images:
                image_record = images.resolve(image)
                config = images.config(image_record)
                folders = LayerStore(os.path.join(self.root, "layers")).ensure(images, image_record)
            self.store.add(ContainerRecord(
                id=container_id, name=name, image_id=str(image_record.id), image_name=image,
                runtime=runtime, config=_jsonable(asdict(options)),
            ))  # fmt: skip
            undo.append(lambda: self._forget(container_id))
            snapshots = choose_snapshotter(self.root)
            key = _snapshot_key(container_id)
            snapshots.prepare(key, list(reversed(folders)))
            undo.append(lambda: snapshots.remove(key))
            rootfs = snapshots.mount(key)
            generated = generate_spec(
                config, options, rootfs, container_id=container_id, image_name=image
            )
            for warning in generated.warnings:
                if warn is not None:
                    warn(warning)
            bundle = self.store.container_dir(container_id) / "bundle"
            bundle.mkdir(parents=True, exist_ok=True)
            (bundle / "config.json").write_text(json.dumps(generated.spec))
            self.store.update_state(container_id, bundle=str(bundle), rootfs=rootfs)
            engine_runtime = runtime_for(runtime, self.root)
            # Init is re-parented to us when the runtime's create exits: we collect its status.
            from cove.sys.constants import PR_SET_CHILD_SUBREAPER
            from cove.sys.linux import LinuxSyscalls

            LinuxSyscalls().prctl(PR_SET_CHILD_SUBREAPER, 1)
            pid_file = bundle.parent / "init.pid"
            engine_runtime.create(container_id, bundle, pid_file=pid_file, stdio=(stdin, 1, 2))
            undo.append(lambda: engine_runtime.delete(container_id, force=True))
            pid = int(pid_file.read_text())
            from cove.engine.state_records import utc_now

            self.store.update_state(container_id, status="running", pid=pid, started_at=utc_now())
            engine_runtime.start(container_id)
            exit_code = wait_foreground(pid)
            self.store.update_state(
                container_id, status="exited", pid=0, exit_code=exit_code, finished_at=utc_now()
            )
            engine_runtime.delete(container_id, force=True)
            undo.pop()  # runtime state: gone
            if remove:
                for step in reversed(undo):
                    step()
            else:
                snapshots.unmount(rootfs)  # the container's changes stay for `cove rm`/commit
            return exit_code
        except BaseException:
            for step in reversed(undo):
                try:
                    step()
                except CoveError:
                    continue
            raise

    def list(self, all_containers: bool = False) -> list[ContainerRecord]:
        return self.store.list(all=all_containers)

    def remove(self, term: str, force: bool = False) -> str:
        record = self.store.get(term)
        with self.store.lock(record.id):
            if record.status in ("running", "paused"):
                if not force:
                    raise InvalidState(
                        f"cannot remove container {record.short_id}: it is {record.status}"
                        " (stop it first or use --force)"
                    )
                runtime_for(record.runtime, self.root).delete(record.id, force=True)
            choose_snapshotter(self.root).remove(_snapshot_key(record.id))
            self._forget(record.id)
        return record.id

    def _forget(self, container_id: str) -> None:
        directory = self.store.container_dir(container_id)
        self.store.remove(container_id)
        shutil.rmtree(directory, ignore_errors=True)


def _snapshot_key(container_id: str) -> str:
    return "ctr-" + container_id[:32]


def _jsonable(value: object) -> dict[str, object]:
    text = json.dumps(value, default=str)
    loaded: dict[str, object] = json.loads(text)
    return loaded
