"""cove.runtime.process.execute: the last steps before execve."""

from __future__ import annotations

import errno
import os
import resource
from pathlib import Path

import pytest

from cove.errors import ExecutableNotFound, ProcessSetupError
from cove.runtime import capabilities
from cove.runtime.capabilities import CapabilitySets
from cove.runtime.config import ProcessConfig
from cove.runtime.process import execute
from cove.runtime.process.execute import (
    apply_limits,
    exec_process,
    find_executable,
    switch_user,
)
from cove.sys.constants import PR_CAPBSET_DROP, PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS
from cove.sys.fake import RecordingSyscalls


def make(path: Path, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return path


def process_config(**changes: object) -> ProcessConfig:
    base = ProcessConfig(
        args=("prog", "arg"),
        env=("PATH=/bin", "A=b=c", "EMPTY="),
        cwd="/work",
        uid=1000,
        gid=100,
        additional_gids=(5, 6),
        umask=None,
        terminal=False,
        console_size=None,
        rlimits=(),
        no_new_privileges=True,
        oom_score_adj=None,
    )
    return base.replace(**changes)


# --- find_executable ----------------------------------------------------------------------


def test_path_search_skips_non_executables(tmp_path: Path) -> None:
    make(tmp_path / "noexec" / "prog", 0o644)
    (tmp_path / "isdir" / "prog").mkdir(parents=True)
    good = make(tmp_path / "good" / "prog")
    make(tmp_path / "later" / "prog")
    path = ":".join(str(tmp_path / d) for d in ("missing", "noexec", "isdir", "good", "later"))
    assert find_executable("prog", ("A=1", f"PATH={path}")) == str(good)


def test_not_found_in_path(tmp_path: Path) -> None:
    make(tmp_path / "prog", 0o644)
    with pytest.raises(ExecutableNotFound) as info:
        find_executable("prog", (f"PATH={tmp_path}",))
    assert str(info.value) == 'exec: "prog": executable file not found in $PATH'


def test_default_path_without_path_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = make(tmp_path / "prog")
    monkeypatch.setattr(execute, "DEFAULT_PATH", f"/nonexistent:{tmp_path}")
    assert find_executable("prog", ("HOME=/root",)) == str(good)


def test_empty_path_entry_means_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(tmp_path / "prog")
    monkeypatch.chdir(tmp_path)
    assert find_executable("prog", ("PATH=/nonexistent::",)) == "./prog"


def test_name_with_slash_is_not_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path / "bin" / "prog")
    monkeypatch.chdir(tmp_path)
    assert find_executable("./bin/prog", ("PATH=/nonexistent",)) == "./bin/prog"
    absolute = str(tmp_path / "bin" / "prog")
    assert find_executable(absolute, ()) == absolute


def test_name_with_slash_missing(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(ExecutableNotFound) as info:
        find_executable(missing, ())
    assert str(info.value) == f'exec: "{missing}": no such file or directory'


def test_name_with_slash_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ProcessSetupError) as info:
        find_executable(str(tmp_path), ())
    assert not isinstance(info.value, ExecutableNotFound)
    assert str(info.value) == f'exec: "{tmp_path}": is a directory'


def test_name_with_slash_not_executable(tmp_path: Path) -> None:
    prog = make(tmp_path / "prog", 0o644)
    with pytest.raises(ProcessSetupError) as info:
        find_executable(str(prog), ())
    assert not isinstance(info.value, ExecutableNotFound)
    assert str(info.value) == f'exec: "{prog}": permission denied'


# --- limits, user switch, execve (system calls faked) -------------------------------------


def refuse_setrlimit(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(number: int, limits: tuple[int, int]) -> None:
        raise ValueError("not allowed to raise maximum limit")

    monkeypatch.setattr(execute.resource, "setrlimit", refuse)


def test_apply_limits_error_explains_the_hard_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_setrlimit(monkeypatch)
    config = process_config(rlimits=((resource.RLIMIT_CORE, 1, 2),))
    with pytest.raises(ProcessSetupError) as info:
        apply_limits(config)
    message = str(info.value)
    assert message.startswith("process.rlimits: cannot set RLIMIT_CORE to 1/2: not allowed")
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    assert f"the runtime's hard limit is {hard}" in message
    assert "CAP_SYS_RESOURCE" in message


def test_apply_limits_error_names_nofile(monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_setrlimit(monkeypatch)
    config = process_config(rlimits=((resource.RLIMIT_NOFILE, 1048576, 1048576),))
    with pytest.raises(ProcessSetupError) as info:
        apply_limits(config)
    assert str(info.value).startswith(
        "process.rlimits: cannot set RLIMIT_NOFILE to 1048576/1048576"
    )


def test_apply_limits_oom_score_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: str, mode: str) -> None:
        assert path == "/proc/self/oom_score_adj"
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(execute, "open", denied, raising=False)
    with pytest.raises(ProcessSetupError, match=r"^process.oomScoreAdj: cannot set -999: Perm"):
        apply_limits(process_config(oom_score_adj=-999))


def test_apply_limits_sets_each(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, tuple[int, int]]] = []
    monkeypatch.setattr(execute.resource, "setrlimit", lambda n, lim: calls.append((n, lim)))
    apply_limits(
        process_config(rlimits=((resource.RLIMIT_NOFILE, 10, 20), (resource.RLIMIT_CORE, 0, 0)))
    )
    assert calls == [(resource.RLIMIT_NOFILE, (10, 20)), (resource.RLIMIT_CORE, (0, 0))]


def test_switch_user_order(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = RecordingSyscalls()
    monkeypatch.setattr(os, "setresgid", lambda *ids: fake.calls.append(("setresgid", *ids)))
    monkeypatch.setattr(os, "setresuid", lambda *ids: fake.calls.append(("setresuid", *ids)))
    monkeypatch.setattr(os, "umask", lambda mask: fake.calls.append(("umask", mask)))
    monkeypatch.setattr(os, "chdir", lambda path: fake.calls.append(("chdir", path)))
    switch_user(fake, process_config(umask=0o027), setgroups_allowed=True)
    assert fake.calls == [
        ("setgroups", [5, 6]),
        ("setresgid", 100, 100, 100),
        ("setresuid", 1000, 1000, 1000),  # root dropped last
        ("umask", 0o027),
        ("chdir", "/work"),
        ("prctl", PR_SET_NO_NEW_PRIVS, 1, 0),
    ]


def test_switch_user_with_capabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = RecordingSyscalls()
    monkeypatch.setattr(capabilities, "_last_cap", lambda: 2)
    monkeypatch.setattr(os, "setresgid", lambda *ids: fake.calls.append(("setresgid", *ids)))
    monkeypatch.setattr(os, "setresuid", lambda *ids: fake.calls.append(("setresuid", *ids)))
    monkeypatch.setattr(os, "umask", lambda mask: fake.calls.append(("umask", mask)))
    monkeypatch.setattr(os, "chdir", lambda path: fake.calls.append(("chdir", path)))
    caps = CapabilitySets(
        bounding=0b010, effective=0b010, inheritable=0, permitted=0b010, ambient=0
    )
    switch_user(fake, process_config(capabilities=caps), setgroups_allowed=False)
    assert fake.calls == [
        ("prctl", PR_CAPBSET_DROP, 0, 0),  # bounding dropped while still root
        ("prctl", PR_CAPBSET_DROP, 2, 0),
        ("prctl", PR_SET_KEEPCAPS, 1, 0),  # permitted kept across the uid switch
        ("setresgid", 100, 100, 100),
        ("setresuid", 1000, 1000, 1000),
        ("capset", 0b010, 0b010, 0),
        ("prctl", PR_SET_KEEPCAPS, 0, 0),
        ("umask", 0o022),
        ("chdir", "/work"),
        ("prctl", PR_SET_NO_NEW_PRIVS, 1, 0),
    ]


def test_switch_user_without_setgroups_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = RecordingSyscalls()
    for name in ("setresgid", "setresuid"):
        monkeypatch.setattr(os, name, lambda *ids: None)
    masks: list[int] = []
    monkeypatch.setattr(os, "umask", masks.append)
    monkeypatch.setattr(os, "chdir", lambda path: None)
    switch_user(fake, process_config(no_new_privileges=False), setgroups_allowed=False)
    assert fake.calls == []
    assert masks == [0o022]


def test_switch_user_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*ids: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "setresgid", denied)
    with pytest.raises(
        ProcessSetupError, match=r"^process.user: cannot switch to uid 1000 gid 100"
    ):
        switch_user(RecordingSyscalls(), process_config(), setgroups_allowed=False)


def test_switch_user_bad_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("setresgid", "setresuid"):
        monkeypatch.setattr(os, name, lambda *ids: None)
    monkeypatch.setattr(os, "umask", lambda mask: 0)
    missing = str(tmp_path / "missing")
    with pytest.raises(ProcessSetupError, match=f"^process.cwd: '{missing}': No such file"):
        switch_user(RecordingSyscalls(), process_config(cwd=missing), setgroups_allowed=False)


def test_exec_process_env_and_args(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []
    monkeypatch.setattr(os, "execve", lambda path, args, env: seen.extend([path, args, env]))
    exec_process("/bin/prog", process_config())
    assert seen == ["/bin/prog", ["prog", "arg"], {"PATH": "/bin", "A": "b=c", "EMPTY": ""}]


def test_exec_process_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: str, args: list[str], env: dict[str, str]) -> None:
        raise OSError(errno.ENOEXEC, "Exec format error")

    monkeypatch.setattr(os, "execve", fail)
    with pytest.raises(ProcessSetupError, match=r'^exec: "prog": Exec format error$'):
        exec_process("/bin/prog", process_config())
