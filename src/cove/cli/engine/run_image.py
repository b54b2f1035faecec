"""What `cove run` and `cove create` do around the container, as docker's CLI does:

- the image: `--pull missing` (the default) pulls an image that is not here ("Unable to
  find image 'NAME' locally", then the pull's progress on stderr, unless -q); `always`
  pulls first; `never` fails. `--platform` is the pull's (only this host's platform runs).
- `--cidfile FILE`: the new container's id written there; an existing file is an error
  (docker refuses to overwrite one), checked before anything is made.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

from cove.errors import CoveError, InvalidArgument, NoSuchImage

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from cove.cli.engine import Context

PULL_POLICIES = ("missing", "always", "never")
_T = TypeVar("_T")


def add_image_arguments(add: Callable[..., object]) -> None:
    add("--pull", default="missing", help="missing (default), always or never")
    add("--platform", default=None, help="os/arch[/variant] of the image to pull")
    add("-q", "--quiet", action="store_true", help="no pull progress")
    add("--cidfile", default="", help="write the container's id to this file")


def check(args: argparse.Namespace) -> None:
    if args.pull not in PULL_POLICIES:
        raise InvalidArgument(f"invalid value '{args.pull}' for flag --pull: want missing, "
                              "always or never")  # fmt: skip
    if args.cidfile and os.path.lexists(args.cidfile):
        raise InvalidArgument(f"container ID file found, make sure the other container isn't "
                              f"running or delete {args.cidfile}")  # fmt: skip


def with_image(args: argparse.Namespace, context: Context, make: Callable[[], _T]) -> _T:
    """`make()` (the create or run), with the image pulled as --pull says."""
    if args.pull == "always":
        _pull(args, context)
        return make()
    try:
        return make()
    except NoSuchImage:
        if args.pull == "never" or not _pullable(args.image):
            raise
    sys.stderr.write(f"Unable to find image '{args.image}' locally\n")
    sys.stderr.flush()
    _pull(args, context)
    return make()


def write_cidfile(args: argparse.Namespace, container_id: str) -> None:
    if not args.cidfile:
        return
    try:
        fd = os.open(args.cidfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise CoveError(f"cannot write the container ID file {args.cidfile}: "
                        f"{exc.strerror}") from None  # fmt: skip
    with os.fdopen(fd, "w") as out:
        out.write(container_id)


def _pullable(image: str) -> bool:
    """A name a registry can have (not an image id or a short id)."""
    from cove.image.reference import parse_reference

    text = image.removeprefix("sha256:")
    if len(text) >= 12 and all(c in "0123456789abcdef" for c in text) and ":" not in image:
        return False
    try:
        parse_reference(image)
    except CoveError:
        return False
    return True


def _pull(args: argparse.Namespace, context: Context) -> None:
    from cove.image.reference import parse_reference
    from cove.image.registry.client import RegistryClient
    from cove.image.registry.progress import ProgressPrinter, no_progress
    from cove.image.registry.pull import pull
    from cove.image.store import ImageStore

    ref = parse_reference(args.image)
    progress = no_progress if args.quiet else ProgressPrinter(sys.stderr)
    with RegistryClient(ref.registry) as client, ImageStore(context.images_dir) as store:
        pull(store, ref, client=client, platform=args.platform, progress=progress)
