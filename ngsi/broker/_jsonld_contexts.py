"""The @context source endpoints (`/ngsi-ld/v1/jsonldContexts`): contexts the broker hosts.

A POSTed context document (`{"@context": ...}`) gets a local id and is served at
`/ngsi-ld/v1/jsonldContexts/{id}`; it is registered in the `ContextStore` under that URL (as
the request reached the broker, and as `http://127.0.0.1:<port>` / `http://localhost:<port>`),
so that requests can name it in a Link header without any network. Hosted contexts are kept in
the default tenant's store and registered again at start (`restore_hosted_contexts`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ngsi._errors import BadRequestData, ResourceNotFound
from ngsi.broker._endpoints import API_PREFIX, path_param
from ngsi.broker._entities import format_time
from ngsi.broker._http import (
    JSON_LD,
    JsonResponse,
    LdJsonResponse,
    negotiate,
    read_json,
)
from ngsi.broker._params import parse_bool
from ngsi.broker._state import Broker, broker_of

__all__ = [
    "create_context",
    "delete_context",
    "get_context",
    "list_contexts",
    "restore_hosted_contexts",
]

_SPACE = "jsonldContexts"


def _urls(broker: Broker, base: str | None, local_id: str) -> list[str]:
    path = f"{API_PREFIX}/jsonldContexts/{local_id}"
    port = broker.settings.port
    urls = [f"http://127.0.0.1:{port}{path}", f"http://localhost:{port}{path}"]
    if base:
        urls.insert(0, base.rstrip("/") + path)
    return list(dict.fromkeys(urls))


def _register(broker: Broker, record: dict[str, Any]) -> None:
    for url in record["urls"]:
        broker.contexts.add(url, record["document"])


def restore_hosted_contexts(broker: Broker) -> None:
    """Register the hosted contexts kept in the store (call at start, off the event loop)."""
    with broker.store.read(None) as txn:
        for _, raw in txn.kv_items(_SPACE):
            _register(broker, orjson.loads(raw))


def _record(broker: Broker, local_id: str) -> dict[str, Any]:
    with broker.store.read(None) as txn:
        raw = txn.kv_get(_SPACE, local_id)
    if raw is None:
        raise ResourceNotFound(f"no hosted @context with id {local_id!r}")
    record: dict[str, Any] = orjson.loads(raw)
    return record


def _details(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "URL": record["urls"][0],
        "localId": record["id"],
        "kind": "Hosted",
        "createdAt": record["createdAt"],
    }


async def create_context(request: Request) -> Response:
    broker = broker_of(request)
    body, _ = await read_json(request)
    if not isinstance(body, dict) or "@context" not in body:
        raise BadRequestData("a context document must be a JSON object with an @context member")
    base = str(request.base_url)

    def work() -> str:
        local_id = str(uuid.uuid4())
        record = {
            "id": local_id,
            "urls": _urls(broker, base, local_id),
            "document": body,
            "createdAt": format_time(datetime.now(UTC)),
        }
        for url in record["urls"]:
            broker.contexts.add(url, body)
        with broker.store.write(None) as txn:
            txn.kv_put(_SPACE, local_id, orjson.dumps(record))
        return local_id

    local_id = await broker.run(work)
    return Response(
        status_code=201, headers={"Location": f"{API_PREFIX}/jsonldContexts/{local_id}"}
    )


async def list_contexts(request: Request) -> Response:
    broker = broker_of(request)
    negotiate(request)
    details = parse_bool(request.query_params.get("details"), name="details")
    kind = request.query_params.get("kind")
    if kind is not None and kind not in ("Hosted", "Cached", "ImplicitlyCreated"):
        raise BadRequestData("parameter 'kind' must be Hosted, Cached or ImplicitlyCreated")

    def work() -> list[Any]:
        with broker.store.read(None) as txn:
            records = [orjson.loads(raw) for _, raw in txn.kv_items(_SPACE)]
        if kind not in (None, "Hosted"):
            return []
        if details:
            return [_details(r) for r in records]
        return [r["urls"][0] for r in records]

    return JsonResponse(await broker.run(work))


async def get_context(request: Request) -> Response:
    broker = broker_of(request)
    media = negotiate(request)
    local_id = path_param(request, "context_id")
    details = parse_bool(request.query_params.get("details"), name="details")
    record = await broker.run(_record, broker, local_id)
    if details:
        return JsonResponse(_details(record))
    response = LdJsonResponse if media == JSON_LD else JsonResponse
    return response(record["document"])


async def delete_context(request: Request) -> Response:
    broker = broker_of(request)
    local_id = path_param(request, "context_id")

    def work() -> None:
        record = _record(broker, local_id)
        with broker.store.write(None) as txn:
            txn.kv_delete(_SPACE, local_id)
        for url in record["urls"]:
            broker.contexts.remove(url)

    await broker.run(work)
    return Response(status_code=204)
