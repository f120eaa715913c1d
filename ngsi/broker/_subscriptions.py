"""NGSI-LD subscriptions of the embedded broker: the service, its persistence and HTTP API.

`SubscriptionService(store, contexts, ...)` keeps the subscriptions of every tenant in memory
(compiled for matching, in the `Notifier`) and in the tenant's SQLite file (the store's
key-value records: space `subscriptions` for the documents, `subscriptionStatus` for the
counters), so that they survive a restart. `start()` loads them and starts the notifier;
`stop()` sends what is queued, saves the counters and stops.

`subscription_routes()` are the resources, mounted under `/ngsi-ld/v1`:

    POST   /subscriptions            201 + Location (409 AlreadyExists for a known id)
    GET    /subscriptions            limit/offset/count, Link rel="prev"/"next"
    GET    /subscriptions/{id}       options=sysAttrs adds createdAt/modifiedAt
    PATCH  /subscriptions/{id}       204; each member given replaces the stored one
    DELETE /subscriptions/{id}       204

`create_extension(settings)` plugs all of it into the broker app (see `ngsi.broker._app`); it
reads `notification_allow_hosts` (with `host`, for the default rule) and `notification_timeout`
from the broker settings (see `BrokerSettings`).

Notification formats: normalized, concise and keyValues as NGSI-LD has them, and Orion-LD's
NGSI-v2 formats for v2 consumers such as QuantumLeap: `x-ngsiv2-normalized` and
`x-ngsiv2-keyValues` with expanded names (full IRIs, as stored), `x-ngsiv2-normalized-compacted`
(alias `x-ngsiv2`) and `x-ngsiv2-keyValues-compacted` with names compacted like the NGSI-LD
formats; the entities are converted by `ngsi.to_ngsiv2` (see `ngsi._ngsiv2` for what that writes
and where it differs from Orion-LD) and sent as described in `ngsi.broker._notifier_send`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ngsi._context import Context
from ngsi._context_http import context_from_request, format_link_header
from ngsi._context_store import ContextStore
from ngsi._core_context import CORE_CONTEXT_URL, is_core_context_url
from ngsi._errors import (
    AlreadyExists,
    BadRequestData,
    NgsiApiError,
    NonexistentTenant,
    ResourceNotFound,
)
from ngsi._ids import uri_problem
from ngsi._time import parse_datetime
from ngsi.broker._endpoints import API_PREFIX, path_param
from ngsi.broker._entities import format_time
from ngsi.broker._http import JSON_LD, negotiate, read_json, request_tenant, response_class
from ngsi.broker._notifier import ActiveSubscription, Notifier, Selector, SubscriptionStatus
from ngsi.broker._notifier_mqtt import MqttConnections
from ngsi.broker._notifier_send import Endpoint, backoff_delays
from ngsi.broker._params import parse_bool, parse_options
from ngsi.broker._render import EntityView
from ngsi.broker._settings import DEFAULT_NOTIFICATION_TIMEOUT, BrokerSettings
from ngsi.broker._state import Broker, broker_of
from ngsi.broker._store import Store
from ngsi.broker._subscriptions_model import (
    NGSIV2_FORMATS,
    NotificationHosts,
    compile_subscription_q,
    geo_filter,
    merge_fragment,
    render_subscription,
    triggers_of,
    type_groups,
    validate_subscription,
)

__all__ = [
    "ExpandedView",
    "SubscriptionExtension",
    "SubscriptionService",
    "create_extension",
    "subscription_routes",
]

log = logging.getLogger(__name__)

_SPACE = "subscriptions"
_STATUS_SPACE = "subscriptionStatus"
_EXTRA_KEY = "subscriptions"


@dataclass(frozen=True, kw_only=True, slots=True)
class ExpandedView(EntityView):
    """An `EntityView` that leaves the names expanded (full IRIs, as stored): the
    `x-ngsiv2-normalized` and `x-ngsiv2-keyValues` notification formats."""

    def render(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        return self.project(doc)


class SubscriptionService:
    """The broker's subscriptions: create, read, update, delete, and notify.

    All CRUD methods block (SQLite, @context resolution): call them from a worker thread.
    `start()`/`stop()` are called once each. Keyword options: `allow_hosts` and `bind_host`
    (which hosts notifications may go to: `BrokerSettings.notification_allow_hosts` and `host`;
    None applies the default rule for `bind_host`, see `NotificationHosts`), `timeout` (seconds
    per notification attempt), `retry_delays`, `queue_limit` (notifications waiting per
    endpoint), `max_page_size`, `http_transport` and `mqtt_connections` (test seams),
    `flush_interval` (seconds between saves of the counters).
    """

    def __init__(
        self,
        store: Store,
        contexts: ContextStore,
        *,
        allow_hosts: Collection[str] | None = None,
        bind_host: str = "127.0.0.1",
        timeout: float = DEFAULT_NOTIFICATION_TIMEOUT,
        retry_delays: Sequence[float] = (0.5, 2.0),
        queue_limit: int = 10_000,
        max_page_size: int = 1000,
        default_page_size: int = 20,
        flush_interval: float = 1.0,
        http_transport: httpx.AsyncBaseTransport | None = None,
        mqtt_connections: MqttConnections | None = None,
    ) -> None:
        self.store = store
        self.contexts = contexts
        self.hosts = NotificationHosts.of(allow_hosts, bind_host=bind_host)
        self.max_page_size = max_page_size
        self.default_page_size = default_page_size
        self._lock = threading.Lock()
        self._views: dict[EntityView, EntityView] = {}
        self.notifier = Notifier(
            store,
            flush=self._save_status,
            timeout=timeout,
            retry_delays=retry_delays,
            queue_limit=queue_limit,
            flush_interval=flush_interval,
            http_transport=http_transport,
            mqtt_connections=mqtt_connections,
            hosts=self.hosts,
        )
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the notifier, load the stored subscriptions, listen to entity changes."""
        self.notifier.start()
        self._load()
        self.store.add_listener(self.notifier)
        self._started = True

    def stop(self) -> None:
        """Stop listening, send what is queued (briefly), save the counters."""
        if not self._started:
            return
        self._started = False
        with contextlib.suppress(ValueError):
            self.store.remove_listener(self.notifier)
        self.notifier.stop()

    def _load(self) -> None:
        loaded = 0
        for tenant in self.store.tenants():
            with self.store.read(tenant) as txn:
                records = txn.kv_items(_SPACE)
                statuses = dict(txn.kv_items(_STATUS_SPACE))
            for key, raw in records:
                try:
                    record = orjson.loads(raw)
                    status_raw = statuses.get(key)
                    status = (
                        SubscriptionStatus.from_json(orjson.loads(status_raw))
                        if status_raw
                        else SubscriptionStatus()
                    )
                    self.notifier.put(self._compile(tenant, record, status, strict=False))
                    loaded += 1
                except Exception:
                    log.exception(
                        "stored subscription %s (tenant %r) cannot be loaded", key, tenant
                    )
        if loaded:
            log.info("loaded %d subscriptions", loaded)

    # --- compile ----------------------------------------------------------------------------

    def _resolve(self, entries: Any, *, strict: bool, what: str) -> Context:
        try:
            return self.contexts.resolve(entries)
        except NgsiApiError:
            if strict:
                raise
            log.warning("%s: its @context cannot be resolved now; using the core context", what)
            return Context.core()

    def _compile(
        self,
        tenant: str | None,
        record: Mapping[str, Any],
        status: SubscriptionStatus,
        *,
        strict: bool = True,
        registered: float = 0.0,
    ) -> ActiveSubscription:
        doc = record["doc"]
        entries = tuple(record.get("context") or ())
        what = f"subscription {doc['id']}"
        context = (
            self._resolve(list(entries), strict=strict, what=what) if entries else Context.core()
        )
        render_context = context
        if "jsonldContext" in doc:
            render_context = self._resolve(doc["jsonldContext"], strict=strict, what=what)
        selectors: tuple[Selector, ...] | None = None
        if "entities" in doc:
            selectors = tuple(
                Selector(
                    type_groups=tuple(frozenset(group) for group in type_groups(selector)),
                    id=selector.get("id"),
                    id_pattern=re.compile(selector["idPattern"])
                    if "idPattern" in selector
                    else None,
                )
                for selector in doc["entities"]
            )
        predicates = []
        if "q" in doc:
            predicates.append(compile_subscription_q(doc["q"], context))
        if "geoQ" in doc:
            predicates.append(geo_filter(doc["geoQ"]).predicate())
        notification = doc["notification"]
        chosen_format = notification.get("format", "normalized")
        ngsiv2 = NGSIV2_FORMATS.get(chosen_format)
        endpoint_doc = notification["endpoint"]
        timeout_ms = endpoint_doc.get("timeout")
        cooldown_ms = endpoint_doc.get("cooldown")
        endpoint = Endpoint(
            uri=endpoint_doc["uri"],
            accept=endpoint_doc.get("accept", "application/json"),
            receiver_info=tuple(
                (p["key"], p["value"]) for p in endpoint_doc.get("receiverInfo", [])
            ),
            notifier_info=tuple(
                (p["key"], p["value"]) for p in endpoint_doc.get("notifierInfo", [])
            ),
            timeout=timeout_ms / 1000 if timeout_ms else None,
            cooldown=cooldown_ms / 1000 if cooldown_ms else None,
            ngsiv2=ngsiv2.attrs_format if ngsiv2 is not None else None,
        )
        attributes = notification.get("attributes")
        view_class = ExpandedView if ngsiv2 is not None and not ngsiv2.compacted else EntityView
        view = view_class(
            context=render_context,
            format="normalized" if ngsiv2 is not None else chosen_format,
            sys_attrs=bool(notification.get("sysAttrs", False)),
            attrs=frozenset(attributes) if attributes else None,
        )
        # Equal views are shared, so that one change is rendered once for all of them.
        view = self._views.setdefault(view, view)
        expires_at = parse_datetime(doc["expiresAt"]) if "expiresAt" in doc else None
        return ActiveSubscription(
            id=doc["id"],
            tenant=tenant,
            doc=doc,
            context_entries=entries,
            created_at=record.get("createdAt") or "",
            modified_at=record.get("modifiedAt") or "",
            status=status,
            selectors=selectors,
            watched=frozenset(doc["watchedAttributes"]) if "watchedAttributes" in doc else None,
            triggers=triggers_of(doc),
            predicate=_all_of(predicates),
            is_active=doc.get("isActive", True),
            expires_at=expires_at,
            throttling=doc.get("throttling"),
            time_interval=doc.get("timeInterval"),
            endpoint=endpoint,
            view=view,
            show_changes=bool(notification.get("showChanges", False)),
            lang=doc.get("lang"),
            context_url=link_url(render_context),
            ld_context=render_context.to_jsonld(),
            registered=registered,
        )

    # --- CRUD (blocking) ------------------------------------------------------------------

    def create(self, tenant: str | None, body: Mapping[str, Any], context: Context) -> str:
        """Validate, store and activate a subscription; returns its id."""
        now = datetime.now(UTC)
        doc = validate_subscription(body, context, now=now, hosts=self.hosts)
        stamp = format_time(now)
        record = {
            "doc": doc,
            "context": list(context.entries),
            "createdAt": stamp,
            "modifiedAt": stamp,
        }
        compiled = self._compile(tenant, record, SubscriptionStatus(), registered=time.monotonic())
        with self._lock:
            if self.notifier.get(tenant, doc["id"]) is not None:
                raise AlreadyExists(f"subscription {doc['id']!r} already exists")
            with self.store.write(tenant) as txn:
                if txn.kv_get(_SPACE, doc["id"]) is not None:
                    raise AlreadyExists(f"subscription {doc['id']!r} already exists")
                txn.kv_put(_SPACE, doc["id"], orjson.dumps(record))
            self.notifier.put(compiled)
        return str(doc["id"])

    def get(self, tenant: str | None, subscription_id: str) -> ActiveSubscription:
        found = self.notifier.get(tenant, subscription_id)
        if found is None:
            raise ResourceNotFound(f"subscription {subscription_id!r} not found")
        return found

    def all(self, tenant: str | None) -> tuple[ActiveSubscription, ...]:
        if tenant is not None and not self.store.tenant_exists(tenant):
            raise NonexistentTenant(f"tenant {tenant!r} does not exist")
        return self.notifier.subscriptions(tenant)

    def update(
        self,
        tenant: str | None,
        subscription_id: str,
        fragment: Mapping[str, Any],
        context: Context,
    ) -> None:
        """Apply a PATCH fragment: each member replaces the stored one (null removes it)."""
        now = datetime.now(UTC)
        with self._lock:
            current = self.get(tenant, subscription_id)
            doc = merge_fragment(current.doc, fragment, context, now=now, hosts=self.hosts)
            record = {
                "doc": doc,
                "context": list(current.context_entries),
                "createdAt": current.created_at,
                "modifiedAt": format_time(now),
            }
            status = current.status
            compiled = self._compile(tenant, record, status, registered=current.registered)
            if compiled.time_interval != current.time_interval:
                status.next_due = None
            with self.store.write(tenant) as txn:
                txn.kv_put(_SPACE, subscription_id, orjson.dumps(record))
            self.notifier.put(compiled)

    def delete(self, tenant: str | None, subscription_id: str) -> None:
        with self._lock:
            if self.notifier.get(tenant, subscription_id) is None:
                raise ResourceNotFound(f"subscription {subscription_id!r} not found")
            with self.store.write(tenant) as txn:
                txn.kv_delete(_SPACE, subscription_id)
                txn.kv_delete(_STATUS_SPACE, subscription_id)
            self.notifier.remove(tenant, subscription_id)

    def render(
        self,
        subscription: ActiveSubscription,
        context: Context,
        *,
        sys_attrs: bool = False,
    ) -> dict[str, Any]:
        """The subscription as GET shows it, names compacted with `context`."""
        return render_subscription(
            subscription.doc,
            context,
            status=subscription.state(datetime.now(UTC)),
            notification_status=subscription.status.notification_members(),
            created_at=subscription.created_at,
            modified_at=subscription.modified_at,
            sys_attrs=sys_attrs,
        )

    def _save_status(self, subscriptions: list[ActiveSubscription]) -> None:
        by_tenant: dict[str | None, list[ActiveSubscription]] = {}
        for subscription in subscriptions:
            by_tenant.setdefault(subscription.tenant, []).append(subscription)
        for tenant, items in by_tenant.items():
            with self._lock, self.store.write(tenant) as txn:
                for subscription in items:
                    if self.notifier.get(tenant, subscription.id) is None:
                        continue
                    txn.kv_put(
                        _STATUS_SPACE, subscription.id, orjson.dumps(subscription.status.to_json())
                    )


def link_url(context: Context) -> str | None:
    """The URL a `Link` header can carry for `context`: its one URL, leaving out core context
    URLs (the core context always applies); None when it has inline parts or several URLs."""
    if context.url is not None:
        return context.url
    rest = [e for e in context.entries if not (isinstance(e, str) and is_core_context_url(e))]
    if not rest:
        return CORE_CONTEXT_URL
    if len(rest) == 1 and isinstance(rest[0], str):
        return rest[0]
    return None


def _all_of(predicates: list[Any]) -> Any:
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]
    first, second = predicates

    def both(doc: Mapping[str, Any]) -> bool:
        return bool(first(doc)) and bool(second(doc))

    return both


# --- HTTP ---------------------------------------------------------------------------------------


def service_of(request: Request) -> SubscriptionService:
    """The subscription service of the broker serving `request`."""
    service = broker_of(request).extras.get(_EXTRA_KEY)
    if not isinstance(service, SubscriptionService):
        raise RuntimeError("the subscription extension is not started")
    return service


def _subscription_id(request: Request) -> str:
    subscription_id = path_param(request, "subscription_id")
    problem = uri_problem(subscription_id)
    if problem:
        raise BadRequestData(
            f"subscription id {subscription_id!r} in the path is not a URI: {problem}"
        )
    return subscription_id


def _location(subscription_id: str) -> str:
    from urllib.parse import quote

    return f"{API_PREFIX}/subscriptions/{quote(subscription_id, safe=':@!$&+,;=-._~')}"


def _headers(tenant: str | None) -> dict[str, str]:
    return {} if tenant is None else {"NGSILD-Tenant": tenant}


def _respond(
    payload: Any,
    *,
    media: str,
    context: Context,
    tenant: str | None,
    extra_links: Sequence[str] = (),
) -> Response:
    headers = _headers(tenant)
    links = list(extra_links)
    if media == JSON_LD:
        value = context.to_jsonld()
        if isinstance(payload, dict):
            payload = {**payload, "@context": value}
        else:
            payload = [{**item, "@context": value} for item in payload]
    else:
        links.insert(0, format_link_header(context.url or CORE_CONTEXT_URL))
    if links:
        headers["Link"] = ", ".join(links)
    return response_class(media)(payload, status_code=200, headers=headers)


async def create_subscription(request: Request) -> Response:
    service = service_of(request)
    tenant = request_tenant(request)
    body, media = await read_json(request)
    link = request.headers.get("link")

    def work() -> str:
        body_context = body.get("@context") if isinstance(body, dict) else None
        context = context_from_request(link, body_context, media, service.contexts)
        return service.create(tenant, body, context)

    subscription_id = await broker_of(request).run(work)
    return Response(
        status_code=201, headers={"Location": _location(subscription_id), **_headers(tenant)}
    )


def _page_params(request: Request, service: SubscriptionService) -> tuple[int, int, bool]:
    params = request.query_params
    count = parse_bool(params.get("count"), name="count")
    try:
        limit = int(params.get("limit", service.default_page_size))
        offset = int(params.get("offset", 0))
    except ValueError:
        raise BadRequestData("parameters 'limit' and 'offset' must be integers") from None
    if limit < 0 or offset < 0:
        raise BadRequestData("parameters 'limit' and 'offset' must not be negative")
    if limit > service.max_page_size:
        raise BadRequestData(
            f"parameter 'limit' must be at most {service.max_page_size}, got {limit}"
        )
    if limit == 0 and not count:
        raise BadRequestData("parameter 'limit' may be 0 only together with count=true")
    return limit, offset, count


def _page_link(limit: int, offset: int, rel: str) -> str:
    query = urlencode({"limit": limit, "offset": offset})
    return f'<{API_PREFIX}/subscriptions?{query}>;rel="{rel}";type="application/ld+json"'


async def query_subscriptions(request: Request) -> Response:
    service = service_of(request)
    tenant = request_tenant(request)
    media = negotiate(request)
    limit, offset, count = _page_params(request, service)
    _, sys_attrs, _ = parse_options(request.query_params)
    link = request.headers.get("link")

    def work() -> tuple[list[dict[str, Any]], int, Context]:
        context = context_from_request(link, None, None, service.contexts)
        everything = service.all(tenant)
        page = everything[offset : offset + limit]
        return (
            [service.render(s, context, sys_attrs=sys_attrs) for s in page],
            len(everything),
            context,
        )

    items, total, context = await broker_of(request).run(work)
    links: list[str] = []
    if offset > 0 and limit > 0:
        links.append(_page_link(limit, max(offset - limit, 0), "prev"))
    if limit > 0 and offset + limit < total:
        links.append(_page_link(limit, offset + limit, "next"))
    response = _respond(items, media=media, context=context, tenant=tenant, extra_links=links)
    if count:
        response.headers["NGSILD-Results-Count"] = str(total)
    return response


async def retrieve_subscription(request: Request) -> Response:
    service = service_of(request)
    tenant = request_tenant(request)
    media = negotiate(request)
    subscription_id = _subscription_id(request)
    _, sys_attrs, _ = parse_options(request.query_params)
    link = request.headers.get("link")

    subscription = service.get(tenant, subscription_id)
    # A read right after a notification arrived shows that notification's outcome.
    await service.notifier.settle(subscription)

    def work() -> tuple[dict[str, Any], Context]:
        context = context_from_request(link, None, None, service.contexts)
        return service.render(subscription, context, sys_attrs=sys_attrs), context

    payload, context = await broker_of(request).run(work)
    return _respond(payload, media=media, context=context, tenant=tenant)


async def update_subscription(request: Request) -> Response:
    service = service_of(request)
    tenant = request_tenant(request)
    subscription_id = _subscription_id(request)
    body, media = await read_json(request, allow_merge_patch=True)
    link = request.headers.get("link")

    def work() -> None:
        body_context = body.get("@context") if isinstance(body, dict) else None
        context = context_from_request(link, body_context, media, service.contexts)
        service.update(tenant, subscription_id, body, context)

    await broker_of(request).run(work)
    return Response(status_code=204, headers=_headers(tenant))


async def delete_subscription(request: Request) -> Response:
    service = service_of(request)
    tenant = request_tenant(request)
    subscription_id = _subscription_id(request)
    await broker_of(request).run(service.delete, tenant, subscription_id)
    return Response(status_code=204, headers=_headers(tenant))


async def _subscriptions(request: Request) -> Response:
    if request.method == "POST":
        return await create_subscription(request)
    return await query_subscriptions(request)


async def _subscription(request: Request) -> Response:
    if request.method == "PATCH":
        return await update_subscription(request)
    if request.method == "DELETE":
        return await delete_subscription(request)
    return await retrieve_subscription(request)


def subscription_routes() -> list[BaseRoute]:
    """The subscription resources, relative to `/ngsi-ld/v1` (one route per path, so that a
    405 answer's `Allow` header lists every method of the path)."""
    return [
        Route("/subscriptions", _subscriptions, methods=["GET", "POST"], name="subscriptions"),
        Route(
            "/subscriptions/{subscription_id}",
            _subscription,
            methods=["GET", "PATCH", "DELETE"],
            name="subscription",
        ),
    ]


# --- the broker extension -------------------------------------------------------------------


class SubscriptionExtension:
    """Subscriptions and notifications as a broker extension (`ngsi.broker._app`)."""

    name = "subscriptions"

    def __init__(self, settings: BrokerSettings, **options: Any) -> None:
        self.settings = settings
        self.options = options
        self.service: SubscriptionService | None = None

    def routes(self) -> Sequence[BaseRoute]:
        return subscription_routes()

    async def start(self, broker: Broker) -> None:
        settings = broker.settings
        options: dict[str, Any] = {
            "allow_hosts": settings.notification_allow_hosts,
            "bind_host": settings.host,
            "timeout": settings.notification_timeout,
            "retry_delays": backoff_delays(
                retry_for=settings.notification_retry_for,
                max_delay=settings.notification_retry_max_delay,
            ),
            "queue_limit": settings.notification_queue_limit,
            "max_page_size": settings.max_page_size,
            "default_page_size": settings.default_page_size,
        }
        options.update(self.options)
        service = SubscriptionService(broker.store, broker.contexts, **options)
        await run_in_threadpool(service.start)
        broker.extras[_EXTRA_KEY] = service
        self.service = service

    async def stop(self) -> None:
        if self.service is not None:
            await run_in_threadpool(self.service.stop)
            self.service = None


def create_extension(settings: BrokerSettings, **options: Any) -> SubscriptionExtension:
    """The subscription extension for `create_app` (options go to `SubscriptionService`)."""
    return SubscriptionExtension(settings, **options)
