"""The entity endpoints of the NGSI-LD API (`/ngsi-ld/v1/entities`, `/entityOperations`,
`/types`, `/attributes`).

Each endpoint reads the request on the event loop (headers, body), then does everything that
costs (context resolution, expansion, SQLite, compaction) in one worker-thread call, and sends
the result. Errors are raised as `NgsiApiError`s; the app's exception handlers render them.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from ngsi._context import ATTRIBUTE_MEMBERS, ATTRIBUTE_TYPES, Context, expand_entity
from ngsi._context_http import (
    cached_context_from_request,
    context_from_request,
    format_link_header,
    parse_link_header,
)
from ngsi._context_store import ContextStore
from ngsi._core_context import CORE_CONTEXT_URL
from ngsi._errors import BadRequestData, InvalidRequest, NgsiApiError, ResourceNotFound
from ngsi._ids import attribute_name_problem, type_name_problem, uri_problem
from ngsi._representations import to_normalized
from ngsi.broker._cache import Rendering
from ngsi.broker._entities import NGSI_LD_NULL, AttributeOutcome, entity_types
from ngsi.broker._geo import geo_filter_from_params
from ngsi.broker._http import (
    GEO_JSON,
    JSON,
    JSON_LD,
    MediaType,
    header,
    negotiate,
    negotiate_header,
    parse_json,
    read_body,
    read_json,
    request_tenant,
    response_class,
    tenant_headers,
)
from ngsi.broker._params import EntityQueryParams, parse_bool, parse_options, split_list
from ngsi.broker._render import EntityView
from ngsi.broker._scope import compile_scope_q
from ngsi.broker._service import BatchOutcome, EntityFilter, UpsertMode
from ngsi.broker._state import Broker, broker_of
from ngsi.broker._store import validate_tenant

__all__ = [
    "append_attributes",
    "batch_create",
    "batch_delete",
    "batch_merge",
    "batch_update",
    "batch_upsert",
    "cached_entity_response",
    "create_entity",
    "delete_attribute",
    "delete_entity",
    "entity_path",
    "get_attribute",
    "get_attributes",
    "get_type",
    "get_types",
    "merge_entity",
    "missing_entity_id",
    "partial_update_attribute",
    "path_param",
    "query_entities",
    "query_entities_post",
    "replace_attribute",
    "replace_entity",
    "retrieve_entity",
    "update_attributes",
    "version",
]

API_PREFIX = "/ngsi-ld/v1"


# --- small helpers -----------------------------------------------------------------------------


def path_param(request: Request, name: str) -> str:
    """A path parameter, with `%2F` (kept encoded by the path middleware) decoded."""
    value: str = request.path_params[name]
    return unquote(value) if "%" in value else value


def entity_path(entity_id: str) -> str:
    """The path of an entity resource, for Location headers."""
    return f"{API_PREFIX}/entities/{quote(entity_id, safe=':@!$&+,;=-._~')}"


def _entity_id_param(request: Request) -> str:
    entity_id = path_param(request, "entity_id")
    problem = uri_problem(entity_id)
    if problem:
        raise BadRequestData(f"entity id in the path: {problem}")
    return entity_id


def _attr_param(request: Request, *, allow_scope: bool = False) -> str:
    name = path_param(request, "attr")
    if allow_scope and name == "scope":
        return name
    problem = attribute_name_problem(name)
    if problem:
        raise BadRequestData(f"attribute name in the path: {problem}")
    return name


_LINKS: dict[str, str | None] = {}


def _link_url(link: str | None) -> str | None:
    """The context URL of a Link header (parsed once per distinct header value)."""
    if link is None:
        return None
    try:
        return _LINKS[link]
    except KeyError:
        url = parse_link_header(link)
        if len(_LINKS) < 1024:
            _LINKS[link] = url
        return url


def _get_context(request: Request, contexts: ContextStore) -> Context:
    """The context of a request without a body: its Link header, else the core context."""
    return contexts.resolve(_link_url(header(request, "link")))


def _context_headers(context: Context, media: str) -> dict[str, str]:
    if media in (JSON_LD, GEO_JSON):
        return {}
    return {"Link": format_link_header(context.url or CORE_CONTEXT_URL)}


def _respond(
    payload: Any,
    *,
    media: MediaType,
    context: Context | None,
    tenant: str | None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    all_headers = tenant_headers(tenant)
    if context is not None:
        all_headers.update(_context_headers(context, media))
        if media == GEO_JSON and isinstance(payload, dict):
            payload = {**payload, "@context": context.to_jsonld()}
        elif media == JSON_LD:
            value = context.to_jsonld()
            if isinstance(payload, dict):
                payload = {**payload, "@context": value}
            elif isinstance(payload, list):
                payload = [
                    {**item, "@context": value} if isinstance(item, dict) else item
                    for item in payload
                ]
    if headers:
        all_headers.update(headers)
    return response_class(media)(payload, status_code=status, headers=all_headers)


def _no_content(tenant: str | None, headers: Mapping[str, str] | None = None) -> Response:
    all_headers = tenant_headers(tenant)
    if headers:
        all_headers.update(headers)
    return Response(status_code=204, headers=all_headers)


def _attribute_key(name: str, ctx: Context) -> str:
    return name if name in ATTRIBUTE_MEMBERS else ctx.expand_term(name)


_NOT_ATTRIBUTES = frozenset(
    {"id", "type", "scope", "@context", "createdAt", "modifiedAt", "deletedAt"}
)
_GOOD_NAMES: set[str] = set()
_GOOD_TYPES: set[str] = set()
_GOOD_IDS: set[str] = set()
_NAME_CACHE_LIMIT = 50_000
_ID_CACHE_LIMIT = 100_000
"""Entity ids known to be valid URIs (a steady stream of updates names the same entities)."""


def _check_names(body: Mapping[str, Any], *, where: str) -> None:
    good = _GOOD_NAMES
    for name in body:
        if name in good or name in _NOT_ATTRIBUTES:
            continue
        problem = attribute_name_problem(name)
        if problem:
            raise BadRequestData(f"{where}: {problem}")
        if len(good) < _NAME_CACHE_LIMIT:
            good.add(name)


def _check_types(value: Any, *, where: str) -> None:
    names = value if isinstance(value, list) else [value]
    if not names:
        raise BadRequestData(f"{where}: 'type' is empty")
    good = _GOOD_TYPES
    for name in names:
        if name.__class__ is str and name in good:
            continue
        problem = type_name_problem(name)
        if problem:
            raise BadRequestData(f"{where}: 'type': {problem}")
        if len(good) < _NAME_CACHE_LIMIT:
            good.add(name)


def _is_normalized_attribute(value: Any) -> bool:
    if value.__class__ is not dict or value.get("type") not in ATTRIBUTE_TYPES:
        return False
    for member, sub in value.items():
        if member not in ATTRIBUTE_MEMBERS and not _is_normalized_attribute(sub):
            return False
    return True


_PLAIN_MEMBERS = ATTRIBUTE_MEMBERS - {"vocab", "previousVocab", "objectType"}


def _expand(body: Mapping[str, Any], context: Context, *, where: str) -> dict[str, Any]:
    """`expand_entity(normalized body)` after checking the attribute names: a body whose
    attributes are plain (normalized, without sub-attributes or vocabulary-typed members) is
    expanded by renaming its members only, in one pass, its attribute objects shared with the
    body (the batch operations stamp them in place, `owned`: the body is the request's own;
    the others copy what they keep)."""
    expand = context.expand_term
    good, plain = _GOOD_NAMES, _PLAIN_MEMBERS
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in _NOT_ATTRIBUTES:
            if key == "type":
                if value.__class__ is str:
                    value = expand(value)
                elif value.__class__ is list:
                    value = [expand(item) if item.__class__ is str else item for item in value]
                out[key] = value
            elif key != "@context":
                out[key] = value
            continue
        if (
            key not in good
            or value.__class__ is not dict
            or value.get("type") not in ATTRIBUTE_TYPES
        ):
            return _expand_in_general(body, context, where=where)
        if not value.keys() <= plain:
            value = _expand_sub_attributes(value, expand)
            if value is None:
                return _expand_in_general(body, context, where=where)
        name = expand(key)
        if name in out:
            return _expand_in_general(body, context, where=where)
        out[name] = value
    return out


def _expand_sub_attributes(
    attribute: dict[str, Any], expand: Callable[[str], str]
) -> dict[str, Any] | None:
    """A copy of the attribute with the names of its sub-attributes expanded, when each of
    them is plain and has a known-good name; None when the general path must take it."""
    good, plain = _GOOD_NAMES, _PLAIN_MEMBERS
    out: dict[str, Any] = {}
    for member, sub in attribute.items():
        if member in plain:
            out[member] = sub
            continue
        if (
            member in ATTRIBUTE_MEMBERS
            or sub.__class__ is not dict
            or sub.get("type") not in ATTRIBUTE_TYPES
            or not sub.keys() <= plain
        ):
            return None
        if member not in good:
            if attribute_name_problem(member):
                return None
            if len(good) < _NAME_CACHE_LIMIT:
                good.add(member)
        name = expand(member)
        if name in out:
            return None
        out[name] = sub
    return out


def _expand_in_general(body: Mapping[str, Any], context: Context, *, where: str) -> dict[str, Any]:
    _check_names(body, where=where)
    normalized = body if _is_normalized(body) else to_normalized(body)
    return expand_entity(normalized, context)  # two names for one attribute: it says so


def _is_normalized(body: Mapping[str, Any]) -> bool:
    """Whether every attribute is already in normalized form (no conversion needed)."""
    for name, value in body.items():
        if name not in _NOT_ATTRIBUTES and not _is_normalized_attribute(value):
            return False
    return True


class _Contexts:
    """Resolves the @context of each body of one request, once per distinct value."""

    def __init__(self, link: str | None, media: str, contexts: ContextStore) -> None:
        self._link = link
        self._media = media
        self._contexts = contexts
        self._by_url: dict[str | None, Context] = {}
        self._by_json: dict[bytes, Context] = {}

    def __call__(self, body_context: Any) -> Context:
        if body_context is None or body_context.__class__ is str:
            found = self._by_url.get(body_context)
            if found is None:
                found = self._by_url[body_context] = self._resolve(body_context)
            return found
        key = orjson.dumps(body_context)
        found = self._by_json.get(key)
        if found is None:
            found = self._by_json[key] = self._resolve(body_context)
        return found

    def _resolve(self, body_context: Any) -> Context:
        if body_context is None and self._media != JSON_LD:
            return self._contexts.resolve(_link_url(self._link))
        return context_from_request(self._link, body_context, self._media, self._contexts)

    def cached(self, body_context: Any) -> Context | None:
        """The context for `body_context` if it is in memory already, else None."""
        if body_context is None and self._media != JSON_LD:
            return self._contexts.cached(_link_url(self._link))
        return cached_context_from_request(self._link, body_context, self._media, self._contexts)


_INLINE_BODY = 16 * 1024
"""Bodies up to this many bytes may be written on the event loop (`Broker.write_entity`)."""


def _inline(raw: bytes, body: Any, link: str | None, media: str, contexts: ContextStore) -> bool:
    """Whether a write of one entity with this body may run on the event loop: the body is
    small and its context is in memory (a malformed one is left to the worker to report)."""
    if len(raw) > _INLINE_BODY or not isinstance(body, dict):
        return False
    try:
        return _Contexts(link, media, contexts).cached(body.get("@context")) is not None
    except NgsiApiError:
        return False


def _expand_entity_body(
    body: Any,
    *,
    resolve: Callable[[Any], Context],
    entity_id: str | None = None,
) -> dict[str, Any]:
    """An entity body validated for shape, names and id, normalized and expanded."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"an entity must be a JSON object, got {type(body).__name__}")
    context = resolve(body.get("@context"))
    raw_id = body.get("id", entity_id)
    if entity_id is not None and raw_id != entity_id:
        raise BadRequestData(
            f"the body's id {raw_id!r} differs from the id in the path {entity_id!r}"
        )
    if raw_id is None:
        raise BadRequestData("the entity has no 'id'")
    if raw_id.__class__ is not str or raw_id not in _GOOD_IDS:
        problem = uri_problem(raw_id)
        if problem:
            raise BadRequestData(f"entity id: {problem}")
        if len(_GOOD_IDS) >= _ID_CACHE_LIMIT:
            _GOOD_IDS.clear()
        _GOOD_IDS.add(raw_id)
    where = f"entity {raw_id!r}"
    if "type" not in body:
        raise BadRequestData(f"{where}: 'type' is missing")
    _check_types(body["type"], where=where)
    expanded = _expand(body, context, where=where)
    expanded["id"] = raw_id
    for type_iri in entity_types(expanded):
        if type_iri.startswith("@") or ":" not in type_iri:
            raise BadRequestData(f"{where}: type {body['type']!r} is not a valid entity type")
    return expanded


def _expand_fragment(
    body: Any, *, link: str | None, media: str, contexts: ContextStore, where: str
) -> tuple[dict[str, Any], Context]:
    if not isinstance(body, dict):
        raise BadRequestData(f"{where}: the attributes must be a JSON object")
    context = _Contexts(link, media, contexts)(body.get("@context"))
    fragment = {k: v for k, v in body.items() if k not in ("id", "@context")}
    if "type" in fragment:
        _check_types(fragment["type"], where=where)
    return _expand(fragment, context, where=where), context


def _attribute_outcome_response(
    outcome: AttributeOutcome, context: Context, tenant: str | None
) -> Response:
    if not outcome.not_updated:
        return _no_content(tenant)
    payload = {
        "updated": [context.compact_iri(n) for n in outcome.updated],
        "notUpdated": [
            {"attributeName": context.compact_iri(n), "reason": reason}
            for n, reason in outcome.not_updated
        ],
    }
    return _respond(payload, media="application/json", context=None, tenant=tenant, status=207)


# --- entities ----------------------------------------------------------------------------------


async def create_entity(request: Request) -> Response:
    broker = broker_of(request)
    tenant = request_tenant(request)
    body, media = await read_json(request)
    link = header(request, "link")

    def work() -> str:
        resolve = _Contexts(link, media, broker.contexts)
        expanded = _expand_entity_body(body, resolve=resolve)
        return broker.entities.create(tenant, expanded)

    entity_id = await broker.run(work)
    return Response(
        status_code=201, headers={"Location": entity_path(entity_id), **tenant_headers(tenant)}
    )


async def retrieve_entity(request: Request) -> Response:
    broker = broker_of(request)
    media = negotiate(request, geo=True)
    tenant = request_tenant(request)
    entity_id = _entity_id_param(request)
    rendering = await cached_entity_response(request.scope, entity_id)
    if rendering is not None:
        return _Prerendered(rendering)
    params = request.query_params

    def work() -> Any:
        context = _get_context(request, broker.contexts)
        view = _view(params, context)
        doc = broker.entities.retrieve(tenant, entity_id)
        return _retrieved(doc, entity_id, view, params, context, media), context

    payload, context = await broker.run(work)
    return _respond(payload, media=media, context=context, tenant=tenant)


def _retrieved(
    doc: dict[str, Any],
    entity_id: str,
    view: EntityView,
    params: Mapping[str, str],
    context: Context,
    media: str,
) -> dict[str, Any]:
    """The body of Retrieve Entity for the stored `doc`, as `view` presents it."""
    if view.attrs is not None and not any(a in doc for a in view.attrs):
        raise ResourceNotFound(
            f"entity {entity_id!r} has none of the attributes {params.get('attrs')}"
        )
    if media == GEO_JSON:
        geometry = context.expand_term(params.get("geometryProperty") or "location")
        return view.feature(doc, geometry)
    return view.render(doc)


_FAST_HEADERS = frozenset({b"accept", b"link", b"ngsild-tenant", b"fiware-service"})


async def cached_entity_response(scope: Scope, entity_id: str) -> Rendering | None:
    """Retrieve Entity answered on the event loop when the entity is in the entity cache: the
    response rendered earlier for the same @context, media type, tenant and query when there is
    one, else rendered now (and kept). None when the request must go through the endpoint: the
    entity is not cached, or the request is refused (the endpoint then says why)."""
    state = scope.get("state")
    broker: Broker | None = state.get("broker") if state else None
    if broker is None:
        return None
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in _FAST_HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    accept = found.get(b"accept")
    media = JSON if not accept else negotiate_header(accept, geo=True)
    if media is None:
        return None
    link = found.get(b"link")
    tenant_name = found.get(b"ngsild-tenant")
    if tenant_name is None:
        tenant_name = found.get(b"fiware-service")
    try:
        tenant = validate_tenant(tenant_name)
    except BadRequestData:
        return None
    cached = broker.store.cached(tenant, entity_id)
    if cached is None:
        return None
    query = scope.get("query_string", b"")
    try:
        context = await broker.contexts.aresolve(_link_url(link))
        key = (media, link, query)
        rendering = cached.rendering(key, context)
        if rendering is not None:
            return rendering
        params = QueryParams(query)
        view = _view(params, context)
        payload = _retrieved(cached.document(), entity_id, view, params, context, media)
    except NgsiApiError:
        return None
    response = _respond(payload, media=media, context=context, tenant=tenant)
    rendering = (bytes(response.body), response.raw_headers, context)
    broker.store.cache.remember(cached, key, rendering)
    return rendering


class _Prerendered(Response):
    """A response rendered and cached earlier (`ngsi.broker._cache`), sent as it is."""

    def __init__(self, rendering: Rendering) -> None:
        self.status_code = 200
        self.background = None
        self.body = rendering[0]
        self.raw_headers = list(rendering[1])


def _view(params: Mapping[str, str], context: Context) -> EntityView:
    fmt, sys_attrs, _ = parse_options(params)
    attrs = split_list(params.get("attrs"))
    for name in attrs:
        problem = attribute_name_problem(name)
        if problem:
            raise BadRequestData(f"parameter 'attrs': {problem}")
    pick = split_list(params.get("pick"))
    omit = split_list(params.get("omit"))
    return EntityView(
        context=context,
        format=fmt,
        sys_attrs=sys_attrs,
        attrs=frozenset(_attribute_key(a, context) for a in attrs) if attrs else None,
        pick=frozenset(_pick_key(a, context) for a in pick) if pick else None,
        omit=frozenset(_pick_key(a, context) for a in omit) if omit else None,
        lang=params.get("lang") or None,
    )


def _pick_key(name: str, context: Context) -> str:
    return name if name in ("id", "type") else context.expand_term(name)


async def replace_entity(request: Request) -> Response:
    broker = broker_of(request)
    tenant = request_tenant(request)
    entity_id = _entity_id_param(request)
    body, media = await read_json(request)
    link = header(request, "link")

    def work() -> None:
        resolve = _Contexts(link, media, broker.contexts)
        expanded = _expand_entity_body(body, resolve=resolve, entity_id=entity_id)
        broker.entities.replace(tenant, entity_id, expanded)

    await broker.run(work)
    return _no_content(tenant)


async def delete_entity(request: Request) -> Response:
    broker = broker_of(request)
    tenant = request_tenant(request)
    entity_id = _entity_id_param(request)
    await broker.run(broker.entities.delete, tenant, entity_id)
    return _no_content(tenant)


async def append_attributes(request: Request) -> Response:
    broker = broker_of(request)
    tenant = request_tenant(request)
    entity_id = _entity_id_param(request)
    _, _, options = parse_options(request.query_params)
    raw, media = await read_body(request)
    body = parse_json(raw)
    link = header(request, "link")

    def work() -> tuple[AttributeOutcome, Context]:
        fragment, context = _expand_fragment(
            body, link=link, media=media, contexts=broker.contexts, where=f"entity {entity_id!r}"
        )
        outcome = broker.entities.append_attributes(
            tenant, entity_id, fragment, overwrite="noOverwrite" not in options
        )
        return outcome, context

    outcome, context = await broker.write_entity(
        tenant, entity_id, work, inline=_inline(raw, body, link, media, broker.contexts)
    )
    return _attribute_outcome_response(outcome, context, tenant)


async def update_attributes(request: Request) -> Response:
    broker = broker_of(request)
    tenant = request_tenant(request)
    entity_id = _entity_id_param(request)
    raw, media = await read_body(request, allow_merge_patch=True)
    body = parse_json(raw)
    link = header(request, "link")

    def work() -> tuple[AttributeOutcome, Context]:
        fragment, context = _expand_fragment(
            body, link=link, media=media, contexts=broker.contexts, where=f"entity {entity_id!r}"
        )
        if not fragment:
            raise BadRequestData(f"entity {entity_id!r}: no attributes to update")

        return broker.entities.update_attributes(tenant, entity_id, fragment), context

    outcome, context = await broker.write_entity(
        tenant, entity_id, work, inline=_inline(raw, body, link, media, broker.contexts)
    )
    return _attribute_outcome_response(outcome, context, tenant)


async def partial_update_attribute(request: Request) -> Response:
    broker = broker_of(request)
    tenant = request_tenant(request)
    entity_id = _entity_id_param(request)
    name = _attr_param(request)
    raw, media = await read_body(request, allow_merge_patch=True)
    body = parse_json(raw)
    link = header(request, "link")

    def work() -> None:
        if not isinstance(body, dict):
            raise BadRequestData(f"entity {entity_id!r}: the attribute must be a JSON object")
        context = _Contexts(link, media, broker.contexts)(body.get("@context"))
        fragment = {k: v for k, v in body.items() if k != "@context"}
        if not fragment:
            raise BadRequestData(f"entity {entity_id!r}: the attribute fragment is empty")
        for key in fragment:
            if key not in ATTRIBUTE_MEMBERS:
                problem = attribute_name_problem(key, sub_attribute=True)
                if problem:
                    raise BadRequestData(f"entity {entity_id!r}, attribute {name!r}: {problem}")
        iri = context.expand_term(name)
        expanded: dict[str, Any] = {}
        for key, value in fragment.items():
            if key in ATTRIBUTE_MEMBERS:
                expanded[key] = value
            else:
                sub = context.expand_term(key)
                expanded[sub] = expand_entity(to_normalized({key: value}), context)[sub]

        broker.entities.partial_update_attribute(tenant, entity_id, iri, expanded)

    await broker.write_entity(
        tenant, entity_id, work, inline=_inline(raw, body, link, media, broker.contexts)
    )
    return _no_content(tenant)


async def merge_entity(request: Request) -> Response:
    """PATCH /entities/{id}: merge the fragment into the entity (NGSI-LD Null deletes)."""
    broker = broker_of(request)
    tenant = request_tenant(request)
    entity_id = _entity_id_param(request)
    raw, media = await read_body(request, allow_merge_patch=True)
    body = parse_json(raw)
    link = header(request, "link")

    def work() -> None:
        if isinstance(body, dict) and "id" in body and body["id"] != entity_id:
            raise BadRequestData(
                f"the body's id {body['id']!r} differs from the id in the path {entity_id!r}"
            )
        fragment, _ = _expand_fragment(
            body, link=link, media=media, contexts=broker.contexts, where=f"entity {entity_id!r}"
        )
        broker.entities.merge(tenant, entity_id, fragment)

    await broker.write_entity(
        tenant, entity_id, work, inline=_inline(raw, body, link, media, broker.contexts)
    )
    return _no_content(tenant)


async def replace_attribute(request: Request) -> Response:
    """PUT /entities/{id}/attrs/{attr}: replace one attribute (instance) whole."""
    broker = broker_of(request)
    tenant = request_tenant(request)
    entity_id = _entity_id_param(request)
    name = _attr_param(request)
    raw, media = await read_body(request)
    body = parse_json(raw)
    link = header(request, "link")

    def work() -> None:
        if not isinstance(body, dict):
            raise BadRequestData(f"entity {entity_id!r}: the attribute must be a JSON object")
        context = _Contexts(link, media, broker.contexts)(body.get("@context"))
        fragment = {k: v for k, v in body.items() if k != "@context"}
        iri = context.expand_term(name)
        normalized = to_normalized({name: fragment})
        expanded = expand_entity(normalized, context)[iri]
        broker.entities.replace_attribute(tenant, entity_id, iri, expanded)

    await broker.write_entity(
        tenant, entity_id, work, inline=_inline(raw, body, link, media, broker.contexts)
    )
    return _no_content(tenant)


async def missing_entity_id(request: Request) -> Response:
    """Paths with an empty entity id (`/entities//attrs`) or none (`PUT /entities`)."""
    raise BadRequestData("the entity id is missing from the path")


async def delete_attribute(request: Request) -> Response:
    broker = broker_of(request)
    tenant = request_tenant(request)
    entity_id = _entity_id_param(request)
    name = _attr_param(request, allow_scope=True)
    params = request.query_params
    delete_all = parse_bool(params.get("deleteAll"), name="deleteAll")
    dataset_id = params.get("datasetId") or None
    if dataset_id is not None and uri_problem(dataset_id):
        raise BadRequestData(f"parameter 'datasetId': {uri_problem(dataset_id)}")

    def work() -> None:
        context = _get_context(request, broker.contexts)
        broker.entities.delete_attribute(
            tenant,
            entity_id,
            name if name == "scope" else context.expand_term(name),
            dataset_id=dataset_id,
            delete_all=delete_all,
        )

    await broker.run(work)
    return _no_content(tenant)


# --- batches -----------------------------------------------------------------------------------


def _problem_of(exc: NgsiApiError) -> dict[str, Any]:
    return exc.to_problem()


def _batch_entities(
    body: Any, *, link: str | None, media: str, contexts: ContextStore
) -> tuple[list[dict[str, Any]], list[tuple[str, NgsiApiError]]]:
    if not isinstance(body, list):
        raise BadRequestData("a batch must be a JSON array of entities")
    if not body:
        raise BadRequestData("the batch is empty")
    if media == JSON_LD and _link_url(link) is not None:
        raise BadRequestData(
            "a JSON-LD Link header cannot be used with Content-Type application/ld+json:"
            " put the @context in each entity, or send Content-Type application/json"
        )
    good: list[dict[str, Any]] = []
    bad: list[tuple[str, NgsiApiError]] = []
    resolve = _Contexts(link, media, contexts)
    for position, item in enumerate(body):
        raw_id = item.get("id") if isinstance(item, dict) else None
        try:
            good.append(_expand_entity_body(item, resolve=resolve))
        except NgsiApiError as exc:
            if isinstance(raw_id, str):
                bad.append((raw_id, exc))
            else:
                # The answer names every failed entity by a URI: one without an id gets
                # NGSI-LD Null, and the detail says where it is in the batch.
                named = type(exc)(f"the batch's entity at position {position}: {exc.detail}")
                bad.append((NGSI_LD_NULL, named))
    return good, bad


def _batch_response(outcome: BatchOutcome, tenant: str | None, *, created_status: bool) -> Response:
    if outcome.errors:
        payload = {
            "success": outcome.success,
            "errors": [
                {"entityId": entity_id, "error": _problem_of(exc)}
                for entity_id, exc in outcome.errors
            ],
        }
        return _respond(payload, media="application/json", context=None, tenant=tenant, status=207)
    if created_status and outcome.created:
        return _respond(
            outcome.created, media="application/json", context=None, tenant=tenant, status=201
        )
    return _no_content(tenant)


async def _batch(
    request: Request,
    operation: Callable[[Broker, str | None, list[dict[str, Any]]], BatchOutcome],
    *,
    created_status: bool,
) -> Response:
    broker = broker_of(request)
    tenant = request_tenant(request)
    raw, media = await read_body(request)
    link = header(request, "link")

    def work() -> BatchOutcome:
        # Parsed here, not on the event loop: the worker then walks objects its own core made.
        body = parse_json(raw)
        good, bad = _batch_entities(body, link=link, media=media, contexts=broker.contexts)
        outcome = operation(broker, tenant, good) if good else BatchOutcome()
        outcome.errors = bad + outcome.errors
        return outcome

    outcome = await broker.run(work)
    return _batch_response(outcome, tenant, created_status=created_status)


async def batch_create(request: Request) -> Response:
    return await _batch(request, lambda b, t, e: b.entities.batch_create(t, e), created_status=True)


async def batch_upsert(request: Request) -> Response:
    _, _, options = parse_options(request.query_params)
    if "update" in options and "replace" in options:
        raise BadRequestData("options=update and options=replace exclude each other")
    mode: UpsertMode = "update" if "update" in options else "replace"
    return await _batch(
        request, lambda b, t, e: b.entities.batch_upsert(t, e, mode=mode), created_status=True
    )


async def batch_update(request: Request) -> Response:
    _, _, options = parse_options(request.query_params)
    overwrite = "noOverwrite" not in options
    return await _batch(
        request,
        lambda b, t, e: b.entities.batch_update(t, e, overwrite=overwrite),
        created_status=False,
    )


async def batch_merge(request: Request) -> Response:
    return await _batch(request, lambda b, t, e: b.entities.batch_merge(t, e), created_status=False)


async def batch_delete(request: Request) -> Response:
    broker = broker_of(request)
    tenant = request_tenant(request)
    body, _ = await read_json(request)
    if not isinstance(body, list) or not body:
        raise BadRequestData("a batch delete needs a non-empty JSON array of entity ids")
    ids: list[str] = []
    bad: list[tuple[str, NgsiApiError]] = []
    for position, item in enumerate(body):
        if not isinstance(item, str):
            detail = f"the batch's item at position {position} is not a string: {item!r}"
            bad.append((NGSI_LD_NULL, BadRequestData(detail)))
            continue
        problem = uri_problem(item)
        if problem:
            bad.append((item, BadRequestData(f"entity id: {problem}")))
        else:
            ids.append(item)

    def work() -> BatchOutcome:
        if not ids:
            return BatchOutcome()
        return broker.entities.batch_delete(tenant, ids)

    outcome = await broker.run(work)
    outcome.errors = bad + outcome.errors
    return _batch_response(outcome, tenant, created_status=False)


# --- queries -----------------------------------------------------------------------------------


def _compile_q(text: str, context: Context) -> Callable[[Mapping[str, Any]], bool]:
    from ngsi._qeval import compile_q
    from ngsi._query import parse_q

    tree = parse_q(text).map_attributes(lambda n: _attribute_key(n, context))
    return compile_q(tree)


def _selection(query: EntityQueryParams, context: Context) -> EntityFilter:
    predicates: list[Callable[[Mapping[str, Any]], bool]] = []
    if query.scope_q:
        predicates.append(compile_scope_q(query.scope_q))
    if query.q:
        predicates.append(_compile_q(query.q, context))
    if query.geo:
        geo = query.geo
        predicates.append(
            geo_filter_from_params(
                georel=geo["georel"],
                geometry=geo["geometry"],
                coordinates=geo["coordinates"],
                geoproperty=context.expand_term(geo["geoproperty"]),
            ).predicate()
        )
    predicate: Callable[[Mapping[str, Any]], bool] | None = None
    if len(predicates) == 1:
        predicate = predicates[0]
    elif predicates:

        def every(doc: Mapping[str, Any]) -> bool:
            return all(test(doc) for test in predicates)

        predicate = every
    return EntityFilter(
        types=query.types,
        ids=query.ids,
        id_pattern=query.id_pattern,
        attrs=query.attrs,
        predicate=predicate,
    )


def _run_query(
    broker: Broker,
    request: Request,
    tenant: str | None,
    media: MediaType,
    parse: Callable[[Context], EntityQueryParams],
) -> tuple[Any, Context, int | None]:
    context = _get_context(request, broker.contexts)
    query = parse(context)
    selection = _selection(query, context)
    result = broker.entities.query(
        tenant, selection, limit=query.limit, offset=query.offset, count=query.count
    )
    view = EntityView(
        context=context,
        format=query.format,
        sys_attrs=query.sys_attrs,
        attrs=frozenset(query.attrs) if query.attrs else None,
        pick=frozenset(_pick_key(p, context) for p in query.pick) if query.pick else None,
        omit=frozenset(_pick_key(p, context) for p in query.omit) if query.omit else None,
        lang=query.lang,
    )
    if media == GEO_JSON:
        geometry = context.expand_term(request.query_params.get("geometryProperty") or "location")
        payload: Any = {
            "type": "FeatureCollection",
            "features": [view.feature(doc, geometry) for doc in result.entities],
        }
    else:
        payload = [view.render(doc) for doc in result.entities]
    return payload, context, result.count


def _query_response(
    payload: Any, context: Context, count: int | None, media: MediaType, tenant: str | None
) -> Response:
    headers = {"NGSILD-Results-Count": str(count)} if count is not None else None
    return _respond(payload, media=media, context=context, tenant=tenant, headers=headers)


async def query_entities(request: Request) -> Response:
    broker = broker_of(request)
    media = negotiate(request, geo=True)
    tenant = request_tenant(request)
    params = request.query_params
    settings = broker.settings

    def parse(context: Context) -> EntityQueryParams:
        return EntityQueryParams.from_query(
            params,
            context,
            default_limit=settings.default_page_size,
            max_limit=settings.max_page_size,
        )

    payload, context, count = await broker.run(_run_query, broker, request, tenant, media, parse)
    return _query_response(payload, context, count, media, tenant)


async def query_entities_post(request: Request) -> Response:
    broker = broker_of(request)
    media = negotiate(request, geo=True)
    tenant = request_tenant(request)
    body, content_type = await read_json(request)
    params = request.query_params
    settings = broker.settings
    if not isinstance(body, dict):
        raise BadRequestData('the query must be a JSON object with "type": "Query"')
    link = header(request, "link")

    def work() -> tuple[Any, Context, int | None]:
        context = _Contexts(link, content_type, broker.contexts)(body.get("@context"))

        def parse(_: Context) -> EntityQueryParams:
            return EntityQueryParams.from_body(
                body,
                params,
                context,
                default_limit=settings.default_page_size,
                max_limit=settings.max_page_size,
            )

        payload, _, count = _run_query(broker, request, tenant, media, parse)
        return payload, context, count

    payload, context, count = await broker.run(work)
    return _query_response(payload, context, count, media, tenant)


# --- types and attributes ----------------------------------------------------------------------


def _list_id(kind: str) -> str:
    return f"urn:ngsi-ld:{kind}:{uuid.uuid4()}"


async def get_types(request: Request) -> Response:
    broker = broker_of(request)
    media = negotiate(request)
    tenant = request_tenant(request)
    details = parse_bool(request.query_params.get("details"), name="details")

    def work() -> tuple[Any, Context]:
        context = _get_context(request, broker.contexts)
        if not details:
            types = broker.entities.type_counts(tenant)
            names = sorted(context.compact_iri(t) for t in types)
            return {
                "id": _list_id("EntityTypeList"),
                "type": "EntityTypeList",
                "typeList": names,
            }, context
        by_type = broker.entities.attributes_by_type(tenant)
        return [
            {
                "id": type_iri,
                "type": "EntityType",
                "typeName": context.compact_iri(type_iri),
                "attributeNames": sorted(context.compact_iri(a) for a in attrs),
            }
            for type_iri, attrs in sorted(by_type.items())
        ], context

    payload, context = await broker.run(work)
    return _respond(payload, media=media, context=context, tenant=tenant)


async def get_type(request: Request) -> Response:
    broker = broker_of(request)
    media = negotiate(request)
    tenant = request_tenant(request)
    name = path_param(request, "type")

    def work() -> tuple[Any, Context]:
        context = _get_context(request, broker.contexts)
        iri = context.expand_term(name)
        counts = broker.entities.type_counts(tenant)
        if iri not in counts:
            raise ResourceNotFound(f"no entity of type {name!r} ({iri})")
        attrs = broker.entities.attributes_by_type(tenant, [iri]).get(iri, set())
        details = []
        for attr in sorted(attrs):
            info = broker.entities.attribute_details(tenant, attr)
            details.append(
                {
                    "id": attr,
                    "type": "Attribute",
                    "attributeName": context.compact_iri(attr),
                    "attributeTypes": sorted(info[2]) if info else [],
                }
            )
        return {
            "id": iri,
            "type": "EntityTypeInfo",
            "typeName": context.compact_iri(iri),
            "entityCount": counts[iri],
            "attributeDetails": details,
        }, context

    payload, context = await broker.run(work)
    return _respond(payload, media=media, context=context, tenant=tenant)


async def get_attributes(request: Request) -> Response:
    broker = broker_of(request)
    media = negotiate(request)
    tenant = request_tenant(request)
    details = parse_bool(request.query_params.get("details"), name="details")

    def work() -> tuple[Any, Context]:
        context = _get_context(request, broker.contexts)
        by_type = broker.entities.attributes_by_type(tenant)
        types_of: dict[str, set[str]] = {}
        for type_iri, attrs in by_type.items():
            for attr in attrs:
                types_of.setdefault(attr, set()).add(type_iri)
        if not details:
            return {
                "id": _list_id("AttributeList"),
                "type": "AttributeList",
                "attributeList": sorted(context.compact_iri(a) for a in types_of),
            }, context
        return [
            {
                "id": attr,
                "type": "Attribute",
                "attributeName": context.compact_iri(attr),
                "typeNames": sorted(context.compact_iri(t) for t in types),
            }
            for attr, types in sorted(types_of.items())
        ], context

    payload, context = await broker.run(work)
    return _respond(payload, media=media, context=context, tenant=tenant)


async def get_attribute(request: Request) -> Response:
    broker = broker_of(request)
    media = negotiate(request)
    tenant = request_tenant(request)
    name = path_param(request, "attr")

    def work() -> tuple[Any, Context]:
        context = _get_context(request, broker.contexts)
        iri = context.expand_term(name)
        info = broker.entities.attribute_details(tenant, iri)
        if info is None:
            raise ResourceNotFound(f"no entity has attribute {name!r} ({iri})")
        count, types, kinds = info
        return {
            "id": iri,
            "type": "Attribute",
            "attributeName": context.compact_iri(iri),
            "attributeCount": count,
            "attributeTypes": sorted(kinds),
            "typeNames": sorted(context.compact_iri(t) for t in types),
        }, context

    payload, context = await broker.run(work)
    return _respond(payload, media=media, context=context, tenant=tenant)


@functools.cache
def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("drehscheibe")
    except PackageNotFoundError:
        return "0+unknown"


async def version(request: Request) -> Response:
    """Health and version: always answers while the broker runs (no API key needed)."""
    payload = {
        "broker": "drehscheibe-ngsi-ld",
        "version": _package_version(),
        "ngsiLdSpec": "1.6.1",
        "coreContext": CORE_CONTEXT_URL,
    }
    return _respond(payload, media="application/json", context=None, tenant=None)


def types_of(doc: Mapping[str, Any]) -> tuple[str, ...]:
    return entity_types(doc)
