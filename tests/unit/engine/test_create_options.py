"""create_options: the size, signal and --mount parsers."""

from __future__ import annotations

import pytest

from cove.engine.create_options import MountOption, parse_bytes, parse_mount, parse_signal
from cove.errors import InvalidArgument


@pytest.mark.parametrize(
    "text, expected",
    [("1024", 1024), ("10k", 10240), ("10kb", 10240), ("512m", 512 << 20), ("1.5g", 3 << 29),
     ("2GiB", 2 << 30), ("1 t", 1 << 40), (64, 64)],
)  # fmt: skip
def test_parse_bytes(text: str | int, expected: int) -> None:
    assert parse_bytes(text, "--memory") == expected


@pytest.mark.parametrize("text", ["5x", "", "-1", "m", "1.2.3g", -5])
def test_parse_bytes_rejects(text: str | int) -> None:
    with pytest.raises(InvalidArgument, match="--memory"):
        parse_bytes(text, "--memory")


def test_parse_signal() -> None:
    assert parse_signal("SIGTERM", "--stop-signal") == "SIGTERM"
    assert parse_signal("hup", "--stop-signal") == "SIGHUP"
    assert parse_signal("9", "--stop-signal") == "SIGKILL"
    assert parse_signal("SIGRTMIN+3", "--stop-signal") == "SIGRTMIN+3"
    for text in ("SIGFOO", "999"):
        with pytest.raises(InvalidArgument, match="--stop-signal"):
            parse_signal(text, "--stop-signal")


def test_parse_mount() -> None:
    assert parse_mount("type=bind,source=/a,target=/b,readonly") == MountOption(
        type="bind", source="/a", target="/b", read_only=True
    )
    mount = parse_mount("type=bind,src=/a,dst=/b,ro=false,bind-propagation=rshared")
    assert (mount.read_only, mount.propagation) == (False, "rshared")
    mount = parse_mount("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=700")
    assert (mount.tmpfs_size, mount.tmpfs_mode) == (1 << 20, 0o700)
    mount = parse_mount(
        "source=data,target=/d,volume-nocopy,volume-label=a=1,volume-label=b=2,"
        "volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-driver=local"
    )
    assert (mount.type, mount.source, mount.volume_nocopy) == ("volume", "data", True)
    assert mount.volume_labels == {"a": "1", "b": "2"}
    assert mount.volume_options == {"type": "tmpfs", "device": "tmpfs"}
    assert parse_mount("type=volume,target=/anon").source == ""


@pytest.mark.parametrize(
    "text, words",
    [
        ("source=v,target=/x,bind-propagation=rshared", "cannot be used with type=volume"),
        ("type=bind,source=/a,target=/b,volume-nocopy", "cannot be used with type=bind"),
        ("type=volume,target=/b,volume-opt", "KEY=VALUE"),
        ("type=bind,source=/a", "target is required"),
        ("type=bind,target=/a", "source is required"),
        ("type=tmpfs,source=x,target=/a", "no source"),
        ("type=bind,source=/a,target=/b,readonly=maybe", "true or false"),
        ("type=bind,source=/a,target=/b,bind-propagation=up", "bind-propagation"),
        ("type=tmpfs,target=/b,tmpfs-mode=9z", "octal"),
        ("type=bind,source=/a,target=/b,color=red", "unknown key"),
        ("type=cephfs,target=/b", "unknown type"),
    ],
)
def test_parse_mount_rejects(text: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match="--mount") as info:
        parse_mount(text)
    assert words in str(info.value)
