"""Container routes through the real clients (the docker CLI and docker-py), checked
through the engine's own CLI on the server's root (`api.cove(...)`)."""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from docker import errors as docker_errors  # type: ignore[import-untyped]

from tests.compat.conftest import ApiServer, DockerCli


def ok(res: Any) -> str:
    assert res.returncode == 0, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return str(res.stdout)


def cove_inspect(api: ApiServer, name: str) -> dict[str, Any]:
    data = json.loads(ok(api.cove("inspect", name)))
    found: dict[str, Any] = data[0] if isinstance(data, list) else data
    return found


def cove_status(api: ApiServer, name: str) -> str:
    return str(cove_inspect(api, name)["State"]["Status"])


def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def cgroup_file(api: ApiServer, name: str, controller: str, filename: str) -> str:
    """A file of the container's cgroup, as the host sees it (v1, else the unified tree)."""
    pid = cove_inspect(api, name)["State"]["Pid"]
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path(f"/sys/fs/cgroup/{controller}{path}/{filename}").read_text().strip()
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            base = "/sys/fs/cgroup/unified" if Path("/sys/fs/cgroup/unified").is_dir() else ""
            v2 = {"memory.limit_in_bytes": "memory.max"}.get(filename, filename)
            return Path(f"{base or '/sys/fs/cgroup'}{line[3:]}/{v2}").read_text().strip()
    raise AssertionError(f"no {controller} cgroup for {name}")


# --- the docker CLI ------------------------------------------------------------------------


def test_cli_run_detached_ps_inspect_stop_start_restart(api: ApiServer, docker: DockerCli) -> None:
    cid = ok(docker("run", "-d", "--name", "web", "-l", "tier=front", "bb:1", "sleep", "300"))
    cid = cid.strip()
    assert len(cid) == 64
    assert cove_status(api, "web") == "running"

    ps = ok(docker("ps", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.Status}} {{.Command}}"))
    line = next(row for row in ps.splitlines() if "web" in row)
    short, name, image, *rest = line.split()
    assert (short, name, image) == (cid[:12], "web", "bb:1")
    assert " ".join(rest).startswith("Up ")
    assert '"sleep 300"' in line

    inspected = json.loads(ok(docker("inspect", "web")))[0]
    assert inspected["Id"] == cid
    assert inspected["Name"] == "/web"
    assert inspected["State"]["Running"] is True
    assert inspected["Config"]["Labels"] == {"tier": "front"}
    assert inspected["Config"]["AttachStdout"] is False  # run -d
    assert inspected["HostConfig"]["NetworkMode"] == "bridge"

    ok(docker("stop", "-t", "1", "web"))
    assert cove_status(api, "web") == "exited"
    assert "web" not in ok(docker("ps", "--format", "{{.Names}}")).split()
    assert "web" in ok(docker("ps", "-a", "--format", "{{.Names}}")).split()

    ok(docker("start", "web"))
    assert cove_status(api, "web") == "running"
    started = cove_inspect(api, "web")["State"]["StartedAt"]
    ok(docker("restart", "-t", "1", "web"))
    after = cove_inspect(api, "web")
    assert after["State"]["Status"] == "running"
    assert after["State"]["StartedAt"] != started
    assert after["RestartCount"] == 1


def test_cli_ps_filters_and_format(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("run", "-d", "--name", "alpha", "-l", "team=a", "bb:1", "sleep", "300"))
    ok(docker("create", "--name", "beta", "-l", "team=b", "busybox", "true"))
    names = ok(docker("ps", "-a", "--filter", "label=team=b", "--format", "{{.Names}}"))
    assert names.split() == ["beta"]
    names = ok(docker("ps", "-a", "--filter", "status=running", "--format", "{{.Names}}"))
    assert names.split() == ["alpha"]
    names = ok(docker("ps", "-a", "--filter", "name=alp", "--format", "{{.Names}}"))
    assert names.split() == ["alpha"]
    names = ok(docker("ps", "-a", "--filter", "ancestor=busybox", "--format", "{{.Names}}"))
    assert "beta" in names.split()
    states = ok(docker("ps", "-a", "--format", "{{.Names}}={{.State}}")).split()
    assert sorted(states) == ["alpha=running", "beta=created"]
    quiet = ok(docker("ps", "-aq")).split()
    assert len(quiet) == 2 and all(len(q) == 12 for q in quiet)
    names = ok(docker("ps", "-a", "--filter", "before=beta", "--format", "{{.Names}}"))
    assert names.split() == ["alpha"]
    names = ok(docker("ps", "--filter", "since=alpha", "--format", "{{.Names}}"))
    assert names.split() == ["beta"]
    names = ok(docker("ps", "-a", "--filter", "network=bridge", "--format", "{{.Names}}"))
    assert sorted(names.split()) == ["alpha", "beta"]
    names = ok(docker("ps", "-a", "--filter", "network=none", "--format", "{{.Names}}"))
    assert names.split() == []
    names = ok(docker("ps", "-a", "--filter", "exited=0", "--format", "{{.Names}}"))
    assert names.split() == []
    res = docker("ps", "--filter", "colour=red")
    assert res.returncode != 0
    assert "invalid filter" in res.stderr


def test_cli_create_then_start(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("create", "--name", "made", "bb:1", "sleep", "300"))
    assert cove_status(api, "made") == "created"
    ok(docker("start", "made"))
    assert cove_status(api, "made") == "running"
    # starting a running container is not an error for the CLI (304)
    ok(docker("start", "made"))
    res = docker("create", "--name", "made", "bb:1", "true")
    assert res.returncode != 0
    assert "is already in use" in res.stderr


def test_cli_run_d_and_wait_exit_status(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("run", "-d", "--name", "waiter", "bb:1", "sh", "-c", "sleep 0.5; exit 7"))
    assert ok(docker("wait", "waiter")).strip() == "7"
    assert cove_inspect(api, "waiter")["State"]["ExitCode"] == 7
    # a stopped container: wait answers at once
    assert ok(docker("wait", "waiter")).strip() == "7"


def test_cli_kill_pause_unpause_rename(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("run", "-d", "--name", "kpu", "bb:1", "sleep", "300"))
    ok(docker("pause", "kpu"))
    assert cove_status(api, "kpu") == "paused"
    assert "(Paused)" in ok(docker("ps", "--filter", "name=kpu", "--format", "{{.Status}}"))
    res = docker("pause", "kpu")
    assert res.returncode != 0
    ok(docker("unpause", "kpu"))
    assert cove_status(api, "kpu") == "running"
    ok(docker("rename", "kpu", "kpu2"))
    assert cove_status(api, "kpu2") == "running"
    assert api.cove("inspect", "kpu").returncode != 0
    ok(docker("kill", "kpu2"))
    wait_for(lambda: cove_status(api, "kpu2") == "exited")
    assert cove_inspect(api, "kpu2")["State"]["ExitCode"] == 137
    res = docker("kill", "kpu2")
    assert res.returncode != 0
    assert "is not running" in res.stderr


def test_cli_kill_with_signal(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("run", "-d", "--name", "trap", "bb:1", "sh", "-c",
              "trap 'exit 42' USR1; while true; do sleep 0.1; done"))  # fmt: skip
    time.sleep(0.3)
    ok(docker("kill", "--signal", "USR1", "trap"))
    assert ok(docker("wait", "trap")).strip() == "42"


def test_cli_update_memory_reaches_the_cgroup(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("run", "-d", "--name", "upd", "-m", "64m", "bb:1", "sleep", "300"))
    assert cgroup_file(api, "upd", "memory", "memory.limit_in_bytes") == str(64 << 20)
    ok(docker("update", "--memory", "96m", "--memory-swap", "192m", "upd"))
    assert cgroup_file(api, "upd", "memory", "memory.limit_in_bytes") == str(96 << 20)
    assert cove_inspect(api, "upd")["HostConfig"]["Memory"] == 96 << 20
    ok(docker("update", "--pids-limit", "50", "upd"))
    assert cgroup_file(api, "upd", "pids", "pids.max") == "50"


def test_cli_top_diff_export(api: ApiServer, docker: DockerCli, tmp_path: Path) -> None:
    ok(docker("run", "-d", "--name", "tde", "bb:1", "sh", "-c",
              "echo hi > /made.txt; rm /bin/true; sleep 300"))  # fmt: skip
    wait_for(lambda: "made.txt" in ok(docker("diff", "tde")))
    top = ok(docker("top", "tde"))
    assert "PID" in top.splitlines()[0]
    assert "sleep 300" in top
    top_custom = ok(docker("top", "tde", "-o", "pid,comm"))
    assert top_custom.split()[:2] == ["PID", "COMMAND"]
    diff = ok(docker("diff", "tde")).splitlines()
    assert "A /made.txt" in diff
    assert "D /bin/true" in diff
    assert "C /bin" in diff
    out = tmp_path / "t.tar"
    ok(docker("export", "-o", str(out), "tde"))
    with tarfile.open(out) as tar:
        names = {n.lstrip("./") for n in tar.getnames()}
        member = tar.extractfile(next(m for m in tar.getmembers()
                                      if m.name.lstrip("./") == "made.txt"))  # fmt: skip
        assert member is not None and member.read() == b"hi\n"
    assert "bin/sh" in names
    assert "bin/true" not in names


def test_cli_rm_and_prune(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("run", "-d", "--name", "live", "bb:1", "sleep", "300"))
    ok(docker("create", "--name", "idle", "bb:1", "true"))
    ok(docker("run", "-d", "--name", "done", "bb:1", "true"))
    ok(docker("wait", "done"))
    res = docker("rm", "live")
    assert res.returncode != 0
    ok(docker("create", "--name", "labelled", "-l", "keep=yes", "bb:1", "true"))
    out = ok(docker("container", "prune", "-f", "--filter", "until=1h"))
    assert ok(api.cove("ps", "-aq")).split().__len__() == 4  # all are younger than 1h
    out = ok(docker("container", "prune", "-f", "--filter", "label=keep=yes"))
    assert "labelled" not in ok(docker("ps", "-a", "--format", "{{.Names}}"))
    out = ok(docker("container", "prune", "-f"))
    assert "Total reclaimed space" in out
    left = ok(api.cove("ps", "-a", "--format", "{{.Names}}")).split()
    assert left == ["live"]
    ok(docker("rm", "-f", "live"))
    assert ok(api.cove("ps", "-aq")).split() == []
    res = docker("rm", "nothing-here")
    assert res.returncode != 0
    assert "No such container: nothing-here" in res.stderr


def test_cli_run_rm_detached_then_wait(api: ApiServer, docker: DockerCli) -> None:
    """`--rm` (AutoRemove): `docker wait` gets the exit code, then the container is gone.
    (The foreground `docker run --rm` needs attach, which `containers_attach` serves.)"""
    cid = ok(docker("run", "-d", "--rm", "bb:1", "sh", "-c", "sleep 0.5; exit 3")).strip()
    assert cove_inspect(api, cid)["HostConfig"]["AutoRemove"] is True
    assert ok(docker("wait", cid)).strip() == "3"
    wait_for(lambda: ok(api.cove("ps", "-aq")).split() == [])
    res = docker("wait", cid)
    assert res.returncode != 0
    assert "No such container" in res.stderr


def test_cli_run_rm_foreground_exit_status(api: ApiServer, docker: DockerCli) -> None:
    """`docker run --rm` in the foreground: attach, wait?condition=removed (before the
    start), start; the CLI exits with the container's status once it is removed."""
    res = docker("run", "--rm", "bb:1", "sh", "-c", "echo hi; exit 3")
    assert (res.returncode, res.stdout) == (3, "hi\n"), res.stderr
    res = docker("run", "--rm", "bb:1", "true")
    assert res.returncode == 0, res.stderr
    assert ok(api.cove("ps", "-aq")).split() == []
    res = docker("run", "bb:1", "sh", "-c", "exit 4")  # next-exit, the container stays
    assert res.returncode == 4, res.stderr
    assert ok(api.cove("ps", "-a", "--format", "{{.Status}}")).startswith("Exited (4)")


def test_cli_run_rm_failed_start_removes_the_container(
    api: ApiServer, docker: DockerCli, client: Any
) -> None:
    """A start that fails removes an AutoRemove container (Docker's), which the CLI's
    wait?condition=removed waits for; the CLI maps "not found" to 127."""
    res = docker("run", "--rm", "bb:1", "no-such-command", timeout=30)
    assert res.returncode == 127
    assert "executable file not found" in res.stderr
    assert ok(api.cove("ps", "-aq")).split() == []
    res = docker("run", "-d", "--name", "keeps", "bb:1", "no-such-command", timeout=30)
    assert res.returncode == 127
    assert cove_status(api, "keeps") == "created"  # without --rm it stays, as in Docker
    with pytest.raises(docker_errors.APIError) as raised:
        client.api.start("keeps")
    assert raised.value.status_code == 400  # the command cannot run: dockerd's bad parameter


def test_cli_stop_and_start_when_already_so(api: ApiServer, docker: DockerCli) -> None:
    """304 from stop/start: the CLI takes it as done."""
    ok(docker("create", "--name", "idle", "bb:1", "sleep", "300"))
    assert ok(docker("stop", "idle")).strip() == "idle"
    assert cove_status(api, "idle") == "created"
    ok(docker("start", "idle"))
    ok(docker("start", "idle"))
    assert cove_status(api, "idle") == "running"


def test_cli_unknown_image_is_404(docker: DockerCli) -> None:
    res = docker("create", "--pull", "never", "no-such-image:1")
    assert res.returncode != 0
    assert "No such image: no-such-image:1" in res.stderr


# --- docker-py -------------------------------------------------------------------------------


def test_sdk_container_lifecycle(api: ApiServer, client: Any) -> None:
    docker_sdk = pytest.importorskip("docker")
    container = client.containers.run("bb:1", ["sleep", "300"], detach=True, name="py",
                                      labels={"k": "v"}, environment={"A": "1"})  # fmt: skip
    assert container.status in ("created", "running")
    container.reload()
    assert container.status == "running"
    assert (
        container.attrs["Config"]["Env"][-1] == "A=1" or "A=1" in container.attrs["Config"]["Env"]
    )
    assert container.labels == {"k": "v"}
    assert client.containers.get("py").id == container.id
    assert [c.name for c in client.containers.list()] == ["py"]
    assert [c.name for c in client.containers.list(filters={"label": "k=v"})] == ["py"]
    assert client.containers.list(filters={"label": "k=w"}) == []

    top = container.top()
    assert "PID" in top["Titles"]
    assert any("sleep" in " ".join(row) for row in top["Processes"])

    container.rename("py2")
    container.reload()
    assert container.name == "py2"
    assert cove_status(api, "py2") == "running"

    result = container.update(mem_limit="80m", memswap_limit="160m")
    assert result == {"Warnings": []}
    assert cgroup_file(api, "py2", "memory", "memory.limit_in_bytes") == str(80 << 20)

    container.stop(timeout=1)
    container.reload()
    assert container.status == "exited"
    # sleep as PID 1 has no SIGTERM handler: the kernel ignores it, the SIGKILL after 1 s ends it
    assert container.wait() == {"StatusCode": 137, "Error": None}
    container.remove()
    with pytest.raises(docker_sdk.errors.NotFound):
        client.containers.get("py2")
    assert ok(api.cove("ps", "-aq")).split() == []


def test_sdk_create_kill_wait_diff(api: ApiServer, client: Any) -> None:
    container = client.containers.create("bb:1", ["sh", "-c", "touch /new; sleep 300"],
                                         name="c1")  # fmt: skip
    assert cove_status(api, "c1") == "created"
    # not-running: a created container is not running, so wait answers at once
    assert container.wait(timeout=10)["StatusCode"] == 0
    container.start()
    wait_for(lambda: any(c["Path"] == "/new" for c in container.diff()))
    change = next(c for c in container.diff() if c["Path"] == "/new")
    assert change["Kind"] == 1
    container.kill()
    assert container.wait(timeout=10)["StatusCode"] == 137
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 137


def test_sdk_errors(client: Any) -> None:
    docker_sdk = pytest.importorskip("docker")
    with pytest.raises(docker_sdk.errors.NotFound):
        client.containers.get("0123456789ab")
    with pytest.raises(docker_sdk.errors.NotFound):
        client.api.stop("no-such-container")
    with pytest.raises(docker_sdk.errors.ImageNotFound):
        client.containers.create("no-such-image:2", "true")
    client.containers.create("bb:1", "true", name="dup")
    with pytest.raises(docker_sdk.errors.APIError) as caught:
        client.containers.create("bb:1", "true", name="dup")
    assert caught.value.status_code == 409
    assert "already in use" in str(caught.value)


def test_sdk_run_detached_auto_remove_wait_removed(api: ApiServer, client: Any) -> None:
    container = client.containers.run("bb:1", ["sh", "-c", "sleep 0.5; exit 5"], detach=True,
                                      auto_remove=True)  # fmt: skip
    assert container.wait(condition="removed", timeout=30)["StatusCode"] == 5
    assert ok(api.cove("ps", "-aq")).split() == []


def test_sdk_run_foreground(api: ApiServer, client: Any) -> None:
    """containers.run without detach: create, start, wait, logs (then remove)."""
    docker_sdk = pytest.importorskip("docker")
    assert client.containers.run("bb:1", ["echo", "hello"], remove=True) == b"hello\n"
    with pytest.raises(docker_sdk.errors.ContainerError) as caught:
        client.containers.run("bb:1", ["sh", "-c", "echo out; exit 5"], remove=True)
    assert caught.value.exit_status == 5
    assert ok(api.cove("ps", "-aq")).split() == []


def test_sdk_create_options_reach_the_container(api: ApiServer, client: Any) -> None:
    container = client.containers.create(
        "bb:1", ["sleep", "300"], name="opts", hostname="box", domainname="example.org",
        working_dir="/tmp", user="1000:1000", group_add=["10", "users"], mem_limit="64m",
        nano_cpus=500_000_000, pids_limit=40, cpu_shares=512, read_only=True,
        tmpfs={"/scratch": "size=1m"}, cap_drop=["NET_RAW"], init=False,
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
        stop_signal="SIGUSR1", ulimits=[docker_ulimit("nofile", 512, 1024)],
        extra_hosts={"db": "10.1.2.3"}, dns_search=["corp.example"],
        healthcheck={"Test": ["CMD", "true"], "Interval": 2_000_000_000},
    )  # fmt: skip
    container.start()
    inspected = cove_inspect(api, "opts")
    host = inspected["HostConfig"]
    assert host["Memory"] == 64 << 20
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 40
    assert host["CpuShares"] == 512
    assert host["ReadonlyRootfs"] is True
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert host["GroupAdd"] == ["10", "users"]
    assert inspected["Config"]["Hostname"] == "box"
    assert inspected["Config"]["Domainname"] == "example.org"
    assert inspected["Config"]["StopSignal"] == "SIGUSR1"
    assert cgroup_file(api, "opts", "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cgroup_file(api, "opts", "pids", "pids.max") == "40"
    pid = inspected["State"]["Pid"]
    status = Path(f"/proc/{pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1] == "1000"
    groups = next(line for line in status.splitlines() if line.startswith("Groups:")).split()[1:]
    assert "10" in groups and "100" in groups
    assert Path(f"/proc/{pid}/cwd").resolve().name == "tmp"
    limits = Path(f"/proc/{pid}/limits").read_text()
    assert any(line.startswith("Max open files") and "512" in line and "1024" in line
               for line in limits.splitlines())  # fmt: skip
    root = Path(f"/proc/{pid}/root")
    assert (root / "etc/hostname").read_text().strip() == "box"
    hosts = [line.split() for line in (root / "etc/hosts").read_text().splitlines()]
    assert ["10.1.2.3", "db"] in hosts
    assert "corp.example" in (root / "etc/resolv.conf").read_text()


def docker_ulimit(name: str, soft: int, hard: int) -> Any:
    docker_sdk = pytest.importorskip("docker")
    return docker_sdk.types.Ulimit(name=name, soft=soft, hard=hard)


def test_api_unsupported_fields(api: ApiServer, client: Any) -> None:
    docker_sdk = pytest.importorskip("docker")
    with pytest.raises(docker_sdk.errors.APIError) as caught:
        client.api.create_container("bb:1", "true", host_config={"Links": ["a:b"]})
    assert caught.value.status_code == 400
    assert "Links" in str(caught.value)
    created = client.api.create_container("bb:1", "true", host_config={"KernelMemory": 1 << 22})
    assert any("KernelMemory" in w for w in created["Warnings"])
    with pytest.raises(docker_sdk.errors.APIError) as caught:
        client.api.remove_container(created["Id"], link=True)
    assert caught.value.status_code == 400
    client.api.remove_container(created["Id"])


def test_api_namespace_and_process_fields(api: ApiServer, client: Any) -> None:
    """PidMode, UTSMode, OomScoreAdj and friends run (the SDK's host_config names)."""
    host = client.api.create_host_config(pid_mode="host", uts_mode="host", oom_score_adj=300,
                                         network_mode="none")  # fmt: skip
    created = client.api.create_container("bb:1", ["sh", "-c", "cat /proc/1/comm; hostname; "
                                                   "cat /proc/self/oom_score_adj"],
                                          host_config=host)  # fmt: skip
    client.api.start(created["Id"])
    assert client.api.wait(created["Id"], timeout=30)["StatusCode"] == 0
    logs = client.api.logs(created["Id"]).decode()
    assert logs.splitlines() == [Path("/proc/1/comm").read_text().strip(), os.uname().nodename,
                                 "300"]  # fmt: skip
    inspected = client.api.inspect_container(created["Id"])["HostConfig"]
    assert (inspected["PidMode"], inspected["UTSMode"], inspected["OomScoreAdj"]) == (
        "host",
        "host",
        300,
    )
    client.api.remove_container(created["Id"])


def test_wait_conditions(api: ApiServer, client: Any) -> None:
    """next-exit posted before start answers after the exit; removed waits for the rm."""
    api_client = client.api
    created = api_client.create_container("bb:1", ["sh", "-c", "sleep 0.3; exit 4"])
    cid = created["Id"]
    result: dict[str, Any] = {}

    def waiter(condition: str) -> None:
        result[condition] = api_client.wait(cid, timeout=30, condition=condition)

    threads = [threading.Thread(target=waiter, args=(c,)) for c in ("next-exit", "removed")]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    assert result == {}
    api_client.start(cid)
    threads[0].join(15)
    assert result["next-exit"] == {"StatusCode": 4, "Error": None}
    assert "removed" not in result
    api_client.remove_container(cid)
    threads[1].join(15)
    assert result["removed"]["StatusCode"] == 4


def test_list_json_shape(api: ApiServer, client: Any, docker: DockerCli) -> None:
    ok(docker("run", "-d", "--name", "shape", "-p", "127.0.0.1::80", "bb:1", "sleep", "300"))
    (entry,) = client.api.containers(filters={"name": "shape"}, size=True)
    assert entry["Names"] == ["/shape"]
    assert entry["Image"] == "bb:1"
    assert entry["ImageID"].startswith("sha256:")
    assert entry["Command"] == "sleep 300"
    assert isinstance(entry["Created"], int) and entry["Created"] > 1_600_000_000
    assert entry["State"] == "running"
    assert entry["Status"].startswith("Up")
    assert entry["HostConfig"] == {"NetworkMode": "bridge"}
    assert "bridge" in entry["NetworkSettings"]["Networks"]
    port = entry["Ports"][0]
    assert port["PrivatePort"] == 80 and port["Type"] == "tcp" and port["IP"] == "127.0.0.1"
    assert port["PublicPort"] > 0
    assert isinstance(entry["SizeRw"], int) and entry["SizeRootFs"] >= entry["SizeRw"]
    raw = io.StringIO(ok(docker("port", "shape")))
    assert f"127.0.0.1:{port['PublicPort']}" in raw.getvalue()
    table = ok(docker("ps", "-s", "--filter", "name=shape", "--format", "{{.Ports}}|{{.Size}}"))
    assert table.strip().startswith(f"127.0.0.1:{port['PublicPort']}->80/tcp|")
    assert "virtual" in table
    sizes = ok(docker("inspect", "--size", "--format", "{{.SizeRw}} {{.SizeRootFs}}", "shape"))
    rw, rootfs = (int(n) for n in sizes.split())
    assert rootfs > rw >= 0
    names = ok(docker("ps", "--filter", "publish=80", "--format", "{{.Names}}")).split()
    assert names == ["shape"]


def test_list_filters_by_volume(client: Any, docker: DockerCli) -> None:
    ok(docker("run", "-d", "--name", "withvol", "-v", "keep:/data", "bb:1", "sleep", "300"))
    ok(docker("run", "-d", "--name", "novol", "bb:1", "sleep", "300"))
    assert [c.name for c in client.containers.list(filters={"volume": "keep"})] == ["withvol"]
    assert [c.name for c in client.containers.list(filters={"volume": "/data"})] == ["withvol"]
    entry = client.api.containers(filters={"name": "withvol"})[0]
    (mount,) = entry["Mounts"]
    assert (mount["Type"], mount["Name"], mount["Destination"]) == ("volume", "keep", "/data")


def test_hundred_concurrent_create_start_wait_delete(api: ApiServer) -> None:
    """100 threads, each create + start + wait + delete through its own connection."""
    docker_sdk = pytest.importorskip("docker")
    api_client = docker_sdk.APIClient(base_url=api.url, timeout=300, max_pool_size=100)
    errors: list[BaseException] = []
    codes: list[int] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        try:
            cid = api_client.create_container("bb:1", ["sh", "-c", f"exit {index % 7}"])["Id"]
            api_client.start(cid)
            code = api_client.wait(cid, timeout=240)["StatusCode"]
            api_client.remove_container(cid)
            with lock:
                codes.append(code)
                assert code == index % 7
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    finally:
        api_client.close()
    assert time.monotonic() - started < 240
    assert errors == []
    assert len(codes) == 100
    assert ok(api.cove("ps", "-aq")).split() == []
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(api.root) not in mounts


def test_wait_answers_headers_before_the_start(api: ApiServer, client: Any) -> None:
    """The docker CLI's `run`: POST wait?condition=next-exit, and only once its response's
    headers are in, POST start; the body comes with the exit."""
    import socket

    cid = client.api.create_container("bb:1", ["sh", "-c", "exit 6"])["Id"]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(api.socket))
    try:
        sock.sendall(f"POST /v1.44/containers/{cid}/wait?condition=next-exit HTTP/1.1\r\n"
                     "Host: docker\r\nContent-Length: 0\r\n\r\n".encode())  # fmt: skip
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, "the server closed the connection"
            head += chunk
        assert head.startswith(b"HTTP/1.1 200")
        assert cove_status(api, cid) == "created"  # the headers came before any start
        client.api.start(cid)
        rest = head.split(b"\r\n\r\n", 1)[1]
        while not rest.endswith(b"0\r\n\r\n"):  # the last chunk of a chunked body
            chunk = sock.recv(4096)
            assert chunk, "the server closed the connection"
            rest += chunk
    finally:
        sock.close()
    body = rest[rest.index(b"{") : rest.rindex(b"}") + 1]
    assert json.loads(body) == {"StatusCode": 6, "Error": None}
