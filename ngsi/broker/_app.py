"""The broker application: `create_app(settings)` builds it, `serve(settings)` runs it.

Lifespan: opens the `Store` (one SQLite file per tenant under `settings.data_dir`), builds the
`ContextStore` (preloaded files, hosted contexts, network only when allowed), starts the
extensions, and closes everything in reverse order on shutdown.

Extensions are the seam for the parts of the broker that live beside the entity API
(subscriptions and notifications, temporal history). An extension is any object with:

    name: str
    def routes(self) -> Sequence[BaseRoute]       # mounted under /ngsi-ld/v1
    async def start(self, broker: Broker) -> None  # may register store listeners
    async def stop(self) -> None

`create_app(settings)` without `extensions=` uses `default_extensions(settings)`: one extension
from each factory of `EXTENSION_FACTORIES`, in order (subscriptions and notifications, temporal
history, retention of current state). Pass `extensions=[...]` to run fewer or others.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final, Protocol

from anyio import CapacityLimiter
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ngsi._context_store import ContextStore
from ngsi._errors import InternalError, NgsiApiError
from ngsi.broker._auth import (
    OPERATIONS,
    Authenticator,
    AuthMiddleware,
    BrokerAuth,
    anonymous_allowed,
    exposure_problem,
    is_loopback_host,
)
from ngsi.broker._http import http_exception_response, problem_response, tenant_headers
from ngsi.broker._jsonld_contexts import restore_hosted_contexts
from ngsi.broker._middleware import BodyLimitMiddleware, EncodedSlashMiddleware
from ngsi.broker._retention import create_extension as retention_extension
from ngsi.broker._routes import build_routes
from ngsi.broker._service import EntityService
from ngsi.broker._settings import BrokerSettings
from ngsi.broker._state import WORKER_THREADS, Broker
from ngsi.broker._store import Store
from ngsi.broker._subscriptions import create_extension as subscription_extension
from ngsi.broker._subscriptions_model import NotificationHosts
from ngsi.broker._temporal import create_extension as temporal_extension

__all__ = [
    "EXTENSION_FACTORIES",
    "BrokerExtension",
    "ExtensionFactory",
    "create_app",
    "default_extensions",
    "serve",
]

log = logging.getLogger("ngsi.broker")

_GC_THRESHOLD: Final = 250_000


class BrokerExtension(Protocol):
    """A part of the broker beside the entity API (see the module documentation)."""

    name: str

    def routes(self) -> Sequence[BaseRoute]: ...

    async def start(self, broker: Broker) -> None: ...

    async def stop(self) -> None: ...


ExtensionFactory = Callable[[BrokerSettings], BrokerExtension]
"""Builds one extension from the broker settings."""

EXTENSION_FACTORIES: Final[tuple[ExtensionFactory, ...]] = (
    subscription_extension,
    temporal_extension,
    retention_extension,
)
"""The broker's own extensions, in start order: subscriptions, temporal history, then the
retention of current state."""


def default_extensions(settings: BrokerSettings) -> list[BrokerExtension]:
    """One extension from each of `EXTENSION_FACTORIES`, in order."""
    return [factory(settings) for factory in EXTENSION_FACTORIES]


def _context_store(settings: BrokerSettings) -> ContextStore:
    return ContextStore(
        preload={url: str(path) for url, path in settings.preload_contexts.items()},
        preload_dirs=[settings.contexts_dir] if settings.contexts_dir else [],
        cache_dir=settings.data_dir / "context-cache",
        allow_network=settings.allow_context_fetch,
        connect_timeout=min(2.0, settings.context_fetch_timeout),
        timeout=settings.context_fetch_timeout,
        max_redirects=0,
        host_policy=NotificationHosts.of(
            settings.context_allow_hosts,
            bind_host=settings.host,
            subject="@context fetches from",
            setting="context_allow_hosts",
        ),
    )


async def _ngsi_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NgsiApiError)
    headers: dict[str, str] = {}
    with contextlib.suppress(NgsiApiError):
        headers = tenant_headers(_tenant_header(request))
    return problem_response(exc, headers=headers)


def _tenant_header(request: Request) -> str | None:
    return request.headers.get("ngsild-tenant") or request.headers.get("fiware-service")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return http_exception_response(exc)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(InternalError(f"{type(exc).__name__}: {exc}"))


def _authenticator(settings: BrokerSettings) -> Authenticator | None:
    """The authenticator for the settings (see `ngsi.broker._auth`); None when every request
    may do everything (a broker on loopback without credentials: the one-machine default).
    Raises ValueError for a broker reachable from the network without credentials."""
    host, api_key = settings.host, settings.api_key
    allow = settings.allow_anonymous
    problem = exposure_problem(
        host=host, auth=settings.auth, api_key=api_key, allow_anonymous=allow
    )
    if problem is not None:
        raise ValueError(problem)
    anonymous = anonymous_allowed(
        host=host, auth=settings.auth, api_key=api_key, allow_anonymous=allow
    )
    auth = settings.auth or BrokerAuth()
    if anonymous and not is_loopback_host(settings.host):
        log.warning(
            "ANONYMOUS ACCESS: the broker on %s serves requests without credentials "
            "(allow_anonymous) with the operations %s on every tenant",
            settings.host,
            ", ".join(auth.anonymous) or "none",
        )
    everything = set(auth.anonymous) == set(OPERATIONS)
    if anonymous and everything and not auth.has_credentials and not api_key:
        return None
    return Authenticator(settings.auth, api_key=settings.api_key, anonymous=anonymous)


def create_app(
    settings: BrokerSettings,
    *,
    extensions: Sequence[BrokerExtension] | None = None,
    store: Store | None = None,
) -> Starlette:
    """The broker as an ASGI app. `store` defaults to a `Store` on `settings.data_dir`;
    `extensions` to `default_extensions(settings)`. The `Broker` is `app.state.broker` while
    the app runs (between lifespan start and stop). Raises ValueError when the settings would
    serve anonymous requests beyond loopback without `allow_anonymous` (`exposure_problem`)."""
    chosen = list(default_extensions(settings) if extensions is None else extensions)
    the_store = (
        store
        if store is not None
        else Store(settings.data_dir, cache_bytes=settings.cache_mb * 1024 * 1024)
    )
    extra: list[BaseRoute] = [route for ext in chosen for route in ext.routes()]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await run_in_threadpool(the_store.open)
        broker = Broker(
            settings=settings,
            store=the_store,
            entities=EntityService(the_store),
            contexts=_context_store(settings),
            limiter=CapacityLimiter(WORKER_THREADS),
        )
        await run_in_threadpool(restore_hosted_contexts, broker)
        app.state.broker = broker
        started: list[BrokerExtension] = []
        try:
            for extension in chosen:
                await extension.start(broker)
                started.append(extension)
            yield {"broker": broker}
        finally:
            for extension in reversed(started):
                try:
                    await extension.stop()
                except Exception:
                    log.exception("extension %s failed to stop", extension.name)
            await run_in_threadpool(the_store.close)

    middleware = [
        Middleware(EncodedSlashMiddleware),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
    ]
    authenticator = _authenticator(settings)
    if authenticator is not None:
        middleware.insert(1, Middleware(AuthMiddleware, authenticator=authenticator))
    return Starlette(
        routes=build_routes(extra),
        middleware=middleware,
        exception_handlers={
            NgsiApiError: _ngsi_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        lifespan=lifespan,
    )


def tune_garbage_collector() -> None:
    """Collect cyclic garbage less often than Python's default (every 700 new objects): a
    1000-entity batch creates hundreds of thousands of short-lived, acyclic dicts, and the
    default collector spent about a quarter of the broker's CPU on them. A young collection
    walks every young object still alive, and two batches in flight keep some 100,000 of them
    alive, so the threshold sits above that: collections then come from garbage, not from
    batches. What start-up loaded is frozen out of future collections."""
    gc.freeze()
    gc.set_threshold(_GC_THRESHOLD, 20, 20)


def serve(settings: BrokerSettings) -> None:
    """Run the broker with uvicorn in this process until interrupted (single worker)."""
    import uvicorn

    http = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    app = create_app(settings)
    if settings.allow_anonymous and not is_loopback_host(settings.host):
        print(
            f"WARNING: the broker listens on {settings.host} and serves requests WITHOUT "
            "credentials (--allow-anonymous): anyone who reaches it may use it",
            file=sys.stderr,
            flush=True,
        )

    tune_garbage_collector()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="asyncio",
        http=http,
        lifespan="on",
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        date_header=True,
    )
