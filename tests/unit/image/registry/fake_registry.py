"""A tiny in-process registry and token server on 127.0.0.1 for the unit tests.

It speaks just enough of the distribution API: GET/HEAD manifests and blobs (with Range),
blob uploads (POST, PATCH, PUT, cross-repository mount), PUT manifests. Auth is off,
Bearer (its own /token endpoint issuing JWT-like tokens, optionally behind Basic
credentials) or Basic. Knobs let a test break a blob download midway, ignore Range, or
serve corrupt content.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class State:
    auth: str = "none"  # none | bearer | basic
    users: dict[str, str] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    repo_blobs: dict[str, set[str]] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    #: digest -> bytes after which the first GET of that blob drops the connection
    break_after: dict[str, int] = field(default_factory=dict)
    #: digest -> bytes after which the first GET of that blob stops sending (without closing)
    #: until `release` is set; then the connection is closed
    stall_after: dict[str, int] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    honour_range: bool = True
    corrupt: set[str] = field(default_factory=set)
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    issued: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        self.repo_blobs.setdefault(repo, set()).add(digest)
        return digest


class FakeRegistry:
    def __init__(self, auth: str = "none", users: dict[str, str] | None = None) -> None:
        self.state = State(auth=auth, users=dict(users or {}))
        state = self.state

        class Handler(_Handler):
            pass

        Handler.state = state
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    state: State
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- helpers ---

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorized(self, scope: str) -> bool:
        state = self.state
        given = self.headers.get("Authorization", "")
        if state.auth == "none":
            return True
        host = self.headers.get("Host")
        if state.auth == "basic":
            if given.startswith("Basic ") and _check_basic(given, state.users):
                return True
            self._error(
                401,
                "UNAUTHORIZED",
                "authentication required",
                {"WWW-Authenticate": 'Basic realm="fake"'},
            )
            return False
        if given.startswith("Bearer ") and given[7:] in state.issued:
            token = given[7:]
            granted = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["scope"]
            if not scope or all(s in granted for s in scope.split(" ")):
                return True
        challenge = f'Bearer realm="http://{host}/token",service="fake-registry"'
        if scope:
            challenge += f',scope="{scope}"'
        self._error(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge})
        return False

    # --- routes ---

    def do_GET(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_PATCH(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def _route(self) -> None:
        state = self.state
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path
        with state.lock:
            state.requests.append((self.command, self.path, dict(self.headers.items())))
        if path == "/token":
            return self._token(query)
        if path == "/v2/":
            if self._authorized(""):
                self._send(200, b"{}", {"Content-Type": "application/json"})
            return None
        if not path.startswith("/v2/"):
            return self._error(404, "NOT_FOUND", "no route")
        rest = path[4:]
        for kind in ("/manifests/", "/blobs/uploads/", "/blobs/"):
            if kind in rest:
                repo, _, arg = rest.partition(kind)
                break
        else:
            return self._error(404, "NOT_FOUND", "no route")
        action = "pull" if self.command in ("GET", "HEAD") else "pull,push"
        scope = f"repository:{repo}:{action}"
        if kind == "/blobs/uploads/" and "from" in query and state.auth == "bearer":
            scope += f" repository:{query['from'][0]}:pull"
        if not self._authorized(scope):
            self._body()
            return None
        if kind == "/manifests/":
            return self._manifest(repo, arg)
        if kind == "/blobs/":
            return self._blob(repo, arg)
        return self._upload(repo, arg, query)

    def _token(self, query: dict[str, list[str]]) -> None:
        state = self.state
        state.token_requests.append(query)
        given = self.headers.get("Authorization", "")
        if state.users:
            if not given.startswith("Basic ") or not _check_basic(given, state.users):
                return self._error(401, "UNAUTHORIZED", "bad credentials")
        scopes = " ".join(query.get("scope", []))
        payload = base64.urlsafe_b64encode(json.dumps({"scope": scopes}).encode()).decode()
        token = f"eyJhbGciOiJub25lIn0.{payload.rstrip('=')}.{uuid.uuid4().hex}"
        state.issued.add(token)
        self._send(
            200,
            json.dumps({"token": token, "expires_in": 300}).encode(),
            {"Content-Type": "application/json"},
        )
        return None

    def _manifest(self, repo: str, ref: str) -> None:
        state = self.state
        if self.command == "PUT":
            data = self._body()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            media_type = self.headers.get("Content-Type", "")
            state.manifests[(repo, ref)] = (data, media_type)
            state.manifests[(repo, digest)] = (data, media_type)
            return self._send(
                201,
                b"",
                {"Docker-Content-Digest": digest, "Location": f"/v2/{repo}/manifests/{digest}"},
            )
        found = state.manifests.get((repo, ref))
        if found is None:
            return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        data, media_type = found
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        return self._send(200, data, {"Content-Type": media_type, "Docker-Content-Digest": digest})

    def _blob(self, repo: str, digest: str) -> None:
        state = self.state
        data = state.blobs.get(digest)
        if data is None or digest not in state.repo_blobs.get(repo, set()):
            return self._error(404, "BLOB_UNKNOWN", "blob unknown")
        if digest in state.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        status = 200
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        wanted = self.headers.get("Range")
        if wanted and state.honour_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        stall = state.stall_after.pop(digest, None) if self.command == "GET" else None
        cut = state.break_after.pop(digest, None) if self.command == "GET" else None
        if stall is not None:
            cut = stall
        if cut is None:
            return self._send(status, body, headers)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:cut])
        self.wfile.flush()
        if stall is not None:
            state.release.wait(30)
        self.close_connection = True
        return None

    def _upload(self, repo: str, upload_id: str, query: dict[str, list[str]]) -> None:
        state = self.state
        if self.command == "POST":
            self._body()
            if "mount" in query:
                digest, source = query["mount"][0], query.get("from", [""])[0]
                if digest in state.repo_blobs.get(source, set()):
                    state.repo_blobs.setdefault(repo, set()).add(digest)
                    return self._send(201, b"", {"Location": f"/v2/{repo}/blobs/{digest}"})
            new = uuid.uuid4().hex
            state.uploads[new] = bytearray()
            return self._send(
                202, b"", {"Location": f"/v2/{repo}/blobs/uploads/{new}", "Range": "0-0"}
            )
        buffer = state.uploads.get(upload_id)
        if buffer is None:
            self._body()
            return self._error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
        data = self._body()
        if self.command == "PATCH":
            given = self.headers.get("Content-Range")
            if given is not None and int(given.split("-")[0]) != len(buffer):
                return self._error(416, "BLOB_UPLOAD_INVALID", "bad range")
            buffer.extend(data)
            return self._send(
                202,
                b"",
                {
                    "Location": f"/v2/{repo}/blobs/uploads/{upload_id}",
                    "Range": f"0-{len(buffer) - 1}",
                },
            )
        buffer.extend(data)
        digest = query.get("digest", [""])[0]
        actual = "sha256:" + hashlib.sha256(bytes(buffer)).hexdigest()
        if digest != actual:
            return self._error(400, "DIGEST_INVALID", "digest mismatch")
        del state.uploads[upload_id]
        state.add_blob(repo, bytes(buffer))
        return self._send(
            201, b"", {"Location": f"/v2/{repo}/blobs/{digest}", "Docker-Content-Digest": digest}
        )


def _check_basic(header: str, users: dict[str, str]) -> bool:
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return False
    return users.get(user) == password
