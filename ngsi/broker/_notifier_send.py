"""Sending notifications: one worker per endpoint, each with its own bounded queue.

The matcher hands `Outgoing` items to `Dispatcher.submit()` (non-blocking, on the notifier's event
loop). Each endpoint (an HTTP URL, or an MQTT broker connection plus topic) has one worker task:
a slow, dead or refusing endpoint only ever delays its own queue, never another endpoint's nor the
writers of entities.

Contract of a worker:
- Items of one subscription are sent in the order they were submitted.
- When items pile up (the endpoint is slower than the changes), the items of one subscription that
  wait together are merged into one notification whose `data` holds all their entities in order
  (at most `max_batch_entities`); nothing is coalesced away.
- A notification is retried after `retry_delays` on transport errors, timeouts and 5xx answers;
  a 4xx answer is final. Before each retry the worker asks `still_wanted(item)` so that a deleted or
  paused subscription stops being retried. Every attempt of one notification carries the same
  notification `id` (only `notifiedAt` is new), so that a receiver that got an attempt whose answer
  was lost drops the repeat by its id. The broker's default schedule (`backoff_delays`, from
  `BrokerSettings.notification_retry_for` and `notification_retry_max_delay`) waits 0.5 s, then
  twice as long each time up to 4 s, for 2 minutes: a consumer that restarts within that time
  loses nothing. While one notification waits for its retry the endpoint's later items wait in its
  queue (they are merged and sent after it, in order); other endpoints and the writers never wait.
- Every notification ends in exactly one `report(item, ok=..., at=...)` call.
- The queue holds at most `queue_limit` items; beyond that the oldest item is dropped and reported
  as a failure (the subscription shows `notification.status: failed`).

The body is an NGSI-LD Notification (`notification_body`), or, for an endpoint with `ngsiv2` set
(the `x-ngsiv2-*` formats), the NGSI-v2 notification Orion-LD sends for them
(`ngsiv2_body`): `{"subscriptionId", "data"}` as `application/json` with the header
`Ngsiv2-AttrsFormat: normalized` or `keyValues`, without `Link` or `@context`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import orjson

from ngsi._errors import BadRequestData
from ngsi._ngsiv2 import ngsiv2_notification
from ngsi._outbound import OutboundRefused
from ngsi.broker._settings import (
    DEFAULT_NOTIFICATION_QUEUE_LIMIT,
    DEFAULT_NOTIFICATION_RETRY_FOR,
    DEFAULT_NOTIFICATION_RETRY_MAX_DELAY,
)

__all__ = [
    "DEFAULT_RETRY_DELAYS",
    "DeliveryError",
    "Dispatcher",
    "Endpoint",
    "Outgoing",
    "Sender",
    "backoff_delays",
    "format_datetime",
    "new_notification_id",
    "ngsiv2_body",
    "notification_body",
    "notification_headers",
    "payload_for",
]

log = logging.getLogger(__name__)

JSON_LD_LINK_REL = "http://www.w3.org/ns/json-ld#context"


def format_datetime(moment: datetime) -> str:
    """NGSI-LD DateTime in UTC with milliseconds: `2024-05-01T12:00:00.123Z`."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True, kw_only=True, slots=True)
class Endpoint:
    """Where and how notifications of one subscription go (`notification.endpoint`)."""

    uri: str
    accept: str = "application/json"
    receiver_info: tuple[tuple[str, str], ...] = ()
    notifier_info: tuple[tuple[str, str], ...] = ()
    timeout: float | None = None
    """Seconds to wait for an answer (from `endpoint.timeout`, given in ms); None: the default."""
    cooldown: float | None = None
    """Seconds after a failed notification during which no new one is sent (`endpoint.cooldown`,
    given in ms)."""
    ngsiv2: str | None = None
    """`normalized` or `keyValues` for the NGSI-v2 notification formats (`x-ngsiv2-*`): the
    body is then an NGSI-v2 notification and the header `Ngsiv2-AttrsFormat` says which."""

    def notifier_value(self, key: str) -> str | None:
        lowered = key.lower()
        for k, v in self.notifier_info:
            if k.lower() == lowered:
                return v
        return None


@dataclass(kw_only=True, slots=True)
class Outgoing:
    """The entities one change (or one periodic tick) makes one subscription send.

    `entities` are already rendered as the subscriber asked (format, attributes, @context
    compaction). `context_url` goes into the `Link` header of `application/json` notifications;
    `ld_context` is the `@context` put into each entity of `application/ld+json` ones.
    """

    subscription_id: str
    tenant: str | None
    endpoint: Endpoint
    entities: list[dict[str, Any]]
    context_url: str | None = None
    ld_context: Any = None
    created: float = 0.0
    """`time.monotonic()` when the change was committed (or the tick fired), for latency figures."""
    batchable: bool = True
    status: Any = None
    """Set by the notifier when delivery begins (the subscription's status object)."""


class DeliveryError(Exception):
    """One attempt to deliver a notification failed; `retry` says whether another may succeed."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def backoff_delays(*, retry_for: float, max_delay: float, first: float = 0.5) -> tuple[float, ...]:
    """The waits between the attempts of one notification: `first`, then twice the previous one
    up to `max_delay`, until they add up to at least `retry_for` seconds (none when it is 0).

    With the broker's defaults (120 s, 4 s): 0.5, 1, 2, then 4 s waits, 33 retries within
    123.5 s of waiting (plus the time the attempts themselves take, each at most the timeout).
    One endpoint retries one notification at a time, so a dead endpoint gets at most one
    attempt every 4 s.
    """
    if retry_for <= 0:
        return ()
    if first <= 0 or max_delay <= 0:
        raise ValueError("the waits between notification attempts must be longer than 0 s")
    delays: list[float] = []
    delay = min(first, max_delay)
    while sum(delays) < retry_for:
        delays.append(delay)
        delay = min(delay * 2, max_delay)
    return tuple(delays)


def new_notification_id() -> str:
    """A fresh notification id, `urn:ngsi-ld:Notification:<uuid4>`."""
    return f"urn:ngsi-ld:Notification:{uuid.uuid4()}"


DEFAULT_RETRY_DELAYS = backoff_delays(
    retry_for=DEFAULT_NOTIFICATION_RETRY_FOR, max_delay=DEFAULT_NOTIFICATION_RETRY_MAX_DELAY
)
"""The broker's default waits between the attempts of one notification."""


def notification_body(
    subscription_id: str,
    entities: Sequence[dict[str, Any]],
    at: datetime,
    *,
    notification_id: str | None = None,
) -> dict[str, Any]:
    """The NGSI-LD Notification data type (clause 5.3.1) around `entities`; `notification_id`
    (a fresh one when None) is kept by every attempt of the same notification."""
    return {
        "id": notification_id or new_notification_id(),
        "type": "Notification",
        "subscriptionId": subscription_id,
        "notifiedAt": format_datetime(at),
        "data": list(entities),
    }


_PREVIOUS_MEMBERS = frozenset(
    {
        "previousObject",
        "previousLanguageMap",
        "previousVocab",
        "previousValueList",
        "previousObjectList",
        "previousJson",
    }
)


def _v2_ready_attribute(attribute: Any) -> Any:
    if isinstance(attribute, list):
        return [_v2_ready_attribute(item) for item in attribute]
    if not isinstance(attribute, dict):
        return attribute
    out: dict[str, Any] = {}
    for key, member in attribute.items():
        if key in _PREVIOUS_MEMBERS:
            out["previousValue"] = member
        elif key == "lang":
            out["lang"] = {"type": "Property", "value": member}
        else:
            out[key] = member
    return out


def _v2_ready(entity: dict[str, Any]) -> dict[str, Any]:
    """The rendered entity in the shape `to_ngsiv2` takes: the first of several types (an
    NGSI-v2 entity has one), `previousObject`/`previousLanguageMap`/... as `previousValue` (the
    one previous-value metadata NGSI-v2 knows), a `lang` member as a `lang` metadata."""
    out: dict[str, Any] = {}
    for key, value in entity.items():
        if key == "type" and isinstance(value, list) and value:
            out[key] = value[0]
        elif key in ("id", "type", "scope", "createdAt", "modifiedAt", "deletedAt"):
            out[key] = value
        else:
            out[key] = _v2_ready_attribute(value)
    return out


def ngsiv2_body(item: Outgoing) -> dict[str, Any]:
    """The NGSI-v2 notification for an `x-ngsiv2-*` endpoint (see `ngsi.ngsiv2_notification`).

    An entity that cannot be written as NGSI-v2 is left out and logged; the others still go.
    """
    key_values = item.endpoint.ngsiv2 == "keyValues"
    ready = [_v2_ready(entity) for entity in item.entities]
    try:
        return ngsiv2_notification(item.subscription_id, ready, key_values=key_values)
    except BadRequestData:
        pass
    kept: list[dict[str, Any]] = []
    for entity in ready:
        try:
            ngsiv2_notification(item.subscription_id, [entity], key_values=key_values)
        except BadRequestData as exc:
            log.warning(
                "notification of %s: entity %s left out, it has no NGSI-v2 form: %s",
                item.subscription_id,
                entity.get("id"),
                exc.detail,
            )
            continue
        kept.append(entity)
    return ngsiv2_notification(item.subscription_id, kept, key_values=key_values)


def payload_for(
    item: Outgoing, at: datetime, *, notification_id: str | None = None
) -> dict[str, Any]:
    """The body to send for `item` at `at`: an NGSI-LD Notification (with `notification_id`,
    see `notification_body`), or the NGSI-v2 one (which has no id)."""
    if item.endpoint.ngsiv2 is not None:
        return ngsiv2_body(item)
    return notification_body(
        item.subscription_id, entities_for_wire(item), at, notification_id=notification_id
    )


def notification_headers(item: Outgoing) -> dict[str, str]:
    """Content-Type, Link (JSON only), NGSILD-Tenant (named tenants) and the receiverInfo pairs;
    for the NGSI-v2 formats `application/json` with `Ngsiv2-AttrsFormat` and no Link."""
    endpoint = item.endpoint
    headers: dict[str, str] = {}
    if endpoint.ngsiv2 is not None:
        headers["Content-Type"] = "application/json"
        headers["Ngsiv2-AttrsFormat"] = endpoint.ngsiv2
    elif endpoint.accept == "application/ld+json":
        headers["Content-Type"] = "application/ld+json"
    else:
        headers["Content-Type"] = "application/json"
        if item.context_url:
            headers["Link"] = (
                f'<{item.context_url}>; rel="{JSON_LD_LINK_REL}"; type="application/ld+json"'
            )
    if item.tenant is not None:
        headers["NGSILD-Tenant"] = item.tenant
    for key, value in endpoint.receiver_info:
        headers[key] = value
    return headers


def entities_for_wire(item: Outgoing) -> list[dict[str, Any]]:
    """The entities as sent: with `@context` in each one for JSON-LD endpoints."""
    if item.endpoint.accept == "application/ld+json" and item.ld_context is not None:
        return [{**entity, "@context": item.ld_context} for entity in item.entities]
    return item.entities


class Sender(Protocol):
    """Delivers one notification to one endpoint (one attempt); raises DeliveryError."""

    async def send(self, item: Outgoing, body: dict[str, Any], timeout: float) -> None: ...

    async def aclose(self) -> None: ...


MAX_ANSWER_BYTES = 64 * 1024
"""How much of an endpoint's answer to a notification is read (the rest is not)."""


class HttpSender:
    """POSTs notifications to one HTTP(S) endpoint over its own connection pool.

    One pool per endpoint keeps a hanging endpoint from holding connections another needs.
    Pass one shared `verify` SSL context: building one costs tens of milliseconds.
    """

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._client = httpx.AsyncClient(
            transport=transport,
            verify=verify,
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            follow_redirects=False,
            trust_env=False,
        )

    async def send(self, item: Outgoing, body: dict[str, Any], timeout: float) -> None:
        headers = notification_headers(item)
        content = orjson.dumps(body)
        try:
            # The whole attempt, answer included, within `timeout`; at most
            # `MAX_ANSWER_BYTES` of the answer are read (a longer one closes the connection).
            async with (
                asyncio.timeout(timeout),
                self._client.stream(
                    "POST",
                    item.endpoint.uri,
                    content=content,
                    headers=headers,
                    timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                ) as response,
            ):
                status = response.status_code
                size = 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        break
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise DeliveryError(
                f"no answer within {timeout:g} s ({type(exc).__name__})", retry=True
            ) from exc
        except httpx.HTTPError as exc:
            refused = isinstance(exc.__cause__, OutboundRefused)  # not worth retrying
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retry=not refused) from exc
        if status >= 500:
            raise DeliveryError(f"the endpoint answered {status}", retry=True)
        if status >= 300:
            raise DeliveryError(f"the endpoint answered {status}", retry=False)

    async def aclose(self) -> None:
        await self._client.aclose()


Report = Callable[..., None]
"""`report(item, *, ok, at, error, began, counted, final)`, called once per notification with
`final=True`, and with `final=False` for each failed attempt that will be retried (so that the
subscription shows the failure while the retries go on)."""


class _Worker:
    """The queue and task of one endpoint."""

    def __init__(
        self,
        key: str,
        sender: Sender,
        *,
        dispatcher: Dispatcher,
    ) -> None:
        self.key = key
        self.sender = sender
        self.dispatcher = dispatcher
        self.queue: deque[Outgoing] = deque()
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.idle_since = 0.0
        self.busy = False

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"notify {self.key}")

    def put(self, item: Outgoing) -> None:
        limit = self.dispatcher.queue_limit
        if len(self.queue) >= limit:
            dropped = self.queue.popleft()
            self.dispatcher.count_dropped()
            self.dispatcher.finish(
                dropped,
                ok=False,
                error=f"dropped: more than {limit} notifications wait for {self.key}",
                began=False,
            )
        self.queue.append(item)
        self.wakeup.set()

    def _take_batch(self) -> list[list[Outgoing]]:
        """Everything waiting now, grouped per subscription in order of first appearance."""
        groups: dict[tuple[str | None, str], list[Outgoing]] = {}
        limit = self.dispatcher.max_batch_entities
        taken = 0
        while self.queue and taken < limit * 8:
            item = self.queue.popleft()
            taken += len(item.entities)
            groups.setdefault((item.tenant, item.subscription_id), []).append(item)
        batches: list[list[Outgoing]] = []
        for items in groups.values():
            current: list[Outgoing] = []
            count = 0
            for item in items:
                if current and (
                    not item.batchable
                    or not current[-1].batchable
                    or count + len(item.entities) > limit
                ):
                    batches.append(current)
                    current, count = [], 0
                current.append(item)
                count += len(item.entities)
            if current:
                batches.append(current)
        return batches

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.queue:
                self.busy = False
                self.wakeup.clear()
                self.idle_since = loop.time()
                await self.wakeup.wait()
                continue
            self.busy = True
            for batch in self._take_batch():
                await self._deliver(batch)

    async def _deliver(self, batch: list[Outgoing]) -> None:
        first = batch[0]
        if len(batch) == 1:
            merged = first
        else:
            merged = Outgoing(
                subscription_id=first.subscription_id,
                tenant=first.tenant,
                endpoint=first.endpoint,
                entities=[entity for item in batch for entity in item.entities],
                context_url=first.context_url,
                ld_context=first.ld_context,
                created=first.created,
                batchable=first.batchable,
            )
        dispatcher = self.dispatcher
        timeout = merged.endpoint.timeout or dispatcher.timeout
        delays = list(dispatcher.retry_delays)
        error = ""
        notification_id = new_notification_id()
        dispatcher.begin(merged)
        while True:
            if not dispatcher.still_wanted(merged):
                dispatcher.finish(
                    merged, ok=False, error="subscription gone or paused", counted=False
                )
                return
            at = datetime.now(UTC)
            body = payload_for(merged, at, notification_id=notification_id)
            try:
                await self.sender.send(merged, body, timeout)
            except DeliveryError as exc:
                error = str(exc)
                if exc.retry and delays:
                    log.info(
                        "notification of %s to %s failed (%s); retrying",
                        merged.subscription_id,
                        merged.endpoint.uri,
                        error,
                    )
                    dispatcher.attempt_failed(merged, error=error, at=at)
                    await asyncio.sleep(delays.pop(0))
                    continue
                log.warning(
                    "notification of %s to %s failed: %s",
                    merged.subscription_id,
                    merged.endpoint.uri,
                    error,
                )
                dispatcher.finish(merged, ok=False, error=error, parts=batch, at=at)
                return
            except Exception as exc:  # a sender bug must not kill the worker
                log.exception("notification of %s to %s crashed", merged.subscription_id, self.key)
                dispatcher.finish(merged, ok=False, error=repr(exc), parts=batch, at=at)
                return
            dispatcher.finish(merged, ok=True, parts=batch, at=at)
            return


class Dispatcher:
    """Routes `Outgoing` items to per-endpoint workers; lives on the notifier's event loop.

    `sender_for(item)` returns the worker key and a factory of the Sender for that key (HTTP or
    MQTT); `report` receives the outcome of every notification; `still_wanted` is asked before
    each retry; `retry_delays` are the waits before the retries of one notification (None: the
    broker's default, `DEFAULT_RETRY_DELAYS`); `queue_limit` the items waiting per endpoint.
    """

    def __init__(
        self,
        *,
        sender_for: Callable[[Outgoing], tuple[str, Callable[[], Sender]]],
        report: Report,
        still_wanted: Callable[[Outgoing], bool],
        begin: Callable[[Outgoing], None] | None = None,
        timeout: float = 5.0,
        retry_delays: Sequence[float] | None = None,
        queue_limit: int = DEFAULT_NOTIFICATION_QUEUE_LIMIT,
        max_batch_entities: int = 500,
        idle_close_after: float = 300.0,
    ) -> None:
        self._sender_for = sender_for
        self._report = report
        self._begin = begin
        self.still_wanted = still_wanted
        self.timeout = timeout
        self.retry_delays = DEFAULT_RETRY_DELAYS if retry_delays is None else tuple(retry_delays)
        self.queue_limit = queue_limit
        self.max_batch_entities = max_batch_entities
        self.idle_close_after = idle_close_after
        self._workers: dict[str, _Worker] = {}
        self.dropped = 0
        self.sent = 0
        self.failed = 0
        self.latencies: deque[float] = deque(maxlen=100_000)

    def submit(self, item: Outgoing) -> None:
        """Queue `item` on its endpoint's worker (created on first use). Never blocks."""
        key, factory = self._sender_for(item)
        worker = self._workers.get(key)
        if worker is None or worker.task is None or worker.task.done():
            worker = _Worker(key, factory(), dispatcher=self)
            self._workers[key] = worker
            worker.start()
        worker.put(item)

    def count_dropped(self) -> None:
        self.dropped += 1

    def finish(
        self,
        item: Outgoing,
        *,
        ok: bool,
        error: str | None = None,
        parts: Sequence[Outgoing] | None = None,
        at: datetime | None = None,
        began: bool = True,
        counted: bool = True,
    ) -> None:
        """Record the outcome of one notification and pass it to `report`.

        `began`: `begin(item)` was called for it (False for items dropped from a full queue);
        `counted`: it counts as sent (False when abandoned because the subscription went away).
        """
        if counted:
            if ok:
                self.sent += 1
                now = asyncio.get_running_loop().time()
                for part in parts or (item,):
                    if part.created:
                        self.latencies.append(now - part.created)
            else:
                self.failed += 1
        try:
            self._report(
                item, ok=ok, at=at or datetime.now(UTC), error=error, began=began, counted=counted
            )
        except Exception:
            log.exception(
                "recording the outcome of a notification of %s failed", item.subscription_id
            )

    def attempt_failed(self, item: Outgoing, *, error: str, at: datetime) -> None:
        """Record a failed attempt that will be retried (not counted as a notification)."""
        try:
            self._report(item, ok=False, at=at, error=error, began=False, counted=True, final=False)
        except Exception:
            log.exception("recording a failed attempt of %s failed", item.subscription_id)

    def begin(self, item: Outgoing) -> None:
        """Called once before the first attempt to deliver `item`."""
        if self._begin is not None:
            self._begin(item)

    @property
    def pending(self) -> int:
        return sum(len(worker.queue) for worker in self._workers.values())

    async def close_idle(self) -> None:
        """Stop the workers of endpoints that had nothing to send for `idle_close_after` s."""
        now = asyncio.get_running_loop().time()
        for key, worker in list(self._workers.items()):
            if worker.busy or worker.queue or now - worker.idle_since < self.idle_close_after:
                continue
            del self._workers[key]
            await _stop_worker(worker)

    async def drain(self, timeout: float) -> None:
        """Wait (at most `timeout` s) until every queue is empty."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pending and loop.time() < deadline:
            await asyncio.sleep(0.02)

    async def aclose(self) -> None:
        workers = list(self._workers.values())
        self._workers.clear()
        for worker in workers:
            await _stop_worker(worker)

    def stats(self) -> Mapping[str, int]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "pending": self.pending,
            "endpoints": len(self._workers),
        }


async def _stop_worker(worker: _Worker) -> None:
    if worker.task is not None:
        worker.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker.task
    with contextlib.suppress(Exception):
        await worker.sender.aclose()
