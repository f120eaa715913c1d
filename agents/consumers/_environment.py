"""The environment reference consumer: threshold alerts with hysteresis, logged and forwarded.

A rule watches one attribute (of one entity type, or of any): an alert is **raised** when the
value goes above `above` (or below `below`), and **cleared** only when it comes back past the
threshold by `hysteresis` (at or below `above - hysteresis`; at or above `below + hysteresis`),
so a value wobbling around the threshold does not raise a storm of alerts. A threshold may also
be the name of another attribute of the same entity (FloodMonitoring's own `alertLevel`).
State is per (entity, rule); a change older than the last one seen for that entity is ignored.

Every raise and clear is an event: logged (`agents.consumers.environment`, WARNING / INFO),
appended to the events file (JSON Lines), and forwarded (POST, JSON) to `forward_url` when
given. Forwarding is at-least-once: events not yet accepted by the forward endpoint stay pending
(with the active alerts, in the state file) and go out with the next change or at stop.

Clearing needs to see the values that fall back: subscribe with every update of the attributes
(`environment.archive` with `watch`), not only with the exceedances (`environment.alerts`),
whose `q` stops the notifications just when the value falls back.

Served: `GET /alerts` (active alerts), `GET /alerts/events` (the last 1000 events).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agents.consumers._change import EntityChange, timestamp
from agents.consumers._consumer import Consumer
from agents.consumers._sinks import JsonLinesSink, Sink, write_atomically

__all__ = ["DEFAULT_RULES", "AlertRule", "HysteresisAlerts", "environment_consumer"]

log = logging.getLogger("agents.consumers.environment")


class AlertRule(BaseModel):
    """One threshold: `attribute` of `type` (None: any type) above `above` or below `below`
    (a number, or the name of another attribute of the entity), cleared `hysteresis` back."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    attribute: str
    type: str | None = None
    above: float | str | None = None
    below: float | str | None = None
    hysteresis: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _one_bound(self) -> AlertRule:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"rule for {self.attribute}: give exactly one of above or below")
        return self

    @property
    def key(self) -> str:
        bound = f">{self.above}" if self.above is not None else f"<{self.below}"
        return f"{self.type or '*'}:{self.attribute}{bound}"


DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule(type="AirQualityObserved", attribute="no2", above=200, hysteresis=20),
    AlertRule(type="AirQualityObserved", attribute="pm10", above=50, hysteresis=5),
    AlertRule(type="AirQualityObserved", attribute="pm25", above=25, hysteresis=3),
    AlertRule(type="AirQualityObserved", attribute="o3", above=180, hysteresis=15),
    AlertRule(type="NoiseLevelObserved", attribute="LAeq", above=65, hysteresis=3),
    AlertRule(type="FloodMonitoring", attribute="currentLevel", above="alertLevel"),
)
"""EU limit and information values (NO2 200 µg/m³ hourly, PM10 50 µg/m³ daily, PM2.5 25 µg/m³,
O3 180 µg/m³ information threshold), 65 dB(A) for noise, and each flood gauge's own alert
level."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class HysteresisAlerts:
    """The alerting sink (see the module documentation)."""

    def __init__(
        self,
        rules: Sequence[AlertRule] = DEFAULT_RULES,
        *,
        state_path: str | Path | None = None,
        events_path: str | Path | None = None,
        forward_url: str | None = None,
        forward_headers: Mapping[str, str] | None = None,
        forward_timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = "environment-alerts"
        self.rules = tuple(rules)
        self.state_path = Path(state_path) if state_path is not None else None
        self.events_path = Path(events_path) if events_path is not None else None
        self.forward_url = forward_url
        self.forward_headers = dict(forward_headers or {})
        self.forward_timeout = forward_timeout
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._active: dict[str, dict[str, Any]] = {}
        self._last_seen: dict[str, str] = {}
        self._pending: list[dict[str, Any]] = []
        self._recent: deque[dict[str, Any]] = deque(maxlen=1000)
        self._saved_at = 0.0
        self._dirty = False

    def open(self) -> None:
        if self.state_path is not None and self.state_path.exists():
            try:
                data = orjson.loads(self.state_path.read_bytes())
                self._active = dict(data.get("active", {}))
                self._last_seen = dict(data.get("lastSeen", {}))
                self._pending = list(data.get("pending", []))
            except (OSError, orjson.JSONDecodeError, AttributeError):
                log.warning(
                    "alert state %s unreadable; starting with no active alerts", self.state_path
                )
        if self.forward_url:
            self._client = httpx.Client(
                transport=self._transport, timeout=self.forward_timeout, trust_env=False
            )

    def _bound(self, change: EntityChange, bound: float | str) -> float | None:
        if isinstance(bound, str):
            return _number(change.value(bound))
        return float(bound)

    def _evaluate(self, change: EntityChange) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        types = set(change.entity_type.split(","))
        for rule in self.rules:
            if rule.type is not None and rule.type not in types:
                continue
            value = _number(change.value(rule.attribute))
            if value is None:
                continue
            key = f"{change.entity_id}|{rule.key}"
            active = key in self._active
            if rule.above is not None:
                level = self._bound(change, rule.above)
                if level is None:
                    continue
                raise_now = not active and value > level
                clear_now = active and value <= level - rule.hysteresis
            else:
                assert rule.below is not None
                level = self._bound(change, rule.below)
                if level is None:
                    continue
                raise_now = not active and value < level
                clear_now = active and value >= level + rule.hysteresis
            if not (raise_now or clear_now):
                continue
            event = {
                "event": "raised" if raise_now else "cleared",
                "entityId": change.entity_id,
                "entityType": change.entity_type,
                "attribute": rule.attribute,
                "value": value,
                "threshold": level,
                "direction": "above" if rule.above is not None else "below",
                "hysteresis": rule.hysteresis,
                "observedAt": timestamp(change.observed_at),
                "location": change.location,
                "subscriptionId": change.subscription_id,
            }
            if raise_now:
                self._active[key] = event
            else:
                self._active.pop(key, None)
            events.append(event)
        return events

    def write(self, changes: Sequence[EntityChange]) -> None:
        new_events: list[dict[str, Any]] = []
        with self._lock:
            for change in changes:
                observed = timestamp(change.observed_at)
                if self._last_seen.get(change.entity_id, "") > observed:
                    continue
                self._last_seen[change.entity_id] = observed
                self._dirty = True
                new_events.extend(self._evaluate(change))
            self._pending.extend(new_events)
            self._recent.extend(new_events)
            if new_events or time.monotonic() - self._saved_at >= 1.0:
                self._save()
        for event in new_events:
            level = logging.WARNING if event["event"] == "raised" else logging.INFO
            log.log(
                level,
                "%s %s: %s %s %s %s (value %s at %s)",
                event["event"],
                event["entityId"],
                event["attribute"],
                event["direction"],
                event["threshold"],
                f"(hysteresis {event['hysteresis']})" if event["hysteresis"] else "",
                event["value"],
                event["observedAt"],
            )
        if self.events_path is not None and new_events:
            self.events_path.parent.mkdir(parents=True, exist_ok=True)
            with self.events_path.open("ab") as out:
                out.write(b"".join(orjson.dumps(e) + b"\n" for e in new_events))
        self.flush_pending()

    def flush(self) -> None:
        """Retry pending forwards and save the state (called while the consumer is idle)."""
        if self._pending:
            self.flush_pending()
        with self._lock:
            if self._dirty:
                self._save()

    def flush_pending(self) -> int:
        """Forward pending events; returns how many are still pending."""
        if self._client is None or self.forward_url is None:
            with self._lock:
                self._pending.clear()
            return 0
        with self._lock:
            batch = list(self._pending)
        if not batch:
            return 0
        try:
            response = self._client.post(
                self.forward_url,
                content=orjson.dumps({"alerts": batch}),
                headers={"Content-Type": "application/json", **self.forward_headers},
            )
            ok = response.is_success
        except httpx.HTTPError as exc:
            log.warning(
                "forwarding %d alert events to %s failed: %s", len(batch), self.forward_url, exc
            )
            ok = False
        with self._lock:
            if ok:
                del self._pending[: len(batch)]
                self._save()
            return len(self._pending)

    def _save(self) -> None:
        self._saved_at = time.monotonic()
        self._dirty = False
        if self.state_path is None:
            return
        write_atomically(
            self.state_path,
            orjson.dumps(
                {"active": self._active, "lastSeen": self._last_seen, "pending": self._pending}
            ),
        )

    def close(self) -> None:
        self.flush_pending()
        with self._lock:
            self._save()
        if self._client is not None:
            self._client.close()
            self._client = None

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._active[k] for k in sorted(self._active)]

    def recent(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._recent)

    def routes(self) -> list[Route]:
        async def active(request: Request) -> Response:
            return JSONResponse(self.active())

        async def events(request: Request) -> Response:
            return JSONResponse(self.recent())

        return [
            Route("/alerts", active, methods=["GET"]),
            Route("/alerts/events", events, methods=["GET"]),
        ]


def environment_consumer(
    *,
    name: str = "environment",
    rules: Sequence[AlertRule] = DEFAULT_RULES,
    out_dir: str | Path | None = None,
    forward_url: str | None = None,
    forward_headers: Mapping[str, str] | None = None,
    archive: bool = True,
    extra_sinks: Sequence[Sink] = (),
    **options: Any,
) -> tuple[Consumer, HysteresisAlerts]:
    """The environment consumer: with `out_dir`, alert state `alerts-state.json`, events
    `alerts.jsonl` and (when `archive`) every change in `changes.jsonl`; `options` go to
    `Consumer`."""
    folder = Path(out_dir) if out_dir is not None else None
    alerts = HysteresisAlerts(
        rules,
        state_path=folder / "alerts-state.json" if folder else None,
        events_path=folder / "alerts.jsonl" if folder else None,
        forward_url=forward_url,
        forward_headers=forward_headers,
    )
    sinks: list[Sink] = []
    if folder is not None and archive:
        sinks.append(JsonLinesSink(folder / "changes.jsonl"))
    sinks.append(alerts)
    sinks.extend(extra_sinks)
    consumer = Consumer(name, sinks=sinks, routes=alerts.routes(), **options)
    return consumer, alerts
