"""cove login [-u USER] [-p PASSWORD | --password-stdin] [--tls-verify=false] [SERVER]

Checks the credentials against the registry's /v2/ (through its token server when it has
one), then stores them in the Docker-compatible config.json ($DOCKER_CONFIG/config.json or
~/.docker/config.json, mode 0600).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from cove.cli.engine import Context
from cove.cli.engine.image_pull import add_tls_verify
from cove.errors import InvalidArgument
from cove.image.registry.auth import Credentials, CredentialStore
from cove.image.registry.client import RegistryClient


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("server", nargs="?", default="docker.io", metavar="SERVER")
    parser.add_argument("-u", "--username", default=None)
    parser.add_argument("-p", "--password", default=None)
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    add_tls_verify(parser)


def server_name(text: str) -> str:
    """`https://host:5000/v2/` or `host:5000` -> `host:5000`; Docker Hub's names -> docker.io."""
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    host = text.split("/", 1)[0]
    if not host:
        raise InvalidArgument(f"invalid registry address {text!r}")
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


def run(args: argparse.Namespace, context: Context) -> int:
    server = server_name(args.server)
    if args.password_stdin:
        if args.password is not None:
            raise InvalidArgument("--password and --password-stdin cannot be used together")
        if args.username is None:
            raise InvalidArgument("--password-stdin needs --username")
        password = sys.stdin.read().rstrip("\r\n")
    else:
        password = args.password
    username = args.username
    if username is None:
        if not sys.stdin.isatty():
            raise InvalidArgument("no username given (-u) and stdin is not a terminal")
        username = input("Username: ").strip()
    if password is None:
        if not sys.stdin.isatty():
            raise InvalidArgument("no password given (-p, --password-stdin)")
        password = getpass.getpass("Password: ")
    if not username:
        raise InvalidArgument("the username is empty")
    if args.password is not None:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. "
                         "Use --password-stdin.\n")  # fmt: skip
    credentials = Credentials(username, password)
    with RegistryClient(server, tls_verify=args.tls_verify, credentials=credentials) as client:
        client.ping()
    store = CredentialStore()
    store.set(server, credentials)
    sys.stdout.write("Login Succeeded\n")
    return 0
