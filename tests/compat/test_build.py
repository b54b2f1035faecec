"""POST /build through the real clients: the docker CLI's legacy builder
(`DOCKER_BUILDKIT=0 docker build`) and docker-py's `images.build`, against `cove serve`
(the session server of conftest.py, with busybox:latest and bb:1)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker import errors as docker_errors  # type: ignore[import-untyped]

from tests.compat.conftest import ApiServer, DockerCli, docker_binary

pytestmark = pytest.mark.root

IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")

BASIC = """\
FROM bb:1
COPY hello.txt /data/hello.txt
RUN cat /data/hello.txt > /data/copy.txt && echo ran "the-run-step"
ENV GREETING=hi-from-env
CMD ["sh", "-c", "echo $GREETING; cat /data/copy.txt"]
"""


def context(top: Path, files: dict[str, str]) -> Path:
    top.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return top


def contexts_dir(api: ApiServer) -> Path:
    return api.root / "tmp" / "build-contexts"


def contexts_left(api: ApiServer) -> list[str]:
    folder = contexts_dir(api)
    return sorted(os.listdir(folder)) if folder.exists() else []


def wait_until(check: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return bool(check())


def all_image_ids(api: ApiServer) -> set[str]:
    listed = api.cove("images", "-a", "-q", "--no-trunc")
    assert listed.returncode == 0, listed.stderr
    return set(listed.stdout.split())


@pytest.fixture(scope="module", autouse=True)
def _remove_intermediate_images(api: ApiServer) -> Iterator[None]:
    """The builds' intermediate images (their cache) go when this module is done: the
    other modules share the server."""
    before = all_image_ids(api)
    yield
    made = all_image_ids(api) - before
    if made:
        api.cove("rmi", "-f", *sorted(made))


@pytest.fixture
def tags(api: ApiServer) -> Iterator[list[str]]:
    """Names the test builds; removed afterwards (the session server is shared)."""
    made: list[str] = []
    yield made
    if made:
        api.cove("rmi", "-f", *made)


def run_output(docker: DockerCli, image: str, *args: str) -> str:
    ran = docker("run", "--rm", image, *args)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


# --- the docker CLI ------------------------------------------------------------------------


def test_docker_build_runs_each_step_and_the_rebuild_is_cached(
    api: ApiServer, docker: DockerCli, tmp_path: Path, tags: list[str]
) -> None:
    ctx = context(tmp_path / "ctx", {"Dockerfile": BASIC, "hello.txt": "hello from the context\n"})
    tags.append("bt-basic:1")
    built = docker("build", "-t", "bt-basic:1", str(ctx), timeout=180)
    assert built.returncode == 0, built.stderr + built.stdout
    out = built.stdout
    assert "Step 1/5 : FROM bb:1" in out
    assert "Step 3/5 : RUN cat /data/hello.txt" in out
    assert "\nran the-run-step\n" in out
    # as dockerd's legacy builder: the RUN step's container, named when it runs and goes
    running = re.findall(
        r"^Step 3/5 : .*\n ---> Running in ([0-9a-f]{12})\nran the-run-step\n"
        r"Removing intermediate container ([0-9a-f]{12})$",
        out,
        re.M,
    )
    assert len(running) == 1 and running[0][0] == running[0][1], out
    assert out.count("Running in") == 1  # only RUN steps have a container
    assert 'Step 5/5 : CMD ["sh", "-c", "echo $GREETING; cat /data/copy.txt"]' in out
    short = re.findall(r"^Successfully built ([0-9a-f]{12})$", out, re.M)
    assert len(short) == 1
    assert "Successfully tagged bt-basic:1" in out
    assert re.findall(r"^ ---> ([0-9a-f]{12})$", out, re.M)[-1] == short[0]
    assert run_output(docker, "bt-basic:1") == "hi-from-env\nhello from the context\n"
    inspected = docker("image", "inspect", "-f", "{{.Id}}", "bt-basic:1")
    assert inspected.stdout.strip().split(":")[1].startswith(short[0])

    again = docker("build", "-t", "bt-basic:1", str(ctx), timeout=180)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(" ---> Using cache") == 4  # COPY, RUN, ENV, CMD
    assert "ran the-run-step" not in again.stdout  # the RUN step did not run
    assert f"Successfully built {short[0]}" in again.stdout
    assert contexts_left(api) == []
    # as Docker: the steps' intermediate images are listed with -a only
    listed = docker("images", "-q")
    every = docker("images", "-a", "-q")
    steps = set(re.findall(r"^ ---> ([0-9a-f]{12})$", out, re.M)) - {short[0]}
    assert len(steps) == 4  # FROM's image, COPY, RUN, ENV
    intermediate = steps - set(listed.stdout.split())
    assert len(intermediate) == 3 and intermediate <= set(every.stdout.split())


def test_build_arg_target_and_dockerfile_in_a_subfolder(
    api: ApiServer, docker: DockerCli, tmp_path: Path, tags: list[str]
) -> None:
    ctx = context(tmp_path / "ctx", {
        "greeting.txt": "from the context root\n",
        "sub/Dockerfile.stages": (
            "FROM bb:1 AS base\n"
            "ARG WHO=nobody\n"
            'RUN echo "base for $WHO" > /stage\n'
            'CMD ["cat", "/stage"]\n'
            "FROM base AS dev\n"
            "COPY greeting.txt /greeting\n"
            "RUN cat /greeting >> /stage\n"
            "FROM base AS prod\n"
            "RUN echo prod >> /stage\n"
        ),
    })  # fmt: skip
    tags.extend(["bt-stages:dev", "bt-stages:prod"])
    dev = docker("build", "-f", str(ctx / "sub/Dockerfile.stages"), "--target", "dev",
                 "--build-arg", "WHO=cove", "-t", "bt-stages:dev", str(ctx),
                 timeout=180)  # fmt: skip
    assert dev.returncode == 0, dev.stderr + dev.stdout
    assert "prod" not in dev.stdout  # the prod stage is not built
    assert run_output(docker, "bt-stages:dev") == "base for cove\nfrom the context root\n"
    prod = docker("build", "-f", str(ctx / "sub/Dockerfile.stages"), "-t", "bt-stages:prod",
                  str(ctx), timeout=180)  # fmt: skip
    assert prod.returncode == 0, prod.stderr + prod.stdout
    assert run_output(docker, "bt-stages:prod") == "base for nobody\nprod\n"


def test_label_and_quiet(api: ApiServer, docker: DockerCli, tmp_path: Path,
                         tags: list[str]) -> None:  # fmt: skip
    ctx = context(tmp_path / "ctx", {"Dockerfile": "FROM bb:1\nLABEL from.file=1\n"})
    tags.append("bt-label:1")
    quiet = docker("build", "-q", "--label", "org.cove.test=yes", "-t", "bt-label:1", str(ctx),
                   timeout=180)  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr
    assert IMAGE_ID.match(quiet.stdout.strip()), quiet.stdout
    assert quiet.stdout.count("\n") == 1 and "Step" not in quiet.stdout
    inspected = docker("image", "inspect", "bt-label:1")
    assert inspected.returncode == 0, inspected.stderr
    image = json.loads(inspected.stdout)[0]
    assert image["Id"] == quiet.stdout.strip()
    assert image["Config"]["Labels"]["org.cove.test"] == "yes"
    assert image["Config"]["Labels"]["from.file"] == "1"


def test_dockerfile_on_stdin(api: ApiServer, docker: DockerCli, tags: list[str]) -> None:
    tags.append("bt-stdin:1")
    built = docker("build", "-t", "bt-stdin:1", "-",
                   input="FROM bb:1\nRUN echo from-stdin > /f\nCMD [\"cat\", \"/f\"]\n",
                   timeout=180)  # fmt: skip
    assert built.returncode == 0, built.stderr + built.stdout
    assert run_output(docker, "bt-stdin:1") == "from-stdin\n"


def test_failing_run_is_dockers_error_and_leaves_nothing(
    api: ApiServer, docker: DockerCli, tmp_path: Path
) -> None:
    ctx = context(tmp_path / "ctx", {
        "Dockerfile": "FROM bb:1\nRUN echo before-the-failure; exit 3\nCMD [\"true\"]\n",
    })  # fmt: skip
    before = api.cove("ps", "-aq").stdout.split()
    failed = docker("build", "-t", "bt-fail:1", str(ctx), timeout=180)
    assert failed.returncode != 0
    assert "before-the-failure" in failed.stdout
    assert ("The command '/bin/sh -c echo before-the-failure; exit 3' returned a non-zero "
            "code: 3") in failed.stderr + failed.stdout  # fmt: skip
    assert "Successfully built" not in failed.stdout
    assert api.cove("ps", "-aq").stdout.split() == before
    assert docker("image", "inspect", "bt-fail:1").returncode != 0
    assert contexts_left(api) == []


def test_dockerfile_syntax_error_is_an_error_response(
    api: ApiServer, docker: DockerCli, tmp_path: Path
) -> None:
    ctx = context(tmp_path / "ctx", {"Dockerfile": "FROM bb:1\nFORM nothing\n"})
    failed = docker("build", "-t", "bt-syntax:1", str(ctx), timeout=60)
    assert failed.returncode != 0
    assert "Error response from daemon" in failed.stderr
    assert "FORM" in failed.stderr and ":2" in failed.stderr  # names the line
    assert contexts_left(api) == []


def test_hostile_context_tar_is_refused(api: ApiServer, docker: DockerCli, tmp_path: Path,
                                        client: Any) -> None:  # fmt: skip
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM bb:1\n"), ("../escape", b"pwned\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = hostile.getvalue()
    (tmp_path / "hostile.tar").write_bytes(data)
    # the docker CLI sends a tar given on stdin as the context, unchanged
    with open(tmp_path / "hostile.tar", "rb") as stdin:
        env = {**os.environ, "DOCKER_HOST": api.url, "DOCKER_BUILDKIT": "0",
               "DOCKER_CONFIG": str(tmp_path)}  # fmt: skip
        cli = subprocess.run([docker_binary(), "build", "-t", "bt-hostile:1", "-"], stdin=stdin,
                             capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert cli.returncode != 0
    assert "refusing tar entry '../escape'" in cli.stderr
    with pytest.raises(docker_errors.APIError) as raised:
        list(client.api.build(fileobj=io.BytesIO(data), custom_context=True, tag="bt-hostile:1"))
    assert raised.value.status_code == 400
    assert "points outside the destination" in str(raised.value)
    for place in (contexts_dir(api).parent, contexts_dir(api), api.root, api.root.parent):
        assert not (place / "escape").exists()
    assert contexts_left(api) == []
    assert docker("image", "inspect", "bt-hostile:1").returncode != 0


def test_context_links_to_host_files_are_not_followed(api: ApiServer, client: Any) -> None:
    """A Dockerfile or .dockerignore that links to a host file names the context's file of
    that path (absent): the host's /etc/passwd is never read."""
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w") as tar:
        for name, target in (("Dockerfile", "/etc/passwd"), (".dockerignore", "/etc/passwd")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    with pytest.raises(docker_errors.APIError) as raised:
        list(client.api.build(fileobj=io.BytesIO(hostile.getvalue()), custom_context=True))
    assert raised.value.status_code == 400
    assert "Cannot locate specified Dockerfile: Dockerfile" in str(raised.value)
    assert "root:x:0:0" not in str(raised.value)
    # with a real Dockerfile the build goes on; the ignore link is not the host's file
    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode="w") as tar:
        data = b'FROM bb:1\nCOPY . /ctx/\nCMD ["ls", "-a", "/ctx"]\n'
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(".dockerignore")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    logs = list(client.api.build(fileobj=io.BytesIO(good.getvalue()), custom_context=True,
                                 decode=True))  # fmt: skip
    built = [line["aux"]["ID"] for line in logs if "aux" in line]
    assert len(built) == 1, logs
    try:
        listed = client.containers.run(built[0], remove=True).decode().split()
        assert "Dockerfile" in listed and "passwd" not in listed
    finally:
        client.images.remove(built[0], force=True)
    assert contexts_left(api) == []


def test_client_going_away_cancels_the_build(api: ApiServer, tmp_path: Path) -> None:
    """The CLI killed while a RUN step runs: the build stops at that step's end, no image
    is tagged, no container or context directory is left."""
    ctx = context(tmp_path / "ctx", {
        "Dockerfile": "FROM bb:1\nRUN echo started; sleep 2\nRUN touch /never\n",
    })  # fmt: skip
    env = {**os.environ, "DOCKER_HOST": api.url, "DOCKER_BUILDKIT": "0",
           "DOCKER_CONFIG": str(tmp_path)}  # fmt: skip
    out_path = tmp_path / "build.out"
    with open(out_path, "w") as out:
        cli = subprocess.Popen([docker_binary(), "build", "-t", "bt-cancel:1", str(ctx)],
                               stdout=out, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    try:
        assert wait_until(lambda: "started" in out_path.read_text(), 60), out_path.read_text()
    finally:
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait()
    assert wait_until(lambda: contexts_left(api) == [], 30)
    assert wait_until(lambda: api.cove("ps", "-aq").stdout.split() == [], 30)
    assert api.cove("image", "inspect", "bt-cancel:1").returncode != 0
    log = api.log.read_text(errors="replace")
    assert "the client went away: the build is cancelled" in log


# --- docker-py -----------------------------------------------------------------------------


def test_sdk_build_from_a_path(api: ApiServer, client: Any, tmp_path: Path,
                               tags: list[str]) -> None:  # fmt: skip
    ctx = context(tmp_path / "ctx", {"Dockerfile": BASIC, "hello.txt": "hello via the sdk\n"})
    tags.append("bt-sdk:1")
    image, logs = client.images.build(path=str(ctx), tag="bt-sdk:1")
    assert "bt-sdk:1" in image.tags
    assert IMAGE_ID.match(image.id)
    lines = list(logs)
    text = "".join(line.get("stream", "") for line in lines)
    assert "Step 1/5 : FROM bb:1" in text and "\nran the-run-step\n" in text
    assert {"aux": {"ID": image.id}} in lines
    output = client.containers.run("bt-sdk:1", remove=True)
    assert output == b"hi-from-env\nhello via the sdk\n"


def test_sdk_build_from_a_fileobj_with_buildargs(api: ApiServer, client: Any,
                                                tags: list[str]) -> None:  # fmt: skip
    tags.append("bt-sdkfile:1")
    dockerfile = io.BytesIO(b'FROM bb:1\nARG WHO\nRUN echo "hello $WHO" > /who\n'
                            b'CMD ["cat", "/who"]\n')  # fmt: skip
    image, _ = client.images.build(fileobj=dockerfile, tag="bt-sdkfile:1",
                                   buildargs={"WHO": "docker-py"}, rm=True)  # fmt: skip
    assert "bt-sdkfile:1" in image.tags
    assert client.containers.run(image.id, remove=True) == b"hello docker-py\n"
    # quiet: the low-level API answers only the id
    quiet = list(client.api.build(fileobj=io.BytesIO(b"FROM bb:1\nENV Q=1\n"), quiet=True,
                                  decode=True))  # fmt: skip
    assert len(quiet) == 1 and IMAGE_ID.match(quiet[0]["stream"].strip()), quiet


def test_sdk_build_error(api: ApiServer, client: Any) -> None:
    dockerfile = io.BytesIO(b"FROM bb:1\nRUN echo sdk-failure; exit 7\n")
    with pytest.raises(docker_errors.BuildError) as raised:
        client.images.build(fileobj=dockerfile, tag="bt-sdkfail:1")
    assert raised.value.msg == (
        "The command '/bin/sh -c echo sdk-failure; exit 7' returned a non-zero code: 7"
    )
    log_text = "".join(line.get("stream", "") for line in raised.value.build_log)
    assert "sdk-failure" in log_text
    with pytest.raises(docker_errors.ImageNotFound):
        client.images.get("bt-sdkfail:1")
    assert contexts_left(api) == []


# --- the build cache -----------------------------------------------------------------------

CACHE_MOUNT = """\
FROM bb:1
RUN --mount=type=cache,target=/cache,id=compat-prune dd if=/dev/zero of=/cache/f bs=1k count=8
"""


def test_build_cache_in_df_and_pruned_by_the_cli_and_the_sdk(
    api: ApiServer, docker: DockerCli, client: Any, tmp_path: Path, tags: list[str]
) -> None:
    ctx = context(tmp_path / "ctx", {"Dockerfile": CACHE_MOUNT})
    tags.append("bt-cache:1")
    built = docker("build", "-t", "bt-cache:1", str(ctx), timeout=180)
    assert built.returncode == 0, built.stderr + built.stdout
    records = client.df()["BuildCache"]
    assert len(records) == 1, records
    record = records[0]
    assert (record["Type"], record["InUse"], record["UsageCount"]) == ("exec.cachemount",
                                                                       False, 1)  # fmt: skip
    assert record["Description"] == "cached mount /cache" and record["Size"] >= 8192
    df = docker("system", "df")
    assert re.search(r"^Build Cache\s+1\s+0\s+\S+kB", df.stdout, re.M), df.stdout

    pruned = docker("builder", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    listed = f"Deleted build cache objects:\n{record['ID']}\n"
    assert pruned.stdout.startswith(listed), pruned.stdout
    assert client.df()["BuildCache"] == []

    built = docker("build", "-t", "bt-cache:1", str(ctx), timeout=180)
    assert built.returncode == 0 and " ---> Using cache" in built.stdout  # the step cache stays
    answer = client.api.prune_builds()  # docker-py: POST /build/prune
    assert answer["SpaceReclaimed"] == 0 and answer["CachesDeleted"] == []
    with pytest.raises(docker_errors.APIError) as info:
        client.api.prune_builds(filters={"label": "x"})
    assert info.value.status_code == 400 and "invalid filter 'label'" in str(info.value)


# --- remote contexts -----------------------------------------------------------------------


def test_sdk_build_from_a_git_repository_on_loopback(
    api: ApiServer, client: Any, tmp_path: Path, tags: list[str]
) -> None:
    from tests.lib.git_server import served_repo

    with served_repo(tmp_path / "served") as (url, _):
        tags.append("bt-git:1")
        image, _ = client.images.build(path=f"{url}#main:sub", tag="bt-git:1")  # remote=
        assert "bt-git:1" in image.tags
        assert client.containers.run("bt-git:1", ["cat", "/here"], remove=True) == b"from sub\n"
        with pytest.raises(docker_errors.APIError) as info:
            client.images.build(path=f"{url}#no-such-ref")
        assert info.value.status_code == 400 and "no ref no-such-ref" in str(info.value)
    with pytest.raises(docker_errors.APIError) as refused:
        client.images.build(path="https://github.com/docker/example.git")
    assert refused.value.status_code == 501 and "only from a loopback" in str(refused.value)
    assert contexts_left(api) == []


def test_sdk_build_with_extra_hosts_and_shm_size(api: ApiServer, client: Any, tmp_path: Path,
                                                 tags: list[str]) -> None:  # fmt: skip
    dockerfile = ("FROM bb:1\nRUN grep myhost /etc/hosts > /hosts-line\n"
                  "RUN df -k /dev/shm | tail -1 | awk '{print $2}' > /shm-kb\n")  # fmt: skip
    ctx = context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    tags.append("bt-hosts:1")
    client.images.build(path=str(ctx), tag="bt-hosts:1", extra_hosts={"myhost": "10.9.8.7"},
                        shmsize=16 << 20)  # fmt: skip
    out = client.containers.run("bt-hosts:1", ["cat", "/hosts-line", "/shm-kb"], remove=True)
    assert out.decode().split() == ["10.9.8.7", "myhost", "16384"]
