"""The broker's routing table: the NGSI-LD resources, one `Route` per path.

A path served by several methods gets one route whose endpoint dispatches on the method
(`by_method`), so that Starlette answers 405 with the full `Allow` list and matches each path
once. Every route has a name, so that `request.url_for(name, ...)` can build links.
Extensions (subscriptions, temporal) add their routes under the same `/ngsi-ld/v1` mount.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from ngsi.broker import _endpoints as e
from ngsi.broker import _jsonld_contexts as c

__all__ = ["API_PREFIX", "build_routes", "by_method", "entity_routes"]

API_PREFIX = e.API_PREFIX

Endpoint = Callable[[Request], Awaitable[Response]]


def by_method(path: str, *, name: str, **endpoints: Endpoint) -> Route:
    """One route for `path` whose endpoint is chosen by the HTTP method (keyword = method)."""
    table = {method.upper(): endpoint for method, endpoint in endpoints.items()}

    async def dispatch(request: Request) -> Response:
        method = request.method
        endpoint = table.get("GET" if method == "HEAD" else method)
        assert endpoint is not None  # the route only matches its methods
        return await endpoint(request)

    return Route(path, dispatch, methods=list(table), name=name)


def entity_routes() -> list[BaseRoute]:
    """Entities, batch operations, types, attributes and hosted @contexts."""
    return [
        by_method(
            "/entities/{entity_id}",
            name="entity",
            get=e.retrieve_entity,
            put=e.replace_entity,
            patch=e.merge_entity,
            delete=e.delete_entity,
        ),
        by_method(
            "/entities/{entity_id}/attrs/{attr}",
            name="entity_attr",
            patch=e.partial_update_attribute,
            put=e.replace_attribute,
            delete=e.delete_attribute,
        ),
        by_method(
            "/entities/{entity_id}/attrs",
            name="entity_attrs",
            post=e.append_attributes,
            patch=e.update_attributes,
        ),
        by_method(
            "/entities",
            name="entities",
            get=e.query_entities,
            post=e.create_entity,
            put=e.missing_entity_id,
            patch=e.missing_entity_id,
            delete=e.missing_entity_id,
        ),
        Route(
            "/entities//attrs{rest:path}",
            e.missing_entity_id,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            name="entity_missing",
        ),
        Route("/entityOperations/upsert", e.batch_upsert, methods=["POST"], name="batch_upsert"),
        Route("/entityOperations/create", e.batch_create, methods=["POST"], name="batch_create"),
        Route("/entityOperations/update", e.batch_update, methods=["POST"], name="batch_update"),
        Route("/entityOperations/delete", e.batch_delete, methods=["POST"], name="batch_delete"),
        Route("/entityOperations/merge", e.batch_merge, methods=["POST"], name="batch_merge"),
        Route(
            "/entityOperations/query", e.query_entities_post, methods=["POST"], name="batch_query"
        ),
        Route("/types", e.get_types, methods=["GET"], name="types"),
        Route("/types/{type}", e.get_type, methods=["GET"], name="type"),
        Route("/attributes", e.get_attributes, methods=["GET"], name="attributes"),
        Route("/attributes/{attr}", e.get_attribute, methods=["GET"], name="attribute"),
        by_method(
            "/jsonldContexts", name="jsonld_contexts", get=c.list_contexts, post=c.create_context
        ),
        by_method(
            "/jsonldContexts/{context_id}",
            name="jsonld_context",
            get=c.get_context,
            delete=c.delete_context,
        ),
    ]


def build_routes(extra: Sequence[BaseRoute] = ()) -> list[BaseRoute]:
    """The whole table: `/version`, `/ngsi-ld/ex/v1/version`, and `/ngsi-ld/v1` with the
    entity routes followed by `extra` (extension routes, relative to `/ngsi-ld/v1`)."""
    return [
        Mount(API_PREFIX, routes=[*entity_routes(), *extra], name="ngsi-ld"),
        Route("/version", e.version, methods=["GET"], name="version"),
        Route("/ngsi-ld/ex/v1/version", e.version, methods=["GET"], name="version_ex"),
    ]
