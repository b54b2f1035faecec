"""host_info: id lists and probing this host (read-only, no root needed)."""

from __future__ import annotations

import resource

import pytest

from cove.engine.host_info import UNLIMITED, HostInfo, host_devices, parse_id_list


def test_parse_id_list() -> None:
    assert parse_id_list("0-3,8,10-11") == {0, 1, 2, 3, 8, 10, 11}
    assert parse_id_list("") == set()
    for text in ("a", "3-1", "1-", "-2"):
        with pytest.raises(ValueError):
            parse_id_list(text)


def test_probe_reads_this_process() -> None:
    host = HostInfo.probe()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert host.rlimit_hard["nofile"] == (UNLIMITED if hard == resource.RLIM_INFINITY else hard)
    assert host.cpus_online
    assert "CAP_CHOWN" in host.capabilities or not host.capabilities
    assert host.kernel >= (3, 0)


def test_host_devices_skip_the_containers_own() -> None:
    paths = [path for path, _info in host_devices()]
    assert "/dev/null" in paths
    assert "/dev/console" not in paths and "/dev/ptmx" not in paths
    assert not any(p.startswith("/dev/pts/") for p in paths)
