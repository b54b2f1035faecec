"""A network namespace of a test's own, linked to the host, with a server in it: the
"upstream" of the network tests and the package repository of the seed test."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextmanager
def serving_namespace(
    ns: str,
    links: tuple[str, str],
    addresses: tuple[str, str],
    server: Sequence[str],
    port: int,
    *,
    quiet: bool = False,
    not_listening: str | None = None,
) -> Iterator[None]:
    """The namespace `ns`, linked to the host by a veth pair (`links`: the host's end,
    then the namespace's; `addresses`: their /30 addresses, in the same order), running
    `server` (an argv, run in `ns` with `sys.executable`; its output discarded when
    `quiet`) until the block ends. It waits up to 10 s for the server to accept
    connections on the namespace's address and `port`, then fails with `not_listening`
    when that is given, or goes on. Everything is removed afterwards."""
    here, there = links
    host_address, peer_address = addresses
    _ip("netns", "add", ns)
    process = None
    try:
        _ip("link", "add", here, "type", "veth", "peer", "name", there, "netns", ns)
        _ip("addr", "add", f"{host_address}/30", "dev", here)
        _ip("link", "set", here, "up")
        _ip("-n", ns, "addr", "add", f"{peer_address}/30", "dev", there)
        _ip("-n", ns, "link", "set", there, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        output = subprocess.DEVNULL if quiet else None
        process = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, *server], stdout=output, stderr=output
        )
        probe = f"import socket; socket.create_connection(('{peer_address}', {port}), timeout=1)"
        deadline = time.monotonic() + 10
        while subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", probe],
                             capture_output=True).returncode != 0:  # fmt: skip
            if time.monotonic() > deadline:
                assert not_listening is None, not_listening
                break
            time.sleep(0.05)
        yield
    finally:
        if process is not None:
            process.kill()  # `ip netns exec` execs python: this is the server itself
            process.wait()
        subprocess.run(["ip", "link", "del", here], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
