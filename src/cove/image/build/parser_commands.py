"""The parsers of the instructions that name a command: RUN (with its `--mount`,
`--network` and `--security` flags), CMD, ENTRYPOINT, SHELL and HEALTHCHECK (with
`parse_duration`, for its Go-style durations).
"""

from __future__ import annotations

import re

from cove.image.build.instructions import (
    Cmd,
    Entrypoint,
    Healthcheck,
    Instruction,
    Run,
    Shell,
)
from cove.image.build.mounts import MountSpecError, parse_mount
from cove.image.build.parser_context import Ctx, Flags, command_line, json_or_none

_NETWORKS = ("default", "none", "host")
_SECURITY = ("sandbox", "insecure")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MIN_HEALTH_DURATION = 1_000_000  # 1ms


def parse_duration(text: str) -> int:
    """A Go duration (`30s`, `1m30s`, `1.5h`, `500ms`, `0`) in nanoseconds."""
    body = text.strip()
    sign = 1
    if body.startswith(("+", "-")):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return 0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _DURATION.match(body, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return sign * round(total)


def parse_run(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    command = command_line(ctx, "RUN", rest)
    mounts = []
    for spec in flags.strings("mount"):
        try:
            mounts.append(parse_mount(spec, deferred=True))
        except MountSpecError as exc:
            raise ctx.error(f"RUN --mount={spec}: {exc}") from None
        if mounts[-1].from_ is not None and "$" in mounts[-1].from_:
            raise ctx.error(
                "variable expansion is not supported for the from= of a mount; define a "
                "stage with FROM using a global ARG instead"
            )
    network = flags.string("network")
    if network is not None and network not in _NETWORKS:
        raise ctx.error(f"RUN: unsupported network mode {network!r} (default, none or host)")
    security = flags.string("security")
    if security is not None and security not in _SECURITY:
        raise ctx.error(f"RUN: unsupported security mode {security!r} (sandbox or insecure)")
    return Run(
        *ctx.common,
        command=command,
        mounts=tuple(mounts),
        mount_specs=flags.strings("mount"),
        network=network,
        security=security,
        heredocs=tuple(ctx.heredocs),
    )


def parse_cmd(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    return Cmd(*ctx.common, command=command_line(ctx, "CMD", rest))


def parse_entrypoint(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    return Entrypoint(*ctx.common, command=command_line(ctx, "ENTRYPOINT", rest))


def parse_shell(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    args = json_or_none(ctx, "SHELL", rest)
    if args is None:
        raise ctx.error('SHELL requires the arguments to be in JSON form: SHELL ["sh", "-c"]')
    if not args:
        raise ctx.error("SHELL requires at least one argument")
    return Shell(*ctx.common, args=tuple(args))


def _health_duration(ctx: Ctx, flags: Flags, name: str) -> int:
    text = flags.string(name)
    if text is None:
        return 0
    try:
        value = parse_duration(text)
    except ValueError:
        raise ctx.error(f"HEALTHCHECK: invalid duration for --{name}: {text!r}") from None
    if value != 0 and value < _MIN_HEALTH_DURATION:
        raise ctx.error(f"HEALTHCHECK: --{name} {text!r} cannot be less than 1ms")
    return value


def parse_healthcheck(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    parts = rest.split(None, 1)
    if not parts:
        raise ctx.error("HEALTHCHECK requires an argument (NONE, or CMD ...)")
    kind = parts[0].upper()
    tail = parts[1].strip() if len(parts) == 2 else ""
    if kind == "NONE":
        if tail:
            raise ctx.error("HEALTHCHECK NONE takes no arguments")
        if flags:
            raise ctx.error("HEALTHCHECK NONE takes no options")
        return Healthcheck(*ctx.common, test=("NONE",))
    if kind != "CMD":
        raise ctx.error(f"unknown type {parts[0]!r} in HEALTHCHECK (try CMD)")
    if not tail:
        raise ctx.error("HEALTHCHECK CMD requires a command")
    command = command_line(ctx, "HEALTHCHECK", tail)
    test = ("CMD", *command.args) if command.exec_form else ("CMD-SHELL", tail)
    retries_text = flags.string("retries")
    retries = 0
    if retries_text is not None:
        try:
            retries = int(retries_text)
        except ValueError:
            raise ctx.error(f"HEALTHCHECK: invalid --retries {retries_text!r}") from None
        if retries < 0:
            raise ctx.error("HEALTHCHECK: --retries cannot be negative")
    return Healthcheck(
        *ctx.common,
        test=test,
        interval=_health_duration(ctx, flags, "interval"),
        timeout=_health_duration(ctx, flags, "timeout"),
        start_period=_health_duration(ctx, flags, "start-period"),
        start_interval=_health_duration(ctx, flags, "start-interval"),
        retries=retries,
    )
