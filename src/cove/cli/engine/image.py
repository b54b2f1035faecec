"""cove image SUBCOMMAND: ls, inspect, tag, rm, prune."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context, run_module

# subcommand -> (module, help); ls, tag and rm are also top-level (images, tag, rmi).
SUBCOMMANDS = {
    "ls": ("image_ls", "list images"),
    "build": ("build", "build an image from a Dockerfile (Containerfile)"),
    "list": ("image_ls", "list images"),
    "inspect": ("image_inspect", "show images' details (JSON)"),
    "tag": ("image_tag", "give an image another name"),
    "rm": ("image_rm", "remove images"),
    "prune": ("image_prune", "remove unused images"),
    "history": ("image_history", "show the history of an image"),
    "bootstrap": ("image_bootstrap", "make an image from the host's userland (--from-host)"),
    "mount": ("image_mount", "mount an image's files read-write at a path (changes are lost)"),
    "unmount": ("image_unmount", "unmount an image mounted with image mount"),
    "import": ("image_import", "make an image from a root filesystem tarball"),
    "load": ("image_load", "load images from a docker-archive or an OCI archive"),
    "save": ("image_save", "save images to a docker-archive or an OCI archive"),
    "pull": ("image_pull", "download an image from a registry"),
    "push": ("image_push", "upload an image to a registry"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subcommand", choices=sorted(SUBCOMMANDS))
    parser.add_argument("rest", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace, context: Context) -> int:
    module_name, summary = SUBCOMMANDS[args.subcommand]
    return run_module(module_name, f"cove image {args.subcommand}", summary, args.rest, context)
