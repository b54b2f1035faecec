"""cove-runtime exec [flags] ID COMMAND [ARGS...]  |  exec --process FILE ID"""

from __future__ import annotations

from cove.cli.runtime import GlobalOptions
from cove.cli.runtime.common import linux, parse_verb, store
from cove.cli.runtime.flags import Flag
from cove.errors import InvalidArgument
from cove.runtime.container_exec import ExecOptions, exec_in_container

FLAGS = [
    Flag("process", takes_value=True, aliases=("p",), help="a process.json to run"),
    Flag("env", takes_value=True, repeat=True, aliases=("e",), help="set KEY=VALUE"),
    Flag("cwd", takes_value=True, help="working directory inside the container"),
    Flag("user", takes_value=True, aliases=("u",), help="UID[:GID]"),
    Flag(
        "additional-gids",
        takes_value=True,
        repeat=True,
        aliases=("g",),
        help="an extra group id (repeatable)",
    ),
    Flag("tty", aliases=("t",), help="allocate a pseudo-terminal"),
    Flag("detach", aliases=("d",), help="do not wait for the process"),
    Flag("pid-file", takes_value=True, help="write the process's pid to this file"),
    Flag("console-socket", takes_value=True, help="unix socket to send the pty master to"),
    Flag("preserve-fds", takes_value=True, help="pass N more fds (from 3) to the process"),
    Flag("no-new-privs", help="set no_new_privs for the process"),
]

VALUE_FLAGS = {n for f in FLAGS if f.takes_value for n in (f.name, *f.aliases)}


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb(
        "exec", "[flags] CONTAINER_ID COMMAND [ARGS...]", FLAGS, args, stop_at_positional=True
    )
    if parsed is None:
        return 0
    if not parsed.positional:
        raise InvalidArgument("exec: expected the container id")
    container_id, *command = parsed.positional
    try:
        gids = tuple(int(g) for g in parsed.many("additional-gids"))
    except ValueError:
        raise InvalidArgument("--additional-gids: expected numbers") from None
    exec_options = ExecOptions(
        args=tuple(command),
        process_file=parsed.text("process"),
        env=tuple(parsed.many("env")),
        cwd=parsed.text("cwd"),
        user=parsed.text("user"),
        additional_gids=gids,
        tty=parsed.switch("tty"),
        detach=parsed.switch("detach"),
        pid_file=parsed.text("pid-file"),
        console_socket=parsed.text("console-socket"),
        preserve_fds=parsed.number("preserve-fds"),
        no_new_privs=parsed.switch("no-new-privs"),
    )
    return exec_in_container(store(options), container_id, exec_options, linux())
