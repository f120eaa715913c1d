"""`EntityChange`: one entity of one notification, as the consumers' handlers and sinks see it.

A notification carries entities in the representation its subscription asked for (normalized,
concise or keyValues). An `EntityChange` reads all three: `values` are the bare values
(`{"intensity": 12, "location": {...}}`), `value(name)` one of them, `previous(name)` the
previous value a `showChanges` subscription sends, `observed_at` the newest `observedAt` of its
attributes (else its `modifiedAt`, else `dateObserved`, else the notification time), `location`
its GeoJSON geometry.

`fingerprint` identifies the change itself, whichever notification carried it: a hash of the
tenant and the entity as sent. Brokers send a retried notification with a new notification id,
so the fingerprint is what recognises the same change delivered twice. It is None for an entity
that carries no time at all (no observedAt, modifiedAt or dateObserved): two such notifications
may be two real changes to the same state, so only their notification ids are compared.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import orjson

from ngsi import (
    BadRequestData,
    is_geojson_geometry,
    parse_datetime,
    to_key_values,
    to_normalized,
)

__all__ = ["EntityChange", "timestamp"]


def timestamp(moment: datetime) -> str:
    """UTC with microseconds, always the same width (`2024-05-01T12:00:00.000000Z`), so that
    the texts sort as the instants do."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_TIME_MEMBERS = ("observedAt", "modifiedAt")
_PREVIOUS = (
    "previousValue",
    "previousObject",
    "previousLanguageMap",
    "previousJson",
    "previousVocab",
    "previousValueList",
    "previousObjectList",
)


@dataclass(frozen=True, kw_only=True, eq=False)
class EntityChange:
    """One changed entity: what the broker sent (`entity`), with who sent it and when."""

    subscription_id: str
    notification_id: str
    notified_at: datetime
    received_at: datetime
    tenant: str | None
    entity: Mapping[str, Any]

    @property
    def entity_id(self) -> str:
        return str(self.entity.get("id", ""))

    @property
    def entity_type(self) -> str:
        kind = self.entity.get("type", "")
        return ",".join(kind) if isinstance(kind, list) else str(kind)

    @cached_property
    def normalized(self) -> dict[str, Any]:
        """The entity in normalized form (read from any of the three representations)."""
        try:
            return to_normalized(self.entity, representation="auto")
        except BadRequestData:
            return to_normalized(self.entity, representation="keyValues")

    @cached_property
    def values(self) -> dict[str, Any]:
        """The bare values of every attribute (keyValues), without id and type."""
        try:
            plain = to_key_values(self.normalized, sys_attrs=False)
        except BadRequestData:
            plain = {}
        plain.pop("id", None)
        plain.pop("type", None)
        plain.pop("@context", None)
        return plain

    def value(self, name: str, default: Any = None) -> Any:
        """The bare value of attribute `name` (`default` when absent)."""
        return self.values.get(name, default)

    def previous(self, name: str, default: Any = None) -> Any:
        """The previous value of `name` a showChanges notification carries, if any."""
        attribute = self.entity.get(name)
        if isinstance(attribute, Mapping):
            for member in _PREVIOUS:
                if member in attribute:
                    found = attribute[member]
                    if isinstance(found, Mapping) and "value" in found and "type" in found:
                        return found["value"]
                    return found
        return default

    @cached_property
    def _times(self) -> list[datetime]:
        found: list[datetime] = []
        for name, attribute in self.normalized.items():
            instances = attribute if isinstance(attribute, list) else [attribute]
            for instance in instances:
                if not isinstance(instance, Mapping):
                    continue
                for member in _TIME_MEMBERS:
                    text = instance.get(member)
                    if isinstance(text, str):
                        with contextlib.suppress(ValueError):
                            found.append(parse_datetime(text))
            if name == "modifiedAt" and isinstance(attribute, str):
                with contextlib.suppress(ValueError):
                    found.append(parse_datetime(attribute))
        observed = self.values.get("dateObserved")
        if not found and isinstance(observed, str):
            with contextlib.suppress(ValueError):
                found.append(parse_datetime(observed))
        return found

    @property
    def observed_at(self) -> datetime:
        """When the state was observed: the newest observedAt / modifiedAt / dateObserved,
        else when the broker notified."""
        return max(self._times) if self._times else self.notified_at

    @property
    def has_time(self) -> bool:
        return bool(self._times)

    @property
    def location(self) -> dict[str, Any] | None:
        """The GeoJSON geometry of `location`, if the entity has one."""
        geometry = self.values.get("location")
        if isinstance(geometry, Mapping) and is_geojson_geometry(geometry):
            return dict(geometry)
        return None

    @cached_property
    def fingerprint(self) -> str | None:
        """A hash of (tenant, entity) identifying the change; None without any time in it."""
        if not self.has_time:
            return None
        canonical = orjson.dumps(
            [self.tenant, self.entity], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
        )
        return hashlib.sha256(canonical).hexdigest()[:32]

    def to_json(self) -> dict[str, Any]:
        """The change as one JSON object (what the JSON Lines sink writes)."""
        return {
            "entityId": self.entity_id,
            "entityType": self.entity_type,
            "observedAt": timestamp(self.observed_at),
            "notifiedAt": timestamp(self.notified_at),
            "receivedAt": timestamp(self.received_at),
            "subscriptionId": self.subscription_id,
            "notificationId": self.notification_id,
            "tenant": self.tenant,
            "entity": dict(self.entity),
        }
