"""What the broker's endpoints share: settings, the store, the entity service, the contexts.

The app's lifespan builds one `Broker` and puts it into the ASGI state as `broker`; endpoints
read it with `broker_of(request)`. Extensions (subscriptions, temporal) get the same object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request

from ngsi._context_store import ContextStore
from ngsi.broker._service import EntityService
from ngsi.broker._settings import BrokerSettings
from ngsi.broker._store import Store

__all__ = ["Broker", "broker_of", "in_worker"]

T = TypeVar("T")

WORKER_THREADS = 2
"""Worker threads for blocking work (SQLite, context fetches). Each tenant's store is used by
one thread at a time anyway; more threads would only fight over the GIL."""


@dataclass(kw_only=True)
class Broker:
    """The running broker's shared parts; `extras` is free for extensions (by their name)."""

    settings: BrokerSettings
    store: Store
    entities: EntityService
    contexts: ContextStore
    extras: dict[str, Any] = field(default_factory=dict)
    limiter: CapacityLimiter | None = None

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """`func(*args)` in one of the broker's worker threads (for blocking calls)."""
        if self.limiter is None:
            self.limiter = CapacityLimiter(WORKER_THREADS)
        return await anyio.to_thread.run_sync(func, *args, limiter=self.limiter)


def broker_of(request: Request) -> Broker:
    """The `Broker` of the app that serves `request`."""
    broker: Broker = request.state.broker
    return broker


async def in_worker(request: Request, func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` in a worker thread of the broker serving `request`."""
    return await broker_of(request).run(func, *args)
