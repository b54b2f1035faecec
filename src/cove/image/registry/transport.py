"""A small HTTP/1.1 client connection over `socket`, for the registry client.

What the distribution API needs and no more: one request at a time on a kept-alive
connection; request bodies as bytes, a binary stream or an iterable of chunks (sent with
`Transfer-Encoding: chunked` when the caller gives no Content-Length); response bodies
delimited by Content-Length, by chunked encoding, or by the end of the connection; no
body for HEAD, 1xx, 204 and 304. TLS goes through `ssl` (and `socket`), imported only for
an https connection: a plain-HTTP (loopback) connection is made with `_socket`, the C
module under `socket`, so that a pull sends its first request without loading `socket`,
`selectors` and `enum` first. Redirects, authentication and retries are the caller's
(`cove.image.registry.client`).

Errors are OSErrors: `Disconnected` (a ConnectionError) when the server closes before a
complete response (on a kept-alive connection: it timed it out meanwhile), ssl.SSLError
for TLS failures, TimeoutError, and `ProtocolError` for a malformed response.
"""

from __future__ import annotations

import _socket
import io

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterable, Iterator
    from typing import BinaryIO

    Payload = bytes | bytearray | memoryview | BinaryIO | Iterable[bytes]

#: the most header bytes (status line included) we accept in a response
MAX_HEADER_BYTES = 1 << 18
MAX_HEADER_LINES = 200
#: read buffer of the socket's file object; bigger reads go straight into the caller's buffer
BUFFER_SIZE = 1 << 15
SEND_CHUNK = 1 << 20


class Disconnected(ConnectionError):
    """The server closed the connection before a complete response."""


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.x as we know it."""


class Headers:
    """Response headers: case-insensitive lookups, repeated fields kept in order."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[str, str]] | None = None) -> None:
        self._fields: list[tuple[str, str]] = fields or []

    def get(self, name: str, default: str | None = None) -> str | None:
        key = name.lower()
        for field, value in self._fields:
            if field.lower() == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [value for field, value in self._fields if field.lower() == key]

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"


class Connection:
    """One connection to `host:port`, opened on first use; `tls` wraps it with `ssl`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float | None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tls = tls
        self.sock: _socket.socket | None = None
        self._reader: BinaryIO | None = None
        self._response: RawResponse | None = None

    def connect(self) -> None:
        host: str | bytes = self.host
        if self.host.isascii():
            host = self.host.encode("ascii")  # (a str host would load the idna codec)
        if self.tls is None:
            sock = _create_connection(host, self.port, self.timeout)
            try:
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            except BaseException:
                sock.close()
                raise
            self.sock = sock
            self._reader = io.BufferedReader(_SocketReader(sock), BUFFER_SIZE)
            return
        import socket

        tcp = socket.create_connection((host, self.port), self.timeout)  # type: ignore[arg-type]
        try:
            tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.tls.wrap_socket(tcp, server_hostname=self.host)
        except BaseException:
            tcp.close()
            raise
        self.sock = tls
        self._reader = tls.makefile("rb", buffering=BUFFER_SIZE)  # type: ignore[assignment]

    def close(self) -> None:
        reader, sock = self._reader, self.sock
        self._reader = self.sock = None
        self._response = None
        if reader is not None:
            reader.close()
        if sock is not None:
            sock.close()

    @property
    def is_open(self) -> bool:
        return self.sock is not None

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Payload | None = None,
        sent: Callable[[], None] | None = None,
    ) -> RawResponse:
        """Send a request and read the response's head; the body is left to read. `sent()`
        is called once the request is out, before waiting for the answer."""
        if self._response is not None and not self._response.done:
            raise ProtocolError(f"{self.host}: a request while the last response is unread")
        if self.sock is None:
            self.connect()
        sock = self.sock
        assert sock is not None
        names = {name.lower() for name in headers}
        lines = [f"{method} {target} HTTP/1.1"]
        if "host" not in names:
            lines.append(f"Host: {_host_header(self.host, self.port, self.tls is not None)}")
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        chunked = False
        if body is None or isinstance(body, bytes | bytearray | memoryview):
            if body is not None and "content-length" not in names:
                lines.append(f"Content-Length: {len(body)}")
        elif "content-length" not in names:
            lines.append("Transfer-Encoding: chunked")
            chunked = True
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if body is None:
            sock.sendall(head)
        elif isinstance(body, bytes | bytearray | memoryview):
            if len(body) <= SEND_CHUNK:
                sock.sendall(head + bytes(body))
            else:
                sock.sendall(head)
                sock.sendall(body)
        else:
            sock.sendall(head)
            for chunk in _body_chunks(body):
                if not chunk:
                    continue
                if chunked:
                    sock.sendall(b"%x\r\n" % len(chunk) + bytes(chunk) + b"\r\n")
                else:
                    sock.sendall(chunk)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        if sent is not None:
            sent()
        self._response = self._read_response(method)
        return self._response

    # --- response head --------------------------------------------------------------------

    def _read_response(self, method: str) -> RawResponse:
        reader = self._reader
        assert reader is not None
        while True:
            line = reader.readline(MAX_HEADER_BYTES)
            if not line:
                raise Disconnected(f"{self.host}: connection closed without a response")
            version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
            code, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
                raise ProtocolError(f"{self.host}: bad status line {line[:100]!r}")
            status = int(code)
            headers = self._read_headers(reader)
            if 100 <= status < 200 and status != 101:
                continue  # informational (100 Continue): the real answer follows
            break
        response = RawResponse(self, status, reason.strip(), headers)
        response._setup(method, version)
        return response

    def _read_headers(self, reader: BinaryIO) -> Headers:
        fields: list[tuple[str, str]] = []
        total = 0
        while True:
            line = reader.readline(MAX_HEADER_BYTES)
            total += len(line)
            if not line:
                raise Disconnected(f"{self.host}: connection closed in the response headers")
            if line in (b"\r\n", b"\n"):
                return Headers(fields)
            if total > MAX_HEADER_BYTES or len(fields) > MAX_HEADER_LINES:
                raise ProtocolError(f"{self.host}: response headers too long")
            text = line.decode("latin-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and fields:  # obsolete line folding
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {text.strip()}")
                continue
            name, colon, value = text.partition(":")
            if not colon:
                raise ProtocolError(f"{self.host}: bad header line {line[:100]!r}")
            fields.append((name.strip(), value.strip()))


class RawResponse:
    """A response's status and headers, and its body as a stream (read it to its end to
    keep the connection for the next request)."""

    def __init__(self, conn: Connection, status: int, reason: str, headers: Headers) -> None:
        self.conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        #: bytes of the body still to read (Content-Length), or of the current chunk
        self._left = 0
        self._chunked = False
        self._until_close = False
        self.will_close = False
        self.done = False

    def _setup(self, method: str, version: str) -> None:
        connection = (self.headers.get("Connection") or "").lower()
        self.will_close = "close" in connection or (
            version == "HTTP/1.0" and "keep-alive" not in connection
        )
        if method == "HEAD" or self.status in (204, 304) or self.status < 200:
            self._finish()
            return
        encoding = (self.headers.get("Transfer-Encoding") or "").lower()
        if encoding and encoding != "identity":
            if encoding.rsplit(",", 1)[-1].strip() != "chunked":
                raise ProtocolError(f"{self.conn.host}: unsupported transfer coding {encoding!r}")
            self._chunked = True
            self._left = -1  # the next chunk's size line is due
            return
        length = self.headers.get("Content-Length")
        if length is not None:
            try:
                self._left = int(length.split(",")[0])
            except ValueError:
                raise ProtocolError(f"{self.conn.host}: bad Content-Length {length!r}") from None
            if self._left < 0:
                raise ProtocolError(f"{self.conn.host}: bad Content-Length {length!r}")
            if self._left == 0:
                self._finish()
            return
        self._until_close = True
        self.will_close = True

    @property
    def length(self) -> int | None:
        """Bytes of the body not read yet, when known."""
        if self.done:
            return 0
        return None if self._chunked or self._until_close else self._left

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read up to len(buffer) body bytes (at least one unless the body ended)."""
        if self.done or not len(buffer):
            return 0
        reader = self.conn._reader
        if reader is None:
            raise Disconnected(f"{self.conn.host}: connection closed")
        view = memoryview(buffer)
        if self._chunked and self._left <= 0:
            if not self._next_chunk(reader):
                return 0
        if self._until_close:
            count = reader.readinto1(view)  # type: ignore[attr-defined]
            if not count:
                self._finish()
            return int(count)
        want = min(len(view), self._left)
        count = reader.readinto1(view[:want])  # type: ignore[attr-defined]
        if not count:
            raise Disconnected(
                f"{self.conn.host}: connection closed with {self._left} body bytes to come"
            )
        self._left -= count
        if self._left == 0:
            if self._chunked:
                self._end_chunk(reader)
            else:
                self._finish()
        return int(count)

    def read(self, amount: int | None = None) -> bytes:
        """Up to `amount` bytes (fewer only at the body's end); all that is left by default."""
        out = bytearray()
        buffer = bytearray(min(amount, 1 << 20) if amount is not None else 1 << 16)
        while not self.done and (amount is None or len(out) < amount):
            want = len(buffer) if amount is None else min(len(buffer), amount - len(out))
            count = self.readinto(memoryview(buffer)[:want])
            if not count:
                break
            out += memoryview(buffer)[:count]
        return bytes(out)

    def close(self) -> None:
        """Stop reading: the connection is closed unless the body was read to its end."""
        if not self.done:
            self.done = True
            self.conn.close()
        elif self.will_close:
            self.conn.close()

    @property
    def reusable(self) -> bool:
        return self.done and not self.will_close and self.conn.is_open

    def _finish(self) -> None:
        self.done = True
        self._left = 0

    def _next_chunk(self, reader: BinaryIO) -> bool:
        """Read a chunk-size line; False at the last chunk (trailers skipped)."""
        line = reader.readline(1024)
        if not line:
            raise Disconnected(f"{self.conn.host}: connection closed in a chunked body")
        text = line.split(b";", 1)[0].strip()
        try:
            size = int(text, 16)
        except ValueError:
            raise ProtocolError(f"{self.conn.host}: bad chunk size {line[:40]!r}") from None
        if size < 0:
            raise ProtocolError(f"{self.conn.host}: bad chunk size {line[:40]!r}")
        if size == 0:
            self.conn._read_headers(reader)  # trailers, up to the empty line
            self._finish()
            return False
        self._left = size
        return True

    def _end_chunk(self, reader: BinaryIO) -> None:
        if reader.readline(3) not in (b"\r\n", b"\n"):
            raise ProtocolError(f"{self.conn.host}: chunk not followed by CRLF")
        self._left = -1


def _create_connection(host: str | bytes, port: int, timeout: float | None) -> _socket.socket:
    """`socket.create_connection((host, port), timeout)` on `_socket`: the first address
    that accepts; the last error when none does."""
    error: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock: _socket.socket | None = None
        try:
            sock = _socket.socket(family, kind, proto)
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as err:
            error = err
            if sock is not None:
                sock.close()
    raise error or OSError("getaddrinfo returns an empty list")


class _SocketReader(io.RawIOBase):
    """The raw side of a socket's file object (socket.SocketIO, reading only): reads go
    straight to recv_into; after a timeout the connection is not read again."""

    def __init__(self, sock: _socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._timed_out = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._timed_out:
            raise OSError("cannot read from timed out object")
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            self._timed_out = True
            raise


def _body_chunks(body: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(body, "read", None)
    if read is not None:
        while chunk := read(SEND_CHUNK):
            yield chunk
        return
    yield from body


def _host_header(host: str, port: int, tls: bool) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if tls else 80) else f"{name}:{port}"


def split_netloc(netloc: str, default_port: int) -> tuple[str, int]:
    """`host[:port]` (IPv6 in brackets) as (host, port)."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise ValueError(f"bad address {netloc!r}")
        host, rest = netloc[1:end], netloc[end + 1 :]
        if not rest:
            return host, default_port
        if not rest.startswith(":") or not rest[1:].isdigit():
            raise ValueError(f"bad address {netloc!r}")
        return host, int(rest[1:])
    host, colon, port = netloc.rpartition(":")
    if not colon:
        return netloc, default_port
    if not port:
        return host, default_port
    if not port.isdigit():
        raise ValueError(f"bad port in {netloc!r}")
    return host, int(port)
