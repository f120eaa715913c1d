"""The notifier: matches committed entity changes to subscriptions and sends notifications.

It runs on its own thread with its own asyncio loop, so that neither the writers of entities nor
the HTTP server ever wait for a subscriber:

- `entity_changed(change)` (the store's listener, called on the committing thread) appends the
  change to a bounded intake and returns; when the intake is full the change is dropped and
  counted (`stats()["dropped_changes"]`), never blocking the writer.
- The loop takes changes in commit order, matches each against the tenant's subscriptions and
  hands one `Outgoing` per notified subscription to the `Dispatcher` (one queue per endpoint,
  see `ngsi.broker._notifier_send`).
- A scheduler task sends the periodic notifications of `timeInterval` subscriptions: every N
  seconds, all matching entities in one notification (none when nothing matches).
- Outcomes update each subscription's `SubscriptionStatus` (timesSent, lastNotification,
  lastSuccess, lastFailure, status ok/failed); `flush` persists the changed ones every
  `flush_interval` seconds and at stop.

Matching rules (NGSI-LD 1.6.1 clause 5.8.6 with the notificationTrigger of later releases):
- the subscription is active (isActive not false) and not expired, and not periodic; changes
  committed before it was created never notify it (no initial notification either, as in
  NGSI-LD 1.6.1 and Orion-LD);
- the entity matches one of `entities` (type selection, and id or idPattern — full match, as in
  entity queries); without `entities` every entity matches;
- the change raises a trigger the subscription has (default attributeCreated and
  attributeUpdated; entityUpdated = the three attribute triggers): creating an entity raises
  entityCreated and attributeCreated for each attribute, deleting it entityDeleted and
  attributeDeleted for each, and an update raises per written attribute attributeCreated,
  attributeUpdated or attributeDeleted (per instance, by datasetId); attribute triggers count
  only for watched attributes (all when `watchedAttributes` is absent);
- `q` and `geoQ` hold on the entity after the change (before it, for a deletion);
- cooldown: after a failed notification, changes within the endpoint's `cooldown` (ms) do not
  notify;
- throttling: after a notification is triggered, changes within the next `throttling` seconds
  do not notify (they are dropped, not delayed: NGSI-LD says a notification "shall not be sent"
  before the period elapsed); the decision is taken on the single notifier thread, so two
  changes never both pass the window.

The notified entity is the whole entity after the change, as a GET with the subscription's
context (`jsonldContext`, else the context it was created with) returns it, in its
`notification.format`, limited to `notification.attributes`, with system attributes when
`sysAttrs`. Deleted attributes that triggered the notification appear with the value
`urn:ngsi-ld:null` (a LanguageProperty's languageMap `{"@none": "urn:ngsi-ld:null"}`); a deleted
entity is `{id, type, deletedAt}` plus, with `showChanges` or an attributeDeleted trigger, its
attributes nulled. `showChanges` adds previousValue / previousObject / previousLanguageMap /
previousJson / previousVocab to updated and deleted attributes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from ngsi._errors import NonexistentTenant
from ngsi._outbound import GuardedTransport
from ngsi.broker._entities import attribute_names, entity_types, format_time
from ngsi.broker._events import EntityChange
from ngsi.broker._notifier_mqtt import MqttConnections, MqttSender, parse_mqtt_endpoint
from ngsi.broker._notifier_send import (
    DeliveryError,
    Dispatcher,
    Endpoint,
    HttpSender,
    Outgoing,
    Sender,
)
from ngsi.broker._render import EntityView
from ngsi.broker._settings import DEFAULT_NOTIFICATION_QUEUE_LIMIT
from ngsi.broker._store import Store
from ngsi.broker._subscriptions_model import NotificationHosts

__all__ = [
    "NULL_VALUE",
    "ActiveSubscription",
    "Notifier",
    "Selector",
    "SubscriptionStatus",
    "change_events",
]

log = logging.getLogger(__name__)

NULL_VALUE: Final = "urn:ngsi-ld:null"
_VALUE_MEMBER: Final = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
    "JsonProperty": "json",
}
_PREVIOUS: Final = {
    "value": "previousValue",
    "object": "previousObject",
    "languageMap": "previousLanguageMap",
    "vocab": "previousVocab",
    "valueList": "previousValueList",
    "objectList": "previousObjectList",
    "json": "previousJson",
}
_ATTRIBUTE_TRIGGERS: Final = frozenset({"attributeCreated", "attributeUpdated", "attributeDeleted"})


# --- status -------------------------------------------------------------------------------


@dataclass(kw_only=True)
class SubscriptionStatus:
    """The mutable, read-only-to-clients state of one subscription, kept across updates."""

    times_sent: int = 0
    times_failed: int = 0
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None
    last_error: str | None = None
    state: str | None = None
    """`ok` or `failed`: the outcome of the last notification (None before the first)."""
    last_trigger: float | None = None
    """`time.monotonic()` of the last triggered notification, for throttling."""
    next_due: float | None = None
    """`time.monotonic()` of the next periodic notification."""
    in_flight: int = 0
    """Notifications being delivered right now (their outcome is not known yet)."""
    failed_at: float | None = None
    """`time.monotonic()` of the last failed notification, for `endpoint.cooldown`."""
    dirty: bool = False

    def notification_members(self) -> dict[str, Any]:
        """The read-only members GET shows inside `notification`."""
        members: dict[str, Any] = {}
        if self.state is not None:
            members["status"] = self.state
        if self.times_sent:
            members["timesSent"] = self.times_sent
        if self.times_failed:
            members["timesFailed"] = self.times_failed
        if self.last_notification:
            members["lastNotification"] = self.last_notification
        if self.last_success:
            members["lastSuccess"] = self.last_success
        if self.last_failure:
            members["lastFailure"] = self.last_failure
        return members

    def to_json(self) -> dict[str, Any]:
        return {
            "timesSent": self.times_sent,
            "timesFailed": self.times_failed,
            "lastNotification": self.last_notification,
            "lastSuccess": self.last_success,
            "lastFailure": self.last_failure,
            "lastError": self.last_error,
            "status": self.state,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubscriptionStatus:
        return cls(
            times_sent=int(data.get("timesSent") or 0),
            times_failed=int(data.get("timesFailed") or 0),
            last_notification=data.get("lastNotification"),
            last_success=data.get("lastSuccess"),
            last_failure=data.get("lastFailure"),
            last_error=data.get("lastError"),
            state=data.get("status"),
        )


# --- compiled subscriptions ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Selector:
    """One `entities[]` member: expanded type groups (or of ands), and an id or id pattern."""

    type_groups: tuple[frozenset[str], ...]
    id: str | None = None
    id_pattern: re.Pattern[str] | None = None

    def matches(self, entity_id: str, types: frozenset[str]) -> bool:
        if self.id is not None and entity_id != self.id:
            return False
        if (
            self.id is None
            and self.id_pattern is not None
            and self.id_pattern.fullmatch(entity_id) is None
        ):
            return False
        return any(group <= types for group in self.type_groups)

    @property
    def single_types(self) -> frozenset[str] | None:
        """The types this selector can match when every group is a single type, else None."""
        if all(len(group) == 1 for group in self.type_groups):
            return frozenset(next(iter(group)) for group in self.type_groups)
        return None


@dataclass(frozen=True, kw_only=True, eq=False)
class ActiveSubscription:
    """A subscription ready for matching: its document plus everything compiled from it."""

    id: str
    tenant: str | None
    doc: Mapping[str, Any]
    context_entries: tuple[Any, ...]
    created_at: str
    modified_at: str
    status: SubscriptionStatus
    selectors: tuple[Selector, ...] | None
    watched: frozenset[str] | None
    triggers: frozenset[str]
    predicate: Callable[[Mapping[str, Any]], bool] | None
    is_active: bool
    expires_at: datetime | None
    throttling: float | None
    time_interval: float | None
    endpoint: Endpoint
    view: EntityView
    show_changes: bool
    lang: str | None
    context_url: str | None
    ld_context: Any
    registered: float = 0.0
    """`time.monotonic()` when the subscription was created: changes committed before that do
    not notify it, even when the notifier matches them later."""

    def state(self, now: datetime) -> str:
        """`expired`, `paused` or `active`, as GET shows it."""
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active" if self.is_active else "paused"

    def live(self, now: datetime) -> bool:
        return self.is_active and (self.expires_at is None or now < self.expires_at)

    def selects(self, entity_id: str, types: frozenset[str]) -> bool:
        if self.selectors is None:
            return True
        return any(selector.matches(entity_id, types) for selector in self.selectors)

    def index_types(self) -> frozenset[str] | None:
        """The types under which the index files this subscription (None: look at it always)."""
        if self.selectors is None:
            return None
        found: set[str] = set()
        for selector in self.selectors:
            single = selector.single_types
            if single is None:
                return None
            found |= single
        return frozenset(found)


class _TenantIndex:
    """Subscriptions of one tenant, by the entity types they select (immutable snapshot)."""

    def __init__(self, subscriptions: Iterable[ActiveSubscription]) -> None:
        self.all: tuple[ActiveSubscription, ...] = tuple(subscriptions)
        by_type: dict[str, list[ActiveSubscription]] = {}
        anywhere: list[ActiveSubscription] = []
        for subscription in self.all:
            if subscription.time_interval is not None:
                continue
            types = subscription.index_types()
            if types is None:
                anywhere.append(subscription)
            else:
                for entity_type in types:
                    by_type.setdefault(entity_type, []).append(subscription)
        self.by_type = by_type
        self.anywhere = tuple(anywhere)

    def candidates(self, types: Iterable[str]) -> list[ActiveSubscription]:
        found: dict[int, ActiveSubscription] = {}
        for entity_type in types:
            for subscription in self.by_type.get(entity_type, ()):
                found.setdefault(id(subscription), subscription)
        for subscription in self.anywhere:
            found.setdefault(id(subscription), subscription)
        return list(found.values())


# --- changes ------------------------------------------------------------------------------


def _instances(attribute: Any) -> list[Mapping[str, Any]]:
    if isinstance(attribute, list):
        return [item for item in attribute if isinstance(item, Mapping)]
    if isinstance(attribute, Mapping):
        return [attribute]
    return []


def _datasets(attribute: Any) -> set[str | None]:
    return {item.get("datasetId") for item in _instances(attribute)}


def change_events(change: EntityChange) -> tuple[frozenset[str], dict[str, set[str]]]:
    """The entity-level and per-attribute triggers a committed change raises."""
    attribute_events: dict[str, set[str]] = {}
    if change.kind == "created":
        assert change.after is not None
        for name in attribute_names(change.after):
            attribute_events[name] = {"attributeCreated"}
        return frozenset({"entityCreated"}), attribute_events
    if change.kind == "deleted":
        assert change.before is not None
        for name in attribute_names(change.before):
            attribute_events[name] = {"attributeDeleted"}
        return frozenset({"entityDeleted"}), attribute_events
    before = change.before or {}
    after = change.after or {}
    for name in change.changed_attributes:
        old, new = before.get(name), after.get(name)
        if old is None and new is None:
            continue
        if old is None:
            attribute_events[name] = {"attributeCreated"}
        elif new is None:
            attribute_events[name] = {"attributeDeleted"}
        else:
            old_sets, new_sets = _datasets(old), _datasets(new)
            events: set[str] = set()
            if old_sets & new_sets:
                events.add("attributeUpdated")
            if new_sets - old_sets:
                events.add("attributeCreated")
            if old_sets - new_sets:
                events.add("attributeDeleted")
            attribute_events[name] = events
    return frozenset(), attribute_events


def _nulled(
    instance: Mapping[str, Any], *, previous: bool, entity_deleted: bool, at: str
) -> dict[str, Any]:
    kind = instance.get("type") if isinstance(instance.get("type"), str) else "Property"
    assert isinstance(kind, str)
    member = _VALUE_MEMBER.get(kind, "value")
    out: dict[str, Any] = {"type": kind}
    if "datasetId" in instance:
        out["datasetId"] = instance["datasetId"]
    if kind == "LanguageProperty" and not entity_deleted:
        out[member] = {"@none": NULL_VALUE}
    else:
        out[member] = NULL_VALUE
    if previous and member in instance:
        out[_PREVIOUS[member]] = instance[member]
    for system in ("createdAt", "modifiedAt"):
        if system in instance:
            out[system] = instance[system]
    out["deletedAt"] = at
    return out


def _with_previous(after: Any, before: Any) -> Any:
    old_by_set = {item.get("datasetId"): item for item in _instances(before)}

    def one(instance: Mapping[str, Any]) -> Any:
        old = old_by_set.get(instance.get("datasetId"))
        if old is None:
            return instance
        kind = old.get("type")
        member = _VALUE_MEMBER.get(kind if isinstance(kind, str) else "", "value")
        if member not in old:
            return instance
        return {**instance, _PREVIOUS[member]: old[member]}

    if isinstance(after, list):
        return [one(item) if isinstance(item, Mapping) else item for item in after]
    if isinstance(after, Mapping):
        return one(after)
    return after


def _deleted_attribute(before: Any, after: Any, *, previous: bool, at: str) -> Any:
    """What a notification shows for an attribute some or all of whose instances went away."""
    old = _instances(before)
    if after is None:
        if not old:
            return None
        default = next((i for i in old if "datasetId" not in i), old[0])
        nulled = _nulled(default, previous=previous, entity_deleted=False, at=at)
        nulled.pop("datasetId", None)
        return nulled
    remaining = _instances(after)
    kept = {item.get("datasetId") for item in remaining}
    gone = [
        _nulled(item, previous=previous, entity_deleted=False, at=at)
        for item in old
        if item.get("datasetId") not in kept
    ]
    current = _with_previous(after, before) if previous else after
    return [*_instances(current), *gone]


def _apply_lang(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    """LanguageProperties reduced to one language (a Property with `lang`), as `lang=` asks."""
    wanted = [part.split(";")[0].strip() for part in lang.split(",") if part.strip()]

    def pick(language_map: Mapping[str, Any]) -> tuple[str, Any] | None:
        for tag in wanted:
            if tag == "*" and language_map:
                first = next(iter(language_map))
                return first, language_map[first]
            if tag in language_map:
                return tag, language_map[tag]
        if "@none" in language_map:
            return "@none", language_map["@none"]
        return None

    def convert(instance: Any) -> Any:
        if not isinstance(instance, Mapping) or instance.get("type") != "LanguageProperty":
            return instance
        language_map = instance.get("languageMap")
        if not isinstance(language_map, Mapping):
            return instance
        chosen = pick(language_map)
        out = {k: v for k, v in instance.items() if k not in ("languageMap", "type")}
        out["type"] = "Property"
        if chosen is None:
            out["value"] = None
        else:
            out["value"] = chosen[1]
            if chosen[0] != "@none":
                out["lang"] = chosen[0]
        return out

    for name in attribute_names(doc):
        value = doc[name]
        doc[name] = [convert(v) for v in value] if isinstance(value, list) else convert(value)
    return doc


@dataclass(kw_only=True)
class _Matched:
    """What one change means for one subscription."""

    subscription: ActiveSubscription
    deleted: frozenset[str]


class _ChangeRenderer:
    """Builds (and memoises per change) the entities of the notifications of one change."""

    def __init__(self, change: EntityChange) -> None:
        self.change = change
        self.at = format_time(change.at.astimezone(UTC))
        self._docs: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._rendered: dict[tuple[Any, ...], dict[str, Any]] = {}

    def entity(self, matched: _Matched) -> dict[str, Any]:
        subscription = matched.subscription
        doc_key = (subscription.show_changes, matched.deleted, subscription.lang)
        key = (id(subscription.view), *doc_key)
        rendered = self._rendered.get(key)
        if rendered is None:
            doc = self._docs.get(doc_key)
            if doc is None:
                doc = self._doc(subscription.show_changes, matched.deleted)
                if subscription.lang:
                    doc = _apply_lang(doc, subscription.lang)
                self._docs[doc_key] = doc
            rendered = subscription.view.render(doc)
            if self.change.kind == "deleted":
                rendered["deletedAt"] = self.at
            self._rendered[key] = rendered
        return rendered

    def _doc(self, show_changes: bool, deleted: frozenset[str]) -> dict[str, Any]:
        change = self.change
        if change.kind == "deleted":
            before = change.before or {}
            doc: dict[str, Any] = {"id": change.entity_id, "type": before.get("type")}
            for system in ("createdAt", "modifiedAt"):
                if system in before:
                    doc[system] = before[system]
            names = attribute_names(before) if show_changes else sorted(deleted)
            for name in names:
                old = _instances(before.get(name))
                if not old:
                    continue
                default = next((i for i in old if "datasetId" not in i), old[0])
                nulled = _nulled(default, previous=show_changes, entity_deleted=True, at=self.at)
                nulled.pop("datasetId", None)
                doc[name] = nulled
            return doc
        after = change.after or {}
        doc = dict(after)
        if change.kind == "updated" and change.before is not None:
            before = change.before
            if show_changes:
                for name in change.changed_attributes:
                    if name in after and name in before and name not in deleted:
                        doc[name] = _with_previous(after[name], before[name])
            for name in deleted:
                shown = _deleted_attribute(
                    before.get(name), after.get(name), previous=show_changes, at=self.at
                )
                if shown is not None:
                    doc[name] = shown
        return doc


# --- the notifier --------------------------------------------------------------------------


class _RefusedSender:
    """Fails every notification to an endpoint whose host is no longer allowed (a stored
    subscription the current `notification_allow_hosts` does not cover)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem

    async def send(self, item: Outgoing, body: dict[str, Any], timeout: float) -> None:
        raise DeliveryError(self.problem, retry=False)

    async def aclose(self) -> None:
        """Nothing to close."""


Flush = Callable[[list[ActiveSubscription]], None]
"""Persists the status of the given subscriptions (blocking; called in a worker thread)."""


class Notifier:
    """Matches entity changes to subscriptions and sends the notifications (see the module).

    Thread-safety: `entity_changed`, `put`, `remove`, `get` and `subscriptions` may be called
    from any thread; everything else runs on the notifier's own thread. `start()` and `stop()`
    are called once each, from the same thread. `retry_delays` (None: the broker's default
    backoff) and `queue_limit` (items waiting per endpoint) go to the `Dispatcher`.
    """

    def __init__(
        self,
        store: Store,
        *,
        flush: Flush | None = None,
        timeout: float = 5.0,
        retry_delays: Sequence[float] | None = None,
        queue_limit: int = DEFAULT_NOTIFICATION_QUEUE_LIMIT,
        intake_limit: int = 100_000,
        flush_interval: float = 1.0,
        max_batch_entities: int = 500,
        http_transport: httpx.AsyncBaseTransport | None = None,
        mqtt_connections: MqttConnections | None = None,
        hosts: NotificationHosts | None = None,
    ) -> None:
        self._store = store
        self._flush = flush
        self._timeout = timeout
        self._retry_delays = None if retry_delays is None else tuple(retry_delays)
        self._queue_limit = queue_limit
        self._intake_limit = intake_limit
        self._flush_interval = flush_interval
        self._max_batch_entities = max_batch_entities
        self._http_transport = http_transport
        self._mqtt = mqtt_connections or MqttConnections()
        self._hosts = hosts

        self._lock = threading.Lock()
        self._in_flight_lock = threading.Lock()
        self._subscriptions: dict[tuple[str | None, str], ActiveSubscription] = {}
        self._index: dict[str | None, _TenantIndex] = {}

        self._intake: deque[tuple[EntityChange, float]] = deque()
        self._intake_lock = threading.Lock()
        self._intake_signalled = False
        self.dropped_changes = 0
        self.throttled = 0
        self.cooled_down = 0
        self.matched = 0

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._intake_event: asyncio.Event | None = None
        self._schedule_event: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._dispatcher: Dispatcher | None = None
        self._ssl: ssl.SSLContext | None = None
        self._routes: dict[int, tuple[Endpoint, str, Callable[[], Sender]]] = {}

    # --- registry (any thread) ------------------------------------------------------------

    def put(self, subscription: ActiveSubscription) -> None:
        """Add or replace a subscription (by tenant and id)."""
        with self._lock:
            self._subscriptions[(subscription.tenant, subscription.id)] = subscription
            self._reindex(subscription.tenant)
        if subscription.time_interval is not None:
            self._signal_schedule()

    def remove(self, tenant: str | None, subscription_id: str) -> ActiveSubscription | None:
        with self._lock:
            found = self._subscriptions.pop((tenant, subscription_id), None)
            if found is not None:
                self._reindex(tenant)
        return found

    def get(self, tenant: str | None, subscription_id: str) -> ActiveSubscription | None:
        return self._subscriptions.get((tenant, subscription_id))

    async def settle(self, subscription: ActiveSubscription, *, timeout: float = 0.5) -> None:
        """Wait (at most `timeout` s, without blocking the caller's event loop) until no
        notification of `subscription` is in flight, so that a read right after a notification
        arrived shows its outcome."""
        deadline = time.monotonic() + timeout
        while subscription.status.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    def subscriptions(self, tenant: str | None) -> tuple[ActiveSubscription, ...]:
        """The tenant's subscriptions, in the order they were first put."""
        index = self._index.get(tenant)
        return index.all if index is not None else ()

    def _reindex(self, tenant: str | None) -> None:
        self._index[tenant] = _TenantIndex(
            s for (t, _), s in self._subscriptions.items() if t == tenant
        )

    # --- intake (writer threads) ----------------------------------------------------------

    def entity_changed(self, change: EntityChange) -> None:
        """Queue a committed change for matching; never blocks, never raises."""
        try:
            loop = self._loop
            if loop is None or change.tenant not in self._index:
                return
            with self._intake_lock:
                if len(self._intake) >= self._intake_limit:
                    self.dropped_changes += 1
                    if self.dropped_changes in (1, 10, 100) or self.dropped_changes % 1000 == 0:
                        log.warning(
                            "notifier intake full: %d entity changes dropped so far",
                            self.dropped_changes,
                        )
                    return
                self._intake.append((change, time.monotonic()))
                if self._intake_signalled:
                    return
                self._intake_signalled = True
            event = self._intake_event
            if event is not None:
                loop.call_soon_threadsafe(event.set)
        except RuntimeError:
            pass  # the loop has closed: the broker is stopping
        except Exception:  # a listener must never raise into the writer
            log.exception("queuing an entity change for notifications failed")

    def _signal_schedule(self) -> None:
        loop, event = self._loop, self._schedule_event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the notifier thread and its loop; returns once they run."""
        if self._thread is not None:
            raise RuntimeError("the notifier is already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._main(ready))
            except BaseException as exc:  # reported to start() or logged
                failure.append(exc)
                ready.set()
                log.exception("the notifier stopped with an error")

        self._thread = threading.Thread(target=run, name="ngsi-notifier", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise RuntimeError("the notifier failed to start") from failure[0]

    def stop(self, *, drain: float = 2.0) -> None:
        """Send what is queued (for at most `drain` seconds), persist the status, stop."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        self._drain_timeout = drain
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        thread.join(timeout=drain + 10)
        self._thread = None

    async def _main(self, ready: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        self._intake_event = asyncio.Event()
        self._schedule_event = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._drain_timeout = 2.0
        self._dispatcher = Dispatcher(
            sender_for=self._sender_for,
            report=self._report,
            still_wanted=self._still_wanted,
            begin=self._begin,
            timeout=self._timeout,
            retry_delays=self._retry_delays,
            queue_limit=self._queue_limit,
            max_batch_entities=self._max_batch_entities,
        )
        tasks = [
            loop.create_task(self._intake_loop(), name="notifier intake"),
            loop.create_task(self._schedule_loop(), name="notifier schedule"),
            loop.create_task(self._maintenance_loop(), name="notifier maintenance"),
        ]
        self._loop = loop
        ready.set()
        try:
            await self._stop_event.wait()
            await self._process_intake()
            await self._dispatcher.drain(self._drain_timeout)
        finally:
            self._loop = None
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._dispatcher.aclose()
            self._mqtt.close()
            await self._flush_status(force=True)

    # --- matching (notifier thread) -------------------------------------------------------

    async def _intake_loop(self) -> None:
        assert self._intake_event is not None
        while True:
            await self._intake_event.wait()
            self._intake_event.clear()
            await self._process_intake()

    async def _process_intake(self) -> None:
        while True:
            with self._intake_lock:
                if not self._intake:
                    self._intake_signalled = False
                    return
                batch = [self._intake.popleft() for _ in range(min(len(self._intake), 200))]
            for change, received in batch:
                try:
                    self._match(change, received)
                except Exception:
                    log.exception(
                        "matching the change of entity %s to subscriptions failed", change.entity_id
                    )
            await asyncio.sleep(0)

    def _match(self, change: EntityChange, received: float) -> None:
        index = self._index.get(change.tenant)
        if index is None or not index.all:
            return
        types = frozenset(change.entity_types)
        candidates = index.candidates(types)
        if not candidates:
            return
        now = datetime.now(UTC)
        entity_events, attribute_events = change_events(change)
        state = change.after if change.after is not None else change.before
        assert state is not None
        renderer: _ChangeRenderer | None = None
        assert self._dispatcher is not None
        for subscription in candidates:
            if (
                not subscription.live(now)
                or subscription.time_interval is not None
                or received < subscription.registered
            ):
                continue
            if not subscription.selects(change.entity_id, types):
                continue
            triggers = subscription.triggers
            watched = subscription.watched
            fired = bool(entity_events & triggers)
            deleted: set[str] = set()
            for name, events in attribute_events.items():
                if watched is not None and name not in watched:
                    continue
                if events & triggers:
                    fired = True
                    if "attributeDeleted" in events and "attributeDeleted" in triggers:
                        deleted.add(name)
            if not fired:
                continue
            if subscription.predicate is not None and not subscription.predicate(state):
                continue
            status = subscription.status
            cooldown = subscription.endpoint.cooldown
            if cooldown and status.failed_at is not None and received - status.failed_at < cooldown:
                self.cooled_down += 1
                continue
            if subscription.throttling is not None:
                last = status.last_trigger
                if last is not None and received - last < subscription.throttling:
                    self.throttled += 1
                    continue
            status.last_trigger = received
            if renderer is None:
                renderer = _ChangeRenderer(change)
            entity = renderer.entity(
                _Matched(subscription=subscription, deleted=frozenset(deleted))
            )
            self.matched += 1
            self._dispatcher.submit(
                Outgoing(
                    subscription_id=subscription.id,
                    tenant=subscription.tenant,
                    endpoint=subscription.endpoint,
                    entities=[entity],
                    context_url=subscription.context_url,
                    ld_context=subscription.ld_context,
                    created=received,
                )
            )

    # --- periodic notifications -----------------------------------------------------------

    async def _schedule_loop(self) -> None:
        assert self._schedule_event is not None
        loop = asyncio.get_running_loop()
        while True:
            now = time.monotonic()
            next_due: float | None = None
            for subscription in list(self._subscriptions.values()):
                interval = subscription.time_interval
                if interval is None:
                    continue
                status = subscription.status
                if status.next_due is None:
                    status.next_due = now + interval
                if status.next_due <= now:
                    status.next_due = now + interval
                    if subscription.live(datetime.now(UTC)):
                        try:
                            await self._periodic(subscription, loop)
                        except Exception:
                            log.exception("periodic notification of %s failed", subscription.id)
                if next_due is None or status.next_due < next_due:
                    next_due = status.next_due
            self._schedule_event.clear()
            timeout = None if next_due is None else max(next_due - time.monotonic(), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._schedule_event.wait(), timeout)

    async def _periodic(
        self, subscription: ActiveSubscription, loop: asyncio.AbstractEventLoop
    ) -> None:
        started = time.monotonic()
        docs = await loop.run_in_executor(None, self._read_matching, subscription)
        if not docs:
            return
        assert self._dispatcher is not None
        entities = []
        for doc in docs:
            if subscription.lang:
                doc = _apply_lang(dict(doc), subscription.lang)
            entities.append(subscription.view.render(doc))
        self._dispatcher.submit(
            Outgoing(
                subscription_id=subscription.id,
                tenant=subscription.tenant,
                endpoint=subscription.endpoint,
                entities=entities,
                context_url=subscription.context_url,
                ld_context=subscription.ld_context,
                created=started,
                batchable=False,
            )
        )

    def _read_matching(self, subscription: ActiveSubscription) -> list[dict[str, Any]]:
        """All stored entities the subscription selects (blocking: runs in a worker thread)."""
        types: list[str] | None = None
        ids: list[str] | None = None
        if subscription.selectors is not None:
            single = subscription.index_types()
            types = sorted(single) if single is not None else None
            if all(s.id is not None for s in subscription.selectors):
                ids = sorted({s.id for s in subscription.selectors if s.id is not None})
        found: list[dict[str, Any]] = []
        try:
            with self._store.read(subscription.tenant) as txn:
                for row in txn.scan(types=types, ids=ids):
                    doc = row.doc
                    if not subscription.selects(doc["id"], frozenset(entity_types(doc))):
                        continue
                    if subscription.predicate is not None and not subscription.predicate(doc):
                        continue
                    found.append(doc)
        except NonexistentTenant:
            return []
        return found

    # --- delivery -------------------------------------------------------------------------

    def _sender_for(self, item: Outgoing) -> tuple[str, Callable[[], Sender]]:
        endpoint = item.endpoint
        cached = self._routes.get(id(endpoint))
        if cached is not None and cached[0] is endpoint:
            return cached[1], cached[2]
        key, factory = self._route(endpoint)
        if len(self._routes) > 10_000:
            self._routes.clear()
        self._routes[id(endpoint)] = (endpoint, key, factory)
        return key, factory

    def _route(self, endpoint: Endpoint) -> tuple[str, Callable[[], Sender]]:
        if self._hosts is not None:
            problem = self._hosts.problem(urlsplit(endpoint.uri).hostname or "")
            if problem is not None:
                return f"refused {endpoint.uri}", lambda: _RefusedSender(problem)
        if endpoint.uri.lower().startswith("mqtt"):
            target = parse_mqtt_endpoint(endpoint.uri, endpoint.notifier_info)
            return f"{target.label}", lambda: MqttSender(target, self._mqtt)
        return endpoint.uri, lambda: HttpSender(
            transport=self._http_transport or self._guarded_transport(),
            verify=self._ssl_context(),
        )

    def _guarded_transport(self) -> httpx.AsyncBaseTransport | None:
        """A transport that checks each address it connects to, where the rule needs it."""
        if self._hosts is None or not self._hosts.checks_addresses:
            return None
        return GuardedTransport(self._hosts.connect_problem, verify=self._ssl_context())

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _still_wanted(self, item: Outgoing) -> bool:
        current = self._subscriptions.get((item.tenant, item.subscription_id))
        return current is not None and current.live(datetime.now(UTC))

    def _begin(self, item: Outgoing) -> None:
        subscription = self._subscriptions.get((item.tenant, item.subscription_id))
        if subscription is not None:
            with self._in_flight_lock:
                subscription.status.in_flight += 1
            item.status = subscription.status

    def _report(
        self,
        item: Outgoing,
        *,
        ok: bool,
        at: datetime,
        error: str | None,
        began: bool = True,
        counted: bool = True,
        final: bool = True,
    ) -> None:
        if not final:
            self._attempt_failed(item, at=at, error=error)
            return
        if began and isinstance(item.status, SubscriptionStatus):
            with self._in_flight_lock:
                item.status.in_flight -= 1
        subscription = self._subscriptions.get((item.tenant, item.subscription_id))
        if subscription is None or not counted:
            return
        status = subscription.status
        stamp = format_time(at.astimezone(UTC))
        status.times_sent += 1
        status.last_notification = stamp
        if ok:
            status.last_success = stamp
            status.state = "ok"
        else:
            status.times_failed += 1
            status.failed_at = time.monotonic()
            status.last_failure = stamp
            status.last_error = error
            status.state = "failed"
        status.dirty = True

    def _attempt_failed(self, item: Outgoing, *, at: datetime, error: str | None) -> None:
        """A failed attempt that is retried: `lastFailure` and the `failed` status show it at
        once (as on a broker that does not retry); the counts wait for the final outcome."""
        subscription = self._subscriptions.get((item.tenant, item.subscription_id))
        if subscription is None:
            return
        status = subscription.status
        status.failed_at = time.monotonic()
        status.last_failure = format_time(at.astimezone(UTC))
        status.last_error = error
        status.state = "failed"
        status.dirty = True

    # --- maintenance ----------------------------------------------------------------------

    async def _maintenance_loop(self) -> None:
        assert self._dispatcher is not None
        ticks = 0
        while True:
            await asyncio.sleep(self._flush_interval)
            ticks += 1
            await self._flush_status(force=False)
            if ticks % 30 == 0:
                await self._dispatcher.close_idle()

    async def _flush_status(self, *, force: bool) -> None:
        if self._flush is None:
            return
        dirty = [s for s in list(self._subscriptions.values()) if s.status.dirty]
        if not dirty:
            return
        for subscription in dirty:
            subscription.status.dirty = False
        try:
            if force:
                self._flush(dirty)
            else:
                await asyncio.get_running_loop().run_in_executor(None, self._flush, dirty)
        except Exception:
            for subscription in dirty:
                subscription.status.dirty = True
            log.exception("saving the status of %d subscriptions failed", len(dirty))

    # --- figures --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters for monitoring and benchmarks."""
        figures: dict[str, Any] = {
            "subscriptions": len(self._subscriptions),
            "dropped_changes": self.dropped_changes,
            "throttled": self.throttled,
            "cooled_down": self.cooled_down,
            "matched": self.matched,
            "intake": len(self._intake),
            "mqtt_connections": len(self._mqtt),
        }
        if self._dispatcher is not None:
            figures.update(self._dispatcher.stats())
        return figures
