"""The parsers of the instructions that set up a stage or its image config: FROM, ARG,
ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL and MAINTAINER.
"""

from __future__ import annotations

import re

from cove.image.build import expand
from cove.image.build.instructions import (
    Arg,
    ArgDecl,
    Env,
    Expose,
    From,
    Instruction,
    Label,
    Maintainer,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from cove.image.build.parser_context import (
    Ctx,
    Flags,
    argument_list,
    key_values,
    single_argument,
)
from cove.image.build.words import parse_words, split_whitespace

STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")


def parse_from(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    words = split_whitespace(rest)
    name = None
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not STAGE_NAME.match(name):
            raise ctx.error(
                f"invalid name for build stage: {words[2]!r}, name can't start with a number "
                "or contain symbols"
            )
        if name in ("scratch", "context"):
            ctx.note(f"stage name {name!r} is reserved and may be confused with an image")
    elif len(words) != 1:
        raise ctx.error("FROM requires either one or three arguments (FROM image [AS name])")
    return From(*ctx.common, image=words[0], name=name, platform=flags.string("platform"))


def parse_arg(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    words = parse_words(rest, ctx.escape)
    if not words:
        raise ctx.error("ARG requires at least one argument")
    decls = []
    for word in words:
        name, sep, default = word.partition("=")
        if not name:
            raise ctx.error("ARG names can not be blank")
        decls.append(ArgDecl(name, default if sep else None))
    return Arg(*ctx.common, args=tuple(decls))


def parse_env(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    return Env(*ctx.common, pairs=key_values(ctx, "ENV", rest))


def parse_label(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    return Label(*ctx.common, pairs=key_values(ctx, "LABEL", rest))


def parse_workdir(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    return Workdir(*ctx.common, path=single_argument(ctx, "WORKDIR", rest))


def parse_user(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    return User(*ctx.common, user=single_argument(ctx, "USER", rest))


def parse_expose(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    ports = split_whitespace(rest)
    if not ports:
        raise ctx.error("EXPOSE requires at least one argument")
    for port in ports:
        if not any(ch in port for ch in "$'\"\\"):
            try:
                expand.parse_expose(port)
            except ValueError as exc:
                raise ctx.error(f"EXPOSE: {exc}") from None
    return Expose(*ctx.common, ports=tuple(ports))


def parse_volume(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    paths, exec_form = argument_list(ctx, "VOLUME", rest)
    if not paths:
        raise ctx.error("VOLUME requires at least one argument")
    if any(not path.strip() for path in paths):
        raise ctx.error("VOLUME specified can not be an empty string")
    return Volume(*ctx.common, paths=tuple(paths), exec_form=exec_form)


def parse_stopsignal(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    signal = single_argument(ctx, "STOPSIGNAL", rest)
    if not any(ch in signal for ch in "$'\"\\"):
        try:
            expand.check_signal(signal)
        except ValueError as exc:
            raise ctx.error(f"STOPSIGNAL: {exc}") from None
    return StopSignal(*ctx.common, signal=signal)


def parse_maintainer(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    ctx.note('MAINTAINER is deprecated; use LABEL org.opencontainers.image.authors="..."')
    return Maintainer(*ctx.common, name=single_argument(ctx, "MAINTAINER", rest))
