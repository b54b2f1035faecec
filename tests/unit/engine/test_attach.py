"""The attach protocol's client: frames both ways over a socketpair standing in for the
monitor, and `pump` copying output to fds until the exit frame."""

from __future__ import annotations

import os
import socket
import struct
import threading

from cove.engine import attach


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", kind, len(payload)) + payload


def client_pair() -> tuple[attach.AttachClient, socket.socket]:
    ours, theirs = socket.socketpair()
    client = attach.AttachClient.__new__(attach.AttachClient)
    client.sock = ours
    client._buffer = b""
    return client, theirs


def test_control_frames_are_docker_headers() -> None:
    client, monitor_side = client_pair()
    client.handoff()
    client.resize(40, 120)
    client.send(attach.STDIN_DATA, b"ls\n")
    data = monitor_side.recv(1024)
    assert data == frame(3, b"") + frame(2, b"40 120") + frame(0, b"ls\n")


def test_frames_split_across_reads_are_reassembled() -> None:
    client, monitor_side = client_pair()
    whole = frame(1, b"hello") + frame(2, b"oops")
    monitor_side.sendall(whole[:3])
    assert client.read_frames() == []
    monitor_side.sendall(whole[3:])
    assert client.read_frames() == [(1, b"hello"), (2, b"oops")]
    monitor_side.close()
    assert client.read_frames() is None


def test_pump_copies_streams_and_returns_the_exit_code() -> None:
    client, monitor_side = client_pair()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    received: list[bytes] = []

    def monitor() -> None:
        received.append(monitor_side.recv(1024))  # the stdin data
        monitor_side.sendall(frame(1, b"out\n") + frame(2, b"err\n") + frame(0xFF, b"42"))

    thread = threading.Thread(target=monitor)
    thread.start()
    os.write(in_w, b"input")
    code = attach.pump(client, stdin=in_r, stdout=out_w, stderr=err_w)
    thread.join()
    assert code == 42
    assert received == [frame(0, b"input")]
    assert os.read(out_r, 100) == b"out\n"
    assert os.read(err_r, 100) == b"err\n"
    for fd in (out_r, out_w, err_r, err_w, in_r, in_w):
        os.close(fd)


def test_pump_without_an_exit_frame_returns_none() -> None:
    client, monitor_side = client_pair()
    monitor_side.sendall(frame(1, b"partial"))
    monitor_side.close()
    out_r, out_w = os.pipe()
    assert attach.pump(client, stdin=None, stdout=out_w) is None
    assert os.read(out_r, 100) == b"partial"
    os.close(out_r)
    os.close(out_w)


def test_closed_stdin_sends_close_frame() -> None:
    client, monitor_side = client_pair()
    in_r, in_w = os.pipe()
    os.close(in_w)

    def monitor() -> None:
        assert monitor_side.recv(1024) == frame(1, b"")
        monitor_side.sendall(frame(0xFF, b"0"))

    thread = threading.Thread(target=monitor)
    thread.start()
    assert attach.pump(client, stdin=in_r, stdout=1) == 0
    thread.join()
    os.close(in_r)
