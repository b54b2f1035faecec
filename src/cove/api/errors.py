"""The one map from exceptions to HTTP statuses (Docker's): 404 no such object, 409
conflict, 400 bad parameter, 304 nothing to do, 500 anything else. Bodies are
`{"message": "..."}`, which the docker CLI prints and docker-py raises as APIError."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from cove import errors

log = logging.getLogger("cove.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(errors.CoveError):
    """An error raised by the API layer itself, with its status."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class BadParameter(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class NotModified(ApiError):
    """start of a running or stop of a stopped container: 304 and no body."""

    status = 304


class NotImplementedHere(ApiError):
    status = 501


_NOT_FOUND: tuple[type[BaseException], ...] = (
    errors.NoSuchContainer,
    errors.NoSuchImage,
    errors.NoSuchVolume,
    errors.NoSuchNetwork,
    errors.NoSuchBlob,
    errors.RegistryNotFound,
)
_CONFLICT: tuple[type[BaseException], ...] = (
    errors.NameConflict,
    errors.ContainerExists,
    errors.InvalidState,
    errors.VolumeInUse,
    errors.NetworkConflict,
    errors.NetworkInUse,
    errors.ContainerBusy,
)
_BAD_PARAMETER: tuple[type[BaseException], ...] = (
    errors.InvalidArgument,
    errors.InvalidReference,
    errors.InvalidSpec,
    errors.InvalidDigest,
    errors.AmbiguousContainer,
    errors.AmbiguousImage,
    errors.AmbiguousNetwork,
    errors.BuildError,  # before a build's first step: a bad context, Dockerfile, argument
)


def status_for(exc: BaseException) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, web.HTTPException):
        return exc.status
    if isinstance(exc, _NOT_FOUND):
        return 404
    if isinstance(exc, _CONFLICT):
        return 409
    if isinstance(exc, _BAD_PARAMETER):
        return 400
    if isinstance(exc, errors.RegistryUnauthorized):
        return 401
    extra = _extra_statuses()
    for cls, status in extra:
        if isinstance(exc, cls):
            return status
    return 500


def _extra_statuses() -> list[tuple[type[BaseException], int]]:
    """Classes that exist only in some versions of cove.errors (looked up by name)."""
    found = []
    for name, status in (("PredefinedNetwork", 403), ("ImageInUse", 409), ("NoSuchExec", 404),
                         ("ExecNotRunning", 409)):  # fmt: skip
        cls = getattr(errors, name, None)
        if isinstance(cls, type):
            found.append((cls, status))
    from cove.engine.file_tree import CopyError  # docker cp: a copy refused as asked

    found.append((CopyError, 400))
    return found


def familiar(reference: str) -> str:
    """busybox -> busybox:latest, as Docker names an image it did not find (ids and
    references with a tag or digest as they are)."""
    last = reference.rsplit("/", 1)[-1]
    if "@" in reference or ":" in last or re.fullmatch(r"(sha256:)?[0-9a-f]{64}", reference):
        return reference
    return reference + ":latest"


def docker_message(exc: errors.CoveError) -> str:
    """dockerd's words for the engine errors whose text clients show or match on (the
    engine's own words stay its CLI's)."""
    if isinstance(exc, errors.NameConflict):
        return (f'Conflict. The container name "/{exc.name}" is already in use by container '
                f'"{exc.holder_id}". You have to remove (or rename) that container to be '
                "able to reuse that name.")  # fmt: skip
    if isinstance(exc, errors.NoSuchImage):
        return f"No such image: {familiar(exc.term)}"
    if isinstance(exc, errors.NoSuchVolume):
        return f"get {exc.name}: no such volume"
    return str(exc)


# The response whose headers have gone out (set by routing.add_server_headers): an error
# after that cannot become a response of its own.
RESPONSE_STARTED = web.RequestKey("response_started", web.StreamResponse)


def _started(request: web.Request) -> bool:
    return request.get(RESPONSE_STARTED) is not None


def error_response(status: int, message: str) -> web.Response:
    if status == 304:
        return web.Response(status=304)
    return web.Response(
        status=status,
        body=json.dumps({"message": message}).encode(),
        content_type="application/json",
    )


def http_error_message(request: web.Request, exc: web.HTTPException) -> str:
    """Docker's words for aiohttp's own errors (no route, wrong method, too large)."""
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"method {request.method} is not allowed on {request.path} (allowed: {allowed})"
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return f"request body too large: the limit is {request.client_max_size} bytes"
    message = exc.text or exc.reason
    if exc.status == 404 and message == "404: Not Found":  # no route matched: dockerd's words
        return "page not found"
    if message and message.startswith(f"{exc.status}: "):
        message = message.split(": ", 1)[1]
    return message or exc.reason


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400 or _started(request):
            raise
        answer = error_response(exc.status, http_error_message(request, exc))
        if "Allow" in exc.headers:
            answer.headers["Allow"] = exc.headers["Allow"]
        return answer
    except errors.CoveError as exc:
        if _started(request):
            raise
        status = status_for(exc)
        if status >= 500 and status != 501:
            log.warning("%s %s: %s: %s", request.method, request.path, type(exc).__name__, exc)
        return error_response(status, docker_message(exc))
    except (ValueError, KeyError, TypeError) as exc:
        if _started(request):
            raise
        # Malformed input reaching a handler's parsing (JSON of the wrong shape).
        log.info("%s %s: bad input: %r", request.method, request.path, exc)
        return error_response(400, f"bad request: {exc}")
    except ConnectionError as exc:
        started: web.StreamResponse | None = request.get(RESPONSE_STARTED)
        if started is None:
            log.exception("%s %s: unexpected error", request.method, request.path)
            return error_response(500, f"{type(exc).__name__}: {exc}")
        # The client went away mid-stream (docker wait, logs -f, events interrupted): not
        # an error of the server's; aiohttp closes the connection.
        log.debug("%s %s: the client went away: %s", request.method, request.path, exc)
        return started
    except Exception as exc:
        if _started(request):
            raise
        log.exception("%s %s: unexpected error", request.method, request.path)
        return error_response(500, f"{type(exc).__name__}: {exc}")
