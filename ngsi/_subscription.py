"""NGSI-LD subscriptions and the notifications they send, as pydantic models.

Field names are snake_case in Python and camelCase on the wire (`subscription_name` ↔
`subscriptionName`); both spellings are accepted on input. Members a broker adds that are not
modelled here (`createdAt`, Orion-LD's own counters, ...) are kept and written back unchanged.

The read-only members (`status`, and in `notification` the `status`, `timesSent`,
`timesFailed`, `lastNotification`, `lastSuccess`, `lastFailure`) are filled in by the broker;
`Subscription.to_dict()` leaves them out so that a subscription read from one broker can be
created on another.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from ngsi._errors import NgsiApiError, NgsiError
from ngsi._geoquery import GeoQuery, parse_geoquery

__all__ = [
    "Endpoint",
    "EntitySelector",
    "KeyValuePair",
    "Notification",
    "NotificationParams",
    "Subscription",
    "SubscriptionGeoQuery",
]


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class KeyValuePair(_Wire):
    """One `receiverInfo` / `notifierInfo` entry, e.g. an HTTP header to send."""

    key: str
    value: str


class Endpoint(_Wire):
    """Where notifications go: an `http(s)://` or `mqtt(s)://` URI and how to talk to it.

    `receiver_info` pairs are sent as headers (HTTP) or message metadata (MQTT);
    `notifier_info` configures the notifier, e.g. `MQTT-Version` (`mqtt3.1.1` | `mqtt5.0`) and
    `MQTT-QoS` (0-2).
    """

    uri: str
    accept: str | None = None
    receiver_info: list[KeyValuePair] | None = None
    notifier_info: list[KeyValuePair] | None = None


class NotificationParams(_Wire):
    """What a notification carries and where it goes, plus the broker's delivery counters."""

    endpoint: Endpoint
    attributes: list[str] | None = None
    format: str | None = None
    """`normalized` (the default), `concise` or `keyValues`."""
    sys_attrs: bool | None = None
    show_changes: bool | None = None
    # read-only, set by the broker
    status: str | None = None
    times_sent: int | None = None
    times_failed: int | None = None
    last_notification: datetime | None = None
    last_success: datetime | None = None
    last_failure: datetime | None = None


class EntitySelector(_Wire):
    """Which entities: by `type`, optionally narrowed by `id` or `id_pattern` (a regex)."""

    type: str | None = None
    id: str | None = None
    id_pattern: str | None = None


class SubscriptionGeoQuery(_Wire):
    """A subscription's `geoQ`: `georel` (e.g. `near;maxDistance==2000`) against a geometry.

    Checked with `ngsi._geoquery.parse_geoquery`; a `GeoQuery` is accepted wherever this is.
    """

    model_config = ConfigDict(extra="forbid")

    geometry: str
    coordinates: list[Any] | str
    georel: str
    geoproperty: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_geo_query(cls, value: Any) -> Any:
        return value.to_object() if isinstance(value, GeoQuery) else value

    @model_validator(mode="after")
    def _valid(self) -> SubscriptionGeoQuery:
        try:
            parse_geoquery(self.model_dump(exclude_none=True))
        except NgsiError as exc:
            detail = exc.problem.detail if isinstance(exc, NgsiApiError) else str(exc)
            raise ValueError(detail) from None
        return self

    def to_geo_query(self) -> GeoQuery:
        """The validated query, e.g. for the `geoq=` of a query."""
        return parse_geoquery(self.model_dump(exclude_none=True))


_READ_ONLY = {"status", "created_at", "modified_at"}
_READ_ONLY_NOTIFICATION = {
    "status",
    "times_sent",
    "times_failed",
    "last_notification",
    "last_success",
    "last_failure",
}


class Subscription(_Wire):
    """An NGSI-LD subscription as Orion-LD accepts it.

    It needs `entities` or `watched_attributes`. A periodic subscription (`time_interval`)
    takes neither `watched_attributes` nor `throttling`. `q` may be given as text or as any
    object whose `str()` is the q text (a q tree).
    """

    notification: NotificationParams
    id: str | None = None
    type: str = "Subscription"
    subscription_name: str | None = None
    description: str | None = None
    entities: list[EntitySelector] | None = None
    watched_attributes: list[str] | None = None
    time_interval: float | None = Field(default=None, gt=0)
    q: str | None = None
    geo_q: SubscriptionGeoQuery | None = None
    is_active: bool | None = None
    expires_at: datetime | None = None
    throttling: float | None = Field(default=None, gt=0)
    lang: str | None = None
    jsonld_context: str | None = None
    context: Any = Field(default=None, alias="@context")
    # read-only, set by the broker
    status: str | None = None
    created_at: datetime | None = None
    modified_at: datetime | None = None

    @field_validator("q", mode="before")
    @classmethod
    def _q_text(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        return str(value)

    @model_validator(mode="after")
    def _consistent(self) -> Subscription:
        if not self.entities and not self.watched_attributes:
            raise ValueError("a subscription needs `entities` or `watchedAttributes`")
        if self.time_interval is not None and self.watched_attributes:
            raise ValueError(
                "a periodic subscription (`timeInterval`) takes no `watchedAttributes`"
            )
        if self.time_interval is not None and self.throttling is not None:
            raise ValueError("a periodic subscription (`timeInterval`) takes no `throttling`")
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Subscription:
        """Read a subscription as a broker or a file spells it."""
        return cls.model_validate(dict(data))

    def to_dict(self, *, include_read_only: bool = False) -> dict[str, Any]:
        """The JSON body of this subscription, camelCase, without empty members.

        The broker's read-only members are left out unless `include_read_only` is set.
        """
        exclude: dict[str, Any] | None = None
        if not include_read_only:
            exclude = dict.fromkeys(_READ_ONLY, True)
            exclude["notification"] = dict.fromkeys(_READ_ONLY_NOTIFICATION, True)
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=exclude)


class Notification(_Wire):
    """What a broker POSTs to a subscription's endpoint: the entities in `data`."""

    id: str
    type: str = "Notification"
    subscription_id: str
    notified_at: datetime
    data: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        return cls.model_validate(dict(data))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
