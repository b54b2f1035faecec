"""Image routes through the real clients: list, inspect, history, tag, rmi, prune, save |
load, import, commit, search, and pull / push / login against a local registry (Debian's
docker-registry on a loopback port; the test starts it and stops it)."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker import errors as docker_errors  # type: ignore[import-untyped]

from tests.compat.conftest import ApiServer, DockerCli
from tests.integration.image.test_registry import REGISTRY, Registry, _htpasswd


def image_ids(api: ApiServer) -> dict[str, str]:
    """Name -> full id, as the engine CLI sees them."""
    out = api.cove("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert out.returncode == 0, out.stderr
    return dict(line.split() for line in out.stdout.splitlines() if line.strip())


def busybox_id(api: ApiServer) -> str:
    return image_ids(api)["busybox:latest"]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    if not os.path.exists(REGISTRY):
        pytest.fail(f"{REGISTRY} is missing: apt-get install docker-registry")
    folder = tmp_path / "registry"
    folder.mkdir()
    server = Registry(folder)
    try:
        yield server
    finally:
        server.stop()


def rootfs_tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return path


# --- list, inspect, history ----------------------------------------------------------------


def test_docker_images_lists_the_servers_images(api: ApiServer, docker: DockerCli) -> None:
    res = docker("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert res.returncode == 0, res.stderr
    listed = dict(line.split() for line in res.stdout.splitlines())
    assert listed["busybox:latest"] == busybox_id(api)
    assert listed["bb:1"] == busybox_id(api)
    res = docker("images", "--filter", "reference=bb", "--format", "{{.Repository}}:{{.Tag}}")
    assert res.returncode == 0 and res.stdout.split() == ["bb:1"], res.stderr
    res = docker("images", "-q", "--filter", "dangling=true", "--filter", "reference=bb")
    assert res.returncode == 0 and res.stdout == "", res.stderr


def test_sdk_list_shapes_and_filters(api: ApiServer, client: Any) -> None:
    rows = client.api.images()
    row = next(r for r in rows if "bb:1" in r["RepoTags"])
    assert row["Id"] == busybox_id(api)
    assert set(row["RepoTags"]) >= {"bb:1", "busybox:latest"}
    assert row["Containers"] == -1 and row["SharedSize"] == -1 and row["ParentId"] == ""
    assert isinstance(row["Created"], int) and row["Created"] > 1_000_000_000
    assert isinstance(row["Size"], int) and row["Size"] > 100_000
    assert [r["Id"] for r in client.api.images(name="bb")] == [busybox_id(api)]
    assert client.api.images(name="no-such-name") == []
    images = client.images.list(filters={"reference": "busybox:*"})
    assert [image.id for image in images] == [busybox_id(api)]
    assert client.api.images(filters={"dangling": True, "reference": "bb"}) == []
    with pytest.raises(docker_errors.APIError) as raised:
        client.api.images(filters={"colour": "red"})
    assert raised.value.status_code == 400 and "invalid filter" in str(raised.value.explanation)


def test_inspect_through_cli_and_sdk(api: ApiServer, docker: DockerCli, client: Any) -> None:
    res = docker("image", "inspect", "bb:1")
    assert res.returncode == 0, res.stderr
    (document,) = json.loads(res.stdout)
    assert document["Id"] == busybox_id(api)
    assert "bb:1" in document["RepoTags"] and document["Os"] == "linux"
    assert document["RootFS"]["Type"] == "layers" and len(document["RootFS"]["Layers"]) == 1
    assert document["Metadata"]["LastTagTime"].endswith("Z")
    res = docker("image", "inspect", "--format", "{{.Id}} {{.Architecture}}", "busybox")
    assert res.returncode == 0 and res.stdout.split()[0] == busybox_id(api), res.stderr
    image = client.images.get("bb:1")
    assert image.id == busybox_id(api) and "bb:1" in image.tags
    assert client.images.get(busybox_id(api)[7:19]).id == busybox_id(api)  # short id
    with pytest.raises(docker_errors.ImageNotFound):
        client.images.get("no-such-image:1")
    res = docker("image", "inspect", "no-such-image:1")
    assert res.returncode == 1 and "no such image" in res.stderr.lower()


def test_history(api: ApiServer, docker: DockerCli, client: Any) -> None:
    res = docker("history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}", "bb:1")
    assert res.returncode == 0, res.stderr
    (line,) = res.stdout.splitlines()
    image_id, created_by, size = line.split("|")
    assert image_id == busybox_id(api)
    assert created_by.startswith("cove import") and size != "0B"
    (entry,) = client.api.history("bb:1")
    assert entry["Id"] == busybox_id(api) and "bb:1" in entry["Tags"]
    assert isinstance(entry["Created"], int) and entry["Size"] > 100_000


# --- tag, rmi, prune -----------------------------------------------------------------------


def test_tag_and_rmi(api: ApiServer, docker: DockerCli) -> None:
    res = docker("tag", "bb:1", "team/app:2")
    assert res.returncode == 0, res.stderr
    assert image_ids(api)["team/app:2"] == busybox_id(api)
    res = docker("tag", "busybox", "team/app")  # no tag: latest
    assert res.returncode == 0, res.stderr
    assert image_ids(api)["team/app:latest"] == busybox_id(api)
    res = docker("rmi", "team/app:2", "team/app")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["Untagged: team/app:2", "Untagged: team/app:latest"]
    assert "team/app:2" not in image_ids(api)
    res = docker("rmi", "team/app:2")
    assert res.returncode == 1 and "no such image" in res.stderr.lower()
    res = docker("tag", "no-such:1", "x:1")
    assert res.returncode == 1 and "no such image" in res.stderr.lower()


def test_rmi_of_an_image_a_container_uses_is_a_conflict(
    api: ApiServer, docker: DockerCli, client: Any, tmp_path: Path
) -> None:
    tarball = rootfs_tarball(tmp_path / "fs.tar", {"hello": b"hi\n"})
    res = docker("import", str(tarball), "used:1")
    assert res.returncode == 0, res.stderr
    created = api.cove("create", "--name", "user-of-used", "used:1", "/hello")
    assert created.returncode == 0, created.stderr
    res = docker("rmi", "used:1")
    assert res.returncode == 1 and "(must force) - container" in res.stderr, res.stderr
    with pytest.raises(docker_errors.APIError) as raised:
        client.images.remove("used:1")
    assert raised.value.status_code == 409
    image_id = client.images.get("used:1").id
    res = docker("image", "rm", image_id)  # by id: the same conflict
    assert res.returncode == 1 and "being used by" in res.stderr, res.stderr
    # forced, as Docker: the name goes, the image stays (nameless) for its container
    res = docker("tag", "used:1", "used:2")
    assert res.returncode == 0, res.stderr
    res = docker("rmi", "-f", "used:1")
    assert res.returncode == 0, res.stderr
    assert "Untagged: used:1" in res.stdout and "Deleted" not in res.stdout
    assert client.images.get(image_id).tags == ["used:2"]
    res = docker("rmi", "-f", image_id)  # by id: every name goes
    assert res.returncode == 0 and "Untagged: used:2" in res.stdout, res.stderr
    assert client.images.get(image_id).tags == []
    shown = api.cove("inspect", "--format", "{{.Image}}", "user-of-used")
    assert shown.stdout.strip() == image_id  # its container keeps its image
    assert api.cove("rm", "user-of-used").returncode == 0
    res = docker("rmi", image_id)
    assert res.returncode == 0, res.stderr
    assert "Deleted: sha256:" in res.stdout


def test_image_prune_removes_dangling_images(
    api: ApiServer, docker: DockerCli, client: Any, tmp_path: Path
) -> None:
    tarball = rootfs_tarball(tmp_path / "fs.tar", {"a": b"dangling\n"})
    res = docker("import", str(tarball))
    assert res.returncode == 0, res.stderr
    dangling_id = res.stdout.strip()
    assert dangling_id.startswith("sha256:")
    res = docker("images", "-q", "--no-trunc", "--filter", "dangling=true")
    assert dangling_id in res.stdout.split()
    res = docker("image", "prune", "-f")
    assert res.returncode == 0, res.stderr
    assert f"deleted: {dangling_id}" in res.stdout and "Total reclaimed space" in res.stdout
    assert dangling_id not in image_ids(api).values()
    assert busybox_id(api)  # named images stay
    report = client.images.prune()
    assert report["ImagesDeleted"] is None and report["SpaceReclaimed"] == 0
    # label and until narrow dangling=false (every unused image)
    res = docker("import", "--change", "LABEL keep=no", str(tarball), "labelled:1")
    assert res.returncode == 0, res.stderr
    report = client.images.prune(filters={"dangling": False, "label": "keep=no",
                                          "until": "2000-01-01T00:00:00Z"})  # fmt: skip
    assert report["ImagesDeleted"] is None  # created after 2000
    report = client.images.prune(filters={"dangling": False, "label": "keep=no"})
    assert {"Untagged": "labelled:1"} in report["ImagesDeleted"]
    assert "labelled:1" not in image_ids(api) and "bb:1" in image_ids(api)


# --- save, load, import, commit ------------------------------------------------------------


def test_save_and_load_round_trip(api: ApiServer, docker: DockerCli, tmp_path: Path) -> None:
    archive = tmp_path / "bb.tar"
    res = docker("save", "-o", str(archive), "bb:1")
    assert res.returncode == 0, res.stderr
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["bb:1"]
    assert docker("tag", "bb:1", "roundtrip:1").returncode == 0
    res = docker("save", "-o", str(tmp_path / "rt.tar"), "roundtrip:1")
    assert res.returncode == 0, res.stderr
    assert docker("rmi", "roundtrip:1").returncode == 0
    res = docker("load", "-i", str(tmp_path / "rt.tar"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "Loaded image: roundtrip:1"
    assert image_ids(api)["roundtrip:1"] == busybox_id(api)
    assert docker("rmi", "roundtrip:1").returncode == 0
    res = docker("save", "no-such:1")
    assert res.returncode == 1 and "no such image" in res.stderr.lower()
    # an archive larger than any JSON body may be (16 MiB): streamed both ways
    big = rootfs_tarball(tmp_path / "big.tar", {"blob": os.urandom(20 << 20)})
    res = docker("import", str(big), "big:1")
    assert res.returncode == 0, res.stderr
    big_id = res.stdout.strip()
    res = docker("save", "-o", str(tmp_path / "big-saved.tar"), "big:1")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "big-saved.tar").stat().st_size > 20 << 20
    assert docker("rmi", "big:1").returncode == 0
    res = docker("load", "-i", str(tmp_path / "big-saved.tar"))
    assert res.returncode == 0 and res.stdout.strip() == "Loaded image: big:1", res.stderr
    assert image_ids(api)["big:1"] == big_id
    assert docker("rmi", "big:1").returncode == 0
    (tmp_path / "junk.tar").write_bytes(b"not an archive" * 100)
    res = docker("load", "-i", str(tmp_path / "junk.tar"))
    assert res.returncode == 1 and "archive" in res.stderr, res.stdout + res.stderr


def test_sdk_save_and_load(api: ApiServer, client: Any) -> None:
    image = client.images.get("bb:1")
    data = b"".join(image.save(named=True))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert "manifest.json" in tar.getnames()
    loaded = client.images.load(data)
    assert [i.id for i in loaded] == [busybox_id(api)]
    # two names in one archive (GET /images/get?names=...)
    assert client.images.get("bb:1").tag("second", "2")
    many = b"".join(client.api.get_image("second:2"))
    client.images.remove("second:2")
    (again,) = client.images.load(many)
    assert "second:2" in again.tags
    client.images.remove("second:2")
    with pytest.raises(docker_errors.ImageLoadError):  # dockerd's 200 with the error in the stream
        client.images.load(b"this is not a tar archive" * 40)


def test_import_with_changes(api: ApiServer, docker: DockerCli, client: Any,
                             tmp_path: Path) -> None:  # fmt: skip
    tarball = rootfs_tarball(tmp_path / "fs.tar", {"data/file": b"imported\n"})
    res = docker("import", "-c", "ENV COLOUR=blue", "-c", "CMD [\"/data/file\"]",
                 "-m", "from the API", str(tarball), "imported:7")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == image_ids(api)["imported:7"]
    config = client.images.get("imported:7").attrs["Config"]
    assert "COLOUR=blue" in config["Env"] and config["Cmd"] == ["/data/file"]
    (entry,) = client.api.history("imported:7")
    assert entry["Comment"] == "from the API"
    # docker-py's import from bytes
    text = client.api.import_image_from_data(tarball.read_bytes(), repository="imported",
                                             tag="8")  # fmt: skip
    assert json.loads(text)["status"] == image_ids(api)["imported:8"]
    assert docker("rmi", "imported:7", "imported:8").returncode == 0


def test_commit(api: ApiServer, docker: DockerCli, client: Any) -> None:
    created = api.cove("run", "--name", "to-commit", "bb:1", "sh", "-c", "echo made > /made")
    assert created.returncode == 0, created.stderr
    res = docker("commit", "-c", "ENV STAGE=two", "-m", "a message", "to-commit", "committed:1")
    assert res.returncode == 0, res.stderr
    image_id = res.stdout.strip()
    assert image_ids(api)["committed:1"] == image_id
    document = client.images.get("committed:1").attrs
    assert "STAGE=two" in document["Config"]["Env"] and len(document["RootFS"]["Layers"]) == 2
    assert client.api.history("committed:1")[0]["Comment"] == "a message"
    run = api.cove("run", "--rm", "committed:1", "cat", "/made")
    assert run.returncode == 0 and run.stdout == "made\n", run.stderr
    # docker-py: a Config body, author, repo without tag
    container = client.containers.get("to-commit")
    image = container.commit("committed", conf={"Cmd": ["cat", "/made"], "Labels": {"k": "v"}},
                             author="tester")  # fmt: skip
    attrs = client.images.get(image.id).attrs
    assert attrs["Config"]["Cmd"] == ["cat", "/made"] and attrs["Config"]["Labels"] == {"k": "v"}
    assert attrs["Author"] == "tester" and "committed:latest" in attrs["RepoTags"]
    with pytest.raises(docker_errors.NotFound):
        client.api.commit("no-such-container")
    api.cove("rm", "-f", "to-commit")
    assert docker("rmi", "committed:1", "committed:latest").returncode == 0


def test_search(api: ApiServer, docker: DockerCli, client: Any, registry: Registry) -> None:
    assert client.images.search("busybox") == []
    res = docker("search", "busybox")
    assert res.returncode == 0 and res.stdout.split() == ["NAME", "DESCRIPTION", "STARS",
                                                           "OFFICIAL"], res.stdout  # fmt: skip
    target = f"{registry.address}/findme/box:1"
    assert docker("tag", "bb:1", target).returncode == 0
    try:
        res = docker("push", target)
        assert res.returncode == 0, res.stderr
        found = client.images.search(f"{registry.address}/find")
        assert [row["name"] for row in found] == [f"{registry.address}/findme/box"]
        assert client.images.search(f"{registry.address}/nothing-like-it") == []
    finally:
        docker("rmi", target)


# --- the registry: pull, push, login -------------------------------------------------------


def test_push_rmi_pull_run(api: ApiServer, docker: DockerCli, registry: Registry) -> None:
    since = int(time.time())
    target = f"{registry.address}/compat/bb:1"
    assert docker("tag", "bb:1", target).returncode == 0
    res = docker("push", target)
    assert res.returncode == 0, res.stderr
    assert f"The push refers to repository [{registry.address}/compat/bb]" in res.stdout
    assert "Pushed" in res.stdout and "1: digest: sha256:" in res.stdout
    res = docker("push", target)
    assert res.returncode == 0 and "Layer already exists" in res.stdout, res.stdout
    assert docker("rmi", target).returncode == 0
    res = docker("pull", target)
    assert res.returncode == 0, res.stderr
    assert "Pulling from compat/bb" in res.stdout and "Digest: sha256:" in res.stdout
    assert f"Status: Image is up to date for {target}" in res.stdout or (
        f"Status: Downloaded newer image for {target}" in res.stdout)  # fmt: skip
    assert res.stdout.strip().splitlines()[-1] == target
    assert image_ids(api)[target] == busybox_id(api)
    run = api.cove("run", "--rm", target, "echo", "pulled")
    assert run.returncode == 0 and run.stdout == "pulled\n", run.stderr
    res = docker("pull", f"{registry.address}/compat/bb:nope")
    assert res.returncode == 1 and "not found" in res.stderr, res.stderr
    res = docker("push", f"{registry.address}/compat/never-tagged:1")
    assert res.returncode == 1 and "does not exist locally" in res.stderr, res.stderr
    assert docker("rmi", target).returncode == 0
    # dockerd's events: push and pull name the reference (the failed ones record nothing)
    shape = "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}"
    until = str(int(time.time()) + 1)
    printed = docker("events", "--since", str(since), "--until", until, "--filter", "event=push",
                     "--filter", "event=pull", "--format", shape)  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    repository = target.rsplit(":", 1)[0]
    mine = [line for line in printed.stdout.splitlines() if f" {target} " in line]
    assert mine == [f"push {target} {repository}"] * 2 + [f"pull {target} {repository}"]


def test_pull_into_a_fresh_name_streams_layer_progress(
    api: ApiServer, docker: DockerCli, client: Any, registry: Registry, tmp_path: Path
) -> None:
    # an image the server does not have: a new layer, so the pull downloads it
    tarball = rootfs_tarball(tmp_path / "fs.tar", {"only-in-registry": os.urandom(300_000)})
    res = docker("import", str(tarball), f"{registry.address}/fresh/img:1")
    assert res.returncode == 0, res.stderr
    fresh_id = res.stdout.strip()
    assert docker("push", f"{registry.address}/fresh/img:1").returncode == 0
    assert docker("rmi", f"{registry.address}/fresh/img:1").returncode == 0
    stream = client.api.pull(f"{registry.address}/fresh/img", tag="1", stream=True, decode=True)
    events = list(stream)
    statuses = [e.get("status", "") for e in events]
    assert statuses[0] == "Pulling from fresh/img" and events[0]["id"] == "1"
    assert "Pulling fs layer" in statuses and "Pull complete" in statuses
    downloading = [e for e in events if e.get("status") == "Downloading"]
    assert downloading and downloading[-1]["progressDetail"]["total"] > 0
    assert any(s.startswith("Digest: sha256:") for s in statuses)
    assert statuses[-1] == f"Status: Downloaded newer image for {registry.address}/fresh/img:1"
    assert image_ids(api)[f"{registry.address}/fresh/img:1"] == fresh_id
    # docker-py's model API, then the errors before the stream starts
    image = client.images.pull(f"{registry.address}/fresh/img", tag="1")
    assert image.id == fresh_id
    # (the distribution registry answers MANIFEST_UNKNOWN for a missing repository too:
    # dockerd then says "manifest ... not found", which docker-py raises NotFound for)
    for missing in (
        f"{registry.address}/no-such-repository:1",
        f"{registry.address}/fresh/img:nope",
    ):
        with pytest.raises(docker_errors.NotFound) as raised:
            client.images.pull(missing)
        assert raised.value.status_code == 404
        assert f"manifest for {missing} not found" in str(raised.value.explanation)
    client.images.remove(f"{registry.address}/fresh/img:1")


def test_sdk_push_and_tag(api: ApiServer, client: Any, registry: Registry) -> None:
    image = client.images.get("bb:1")
    assert image.tag(f"{registry.address}/sdk/bb", "3") is True
    lines = [json.loads(line) for line in
             client.images.push(f"{registry.address}/sdk/bb", tag="3").splitlines()]  # fmt: skip
    assert "error" not in lines[-1], lines
    aux = [line["aux"] for line in lines if "aux" in line]
    assert aux and aux[0]["Tag"] == "3" and aux[0]["Digest"].startswith("sha256:")
    assert any(line.get("status", "").startswith("3: digest: sha256:") for line in lines)
    # what the registry holds, without a pull (GET /distribution/NAME/json)
    data = client.images.get_registry_data(f"{registry.address}/sdk/bb:3")
    assert data.id == aux[0]["Digest"]
    assert data.has_platform("linux/amd64") and not data.has_platform("linux/s390x")
    assert data.attrs["Descriptor"]["size"] > 0
    with pytest.raises(docker_errors.NotFound):
        client.images.get_registry_data(f"{registry.address}/sdk/bb:nope")
    client.images.remove(f"{registry.address}/sdk/bb:3")
    # a push that fails after the stream started: the error is its last line
    image.tag("127.0.0.1:1/unreachable/bb", "1")
    try:
        text = client.images.push("127.0.0.1:1/unreachable/bb", tag="1")
        lines = [json.loads(line) for line in text.splitlines()]
        assert "errorDetail" in lines[-1] and lines[-1]["error"], lines
    finally:
        client.images.remove("127.0.0.1:1/unreachable/bb:1")


def test_login_and_push_with_credentials(
    api: ApiServer, docker: DockerCli, client: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "secured"
    folder.mkdir()
    passwd = folder / "htpasswd"
    if not _htpasswd(passwd, "alice", "s3cret"):
        pytest.fail("htpasswd (apache2-utils) is needed for the login test")
    secured = Registry(folder, passwd)
    target = f"{secured.address}/private/bb:1"
    try:
        assert docker("tag", "bb:1", target).returncode == 0
        res = docker("push", target)
        assert res.returncode == 1 and "unauthorized" in (res.stdout + res.stderr).lower()
        res = docker("login", "-u", "alice", "--password-stdin", secured.address,
                     input="wrong\n")  # fmt: skip
        assert res.returncode == 1 and "unauthorized" in res.stderr.lower(), res.stderr
        res = docker("login", "-u", "alice", "--password-stdin", secured.address,
                     input="s3cret\n")  # fmt: skip
        assert res.returncode == 0 and "Login Succeeded" in res.stdout, res.stderr
        res = docker("push", target)  # the CLI sends its stored credentials now
        assert res.returncode == 0 and "Pushed" in res.stdout, res.stdout + res.stderr
        assert docker("rmi", target).returncode == 0
        res = docker("pull", target)
        assert res.returncode == 0, res.stderr
        # docker-py: POST /auth, and X-Registry-Auth from auth_config
        assert client.login("alice", "s3cret", registry=secured.address)["Status"] == (
            "Login Succeeded")  # fmt: skip
        with pytest.raises(docker_errors.APIError) as raised:
            client.login("alice", "nope", registry=secured.address, reauth=True)
        assert raised.value.status_code == 401
        pulled = client.images.pull(target, auth_config={"username": "alice",
                                                         "password": "s3cret"})  # fmt: skip
        assert pulled.id == busybox_id(api)
        header = base64.urlsafe_b64encode(json.dumps({"username": "alice",
                                                      "password": "bad"}).encode())  # fmt: skip
        response = client.api._post(client.api._url("/images/create"),
                                    params={"fromImage": target},
                                    headers={"X-Registry-Auth": header.decode()})  # fmt: skip
        assert response.status_code == 401, response.text
    finally:
        docker("rmi", target)
        secured.stop()


def test_quiet_pull_prints_only_the_name(
    api: ApiServer, docker: DockerCli, registry: Registry
) -> None:
    target = f"{registry.address}/autopull/bb:1"
    assert docker("tag", "bb:1", target).returncode == 0
    assert docker("push", target).returncode == 0
    assert docker("rmi", target).returncode == 0
    started = time.monotonic()
    res = docker("pull", "-q", target)
    assert res.returncode == 0 and res.stdout.strip() == target, res.stderr
    assert time.monotonic() - started < 30
    assert docker("rmi", target).returncode == 0


def test_unknown_image_routes_answer_404(api: ApiServer, client: Any) -> None:
    response = client.api._get(client.api._url("/images/{0}/json", "a/b/c:9"))
    assert response.status_code == 404 and "no such image" in response.json()["message"].lower()
    response = client.api._post(client.api._url("/images/{0}/tag", "bb:1"),
                                params={"repo": ""})  # fmt: skip
    assert response.status_code == 400
    response = client.api._delete(client.api._url("/images/{0}", "no/such:image"))
    assert response.status_code == 404
