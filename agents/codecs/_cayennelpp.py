"""CayenneLPP: decoder, encoder, and the names other decoders give to the same values.

A frame is `[channel][type][value]...`, big-endian; the type byte is the IPSO object ID − 3200.
Both the original LPPv1 types and the extended ones (voltage, current, frequency, percentage,
altitude, concentration, power, distance, energy, direction, unix time, gyrometer, colour, switch)
are understood; `LPP_TYPES` is the table.

Canonical names. A value becomes the measurement `<type name>_<channel>`, the type names being
those of `LPP_TYPES` (`temperature_3`, `relative_humidity_2`, `barometric_pressure_0`) — the same
names The Things Stack's built-in CayenneLPP formatter writes. Multi-value types flatten with a
dot: `accelerometer_6.x/.y/.z`, `gyrometer_1.x/.y/.z`, `colour_7.r/.g/.b`,
`gps_1.latitude/.longitude/.altitude`. Values are divided by the resolution's inverse (`272 / 10`,
never `272 * 0.1`), so they are the shortest decimals (27.2, not 27.200000000000003); types with
resolution 1 give integers. Voltage and current are unsigned, as in the ElectronicCats library.

Other names. Values that arrive already decoded from elsewhere use other words: the
ElectronicCats library (`humidity`, `barometer`, `time`), ChirpStack's built-in codec
(`temperatureSensor: {"3": 27.2}`, `humiditySensor`, `gpsLocation`...), and The Things Stack's
float32 artefacts (27.200000762939453). `CAYENNE_ALIASES` maps those names to the canonical ones
and `normalize_cayenne_object` renames and rounds such objects to what this decoder would produce.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from agents.codecs._base import CodecError, Measurements, Value, flatten

if TYPE_CHECKING:
    from agents.lorawan import Uplink

__all__ = [
    "CAYENNE_ALIASES",
    "LPP_TYPES",
    "CayenneLPPCodec",
    "LppReading",
    "LppType",
    "canonical_cayenne_name",
    "decode_cayennelpp",
    "decode_cayennelpp_values",
    "encode_cayennelpp",
    "encode_cayennelpp_measurements",
    "normalize_cayenne_object",
]


class LppType(NamedTuple):
    """One CayenneLPP data type.

    `size` is the value's length in bytes; `divisor` turns the raw integer into the value
    (`None`: the value is the integer itself). For multi-value types, `fields` names the parts
    and `divisors` gives each part's divisor.
    """

    type: int
    name: str
    size: int
    signed: bool
    divisor: int | None
    fields: tuple[str, ...] = ()
    divisors: tuple[int | None, ...] = ()

    @property
    def ipso(self) -> int:
        """The IPSO Smart Object ID (type + 3200)."""
        return self.type + 3200

    @property
    def resolution(self) -> float | None:
        """The value of one raw step (0.1 for temperature); None for GPS, whose parts differ."""
        if self.fields and len(set(self.divisors)) > 1:
            return None
        divisor = self.divisors[0] if self.fields else self.divisor
        return 1.0 if divisor is None else 1.0 / divisor


class LppReading(NamedTuple):
    """One decoded value of a frame, as the CayenneLPP libraries list them."""

    channel: int
    type: int
    name: str
    value: int | float | dict[str, int | float]


_XYZ = ("x", "y", "z")
_TYPES: tuple[LppType, ...] = (
    LppType(0, "digital_in", 1, False, None),
    LppType(1, "digital_out", 1, False, None),
    LppType(2, "analog_in", 2, True, 100),
    LppType(3, "analog_out", 2, True, 100),
    LppType(100, "generic", 4, False, None),
    LppType(101, "luminosity", 2, False, None),
    LppType(102, "presence", 1, False, None),
    LppType(103, "temperature", 2, True, 10),
    LppType(104, "relative_humidity", 1, False, 2),
    LppType(113, "accelerometer", 6, True, 1000, _XYZ, (1000, 1000, 1000)),
    LppType(115, "barometric_pressure", 2, False, 10),
    LppType(116, "voltage", 2, False, 100),
    LppType(117, "current", 2, False, 1000),
    LppType(118, "frequency", 4, False, None),
    LppType(120, "percentage", 1, False, None),
    LppType(121, "altitude", 2, True, None),
    LppType(125, "concentration", 2, False, None),
    LppType(128, "power", 2, False, None),
    LppType(130, "distance", 4, False, 1000),
    LppType(131, "energy", 4, False, 1000),
    LppType(132, "direction", 2, False, None),
    LppType(133, "unixtime", 4, False, None),
    LppType(134, "gyrometer", 6, True, 100, _XYZ, (100, 100, 100)),
    LppType(135, "colour", 3, False, None, ("r", "g", "b"), (None, None, None)),
    LppType(136, "gps", 9, True, None, ("latitude", "longitude", "altitude"), (10000, 10000, 100)),
    LppType(142, "switch", 1, False, None),
)

LPP_TYPES: Mapping[int, LppType] = {t.type: t for t in _TYPES}
"""Every CayenneLPP type this module reads and writes, by type byte."""

_BY_NAME: dict[str, LppType] = {t.name: t for t in _TYPES}

CAYENNE_ALIASES: Mapping[str, str] = {
    # ElectronicCats CayenneLPP library and myDevices wording
    "humidity": "relative_humidity",
    "barometer": "barometric_pressure",
    "pressure": "barometric_pressure",
    "time": "unixtime",
    "color": "colour",
    "digital_input": "digital_in",
    "digital_output": "digital_out",
    "analog_input": "analog_in",
    "analog_output": "analog_out",
    "illuminance": "luminosity",
    "gyroscope": "gyrometer",
    # ChirpStack's built-in codec (objects keyed by channel)
    "digitalInput": "digital_in",
    "digitalOutput": "digital_out",
    "analogInput": "analog_in",
    "analogOutput": "analog_out",
    "illuminanceSensor": "luminosity",
    "presenceSensor": "presence",
    "temperatureSensor": "temperature",
    "humiditySensor": "relative_humidity",
    "gpsLocation": "gps",
    # camelCase spellings of the canonical names
    "relativeHumidity": "relative_humidity",
    "barometricPressure": "barometric_pressure",
}
"""Names other decoders use → the canonical type name."""


def canonical_cayenne_name(name: str) -> str | None:
    """The canonical type name for a canonical or alias name, or None if it is neither."""
    if name in _BY_NAME:
        return name
    return CAYENNE_ALIASES.get(name)


# Decoding --------------------------------------------------------------------------------------

_STRUCTS = {
    (1, False): struct.Struct(">B"),
    (2, False): struct.Struct(">H"),
    (2, True): struct.Struct(">h"),
    (4, False): struct.Struct(">I"),
    (6, True): struct.Struct(">hhh"),
    (3, False): struct.Struct(">BBB"),
}


def _gps(payload: bytes, start: int) -> tuple[float, float, float]:
    lat = int.from_bytes(payload[start : start + 3], "big", signed=True)
    lon = int.from_bytes(payload[start + 3 : start + 6], "big", signed=True)
    alt = int.from_bytes(payload[start + 6 : start + 9], "big", signed=True)
    return (lat / 10000, lon / 10000, alt / 100)


class _Spec(NamedTuple):
    """How to read one type: `unpack(payload, offset)` gives the raw integers (GPS: the values),
    `divisor` scales them, `names` caches the measurement names per channel."""

    size: int
    multi: bool
    unpack: Callable[[bytes, int], tuple[Any, ...]]
    divisor: int | None
    lpp: LppType
    names: list[Any]


def _spec(lpp: LppType) -> _Spec:
    if lpp.name == "gps":
        return _Spec(lpp.size, True, _gps, None, lpp, [None] * 256)
    unpack = _STRUCTS[(lpp.size, lpp.signed)].unpack_from
    return _Spec(lpp.size, bool(lpp.fields), unpack, lpp.divisor, lpp, [None] * 256)


_SPECS: list[_Spec | None] = [None] * 256
for _lpp in _TYPES:
    _SPECS[_lpp.type] = _spec(_lpp)


def _names(spec: _Spec, channel: int) -> Any:
    """`temperature_3`, or the parts' names of a multi-value type; cached per channel."""
    base = f"{spec.lpp.name}_{channel}"
    names: Any = tuple(f"{base}.{part}" for part in spec.lpp.fields) if spec.lpp.fields else base
    spec.names[channel] = names
    return names


def _frame_error(payload: bytes, index: int, channel: int, type_byte: int | None) -> CodecError:
    size = len(payload)
    if type_byte is None:
        return CodecError(
            "truncated", f"byte {index}: channel {channel} has no type byte ({size}-byte frame)"
        )
    spec = _SPECS[type_byte]
    if spec is None:
        return CodecError(
            "unknown-type",
            f"byte {index + 1}: unknown type 0x{type_byte:02X} ({type_byte}) on channel {channel}",
        )
    left = size - index - 2
    return CodecError(
        "truncated",
        f"byte {index + 2}: {spec.lpp.name} on channel {channel} needs {spec.size} bytes, "
        f"{left} left in the {size}-byte frame",
    )


def decode_cayennelpp_values(payload: bytes) -> tuple[dict[str, Value], tuple[str, ...]]:
    """Decode a frame into flat canonical measurements and warnings (the hot path).

    Raises `CodecError` (`truncated`, `unknown-type`) for a frame that is not CayenneLPP; an
    empty frame gives no values. A channel and type sent twice keeps the last value and warns.
    """
    out: dict[str, Value] = {}
    warnings: list[str] | None = None
    size = len(payload)
    index = 0
    specs = _SPECS
    while index < size:
        if index + 2 > size:
            raise _frame_error(payload, index, payload[index], None)
        channel = payload[index]
        spec = specs[payload[index + 1]]
        start = index + 2
        end = start + (spec.size if spec is not None else 0)
        if spec is None or end > size:
            raise _frame_error(payload, index, channel, payload[index + 1])
        names = spec.names[channel] or _names(spec, channel)
        divisor = spec.divisor
        if not spec.multi:
            raw = spec.unpack(payload, start)[0]
            if names in out:
                warnings = _duplicate(warnings, names)
            out[names] = raw if divisor is None else raw / divisor
        else:
            parts = spec.unpack(payload, start)
            if divisor is not None:
                parts = (parts[0] / divisor, parts[1] / divisor, parts[2] / divisor)
            if names[0] in out:
                warnings = _duplicate(warnings, names[0].partition(".")[0])
            out[names[0]] = parts[0]
            out[names[1]] = parts[1]
            out[names[2]] = parts[2]
        index = end
    return out, (tuple(warnings) if warnings else ())


def _duplicate(warnings: list[str] | None, name: str) -> list[str]:
    found = warnings if warnings is not None else []
    found.append(f"{name}: sent twice in one frame, the last value is kept")
    return found


def decode_cayennelpp(payload: bytes) -> list[LppReading]:
    """Decode a frame into its readings in frame order, multi-value types as dicts.

    The inspection form (one entry per value, as CayenneLPP libraries list them); codecs use
    `decode_cayennelpp_values`. Raises `CodecError` like it.
    """
    readings: list[LppReading] = []
    size = len(payload)
    index = 0
    while index < size:
        if index + 2 > size:
            raise _frame_error(payload, index, payload[index], None)
        channel, type_byte = payload[index], payload[index + 1]
        spec = _SPECS[type_byte]
        start = index + 2
        if spec is None or start + spec.size > size:
            raise _frame_error(payload, index, channel, type_byte)
        flat, _ = decode_cayennelpp_values(payload[index : start + spec.size])
        lpp = spec.lpp
        value: int | float | dict[str, int | float]
        if lpp.fields:
            value = {field: _number(flat[f"{lpp.name}_{channel}.{field}"]) for field in lpp.fields}
        else:
            value = _number(flat[f"{lpp.name}_{channel}"])
        readings.append(LppReading(channel, lpp.type, lpp.name, value))
        index = start + spec.size
    return readings


def _number(value: Value) -> int | float:
    return cast("int | float", value)


# Encoding --------------------------------------------------------------------------------------


def _lpp_type(kind: int | str) -> LppType:
    if isinstance(kind, int) and not isinstance(kind, bool):
        found = LPP_TYPES.get(kind)
    else:
        canonical = canonical_cayenne_name(str(kind))
        found = _BY_NAME.get(canonical) if canonical else None
    if found is None:
        raise CodecError("bad-value", f"{kind!r} is not a CayenneLPP type")
    return found


def _quantise(value: object, divisor: int | None, size: int, signed: bool, what: str) -> int:
    if isinstance(value, bool):
        if divisor is not None:
            raise CodecError("bad-value", f"{what}: expected a number, got {value!r}")
        value = int(value)
    if not isinstance(value, int | float) or value != value:
        raise CodecError("bad-value", f"{what}: expected a number, got {value!r:.40}")
    raw = round(value * divisor) if divisor is not None else round(value)
    bits = 8 * size
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= raw <= high:
        scale = divisor or 1
        raise CodecError(
            "out-of-range",
            f"{what}: {value!r} is outside {low / scale:g}..{high / scale:g}",
        )
    return raw


def _encode_one(channel: int, lpp: LppType, value: object) -> bytes:
    what = f"{lpp.name}_{channel}"
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel <= 255:
        raise CodecError("bad-value", f"{what}: the channel must be 0..255")
    head = bytes((channel, lpp.type))
    if not lpp.fields:
        raw = _quantise(value, lpp.divisor, lpp.size, lpp.signed, what)
        return head + raw.to_bytes(lpp.size, "big", signed=lpp.signed)
    if isinstance(value, Mapping):
        missing = [field for field in lpp.fields if field not in value]
        if missing:
            raise CodecError("bad-value", f"{what}: missing {', '.join(missing)}")
        parts = [value[field] for field in lpp.fields]
    elif isinstance(value, list | tuple) and len(value) == len(lpp.fields):
        parts = list(value)
    else:
        raise CodecError("bad-value", f"{what}: expected an object with {', '.join(lpp.fields)}")
    part_size = lpp.size // len(lpp.fields)
    body = b"".join(
        _quantise(part, divisor, part_size, lpp.signed, f"{what}.{field}").to_bytes(
            part_size, "big", signed=lpp.signed
        )
        for part, field, divisor in zip(parts, lpp.fields, lpp.divisors, strict=True)
    )
    return head + body


def encode_cayennelpp(readings: Iterable[LppReading | tuple[int, int | str, Any]]) -> bytes:
    """Encode `(channel, type, value)` readings into a frame (for downlinks, tests, simulators).

    `type` is the type byte or a canonical or alias name; multi-value types take a mapping with
    their fields (`{"x": .., "y": .., "z": ..}`) or a 3-tuple. Values are rounded to the type's
    resolution. Raises `CodecError` (`bad-value`, `out-of-range`) naming the reading.
    """
    frame = bytearray()
    for reading in readings:
        kind: int | str = reading[1]
        value = reading.value if isinstance(reading, LppReading) else reading[2]
        frame += _encode_one(reading[0], _lpp_type(kind), value)
    return bytes(frame)


def encode_cayennelpp_measurements(values: Mapping[str, Value]) -> bytes:
    """Encode flat canonical measurements (`temperature_3`, `gps_1.latitude`...) into a frame.

    The inverse of the codec's output: `decode(encode_cayennelpp_measurements(m))` gives `m`
    back for values on the types' resolution. Parts of a multi-value type are gathered by name;
    readings keep the order of their first name.
    """
    grouped: dict[tuple[int, str], Any] = {}
    for name, value in values.items():
        base, dot, field = name.partition(".")
        kind, underscore, channel_text = base.rpartition("_")
        canonical = canonical_cayenne_name(kind) if underscore else None
        if canonical is None or not channel_text.isdigit():
            raise CodecError(
                "bad-value", f"{name!r} is not a CayenneLPP measurement name (<type>_<channel>)"
            )
        key = (int(channel_text), canonical)
        if dot:
            grouped.setdefault(key, {})[field] = value
        else:
            grouped[key] = value
    return encode_cayennelpp((channel, kind, value) for (channel, kind), value in grouped.items())


# Values decoded elsewhere -----------------------------------------------------------------------


def _round(value: object, divisor: int | None) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if divisor is None:
        return int(value) if isinstance(value, float) and value.is_integer() else value
    return round(value * divisor) / divisor


def _canonical_value(lpp: LppType, value: object) -> object:
    if lpp.fields and isinstance(value, Mapping):
        rounded = dict(value)
        for field, divisor in zip(lpp.fields, lpp.divisors, strict=True):
            if field in rounded:
                rounded[field] = _round(rounded[field], divisor)
        return rounded
    return _round(value, lpp.divisor)


def normalize_cayenne_object(decoded: Mapping[str, Any]) -> dict[str, Value]:
    """Flat canonical measurements from a CayenneLPP object decoded by someone else.

    Accepts `<name>_<channel>` keys (The Things Stack, ElectronicCats), objects keyed by channel
    (`{"temperatureSensor": {"3": 27.2}}`, ChirpStack) and bare names (`{"temperatureSensor":
    25}`, which stays without a channel: `temperature`). Names go through `CAYENNE_ALIASES`;
    numbers are rounded to the type's resolution, which removes float32 artefacts
    (27.200000762939453 → 27.2). Keys that are not CayenneLPP names are flattened unchanged.
    """
    out: dict[str, Value] = {}
    for key, value in decoded.items():
        base, underscore, channel = key.rpartition("_")
        canonical = canonical_cayenne_name(base) if underscore and channel.isdigit() else None
        if canonical is not None:
            _put(out, f"{canonical}_{channel}", _canonical_value(_BY_NAME[canonical], value))
            continue
        canonical = canonical_cayenne_name(key)
        if canonical is None:
            _put(out, key, value)
            continue
        lpp = _BY_NAME[canonical]
        if isinstance(value, Mapping) and value and all(str(k).isdigit() for k in value):
            for chan, item in value.items():
                _put(out, f"{canonical}_{chan}", _canonical_value(lpp, item))
        else:
            _put(out, canonical, _canonical_value(lpp, value))
    return out


def _put(out: dict[str, Value], name: str, value: object) -> None:
    if isinstance(value, Mapping | list | tuple):
        out.update(flatten({name: value}))
    elif value is None or isinstance(value, bool | int | float | str):
        out[name] = value
    else:
        raise CodecError("bad-output", f"{name}: {type(value).__name__} is not a JSON value")


# The codec -------------------------------------------------------------------------------------


class CayenneLPPCodec:
    """The `cayennelpp` codec: decodes the FRMPayload on any fPort (see the module docstring).

    Stateless and thread-safe.
    """

    name = "cayennelpp"

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        if config:  # the codec has no options
            raise CodecError(
                "bad-config",
                f"cayennelpp takes no options, got {', '.join(sorted(map(str, config)))}",
            )

    def decode(
        self, payload: bytes, /, *, f_port: int, uplink: Uplink | None = None
    ) -> Measurements:
        """Decode one frame; raises `CodecError` (`truncated`, `unknown-type`)."""
        values, warnings = decode_cayennelpp_values(payload)
        return Measurements(values, warnings)
