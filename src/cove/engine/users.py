"""`--user` (and the image's User) resolved through the IMAGE's /etc/passwd and /etc/group.

The files are read from the container's root filesystem, never the host's, and a
symbolic link in the way is resolved as if the rootfs were `/` (an absolute link means the
image's own root; a `..` above it is refused), so an image cannot make the engine read a
host file. Only regular files are read, and only their first megabytes.

The rules are Docker's (runc's `GetExecUser`):
- "" means root (uid 0, gid 0);
- "name" or "uid": the passwd entry gives the uid, primary gid and home; a name that is
  not there is an error; a numeric uid that is not there is fine (gid 0, home "/");
- ":group" parts: a group name must be in /etc/group, a number is taken as is;
- supplementary groups (the groups listing the user by name) only when no group is
  given ("name:group" means exactly that group).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from cove.errors import InvalidArgument, PathEscapesRoot
from cove.runtime.rootpath import resolve_in_root

MAX_ID = 2**31 - 1
_MAX_FILE = 8 * 1024 * 1024


@dataclass(frozen=True)
class ExecUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"
    name: str = ""


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def read_image_file(rootfs: str, path: str) -> str | None:
    """The text of `path` inside the image rootfs, or None when it is absent (or not a
    regular file). Never leaves `rootfs`."""
    try:
        host_path = resolve_in_root(rootfs, path)
    except PathEscapesRoot:
        return None
    try:
        fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, _MAX_FILE)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")


def _int(text: str) -> int | None:
    text = text.strip()
    if not text.isdigit():
        return None
    return int(text)


def parse_passwd(text: str) -> list[PasswdEntry]:
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < 4:
            continue
        uid, gid = _int(parts[2]), _int(parts[3])
        if uid is None or gid is None:
            continue
        home = parts[5] if len(parts) > 5 else ""
        entries.append(PasswdEntry(parts[0], uid, gid, home))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < 3:
            continue
        gid = _int(parts[2])
        if gid is None:
            continue
        members = (
            tuple(m.strip() for m in parts[3].split(",") if m.strip()) if len(parts) > 3 else ()
        )
        entries.append(GroupEntry(parts[0], gid, members))
    return entries


def _check_id(value: int, what: str, spec: str) -> int:
    if value > MAX_ID:
        raise InvalidArgument(f"invalid user {spec!r}: {what} {value} is out of range 0-{MAX_ID}")
    return value


def resolve_user(rootfs: str, spec: str, image: str = "the image") -> ExecUser:
    """Resolve a `--user` value ("name", "uid", "uid:gid", "name:group", ...)."""
    user_part, _, group_part = spec.strip().partition(":")
    passwd_text = read_image_file(rootfs, "/etc/passwd")
    passwd = parse_passwd(passwd_text) if passwd_text is not None else []

    uid, gid, home, matched_name = 0, 0, "/", ""
    number = _int(user_part) if user_part else 0
    if number is not None:
        uid = _check_id(number, "uid", spec)
        for entry in passwd:
            if entry.uid == uid:
                gid, home, matched_name = entry.gid, entry.home or "/", entry.name
                break
    else:
        for entry in passwd:
            if entry.name == user_part:
                uid, gid, home, matched_name = entry.uid, entry.gid, entry.home or "/", entry.name
                break
        else:
            where = (
                "it has no /etc/passwd" if passwd_text is None else "no such user in /etc/passwd"
            )
            raise InvalidArgument(f"unable to find user {user_part!r} in image {image}: {where}")

    groups: list[GroupEntry] | None = None

    def image_groups() -> list[GroupEntry]:
        nonlocal groups
        if groups is None:
            text = read_image_file(rootfs, "/etc/group")
            groups = parse_group(text) if text is not None else []
        return groups

    additional: tuple[int, ...] = ()
    if group_part:
        group_number = _int(group_part)
        if group_number is not None:
            gid = _check_id(group_number, "gid", spec)
        else:
            for group in image_groups():
                if group.name == group_part:
                    gid = group.gid
                    break
            else:
                raise InvalidArgument(
                    f"unable to find group {group_part!r} in image {image}: "
                    "no such group in /etc/group"
                )
    elif matched_name:
        found = []
        for group in image_groups():
            if matched_name in group.members and group.gid not in found:
                found.append(group.gid)
        additional = tuple(found)
    return ExecUser(uid=uid, gid=gid, additional_gids=additional, home=home, name=matched_name)
