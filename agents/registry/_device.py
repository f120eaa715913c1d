"""A registered device: the values the registry keeps, and its `Device` entity in the broker.

A registered LoRaWAN device is a Smart Data Models `Device` entity (`urn:ngsi-ld:Device:<DevEUI>`
unless the admin names it). The registration owns these attributes of it (the subscription of
the registry watches exactly them, `REGISTRY_ATTRIBUTES`):

| attribute | what |
|---|---|
| `devEUI` | the DevEUI, 16 upper-case hex digits |
| `name`, `description` | for people |
| `profile` | the device profile its uplinks are mapped with (absent while unprovisioned) |
| `measuringPoint` | the place its observations belong to (design decision 8) |
| `location` | where it is installed (GeoProperty) |
| `owner` | who is responsible for it (ids) |
| `refDeviceModel` | its `DeviceModel` (Relationship) |
| `deviceState` | lifecycle: active, unprovisioned, maintenance, inactive, decommissioned |
| `dateInstalled` | when it was installed |
| `dateFirstUsed` | its first uplink's receive time (written once, by the agent) |
| `dateDecommissioned` | when it left service for good (project attribute, not in the SDM) |
| `locationHistory` | where it was installed since when: `[{longitude, latitude, validFrom}]` |
| `tags` | the network server's tags or attributes of the device (imported), `{key: text}` |
| `calibration` | per-attribute offset and scale with a validity period; `dateLastCalibration` |
| `controlledProperty` | what it measures (from the profile) |
| `deviceCategory`, `supportedProtocol` | `sensor` (or the profile's), `lora` |

What each uplink writes (battery, rssi, dateLastValueReported) belongs to the agent and is never
part of a registration. Network-server keys (AppKey, NwkKey, session keys) are never modelled
here, so they cannot reach the broker.

The measuring point is a name (`mitte-01`): the observation entity of type T is
`urn:ngsi-ld:T:<measuring point>`; without one, the DevEUI stands in. A full id
(`urn:ngsi-ld:AirQualityObserved:mitte-01`) is accepted and its last part taken as the name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from agents.lorawan import EUI, UtcDatetime
from models import Device, ModelError, format_datetime
from schemas import key_values

__all__ = [
    "DEVICE_CONTEXT",
    "REGISTRY_ATTRIBUTES",
    "Calibration",
    "DeviceAlreadyRegistered",
    "DeviceNotRegistered",
    "DeviceState",
    "Placement",
    "RegisteredDevice",
    "RegistryError",
    "device_entity_id",
]

DEVICE_CONTEXT = Device.context_url()
"""The @context `Device` entities are written and read with."""

DeviceState = Literal["active", "unprovisioned", "maintenance", "inactive", "decommissioned"]
"""A device's lifecycle (`deviceState`). Uplinks are mapped for `active` and `maintenance`
devices; an `unprovisioned` device has no profile yet; `inactive` and `decommissioned` devices'
uplinks are dropped and counted."""

REGISTRY_ATTRIBUTES: tuple[str, ...] = (
    "devEUI",
    "name",
    "description",
    "profile",
    "measuringPoint",
    "location",
    "owner",
    "refDeviceModel",
    "deviceState",
    "dateInstalled",
    "dateFirstUsed",
    "dateDecommissioned",
    "locationHistory",
    "tags",
    "calibration",
    "dateLastCalibration",
    "controlledProperty",
    "deviceCategory",
    "supportedProtocol",
)
"""The Device attributes a registration owns (and the registry's subscription watches)."""

_URN_PREFIX = "urn:ngsi-ld:"
_TOKEN = re.compile(r"[A-Za-z0-9_.~-]{1,200}")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+")


class RegistryError(ValueError):
    """A registration cannot be made or read: which device, which field, what was expected."""


class DeviceNotRegistered(RegistryError):
    """The DevEUI has no registration (in the broker)."""


class DeviceAlreadyRegistered(RegistryError):
    """The DevEUI, or the Device entity id, is taken already."""


def device_entity_id(dev_eui: str, device_id: str | None = None) -> str:
    """The Device entity id: `device_id` if it is a URI, `urn:ngsi-ld:Device:<device_id>` for a
    bare name, else `urn:ngsi-ld:Device:<DevEUI>`."""
    if device_id is None:
        return f"{_URN_PREFIX}Device:{dev_eui}"
    if ":" in device_id:
        return device_id
    return f"{_URN_PREFIX}Device:{device_id}"


class Calibration(BaseModel):
    """One calibration of one attribute: the mapped value becomes `value * scale + offset`
    while `valid_from <= observedAt < valid_until` (an open end is unbounded).

    `entity_type` limits it to one of the profile's entity types (`None`: any entity with that
    attribute). Read and written in camelCase (`entityType`, `validFrom`, `validUntil`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    attribute: str = Field(min_length=1)
    entity_type: str | None = Field(default=None, alias="entityType")
    offset: float = 0.0
    scale: float = 1.0
    valid_from: UtcDatetime | None = Field(default=None, alias="validFrom")
    valid_until: UtcDatetime | None = Field(default=None, alias="validUntil")
    note: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Calibration:
        if (
            self.valid_from is not None
            and self.valid_until is not None
            and self.valid_until <= self.valid_from
        ):
            raise ValueError(
                f"calibration of {self.attribute}: validUntil {self.valid_until.isoformat()} "
                f"is not after validFrom {self.valid_from.isoformat()}"
            )
        return self

    def valid_at(self, at: datetime) -> bool:
        """Whether the calibration applies to a reading observed at `at`."""
        return (self.valid_from is None or at >= self.valid_from) and (
            self.valid_until is None or at < self.valid_until
        )

    def apply(self, value: float) -> float:
        return value * self.scale + self.offset

    def to_wire(self) -> dict[str, Any]:
        """The JSON object stored in the Device's `calibration` attribute."""
        out: dict[str, Any] = {"attribute": self.attribute, "offset": self.offset}
        out["scale"] = self.scale
        if self.entity_type is not None:
            out["entityType"] = self.entity_type
        if self.valid_from is not None:
            out["validFrom"] = format_datetime(self.valid_from)
        if self.valid_until is not None:
            out["validUntil"] = format_datetime(self.valid_until)
        if self.note:
            out["note"] = self.note
        return out


class Placement(BaseModel):
    """Where a device was installed from `valid_from` on (until the next placement's start).

    `location` is a GeoJSON Point. On the wire (the Device's `locationHistory`) it is
    `{longitude, latitude[, altitude], validFrom}`: plain numbers, so that every broker keeps
    it as it was written.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    location: dict[str, Any]
    valid_from: UtcDatetime | None = Field(default=None, alias="validFrom")

    @model_validator(mode="before")
    @classmethod
    def _from_wire(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "location" not in data and "longitude" in data:
            coordinates = [data.get("longitude"), data.get("latitude")]
            if data.get("altitude") is not None:
                coordinates.append(data["altitude"])
            rest = {k: v for k, v in data.items() if k not in ("longitude", "latitude", "altitude")}
            return {**rest, "location": {"type": "Point", "coordinates": coordinates}}
        return data

    @field_validator("location")
    @classmethod
    def _point(cls, value: dict[str, Any]) -> dict[str, Any]:
        coordinates = value.get("coordinates")
        if (
            value.get("type") != "Point"
            or not isinstance(coordinates, list)
            or len(coordinates) not in (2, 3)
            or not all(isinstance(c, int | float) for c in coordinates)
        ):
            raise ValueError(f"a placement is a GeoJSON Point, not {value!r}")
        return value

    def to_wire(self) -> dict[str, Any]:
        """The JSON object stored in `locationHistory`."""
        coordinates = self.location["coordinates"]
        out: dict[str, Any] = {"longitude": coordinates[0], "latitude": coordinates[1]}
        if len(coordinates) > 2:
            out["altitude"] = coordinates[2]
        if self.valid_from is not None:
            out["validFrom"] = format_datetime(self.valid_from)
        return out


def _measuring_point(value: object) -> object:
    if not isinstance(value, str):
        return value
    if value.startswith(_URN_PREFIX):
        parts = value[len(_URN_PREFIX) :].split(":", 1)
        if len(parts) == 2 and parts[1]:
            value = parts[1]
    return value


class RegisteredDevice(BaseModel):
    """A device as registered (see the module docstring for its broker form).

    `device_id` is the Device entity id (default `urn:ngsi-ld:Device:<DevEUI>`);
    `measuring_point` the name of the place its observations belong to (default the DevEUI);
    `location` a GeoJSON geometry. Frozen: a change is a new value (`model_copy(update=...)`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    dev_eui: EUI
    device_id: str = ""
    name: str | None = None
    description: str | None = None
    profile: str | None = None
    measuring_point: str | None = None
    location: dict[str, Any] | None = None
    owner: tuple[str, ...] = ()
    device_model: str | None = None
    state: DeviceState = "active"
    date_installed: UtcDatetime | None = None
    date_first_used: UtcDatetime | None = None
    date_decommissioned: UtcDatetime | None = None
    placements: tuple[Placement, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)
    calibration: tuple[Calibration, ...] = ()
    controlled_property: tuple[str, ...] = ()
    device_category: tuple[str, ...] = ("sensor",)

    @field_validator("dev_eui")
    @classmethod
    def _eui(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9A-F]{16}", value):
            raise ValueError(f"{value!r} is not a DevEUI (16 hex digits)")
        return value

    @field_validator("measuring_point", mode="before")
    @classmethod
    def _point(cls, value: object) -> object:
        value = _measuring_point(value)
        if isinstance(value, str) and not _TOKEN.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a measuring point name: 1 to 200 letters, digits and -._~"
            )
        return value

    @field_validator("device_model")
    @classmethod
    def _model_id(cls, value: str | None) -> str | None:
        if value is None or ":" in value:
            return value
        return f"{_URN_PREFIX}DeviceModel:{value}"

    @field_validator("placements")
    @classmethod
    def _placements_in_order(cls, value: tuple[Placement, ...]) -> tuple[Placement, ...]:
        def start(item: Placement) -> float:
            return item.valid_from.timestamp() if item.valid_from is not None else float("-inf")

        return tuple(sorted(value, key=start))

    @model_validator(mode="after")
    def _defaults(self) -> RegisteredDevice:
        object.__setattr__(
            self, "device_id", device_entity_id(self.dev_eui, self.device_id or None)
        )
        if not _URI.fullmatch(self.device_id):
            raise ValueError(f"device id {self.device_id!r} is not a URI")
        if self.profile is None and self.state not in ("unprovisioned", "decommissioned"):
            raise ValueError(
                f"device {self.dev_eui} has no profile: give one, or register it as unprovisioned"
            )
        return self

    # -- what the mapping needs

    @property
    def point(self) -> str:
        """The measuring point's name (the DevEUI unless the admin named one)."""
        return self.measuring_point or self.dev_eui

    def observation_id(self, entity_type: str, id_suffix: str | None = None) -> str:
        """The id of the observation entity of `entity_type` this device feeds."""
        base = f"{_URN_PREFIX}{entity_type}:{self.point}"
        return base if id_suffix is None else f"{base}:{id_suffix}"

    def location_at(self, at: datetime) -> dict[str, Any] | None:
        """Where the device was at `at`: the last placement that started at or before `at`
        (the first one for an earlier time), else the registered `location`."""
        if not self.placements:
            return self.location
        found = self.placements[0]
        for placement in self.placements:
            if placement.valid_from is None or placement.valid_from <= at:
                found = placement
        return found.location

    @property
    def maps_uplinks(self) -> bool:
        """Whether uplinks of this device are mapped (it has a profile and is in service)."""
        return self.profile is not None and self.state in ("active", "maintenance")

    def calibration_for(self, attribute: str, entity_type: str, at: datetime) -> Calibration | None:
        """The calibration of `attribute` of `entity_type` valid at `at`: of several, the one
        that became valid last (an entity-type-specific one before a general one)."""
        best: Calibration | None = None
        for item in self.calibration:
            if item.attribute != attribute or not item.valid_at(at):
                continue
            if item.entity_type is not None and item.entity_type != entity_type:
                continue
            if best is None or _calibration_rank(item) > _calibration_rank(best):
                best = item
        return best

    # -- the broker form

    def to_entity(self) -> dict[str, Any]:
        """The registration as a normalized `Device` entity (without `@context`: write it with
        `DEVICE_CONTEXT`). Checked against the `Device` model unless the device is
        unprovisioned (which has no controlledProperty yet); raises `RegistryError`."""
        entity: dict[str, Any] = {"id": self.device_id, "type": "Device"}

        def prop(name: str, value: Any) -> None:
            entity[name] = {"type": "Property", "value": value}

        prop("devEUI", self.dev_eui)
        if self.name:
            prop("name", self.name)
        if self.description:
            prop("description", self.description)
        if self.profile:
            prop("profile", self.profile)
        prop("measuringPoint", self.point)
        if self.location is not None:
            entity["location"] = {"type": "GeoProperty", "value": self.location}
        if self.owner:
            prop("owner", list(self.owner))
        if self.device_model:
            entity["refDeviceModel"] = {"type": "Relationship", "object": self.device_model}
        prop("deviceState", self.state)
        if self.date_installed is not None:
            prop("dateInstalled", _typed(self.date_installed))
        if self.date_first_used is not None:
            prop("dateFirstUsed", _typed(self.date_first_used))
        if self.date_decommissioned is not None:
            prop("dateDecommissioned", _typed(self.date_decommissioned))
        if self.placements:
            prop("locationHistory", [item.to_wire() for item in self.placements])
        if self.tags:
            prop("tags", dict(self.tags))
        if self.calibration:
            prop("calibration", [item.to_wire() for item in self.calibration])
            starts = [item.valid_from for item in self.calibration if item.valid_from is not None]
            if starts:
                prop("dateLastCalibration", _typed(max(starts)))
        if self.controlled_property:
            prop("controlledProperty", list(self.controlled_property))
        if self.device_category:
            prop("deviceCategory", list(self.device_category))
        prop("supportedProtocol", ["lora"])
        if self.controlled_property:
            try:
                Device.from_ngsi(entity, representation="normalized")
            except ModelError as exc:
                raise RegistryError(f"device {self.dev_eui}: {exc}") from None
        return entity

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> RegisteredDevice:
        """A registration from a `Device` entity read from the broker (normalized, concise or
        keyValues). Raises `RegistryError` for an entity that is not a registered LoRaWAN
        device (no `devEUI`) or whose attributes do not read."""
        values = key_values(entity)
        entity_id = values.get("id")
        dev_eui = values.get("devEUI")
        if values.get("type") != "Device" or not isinstance(dev_eui, str):
            raise RegistryError(f"entity {entity_id!r} is not a registered device (no devEUI)")
        calibration = values.get("calibration") or []
        if isinstance(calibration, dict):
            calibration = [calibration]
        placements = values.get("locationHistory") or []
        tags = values.get("tags") or {}
        if isinstance(placements, dict):
            placements = [placements]
        owner = values.get("owner")
        owners = tuple(str(item) for item in owner) if isinstance(owner, list) else ()
        if isinstance(owner, str) and owner:
            owners = (owner,)
        try:
            return cls(
                dev_eui=dev_eui,
                device_id=str(entity_id),
                name=_text(values.get("name")),
                description=_text(values.get("description")),
                profile=_text(values.get("profile")),
                measuring_point=_text(values.get("measuringPoint")),
                location=values.get("location")
                if isinstance(values.get("location"), dict)
                else None,
                owner=owners,
                device_model=_text(values.get("refDeviceModel")),
                state=values.get("deviceState") or "active",
                date_installed=values.get("dateInstalled"),
                date_first_used=values.get("dateFirstUsed"),
                date_decommissioned=values.get("dateDecommissioned"),
                placements=tuple(placements),
                tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
                calibration=tuple(calibration),
                controlled_property=tuple(values.get("controlledProperty") or ()),
                device_category=tuple(values.get("deviceCategory") or ("sensor",)),
            )
        except ValueError as exc:
            raise RegistryError(f"device entity {entity_id!r}: {exc}") from None


def _calibration_rank(item: Calibration) -> tuple[int, float]:
    start = item.valid_from.timestamp() if item.valid_from is not None else float("-inf")
    return (item.entity_type is not None, start)


def _typed(value: datetime) -> dict[str, str]:
    return {"@type": "DateTime", "@value": format_datetime(value)}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
