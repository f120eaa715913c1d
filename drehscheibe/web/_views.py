"""What the page's JSON API answers: devices with their latest readings, and one history.

Every view is a pydantic model written in camelCase (`lastSeen`, `unitCode`), the names the
page's script reads.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "DeviceView",
    "DevicesView",
    "HistoryPoint",
    "HistoryView",
    "ObservationView",
    "PageConfig",
    "Reading",
]


class _View(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Reading(_View):
    """The latest value of one attribute.

    `unit` is the label of `unit_code` (`°C` for `CEL`); `text` the value as the page shows it
    (`21.3 °C`); `numeric` whether it can be drawn as a history chart.
    """

    name: str
    value: float | int | bool | str
    unit_code: str | None = None
    unit: str | None = None
    text: str
    observed_at: str | None = None
    numeric: bool


class ObservationView(_View):
    """An observation entity a device feeds (it names the device in `refDevice`)."""

    id: str
    type: str
    observed_at: str | None = None
    """The latest time among its readings' `observedAt` and its `dateObserved`."""
    location: tuple[float, float] | None = None
    """`[longitude, latitude]` of its `location`, if it has one."""
    readings: list[Reading] = Field(default_factory=list)


class DeviceView(_View):
    """A `Device` entity with what the page shows of it.

    `location` is `[longitude, latitude]`: the device's own, else its first observation's
    (a point of a line or polygon); None if neither has one. `last_seen` is its
    `dateLastValueReported`, else the latest time among its observations.
    """

    id: str
    dev_eui: str | None = None
    name: str
    state: str | None = None
    location: tuple[float, float] | None = None
    last_seen: str | None = None
    readings: list[Reading] = Field(default_factory=list)
    """The device's own values: battery level and radio reception."""
    observations: list[ObservationView] = Field(default_factory=list)


class DevicesView(_View):
    """The answer of `GET /api/devices`: the devices sorted by name, and what could not be read
    (`problems`, one line each: an entity type whose @context the broker cannot resolve...)."""

    devices: list[DeviceView]
    generated_at: str
    problems: list[str] = Field(default_factory=list)


class HistoryPoint(_View):
    """One recorded value of an attribute, at `t` (ISO 8601, UTC)."""

    t: str
    v: float


class HistoryView(_View):
    """The answer of `GET /api/entities/{id}/history`: the numeric values of one attribute,
    oldest first (values that are not numbers are left out)."""

    entity_id: str
    type: str
    attribute: str
    unit_code: str | None = None
    unit: str | None = None
    points: list[HistoryPoint]


class PageConfig(_View):
    """The answer of `GET /api/config`: how the page refreshes and draws its map."""

    title: str
    refresh_seconds: float
    history_last_n: int
    tile_url: str | None = None
    tile_attribution: str | None = None
    tile_max_zoom: int
