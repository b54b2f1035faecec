"""cove.runtime.cgroups.prewarm: the no-op moves that start (or keep passed) the kernel's
grace period for cgroup moves."""

from __future__ import annotations

import os
from pathlib import Path

from cove.runtime.cgroups import prewarm


def test_keep_warm_writes_the_no_op_move_and_ignores_failures(tmp_path: Path) -> None:
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    prewarm.keep_warm(str(procs))
    assert procs.read_text() == "0"  # "0": the writing process itself, into its own cgroup
    prewarm.keep_warm(str(tmp_path / "gone" / "cgroup.procs"))  # no error: only a head start


def test_own_cgroup_procs_is_a_cgroup_procs_file_that_lists_us() -> None:
    procs = prewarm.own_cgroup_procs()
    assert procs.endswith("/cgroup.procs")
    assert str(os.getpid()) in Path(procs).read_text().split()


def test_start_prewarm_forks_a_writer_that_ends() -> None:
    pid = prewarm.start_prewarm()
    assert pid > 0
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
