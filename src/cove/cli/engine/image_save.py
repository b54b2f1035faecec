"""cove save [-o FILE] [--format docker-archive|oci-archive] IMAGE...

Writes the images as one tar (docker-archive by default, as `docker save`), to FILE or
to stdout when that is not a terminal. FILE appears atomically: it is written beside
its final name and renamed when complete, so a failed save leaves no partial archive.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence

from cove.cli.engine import Context
from cove.errors import ArchiveError, InvalidArgument
from cove.image.archive import DOCKER_ARCHIVE, FORMATS, save, select_images
from cove.image.reference import Reference
from cove.image.store import ImageStore
from cove.image.store_index import ImageRecord


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    parser.add_argument("--format", choices=FORMATS, default=DOCKER_ARCHIVE,
                        help=f"archive format (default {DOCKER_ARCHIVE})")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    to_stdout = args.output in (None, "-")
    if to_stdout and sys.stdout.isatty():
        raise InvalidArgument(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect"
        )
    with ImageStore(context.images_dir) as store:
        images = select_images(store, args.images)
        if to_stdout:
            sys.stdout.flush()
            save(store, images, sys.stdout.buffer, args.format)
            try:
                sys.stdout.buffer.flush()
            except OSError as exc:
                raise ArchiveError(f"cannot write the archive: {exc.strerror}") from None
            return 0
        _save_to_file(store, images, args.output, args.format)
    return 0


def _save_to_file(
    store: ImageStore,
    images: Sequence[tuple[ImageRecord, Sequence[Reference]]],
    path: str,
    fmt: str,
) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, partial = tempfile.mkstemp(dir=folder, prefix=".cove-save-", suffix=".partial")
    except OSError as exc:
        raise InvalidArgument(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            save(store, images, out, fmt)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(partial, 0o644)
        os.rename(partial, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise InvalidArgument(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
