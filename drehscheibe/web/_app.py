"""The page's Starlette app: static files and a small JSON API over the broker.

    GET /                                   the page (static/index.html)
    GET /static/...                         its script, styles (no CDN, no build step)
    GET /api/config                         PageConfig: title, refresh period, map tiles
    GET /api/devices                        DevicesView: devices, latest readings, last seen
    GET /api/entities/{id}/history          HistoryView: ?attr=NAME (required), &lastN=N,
                                            &type=TYPE (else the broker's type of the entity)

The API reads the broker through one `ngsi.Client` opened by the lifespan; endpoints are sync
and run in Starlette's thread pool. Errors are JSON `{"title", "detail", "status"}`: 400 for a
bad parameter, 404 for an entity without history, 502 when the broker refuses or is away.
Every answer carries a Content-Security-Policy that allows only this server (and the tile
server, when one is configured), so the page cannot load anything from elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drehscheibe.web._read import UnknownEntityType, read_devices, read_history
from drehscheibe.web._settings import WebSettings
from drehscheibe.web._views import PageConfig
from models import default_registry
from ngsi import (
    BadRequestData,
    Client,
    NgsiApiError,
    NgsiTransportError,
    ResourceNotFound,
    RetryPolicy,
    validate_attribute_name,
)

__all__ = ["STATIC_DIR", "create_app", "serve"]

logger = logging.getLogger("drehscheibe.web")

_RETRIES = RetryPolicy(attempts=2, initial_wait=0.1, max_wait=0.5, max_elapsed=2.0)
"""The page asks again at its next refresh: one quick retry, so that an answer stays fast."""

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The page's files: index.html, app.js, map.js, chart.js, style.css."""


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        if isinstance(content, BaseModel):
            return content.model_dump_json(by_alias=True).encode("utf-8")
        return orjson.dumps(content)


def _problem(status: int, title: str, detail: str) -> Response:
    return _Json({"title": title, "detail": detail, "status": status}, status_code=status)


def _settings(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.settings
    return settings


def _client(request: Request) -> Client:
    client: Client = request.state.client
    return client


# Endpoints -------------------------------------------------------------------------------------


def index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


def config(request: Request) -> Response:
    settings = _settings(request)
    return _Json(
        PageConfig(
            title=settings.title,
            refresh_seconds=settings.refresh_seconds,
            history_last_n=settings.history_last_n,
            tile_url=settings.tile_url,
            tile_attribution=settings.tile_attribution,
            tile_max_zoom=settings.tile_max_zoom,
        )
    )


def devices(request: Request) -> Response:
    return _Json(read_devices(_client(request)))


def _last_n(request: Request) -> int:
    text = request.query_params.get("lastN")
    if text is None:
        return _settings(request).history_last_n
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise BadRequestData(f"lastN must be a whole number from 1 to 1000, got {text!r}")
    return value


def history(request: Request) -> Response:
    entity_id: str = request.path_params["entity_id"]
    attribute = request.query_params.get("attr")
    if not attribute:
        raise BadRequestData("give the attribute to chart: ?attr=NAME (e.g. ?attr=no2)")
    validate_attribute_name(attribute)
    entity_type = request.query_params.get("type") or None
    if entity_type is not None and entity_type not in default_registry:
        raise UnknownEntityType(
            f"type {entity_type!r} has no Smart Data Model here; known: "
            f"{', '.join(default_registry.types())}"
        )
    view = read_history(
        _client(request),
        entity_id,
        attribute=attribute,
        last_n=_last_n(request),
        entity_type=entity_type,
    )
    return _Json(view)


# Errors ----------------------------------------------------------------------------------------


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _problem(400, "Bad request", str(exc))


async def _broker_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NgsiApiError)
    if isinstance(exc, ResourceNotFound):
        return _problem(404, "Not found", exc.detail or str(exc))
    if isinstance(exc, BadRequestData) and exc.response is None:
        return _problem(400, "Bad request", exc.detail or str(exc))
    return _problem(502, "The broker refused the request", str(exc))


async def _broker_away(request: Request, exc: Exception) -> Response:
    url = _settings(request).broker_url
    return _problem(502, "The broker does not answer", f"{url}: {exc}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _problem(exc.status_code, "Error", str(exc.detail))


# Headers ---------------------------------------------------------------------------------------


class _PageHeaders:
    """Adds the security policy to every answer, and `no-cache` so a new page version shows."""

    def __init__(self, app: ASGIApp, *, tile_origin: str | None) -> None:
        self.app = app
        images = "'self' data:" + (f" {tile_origin}" if tile_origin else "")
        self.headers = [
            (
                b"content-security-policy",
                (
                    "default-src 'self'; script-src 'self'; style-src 'self'; "
                    f"img-src {images}; connect-src 'self'; object-src 'none'; "
                    "base-uri 'none'; frame-ancestors 'none'"
                ).encode(),
            ),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cache-control", b"no-cache"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# The app ---------------------------------------------------------------------------------------


def _routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET"], name="index"),
        Route("/api/config", config, methods=["GET"], name="config"),
        Route("/api/devices", devices, methods=["GET"], name="devices"),
        Route(
            "/api/entities/{entity_id:path}/history",
            history,
            methods=["GET"],
            name="history",
        ),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]


def create_app(settings: WebSettings | None = None) -> Starlette:
    """The page and its API for the broker of `settings` (defaults: `WebSettings()`).

    Opens nothing until the lifespan starts; the lifespan opens the broker client (its
    connections are made at the first request) and closes it at the end.
    """
    settings = settings or WebSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        token = settings.broker_token.get_secret_value() if settings.broker_token else None
        with Client(
            settings.broker_url,
            tenant=settings.tenant,
            profile=settings.broker_profile,
            timeout=settings.broker_timeout,
            auth=token,
            retries=_RETRIES,
        ) as client:
            yield {"client": client}

    app = Starlette(
        routes=_routes(),
        middleware=[Middleware(_PageHeaders, tile_origin=settings.tile_origin)],
        exception_handlers={
            UnknownEntityType: _bad_request,
            NgsiApiError: _broker_error,
            NgsiTransportError: _broker_away,
            HTTPException: _http_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


def serve(settings: WebSettings) -> None:
    """Serve the page with uvicorn in this process until interrupted."""
    import uvicorn

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="asyncio",
        lifespan="on",
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
    )
