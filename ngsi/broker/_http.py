"""HTTP plumbing shared by every broker endpoint: media types, bodies, tenants, errors.

Endpoints (entities here, subscriptions and temporal elsewhere in the package) use these
helpers so that every resource negotiates, parses and fails the same way:

- `negotiate(request, ...)` picks the response media type from `Accept` or raises 406;
- `read_json(request)` checks `Content-Type` (415) and parses the body (400 InvalidRequest);
- `request_tenant(request)` reads `NGSILD-Tenant` (or the legacy `Fiware-Service`);
- `header(request, name)` reads one request header (all are decoded once per request);
- `JsonResponse`, `LdJsonResponse`, `GeoJsonResponse` render with orjson;
- `problem_response(exc)` renders any `NgsiApiError` as ProblemDetails; the app registers it as
  the exception handler, and pure ASGI middleware calls it directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ngsi._errors import (
    ERROR_TYPE_BASE,
    InvalidRequest,
    MethodNotAllowed,
    NgsiApiError,
    NotAcceptable,
    PayloadTooLarge,
    ProblemDetails,
    Unauthorized,
    UnsupportedMediaType,
)

__all__ = [
    "GEO_JSON",
    "JSON",
    "JSON_LD",
    "GeoJsonResponse",
    "JsonResponse",
    "LdJsonResponse",
    "MediaType",
    "MethodNotAllowed",
    "NotAcceptable",
    "PayloadTooLarge",
    "Unauthorized",
    "UnsupportedMediaType",
    "header",
    "http_exception_response",
    "negotiate",
    "negotiate_header",
    "parse_json",
    "problem_response",
    "read_body",
    "read_json",
    "request_content_type",
    "request_tenant",
    "tenant_headers",
]

MediaType = Literal["application/json", "application/ld+json", "application/geo+json"]
JSON: Final = "application/json"
JSON_LD: Final = "application/ld+json"
GEO_JSON: Final = "application/geo+json"
MERGE_PATCH: Final = "application/merge-patch+json"


class JsonResponse(Response):
    """`application/json` rendered by orjson."""

    media_type = JSON

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        return orjson.dumps(content)


class LdJsonResponse(JsonResponse):
    media_type = JSON_LD


class GeoJsonResponse(JsonResponse):
    media_type = GEO_JSON


_RESPONSE_CLASSES: dict[str, type[JsonResponse]] = {
    JSON: JsonResponse,
    JSON_LD: LdJsonResponse,
    GEO_JSON: GeoJsonResponse,
}


def response_class(media_type: str) -> type[JsonResponse]:
    return _RESPONSE_CLASSES[media_type]


def problem_response(exc: NgsiApiError, *, headers: Mapping[str, str] | None = None) -> Response:
    """The ProblemDetails response for `exc` (`application/json`)."""
    return JsonResponse(exc.to_problem(), status_code=exc.status_code, headers=dict(headers or {}))


def http_exception_response(exc: HTTPException) -> Response:
    """Starlette's routing errors (404 no such path, 405 wrong method) as ProblemDetails."""
    name = {404: "ResourceNotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "InvalidRequest")
    problem = ProblemDetails(
        type=ERROR_TYPE_BASE + name,
        title={404: "Resource not found", 405: "Method not allowed"}.get(exc.status_code, name),
        status=exc.status_code,
        detail=str(exc.detail) if exc.detail else None,
    )
    error = NgsiApiError(problem=problem, status=exc.status_code)
    return problem_response(error, headers=exc.headers)


# --- headers ----------------------------------------------------------------------------------

_HEADERS_KEY = "ngsi.headers"


def header(request: Request, name: str) -> str | None:
    """The first value of the request header `name` (lower case), as `request.headers.get`
    gives it; the headers are read once per request."""
    scope = request.scope
    found: dict[str, str] | None = scope.get(_HEADERS_KEY)
    if found is None:
        found = {}
        for raw_name, raw_value in scope["headers"]:
            key = raw_name.decode("latin-1").lower()
            if key not in found:
                found[key] = raw_value.decode("latin-1")
        scope[_HEADERS_KEY] = found
    return found.get(name)


# --- media types ------------------------------------------------------------------------------


def _parse_accept(header: str) -> list[tuple[float, int, str]]:
    """(quality, -specificity, media range) for each entry, best first."""
    entries: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if not media:
            continue
        quality = 1.0
        for param in pieces[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            entries.append((quality, position, media))
    entries.sort(key=lambda e: (-e[0], e[1]))
    return entries


_NEGOTIATED: dict[tuple[str, bool], MediaType | None] = {}


def negotiate(request: Request, *, geo: bool = False) -> MediaType:
    """The response media type for `request`'s `Accept` header, or NotAcceptable (406).

    `application/json` is the default (no header, `*/*`, `application/*`); `application/ld+json`
    when asked for; `application/geo+json` only where `geo=True` (retrieve and query entities).
    """
    accept = header(request, "accept")
    if not accept:
        return JSON
    found = negotiate_header(accept, geo=geo)
    if found is None:
        offered = "application/json or application/ld+json" + (
            " or application/geo+json" if geo else ""
        )
        raise NotAcceptable(f"cannot answer with any of Accept: {accept}; offered: {offered}")
    return found


def negotiate_header(header: str, *, geo: bool) -> MediaType | None:
    """The media type `negotiate` picks for an `Accept` value; None when none is acceptable."""
    key = (header, geo)
    try:
        return _NEGOTIATED[key]
    except KeyError:
        found = _negotiate(header, geo=geo)
        if len(_NEGOTIATED) < 1024:
            _NEGOTIATED[key] = found
        return found


def _negotiate(header: str, *, geo: bool) -> MediaType | None:
    for _, _, media in _parse_accept(header):
        if media in ("*/*", "application/*", JSON):
            return JSON
        if media == JSON_LD:
            return JSON_LD
        if media == GEO_JSON and geo:
            return GEO_JSON
    return None


def request_content_type(request: Request, *, allow_merge_patch: bool = False) -> str:
    """The body's media type (`application/json` or `application/ld+json`), else 415."""
    raw = header(request, "content-type")
    if not raw:
        raise UnsupportedMediaType(
            "the request has a body but no Content-Type; send application/json or "
            "application/ld+json"
        )
    media = raw.split(";", 1)[0].strip().lower()
    if media in (JSON, JSON_LD):
        return media
    if allow_merge_patch and media == MERGE_PATCH:
        return JSON
    raise UnsupportedMediaType(
        f"Content-Type {raw!r} is not supported; send application/json or application/ld+json"
    )


async def read_json(request: Request, *, allow_merge_patch: bool = False) -> tuple[Any, str]:
    """The parsed JSON body and its media type; 415 for a wrong type, 400 for bad JSON."""
    body, media = await read_body(request, allow_merge_patch=allow_merge_patch)
    return parse_json(body), media


async def read_body(request: Request, *, allow_merge_patch: bool = False) -> tuple[bytes, str]:
    """The body, not yet parsed (see `parse_json`), and its media type; 415 for a wrong type,
    400 for an empty body."""
    media = request_content_type(request, allow_merge_patch=allow_merge_patch)
    body = await request.body()
    if not body:
        raise InvalidRequest("the request body is empty; expected a JSON document")
    return body, media


def parse_json(body: bytes) -> Any:
    """The JSON document in a request body; 400 InvalidRequest when it is not valid JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None


# --- tenants ----------------------------------------------------------------------------------


def request_tenant(request: Request) -> str | None:
    """The tenant named by `NGSILD-Tenant` (or legacy `Fiware-Service`); None = default.

    Validated by the store (`validate_tenant`), which raises BadRequestData for a bad name.
    """
    from ngsi.broker._store import validate_tenant

    tenant = header(request, "ngsild-tenant")
    if tenant is None:
        tenant = header(request, "fiware-service")
    return validate_tenant(tenant)


def tenant_headers(tenant: str | None) -> dict[str, str]:
    """Headers that echo the tenant on a response."""
    return {} if tenant is None else {"NGSILD-Tenant": tenant}
