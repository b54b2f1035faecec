"""Image routes: list, inspect, history, tag, delete, prune, search, and commit.

Image names carry slashes and colons (`127.0.0.1:5000/team/app:1`), so the routes take the
name with a `{name:.+}` pattern before their last segment (/json, /history, /tag).
Pull, push, import, save and load are in `images_transfer`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from cove.api.context import Services, engine_of
from cove.api.errors import BadParameter, Conflict, familiar
from cove.api.query import (
    json_body,
    query_bool,
    query_int,
    request_filters,
    unix_time,
    until_of,
)
from cove.api.routing import Routes, request_version

routes = Routes()

NAME = "{name:.+}"
ZERO_TIME = "0001-01-01T00:00:00Z"


# --- list ----------------------------------------------------------------------------------


@routes.get("/images/json")
async def list_images(request: web.Request) -> web.Response:
    from cove.engine.image_filters import summaries

    filters = request_filters(request)
    legacy = request.query.get("filter", "")  # API < 1.25: a reference pattern
    if legacy:
        filters.setdefault("reference", []).append(legacy)
    until = until_of(filters)
    found = await engine_of(request).call(lambda s: summaries(s.root, filters, until))
    if not query_bool(request, "all"):  # Docker hides builds' intermediate images (no -a)
        from cove.engine.build_cache import intermediate_ids

        hidden = await engine_of(request).run(intermediate_ids, engine_of(request).root)
        found = [image for image in found if image.repo_tags or image.id not in hidden]
    old = request_version(request) < (1, 44)
    rows = []
    for image in found:
        row: dict[str, Any] = {
            "Containers": -1,
            "Created": int(image.created),
            "Id": image.id,
            "Labels": image.labels or None,
            "ParentId": "",
            "RepoDigests": image.repo_digests,
            "RepoTags": image.repo_tags,
            "SharedSize": -1,
            "Size": image.size,
        }
        if old:
            row["VirtualSize"] = image.size
        rows.append(row)
    return web.json_response(rows)


# --- one image -----------------------------------------------------------------------------


@routes.get(f"/images/{NAME}/json")
async def inspect_image(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    document = await engine_of(request).call(lambda s: s.images.inspect(name))
    return web.json_response(docker_inspect(document, request_version(request)))


def docker_inspect(document: Mapping[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    """The engine's inspect in the types dockerd's has (LastTagTime a time, no nulls where
    Go has strings), with the fields of older API versions."""
    out = dict(document)
    metadata = dict(out.get("Metadata") or {})
    metadata["LastTagTime"] = rfc3339(metadata.get("LastTagTime"))
    out["Metadata"] = metadata
    if not out.get("Variant"):
        out.pop("Variant", None)
    for key in ("Parent", "Comment", "DockerVersion", "Author", "Created"):
        out[key] = out.get(key) or ""
    out.setdefault("GraphDriver", {"Name": "overlay2", "Data": None})
    out["Config"] = _docker_image_config(out.get("Config") or {})
    if version < (1, 44):
        out["VirtualSize"] = out.get("Size", 0)
    if version < (1, 45):
        out.setdefault("Container", "")
        out.setdefault("ContainerConfig", _empty_container_config())
    return out


def _docker_image_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """An image's Config as dockerd (API <= 1.49) gives it: a container config, so with
    the fields an image never sets at their zero values, and Go's nil (null) for an empty
    Env; ExposedPorts and StopSignal left out when unset (omitempty)."""
    out = {**_empty_container_config(), **config}
    out["Env"] = out.get("Env") or None
    for key in ("ExposedPorts", "StopSignal"):
        if out.get(key) is None:
            out.pop(key, None)
    return out


def _empty_container_config() -> dict[str, Any]:
    return {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
        "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
        "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
    }  # fmt: skip


def rfc3339(value: object) -> str:
    """A unix time (float) or a time string as RFC 3339 (Docker's zero time for none)."""
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, str) and value:
        return value
    return ZERO_TIME


@routes.get(f"/images/{NAME}/history")
async def image_history(request: web.Request) -> web.Response:
    name = request.match_info["name"]

    def read(s: Any) -> tuple[list[dict[str, Any]], list[str]]:
        return s.images.history(name), list(s.images.inspect(name)["RepoTags"])

    rows, tags = await engine_of(request).call(read)
    out = []
    for index, row in enumerate(rows):
        out.append({
            "Id": row["Id"],
            "Created": unix_time(row.get("Created")),
            "CreatedBy": row.get("CreatedBy") or "",
            "Tags": tags if index == 0 and tags else None,
            "Size": int(row.get("Size") or 0),
            "Comment": row.get("Comment") or "",
        })  # fmt: skip
    return web.json_response(out)


@routes.post(f"/images/{NAME}/tag")
async def tag_image(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    target = tag_target(request.query.get("repo", ""), request.query.get("tag", ""))
    await engine_of(request).call(lambda s: s.images.tag(name, target))
    return web.Response(status=201)


def tag_target(repo: str, tag: str) -> str:
    """repo and tag as dockerd joins them: the tag defaults to latest; a repo that has a
    tag of its own takes no other."""
    if not repo:
        raise BadParameter("repository name must have at least one component")
    last = repo.rsplit("/", 1)[-1]
    if "@" in repo:
        raise BadParameter(f"refusing to create a tag with a digest reference: {repo}")
    if ":" in last:
        if tag:
            raise BadParameter(f"invalid reference format: {repo}:{tag}")
        return repo
    return f"{repo}:{tag or 'latest'}"


@routes.delete(f"/images/{NAME}")
async def delete_image(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    force = query_bool(request, "force")

    def action(s: Services) -> Any:
        if not force:  # given by id while several names point at it: dockerd's conflict
            found = s.images.inspect(name)
            digits = str(found["Id"]).split(":", 1)[-1]
            bare = name.removeprefix("sha256:")
            by_id = re.fullmatch(r"[0-9a-f]+", bare) is not None and digits.startswith(bare)
            if by_id and familiar(name) not in found["RepoTags"] and len(found["RepoTags"]) > 1:
                raise Conflict(f"conflict: unable to delete {digits[:12]} (must be forced) - "
                               "image is referenced in multiple repositories")  # fmt: skip
        return s.images.remove(name, force=force)

    removed = await engine_of(request).call(action)
    items: list[dict[str, str]] = [{"Untagged": n} for n in removed.untagged]
    items += [{"Deleted": digest} for digest in removed.deleted]
    return web.json_response(items)


# --- prune and search ----------------------------------------------------------------------


@routes.post("/images/prune")
async def prune_images(request: web.Request) -> web.Response:
    from cove.engine.image_filters import prune

    filters = request_filters(request)
    until = until_of(filters)
    removed, reclaimed = await engine_of(request).call(lambda s: prune(s.root, filters, until))
    deleted: list[dict[str, str]] = []
    for item in removed:
        deleted += [{"Untagged": name} for name in item.untagged]
        deleted += [{"Deleted": digest} for digest in item.deleted]
    return web.json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


@routes.get("/images/search")
async def search_images(request: web.Request) -> web.Response:
    from cove.api.auth import request_auth
    from cove.engine.image_transfer import search

    term = request.query.get("term", "")
    if not term:
        raise BadParameter("the search term is empty")
    limit = query_int(request, "limit", 25)
    if not 1 <= limit <= 100:
        raise BadParameter(f"limit {limit} is outside the range [1, 100]")
    filters = request_filters(request)
    for key in filters:
        if key not in ("is-official", "is-automated", "stars"):
            raise BadParameter(f"invalid filter '{key}'")
    credentials = request_auth(request).credentials()
    found = await engine_of(request).run(search, term, limit, credentials)
    rows = [{"name": r.name, "description": r.description, "star_count": r.star_count,
             "is_official": r.is_official, "is_automated": r.is_automated}
            for r in found]  # fmt: skip
    rows = [row for row in rows if _search_filters_match(row, filters)]
    return web.json_response(rows)


def _search_filters_match(row: Mapping[str, Any], filters: Mapping[str, list[str]]) -> bool:
    for key, column in (("is-official", "is_official"), ("is-automated", "is_automated")):
        for value in filters.get(key, []):
            if value.lower() not in ("true", "1", "false", "0"):
                raise BadParameter(f"invalid filter '{key}={value}'")
            if row[column] != (value.lower() in ("true", "1")):
                return False
    for value in filters.get("stars", []):
        try:
            stars = int(value)
        except ValueError:
            raise BadParameter(f"invalid filter 'stars={value}'") from None
        if row["star_count"] < stars:
            return False
    return True


# --- commit --------------------------------------------------------------------------------


@routes.post("/commit")
async def commit_container(request: web.Request) -> web.Response:
    from cove.engine.container_commit import commit

    container = request.query.get("container", "")
    if not container:
        raise BadParameter("no container given (?container=)")
    repo = request.query.get("repo", "")
    reference = tag_target(repo, request.query.get("tag", "")) if repo else None
    changes = [*config_changes(await json_body(request, default={})),
               *request.query.getall("changes", [])]  # fmt: skip
    changes = [change for change in changes if change.strip()]
    message = request.query.get("comment", "")
    author = request.query.get("author", "")
    pause = query_bool(request, "pause", True)
    image_id = await engine_of(request).run(
        lambda: commit(engine_of(request).root, container, reference, changes=changes,
                       message=message, author=author, pause=pause)
    )  # fmt: skip
    return web.json_response({"Id": image_id}, status=201)


def config_changes(config: object) -> list[str]:
    """The fields of a container Config (the body of POST /commit) as the Dockerfile
    instructions the engine's commit applies over the container's own config."""
    if not isinstance(config, dict):
        if config in (None, {}):
            return []
        raise BadParameter("invalid commit body: want a container Config object")
    changes: list[str] = []
    for key, keyword in (("Entrypoint", "ENTRYPOINT"), ("Cmd", "CMD")):
        value = config.get(key)
        if isinstance(value, str) and value:
            changes.append(f"{keyword} {value}")
        elif isinstance(value, list) and value:
            changes.append(f"{keyword} {json.dumps([str(v) for v in value])}")
    for item in config.get("Env") or []:
        key, eq, value = str(item).partition("=")
        if key and eq:
            changes.append(f"ENV {key}={shlex.quote(value)}")
    for key, value in dict(config.get("Labels") or {}).items():
        changes.append(f"LABEL {shlex.quote(str(key))}={shlex.quote(str(value))}")
    ports = list(dict(config.get("ExposedPorts") or {}))
    if ports:
        changes.append("EXPOSE " + " ".join(ports))
    volumes = list(dict(config.get("Volumes") or {}))
    if volumes:
        changes.append(f"VOLUME {json.dumps(volumes)}")
    for key, keyword in (("User", "USER"), ("WorkingDir", "WORKDIR"),
                         ("StopSignal", "STOPSIGNAL")):  # fmt: skip
        value = config.get(key)
        if isinstance(value, str) and value:
            changes.append(f"{keyword} {value}")
    for item in config.get("OnBuild") or []:
        changes.append(f"ONBUILD {item}")
    return changes
