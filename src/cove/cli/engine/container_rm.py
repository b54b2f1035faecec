"""cove rm [-f] [-v] CONTAINER..."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator

from cove.cli.engine import REQUEST_FAILED, Context
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.add_argument("-f", "--force", action="store_true", help="kill it first if it runs")
    parser.add_argument("-v", "--volumes", action="store_true",
                        help="remove its anonymous volumes too")  # fmt: skip
    parser.add_argument("-l", "--link", action="store_true", help="not supported: no links")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService

    if args.link:
        from cove.errors import InvalidArgument

        raise InvalidArgument("--link: cove has no legacy links to remove")
    service = ContainerService(context.root)

    def remove(term: str) -> None:
        service.remove(term, force=args.force, volumes=args.volumes)

    status = 0
    for term, error in for_each(args.containers, remove):
        if error is not None:
            sys.stderr.write(f"Error: {error}\n")
            status = REQUEST_FAILED
        else:
            sys.stdout.write(f"{term}\n")
    return status


def for_each(
    terms: list[str], action: Callable[[str], None], workers: int = 8
) -> Iterator[tuple[str, CoveError | None]]:
    """Run `action` on each container at once, as docker does for rm and stop: most of the
    time is the kernel's (a container exiting, cgroup and folder removal), which overlaps.
    Results come in the order given."""
    if len(terms) == 1:
        try:
            action(terms[0])
        except CoveError as exc:
            yield terms[0], exc
        else:
            yield terms[0], None
        return
    from concurrent.futures import ThreadPoolExecutor

    def attempt(term: str) -> CoveError | None:
        try:
            action(term)
        except CoveError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=min(workers, len(terms))) as pool:
        yield from zip(terms, pool.map(attempt, terms), strict=True)
