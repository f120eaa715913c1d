"""Pure ASGI middleware of the broker: path decoding, body size limit, and answers from the
entity cache (authentication is in `ngsi.broker._auth`).

Each renders its refusals as ProblemDetails through `problem_response`, like the endpoints.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ngsi.broker._http import PayloadTooLarge, problem_response

__all__ = [
    "BodyLimitMiddleware",
    "EncodedSlashMiddleware",
    "EntityCacheMiddleware",
]


class EncodedSlashMiddleware:
    """Keeps `%2F` inside a path segment from splitting it; ignores a trailing `/`.

    Routing matches the decoded path, so `/entities/http%3A%2F%2Fexample.org%2Fa` would not reach
    the entity route. When the raw path holds a `%`, each raw segment is decoded and re-encoded
    with only `%` and `/` escaped; endpoints decode their parameters once more
    (`path_param`), which gives back the exact id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            if raw and b"%" in raw:
                text = raw.decode("latin-1").split("?", 1)[0]
                segments = [
                    quote(unquote(segment, errors="strict"), safe="") if "%" in segment else segment
                    for segment in text.split("/")
                ]
                scope = dict(scope)
                scope["path"] = "/".join(segments)
            path = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = dict(scope)
                scope["path"] = path.rstrip("/") or "/"
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuses request bodies larger than `max_bytes` with 413 (ProblemDetails)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._refuse(scope, receive, send, declared)
                    return
                break
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise self._error(received)
            return message

        await self.app(scope, limited, send)

    def _error(self, size: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body has {size} bytes or more; at most {self.max_bytes} are accepted "
            "(split batches into smaller ones)"
        )

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        response = problem_response(self._error(size), headers={"Connection": "close"})
        await response(scope, receive, send)


_ENTITY_PREFIX = "/ngsi-ld/v1/entities/"


class EntityCacheMiddleware:
    """Answers `GET /ngsi-ld/v1/entities/{id}` of a cached entity before routing.

    Retrieve Entity answers from the entity cache (`ngsi.broker._cache`) on the event loop when
    it can (`cached_entity_response`); this does the same ahead of the routing and request
    objects, which cost more than the answer. Anything else (another path or method, a
    percent-encoded path, an entity not cached, a request to refuse) goes to the app unchanged,
    so every answer is the one the endpoint gives.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(_ENTITY_PREFIX) and b"%" not in scope.get("raw_path", b"%"):
                entity_id = path[len(_ENTITY_PREFIX) :]
                if entity_id and "/" not in entity_id:
                    from ngsi.broker._endpoints import cached_entity_response

                    rendering = await cached_entity_response(scope, entity_id)
                    if rendering is not None:
                        await send(
                            {
                                "type": "http.response.start",
                                "status": 200,
                                "headers": list(rendering[1]),
                            }
                        )
                        await send({"type": "http.response.body", "body": rendering[0]})
                        return
        await self.app(scope, receive, send)
