"""`map_uplink`: one decoded uplink of a registered device → NGSI-LD entities.

    mapped = map_uplink(uplink, measurements, device, profile, now=datetime.now(UTC))
    for entity, context, observed_at in mapped.outbox_parts():
        ...   # OutboxItem(entity=entity, context=context, observed_at=observed_at, ...)

What comes out, per uplink:

- one observation entity per entity of the profile that the uplink has values for, with the id
  of the device's measuring point (`urn:ngsi-ld:<Type>:<measuring point>[:<id_suffix>]`),
  `refDevice` to the Device, the observation time attribute (`dateObserved`, or
  `dateObservedFrom`/`dateObservedTo` over a period), `location` (the payload's GPS position
  while it is valid, else the registered one), every mapped attribute as a Property with
  `observedAt` and `unitCode`, the profile's constants, and `dataProvider` / `source` from the
  configuration;
- the Device entity with what the agent owns of it: `dateLastValueReported`, `rssi` (dBm) of the
  best gateway with `snr` (dB) and `gateway` as sub-properties (the Smart Data Models Device has
  no snr), and the profile's device attributes (`batteryLevel`, ...).

Every entity is normalized NGSI-LD and carries `@context`: the one URL of its type's subject
(design decision 7). They are meant for `upsert` with `options=update`: they hold only the
attributes the agent owns, so an admin's attributes survive.

Values. For each attribute: the first of its source measurements present in the uplink, through
the profile's transforms, then the device's calibration valid at the observation time (value *
scale + offset, then the profile's rounding again), then the model's own type check (the
`models` field validator: a relative humidity of 54 where a fraction is expected is refused).
A value that fails is left out with a `MappingWarning` (the rest of the uplink is kept); a value
outside the profile's plausible range is written with the sub-property
`quality: implausible` and a warning.

Time (design decision 6): `observedAt` is the first of the profile's `time.prefer` that gives a
time: the payload's timestamp measurement, the gateway's receive time, the network server's;
else `now`, with a warning. A time more than `max_future` ahead of `now` or before 2000 is
refused (a device or gateway without a set clock) and the next source is tried. All times are
UTC. The Device's `dateLastValueReported` and radio attributes carry the receive time (network
server, else gateway, else `now`).

Errors. A device that is not in service or has no profile raises `MappingError`; so does a
profile that does not compile. Nothing else does.

Cost: entities are built as plain dicts from the compiled plan; nothing per uplink builds a
pydantic model or runs a JSON Schema. The shape of every profile's entities is validated once,
against the models and the official schemas (`validate_profile_shapes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from pydantic import ValidationError

from agents.codecs import Measurements, Value
from agents.lorawan import Uplink
from agents.mapping._errors import MappingError, MappingErrorReason, MappingWarning
from agents.mapping._plan import AttributePlan, EntityPlan, ProfilePlan, compiled_plan
from agents.profiles import DeviceProfile, TransformError
from agents.registry import DEVICE_CONTEXT, RegisteredDevice

__all__ = [
    "DEFAULT_MAPPING_CONFIG",
    "QUALITY_IMPLAUSIBLE",
    "RSSI_UNIT",
    "SNR_UNIT",
    "MappedUplink",
    "MappingConfig",
    "TimeSourceUsed",
    "assemble_observation",
    "map_uplink",
]

RSSI_UNIT = "DBM"
"""UN/CEFACT code of decibel-milliwatts, the unit of `rssi`."""
SNR_UNIT = "2N"
"""UN/CEFACT code of decibel, the unit of `snr`."""

TimeSourceUsed = Literal["payload", "gateway", "network-server", "agent"]

_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_MS_THRESHOLD = 1e11
_NUMBER = (int, float)
QUALITY_IMPLAUSIBLE: Mapping[str, Any] = {"type": "Property", "value": "implausible"}
"""The sub-property `quality` of an attribute whose reading is outside its plausible range."""


_DIGITS2 = [f"{n:02d}" for n in range(100)]
_DIGITS3 = [f"{n:03d}" for n in range(1000)]


def _utc_text(value: datetime) -> str:
    """A UTC instant as NGSI-LD writes it (`models.format_datetime`'s output, for the aware UTC
    datetimes of the hot path, faster): a `Z`, milliseconds or microseconds only when there.

    Put together from tables of digits: `isoformat` formats the UTC offset only to have it cut
    off, and takes three times as long."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    micro = value.microsecond
    if micro == 0:
        fraction = "Z"
    elif micro % 1000 == 0:
        fraction = f".{_DIGITS3[micro // 1000]}Z"
    else:
        fraction = f".{_DIGITS3[micro // 1000]}{_DIGITS3[micro % 1000]}Z"
    year = value.year
    digits2 = _DIGITS2
    year_text = str(year) if year >= 1000 else _DIGITS3[year].zfill(4)
    return (
        f"{year_text}-{digits2[value.month]}-{digits2[value.day]}T{digits2[value.hour]}:"
        f"{digits2[value.minute]}:{digits2[value.second]}{fraction}"
    )


@dataclass(frozen=True, slots=True)
class MappingConfig:
    """Settings of the mapping that come from the agent's configuration.

    `data_provider` and `source` are written on every observation entity (Smart Data Models
    `dataProvider`: who provides the data; `source`: a URL of the original source).
    `max_future`: how far ahead of the agent's clock a payload or gateway time may be.
    """

    data_provider: str | None = None
    source: str | None = None
    max_future: timedelta = timedelta(minutes=5)


DEFAULT_MAPPING_CONFIG = MappingConfig()


class MappedUplink:
    """The entities of one uplink, observations first and the Device last.

    `entities` are normalized NGSI-LD with their `@context` URL; treat them as read-only (they
    may share constant sub-objects with other uplinks' entities). `observed_at` is the
    observation time and `time_source` where it came from; `received_at` the receive time the
    Device attributes carry. `warnings` say what was left out or flagged. `observed_text` is
    `observed_at` as the observations' `observedAt` spell it (None: not given).

    A plain class with read-only attributes, not a frozen dataclass: compiled, it is built by a
    direct call, where the dataclass's generated `__init__` ran interpreted, a `setattr` per
    field (every uplink makes one).
    """

    def __init__(
        self,
        entities: list[dict[str, Any]],
        observed_at: datetime,
        received_at: datetime,
        time_source: TimeSourceUsed,
        warnings: tuple[MappingWarning, ...] = (),
        observed_text: str | None = None,
    ) -> None:
        self.entities: Final = entities
        self.observed_at: Final = observed_at
        self.received_at: Final = received_at
        self.time_source: Final = time_source
        self.warnings: Final = warnings
        self.observed_text: Final = observed_text

    def __repr__(self) -> str:
        return (
            f"MappedUplink({len(self.entities)} entities, observed_at={self.observed_at!r}, "
            f"time_source={self.time_source!r}, {len(self.warnings)} warnings)"
        )

    def outbox_parts(self, *, take: bool = False) -> list[tuple[dict[str, Any], str, datetime]]:
        """`(entity without @context, its @context URL, the time it is observed at)` for each
        entity, as the outbox takes them: observations at `observed_at`, the Device at
        `received_at`. With `take=True` the entities themselves lose their `@context` and are
        handed out (no copies): for a caller that uses this result and nothing else of it."""
        parts: list[tuple[dict[str, Any], str, datetime]] = []
        for entity in self.entities:
            if take:
                context = entity.pop("@context")
                body = entity
            else:
                context = entity["@context"]
                body = {key: value for key, value in entity.items() if key != "@context"}
            at = self.received_at if entity["type"] == "Device" else self.observed_at
            parts.append((body, context, at))
        return parts


def map_uplink(
    uplink: Uplink,
    measurements: Measurements | Mapping[str, Value],
    device: RegisteredDevice,
    profile: DeviceProfile,
    *,
    now: datetime,
    config: MappingConfig = DEFAULT_MAPPING_CONFIG,
) -> MappedUplink:
    """Map one decoded uplink of `device` with `profile` (see the module docstring).

    `now` is the agent's clock (aware); `measurements` the codec's output. Raises
    `MappingError` when the device is not in service or unprovisioned, or the profile does not
    compile; everything else is a warning on the result.
    """
    dev_eui = device.dev_eui
    if not device.maps_uplinks:
        reason: MappingErrorReason = "unprovisioned" if device.profile is None else "not-in-service"
        raise MappingError(
            reason,
            f"device {dev_eui} is {device.state}"
            + ("" if device.profile else " and has no profile")
            + ": its uplinks are not mapped until an admin assigns a profile and sets it active",
            dev_eui=dev_eui,
        )
    plan = compiled_plan(profile)
    data = measurements.data if isinstance(measurements, Measurements) else measurements
    now = now.astimezone(UTC) if now.tzinfo is not UTC else now
    warnings: list[MappingWarning] = []

    observed_at, time_source = _observation_time(plan, uplink, data, now, config, warnings, dev_eui)
    observed_text = _utc_text(observed_at)
    received_at = uplink.received_at or uplink.gateway_time or now
    received_text = observed_text if received_at == observed_at else _utc_text(received_at)
    location = _location(plan, data, device, warnings)

    entities: list[dict[str, Any]] = []
    for entity_plan in plan.entities:
        entity = _observation(
            entity_plan, data, device, observed_at, observed_text, location, config, warnings
        )
        if entity is not None:
            entities.append(entity)
    if not entities and data and plan.source_names.isdisjoint(data):
        shown = ", ".join(sorted(data)[:8])
        warnings.append(
            MappingWarning(
                "no-measurements",
                f"profile {profile.name} maps none of the uplink's measurements ({shown}"
                f"{', ...' if len(data) > 8 else ''})",
                dev_eui,
            )
        )
    entities.append(
        _device_update(
            plan, uplink, data, device, observed_at, observed_text, received_text, warnings
        )
    )
    return MappedUplink(
        entities=entities,
        observed_at=observed_at,
        received_at=received_at,
        time_source=time_source,
        warnings=tuple(warnings),
        observed_text=observed_text,
    )


# -- time -------------------------------------------------------------------------------------


def _observation_time(
    plan: ProfilePlan,
    uplink: Uplink,
    data: Mapping[str, Value],
    now: datetime,
    config: MappingConfig,
    warnings: list[MappingWarning],
    dev_eui: str,
) -> tuple[datetime, TimeSourceUsed]:
    latest = now + config.max_future
    for choice in plan.time_prefer:
        found: datetime | None
        if choice == "payload":
            if plan.time_field is None or data.get(plan.time_field) is None:
                continue
            found = _payload_time(data[plan.time_field], plan.time_format)
            if found is None:
                warnings.append(
                    MappingWarning(
                        "bad-time",
                        f"payload timestamp {plan.time_field}={data[plan.time_field]!r} is not "
                        f"a {plan.time_format} time with a timezone",
                        dev_eui,
                        attribute=plan.time_field,
                    )
                )
                continue
        elif choice == "gateway":
            found = uplink.gateway_time
        else:
            found = uplink.received_at
        if found is None:
            continue
        if found > latest or found < _EARLIEST:
            warnings.append(
                MappingWarning(
                    "bad-time",
                    f"the {choice} time {_utc_text(found)} is "
                    + ("in the future" if found > latest else "before 2000")
                    + f" (agent clock {_utc_text(now)}); ignored",
                    dev_eui,
                )
            )
            continue
        return found, choice
    warnings.append(
        MappingWarning(
            "no-time",
            f"none of {', '.join(plan.time_prefer)} gave a time; the agent's clock is used",
            dev_eui,
        )
    )
    return now, "agent"


def _payload_time(value: object, time_format: str) -> datetime | None:
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, _NUMBER) and time_format != "iso8601":
            seconds = float(value)
            if time_format == "unix-ms" or (time_format == "auto" and seconds > _MS_THRESHOLD):
                seconds /= 1000
            return datetime.fromtimestamp(seconds, UTC)
        if isinstance(value, str) and time_format in ("auto", "iso8601"):
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                return None
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


# -- location ---------------------------------------------------------------------------------


def _first(data: Mapping[str, Value], sources: tuple[str, ...]) -> Value:
    for name in sources:
        value = data.get(name)
        if value is not None:
            return value
    return None


def _location(
    plan: ProfilePlan,
    data: Mapping[str, Value],
    device: RegisteredDevice,
    warnings: list[MappingWarning],
) -> dict[str, Any] | None:
    spec = plan.location
    if spec is not None:
        latitude = _first(data, spec.latitude)
        longitude = _first(data, spec.longitude)
        if latitude is not None or longitude is not None:
            if (
                type(latitude) in _NUMBER
                and type(longitude) in _NUMBER
                and -90 <= latitude <= 90  # type: ignore[operator]
                and -180 <= longitude <= 180  # type: ignore[operator]
                and (latitude, longitude) != (0, 0)
            ):
                coordinates: list[Any] = [longitude, latitude]
                altitude = _first(data, spec.altitude) if spec.altitude else None
                if type(altitude) in _NUMBER:
                    coordinates.append(altitude)
                return {"type": "Point", "coordinates": coordinates}
            warnings.append(
                MappingWarning(
                    "bad-location",
                    f"payload position latitude={latitude!r} longitude={longitude!r} is not a "
                    "valid fix; the registered location is used",
                    device.dev_eui,
                    attribute="location",
                )
            )
    return device.location


# -- values -----------------------------------------------------------------------------------


def _value(
    attribute: AttributePlan,
    raw: Value,
    device: RegisteredDevice,
    calibrated: bool,
    observed_at: datetime,
    warnings: list[MappingWarning],
) -> tuple[Any, bool] | None:
    """The attribute's value and whether it is implausible; None (and a warning) if refused."""
    value: Any = raw
    steps = attribute.steps
    if steps:
        try:
            for step in steps:
                value = step(value)
        except TransformError as exc:
            warnings.append(_bad_value(device, attribute, f"{raw!r}: {exc}"))
            return None
    if calibrated and type(value) in _NUMBER:
        calibration = device.calibration_for(attribute.name, attribute.entity_type, observed_at)
        if calibration is not None:
            value = calibration.apply(value)
            # the profile's rounding again, else 12 significant digits: no float noise
            value = (
                attribute.rounding(value)
                if attribute.rounding is not None
                else float(f"{value:.12g}")
            )
    validate = attribute.validate
    if validate is not None:
        try:
            checked = validate(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            message = str(first["msg"]).removeprefix("Value error, ")
            warnings.append(_bad_value(device, attribute, f"{value!r} (from {raw!r}): {message}"))
            return None
        if type(checked) in _NUMBER:
            value = checked
    elif not isinstance(value, bool | int | float | str):
        warnings.append(_bad_value(device, attribute, f"{value!r} is not a JSON scalar"))
        return None
    plausible = attribute.plausible
    if (
        plausible is not None
        and type(value) in _NUMBER
        and not (plausible[0] <= value <= plausible[1])
    ):
        warnings.append(
            MappingWarning(
                "implausible",
                f"{value!r} is outside the plausible range {attribute.plausible_text}; "
                "written with quality=implausible",
                device.dev_eui,
                attribute.entity_type,
                attribute.name,
            )
        )
        return value, True
    return value, False


def _bad_value(device: RegisteredDevice, attribute: AttributePlan, what: str) -> MappingWarning:
    return MappingWarning(
        "bad-value",
        f"{what}; the attribute is left out",
        device.dev_eui,
        attribute.entity_type,
        attribute.name,
    )


def _property(
    attribute: AttributePlan, value: Any, implausible: bool, observed_text: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Property", "value": value, "observedAt": observed_text}
    if attribute.unit is not None:
        out["unitCode"] = attribute.unit
    if implausible:
        out["quality"] = dict(QUALITY_IMPLAUSIBLE)
    return out


# -- entities ---------------------------------------------------------------------------------


def _observation(
    plan: EntityPlan,
    data: Mapping[str, Value],
    device: RegisteredDevice,
    observed_at: datetime,
    observed_text: str,
    location: dict[str, Any] | None,
    config: MappingConfig,
    warnings: list[MappingWarning],
) -> dict[str, Any] | None:
    if plan.requires is not None and not any(data.get(name) is not None for name in plan.requires):
        return None
    attributes: dict[str, Any] = {}
    seen_any = False
    calibrated = bool(device.calibration)
    get = data.get
    for attribute in plan.attributes:
        for name in attribute.sources:
            raw = get(name)
            if raw is not None:
                break
        else:
            continue
        seen_any = True
        found = _value(attribute, raw, device, calibrated, observed_at, warnings)
        if found is not None:
            attributes[attribute.name] = _property(attribute, found[0], found[1], observed_text)
    if not attributes:
        if seen_any:
            warnings.append(
                MappingWarning(
                    "bad-value",
                    f"every value of {plan.type} was refused; the entity is not written",
                    device.dev_eui,
                    plan.type,
                )
            )
        return None
    if location is None and plan.location_required:
        warnings.append(
            MappingWarning(
                "no-location",
                f"{plan.type} needs a location: register the device with one (or its profile "
                "reads a GPS position); written without it",
                device.dev_eui,
                plan.type,
                "location",
            )
        )
    return assemble_observation(
        plan, attributes, device, observed_at, observed_text, location, config
    )


def assemble_observation(
    plan: EntityPlan,
    attributes: Mapping[str, Any],
    device: RegisteredDevice,
    observed_at: datetime,
    observed_text: str,
    location: dict[str, Any] | None,
    config: MappingConfig,
) -> dict[str, Any]:
    """An observation entity of `plan` around its mapped `attributes` (normalized): id, time
    attributes, location, refDevice, constants, dataProvider/source and @context."""
    entity: dict[str, Any] = {
        "id": device.observation_id(plan.type, plan.id_suffix),
        "type": plan.type,
    }
    if plan.period is not None:
        start = _utc_text(observed_at - timedelta(seconds=plan.period))
        entity["dateObservedFrom"] = {
            "type": "Property",
            "value": {"@type": "DateTime", "@value": start},
        }
        entity["dateObservedTo"] = {
            "type": "Property",
            "value": {"@type": "DateTime", "@value": observed_text},
        }
    if plan.time_attribute is not None:
        if plan.time_typed:
            time_value: Any = {"@type": "DateTime", "@value": observed_text}
        elif plan.time_interval_text:
            time_value = f"{entity['dateObservedFrom']['value']['@value']}/{observed_text}"
        else:
            time_value = observed_text
        entity[plan.time_attribute] = {"type": "Property", "value": time_value}
    if location is not None:
        entity["location"] = {"type": "GeoProperty", "value": location}
    if plan.ref_as_list is not None:
        entity["refDevice"] = {
            "type": "Relationship",
            "object": [device.device_id] if plan.ref_as_list else device.device_id,
        }
    entity.update(attributes)
    if plan.static:
        entity.update(plan.static)
    if config.data_provider is not None:
        entity["dataProvider"] = {"type": "Property", "value": config.data_provider}
    if config.source is not None:
        entity["source"] = {"type": "Property", "value": config.source}
    entity["@context"] = plan.context
    return entity


def _device_update(
    plan: ProfilePlan,
    uplink: Uplink,
    data: Mapping[str, Value],
    device: RegisteredDevice,
    observed_at: datetime,
    observed_text: str,
    received_text: str,
    warnings: list[MappingWarning],
) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": device.device_id,
        "type": "Device",
        "dateLastValueReported": {
            "type": "Property",
            "value": {"@type": "DateTime", "@value": received_text},
        },
    }
    if plan.radio:
        best = uplink.best_reception
        if best is not None and best.rssi is not None:
            rssi: dict[str, Any] = {
                "type": "Property",
                "value": best.rssi,
                "unitCode": RSSI_UNIT,
                "observedAt": received_text,
            }
            if best.snr is not None:
                rssi["snr"] = {"type": "Property", "value": best.snr, "unitCode": SNR_UNIT}
            gateway = best.gateway_id or best.gateway_eui
            if gateway is not None:
                rssi["gateway"] = {"type": "Property", "value": gateway}
            entity["rssi"] = rssi
    calibrated = bool(device.calibration)
    for attribute in plan.device_attributes:
        raw = _first(data, attribute.sources)
        if raw is None:
            continue
        found = _value(attribute, raw, device, calibrated, observed_at, warnings)
        if found is not None:
            entity[attribute.name] = _property(attribute, found[0], found[1], observed_text)
    entity["@context"] = DEVICE_CONTEXT
    return entity
