"""The cache of compiled seccomp programs (no filter is loaded here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.errors import ProcessSetupError
from cove.oci.seccomp import parse_seccomp
from cove.runtime import seccomp, seccomp_bpf
from cove.runtime.seccomp_bpf import BpfFilter, filter_for
from tests.lib.seccomp_profiles import deny


def test_second_use_of_a_profile_comes_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COVE_SECCOMP_CACHE", str(tmp_path))
    profile = parse_seccomp(deny("getcwd"))
    first = filter_for(profile)
    assert len(list(tmp_path.glob("*.bpf"))) == 1

    def no_compiling(_profile: object) -> None:
        raise AssertionError("compiled again instead of using the cache")

    monkeypatch.setattr(seccomp, "compile_filter", no_compiling)
    second = filter_for(profile)
    assert second.program == first.program and second.flags == first.flags


def test_different_profiles_get_different_programs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COVE_SECCOMP_CACHE", str(tmp_path))
    one = filter_for(parse_seccomp(deny("getcwd")))
    two = filter_for(parse_seccomp(deny("mkdir")))
    assert one.program != two.program
    assert len(list(tmp_path.glob("*.bpf"))) == 2


def test_a_corrupt_cache_entry_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVE_SECCOMP_CACHE", str(tmp_path))
    profile = parse_seccomp(deny("getcwd"))
    good = filter_for(profile).program
    (entry,) = tmp_path.glob("*.bpf")
    entry.write_bytes(b"\x01\x02\x03")  # not a whole instruction
    assert filter_for(profile).program == good
    assert entry.read_bytes() == good


def test_flags_map_to_the_kernel_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVE_SECCOMP_CACHE", str(tmp_path))
    data = deny("getcwd")
    data["flags"] = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"]
    assert filter_for(parse_seccomp(data)).flags == 1 | 2


def test_malformed_program_is_refused() -> None:
    with pytest.raises(ProcessSetupError, match="malformed"):
        BpfFilter(b"\x00" * 7, 0)
    with pytest.raises(ProcessSetupError, match="malformed"):
        BpfFilter(b"", 0)


def test_default_cache_location_is_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COVE_SECCOMP_CACHE", raising=False)
    monkeypatch.setattr(seccomp_bpf.os, "geteuid", lambda: 0)
    assert seccomp_bpf.cache_dir() == "/run/cove-seccomp-cache"
    monkeypatch.setattr(seccomp_bpf.os, "geteuid", lambda: 4242)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/nonexistent-runtime-dir")
    assert seccomp_bpf.cache_dir() == "/tmp/cove-seccomp-cache-4242"
