"""Network routes: list, inspect, create, delete, connect, disconnect, prune. The shapes
are the engine's network inspect (Docker's); cove's networks are bridges with one IPv4
subnet each."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cove.api.context import Services, engine_of
from cove.api.errors import BadParameter
from cove.api.query import json_object, request_filters, until_of
from cove.api.routing import Routes

routes = Routes()

LIST_FILTERS = ("name", "id", "label", "driver", "type", "dangling", "scope")


def _names(s: Services) -> dict[str, str]:
    """Container id -> name (the Containers section of an inspect names them)."""
    return {record.id: record.name for record in s.containers.store.list(all=True)}


@routes.get("/networks")
async def list_networks(request: web.Request) -> web.Response:
    filters = request_filters(request)
    for key in filters:
        if key not in LIST_FILTERS:
            raise BadParameter(f"invalid filter '{key}'")
    scopes = filters.pop("scope", [])

    def read(s: Services) -> list[dict[str, Any]]:
        names = _names(s)
        return [s.networks.inspect(n.id, names) for n in s.networks.list(filters)]

    found = await engine_of(request).call(read)
    if scopes:
        found = [n for n in found if n["Scope"] in scopes]
    return web.json_response(found)


@routes.get("/networks/{id}")
async def inspect_network(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    document = await engine_of(request).call(lambda s: s.networks.inspect(term, _names(s)))
    return web.json_response(document)


@routes.post("/networks/create")
async def create_network(request: web.Request) -> web.Response:
    body = await json_object(request)
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise BadParameter("network name is required (Name)")
    if body.get("EnableIPv6"):
        raise BadParameter("IPv6 networks are not supported")
    if (
        body.get("Ingress")
        or body.get("ConfigOnly")
        or (body.get("ConfigFrom") or {}).get("Network")
    ):
        raise BadParameter("ingress and config-only networks are not supported")
    subnet, gateway, ip_range = _ipam(body.get("IPAM"))
    options = {str(k): str(v) for k, v in dict(body.get("Options") or {}).items()}
    labels = {str(k): str(v) for k, v in dict(body.get("Labels") or {}).items()}
    driver = str(body.get("Driver") or "bridge")
    internal = bool(body.get("Internal"))

    def create(s: Services) -> str:
        network = s.networks.create(
            name, subnet=subnet, gateway=gateway, ip_range=ip_range, internal=internal,
            labels=labels, options=options, driver=driver,
        )  # fmt: skip
        return network.id

    network_id = await engine_of(request).call(create)
    return web.json_response({"Id": network_id, "Warning": ""}, status=201)


def _ipam(ipam: object) -> tuple[str, str, str]:
    """(subnet, gateway, ip range) of the one IPv4 pool cove's networks have."""
    if ipam is None:
        return "", "", ""
    if not isinstance(ipam, dict):
        raise BadParameter("invalid IPAM: want an object")
    driver = ipam.get("Driver") or "default"
    if driver != "default":
        raise BadParameter(f"IPAM driver {driver!r} is not supported: cove has only 'default'")
    pools = [pool for pool in ipam.get("Config") or [] if isinstance(pool, dict)]
    if len(pools) > 1:
        raise BadParameter("cove networks have one subnet: give one IPAM Config entry")
    if not pools:
        return "", "", ""
    pool = pools[0]
    if pool.get("AuxiliaryAddresses"):
        raise BadParameter("auxiliary addresses are not supported")
    return (
        str(pool.get("Subnet") or ""),
        str(pool.get("Gateway") or ""),
        str(pool.get("IPRange") or ""),
    )


@routes.delete("/networks/{id}")
async def delete_network(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    await engine_of(request).call(lambda s: s.networks.remove(term))
    return web.Response(status=204)


@routes.post("/networks/{id}/connect")
async def connect_container(request: web.Request) -> web.Response:
    from cove.engine.network.connect import connect

    term = request.match_info["id"]
    body = await json_object(request)
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise BadParameter("no container given (Container)")
    endpoint = body.get("EndpointConfig") or {}
    if not isinstance(endpoint, dict):
        raise BadParameter("invalid EndpointConfig: want an object")
    ipam = endpoint.get("IPAMConfig") or {}
    if ipam.get("IPv6Address"):
        raise BadParameter("IPv6 addresses are not supported")
    ip = str(ipam.get("IPv4Address") or "")
    aliases = [str(alias) for alias in endpoint.get("Aliases") or []]

    def run(s: Services) -> None:
        connect(s.containers, s.networks, term, container, ip=ip, aliases=aliases)

    await engine_of(request).call(run)
    return web.Response(status=200)


@routes.post("/networks/{id}/disconnect")
async def disconnect_container(request: web.Request) -> web.Response:
    from cove.engine.network.connect import disconnect

    term = request.match_info["id"]
    body = await json_object(request)
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise BadParameter("no container given (Container)")
    force = bool(body.get("Force"))

    def run(s: Services) -> None:
        disconnect(s.containers, s.networks, term, container, force=force)

    await engine_of(request).call(run)
    return web.Response(status=200)


@routes.post("/networks/prune")
async def prune_networks(request: web.Request) -> web.Response:
    from cove.engine.network.network_filters import prune_networks as prune

    filters = request_filters(request)
    until = until_of(filters)
    removed = await engine_of(request).call(lambda s: prune(s.networks, filters, until))
    return web.json_response({"NetworksDeleted": removed or None})
