"""POST /build without the engine: the query, the context extraction, and the stream the
handler makes of a builder's reporter calls (a small builder that drives the reporter as
the engine does stands in for `cove.engine.build`; the real one is driven by the docker
CLI and docker-py in tests/compat/test_build.py)."""

from __future__ import annotations

import asyncio
import http.server
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import MultiDict

from cove.api.app import make_app
from cove.api.build import BUILDER, BuildSpec
from cove.api.build_context import (
    confine_ignore_files,
    extract_context,
    remove_stale,
    resolve_dockerfile,
)
from cove.api.build_options import parse_options
from cove.api.build_stream import BuildCancelled, StreamReporter
from cove.api.errors import BadParameter, NotImplementedHere
from cove.errors import BuildError, DockerfileError, InvalidReference, StepFailed

IMAGE_ID = "sha256:" + "ab12" * 16
BASE_ID = "sha256:" + "0f" * 32
RUN_ID = "sha256:" + "c3" * 32
CONTAINER_ID = "5e" * 32


# --- helpers -------------------------------------------------------------------------------


def tar_of(files: dict[str, bytes | str], mode: str = "w") -> bytes:
    """A tar of `files` (name -> content; a str content is a symlink target)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:  # type: ignore[call-overload]
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if isinstance(content, str):
                info.type = tarfile.SYMTYPE
                info.linkname = content
                tar.addfile(info)
            else:
                info.size = len(content)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def tar_with(*infos: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info, data in infos:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


DOCKERFILE = b'FROM bb:1\nRUN echo hi\nCMD ["sh"]\n'
CONTEXT = tar_of({"Dockerfile": DOCKERFILE, "app/a.txt": b"A\n"})


class Seen:
    """What the fake builder saw."""

    def __init__(self) -> None:
        self.specs: list[BuildSpec] = []
        self.files: list[dict[str, str]] = []
        self.cancelled = threading.Event()
        self.started = threading.Event()


def listing(top: str) -> dict[str, str]:
    found = {}
    for here, _dirs, names in os.walk(top):
        for name in names:
            path = os.path.join(here, name)
            rel = os.path.relpath(path, top)
            found[rel] = (
                "-> " + os.readlink(path) if os.path.islink(path) else Path(path).read_text()
            )
    return found


def steps_builder(seen: Seen, fail: BaseException | None = None) -> Callable[..., str]:
    """Three steps as the engine reports them: FROM, RUN (with output), CMD (cached)."""

    def builder(root: str, spec: BuildSpec, reporter: Any) -> str:
        seen.specs.append(spec)
        seen.files.append(listing(spec.context_dir))
        reporter.step(1, 3, "", "FROM bb:1")
        reporter.step_done(BASE_ID)
        reporter.step(2, 3, "", "RUN echo hi")
        reporter.intermediate_container(CONTAINER_ID, False)
        reporter.output(b"hi\n")
        reporter.output("caf\u00e9".encode()[:4])  # a character cut in two
        reporter.output("caf\u00e9".encode()[4:] + b" no newline")
        if fail is not None:
            raise fail
        reporter.intermediate_container(CONTAINER_ID, True)
        reporter.step_done(RUN_ID)
        reporter.note("[Warning] One or more build-args [X] were not consumed")
        reporter.step(3, 3, "", 'CMD ["sh"]')
        reporter.cached()
        reporter.step_done(IMAGE_ID)
        return IMAGE_ID

    return builder


def post(
    tmp_path: Path,
    builder: Callable[..., str],
    query: str = "",
    data: bytes = CONTEXT,
    version: str = "/v1.44",
) -> tuple[int, list[dict[str, Any]], str]:
    """POST /build to an app whose builder is `builder`: (status, JSON lines, raw body)."""

    async def go() -> tuple[int, list[dict[str, Any]], str]:
        app = make_app(str(tmp_path / "root"), workers=4)
        app[BUILDER] = builder
        async with TestClient(TestServer(app)) as client:
            response = await client.post(f"{version}/build{query}", data=data,
                                         headers={"Content-Type": "application/x-tar"})  # fmt: skip
            text = await response.text()
            if response.status != 200:
                return response.status, [json.loads(text)], text
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
            return response.status, lines, text

    return asyncio.run(go())


def streams(lines: list[dict[str, Any]]) -> str:
    return "".join(line.get("stream", "") for line in lines)


def contexts_left(tmp_path: Path) -> list[str]:
    parent = tmp_path / "root" / "tmp" / "build-contexts"
    return sorted(os.listdir(parent)) if parent.exists() else []


# --- the stream ----------------------------------------------------------------------------


def test_steps_become_dockers_legacy_messages(tmp_path: Path) -> None:
    seen = Seen()
    status, lines, raw = post(tmp_path, steps_builder(seen), "?t=x:1&t=docker.io/library/y")
    assert status == 200
    assert raw.endswith("\r\n")
    assert streams(lines) == (
        "Step 1/3 : FROM bb:1\n"
        " ---> 0f0f0f0f0f0f\n"
        "Step 2/3 : RUN echo hi\n"
        " ---> Running in 5e5e5e5e5e5e\n"
        "hi\n"
        "caf\u00e9 no newline\n"
        "Removing intermediate container 5e5e5e5e5e5e\n"
        " ---> c3c3c3c3c3c3\n"
        "[Warning] One or more build-args [X] were not consumed\n"
        'Step 3/3 : CMD ["sh"]\n'
        " ---> Using cache\n"
        " ---> ab12ab12ab12\n"
        "Successfully built ab12ab12ab12\n"
        "Successfully tagged x:1\n"
        "Successfully tagged y:latest\n"
    )
    assert {"aux": {"ID": IMAGE_ID}} in lines
    assert lines.index({"aux": {"ID": IMAGE_ID}}) == len(lines) - 4  # then built, 2 tagged
    assert seen.files == [{"Dockerfile": DOCKERFILE.decode(), "app/a.txt": "A\n"}]
    assert seen.specs[0].options.tags == ("x:1", "docker.io/library/y")
    assert seen.specs[0].dockerfile == "Dockerfile"
    assert contexts_left(tmp_path) == []


def test_old_api_versions_get_no_aux_message(tmp_path: Path) -> None:
    status, lines, _ = post(tmp_path, steps_builder(Seen()), version="/v1.29")
    assert status == 200
    assert not [line for line in lines if "aux" in line]
    assert streams(lines).endswith("Successfully built ab12ab12ab12\n")


def test_quiet_answers_only_the_id(tmp_path: Path) -> None:
    status, lines, _ = post(tmp_path, steps_builder(Seen()), "?q=1&t=x:1")
    assert (status, lines) == (200, [{"stream": IMAGE_ID + "\n"}])


def test_a_failing_step_is_the_last_message(tmp_path: Path) -> None:
    message = "Dockerfile:2: cannot copy x: no such file"
    status, lines, _ = post(tmp_path, steps_builder(Seen(), BuildError(message)))
    assert status == 200
    assert lines[-1] == {"errorDetail": {"message": message}, "error": message}
    assert streams(lines).startswith("Step 1/3 : FROM bb:1\n ---> 0f0f0f0f0f0f\nStep 2/3")
    assert "Successfully" not in streams(lines)
    assert contexts_left(tmp_path) == []


def test_a_failed_run_is_worded_as_dockerd_words_it(tmp_path: Path) -> None:
    failure = StepFailed("RUN echo hi: exit code 3", command=["/bin/sh", "-c", "echo hi"],
                         exit_code=3, line=2)  # fmt: skip
    status, lines, _ = post(tmp_path, steps_builder(Seen(), failure))
    message = "The command '/bin/sh -c echo hi' returned a non-zero code: 3"
    assert (status, lines[-1]) == (200, {"errorDetail": {"message": message}, "error": message})


def test_quiet_failure_gives_the_held_lines_then_the_error(tmp_path: Path) -> None:
    status, lines, _ = post(tmp_path, steps_builder(Seen(), BuildError("boom")), "?q=true")
    assert status == 200
    assert streams(lines).startswith("Step 1/3 : FROM bb:1\n")
    assert lines[-1]["error"] == "boom"


def test_failure_before_the_first_step_is_an_http_status(tmp_path: Path) -> None:
    def builder(root: str, spec: BuildSpec, reporter: Any) -> str:
        raise DockerfileError("unknown instruction: FORM", line=1)

    status, lines, _ = post(tmp_path, builder)
    assert status == 400
    assert lines == [{"message": "Dockerfile:1: unknown instruction: FORM"}]
    assert contexts_left(tmp_path) == []
    status, lines, _ = post(tmp_path, builder, "?q=1")
    assert (status, lines[0]["message"]) == (400, "Dockerfile:1: unknown instruction: FORM")


def test_unexpected_exception_is_a_500_with_its_name(tmp_path: Path) -> None:
    def builder(root: str, spec: BuildSpec, reporter: Any) -> str:
        raise RuntimeError("surprise")

    status, lines, _ = post(tmp_path, builder)
    assert (status, lines) == (500, [{"message": "RuntimeError: surprise"}])


def test_unsupported_resource_options_are_warned_about(tmp_path: Path) -> None:
    status, lines, _ = post(tmp_path, steps_builder(Seen()), "?memory=1000000&shmsize=0")
    assert status == 200
    assert lines[0] == {"stream": "[Warning] the build option memory=1000000 is not supported "
                                  "by cove and is ignored\n"}  # fmt: skip
    assert "shmsize" not in streams(lines)


def test_dockerfile_param_and_build_options_reach_the_builder(tmp_path: Path) -> None:
    seen = Seen()
    context = tar_of({"sub/Dockerfile.dev": DOCKERFILE})
    query = ("?dockerfile=sub/Dockerfile.dev&buildargs=%7B%22A%22%3A%221%22%2C%22B%22%3Anull%7D"
             "&labels=%7B%22k%22%3A%22v%22%7D&target=dev&nocache=1&pull=true"
             "&networkmode=none&rm=1&forcerm=0")  # fmt: skip
    status, _, _ = post(tmp_path, steps_builder(seen), query, data=context)
    assert status == 200
    spec = seen.specs[0]
    assert spec.dockerfile == "sub/Dockerfile.dev" and spec.dockerfile_text is None
    options = spec.options
    assert dict(options.build_args) == {"A": "1"}  # B: named without a value
    assert dict(options.labels) == {"k": "v"}
    assert (options.target, options.no_cache, options.pull, options.network) == (
        "dev", True, True, "none",
    )  # fmt: skip


def test_compressed_contexts(tmp_path: Path) -> None:
    for mode in ("w:gz", "w:bz2", "w:xz"):
        seen = Seen()
        data = tar_of({"Dockerfile": DOCKERFILE, "a": b"x"}, mode)
        status, _, _ = post(tmp_path, steps_builder(seen), data=data)
        assert status == 200, mode
        assert seen.files[0] == {"Dockerfile": DOCKERFILE.decode(), "a": "x"}


# --- hostile and broken contexts -------------------------------------------------------------


def hostile_cases() -> Iterator[tuple[str, bytes, str]]:
    yield "dotdot", tar_of({"../escape": b"x"}), "points outside the destination"
    yield "deep dotdot", tar_of({"a/../../escape": b"x"}), "points outside the destination"
    yield "absolute", tar_of({"/escape": b"x"}), "absolute names are not allowed"
    device = tarfile.TarInfo("dev/sda")
    device.type, device.devmajor, device.devminor = tarfile.BLKTYPE, 8, 0
    yield "device", tar_with((device, b"")), "it is a device node"
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    yield "fifo", tar_with((fifo, b"")), "it is a FIFO"
    link = tarfile.TarInfo("out")
    link.type, link.linkname = tarfile.SYMTYPE, "/"
    through = tarfile.TarInfo("out/escape")
    yield "through a link", tar_with((link, b""), (through, b"x")), "goes through the symlink"
    hard = tarfile.TarInfo("hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "../../etc/passwd"
    yield "hard link out", tar_with((hard, b"")), "points outside the destination"


@pytest.mark.parametrize("name", [case[0] for case in hostile_cases()])
def test_hostile_contexts_are_refused(tmp_path: Path, name: str) -> None:
    _, data, why = next(case for case in hostile_cases() if case[0] == name)
    seen = Seen()
    status, lines, _ = post(tmp_path, steps_builder(seen), data=data + b"\0" * 4096)
    assert status == 400
    assert why in lines[0]["message"]
    assert seen.specs == []  # never built
    assert contexts_left(tmp_path) == []
    escaped = [p for p in tmp_path.rglob("escape")]
    assert escaped == [] and not (tmp_path / "root" / "tmp" / "escape").exists()


def test_not_a_tar_and_empty_body(tmp_path: Path) -> None:
    status, lines, _ = post(tmp_path, steps_builder(Seen()), data=DOCKERFILE)
    assert status == 400 and "not a readable tar archive" in lines[0]["message"]
    status, lines, _ = post(tmp_path, steps_builder(Seen()), data=b"")
    assert status == 400 and lines[0]["message"].startswith("no build context")
    assert contexts_left(tmp_path) == []


def test_extract_keeps_links_modes_and_hard_links(tmp_path: Path) -> None:
    exe = tarfile.TarInfo("bin/tool")
    exe.mode = 0o755
    link = tarfile.TarInfo("tool-link")
    link.type, link.linkname = tarfile.SYMTYPE, "bin/tool"
    hard = tarfile.TarInfo("bin/tool2")
    hard.type, hard.linkname = tarfile.LNKTYPE, "bin/tool"
    dest = tmp_path / "ctx"
    dest.mkdir()
    count = extract_context(io.BytesIO(tar_with((exe, b"#!"), (link, b""), (hard, b""))),
                            str(dest))  # fmt: skip
    assert count == 3
    assert (dest / "bin/tool").stat().st_mode & 0o777 == 0o755
    assert os.readlink(dest / "tool-link") == "bin/tool"
    assert (dest / "bin/tool2").stat().st_ino == (dest / "bin/tool").stat().st_ino


def test_dockerfile_is_resolved_inside_the_context(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "sub/real").write_text("FROM x\n")
    (ctx / "Dockerfile").symlink_to("/sub/real")  # absolute: inside the context
    (ctx / "shadow").symlink_to("/etc/passwd")  # a host file: not in the context
    (ctx / "up").symlink_to("../../../../etc/passwd")
    assert resolve_dockerfile(str(ctx), "Dockerfile") == "sub/real"
    assert resolve_dockerfile(str(ctx), "") == "sub/real"
    assert resolve_dockerfile(str(ctx), "/sub/real") == "sub/real"
    for hostile in ("shadow", "up", "../../etc/passwd", "/etc/passwd", "sub"):
        with pytest.raises(BadParameter, match="Cannot locate specified Dockerfile"):
            resolve_dockerfile(str(ctx), hostile)
    (ctx / "Dockerfile").unlink()
    (ctx / "Dockerfile").symlink_to("/etc/passwd")  # the engine must not open it
    with pytest.raises(BadParameter, match="Cannot locate specified Dockerfile: Dockerfile"):
        resolve_dockerfile(str(ctx), "")
    (ctx / "Containerfile").write_text("FROM y\n")
    assert resolve_dockerfile(str(ctx), "") == "Containerfile"
    assert resolve_dockerfile(str(ctx), "Dockerfile") == "Containerfile"


def test_ignore_files_that_are_links_are_confined_to_the_context(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "rules").write_text("secret*\n")
    (ctx / ".dockerignore").symlink_to("/rules")  # the context's /rules
    (ctx / ".containerignore").symlink_to("/etc/passwd")  # not in the context
    (ctx / "Dockerfile.dockerignore").symlink_to("../../../../../../etc/passwd")
    (ctx / "sub").mkdir()
    (ctx / "sub/Dockerfile.dockerignore").write_text("plain\n")
    changed = confine_ignore_files(str(ctx), "sub/Dockerfile")
    assert changed == [".dockerignore", ".containerignore", "Dockerfile.dockerignore"]
    assert not (ctx / ".dockerignore").is_symlink()
    assert (ctx / ".dockerignore").read_text() == "secret*\n"
    assert not os.path.lexists(ctx / ".containerignore")
    assert not os.path.lexists(ctx / "Dockerfile.dockerignore")
    assert (ctx / "sub/Dockerfile.dockerignore").read_text() == "plain\n"


# --- the query -----------------------------------------------------------------------------


def options(**query: str) -> Any:
    return parse_options(MultiDict(query), [], (1, 44))


def test_query_errors() -> None:
    with pytest.raises(BadParameter, match="error reading build args"):
        options(buildargs="{nope")
    with pytest.raises(BadParameter, match="error reading labels: the value of 'a'"):
        options(labels='{"a": 1}')
    with pytest.raises(BadParameter, match="legacy builder only"):
        options(version="2")
    with pytest.raises(BadParameter, match="invalid boolean value"):
        options(nocache="maybe")
    with pytest.raises(BadParameter, match="squash"):
        options(squash="1")
    with pytest.raises(NotImplementedHere, match="network mode 'mynet'"):
        options(networkmode="mynet")
    with pytest.raises(NotImplementedHere, match="this machine's platform only"):
        options(platform="linux/s390x" if os.uname().machine != "s390x" else "linux/amd64")
    with pytest.raises(InvalidReference):
        parse_options(MultiDict(), ["Bad Name"], (1, 44))
    assert options(platform="linux").network == "default"
    assert options(networkmode="bridge").network == "default"
    assert options(networkmode="host").network == "host"


def test_remote_is_refused_unless_http_on_loopback() -> None:
    for url, why in (
        ("https://github.com/x/y.git", "git build contexts only from a loopback address"),
        ("git://example.com/repo", "not from example.com"),
        ("git@example.com:x/y.git", "not from example.com"),
        ("github.com/x/y", "not from github.com"),
        ("ssh://127.0.0.1/x", "by ssh are not supported"),
        ("https://127.0.0.1/Dockerfile", "plain http"),
        ("http://192.0.2.1/Dockerfile", "only from a loopback address"),
        ("http://example.com/Dockerfile", "only from a loopback address"),
    ):
        with pytest.raises(NotImplementedHere, match=why):
            options(remote=url)
    assert options(remote="http://127.0.0.1:8080/Dockerfile").remote.endswith("Dockerfile")
    assert options(remote="http://[::1]/x").remote == "http://[::1]/x"
    assert options(remote="git://127.0.0.1:9418/repo#v1:sub").remote.endswith("#v1:sub")
    assert options(remote="http://localhost/repo.git").remote == "http://localhost/repo.git"


@pytest.fixture
def loopback_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """An http server on 127.0.0.1 serving `files` (path -> body)."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            if body is None:
                self.send_response(302 if self.path == "/moved" else 404)
                self.send_header("Location", "http://127.0.0.1/elsewhere")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_remote_dockerfile_and_tar_on_loopback(
    tmp_path: Path, loopback_server: tuple[str, dict[str, bytes]]
) -> None:
    base, files = loopback_server
    files["/Dockerfile"] = DOCKERFILE
    files["/ctx.tar.gz"] = tar_of({"Dockerfile": DOCKERFILE, "f": b"F"}, "w:gz")
    seen = Seen()
    status, _, _ = post(tmp_path, steps_builder(seen), f"?remote={base}/Dockerfile", data=b"")
    assert status == 200
    assert seen.specs[0].dockerfile_text == DOCKERFILE.decode()
    assert seen.files[0] == {}
    status, _, _ = post(tmp_path, steps_builder(seen), f"?remote={base}/ctx.tar.gz", data=b"")
    assert status == 200
    assert seen.specs[1].dockerfile_text is None
    assert seen.files[1] == {"Dockerfile": DOCKERFILE.decode(), "f": "F"}
    status, lines, _ = post(tmp_path, steps_builder(seen), f"?remote={base}/moved", data=b"")
    assert status == 400 and "redirects are not followed" in lines[0]["message"]
    assert contexts_left(tmp_path) == []


# --- cancellation and clean-up ---------------------------------------------------------------


@pytest.mark.parametrize("cancelling", [False, True], ids=["as-cove-serve", "handler-cancelled"])
def test_client_going_away_cancels_the_build_and_removes_the_context(
    tmp_path: Path, cancelling: bool
) -> None:
    """cove serve does not cancel a handler when its client goes away (aiohttp's default):
    the handler notices; with handler cancellation (aiohttp's test server) it is cancelled.
    Either way the build is told to stop and its context is removed."""
    seen = Seen()

    def builder(root: str, spec: BuildSpec, reporter: Any) -> str:
        seen.specs.append(spec)
        try:
            for number in range(1, 10_000):
                reporter.step(number, 10_000, "", f"RUN step {number}")
                seen.started.set()
                time.sleep(0.05)
                reporter.step_done(RUN_ID)
        except BuildCancelled:
            seen.cancelled.set()
            raise
        return IMAGE_ID

    async def go() -> None:
        app = make_app(str(tmp_path / "root"), workers=4)
        app[BUILDER] = builder
        runner = web.AppRunner(app, handler_cancellation=cancelling)
        await runner.setup()
        sock = str(tmp_path / "api.sock")
        await web.UnixSite(runner, sock).start()
        try:
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(sock)) as session:
                response = await session.post("http://cove/build", data=CONTEXT)
                assert response.status == 200
                first = json.loads(await response.content.readline())
                assert first == {"stream": "Step 1/10000 : RUN step 1\n"}
                response.close()  # the client goes away mid-build
                deadline = time.monotonic() + 10
                while not seen.cancelled.is_set() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
        finally:
            await runner.cleanup()

    asyncio.run(go())
    assert seen.cancelled.is_set()
    deadline = time.monotonic() + 5
    while contexts_left(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert contexts_left(tmp_path) == []
    assert not Path(seen.specs[0].context_dir).exists()


def test_contexts_of_dead_servers_are_removed(tmp_path: Path) -> None:
    parent = tmp_path / "root" / "tmp" / "build-contexts"
    dead_pid = 4_000_000  # above pid_max's largest value: never a live process
    (parent / f"{dead_pid}-aa" / "deep").mkdir(parents=True)
    (parent / f"{os.getpid()}-bb").mkdir()
    assert remove_stale(str(parent)) == [f"{dead_pid}-aa"]
    status, _, _ = post(tmp_path, steps_builder(Seen()))
    assert status == 200
    assert contexts_left(tmp_path) == [f"{os.getpid()}-bb"]


# --- the reporter ----------------------------------------------------------------------------


def test_reporter_waits_for_a_slow_client() -> None:
    loop = asyncio.new_event_loop()
    try:
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()
        reporter = StreamReporter(loop, queue, stop, limit=10)
        reporter.output(b"x" * 11)  # over the limit now
        done = threading.Event()

        def more() -> None:
            reporter.output(b"y")
            done.set()

        thread = threading.Thread(target=more)
        thread.start()
        assert not done.wait(0.3)  # blocked: 11 characters wait for the client
        reporter.drained(11)
        assert done.wait(5)
        thread.join()
        # a cancelled build never waits for the client, and stops at the next call
        reporter.output(b"z" * 50)
        stop.set()
        calls: list[Callable[[], None]] = [
            lambda: reporter.output(b"more"),
            lambda: reporter.step(2, 2, "", "RUN x"),
            reporter.cached,
            lambda: reporter.step_done(RUN_ID),
        ]
        for call in calls:
            with pytest.raises(BuildCancelled):
                call()
    finally:
        loop.close()
