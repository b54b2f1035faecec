"""The registry client's URL helpers agree with urllib.parse (which a pull does not load)
and `is_loopback` with ipaddress."""

from __future__ import annotations

import ipaddress
import random
from urllib.parse import quote, urljoin, urlsplit

from cove.image.registry import client

PIECES = ["http://", "https://", "HTTP://", "ftp://", "/", "//", "v2", ".", "..", "?", "#",
          "a=b", "127.0.0.1:5000", "[::1]:5000", "host", "%2F", ":", "@", "x y", "",
          "sha256:ab", "\n"]  # fmt: skip
BASES = ["http://127.0.0.1:5000/", "https://reg.example/v2/x", "http://h/", "http://[::1]:5/"]


def test_url_helpers_match_urllib() -> None:
    rng = random.Random(7)
    for _ in range(20000):
        url = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 7)))
        try:
            parts = urlsplit(url)
            expected: object = (parts.scheme, parts.netloc, parts.path, parts.query)
        except ValueError:
            expected = ValueError
        try:
            got: object = client._urlsplit(url)
        except ValueError:
            got = ValueError
        assert got == expected, url
        base = rng.choice([*BASES, url])
        try:
            joined: object = urljoin(base, url)
        except ValueError:
            joined = ValueError
        try:
            mine: object = client._urljoin(base, url)
        except ValueError:
            mine = ValueError
        assert mine == joined, (base, url)
        assert client._quote(url) == quote(url, safe=":")


def test_is_loopback_matches_ipaddress() -> None:
    for host in ["127.0.0.1", "127.1", "127.0.0.01", "0127.0.0.1", "127.0.0.256", "1.2.3.4",
                 "127.255.255.255", "127.0.0.1.", "١٢٧.0.0.1", "127.0.0.+1", "::1", "[::1]",
                 "[::1]:5000", "127.0.0.1:5000", "example.com", ""]:  # fmt: skip
        name = client._host_of(host)
        try:
            expected = ipaddress.ip_address(name).is_loopback
        except ValueError:
            expected = False
        assert client.is_loopback(host) == expected, host
    assert client.is_loopback("localhost:5000") and client.is_loopback("a.localhost")
