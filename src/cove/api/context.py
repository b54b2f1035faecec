"""The engine as handlers reach it. Engine services hold SQLite connections, which belong
to the thread that opened them, and their calls block: handlers run them on a worker
thread through `Engine.call`, with one set of services per worker thread."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

if TYPE_CHECKING:
    from cove.engine.containers import ContainerService
    from cove.engine.images import ImageService
    from cove.engine.network.networks import NetworkService
    from cove.engine.volumes import VolumeService

T = TypeVar("T")


class Services:
    """One worker thread's services, made when first used."""

    def __init__(self, root: str) -> None:
        self.root = root

    @functools.cached_property
    def containers(self) -> ContainerService:
        from cove.engine.containers import ContainerService

        return ContainerService(self.root)

    @functools.cached_property
    def images(self) -> ImageService:
        from cove.engine.images import ImageService

        return ImageService(self.root)

    @functools.cached_property
    def networks(self) -> NetworkService:
        from cove.engine.network.networks import NetworkService

        return NetworkService(self.root)

    @functools.cached_property
    def volumes(self) -> VolumeService:
        from cove.engine.volumes import volume_service

        return volume_service(self.containers.store)


class Engine:
    def __init__(self, root: str, workers: int = 64) -> None:
        self.root = root
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cove-api")

    def services(self) -> Services:
        """This thread's services (call only on a worker thread)."""
        services = getattr(self._local, "services", None)
        if services is None:
            services = self._local.services = Services(self.root)
        return services

    async def call(self, action: Callable[[Services], T]) -> T:
        """Run `action(services)` on a worker thread; its exception is raised here."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: action(self.services()))

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run any blocking function on a worker thread (file reads, waits)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(function, *args))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


ENGINE = web.AppKey("engine", Engine)


def engine_of(request: web.Request) -> Engine:
    return request.app[ENGINE]
