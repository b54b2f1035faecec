"""cove build [-t NAME]... [-f FILE] [--build-arg K=V]... [--target STAGE] [--no-cache]
[--pull] [--network default|none|host] [--label K=V]... [--iidfile PATH] [-q]
[--progress auto|plain|tty] [--timestamp N] CONTEXT

CONTEXT is a directory, or `-`: a Dockerfile on stdin (no context files) or a tar of the
context on stdin (plain, gzip, bzip2, xz: told by its content). `-f` is relative to the
current directory (as Docker's); `-f -` reads the Dockerfile from stdin. Progress goes to
stderr (a live display on a terminal, lines otherwise); stdout gets the image id.
SOURCE_DATE_EPOCH in the environment is the timestamp when --timestamp is not given.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from cove.errors import BuildError, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from cove.cli.engine import Context
    from cove.engine.build_secrets import BuildSecrets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("context", metavar="CONTEXT", help="a directory, or - for stdin")
    parser.add_argument("-t", "--tag", action="append", default=[], metavar="NAME",
                        help="name the image (repeatable)")  # fmt: skip
    parser.add_argument(
        "-f",
        "--file",
        default="",
        metavar="FILE",
        help="the Dockerfile (default: CONTEXT/Dockerfile, else Containerfile)",
    )
    parser.add_argument("--build-arg", action="append", default=[], metavar="K=V",
                        help="a build argument (K alone: from the environment)")  # fmt: skip
    parser.add_argument("--target", default=None, metavar="STAGE", help="the stage to build")
    parser.add_argument("--no-cache", action="store_true", help="do not use the step cache")
    parser.add_argument("--pull", action="store_true", help="pull base images even if present")
    parser.add_argument("--network", default="default", choices=("default", "none", "host"),
                        help="the network of RUN steps")  # fmt: skip
    parser.add_argument("--label", action="append", default=[], metavar="K=V",
                        help="a label of the image (repeatable)")  # fmt: skip
    parser.add_argument("--iidfile", default="", metavar="PATH", help="write the image id there")
    parser.add_argument("--add-host", action="append", default=[], metavar="NAME:IP",
                        help="a line of the RUN steps' /etc/hosts")  # fmt: skip
    parser.add_argument("--shm-size", default="", help="size of the RUN steps' /dev/shm")
    parser.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                        help="a limit of the RUN steps' processes")  # fmt: skip
    parser.add_argument("--platform", default="", help="os/arch: only this machine's")
    parser.add_argument("-o", "--output", default="", metavar="type=local,dest=DIR",
                        help="also write the image's files: a folder (DIR or type=local,dest=DIR)"
                             " or a tar (type=tar,dest=FILE)")  # fmt: skip
    parser.add_argument("--secret", action="append", default=[], metavar="id=ID[,src=PATH]",
                        help="for RUN --mount=type=secret: src=FILE or env=VAR")  # fmt: skip
    parser.add_argument("--ssh", action="append", default=[], metavar="ID[=SOCKET]",
                        help="for RUN --mount=type=ssh (default: $SSH_AUTH_SOCK)")  # fmt: skip
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    parser.add_argument("--progress", default="auto", choices=("auto", "plain", "tty"),
                        help="how to show progress")  # fmt: skip
    parser.add_argument(
        "--timestamp",
        type=int,
        default=None,
        metavar="SECONDS",
        help="created time and file mtimes of the image (reproducible)",
    )


def _pairs(values: list[str], flag: str, *, environment: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid value {item!r} for flag {flag}: expected K=V")
        if not sep:
            if not environment:
                out[key] = ""
            elif key in os.environ:
                out[key] = os.environ[key]
            continue  # Docker: K alone takes the environment's value, or is left out
        out[key] = value
    return out


def _remote_context(text: str, temp: str) -> tuple[str, str | None] | None:
    """A git repository or an http(s) URL as the context, as the docker CLI takes them:
    (the context folder, the Dockerfile's text when the URL gave only that); None when
    `text` is neither."""
    lowered = text.lower()
    if "://" not in text and not lowered.startswith(("git@", "github.com/")):
        return None  # a folder or "-": nothing remote to load (the common case)
    from cove.engine.build_git import clone, parse_git_url

    source = parse_git_url(text)
    if source is not None:
        return clone(source, temp), None
    if not text.lower().startswith(("http://", "https://")):
        if "://" in text:
            raise BuildError(f"unsupported build context {text}: want a folder, -, a git "
                             "repository or an http(s) URL")  # fmt: skip
        return None
    import urllib.request

    try:
        with urllib.request.urlopen(text, timeout=60) as response:
            data = response.read()
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot fetch the build context {text}: {exc}") from None
    if _is_tar(data):
        _unpack_context(data, temp, f"the build context from {text}")
        return temp, None
    return temp, data.decode("utf-8", "surrogateescape")


def _is_tar(data: bytes) -> bool:
    if data.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")):
        return True
    return len(data) >= 263 and data[257:262] == b"ustar"


def _unpack_context(data: bytes, folder: str, name: str) -> None:
    import io

    from cove.image.layer import apply_layer

    stream = io.BytesIO(data)
    if data.startswith(b"BZh"):
        import bz2

        stream = io.BytesIO(bz2.decompress(data))
    elif data.startswith(b"\xfd7zXZ\x00"):
        import lzma

        stream = io.BytesIO(lzma.decompress(data))
    os.rmdir(folder)
    apply_layer(stream, folder, name=name)


def _reporter(args: argparse.Namespace) -> object:
    from cove.cli.engine.build_progress import PlainReporter, TtyReporter
    from cove.engine.build import NullReporter

    if args.quiet:
        return NullReporter()
    mode = args.progress
    if mode == "auto":
        mode = "tty" if sys.stderr.isatty() and os.environ.get("TERM") != "dumb" else "plain"
    if mode == "tty":
        try:
            columns = os.get_terminal_size(sys.stderr.fileno()).columns
        except OSError:
            columns = 80
        return TtyReporter(sys.stderr, columns)
    return PlainReporter(sys.stderr)


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP end the build as Ctrl-C does: its containers and mounts go."""
    import signal

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)


def _check_platform(text: str) -> None:
    if not text.strip():
        return
    from cove.image.platform import host_platform, parse_platform

    wanted, host = parse_platform(text), host_platform()
    if not wanted.matches(host):
        raise InvalidArgument(f"cove builds images for this machine's platform only ({host}), "
                              f"not {wanted}")  # fmt: skip


def _secrets(args: argparse.Namespace) -> BuildSecrets:
    from cove.engine.build_secrets import BuildSecrets, parse_secret, parse_ssh

    secrets = dict(parse_secret(text, os.environ) for text in args.secret)
    ssh = dict(parse_ssh(text, os.environ) for text in args.ssh)
    return BuildSecrets(secrets, ssh)


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.build import BuildRequest, BuildService
    from cove.engine.build_secrets import StepResources

    _stop_on_signals()
    build_args = _pairs(args.build_arg, "--build-arg", environment=True)
    secrets = _secrets(args)
    resources = StepResources(tuple(args.add_host), args.shm_size, tuple(args.ulimit))
    resources.check()
    _check_platform(args.platform)
    output = None
    if args.output:
        from cove.engine.build_output import parse_output

        output = parse_output(args.output)
    labels = _pairs(args.label, "--label", environment=False)
    timestamp = args.timestamp
    if timestamp is None and os.environ.get("SOURCE_DATE_EPOCH", "").strip():
        try:
            timestamp = int(os.environ["SOURCE_DATE_EPOCH"])
        except ValueError:
            raise InvalidArgument("SOURCE_DATE_EPOCH must be a number of seconds") from None
    work = os.path.join(context.root, "build")
    os.makedirs(work, mode=0o700, exist_ok=True)
    temp = tempfile.mkdtemp(prefix="context-", dir=work)
    try:
        dockerfile_text = None
        dockerfile = ""
        if args.file == "-":
            if args.context == "-":
                raise InvalidArgument("the context and the Dockerfile cannot both be stdin")
            dockerfile_text = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
        elif args.file:
            dockerfile = os.path.abspath(args.file)
        remote = _remote_context(args.context, temp)
        if remote is not None:
            context_dir, fetched = remote
            dockerfile_text = dockerfile_text if fetched is None else fetched
            if args.file and args.file != "-":
                dockerfile = args.file.lstrip("/")  # a remote context's own file
        elif args.context == "-":
            data = sys.stdin.buffer.read()
            context_dir = temp
            if _is_tar(data):
                _unpack_context(data, temp, "the build context on stdin")
            else:
                dockerfile_text = data.decode("utf-8", "surrogateescape")
        else:
            context_dir = os.path.abspath(args.context)
            if not os.path.isdir(context_dir):
                raise BuildError(f"the build context {args.context} is not a directory")
        request = BuildRequest(
            context_dir=context_dir, dockerfile=dockerfile, dockerfile_text=dockerfile_text,
            tags=tuple(args.tag), build_args=build_args, target=args.target,
            no_cache=args.no_cache, pull=args.pull, network=args.network, labels=labels,
            timestamp=timestamp, quiet=args.quiet, secrets=secrets, resources=resources,
        )  # fmt: skip
        reporter = _reporter(args)
        failed = True
        try:
            image_id = BuildService(context.root).build(request, reporter)  # type: ignore[arg-type]
            failed = False
        finally:
            close = getattr(reporter, "close", None)
            if close is not None:
                close(failed)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    if not args.quiet:
        for tag in args.tag:
            sys.stderr.write(f"Successfully tagged {tag}\n")
    if output is not None:
        from cove.engine.build_output import write_output

        write_output(context.root, image_id, output)
    if args.iidfile:
        with open(args.iidfile, "w") as out:
            out.write(image_id)
    if output is None or output.dest != "-":  # (the tar went to stdout)
        sys.stdout.write(image_id + "\n")
    return 0
