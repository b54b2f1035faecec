"""cove.image.build.mounts: `RUN --mount=` specifications."""

from __future__ import annotations

import pytest

from cove.image.build.instructions import Mount
from cove.image.build.mounts import MountSpecError, parse_mount, parse_size


def test_bind_defaults_to_read_only() -> None:
    assert parse_mount("target=/src") == Mount(type="bind", target="/src", readonly=True)
    assert parse_mount("type=bind,target=/src,rw").readonly is False
    assert parse_mount("type=bind,target=/src,readwrite=true").readonly is False
    assert parse_mount("type=bind,target=/src,rw=false").readonly is True


def test_cache_is_writable_and_shared() -> None:
    mount = parse_mount("type=cache,target=/c")
    assert (mount.readonly, mount.sharing, mount.id) == (False, "shared", "")
    assert parse_mount("type=cache,target=/c,ro").readonly is True
    assert parse_mount("type=cache,target=/c,readonly=true").readonly is True


def test_aliases_and_case() -> None:
    mount = parse_mount("Type=bind,DST=/d,src=s,From=stage")
    assert (mount.target, mount.source, mount.from_) == ("/d", "s", "stage")
    assert parse_mount("type=bind,destination=/d").target == "/d"


def test_all_cache_options() -> None:
    mount = parse_mount(
        "type=cache,id=x,target=/c,sharing=private,from=img,source=/s,mode=0700,uid=10,gid=20"
    )
    assert mount == Mount(
        type="cache",
        target="/c",
        source="/s",
        from_="img",
        id="x",
        sharing="private",
        mode=0o700,
        uid=10,
        gid=20,
    )


def test_tmpfs_size() -> None:
    assert parse_mount("type=tmpfs,target=/t,size=1g").size == 1 << 30
    assert parse_mount("type=tmpfs,target=/t").size is None


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1 << 20),
        ("512k", 512 << 10),
        ("64m", 64 << 20),
        ("2GiB", 2 << 30),
        ("1.5m", 1572864),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_secret_and_ssh() -> None:
    secret = parse_mount("type=secret,id=npm,target=/run/secrets/npm,required,env=NPM_TOKEN")
    assert (secret.type, secret.id, secret.required, secret.env) == (
        "secret",
        "npm",
        True,
        "NPM_TOKEN",
    )
    assert parse_mount("type=ssh").type == "ssh"


def test_quoted_field_with_a_comma() -> None:
    assert parse_mount('type=bind,"source=a,b",target=/x').source == "a,b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type=volume,target=/x", "unsupported mount type 'volume'"),
        ("type=cache", "needs a target"),
        ("type=tmpfs,target=/t,from=x", "does not take from="),
        ("type=bind,target=/t,sharing=locked", "does not take sharing="),
        ("type=bind,target=/t,id=x", "does not take id="),
        ("type=cache,target=/t,size=1m", "does not take size="),
        ("type=cache,target=/t,sharing=exclusive", "unsupported sharing value"),
        ("type=cache,target=/t,mode=999", "expected an octal number"),
        ("type=cache,target=/t,uid=x", "expected a number"),
        ("type=cache,target=/t,uid=-1", "negative"),
        ("type=cache,target=/t,what=1", "unexpected key 'what'"),
        ("type=cache,target=/t,bare", "unexpected key 'bare'"),
        ("type=cache,target=/t,ro=maybe", "expected true or false"),
        ("type=tmpfs,target=/t,size=lots", "invalid size"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(MountSpecError, match=message):
        parse_mount(text)


def test_deferred_keeps_variable_numbers_unset() -> None:
    mount = parse_mount("type=cache,target=$T,uid=$UID,mode=${M},sharing=$S", deferred=True)
    assert (mount.target, mount.uid, mount.mode, mount.sharing) == ("$T", None, None, "shared")
    with pytest.raises(MountSpecError):
        parse_mount("type=cache,target=$T,uid=$UID")


def test_expand_applies_to_values() -> None:
    values = {"$T": "/cache", "$UID": "1000"}
    mount = parse_mount("type=cache,target=$T,uid=$UID", expand=lambda v: values.get(v, v))
    assert (mount.target, mount.uid) == ("/cache", 1000)
