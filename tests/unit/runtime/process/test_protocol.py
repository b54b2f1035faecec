"""cove.runtime.process.protocol: typed messages over a SOCK_SEQPACKET socketpair."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from cove.runtime.process.protocol import (
    CgroupJoined,
    Commit,
    ConsoleReady,
    Failure,
    InitPid,
    Message,
    PeerGone,
    ProtocolError,
    Ready,
    SetupFailed,
    UsernsMapped,
    UsernsRequest,
    expect,
    pack_fds,
    receive,
    send,
    unpack_fds,
)

Pair = tuple[socket.socket, socket.socket]

MESSAGES: list[Message] = [
    UsernsRequest(),
    UsernsMapped(),
    InitPid(4242),
    CgroupJoined(),
    ConsoleReady(),
    Ready(),
    Commit(),
    Failure('exec: "nope": executable file not found in $PATH ✗'),
]


@pytest.fixture
def pair() -> Iterator[Pair]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield a, b
    a.close()
    b.close()


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.kind)
def test_each_message_round_trips(pair: Pair, message: Message) -> None:
    a, b = pair
    send(a, message)
    received, fds = receive(b)
    assert received == message
    assert type(received) is type(message)
    assert fds == []


def test_kinds_are_distinct() -> None:
    assert len({m.kind for m in MESSAGES}) == len(MESSAGES)


def test_one_datagram_per_message(pair: Pair) -> None:
    a, b = pair
    send(a, InitPid(1))
    send(a, Ready())
    assert receive(b)[0] == InitPid(1)
    assert receive(b)[0] == Ready()


def test_wire_format_is_json(pair: Pair) -> None:
    a, b = pair
    send(a, InitPid(7))
    assert b.recv(1024) == b'{"kind": "init-pid", "pid": 7}'


def test_fd_passes_through_scm_rights(pair: Pair) -> None:
    a, b = pair
    read_end, write_end = os.pipe()
    try:
        send(a, ConsoleReady(), [read_end])
        message, fds = receive(b)
        assert message == ConsoleReady()
        assert len(fds) == 1
        assert fds[0] != read_end
        os.write(write_end, b"through the socket")
        assert os.read(fds[0], 100) == b"through the socket"
        os.close(fds[0])
    finally:
        os.close(read_end)
        os.close(write_end)


def test_several_fds(pair: Pair) -> None:
    a, b = pair
    pipes = [os.pipe() for _ in range(3)]
    try:
        send(a, Ready(), [r for r, _ in pipes])
        _, fds = receive(b)
        assert len(fds) == 3
        for index, ((_, w), fd) in enumerate(zip(pipes, fds, strict=True)):
            os.write(w, bytes([index]))
            assert os.read(fd, 1) == bytes([index])
            os.close(fd)
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


def test_expect_returns_the_expected(pair: Pair) -> None:
    a, b = pair
    send(a, InitPid(99))
    message, fds = expect(b, InitPid)
    assert isinstance(message, InitPid)
    assert message.pid == 99
    assert fds == []


def test_failure_via_expect_raises_setup_failed(pair: Pair) -> None:
    a, b = pair
    send(a, Failure("rootfs: cannot mount /proc"))
    with pytest.raises(SetupFailed, match=r"^rootfs: cannot mount /proc$"):
        expect(b, Ready)


def test_unexpected_type_raises_protocol_error(pair: Pair) -> None:
    a, b = pair
    send(a, Commit())
    with pytest.raises(ProtocolError, match=r"expected 'ready', got 'commit'") as info:
        expect(b, Ready)
    assert not isinstance(info.value, PeerGone)


def test_unexpected_type_closes_passed_fds(pair: Pair) -> None:
    a, b = pair
    read_end, write_end = os.pipe()
    try:
        send(a, Commit(), [read_end])
        before = open_fds()
        with pytest.raises(ProtocolError):
            expect(b, Ready)
        assert open_fds() == before
    finally:
        os.close(read_end)
        os.close(write_end)


def test_failure_closes_passed_fds(pair: Pair) -> None:
    a, b = pair
    read_end, write_end = os.pipe()
    try:
        send(a, Failure("boom"), [read_end])
        before = open_fds()
        with pytest.raises(SetupFailed):
            expect(b, Ready)
        assert open_fds() == before
    finally:
        os.close(read_end)
        os.close(write_end)


def test_closed_peer_raises_peer_gone(pair: Pair) -> None:
    a, b = pair
    a.close()
    with pytest.raises(PeerGone, match=r"exited during setup"):
        receive(b)
    with pytest.raises(ProtocolError):  # PeerGone is a ProtocolError
        expect(b, Ready)


def test_peer_gone_after_last_message(pair: Pair) -> None:
    a, b = pair
    send(a, Ready())
    a.close()
    assert receive(b)[0] == Ready()
    with pytest.raises(PeerGone):
        receive(b)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00garbage",
        b"not json",
        b"[1, 2]",
        b'"just a string"',
        b"{}",
        b'{"kind": "no-such-kind"}',
        b'{"kind": "ready", "extra": 1}',
        b'{"kind": "init-pid"}',
        b'{"pid": 5}',
    ],
)
def test_garbage_raises_protocol_error(pair: Pair, raw: bytes) -> None:
    a, b = pair
    a.send(raw)
    with pytest.raises(ProtocolError, match=r"^malformed message from the container process"):
        receive(b)


def test_garbage_closes_passed_fds(pair: Pair) -> None:
    a, b = pair
    read_end, write_end = os.pipe()
    try:
        a.sendmsg([b"garbage"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, pack_fds([read_end]))])
        before = open_fds()
        with pytest.raises(ProtocolError):
            receive(b)
        assert open_fds() == before
    finally:
        os.close(read_end)
        os.close(write_end)


def test_pack_unpack_fds() -> None:
    assert unpack_fds(pack_fds([3, 4, 1000])) == [3, 4, 1000]
    assert unpack_fds(pack_fds([7]) + b"\x00\x00") == [7]  # trailing padding ignored
    assert unpack_fds(b"") == []
