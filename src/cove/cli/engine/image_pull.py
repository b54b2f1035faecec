"""cove pull [--platform OS/ARCH[/VARIANT]] [--tls-verify=false] [-q] NAME[:TAG|@DIGEST]"""

from __future__ import annotations

import atexit
import gc
import sys

from cove.cli.engine.parser import SUPPRESS, parse_bool
from cove.errors import InvalidArgument
from cove.image.reference import parse_reference
from cove.image.registry.client import RegistryClient
from cove.image.registry.progress import ProgressPrinter, no_progress
from cove.image.registry.pull import pull
from cove.image.registry.pull_early import start_pull

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from cove.cli.engine import Context


def add_tls_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tls-verify", type=parse_bool, nargs="?", const=True, default=None, metavar="BOOL",
        help="check the registry's TLS certificate (false: also allow plain HTTP); "
        "loopback registries use plain HTTP unless this is true",
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", metavar="NAME[:TAG|@DIGEST]")
    parser.add_argument("--platform", default=None, help="os/arch[/variant] (default: this host)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image name")
    parser.add_argument("-a", "--all-tags", action="store_true", help=SUPPRESS)
    add_tls_verify(parser)


def run(args: argparse.Namespace, context: Context) -> int:
    if args.all_tags:
        raise InvalidArgument("--all-tags is not supported")
    _no_collection_at_exit()
    # No cycle collection while pulling: its passes hold the interpreter for a millisecond
    # or more each, which the download threads wait out. A pull makes few cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _pull(args, context)
    finally:
        if collecting:
            gc.enable()
    return 0


def _pull(args: argparse.Namespace, context: Context) -> None:
    progress = no_progress if args.quiet else ProgressPrinter(sys.stdout)
    ref = parse_reference(args.reference)
    with RegistryClient(ref.registry, tls_verify=args.tls_verify) as client:
        # The manifests and blobs come from the registry while the store is imported and
        # its database opened (its progress is shown once the store is open).
        early = start_pull(client, ref, args.platform, context.images_dir, progress=progress)
        try:
            from cove.image.store import ImageStore

            with ImageStore(context.images_dir) as store:
                pull(store, ref, client=client, platform=args.platform, progress=progress,
                     early=early)  # fmt: skip
        except BaseException:
            early.cancel()
            raise
    sys.stdout.write(f"{ref.familiar() if ref.digest is None else str(ref)}\n")


def _no_collection_at_exit() -> None:
    """At exit the interpreter runs the cycle collector over every object of every module
    it imported before tearing them down: about 3 ms of a pull into a fresh store. The pull
    closes what it opens (store, connections, files), so nothing waits for that pass:
    `gc.freeze()` at exit moves everything out of its reach. Registered once; it changes
    nothing before the interpreter exits."""
    global _EXIT_FREEZE
    if not _EXIT_FREEZE:
        atexit.register(gc.freeze)
        _EXIT_FREEZE = True


_EXIT_FREEZE = False
