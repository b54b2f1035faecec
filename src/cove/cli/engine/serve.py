"""cove serve [-H unix:///run/cove/cove.sock] [-H tcp://127.0.0.1:2375] [--tls...]

The Docker Engine API (cove.api): `DOCKER_HOST=unix:///run/cove/cove.sock docker ps`.
Logs go to stderr; `--log-level debug` adds one line per request (method, path, status,
milliseconds). SIGTERM or SIGINT stops it with status 0."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-H", "--host", action="append", default=[], metavar="ADDRESS",
        help="where to listen: unix:///PATH (default unix:///run/cove/cove.sock), "
        "tcp://127.0.0.1:PORT (other addresses only with TLS), fd:// (systemd socket "
        "activation); repeatable",
    )  # fmt: skip
    parser.add_argument("--tlscert", default="", help="the server's certificate (PEM)")
    parser.add_argument("--tlskey", default="", help="the server's private key (PEM)")
    parser.add_argument("--tlscacert", default="", help="the CA that signs client certificates")
    parser.add_argument("--tlsverify", action="store_true",
                        help="require client certificates signed by --tlscacert")  # fmt: skip
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    import asyncio
    import logging

    from cove.api.server import TlsOptions, serve

    logging.basicConfig(level=args.log_level.upper(), format="cove serve: %(message)s")
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    tls = TlsOptions(args.tlscert, args.tlskey, args.tlscacert, args.tlsverify)
    asyncio.run(serve(context.root, args.host, tls))
    return 0
