"""The parsers of COPY and ADD: sources (heredoc markers among them), the destination,
and the flags each accepts.
"""

from __future__ import annotations

from typing import TypedDict

from cove.image.build.heredoc import parse_marker
from cove.image.build.instructions import Add, Copy, Instruction
from cove.image.build.parser_context import Ctx, Flags, argument_list

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.image.build.instructions import Heredoc


class _CopyFields(TypedDict):
    """The fields COPY and ADD share (`_CopyBase`), as parsed."""

    sources: tuple[str, ...]
    dest: str
    chown: str | None
    chmod: str | None
    link: bool
    excludes: tuple[str, ...]
    heredocs: tuple[Heredoc, ...]
    exec_form: bool


def _copy_fields(ctx: Ctx, flags: Flags, keyword: str, rest: str) -> _CopyFields:
    """The sources (heredoc markers left out: their files are `heredocs`), the destination
    and the shared flags of a COPY or ADD."""
    args, exec_form = argument_list(ctx, keyword, rest)
    if len(args) < 2:
        raise ctx.error(
            f"{keyword} requires at least two arguments (sources, then the destination), "
            f"got {len(args)}"
        )
    sources: list[str] = []
    docs = iter(ctx.heredocs)
    for source in args[:-1]:
        if not exec_form and parse_marker(source) is not None:
            if next(docs, None) is None:
                raise ctx.error(f"{keyword}: heredoc {source} has no body")
            continue
        sources.append(source)
    if flags.boolean("link"):
        ctx.note(f"{keyword} --link is accepted; cove builds the layer the same way without it")
    return _CopyFields(
        sources=tuple(sources),
        dest=args[-1],
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.boolean("link"),
        excludes=flags.strings("exclude"),
        heredocs=tuple(ctx.heredocs),
        exec_form=exec_form,
    )


def parse_copy(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    fields = _copy_fields(ctx, flags, "COPY", rest)
    source_stage = flags.string("from")
    if source_stage is not None:
        if not source_stage:
            raise ctx.error("COPY: --from needs a stage name, a stage index or an image")
        if "$" in source_stage:
            raise ctx.error(
                "variable expansion is not supported for --from; define a stage with FROM "
                "using a global ARG instead"
            )
    return Copy(*ctx.common, **fields, from_=source_stage, parents=flags.boolean("parents"))


def parse_add(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    return Add(
        *ctx.common,
        **_copy_fields(ctx, flags, "ADD", rest),
        checksum=flags.string("checksum"),
        keep_git_dir=flags.boolean("keep-git-dir"),
        unpack=flags.optional_bool("unpack"),
    )
