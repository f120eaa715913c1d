"""The NGSI-LD client: `Client` (blocking) and `AsyncClient` (coroutines), with the same methods.

    with Client("http://orion:1026", tenant="city", context=SDM_ENVIRONMENT) as broker:
        result = broker.batch_upsert(entities, mode="update")
        for entity in broker.iter_entities(type="AirQualityObserved"):
            ...

Both faces share `BaseNgsiClient`, which builds every request and reads every answer; they only
send. A client opens nothing in its constructor; it is opened by `with` (or its first request)
and closed by `close()` / `aclose()` or the end of the `with` block, after which it refuses to
work: make a new one.

Errors: no httpx exception escapes. A request that got no answer (after the retries of
`RetryPolicy`) raises `NgsiTransportError` with `.request`; an error answer raises the
`NgsiApiError` subclass of its ProblemDetails type (`ResourceNotFound`, `AlreadyExists`, ...)
with `.request` and `.response`. Batch operations do not raise for what happens to single
entities or chunks: they report it in their `BatchResult`.

Every operation takes the per-call overrides `tenant=`, `context=` and `timeout=`, which default
to `USE_CLIENT_DEFAULT` (the client's own setting); `tenant=None` means the default tenant,
`timeout=None` no timeout.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import httpx

from ngsi._batch import BatchResult
from ngsi._client_base import (
    DEFAULT_RETRIES,
    USE_CLIENT_DEFAULT,
    BaseNgsiClient,
    ClientState,
    ContextArg,
    EntityLike,
    GeoQueryArg,
    Names,
    Options,
    RawEntity,
    TimeoutArg,
    TimeRel,
    UpdateResult,
    UseClientDefault,
    join_names,
    quote_segment,
)
from ngsi._paging import Flow, Pager, Send
from ngsi._profiles import BrokerProfile
from ngsi._retry import RetryMode, RetryPolicy, async_retrying, retrying
from ngsi._subscription import Subscription

__all__ = ["AsyncClient", "Client"]

logger = logging.getLogger("ngsi.client")

T = TypeVar("T")

_HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)

UpsertMode = Literal["update", "replace"]


def _upsert_options(mode: UpsertMode) -> str | None:
    if mode == "update":
        return "update"
    if mode == "replace":
        return None
    raise ValueError(f"mode must be 'update' or 'replace', got {mode!r}")


class Client(BaseNgsiClient):
    """A blocking NGSI-LD client.

    `base_url` is the broker's root (`http://localhost:1026`), without `/ngsi-ld/v1`.
    `context` is the @context of every request unless a call overrides it: a URL (sent as the
    `Link` header) or an inline context (a dict or list, sent in bodies). `auth` is an httpx
    `Auth` (`BearerToken`, `OAuth2ClientCredentials`) or a bearer token string. `profile` names
    the broker (`orion-ld`, `scorpio`, `stellio`, `embedded`) or is a `BrokerProfile`. Give
    `transport` (an httpx transport, for tests) or `http_client` (a ready `httpx.Client`, which
    stays yours: `close()` does not close it), not both.
    """

    _http: httpx.Client

    def __init__(
        self,
        base_url: str = "http://localhost:1026",
        *,
        tenant: str | None = None,
        context: ContextArg = None,
        timeout: TimeoutArg = 5.0,
        auth: httpx.Auth | str | None = None,
        profile: str | BrokerProfile = "orion-ld",
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        headers: Mapping[str, str] | None = None,
        retries: RetryPolicy = DEFAULT_RETRIES,
    ) -> None:
        super().__init__(
            base_url,
            tenant=tenant,
            context=context,
            timeout=timeout,
            auth=auth,
            profile=profile,
            headers=headers,
            retries=retries,
        )
        if http_client is not None and transport is not None:
            raise ValueError("give transport or http_client, not both")
        if http_client is not None:
            self._http = http_client
            self._owns_http = False
        else:
            self._http = httpx.Client(transport=transport, timeout=self.timeout)

    # Lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._check_enter()
        if self._owns_http:
            self._http.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections (of an http client this client made); idempotent."""
        if self._state is ClientState.CLOSED:
            return
        self._state = ClientState.CLOSED
        if self._owns_http:
            self._http.close()

    # Sending -----------------------------------------------------------------------------------

    def _send(self, step: Send) -> httpx.Response:
        request = step.request
        controller = retrying(self.retries, step.mode, self._log_retry(request))
        auth = self.auth if self.auth is not None else httpx.USE_CLIENT_DEFAULT
        try:
            response: httpx.Response = controller(self._http.send, request, auth=auth)
        except _HTTPX_ERRORS as exc:
            raise self._transport_error(exc, request) from exc
        logger.debug("%s %s -> %s", request.method, request.url, response.status_code)
        return response

    def _run(self, flow: Flow[T]) -> T:
        self._check_open()
        try:
            step = next(flow)
            while True:
                try:
                    response = self._send(step)
                except Exception as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as stop:
            result: T = stop.value
            return result

    def _walk(self, pager: Pager[T]) -> Iterator[T]:
        while not pager.done:
            yield from self._run(pager.page())

    # Entities ----------------------------------------------------------------------------------

    def create(
        self,
        entity: EntityLike,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> str:
        """Create one entity (`POST /entities`) and return its id.

        Raises `AlreadyExists` if the id is taken. Never sent twice: after a timeout or a
        dropped connection the error is raised, since the broker may have created it.
        """
        return self._run(self._create_flow(entity, tenant=tenant, context=context, timeout=timeout))

    def retrieve(
        self,
        entity_id: str,
        *,
        attrs: Names | None = None,
        options: Options | None = None,
        pick: Names | None = None,
        omit: Names | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> dict[str, Any]:
        """The entity with this id as a plain dict (`GET /entities/{id}`).

        `options` is e.g. `keyValues`, `concise` or `sysAttrs`; `pick` / `omit` (NGSI-LD 1.8)
        select members. Raises `ResourceNotFound`, or `NonexistentTenant` on a tenant nothing
        was written to.
        """
        return self._run(
            self._retrieve_flow(
                entity_id,
                attrs=attrs,
                options=options,
                pick=pick,
                omit=omit,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        )

    def replace(
        self,
        entity_id: str,
        entity: EntityLike,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Replace the whole entity (`PUT /entities/{id}`): attributes not given are removed."""
        self._run(
            self._replace_flow(entity_id, entity, tenant=tenant, context=context, timeout=timeout)
        )

    def delete(
        self,
        entity_id: str,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Delete the entity (`DELETE /entities/{id}`); raises `ResourceNotFound` if absent."""
        self._run(self._delete_flow(entity_id, tenant=tenant, timeout=timeout))

    def append_attrs(
        self,
        entity_id: str,
        attrs: EntityLike,
        *,
        no_overwrite: bool = False,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> UpdateResult:
        """Add attributes to the entity, replacing same-named ones unless `no_overwrite`.

        `POST /entities/{id}/attrs`. Sending it twice has the effect of sending it once, so it
        is retried like the idempotent methods.
        """
        return self._run(
            self._append_attrs_flow(
                entity_id,
                attrs,
                no_overwrite=no_overwrite,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        )

    def update_attrs(
        self,
        entity_id: str,
        attrs: EntityLike,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> UpdateResult:
        """Update existing attributes (`PATCH /entities/{id}/attrs`); others are not added."""
        return self._run(
            self._update_attrs_flow(
                entity_id, attrs, tenant=tenant, context=context, timeout=timeout
            )
        )

    def partial_update_attr(
        self,
        entity_id: str,
        attr: str,
        fragment: EntityLike,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Change members of one attribute (`PATCH /entities/{id}/attrs/{attr}`)."""
        self._run(
            self._partial_update_attr_flow(
                entity_id, attr, fragment, tenant=tenant, context=context, timeout=timeout
            )
        )

    def delete_attr(
        self,
        entity_id: str,
        attr: str,
        *,
        dataset_id: str | None = None,
        delete_all: bool = False,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Delete an attribute: its default instance, one `dataset_id`, or all (`delete_all`)."""
        self._run(
            self._delete_attr_flow(
                entity_id,
                attr,
                dataset_id=dataset_id,
                delete_all=delete_all,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        )

    # Batches -----------------------------------------------------------------------------------

    def batch_create(
        self,
        entities: Iterable[EntityLike | RawEntity],
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> BatchResult:
        """Create many entities (`POST /entityOperations/create`), chunked to the profile's limits.

        Entities that exist already fail with `AlreadyExists`. A chunk is never sent twice once
        it may have reached the broker: without an answer its entities are reported with
        `status=None` (outcome unknown) and the later chunks are not sent.
        """
        return self._run(
            self._batch_entities_flow(
                "create",
                entities,
                params={},
                mode=RetryMode.NOT_SENT_ONLY,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        )

    def batch_upsert(
        self,
        entities: Iterable[EntityLike | RawEntity],
        *,
        mode: UpsertMode = "update",
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> BatchResult:
        """Create the entities that do not exist and write the others (`/entityOperations/upsert`).

        `mode="update"` (`options=update`, the default here) merges the given attributes into
        existing entities and leaves the others alone. `mode="replace"` is the specification's
        default: every existing entity is replaced whole, which wipes attributes that others
        (an administrator, another agent) set. The client defaults to "update" because an agent
        owns only the attributes it writes (DESIGN decision 3).

        Chunked to the profile's limits (entities and bytes per request); an entity too large
        for one request fails alone. Each chunk is retried on its own (upsert is idempotent);
        a chunk the broker rejects as a whole marks its entities failed and the next chunks
        still go. See `ngsi._batch.batch_outcome` for what counts as succeeded. Entities given
        as `RawEntity` (JSON already serialised) are sent as they are.
        """
        return self._run(
            self._batch_entities_flow(
                "upsert",
                entities,
                params={"options": _upsert_options(mode)},
                mode=RetryMode.IDEMPOTENT,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        )

    def batch_update(
        self,
        entities: Iterable[EntityLike | RawEntity],
        *,
        no_overwrite: bool = False,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> BatchResult:
        """Update attributes of existing entities (`/entityOperations/update`), chunked.

        With `no_overwrite` only attributes the entities do not have yet are added. Entities
        that do not exist fail with `ResourceNotFound`.
        """
        return self._run(
            self._batch_entities_flow(
                "update",
                entities,
                params={"options": "noOverwrite" if no_overwrite else None},
                mode=RetryMode.IDEMPOTENT,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        )

    def batch_delete(
        self,
        entity_ids: Iterable[str],
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> BatchResult:
        """Delete entities by id (`/entityOperations/delete`), chunked; absent ones fail."""
        return self._run(self._batch_delete_flow(entity_ids, tenant=tenant, timeout=timeout))

    # Queries -----------------------------------------------------------------------------------

    def query(
        self,
        *,
        type: Names | None = None,
        id: Names | None = None,
        id_pattern: str | None = None,
        attrs: Names | None = None,
        q: object | None = None,
        geoq: GeoQueryArg | None = None,
        options: Options | None = None,
        limit: int | None = None,
        offset: int | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[dict[str, Any]]:
        """One page of matching entities (`GET /entities`), as plain dicts.

        `type`, `id` and `attrs` take one name or several; `q` is q text or a q tree (its
        `str()`); `geoq` holds `georel`, `geometry`, `coordinates` and optionally
        `geoproperty`. Without `limit` the broker's default page (often 20) comes back; `limit`
        may not exceed the profile's page size: walk all with `iter_entities` / `query_all`.
        On a tenant nothing was written to the result is empty (see `ngsi._profiles`).
        """
        params = self._filters(
            type=type, id=id, id_pattern=id_pattern, attrs=attrs, q=q, geoq=geoq, options=options
        )
        params["limit"] = self._limit(limit)
        params["offset"] = None if not offset else str(offset)
        return self._run(self._query_flow(params, tenant=tenant, context=context, timeout=timeout))

    def iter_entities(
        self,
        *,
        type: Names | None = None,
        id: Names | None = None,
        id_pattern: str | None = None,
        attrs: Names | None = None,
        q: object | None = None,
        geoq: GeoQueryArg | None = None,
        options: Options | None = None,
        page_size: int | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> Iterator[dict[str, Any]]:
        """Every matching entity, fetched page by page as the iterator is consumed.

        Pages hold `page_size` entities, at most the profile's page size (the default). The
        walk uses limit/offset and follows a broker's `Link: rel="next"` when it sends one.
        Entities written while walking may be missed or seen twice, as with any offset paging.
        """
        params = self._filters(
            type=type, id=id, id_pattern=id_pattern, attrs=attrs, q=q, geoq=geoq, options=options
        )
        pager = self._entity_pager(
            params, page_size=page_size, tenant=tenant, context=context, timeout=timeout
        )
        return self._walk(pager)

    def query_all(
        self,
        *,
        type: Names | None = None,
        id: Names | None = None,
        id_pattern: str | None = None,
        attrs: Names | None = None,
        q: object | None = None,
        geoq: GeoQueryArg | None = None,
        options: Options | None = None,
        page_size: int | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[dict[str, Any]]:
        """All matching entities in one list: `iter_entities` collected."""
        return list(
            self.iter_entities(
                type=type,
                id=id,
                id_pattern=id_pattern,
                attrs=attrs,
                q=q,
                geoq=geoq,
                options=options,
                page_size=page_size,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        )

    def count(
        self,
        *,
        type: Names | None = None,
        id: Names | None = None,
        id_pattern: str | None = None,
        attrs: Names | None = None,
        q: object | None = None,
        geoq: GeoQueryArg | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> int:
        """How many entities match (`count=true&limit=0`, read from `NGSILD-Results-Count`)."""
        params = self._filters(type=type, id=id, id_pattern=id_pattern, attrs=attrs, q=q, geoq=geoq)
        return self._run(self._count_flow(params, tenant=tenant, context=context, timeout=timeout))

    def types(
        self,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[str]:
        """The names of the entity types present (`GET /types`), compacted with the context."""
        return self._run(
            self._names_flow("types", "typeList", tenant=tenant, context=context, timeout=timeout)
        )

    def type_info(
        self,
        type: str,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> dict[str, Any]:
        """What the broker knows about one entity type (`GET /types/{type}`)."""
        return self._run(
            self._info_flow(
                f"types/{quote_segment(type)}", tenant=tenant, context=context, timeout=timeout
            )
        )

    def attributes(
        self,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[str]:
        """The names of the attributes present (`GET /attributes`)."""
        return self._run(
            self._names_flow(
                "attributes", "attributeList", tenant=tenant, context=context, timeout=timeout
            )
        )

    def attribute_info(
        self,
        name: str,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> dict[str, Any]:
        """What the broker knows about one attribute (`GET /attributes/{name}`)."""
        return self._run(
            self._info_flow(
                f"attributes/{quote_segment(name)}", tenant=tenant, context=context, timeout=timeout
            )
        )

    # Subscriptions -----------------------------------------------------------------------------

    def create_subscription(
        self,
        subscription: Subscription | Mapping[str, Any],
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> str:
        """Create a subscription (`POST /subscriptions`) and return its id; never sent twice."""
        return self._run(
            self._create_subscription_flow(
                subscription, tenant=tenant, context=context, timeout=timeout
            )
        )

    def list_subscriptions(
        self,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[Subscription]:
        """Every subscription of the tenant, paging through all of them."""
        pager = self._subscription_pager(tenant=tenant, context=context, timeout=timeout)
        return list(self._walk(pager))

    def retrieve_subscription(
        self,
        subscription_id: str,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> Subscription:
        """One subscription, with the broker's status members."""
        return self._run(
            self._retrieve_subscription_flow(
                subscription_id, tenant=tenant, context=context, timeout=timeout
            )
        )

    def update_subscription(
        self,
        subscription_id: str,
        fragment: Subscription | Mapping[str, Any],
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Change members of a subscription (`PATCH /subscriptions/{id}`), camelCase keys."""
        self._run(
            self._update_subscription_flow(
                subscription_id, fragment, tenant=tenant, context=context, timeout=timeout
            )
        )

    def delete_subscription(
        self,
        subscription_id: str,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Delete a subscription; raises `ResourceNotFound` if absent."""
        self._run(self._delete_subscription_flow(subscription_id, tenant=tenant, timeout=timeout))

    # Temporal ----------------------------------------------------------------------------------

    def temporal_retrieve(
        self,
        entity_id: str,
        *,
        timerel: TimeRel | None = None,
        time_at: datetime | str | None = None,
        end_time_at: datetime | str | None = None,
        last_n: int | None = None,
        attrs: Names | None = None,
        options: Options | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> dict[str, Any]:
        """The history of one entity (`GET /temporal/entities/{id}`).

        `timerel` is `before` / `after` (with `time_at`) or `between` (with `time_at` and
        `end_time_at`); datetimes must be timezone-aware. `options` may be `temporalValues`.
        """
        params = self._temporal(
            timerel=timerel, time_at=time_at, end_time_at=end_time_at, last_n=last_n
        )
        params.update(attrs=join_names(attrs), options=join_names(options))
        return self._run(
            self._temporal_retrieve_flow(
                entity_id, params, tenant=tenant, context=context, timeout=timeout
            )
        )

    def temporal_query(
        self,
        *,
        type: Names | None = None,
        id: Names | None = None,
        id_pattern: str | None = None,
        attrs: Names | None = None,
        q: object | None = None,
        geoq: GeoQueryArg | None = None,
        timerel: TimeRel | None = None,
        time_at: datetime | str | None = None,
        end_time_at: datetime | str | None = None,
        last_n: int | None = None,
        options: Options | None = None,
        limit: int | None = None,
        offset: int | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[dict[str, Any]]:
        """One page of entity histories (`GET /temporal/entities`); filters as in `query`."""
        params = self._filters(
            type=type, id=id, id_pattern=id_pattern, attrs=attrs, q=q, geoq=geoq, options=options
        )
        params.update(
            self._temporal(timerel=timerel, time_at=time_at, end_time_at=end_time_at, last_n=last_n)
        )
        params["limit"] = self._limit(limit)
        params["offset"] = None if not offset else str(offset)
        return self._run(
            self._query_flow(
                params, tenant=tenant, context=context, timeout=timeout, path="temporal/entities"
            )
        )

    # @contexts ---------------------------------------------------------------------------------

    def add_context(
        self,
        document: Mapping[str, Any],
        *,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> str:
        """Store an @context document on the broker (`POST /jsonldContexts`); return its URL.

        `document` is `{"@context": ...}`; a mapping without `@context` is wrapped in one. The
        returned URL can then be used as a `context`, also for requests without a body.
        """
        return self._run(self._add_context_flow(document, timeout=timeout))

    def list_contexts(
        self,
        *,
        details: bool = False,
        kind: str | None = None,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[Any]:
        """The broker's @contexts: URLs, or descriptions with `details=True`; `kind` filters."""
        return self._run(self._contexts_flow(details=details, kind=kind, timeout=timeout))

    def retrieve_context(
        self,
        context_id: str,
        *,
        details: bool = False,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> dict[str, Any]:
        """One stored @context (`GET /jsonldContexts/{id}`), by local id or URL."""
        return self._run(self._context_flow(context_id, details=details, timeout=timeout))

    def delete_context(
        self,
        context_id: str,
        *,
        reload: bool = False,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Delete a stored @context, or with `reload=True` make the broker fetch it again."""
        self._run(self._delete_context_flow(context_id, reload=reload, timeout=timeout))


class AsyncClient(BaseNgsiClient):
    """An asyncio (anyio) NGSI-LD client: the methods of `Client`, as coroutines.

    `base_url` is the broker's root (`http://localhost:1026`), without `/ngsi-ld/v1`.
    `context` is the @context of every request unless a call overrides it: a URL (sent as the
    `Link` header) or an inline context (a dict or list, sent in bodies). `auth` is an httpx
    `Auth` (`BearerToken`, `OAuth2ClientCredentials`) or a bearer token string. `profile` names
    the broker (`orion-ld`, `scorpio`, `stellio`, `embedded`) or is a `BrokerProfile`. Give
    `transport` (an httpx transport, for tests) or `http_client` (a ready `httpx.AsyncClient`, which
    stays yours: `aclose()` does not close it), not both.
    """

    _http: httpx.AsyncClient

    def __init__(
        self,
        base_url: str = "http://localhost:1026",
        *,
        tenant: str | None = None,
        context: ContextArg = None,
        timeout: TimeoutArg = 5.0,
        auth: httpx.Auth | str | None = None,
        profile: str | BrokerProfile = "orion-ld",
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
        retries: RetryPolicy = DEFAULT_RETRIES,
    ) -> None:
        super().__init__(
            base_url,
            tenant=tenant,
            context=context,
            timeout=timeout,
            auth=auth,
            profile=profile,
            headers=headers,
            retries=retries,
        )
        if http_client is not None and transport is not None:
            raise ValueError("give transport or http_client, not both")
        if http_client is not None:
            self._http = http_client
            self._owns_http = False
        else:
            self._http = httpx.AsyncClient(transport=transport, timeout=self.timeout)

    # Lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._check_enter()
        if self._owns_http:
            await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections (of an http client this client made); idempotent."""
        if self._state is ClientState.CLOSED:
            return
        self._state = ClientState.CLOSED
        if self._owns_http:
            await self._http.aclose()

    # Sending -----------------------------------------------------------------------------------

    async def _send(self, step: Send) -> httpx.Response:
        request = step.request
        controller = async_retrying(self.retries, step.mode, self._log_retry(request))
        auth = self.auth if self.auth is not None else httpx.USE_CLIENT_DEFAULT
        try:
            response: httpx.Response = await controller(self._http.send, request, auth=auth)
        except _HTTPX_ERRORS as exc:
            raise self._transport_error(exc, request) from exc
        logger.debug("%s %s -> %s", request.method, request.url, response.status_code)
        return response

    async def _run(self, flow: Flow[T]) -> T:
        self._check_open()
        try:
            step = next(flow)
            while True:
                try:
                    response = await self._send(step)
                except Exception as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as stop:
            result: T = stop.value
            return result

    async def _walk(self, pager: Pager[T]) -> AsyncIterator[T]:
        while not pager.done:
            for item in await self._run(pager.page()):
                yield item

    # Entities ----------------------------------------------------------------------------------

    async def create(
        self,
        entity: EntityLike,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> str:
        """Create one entity (`POST /entities`) and return its id.

        Raises `AlreadyExists` if the id is taken. Never sent twice: after a timeout or a
        dropped connection the error is raised, since the broker may have created it.
        """
        return await self._run(
            self._create_flow(entity, tenant=tenant, context=context, timeout=timeout)
        )

    async def retrieve(
        self,
        entity_id: str,
        *,
        attrs: Names | None = None,
        options: Options | None = None,
        pick: Names | None = None,
        omit: Names | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> dict[str, Any]:
        """The entity with this id as a plain dict (`GET /entities/{id}`).

        `options` is e.g. `keyValues`, `concise` or `sysAttrs`; `pick` / `omit` (NGSI-LD 1.8)
        select members. Raises `ResourceNotFound`, or `NonexistentTenant` on a tenant nothing
        was written to.
        """
        return await self._run(
            self._retrieve_flow(
                entity_id,
                attrs=attrs,
                options=options,
                pick=pick,
                omit=omit,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        )

    async def replace(
        self,
        entity_id: str,
        entity: EntityLike,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Replace the whole entity (`PUT /entities/{id}`): attributes not given are removed."""
        await self._run(
            self._replace_flow(entity_id, entity, tenant=tenant, context=context, timeout=timeout)
        )

    async def delete(
        self,
        entity_id: str,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Delete the entity (`DELETE /entities/{id}`); raises `ResourceNotFound` if absent."""
        await self._run(self._delete_flow(entity_id, tenant=tenant, timeout=timeout))

    async def append_attrs(
        self,
        entity_id: str,
        attrs: EntityLike,
        *,
        no_overwrite: bool = False,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> UpdateResult:
        """Add attributes to the entity, replacing same-named ones unless `no_overwrite`.

        `POST /entities/{id}/attrs`. Sending it twice has the effect of sending it once, so it
        is retried like the idempotent methods.
        """
        return await self._run(
            self._append_attrs_flow(
                entity_id,
                attrs,
                no_overwrite=no_overwrite,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        )

    async def update_attrs(
        self,
        entity_id: str,
        attrs: EntityLike,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> UpdateResult:
        """Update existing attributes (`PATCH /entities/{id}/attrs`); others are not added."""
        return await self._run(
            self._update_attrs_flow(
                entity_id, attrs, tenant=tenant, context=context, timeout=timeout
            )
        )

    async def partial_update_attr(
        self,
        entity_id: str,
        attr: str,
        fragment: EntityLike,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Change members of one attribute (`PATCH /entities/{id}/attrs/{attr}`)."""
        await self._run(
            self._partial_update_attr_flow(
                entity_id, attr, fragment, tenant=tenant, context=context, timeout=timeout
            )
        )

    async def delete_attr(
        self,
        entity_id: str,
        attr: str,
        *,
        dataset_id: str | None = None,
        delete_all: bool = False,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Delete an attribute: its default instance, one `dataset_id`, or all (`delete_all`)."""
        await self._run(
            self._delete_attr_flow(
                entity_id,
                attr,
                dataset_id=dataset_id,
                delete_all=delete_all,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        )

    # Batches -----------------------------------------------------------------------------------

    async def batch_create(
        self,
        entities: Iterable[EntityLike | RawEntity],
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> BatchResult:
        """Create many entities (`POST /entityOperations/create`), chunked to the profile's limits.

        Entities that exist already fail with `AlreadyExists`. A chunk is never sent twice once
        it may have reached the broker: without an answer its entities are reported with
        `status=None` (outcome unknown) and the later chunks are not sent.
        """
        return await self._run(
            self._batch_entities_flow(
                "create",
                entities,
                params={},
                mode=RetryMode.NOT_SENT_ONLY,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        )

    async def batch_upsert(
        self,
        entities: Iterable[EntityLike | RawEntity],
        *,
        mode: UpsertMode = "update",
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> BatchResult:
        """Create the entities that do not exist and write the others (`/entityOperations/upsert`).

        `mode="update"` (`options=update`, the default here) merges the given attributes into
        existing entities and leaves the others alone. `mode="replace"` is the specification's
        default: every existing entity is replaced whole, which wipes attributes that others
        (an administrator, another agent) set. The client defaults to "update" because an agent
        owns only the attributes it writes (DESIGN decision 3).

        Chunked to the profile's limits (entities and bytes per request); an entity too large
        for one request fails alone. Each chunk is retried on its own (upsert is idempotent);
        a chunk the broker rejects as a whole marks its entities failed and the next chunks
        still go. See `ngsi._batch.batch_outcome` for what counts as succeeded. Entities given
        as `RawEntity` (JSON already serialised) are sent as they are.
        """
        return await self._run(
            self._batch_entities_flow(
                "upsert",
                entities,
                params={"options": _upsert_options(mode)},
                mode=RetryMode.IDEMPOTENT,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        )

    async def batch_update(
        self,
        entities: Iterable[EntityLike | RawEntity],
        *,
        no_overwrite: bool = False,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> BatchResult:
        """Update attributes of existing entities (`/entityOperations/update`), chunked.

        With `no_overwrite` only attributes the entities do not have yet are added. Entities
        that do not exist fail with `ResourceNotFound`.
        """
        return await self._run(
            self._batch_entities_flow(
                "update",
                entities,
                params={"options": "noOverwrite" if no_overwrite else None},
                mode=RetryMode.IDEMPOTENT,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        )

    async def batch_delete(
        self,
        entity_ids: Iterable[str],
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> BatchResult:
        """Delete entities by id (`/entityOperations/delete`), chunked; absent ones fail."""
        return await self._run(self._batch_delete_flow(entity_ids, tenant=tenant, timeout=timeout))

    # Queries -----------------------------------------------------------------------------------

    async def query(
        self,
        *,
        type: Names | None = None,
        id: Names | None = None,
        id_pattern: str | None = None,
        attrs: Names | None = None,
        q: object | None = None,
        geoq: GeoQueryArg | None = None,
        options: Options | None = None,
        limit: int | None = None,
        offset: int | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[dict[str, Any]]:
        """One page of matching entities (`GET /entities`), as plain dicts.

        `type`, `id` and `attrs` take one name or several; `q` is q text or a q tree (its
        `str()`); `geoq` holds `georel`, `geometry`, `coordinates` and optionally
        `geoproperty`. Without `limit` the broker's default page (often 20) comes back; `limit`
        may not exceed the profile's page size: walk all with `iter_entities` / `query_all`.
        On a tenant nothing was written to the result is empty (see `ngsi._profiles`).
        """
        params = self._filters(
            type=type, id=id, id_pattern=id_pattern, attrs=attrs, q=q, geoq=geoq, options=options
        )
        params["limit"] = self._limit(limit)
        params["offset"] = None if not offset else str(offset)
        return await self._run(
            self._query_flow(params, tenant=tenant, context=context, timeout=timeout)
        )

    def iter_entities(
        self,
        *,
        type: Names | None = None,
        id: Names | None = None,
        id_pattern: str | None = None,
        attrs: Names | None = None,
        q: object | None = None,
        geoq: GeoQueryArg | None = None,
        options: Options | None = None,
        page_size: int | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching entity, fetched page by page as the async iterator is consumed.

        Pages hold `page_size` entities, at most the profile's page size (the default). The
        walk uses limit/offset and follows a broker's `Link: rel="next"` when it sends one.
        Entities written while walking may be missed or seen twice, as with any offset paging.
        """
        params = self._filters(
            type=type, id=id, id_pattern=id_pattern, attrs=attrs, q=q, geoq=geoq, options=options
        )
        pager = self._entity_pager(
            params, page_size=page_size, tenant=tenant, context=context, timeout=timeout
        )
        return self._walk(pager)

    async def query_all(
        self,
        *,
        type: Names | None = None,
        id: Names | None = None,
        id_pattern: str | None = None,
        attrs: Names | None = None,
        q: object | None = None,
        geoq: GeoQueryArg | None = None,
        options: Options | None = None,
        page_size: int | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[dict[str, Any]]:
        """All matching entities in one list: `iter_entities` collected."""
        return [
            entity
            async for entity in self.iter_entities(
                type=type,
                id=id,
                id_pattern=id_pattern,
                attrs=attrs,
                q=q,
                geoq=geoq,
                options=options,
                page_size=page_size,
                tenant=tenant,
                context=context,
                timeout=timeout,
            )
        ]

    async def count(
        self,
        *,
        type: Names | None = None,
        id: Names | None = None,
        id_pattern: str | None = None,
        attrs: Names | None = None,
        q: object | None = None,
        geoq: GeoQueryArg | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> int:
        """How many entities match (`count=true&limit=0`, read from `NGSILD-Results-Count`)."""
        params = self._filters(type=type, id=id, id_pattern=id_pattern, attrs=attrs, q=q, geoq=geoq)
        return await self._run(
            self._count_flow(params, tenant=tenant, context=context, timeout=timeout)
        )

    async def types(
        self,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[str]:
        """The names of the entity types present (`GET /types`), compacted with the context."""
        return await self._run(
            self._names_flow("types", "typeList", tenant=tenant, context=context, timeout=timeout)
        )

    async def type_info(
        self,
        type: str,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> dict[str, Any]:
        """What the broker knows about one entity type (`GET /types/{type}`)."""
        return await self._run(
            self._info_flow(
                f"types/{quote_segment(type)}", tenant=tenant, context=context, timeout=timeout
            )
        )

    async def attributes(
        self,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[str]:
        """The names of the attributes present (`GET /attributes`)."""
        return await self._run(
            self._names_flow(
                "attributes", "attributeList", tenant=tenant, context=context, timeout=timeout
            )
        )

    async def attribute_info(
        self,
        name: str,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> dict[str, Any]:
        """What the broker knows about one attribute (`GET /attributes/{name}`)."""
        return await self._run(
            self._info_flow(
                f"attributes/{quote_segment(name)}", tenant=tenant, context=context, timeout=timeout
            )
        )

    # Subscriptions -----------------------------------------------------------------------------

    async def create_subscription(
        self,
        subscription: Subscription | Mapping[str, Any],
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> str:
        """Create a subscription (`POST /subscriptions`) and return its id; never sent twice."""
        return await self._run(
            self._create_subscription_flow(
                subscription, tenant=tenant, context=context, timeout=timeout
            )
        )

    async def list_subscriptions(
        self,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[Subscription]:
        """Every subscription of the tenant, paging through all of them."""
        pager = self._subscription_pager(tenant=tenant, context=context, timeout=timeout)
        return [subscription async for subscription in self._walk(pager)]

    async def retrieve_subscription(
        self,
        subscription_id: str,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> Subscription:
        """One subscription, with the broker's status members."""
        return await self._run(
            self._retrieve_subscription_flow(
                subscription_id, tenant=tenant, context=context, timeout=timeout
            )
        )

    async def update_subscription(
        self,
        subscription_id: str,
        fragment: Subscription | Mapping[str, Any],
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Change members of a subscription (`PATCH /subscriptions/{id}`), camelCase keys."""
        await self._run(
            self._update_subscription_flow(
                subscription_id, fragment, tenant=tenant, context=context, timeout=timeout
            )
        )

    async def delete_subscription(
        self,
        subscription_id: str,
        *,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Delete a subscription; raises `ResourceNotFound` if absent."""
        await self._run(
            self._delete_subscription_flow(subscription_id, tenant=tenant, timeout=timeout)
        )

    # Temporal ----------------------------------------------------------------------------------

    async def temporal_retrieve(
        self,
        entity_id: str,
        *,
        timerel: TimeRel | None = None,
        time_at: datetime | str | None = None,
        end_time_at: datetime | str | None = None,
        last_n: int | None = None,
        attrs: Names | None = None,
        options: Options | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> dict[str, Any]:
        """The history of one entity (`GET /temporal/entities/{id}`).

        `timerel` is `before` / `after` (with `time_at`) or `between` (with `time_at` and
        `end_time_at`); datetimes must be timezone-aware. `options` may be `temporalValues`.
        """
        params = self._temporal(
            timerel=timerel, time_at=time_at, end_time_at=end_time_at, last_n=last_n
        )
        params.update(attrs=join_names(attrs), options=join_names(options))
        return await self._run(
            self._temporal_retrieve_flow(
                entity_id, params, tenant=tenant, context=context, timeout=timeout
            )
        )

    async def temporal_query(
        self,
        *,
        type: Names | None = None,
        id: Names | None = None,
        id_pattern: str | None = None,
        attrs: Names | None = None,
        q: object | None = None,
        geoq: GeoQueryArg | None = None,
        timerel: TimeRel | None = None,
        time_at: datetime | str | None = None,
        end_time_at: datetime | str | None = None,
        last_n: int | None = None,
        options: Options | None = None,
        limit: int | None = None,
        offset: int | None = None,
        tenant: str | UseClientDefault | None = USE_CLIENT_DEFAULT,
        context: ContextArg | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[dict[str, Any]]:
        """One page of entity histories (`GET /temporal/entities`); filters as in `query`."""
        params = self._filters(
            type=type, id=id, id_pattern=id_pattern, attrs=attrs, q=q, geoq=geoq, options=options
        )
        params.update(
            self._temporal(timerel=timerel, time_at=time_at, end_time_at=end_time_at, last_n=last_n)
        )
        params["limit"] = self._limit(limit)
        params["offset"] = None if not offset else str(offset)
        return await self._run(
            self._query_flow(
                params, tenant=tenant, context=context, timeout=timeout, path="temporal/entities"
            )
        )

    # @contexts ---------------------------------------------------------------------------------

    async def add_context(
        self,
        document: Mapping[str, Any],
        *,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> str:
        """Store an @context document on the broker (`POST /jsonldContexts`); return its URL.

        `document` is `{"@context": ...}`; a mapping without `@context` is wrapped in one. The
        returned URL can then be used as a `context`, also for requests without a body.
        """
        return await self._run(self._add_context_flow(document, timeout=timeout))

    async def list_contexts(
        self,
        *,
        details: bool = False,
        kind: str | None = None,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> list[Any]:
        """The broker's @contexts: URLs, or descriptions with `details=True`; `kind` filters."""
        return await self._run(self._contexts_flow(details=details, kind=kind, timeout=timeout))

    async def retrieve_context(
        self,
        context_id: str,
        *,
        details: bool = False,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> dict[str, Any]:
        """One stored @context (`GET /jsonldContexts/{id}`), by local id or URL."""
        return await self._run(self._context_flow(context_id, details=details, timeout=timeout))

    async def delete_context(
        self,
        context_id: str,
        *,
        reload: bool = False,
        timeout: TimeoutArg | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> None:
        """Delete a stored @context, or with `reload=True` make the broker fetch it again."""
        await self._run(self._delete_context_flow(context_id, reload=reload, timeout=timeout))
