"""Engine events (`cove events`, the API's /events): an append-only journal of JSON lines.

    <root>/events.jsonl      one event per line, oldest first
    <root>/events.jsonl.1    the previous file, after a rotation

An event has Docker's shape:

    {"status": "die", "id": ID, "from": IMAGE,                    (legacy fields, as docker)
     "Type": "container", "Action": "die",
     "Actor": {"ID": ID, "Attributes": {"name": ..., "image": ..., "exitCode": "0"}},
     "scope": "local", "time": SECONDS, "timeNano": NANOSECONDS}

Every command that changes a container appends its event itself (no daemon): each line is
one write(2) on an O_APPEND descriptor, so lines from concurrent processes never mix.
When the file passes `MAX_BYTES` the writer that notices it (under an flock, checking that
nobody rotated it first) renames it to `.1`, replacing the older one. Readers read `.1`
then the current file; a follower (`follow`) notices the rename by the inode and finishes
the old file before it goes on with the new one.

Recording an event never makes an operation fail: `emit` swallows I/O errors.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from cove.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.state import ContainerRecord

EVENTS_FILE = "events.jsonl"
MAX_BYTES = 10 * 1024 * 1024
POLL_INTERVAL = 0.1
FILTER_KEYS = ("type", "event", "container", "image", "label", "scope", "network", "volume",
               "daemon")  # fmt: skip


def journal_path(root: str | os.PathLike[str]) -> str:
    return os.path.join(os.fspath(root), EVENTS_FILE)


def make_event(
    action: str,
    actor_id: str,
    attributes: Mapping[str, str],
    *,
    event_type: str = "container",
    now_ns: int | None = None,
) -> dict[str, Any]:
    now = time.time_ns() if now_ns is None else now_ns
    event: dict[str, Any] = {}
    if event_type == "container":
        event.update(status=action, id=actor_id, **{"from": attributes.get("image", "")})
    elif event_type == "image":
        event.update(status=action, id=actor_id)
    event.update({
        "Type": event_type, "Action": action,
        "Actor": {"ID": actor_id, "Attributes": dict(attributes)},
        "scope": "local", "time": now // 1_000_000_000, "timeNano": now,
    })  # fmt: skip
    return event


def append(
    root: str | os.PathLike[str], event: Mapping[str, Any], max_bytes: int = MAX_BYTES
) -> None:
    """Append one event (one write on O_APPEND); rotate first when the file is too big."""
    path = journal_path(root)
    line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        if os.fstat(fd).st_size > max_bytes:
            fd = _rotate(path, fd, flags)
        os.write(fd, line)
    finally:
        os.close(fd)


def _rotate(path: str, fd: int, flags: int) -> int:
    """Rename the full file to `.1` (unless another writer did) and open the new one."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.replace(path, path + ".1")
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return os.open(path, flags, 0o600)


def container_attributes(record: ContainerRecord) -> dict[str, str]:
    """Docker's attributes of a container event: its labels, image and name."""
    labels = record.config.get("labels") or {}
    attributes = (
        {str(k): str(v) for k, v in dict(labels).items()} if isinstance(labels, Mapping) else {}
    )
    attributes["image"] = record.image_name
    attributes["name"] = record.name
    return attributes


def emit(
    root: str | os.PathLike[str], action: str, record: ContainerRecord, **extra: object
) -> None:
    """Record a container event; never raises for I/O (an event is not worth a failure)."""
    attributes = container_attributes(record)
    attributes.update({key: str(value) for key, value in extra.items()})
    try:
        append(root, make_event(action, record.id, attributes))
    except OSError:
        pass


def emit_object(
    root: str | os.PathLike[str], event_type: str, action: str, actor_id: str, **attributes: object
) -> None:
    """Record an image, network or volume event as dockerd writes them, for example
    ("network", "create", ID, name=..., type="bridge"), ("volume", "destroy", NAME,
    driver="local"), ("image", "tag", IMAGE_ID, name=REFERENCE); never raises for I/O."""
    shown = {key: str(value) for key, value in attributes.items()}
    try:
        append(root, make_event(action, actor_id, shown, event_type=event_type))
    except OSError:
        pass


def emit_image(root: str | os.PathLike[str], action: str, actor: str, name: str = "") -> None:
    """dockerd's image events: the actor is the image id (tag, untag, delete, save, load,
    import) or the reference (pull, push); `name` the new reference of a tag, the repository
    of a pull or push, else the actor itself."""
    emit_object(root, "image", action, actor, name=name or actor)


def emit_exit(root: str | os.PathLike[str], record: ContainerRecord, *, oom: bool) -> None:
    """What docker records when a container's init exits: "oom" (killed by the OOM killer)
    then "die" with its exit code."""
    if oom:
        emit(root, "oom", record)
    emit(root, "die", record, exitCode=record.exit_code)


# --- reading ---------------------------------------------------------------------------


def _parse_lines(data: bytes) -> Iterator[dict[str, Any]]:
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a torn line (a crash mid-write): skipped
        if isinstance(event, dict):
            yield event


def read_events(
    root: str | os.PathLike[str], since_ns: int = 0, until_ns: int = 0
) -> list[dict[str, Any]]:
    """The recorded events with since <= timeNano <= until (0: no bound), oldest first."""
    path = journal_path(root)
    found: list[dict[str, Any]] = []
    for name in (path + ".1", path):
        try:
            with open(name, "rb") as journal:
                data = journal.read()
        except FileNotFoundError:
            continue
        found.extend(e for e in _parse_lines(data) if _in_range(e, since_ns, until_ns))
    return found


def _in_range(event: Mapping[str, Any], since_ns: int, until_ns: int) -> bool:
    stamp = int(event.get("timeNano") or 0)
    return (not since_ns or stamp >= since_ns) and (not until_ns or stamp <= until_ns)


def stream_events(
    root: str | os.PathLike[str],
    *,
    since_ns: int = 0,
    until_ns: int = 0,
    stop: Callable[[], bool] | None = None,
    interval: float = POLL_INTERVAL,
    now_ns: Callable[[], int] = time.time_ns,
) -> Iterator[dict[str, Any]]:
    """As `docker events`: the recorded events in range when a bound is given, then the new
    ones as they come, until `until_ns` passes or `stop()` says so. Without bounds only
    new events."""
    path = journal_path(root)
    history = bool(since_ns or until_ns)
    if history:
        try:
            with open(path + ".1", "rb") as old:
                data = old.read()
        except FileNotFoundError:
            data = b""
        yield from (e for e in _parse_lines(data) if _in_range(e, since_ns, until_ns))
    journal = _open_when_there(path)
    pending = b""
    try:
        if journal is not None and not history:
            journal.seek(0, os.SEEK_END)
        while True:
            if journal is None:
                journal = _open_when_there(path)
            chunk = journal.read() if journal is not None else b""
            if chunk:
                pending += chunk
                complete, _, pending = pending.rpartition(b"\n")
                for event in _parse_lines(complete):
                    if until_ns and int(event.get("timeNano") or 0) > until_ns:
                        return
                    if _in_range(event, since_ns, until_ns):
                        yield event
                continue
            if journal is not None and _rotated(path, journal):
                journal.close()
                journal, pending = _open_when_there(path), b""
                continue
            if until_ns and now_ns() > until_ns:
                return
            if stop is not None and stop():
                return
            time.sleep(interval)
    finally:
        if journal is not None:
            journal.close()


def _open_when_there(path: str) -> Any:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def _rotated(path: str, journal: Any) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(journal.fileno()).st_ino
    except FileNotFoundError:
        return False


# --- filters and output ----------------------------------------------------------------


def parse_filters(items: Sequence[str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in FILTER_KEYS:
            raise InvalidArgument(f"invalid filter '{item}' (keys: {', '.join(FILTER_KEYS)})")
        filters.setdefault(key, []).append(value)
    return filters


def matches(event: Mapping[str, Any], filters: Mapping[str, Sequence[str]]) -> bool:
    """Docker's rules: every key must match; one of a key's values is enough."""
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    action = str(event.get("Action", ""))
    for key, values in filters.items():
        if key == "type":
            ok = str(event.get("Type", "")) in values
        elif key == "scope":
            ok = str(event.get("scope", "local")) in values
        elif key == "event":
            short = action.split(":", 1)[0].strip()
            ok = action in values or short in values
        elif key in ("container", "network", "volume", "daemon"):
            # Docker's fuzzy match on the actor, whatever the event's type: an id prefix or
            # a name prefix (so `network=N` leaves out container events, as dockerd does)
            ident, name = str(actor.get("ID", "")), str(attributes.get("name", ""))
            ok = any(v and (ident.startswith(v) or name.startswith(v.lstrip("/"))) for v in values)
        elif key == "image":
            image = str(attributes.get("image", ""))
            if event.get("Type") == "image":  # an image's own event: its id or name
                image = str(attributes.get("name", ""))
                ident = str(actor.get("ID", ""))
                ok = any(image in (v, f"{v}:latest") or (v and ident.startswith(v))
                         or ident == f"sha256:{v}" for v in values)  # fmt: skip
            else:
                ok = any(image in (v, f"{v}:latest") for v in values)
        elif key == "label":  # every label given, as Docker's MatchKVList
            ok = all(_label_matches(attributes, v) for v in values)
        else:
            ok = False
        if not ok:
            return False
    return True


def _label_matches(attributes: Mapping[str, Any], wanted: str) -> bool:
    key, eq, value = wanted.partition("=")
    return key in attributes and (not eq or str(attributes[key]) == value)


def format_time(time_ns: int) -> str:
    """Go's RFC3339Nano in local time: fraction without trailing zeros."""
    moment = datetime.fromtimestamp(time_ns // 1_000_000_000).astimezone()
    fraction = f"{time_ns % 1_000_000_000:09d}".rstrip("0")
    offset = moment.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + zone
