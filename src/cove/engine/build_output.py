"""`cove build --output`: the built image's files written out as well, as BuildKit's
exporters do: `type=local,dest=DIR` (or just `DIR`) a folder with the image's merged
filesystem, `type=tar,dest=FILE` a tar of it (`dest=-`: standard output).

The folder must not exist or be empty; it is written whole or not at all (a partial one is
removed on failure)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass

from cove.errors import BuildError, InvalidArgument


@dataclass(frozen=True)
class Output:
    kind: str  # local or tar
    dest: str


def parse_output(text: str) -> Output:
    if "=" not in text:
        return Output("local", text)
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise InvalidArgument(f"invalid value '{text}' for flag --output: want KEY=VALUE")
        fields[key.strip()] = value
    kind = fields.pop("type", "local")
    dest = fields.pop("dest", "")
    if kind not in ("local", "tar"):
        raise InvalidArgument(f"invalid value '{text}' for flag --output: type is local or tar")
    if fields:
        raise InvalidArgument(f"invalid value '{text}' for flag --output: unknown key "
                              f"{sorted(fields)[0]!r}")  # fmt: skip
    if not dest:
        raise InvalidArgument(f"invalid value '{text}' for flag --output: it needs dest=")
    if kind == "local" and dest == "-":
        raise InvalidArgument("--output type=local needs a folder (dest=- is for type=tar)")
    return Output(kind, dest)


def write_output(root: str, image_id: str, output: Output) -> None:
    from cove.image.layers import LayerStore
    from cove.image.snapshot_copy import merge_layers
    from cove.image.store import ImageStore

    with ImageStore(os.path.join(root, "images")) as store:
        record = store.resolve(image_id)
        layers = LayerStore(os.path.join(root, "layers")).ensure(store, record)
    if output.kind == "local":
        dest = os.path.abspath(output.dest)
        if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
            raise BuildError(f"--output: {dest} exists and is not an empty folder")
        made = not os.path.exists(dest)
        os.makedirs(dest, exist_ok=True)
        try:
            merge_layers(layers, dest)
        except BaseException:
            if made:
                shutil.rmtree(dest, ignore_errors=True)
            else:
                _empty(dest)
            raise
        return
    with tempfile.TemporaryDirectory(prefix="output-", dir=os.path.join(root, "build")) as tree:
        merge_layers(layers, tree)
        _write_tar(tree, output.dest)


def _empty(folder: str) -> None:
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def _write_tar(tree: str, dest: str) -> None:
    import tarfile

    target = sys.stdout.buffer if dest == "-" else None
    partial = "" if target is not None else f"{dest}.{os.urandom(4).hex()}.partial"
    try:
        with (tarfile.open(fileobj=target, mode="w|") if target is not None
              else tarfile.open(partial, "w")) as tar:  # fmt: skip
            for name in sorted(os.listdir(tree)):
                tar.add(os.path.join(tree, name), arcname=name)
        if partial:
            os.replace(partial, dest)
    finally:
        if partial and os.path.exists(partial):
            os.unlink(partial)
