"""The Docker Engine API over a unix socket (`cove serve`): translation only.

Handlers turn HTTP requests into calls on the engine's services and the engine's results
into Docker's JSON shapes; the logic lives in `cove.engine`. Exceptions become HTTP
statuses in one place, `cove.api.errors`.

    server.py       listening (unix sockets, loopback TCP, TLS, systemd sockets)
    app.py          the aiohttp application: middlewares, the route modules
    routing.py      one route table, each route under /v1.xx/... and unversioned
    context.py      the engine as handlers reach it: services per worker thread
    errors.py       exception -> status, {"message": ...} bodies
    system.py       _ping, version, info, events, system/df, auth
    containers*.py  /containers/...; exec.py /exec/...; images*.py /images/...
    networks.py, volumes.py, build.py
"""
