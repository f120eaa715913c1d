"""Reading what the page shows from an NGSI-LD broker through `ngsi.Client`.

Every entity type is read with its own Smart Data Models @context, which the models registry
names (design decision 7): `Device` entities with the Device subject's, each observation type
with its subject's, so attribute names come back compact (`no2`, `temperature`). Which
observation types are present is asked per subject (`GET /types` with that subject's `Link`),
and only those types are queried, each for the entities that have a `refDevice`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from drehscheibe.web._units import format_reading, unit_label
from drehscheibe.web._views import (
    DevicesView,
    DeviceView,
    HistoryPoint,
    HistoryView,
    ObservationView,
    Reading,
)
from models import ModelRegistry, UnknownModel, default_registry
from ngsi import Client, NgsiApiError, format_datetime

__all__ = ["UnknownEntityType", "read_devices", "read_history"]

DEVICE_TYPE = "Device"
_NOT_OBSERVATIONS = frozenset({"Device", "DeviceModel"})

_NOT_READINGS = frozenset(
    {
        "address",
        "alternateName",
        "areaServed",
        "calibration",
        "controlledProperty",
        "dataProvider",
        "description",
        "devEUI",
        "deviceCategory",
        "deviceState",
        "measuringPoint",
        "name",
        "owner",
        "profile",
        "seeAlso",
        "source",
        "supportedProtocol",
    }
)
"""Attributes that describe an entity rather than measure something."""

_DEVICE_READINGS = ("batteryLevel", "rssi")
_FRACTION_UNITS = (None, "C62")


class UnknownEntityType(ValueError):
    """The entity's type has no Smart Data Model, so the page cannot tell its @context."""


def _instance(attribute: Any) -> Mapping[str, Any] | None:
    """The default instance of an attribute (the one without `datasetId`, else the first)."""
    if isinstance(attribute, Mapping):
        return attribute
    if isinstance(attribute, list):
        instances = [item for item in attribute if isinstance(item, Mapping)]
        for item in instances:
            if "datasetId" not in item:
                return item
        return instances[0] if instances else None
    return None


def _time_text(value: Any) -> str | None:
    """An ISO 8601 time from a plain string or a JSON-LD typed DateTime value."""
    if isinstance(value, Mapping):
        value = value.get("@value")
    if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT", value):
        return value
    return None


def _latest(times: Iterable[str | None]) -> str | None:
    best: tuple[datetime, str] | None = None
    for text in times:
        if text is None:
            continue
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if best is None or moment > best[0]:
            best = (moment, text)
    return None if best is None else best[1]


def _reading(name: str, attribute: Mapping[str, Any]) -> Reading | None:
    if attribute.get("type", "Property") != "Property":
        return None
    value = attribute.get("value")
    if not isinstance(value, bool | int | float | str) or _time_text(value) is not None:
        return None
    code = attribute.get("unitCode")
    code = code if isinstance(code, str) else None
    unit = unit_label(code)
    shown: Any = value
    if (
        name == "batteryLevel"
        and code in _FRACTION_UNITS
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 <= value <= 1
    ):
        # Smart Data Models keep the battery level as a fraction of one
        shown, unit = value * 100, "%"
    observed = attribute.get("observedAt")
    return Reading(
        name=name,
        value=value,
        unit_code=code,
        unit=unit or None,
        text=format_reading(shown, unit),
        observed_at=observed if isinstance(observed, str) else None,
        numeric=isinstance(value, int | float) and not isinstance(value, bool),
    )


def _readings(entity: Mapping[str, Any], names: Iterable[str] | None = None) -> list[Reading]:
    found: list[Reading] = []
    for name in names if names is not None else entity:
        if name in ("id", "type", "@context") or (names is None and name in _NOT_READINGS):
            continue
        attribute = _instance(entity.get(name))
        if attribute is None:
            continue
        reading = _reading(name, attribute)
        if reading is not None:
            found.append(reading)
    return found


def _point(geometry: Any) -> tuple[float, float] | None:
    """`[lon, lat]` of a GeoJSON geometry: a Point's own, else the mean of its positions."""
    if not isinstance(geometry, Mapping):
        return None
    positions: list[tuple[float, float]] = []

    def walk(coordinates: Any) -> None:
        if (
            isinstance(coordinates, list)
            and len(coordinates) >= 2
            and all(isinstance(c, int | float) for c in coordinates[:2])
        ):
            positions.append((float(coordinates[0]), float(coordinates[1])))
        elif isinstance(coordinates, list):
            for item in coordinates:
                walk(item)

    walk(geometry.get("coordinates"))
    if not positions:
        return None
    lon = sum(p[0] for p in positions) / len(positions)
    lat = sum(p[1] for p in positions) / len(positions)
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        return None
    return (lon, lat)


def _location(entity: Mapping[str, Any]) -> tuple[float, float] | None:
    attribute = _instance(entity.get("location"))
    return None if attribute is None else _point(attribute.get("value"))


def _text(entity: Mapping[str, Any], name: str) -> str | None:
    attribute = _instance(entity.get(name))
    value = None if attribute is None else attribute.get("value")
    return value if isinstance(value, str) and value else None


def _refs(entity: Mapping[str, Any]) -> list[str]:
    attribute = _instance(entity.get("refDevice"))
    target = None if attribute is None else attribute.get("object")
    if isinstance(target, str):
        return [target]
    if isinstance(target, list):
        return [item for item in target if isinstance(item, str)]
    return []


def _observation(entity: Mapping[str, Any]) -> ObservationView:
    readings = _readings(entity)
    times = [reading.observed_at for reading in readings]
    for name in ("dateObserved", "dateObservedTo"):
        attribute = _instance(entity.get(name))
        if attribute is not None:
            times.append(_time_text(attribute.get("value")))
    return ObservationView(
        id=str(entity.get("id")),
        type=str(entity.get("type")),
        observed_at=_latest(times),
        location=_location(entity),
        readings=readings,
    )


def _observation_types(registry: ModelRegistry) -> dict[str, list[str]]:
    """@context URL → the observation types written with it."""
    by_context: dict[str, list[str]] = {}
    for info in registry:
        if info.type_name not in _NOT_OBSERVATIONS:
            by_context.setdefault(info.context_url, []).append(info.type_name)
    return by_context


def _observations(
    client: Client, registry: ModelRegistry, problems: list[str]
) -> dict[str, list[ObservationView]]:
    """Device id → the observation entities that name it in `refDevice`."""
    by_device: dict[str, list[ObservationView]] = {}
    for context, types in sorted(_observation_types(registry).items()):
        try:
            present = set(client.types(context=context))
        except NgsiApiError as exc:
            problems.append(f"could not list the entity types of {context}: {exc}")
            continue
        for type_name in sorted(set(types) & present):
            try:
                entities = client.query_all(type=type_name, q="refDevice", context=context)
            except NgsiApiError as exc:
                problems.append(f"could not read the {type_name} entities: {exc}")
                continue
            for entity in entities:
                view = _observation(entity)
                for device_id in _refs(entity):
                    by_device.setdefault(device_id, []).append(view)
    return by_device


def _device(entity: Mapping[str, Any], observations: list[ObservationView]) -> DeviceView:
    entity_id = str(entity.get("id"))
    dev_eui = _text(entity, "devEUI")
    observations = sorted(observations, key=lambda o: (o.type, o.id))
    location = _location(entity) or next(
        (o.location for o in observations if o.location is not None), None
    )
    reported = _instance(entity.get("dateLastValueReported"))
    last_seen = None if reported is None else _time_text(reported.get("value"))
    if last_seen is None:
        last_seen = _latest(o.observed_at for o in observations)
    return DeviceView(
        id=entity_id,
        dev_eui=dev_eui,
        name=_text(entity, "name") or dev_eui or entity_id,
        state=_text(entity, "deviceState"),
        location=location,
        last_seen=last_seen,
        readings=_readings(entity, _DEVICE_READINGS),
        observations=observations,
    )


def read_devices(
    client: Client, *, registry: ModelRegistry = default_registry, now: datetime | None = None
) -> DevicesView:
    """Every `Device` entity with its latest readings and the observations that refer to it.

    Reads the Devices with the Device subject's @context, then each observation type present,
    with its own. A type whose entities cannot be read (the broker cannot resolve its @context,
    say) is left out and named in `problems`; a failure to read the Devices themselves, or a
    broker that does not answer, raises the client's `NgsiError`.
    """
    problems: list[str] = []
    entities = client.query_all(type=DEVICE_TYPE, context=registry.context_url(DEVICE_TYPE))
    observations = _observations(client, registry, problems)
    devices = [_device(entity, observations.get(str(entity.get("id")), [])) for entity in entities]
    devices.sort(key=lambda d: (d.name.casefold(), d.id))
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return DevicesView(devices=devices, generated_at=format_datetime(moment), problems=problems)


def _entity_type(client: Client, entity_id: str, registry: ModelRegistry) -> str:
    """The registered type of an entity, read from the broker (without a @context its type
    comes back expanded: `https://smartdatamodels.org/dataModel.Environment/AirQualityObserved`)."""
    entity = client.retrieve(entity_id, options="keyValues", context=None)
    found = entity.get("type")
    names = found if isinstance(found, list) else [found]
    for name in names:
        if not isinstance(name, str):
            continue
        if name in registry:
            return name
        short = re.split(r"[/#]", name)[-1]
        if short in registry and f"/{registry.info(short).repository}/" in name:
            return short
    raise UnknownEntityType(
        f"entity {entity_id} has the type {found!r}, which has no Smart Data Model here; "
        "give its type (?type=...) if it is one"
    )


def _history_instances(temporal: Mapping[str, Any], attribute: str) -> list[Mapping[str, Any]]:
    raw = temporal.get(attribute)
    items = raw if isinstance(raw, list) else [raw]
    return [item for item in items if isinstance(item, Mapping) and "datasetId" not in item]


def _sort_key(point: HistoryPoint) -> datetime:
    moment = datetime.fromisoformat(point.t.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def read_history(
    client: Client,
    entity_id: str,
    *,
    attribute: str,
    last_n: int,
    entity_type: str | None = None,
    registry: ModelRegistry = default_registry,
) -> HistoryView:
    """The last `last_n` values of one attribute from the broker's temporal API, oldest first.

    The entity is read with its type's @context (`entity_type`, else the type the broker
    reports); each value's time is its `observedAt`, else the time the broker recorded it.
    Raises `UnknownEntityType` for a type without a Smart Data Model, and the client's
    `NgsiError`s (`ResourceNotFound` for an entity without history).
    """
    type_name = entity_type or _entity_type(client, entity_id, registry)
    try:
        context = registry.context_url(type_name)
    except UnknownModel as exc:
        raise UnknownEntityType(str(exc)) from None
    temporal = client.temporal_retrieve(
        entity_id, attrs=attribute, last_n=last_n, options="sysAttrs", context=context
    )
    points: list[HistoryPoint] = []
    unit_code: str | None = None
    for instance in _history_instances(temporal, attribute):
        value = instance.get("value")
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        when = (
            _time_text(instance.get("observedAt"))
            or _time_text(instance.get("modifiedAt"))
            or _time_text(instance.get("createdAt"))
        )
        if when is None:
            continue
        code = instance.get("unitCode")
        if isinstance(code, str):
            unit_code = code
        points.append(HistoryPoint(t=when, v=float(value)))
    points.sort(key=_sort_key)
    return HistoryView(
        entity_id=entity_id,
        type=type_name,
        attribute=attribute,
        unit_code=unit_code,
        unit=unit_label(unit_code) or None,
        points=points,
    )
