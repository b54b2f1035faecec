"""cove.image.build.parser: COPY and ADD, the simple instructions (WORKDIR, USER, EXPOSE,
VOLUME, CMD, ENTRYPOINT, SHELL, ...), HEALTHCHECK and ONBUILD."""

from __future__ import annotations

import pytest

from cove.errors import DockerfileError
from cove.image.build.instructions import (
    Add,
    Cmd,
    CommandLine,
    Copy,
    Entrypoint,
    Expose,
    Healthcheck,
    Heredoc,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from cove.image.build.parser import parse_dockerfile, parse_instruction
from cove.image.build.parser_commands import parse_duration
from tests.unit.image.build.parser_helpers import error, one

# --- COPY and ADD --------------------------------------------------------------------------


def test_copy() -> None:
    copy = one("COPY --from=build --chown=1000:1000 --chmod=0644 --link a *.txt dir/ /dst/\n")
    assert isinstance(copy, Copy)
    assert copy.sources == ("a", "*.txt", "dir/")
    assert copy.dest == "/dst/"
    assert (copy.from_, copy.chown, copy.chmod, copy.link) == ("build", "1000:1000", "0644", True)
    assert not copy.exec_form


def test_copy_link_is_noted() -> None:
    dockerfile = parse_dockerfile("FROM a\nCOPY --link a b\n")
    assert "--link is accepted" in dockerfile.notes[0].message


def test_copy_json_form() -> None:
    copy = one('COPY ["a file", "b", "/dst dir/"]\n')
    assert isinstance(copy, Copy)
    assert (copy.sources, copy.dest, copy.exec_form) == (("a file", "b"), "/dst dir/", True)


def test_copy_other_flags() -> None:
    copy = one("COPY --parents --exclude=*.md --exclude=tmp a b\n")
    assert isinstance(copy, Copy)
    assert copy.parents and copy.excludes == ("*.md", "tmp")


def test_copy_from_index() -> None:
    copy = one("COPY --from=0 a b\n")
    assert isinstance(copy, Copy) and copy.from_ == "0"


def test_add() -> None:
    add = one(
        "ADD --chown=app --chmod=755 --checksum=sha256:abc --keep-git-dir=true --unpack=false "
        "https://example.com/a.tar.gz /opt/\n"
    )
    assert isinstance(add, Add)
    assert add.sources == ("https://example.com/a.tar.gz",)
    assert (add.chown, add.chmod, add.checksum, add.keep_git_dir, add.unpack) == (
        "app",
        "755",
        "sha256:abc",
        True,
        False,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("COPY a\n", "COPY requires at least two arguments"),
        ("COPY\n", "COPY requires at least two arguments"),
        ("ADD a\n", "ADD requires at least two arguments"),
        ("COPY --form=x a b\n", "unknown flag for COPY: --form"),
        ("ADD --from=x a b\n", "unknown flag for ADD: --from"),
        ("COPY --from=$X a b\n", "variable expansion is not supported for --from"),
        ("COPY --from= a b\n", "COPY: --from needs"),
        ("COPY --link=maybe a b\n", "expecting a boolean value for --link"),
        ("COPY --chown a b\n", "missing a value on flag --chown"),
        ("COPY [\"a\", 'b']\n", "COPY: malformed JSON"),
    ],
)
def test_copy_errors(text: str, message: str) -> None:
    assert error("FROM a\n" + text).startswith(f"Dockerfile:2: {message}")


# --- simple instructions ---------------------------------------------------------------------


def test_workdir_user_stopsignal_maintainer() -> None:
    assert one("WORKDIR /a b\n") == Workdir(2, 2, "WORKDIR /a b", path="/a b")
    assert one("USER app:staff\n") == User(2, 2, "USER app:staff", user="app:staff")
    assert one("STOPSIGNAL SIGQUIT\n") == StopSignal(2, 2, "STOPSIGNAL SIGQUIT", signal="SIGQUIT")
    maintainer = one("MAINTAINER Jane <j@example.com>\n")
    assert maintainer == Maintainer(
        2, 2, "MAINTAINER Jane <j@example.com>", name="Jane <j@example.com>"
    )


def test_maintainer_is_deprecated() -> None:
    assert "deprecated" in parse_dockerfile("FROM a\nMAINTAINER x\n").notes[0].message


@pytest.mark.parametrize("keyword", ["WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"])
def test_single_argument_instructions_need_one(keyword: str) -> None:
    assert error(f"FROM a\n{keyword}\n") == f"Dockerfile:2: {keyword} requires exactly one argument"


def test_expose() -> None:
    expose = one("EXPOSE 80 443/tcp 53/udp 8000-8010 $PORT\n")
    assert isinstance(expose, Expose)
    assert expose.ports == ("80", "443/tcp", "53/udp", "8000-8010", "$PORT")
    assert error("FROM a\nEXPOSE\n").startswith("Dockerfile:2: EXPOSE requires at least one")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("EXPOSE 80/http\n", "EXPOSE: invalid protocol 'http'"),
        ("EXPOSE 99999\n", "EXPOSE: invalid port range '99999'"),
        ("EXPOSE 127.0.0.1:80\n", "EXPOSE: invalid port specification"),
        ("STOPSIGNAL SIGNOPE\n", "STOPSIGNAL: invalid signal: SIGNOPE"),
    ],
)
def test_literal_ports_and_signals_are_checked_early(text: str, message: str) -> None:
    assert error("FROM a\n" + text).startswith(f"Dockerfile:2: {message}")


def test_ports_and_signals_with_variables_are_checked_later() -> None:
    assert isinstance(one("EXPOSE $PORT/udp\n"), Expose)
    assert isinstance(one("STOPSIGNAL $SIG\n"), StopSignal)


def test_volume_forms() -> None:
    assert one('VOLUME ["/data", "/logs"]\n') == Volume(
        2, 2, 'VOLUME ["/data", "/logs"]', paths=("/data", "/logs"), exec_form=True
    )
    assert one("VOLUME /data /logs\n") == Volume(
        2, 2, "VOLUME /data /logs", paths=("/data", "/logs"), exec_form=False
    )
    assert error("FROM a\nVOLUME\n").startswith("Dockerfile:2: VOLUME requires at least one")
    assert error('FROM a\nVOLUME [""]\n').startswith("Dockerfile:2: VOLUME specified can not")


@pytest.mark.parametrize(("keyword", "cls"), [("CMD", Cmd), ("ENTRYPOINT", Entrypoint)])
def test_cmd_and_entrypoint_keep_their_form(keyword: str, cls: type[Cmd | Entrypoint]) -> None:
    exec_form = one(f'{keyword} ["/bin/app", "--flag"]\n')
    shell_form = one(f"{keyword} /bin/app --flag $X\n")
    assert isinstance(exec_form, cls) and isinstance(shell_form, cls)
    assert exec_form.command == CommandLine(("/bin/app", "--flag"), exec_form=True)
    assert shell_form.command == CommandLine(("/bin/app --flag $X",), exec_form=False)
    assert error(f"FROM a\n{keyword}\n").startswith(f"Dockerfile:2: {keyword} requires")


def test_entrypoint_empty_array_resets() -> None:
    entrypoint = one("ENTRYPOINT []\n")
    assert isinstance(entrypoint, Entrypoint) and entrypoint.command == CommandLine((), True)


def test_shell() -> None:
    assert one('SHELL ["powershell", "-command"]\n') == Shell(
        2, 2, 'SHELL ["powershell", "-command"]', args=("powershell", "-command")
    )
    assert "SHELL requires the arguments to be in JSON form" in error("FROM a\nSHELL sh -c\n")
    assert "SHELL requires at least one argument" in error("FROM a\nSHELL []\n")


# --- HEALTHCHECK -------------------------------------------------------------------------------


def test_healthcheck_none() -> None:
    health = one("HEALTHCHECK NONE\n")
    assert isinstance(health, Healthcheck) and health.test == ("NONE",)


def test_healthcheck_shell_form_with_options() -> None:
    health = one(
        "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms --start-interval=2s "
        "--retries=3 CMD curl -f http://localhost/ || exit 1\n"
    )
    assert isinstance(health, Healthcheck)
    assert health.test == ("CMD-SHELL", "curl -f http://localhost/ || exit 1")
    assert (health.interval, health.timeout, health.start_period, health.start_interval) == (
        30_000_000_000,
        90_000_000_000,
        500_000_000,
        2_000_000_000,
    )
    assert health.retries == 3


def test_healthcheck_exec_form_defaults() -> None:
    health = one('HEALTHCHECK cmd ["/bin/check", "-q"]\n')
    assert isinstance(health, Healthcheck)
    assert health.test == ("CMD", "/bin/check", "-q")
    assert (health.interval, health.retries) == (0, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("HEALTHCHECK\n", "HEALTHCHECK requires an argument"),
        ("HEALTHCHECK NONE x\n", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK --interval=1s NONE\n", "HEALTHCHECK NONE takes no options"),
        ("HEALTHCHECK CURL x\n", "unknown type 'CURL' in HEALTHCHECK (try CMD)"),
        ("HEALTHCHECK CMD\n", "HEALTHCHECK CMD requires a command"),
        ("HEALTHCHECK --interval=10 CMD x\n", "HEALTHCHECK: invalid duration for --interval"),
        ("HEALTHCHECK --timeout=10us CMD x\n", "HEALTHCHECK: --timeout '10us' cannot be less"),
        ("HEALTHCHECK --retries=-1 CMD x\n", "HEALTHCHECK: --retries cannot be negative"),
        ("HEALTHCHECK --retries=x CMD x\n", "HEALTHCHECK: invalid --retries"),
        ("HEALTHCHECK --every=1s CMD x\n", "unknown flag for HEALTHCHECK: --every"),
    ],
)
def test_healthcheck_errors(text: str, message: str) -> None:
    assert error("FROM a\n" + text).startswith(f"Dockerfile:2: {message}")


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("1s", 10**9),
        ("1.5s", 1_500_000_000),
        ("1h2m3s", 3_723_000_000_000),
        ("250ms", 250_000_000),
        ("10us", 10_000),
        ("7ns", 7),
        (".5m", 30_000_000_000),
    ],
)
def test_parse_duration(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "10", "1x", "s", "1s2"])
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --- ONBUILD -------------------------------------------------------------------------------


def test_onbuild() -> None:
    onbuild = one("ONBUILD COPY --chown=app . /src\n")
    assert isinstance(onbuild, Onbuild)
    assert onbuild.expression == "COPY --chown=app . /src"
    assert isinstance(onbuild.trigger, Copy)
    assert onbuild.trigger.chown == "app" and onbuild.trigger.line == 2


def test_onbuild_with_heredoc_keeps_the_body_in_the_expression() -> None:
    onbuild = one("ONBUILD RUN <<EOF\necho hi\nEOF\n")
    assert isinstance(onbuild, Onbuild)
    assert onbuild.expression == "RUN <<EOF\necho hi\nEOF"
    assert isinstance(onbuild.trigger, Run) and onbuild.trigger.heredocs == (
        Heredoc("EOF", "echo hi\n"),
    )
    again = parse_instruction(onbuild.expression, line=9)
    assert isinstance(again, Run) and again.heredocs == onbuild.trigger.heredocs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ONBUILD\n", "ONBUILD requires at least one argument"),
        ("ONBUILD ONBUILD RUN x\n", "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x\n", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD maintainer x\n", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("ONBUILD BOGUS x\n", "unknown instruction: BOGUS"),
        ("ONBUILD COPY a\n", "COPY requires at least two arguments"),
    ],
)
def test_onbuild_errors(text: str, message: str) -> None:
    assert error("FROM a\n" + text).startswith(f"Dockerfile:2: {message}")


def test_parse_instruction_for_triggers() -> None:
    instruction = parse_instruction("RUN echo \\\n  hi", line=12)
    assert isinstance(instruction, Run)
    assert (instruction.line, instruction.end_line) == (12, 12)
    assert instruction.command.args == ("echo   hi",)
    with pytest.raises(DockerfileError, match=r"^Dockerfile:4: an ONBUILD trigger must be"):
        parse_instruction("RUN a\nRUN b", line=4)
    with pytest.raises(DockerfileError, match=r"^Dockerfile:4: empty instruction"):
        parse_instruction("# nothing", line=4)


def test_parse_instruction_with_backtick_escape() -> None:
    instruction = parse_instruction("COPY c:\\a `\n d", escape="`")
    assert isinstance(instruction, Copy) and instruction.sources == ("c:\\a",)
