"""`Consumer`: receives NGSI-LD notifications and hands each entity change to its sinks and
handlers.

Receiving (`receive`, called by the HTTP and MQTT receivers; thread-safe):

1. the shared secret, if any, is checked first: the `receiverInfo` header named by
   `SharedSecret.header` must hold the value (compared in constant time) → else 401;
2. the body must be JSON (at most `max_body_bytes` → else 413) and an NGSI-LD Notification
   (`id`, `subscriptionId`, `notifiedAt`, `data` of entities with `id` and `type`) → else 400,
   whose detail says what is wrong;
3. a notification id seen before is a duplicate: answered 200, nothing handed on; so is every
   entity whose fingerprint (see `EntityChange.fingerprint`) was seen before, which catches a
   broker's retry of a notification it sends with a new id;
4. the rest is put into the inbox, and only then is the answer given: 200 with the counts. With
   a `state_dir` the inbox is a SQLite file, so the 200 means the notification survives a crash
   (a durable hand-off); without one it is memory. A full inbox answers 503, so the broker
   retries later.

Handling (one worker thread, in the order received): each notification's changes go to every
sink and handler, in the order they were added. When one raises, the notification is retried
after a growing delay (`retry_delays`), starting at the step that failed (the steps before it
are not repeated); after `max_attempts` it is set aside in the inbox's dead letters with the
error. While nothing arrives, sinks that have a `flush()` method are flushed about once a
second (files written in batches, pending forwards).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from agents.consumers._change import EntityChange
from agents.consumers._inbox import Inbox, InboxFull, InboxItem, MemoryInbox, SqliteInbox
from agents.consumers._sinks import Sink
from ngsi import Notification

__all__ = ["Consumer", "Handler", "Receipt", "SharedSecret"]

log = logging.getLogger("agents.consumers")

Handler = Callable[[EntityChange], None]
"""A function called with each entity change (after the sinks added before it)."""

DEFAULT_MAX_BODY = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class SharedSecret:
    """A receiverInfo header the broker must send with every notification (`header: value`)."""

    header: str
    value: str

    def __post_init__(self) -> None:
        if not self.header.strip() or not self.value:
            raise ValueError("a shared secret needs a header name and a non-empty value")

    def matches(self, headers: Mapping[str, str]) -> bool:
        given = headers.get(self.header.lower(), "")
        return hmac.compare_digest(given.encode(), self.value.encode())


@dataclass(frozen=True, kw_only=True)
class Receipt:
    """The answer to one notification: HTTP status, entities accepted and dropped as repeats."""

    status: int
    accepted: int = 0
    duplicates: int = 0
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"accepted": self.accepted, "duplicates": self.duplicates}
        if self.detail:
            out["detail"] = self.detail
        return out


class _CallbackStep:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.name = getattr(handler, "__name__", repr(handler))

    def open(self) -> None:
        pass

    def write(self, changes: Sequence[EntityChange]) -> None:
        for change in changes:
            self.handler(change)

    def close(self) -> None:
        pass


class Consumer:
    """A notification consumer (see the module documentation).

    `sinks` and handlers (`on_change`) are called in the order added. `state_dir` makes the
    inbox durable (`<state_dir>/inbox.sqlite`). `secret` requires a receiverInfo header.
    `routes` are extra Starlette routes the HTTP receiver serves beside `POST /notify` (the
    reference consumers serve their state there). Nothing is opened before `start()`.
    """

    def __init__(
        self,
        name: str,
        *,
        sinks: Sequence[Sink] = (),
        state_dir: str | Path | None = None,
        secret: SharedSecret | None = None,
        queue_limit: int = 10_000,
        seen_capacity: int = 100_000,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
        max_attempts: int = 20,
        routes: Sequence[Any] = (),
    ) -> None:
        self.name = name
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.secret = secret
        self.queue_limit = queue_limit
        self.seen_capacity = seen_capacity
        self.max_body_bytes = max_body_bytes
        self.retry_delays = tuple(retry_delays) or (1.0,)
        self.max_attempts = max_attempts
        self.routes: list[Any] = list(routes)
        self._steps: list[Any] = list(sinks)
        self._inbox: Inbox | None = None
        self._receive_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._flushed_at = 0.0
        self.counters: dict[str, int] = {
            "received": 0,
            "accepted": 0,
            "duplicates": 0,
            "unauthorized": 0,
            "invalid": 0,
            "rejected_full": 0,
            "handled": 0,
            "failures": 0,
            "dead": 0,
        }
        self._counter_lock = threading.Lock()

    # --- composition ----------------------------------------------------------------------

    def add_sink(self, sink: Sink) -> Sink:
        """Add a sink after the sinks and handlers added so far; returns it."""
        if self._worker is not None:
            raise RuntimeError("add sinks before start()")
        self._steps.append(sink)
        return sink

    def on_change(self, handler: Handler) -> Handler:
        """Decorator: call `handler(change)` for every entity change (after earlier steps)."""
        if self._worker is not None:
            raise RuntimeError("add handlers before start()")
        self._steps.append(_CallbackStep(handler))
        return handler

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def inbox(self) -> Inbox:
        if self._inbox is None:
            raise RuntimeError(f"consumer {self.name!r} is not started")
        return self._inbox

    @property
    def durable(self) -> bool:
        return self.state_dir is not None

    def start(self) -> None:
        """Open the inbox and the sinks, start the worker. Idempotent."""
        if self._worker is not None:
            return
        if self.state_dir is not None:
            self._inbox = SqliteInbox(
                self.state_dir / "inbox.sqlite",
                limit=self.queue_limit,
                seen_capacity=self.seen_capacity,
            )
        else:
            self._inbox = MemoryInbox(limit=self.queue_limit, seen_capacity=self.seen_capacity)
        for step in self._steps:
            step.open()
        self._stopping.clear()
        self._worker = threading.Thread(
            target=self._work, name=f"consumer-{self.name}", daemon=True
        )
        self._worker.start()
        self._wakeup.set()

    def stop(self, *, timeout: float = 10.0) -> None:
        """Let the worker finish what is waiting (at most `timeout` s), then close everything.
        What is still waiting stays in a durable inbox for the next start."""
        if self._worker is None:
            return
        if self._worker.is_alive() and not self._stopping.is_set():
            self.drain(timeout=timeout)
        self._stopping.set()
        self._wakeup.set()
        self._worker.join(timeout=timeout)
        self._worker = None
        for step in self._steps:
            try:
                step.close()
            except Exception:
                log.exception("consumer %s: closing %s failed", self.name, step.name)
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None

    def __enter__(self) -> Consumer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def drain(self, *, timeout: float = 10.0) -> bool:
        """Wait until every received notification is handled (or set aside); True if so."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._inbox is None or self._inbox.pending() == 0:
                return True
            time.sleep(0.01)
        return self._inbox is None or self._inbox.pending() == 0

    def stats(self) -> dict[str, Any]:
        with self._counter_lock:
            out: dict[str, Any] = dict(self.counters)
        out["pending"] = self._inbox.pending() if self._inbox is not None else 0
        out["durable"] = self.durable
        return out

    def _count(self, name: str, amount: int = 1) -> None:
        with self._counter_lock:
            self.counters[name] += amount

    # --- receiving ------------------------------------------------------------------------

    def receive(
        self,
        body: bytes | Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Receipt:
        """Check, de-duplicate and hand off one notification (see the module); thread-safe."""
        inbox = self.inbox
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        self._count("received")
        if self.secret is not None and not self.secret.matches(lowered):
            self._count("unauthorized")
            return Receipt(status=401, detail=f"missing or wrong {self.secret.header} header")
        if isinstance(body, bytes | bytearray):
            if len(body) > self.max_body_bytes:
                self._count("invalid")
                return Receipt(
                    status=413, detail=f"the body is larger than {self.max_body_bytes} bytes"
                )
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                self._count("invalid")
                return Receipt(status=400, detail=f"the body is not JSON: {exc}")
        else:
            data = dict(body)
        problem = _problem(data)
        if problem is not None:
            self._count("invalid")
            return Receipt(status=400, detail=problem)
        notification = Notification.model_validate(data)
        tenant = lowered.get("ngsild-tenant") or lowered.get("fiware-service") or None
        received_at = datetime.now(UTC)
        changes = [
            EntityChange(
                subscription_id=notification.subscription_id,
                notification_id=notification.id,
                notified_at=notification.notified_at,
                received_at=received_at,
                tenant=tenant,
                entity=entity,
            )
            for entity in notification.data
        ]
        notification_key = f"n:{notification.id}"
        with self._receive_lock:
            fingerprints = [f"c:{c.fingerprint}" if c.fingerprint else None for c in changes]
            seen = inbox.seen([notification_key, *(f for f in fingerprints if f)])
            if notification_key in seen:
                self._count("duplicates", max(len(changes), 1))
                return Receipt(status=200, duplicates=len(changes), detail="repeated notification")
            keep = [
                (change, key)
                for change, key in zip(changes, fingerprints, strict=True)
                if key is None or key not in seen
            ]
            repeats = len(changes) - len(keep)
            if not keep:
                self._count("duplicates", repeats)
                return Receipt(status=200, duplicates=repeats)
            keys = [notification_key, *dict.fromkeys(k for _, k in keep if k)]
            stored = notification.to_dict()
            stored["data"] = [dict(change.entity) for change, _ in keep]
            try:
                inbox.put(stored, tenant=tenant, received_at=received_at, keys=keys)
            except InboxFull as exc:
                self._count("rejected_full")
                return Receipt(status=503, detail=f"busy: {exc}; retry later")
        self._count("accepted", len(keep))
        if repeats:
            self._count("duplicates", repeats)
        self._wakeup.set()
        return Receipt(status=200, accepted=len(keep), duplicates=repeats)

    # --- handling -------------------------------------------------------------------------

    def _changes(self, item: InboxItem) -> list[EntityChange]:
        notification = item.notification
        notified_at = Notification.model_validate(notification).notified_at
        return [
            EntityChange(
                subscription_id=str(notification["subscriptionId"]),
                notification_id=str(notification["id"]),
                notified_at=notified_at,
                received_at=item.received_at,
                tenant=item.tenant,
                entity=entity,
            )
            for entity in notification.get("data", [])
        ]

    def _handle(self, item: InboxItem) -> bool:
        inbox = self.inbox
        changes = self._changes(item)
        steps = self._steps
        for index in range(item.progress, len(steps)):
            step = steps[index]
            try:
                step.write(changes)
            except Exception as exc:
                error = f"{step.name}: {type(exc).__name__}: {exc}"
                self._count("failures")
                attempts = inbox.failed(item, error)
                if attempts >= self.max_attempts:
                    log.error(
                        "consumer %s: notification %s failed %d times, set aside: %s",
                        self.name,
                        item.notification.get("id"),
                        attempts,
                        error,
                    )
                    inbox.dead(item, error)
                    self._count("dead")
                    return True
                log.warning(
                    "consumer %s: notification %s failed (attempt %d), retrying: %s",
                    self.name,
                    item.notification.get("id"),
                    attempts,
                    error,
                )
                return False
            if index + 1 < len(steps) and inbox.durable:
                inbox.advance(item, index + 1)
        inbox.done(item)
        self._count("handled", len(changes))
        return True

    def _idle(self) -> None:
        """Let sinks that batch their output (`flush()`) write it while nothing arrives."""
        now = time.monotonic()
        if now - self._flushed_at < 1.0:
            return
        self._flushed_at = now
        for step in self._steps:
            flush = getattr(step, "flush", None)
            if flush is None:
                continue
            try:
                flush()
            except Exception:
                log.exception("consumer %s: flushing %s failed", self.name, step.name)

    def _work(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            inbox = self._inbox
            if inbox is None:
                return
            self._wakeup.clear()
            try:
                items = inbox.take(64)
            except Exception:
                log.exception("consumer %s: reading the inbox failed", self.name)
                items = []
            if not items:
                self._idle()
                self._wakeup.wait(0.2)
                continue
            for index, item in enumerate(items):
                if self._stopping.is_set():
                    inbox.release(items[index:])
                    break
                try:
                    ok = self._handle(item)
                except Exception:
                    log.exception("consumer %s: handling failed", self.name)
                    ok = False
                if ok:
                    failures = 0
                    continue
                inbox.release(items[index:])
                delay = self.retry_delays[min(failures, len(self.retry_delays) - 1)]
                failures += 1
                self._stopping.wait(delay)
                break

    # --- serving --------------------------------------------------------------------------

    def app(self, *, path: str = "/notify") -> Any:
        """The Starlette app receiving notifications on `POST path` (see `_http`)."""
        from agents.consumers._http import receiver_app

        return receiver_app(self, path=path)

    @contextlib.contextmanager
    def serve(
        self, *, host: str = "127.0.0.1", port: int = 0, path: str = "/notify"
    ) -> Iterator[Any]:
        """Start the consumer and serve it over HTTP in a thread until the block ends; yields
        the running server (`.url` is the notification URL, `.port` the port)."""
        from agents.consumers._http import serve_in_thread

        self.start()
        try:
            with serve_in_thread(self, host=host, port=port, path=path) as running:
                yield running
        finally:
            self.stop()

    def run(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = 8080,
        path: str = "/notify",
        mqtt: str | None = None,
        topic: str | None = None,
    ) -> None:
        """Receive until interrupted (Ctrl-C, SIGTERM): over HTTP on `host:port` (None: no
        HTTP), and from `mqtt` (`mqtt://host:port/topic`) when given."""
        from agents.consumers._http import run_blocking

        run_blocking(self, host=host, port=port, path=path, mqtt=mqtt, topic=topic)


def _problem(data: Any) -> str | None:
    """What keeps `data` from being a Notification, or None."""
    if not isinstance(data, dict):
        return f"expected a Notification object, got {type(data).__name__}"
    if data.get("type", "Notification") != "Notification":
        return f"expected type Notification, got {data.get('type')!r}"
    try:
        notification = Notification.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(step) for step in first["loc"]) or "notification"
        return f"not an NGSI-LD Notification: {where}: {first['msg']}"
    for index, entity in enumerate(notification.data):
        if not isinstance(entity.get("id"), str) or not entity.get("id"):
            return f"data[{index}]: an entity needs an id"
        if not entity.get("type"):
            return f"data[{index}] ({entity['id']}): an entity needs a type"
    return None
