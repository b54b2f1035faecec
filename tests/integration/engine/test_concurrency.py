"""Many `cove` commands at once on one engine root: runs, names, removals and stops that race
each other. Each command is its own process, as when several shells or scripts share a host;
SQLite and the per-container locks must keep the records and the host consistent."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.engine.test_lifecycle import (
    LOOP,
    all_ids,
    cgroups_of,
    monitors_of,
    ok,
    remove_everything,
    run_d,
    status,
)
from tests.integration.engine.test_lifecycle import eng as eng  # a fixture, used by name
from tests.integration.engine.test_lifecycle import engine as engine  # a fixture, used by name
from tests.integration.image.test_import import cove_cli

pytestmark = pytest.mark.root

COUNT = 20


def together(root: Path, commands: list[list[str]]) -> list[tuple[int, str, str]]:
    """Start every command at once; (status, stdout, stderr) of each, in order."""
    processes = [subprocess.Popen([cove_cli(), "--root", str(root), *args], text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for args in commands]  # fmt: skip
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=120)
            results.append((process.returncode, out, err))
    finally:
        for process in processes:
            process.kill()
            process.wait()
    return results


def test_concurrent_foreground_runs(eng: Path) -> None:
    results = together(eng, [["run", "--rm", "bb:1", "sh", "-c", "echo $HOSTNAME"]] * COUNT)
    assert [code for code, _, _ in results] == [0] * COUNT, [err for _, _, err in results]
    hostnames = [out.strip() for _, out, _ in results]
    assert all(re.fullmatch(r"[0-9a-f]{12}", name) for name in hostnames), hostnames
    assert len(set(hostnames)) == COUNT
    assert all_ids(eng) == []
    for short_id in hostnames:
        assert cgroups_of(short_id) == []
    remove_everything(eng)


def test_concurrent_detached_runs_then_removals(eng: Path) -> None:
    names = [f"c{i}" for i in range(COUNT)]
    results = together(eng, [["run", "-d", "--name", n, "bb:1", "sh", "-c", LOOP]
                                for n in names])  # fmt: skip
    assert [code for code, _, _ in results] == [0] * COUNT, [err for _, _, err in results]
    ids = [out.strip() for _, out, _ in results]
    assert len(set(ids)) == COUNT
    listed = ok(eng, "ps", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.State}}")
    expected = [f"{i} {n} running" for i, n in zip(ids, names, strict=True)]
    assert sorted(listed.splitlines()) == sorted(expected)
    assert len(monitors_of(eng)) == COUNT
    results = together(eng, [["rm", "-f", n] for n in names])
    assert [(code, out) for code, out, _ in results] == [(0, f"{n}\n") for n in names]
    assert all_ids(eng) == []
    for cid in ids:
        assert cgroups_of(cid) == []
    remove_everything(eng)


def test_one_name_many_claimants(eng: Path) -> None:
    results = together(eng, [["run", "-d", "--name", "only", "bb:1", "sh", "-c", LOOP]] * 10)
    winners = [out.strip() for code, out, _ in results if code == 0]
    assert len(winners) == 1, results
    for code, out, err in results:
        if code != 0:
            assert (code, out) == (125, "") and "already in use" in err
    assert all_ids(eng) == winners and status(eng, "only") == "running"
    assert len(monitors_of(eng)) == 1
    remove_everything(eng)


def test_racing_stop_kill_and_remove_of_one_container(eng: Path) -> None:
    for _ in range(5):
        cid = run_d(eng, "bb:1", "sh", "-c", f"trap 'exit 3' TERM; {LOOP}")
        results = together(eng, [["stop", cid], ["kill", cid], ["rm", "-f", cid],
                                    ["stop", "-t", "0", cid], ["wait", cid]])  # fmt: skip
        verbs = ("stop", "kill", "rm", "stop0", "wait")
        codes = {verb: code for verb, (code, _, _) in zip(verbs, results, strict=True)}
        assert codes["rm"] == 0, results[2]
        assert all(code in (0, 1) for code in codes.values()), results
        assert codes["stop"] in (0, 1) and codes["stop0"] in (0, 1) and codes["kill"] in (0, 1)
        assert codes["wait"] in (0, 1)  # gone before wait looked: "no such container"
        assert all_ids(eng) == [] and cgroups_of(cid) == []
        # a command that locked it after the rm made no folder again (it would stay behind)
        time.sleep(0.3)  # (the monitor's exit command may still run)
        assert not (eng / "containers" / cid).exists()
    remove_everything(eng)


def test_parallel_lifecycles_on_different_containers(eng: Path) -> None:
    ids = [run_d(eng, "bb:1", "sh", "-c", f"trap 'exit 3' TERM; {LOOP}") for _ in range(6)]
    verbs = [["stop", "-t", "5"], ["restart", "-t", "5"], ["pause"], ["kill", "-s", "TERM"],
             ["update", "--memory", "64m"], ["rm", "-f"]]  # fmt: skip
    results = together(eng, [[*verb, cid] for verb, cid in zip(verbs, ids, strict=True)])
    assert [code for code, _, _ in results] == [0] * 6, [err for _, _, err in results]
    states = {cid: status(eng, cid) for cid in ids[:5]}
    assert states[ids[0]] == "exited" and states[ids[1]] == "running"
    assert states[ids[2]] == "paused" and states[ids[4]] == "running"
    assert ok(eng, "wait", ids[3]) == "3\n"
    assert ids[5] not in all_ids(eng)
    remove_everything(eng)
