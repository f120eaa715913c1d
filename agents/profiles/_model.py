"""The device profile as typed values: what one kind of device's uplinks become.

A profile is read from YAML (see `agents.profiles._load`), checked against the JSON Schema
`device-profile` of `schemas/`, then held as the frozen pydantic values below. Nothing in a
profile is evaluated: transforms are a fixed set of steps with numbers and tables.

    name: air-quality-lpp
    codec: {name: cayennelpp}
    controlled_property: [airPollution, temperature, humidity]
    reporting_interval: 600
    time: {prefer: [payload, gateway, network-server], field: unixtime_9}
    entities:
      - type: AirQualityObserved
        attributes:
          temperature: {source: temperature_1, unit: CEL, plausible: {min: -40, max: 60}}
          relativeHumidity:
            source: relative_humidity_2
            transforms: [{scale: 0.01}, {round: 3}]
          co2: {source: concentration_3, unit: "59"}
        static: {typeofLocation: outdoor}
    device:
      attributes:
        batteryLevel: {source: percentage_0, transforms: [{scale: 0.01}, {clamp: {min: 0, max: 1}}]}

`downlink` (optional) names the encoder for downlinks and the commands devices understand,
each written as a Device attribute of that name and relayed by the agent (see `agents.downlink`):

    downlink:
      encoder: {name: cayennelpp}
      commands:
        setReportingInterval: {f_port: 10, confirmed: true,
                               encoder: {name: cayennelpp, channel: 1, type: generic}}

Renaming is the mapping itself: each target attribute names the measurement (`source`) it
comes from, or several, the first present winning (`source: [humidity, relative_humidity_2]`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from agents.profiles._errors import TransformError
from agents.profiles._steps import (
    Step,
    clamping,
    lookup,
    map_key,
    rounding,
    scaling,
    shifting,
)

__all__ = [
    "DEFAULT_TIME_PREFERENCE",
    "AttributeSpec",
    "Clamp",
    "CodecSpec",
    "CommandName",
    "CommandSpec",
    "DeviceProfile",
    "DeviceSpec",
    "DownlinkEncoderSpec",
    "DownlinkPriority",
    "DownlinkSpec",
    "EntitySpec",
    "LocationSpec",
    "MapValues",
    "Offset",
    "PlausibleRange",
    "Round",
    "Scale",
    "TimeFormat",
    "TimePreference",
    "TimeSpec",
    "Transform",
    "TransformError",
    "map_key",
]

TimePreference = Literal["payload", "gateway", "network-server"]
"""Where an observation's time may come from (design decision 6)."""

TimeFormat = Literal["auto", "unix", "unix-ms", "iso8601"]

DEFAULT_TIME_PREFERENCE: tuple[TimePreference, ...] = ("payload", "gateway", "network-server")

_FROZEN = ConfigDict(frozen=True, extra="forbid")

Scalar = bool | int | float | str


def _as_tuple(value: object) -> object:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(value)
    return value


Sources = Annotated[tuple[str, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
"""One measurement name or several (the first present in an uplink wins)."""


class Scale(BaseModel):
    """Multiply by `scale`."""

    model_config = _FROZEN
    scale: float

    def step(self) -> Step:
        return scaling(self.scale)


class Offset(BaseModel):
    """Add `offset`."""

    model_config = _FROZEN
    offset: float

    def step(self) -> Step:
        return shifting(self.offset)


class Round(BaseModel):
    """Round to `round` decimals; 0 gives an integer."""

    model_config = _FROZEN
    round: int = Field(ge=0, le=12)

    def step(self) -> Step:
        return rounding(self.round)


class PlausibleRange(BaseModel):
    """A closed range; either end may be open (None)."""

    model_config = _FROZEN
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> PlausibleRange:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def contains(self, value: float) -> bool:
        """Whether `value` lies in the range (NaN never does)."""
        if math.isnan(value):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def __str__(self) -> str:
        low = "-inf" if self.min is None else f"{self.min:g}"
        high = "inf" if self.max is None else f"{self.max:g}"
        return f"[{low}, {high}]"


class Clamp(BaseModel):
    """Limit the value to the range."""

    model_config = _FROZEN
    clamp: PlausibleRange

    def step(self) -> Step:
        return clamping(self.clamp.min, self.clamp.max)


class MapValues(BaseModel):
    """Replace a value by the one `map` lists for it (looked up by `map_key`); `default` for
    values it does not list, else the value is refused."""

    model_config = _FROZEN
    map: dict[str, Scalar] = Field(min_length=1)
    default: Scalar | None = None

    @model_validator(mode="before")
    @classmethod
    def _text_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("map"), dict):
            data = {**data, "map": {map_key(key): value for key, value in data["map"].items()}}
        return data

    def step(self) -> Step:
        return lookup(self.map, self.default)


Transform = Scale | Offset | Round | Clamp | MapValues
"""One transform step; its `step()` is the function that applies it to a value."""


class AttributeSpec(BaseModel):
    """How one target attribute is made from the measurements.

    `unit` is the UN/CEFACT code written as `unitCode`; when the profile does not state it,
    `unit_given` is False and the Smart Data Model's default unit applies; `unit: null` in the
    file means "no unit" (text, flags). `plausible` flags readings outside the range (after
    transforms and calibration) instead of dropping them. `extra` allows an attribute the model
    does not declare.
    """

    model_config = _FROZEN

    source: Sources
    unit: str | None = Field(default=None, pattern=r"^[A-Z0-9]{2,3}$")
    transforms: tuple[Transform, ...] = ()
    plausible: PlausibleRange | None = None
    extra: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"source": data}
        return data

    @property
    def unit_given(self) -> bool:
        """Whether the profile states the unit (or states that there is none)."""
        return "unit" in self.model_fields_set

    def transform(self, value: object) -> object:
        """`value` through every transform step, in order; raises `TransformError`."""
        for transform in self.transforms:
            value = transform.step()(value)
        return value


class EntitySpec(BaseModel):
    """One observation entity an uplink updates.

    Its id is `urn:ngsi-ld:<type>:<measuring point>` (`:<id_suffix>` appended when given). It is
    written when one of `requires` is in the uplink, or (without `requires`) when any of its
    attributes is. `period` (seconds) makes it an observation over an interval
    (dateObservedFrom/To). `static` attributes are constants written with every observation.
    """

    model_config = _FROZEN

    type: str = Field(pattern=r"^[A-Z][A-Za-z0-9]{0,127}$")
    id_suffix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    requires: tuple[str, ...] | None = Field(default=None, min_length=1)
    period: float | None = Field(default=None, gt=0)
    attributes: dict[str, AttributeSpec] = Field(min_length=1)
    static: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        """`<type>` or `<type>:<id_suffix>`: unique among a profile's entities."""
        return self.type if self.id_suffix is None else f"{self.type}:{self.id_suffix}"


class TimeSpec(BaseModel):
    """Where `observedAt` comes from: the first of `prefer` that has a time. `field` is the
    measurement holding the payload's timestamp (without it, `payload` is skipped)."""

    model_config = _FROZEN

    prefer: tuple[TimePreference, ...] = Field(default=DEFAULT_TIME_PREFERENCE, min_length=1)
    field: str | None = None
    format: TimeFormat = "auto"


class LocationSpec(BaseModel):
    """The measurements of a position the device determines itself (GPS)."""

    model_config = _FROZEN

    latitude: Sources
    longitude: Sources
    altitude: Sources | None = None


class DeviceSpec(BaseModel):
    """What each uplink writes on the Device entity: `radio` (rssi with snr and gateway
    sub-properties) and attributes from measurements (`batteryLevel`, ...)."""

    model_config = _FROZEN

    radio: bool = True
    attributes: dict[str, AttributeSpec] = Field(default_factory=dict)


class CodecSpec(BaseModel):
    """The codec a profile decodes with: a registry name and its configuration block."""

    model_config = _FROZEN

    name: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)


DownlinkPriority = Literal[
    "LOWEST", "LOW", "BELOW_NORMAL", "NORMAL", "ABOVE_NORMAL", "HIGH", "HIGHEST"
]
"""The Things Stack's downlink priorities (ChirpStack has none and ignores it)."""


class DownlinkEncoderSpec(BaseModel):
    """How a downlink's data becomes its payload bytes.

    `name`: `cayennelpp` (flat measurement names such as `analog_out_1`, or one scalar sent as
    `type` on `channel`), `javascript` (a TTN Device Repository `encodeDownlink`: `file` is a
    script, `codec` a codec YAML with a `downlinkEncoder` section; without either, the profile's
    own JavaScript codec file), or `hex` (the data is the payload as hex text). Relative paths
    resolve next to the profile.
    """

    model_config = _FROZEN

    name: Literal["cayennelpp", "javascript", "hex"]
    channel: int | None = Field(default=None, ge=0, le=255)
    type: str | int | None = None
    file: str | None = None
    codec: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DownlinkEncoderSpec:
        if (self.channel is None) != (self.type is None):
            raise ValueError("a cayennelpp encoder for one value needs both channel and type")
        if self.channel is not None and self.name != "cayennelpp":
            raise ValueError(f"channel and type apply to cayennelpp, not to {self.name}")
        if (self.file is not None or self.codec is not None) and self.name != "javascript":
            raise ValueError(f"file and codec apply to javascript, not to {self.name}")
        if self.file is not None and self.codec is not None:
            raise ValueError("give one of file (a script) and codec (a codec YAML)")
        return self


_DEVICE_ATTRIBUTES = frozenset(
    {
        "id", "type", "devEUI", "name", "description", "profile", "measuringPoint", "location",
        "owner", "refDeviceModel", "deviceState", "dateInstalled", "dateFirstUsed",
        "dateDecommissioned", "dateLastCalibration", "calibration", "controlledProperty",
        "deviceCategory", "supportedProtocol", "batteryLevel", "rssi", "snr", "devAddr",
        "dateLastJoin", "dateLastValueReported", "solvedLocation", "margin", "value",
        "locationHistory", "tags", "health", "category", "source", "dataProvider",
    }
)  # fmt: skip

CommandName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]{0,127}$")]
"""A command's name: the Device attribute it is written as."""


class CommandSpec(BaseModel):
    """A command admins or other systems send by writing an attribute of the same name on the
    Device entity: its value is encoded (with `encoder`, else the profile's downlink encoder)
    and sent on `f_port` (1-223; without it, the port the encoder chooses)."""

    model_config = _FROZEN

    description: str = ""
    f_port: int | None = Field(default=None, ge=1, le=223)
    confirmed: bool = False
    priority: DownlinkPriority = "NORMAL"
    encoder: DownlinkEncoderSpec | None = None


class DownlinkSpec(BaseModel):
    """`downlink`: the profile's default encoder (for `devices downlink --json`) and the
    commands its devices understand (attribute names on the Device entity)."""

    model_config = _FROZEN

    encoder: DownlinkEncoderSpec | None = None
    f_port: int | None = Field(default=None, ge=1, le=223)
    commands: dict[CommandName, CommandSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_device_attributes(self) -> DownlinkSpec:
        taken = sorted(set(self.commands) & _DEVICE_ATTRIBUTES)
        if taken:
            raise ValueError(
                f"command {', '.join(taken)} would be an attribute the Device entity has for "
                "another purpose (every change of it would send a downlink); choose a verb such "
                "as setReportingInterval"
            )
        return self


class DeviceProfile(BaseModel):
    """A device profile (see the module docstring).

    `path` is the file it was read from (None for one built in code); `builtin` says whether it
    ships with the agent; `base_dir` is where the codec's relative paths resolve. Instances are
    frozen and may be shared between threads.
    """

    model_config = _FROZEN

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    description: str = ""
    extends: str | None = None
    codec: CodecSpec
    controlled_property: tuple[str, ...] = ()
    device_category: tuple[str, ...] = ("sensor",)
    reporting_interval: float | None = Field(default=None, gt=0)
    time: TimeSpec = Field(default_factory=TimeSpec)
    location: LocationSpec | None = None
    entities: tuple[EntitySpec, ...] = Field(min_length=1)
    device: DeviceSpec = Field(default_factory=DeviceSpec)
    downlink: DownlinkSpec | None = None

    path: Path | None = Field(default=None, exclude=True)
    builtin: bool = Field(default=False, exclude=True)
    base_dir: Path | None = Field(default=None, exclude=True)

    def codec_config(self) -> dict[str, Any]:
        """The codec's configuration, with relative file paths resolving next to the profile."""
        config = dict(self.codec.config)
        if self.codec.name == "javascript" and self.base_dir is not None:
            config.setdefault("base_dir", str(self.base_dir))
        return config

    def measurement_names(self) -> set[str]:
        """Every measurement name the profile reads (sources, time field, location)."""
        names: set[str] = set()
        for entity in self.entities:
            for spec in entity.attributes.values():
                names.update(spec.source)
        for spec in self.device.attributes.values():
            names.update(spec.source)
        if self.time.field:
            names.add(self.time.field)
        if self.location is not None:
            names.update(self.location.latitude)
            names.update(self.location.longitude)
            names.update(self.location.altitude or ())
        return names
