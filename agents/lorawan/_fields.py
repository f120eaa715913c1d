"""Typed reads of network-server JSON, with errors that name the field.

The parsers collect plain values and nested dicts and validate them into the event model in one
call at the end (pydantic builds nested models faster from dicts than from Python-made models).

Each reader takes the object, the key, and the dotted path of the object (used only to build the
error message). Absent keys and JSON `null` read as None. A value of the wrong JSON type raises
`UplinkError("malformed-message")`; times that do not parse are the exception: they are dropped
with a note in `warnings`, because a bad timestamp should not cost the reading.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agents.lorawan._errors import UplinkError
from agents.lorawan._eui import normalize_dev_addr, normalize_eui

__all__ = [
    "JsonObject",
    "at",
    "decode_base64",
    "json_kind",
    "opt_bool",
    "opt_dev_addr",
    "opt_eui",
    "opt_float",
    "opt_int",
    "opt_list",
    "opt_location",
    "opt_object",
    "opt_str",
    "opt_str_map",
    "opt_time",
    "str_list",
]

JsonObject = Mapping[str, Any]


def at(path: str, key: str) -> str:
    """`path.key`, or `key` at the top level."""
    return f"{path}.{key}" if path else key


def json_kind(value: object) -> str:
    """The JSON type name of a parsed value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r:.40}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _wrong(path: str, key: str, expected: str, value: object) -> UplinkError:
    field = at(path, key)
    return UplinkError(
        "malformed-message",
        f"{field}: expected {expected}, got {json_kind(value)}",
        field=field,
    )


def opt_object(obj: JsonObject, key: str, path: str) -> JsonObject | None:
    value = obj.get(key)
    if value is None or type(value) is dict:
        return value
    raise _wrong(path, key, "an object", value)


def opt_list(obj: JsonObject, key: str, path: str) -> list[Any]:
    """The array at `key`; an absent key or null is an empty list."""
    value = obj.get(key)
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise _wrong(path, key, "an array", value)


def opt_str(obj: JsonObject, key: str, path: str) -> str | None:
    """The string at `key`; the empty string reads as None (the servers omit it anyway)."""
    value = obj.get(key)
    if type(value) is str:
        return value or None
    if value is None:
        return None
    raise _wrong(path, key, "a string", value)


def opt_int(
    obj: JsonObject, key: str, path: str, *, lo: int = 0, hi: int | None = None
) -> int | None:
    """An integer; also from a decimal string (Protobuf-JSON writes 64-bit integers as strings)
    and from a float with no fraction. Checked against `lo` and `hi` (inclusive)."""
    value = obj.get(key)
    if value is None:
        return None
    number = value if type(value) is int else _integer(value)
    if number is None:
        raise _wrong(path, key, "an integer", value)
    if number < lo or (hi is not None and number > hi):
        bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        field = at(path, key)
        raise UplinkError(
            "malformed-message",
            f"{field}: expected an integer in {bound}, got {number}",
            field=field,
        )
    return number


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def opt_float(obj: JsonObject, key: str, path: str) -> float | None:
    """A number; also from a numeric string (bridges such as Helium's write coordinates so)."""
    value = obj.get(key)
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if number == number and number not in (float("inf"), float("-inf")):
                return number
    raise _wrong(path, key, "a number", value)


def opt_bool(obj: JsonObject, key: str, path: str) -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _wrong(path, key, "a boolean", value)


def str_list(obj: JsonObject, key: str, path: str) -> tuple[str, ...]:
    """An array of strings (correlation IDs, warnings) as a tuple."""
    items = opt_list(obj, key, path)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise _wrong(path, f"{key}[{index}]", "a string", item)
    return tuple(items)


def opt_str_map(obj: JsonObject, key: str, path: str) -> dict[str, str]:
    """An object of string values (tags, attributes); other scalar values are turned into text."""
    value = opt_object(obj, key, path)
    if not value:
        return {}
    result: dict[str, str] = {}
    for name, item in value.items():
        if isinstance(item, str):
            result[name] = item
        elif isinstance(item, bool | int | float):
            result[name] = str(item).lower() if isinstance(item, bool) else str(item)
        elif item is not None:
            raise _wrong(at(path, key), name, "a string", item)
    return result


def opt_time(obj: JsonObject, key: str, path: str, warnings: list[str]) -> datetime | None:
    """An RFC 3339 time in UTC (nanoseconds truncated to microseconds; no offset means UTC).

    A value that does not parse is dropped with a note in `warnings`.
    """
    value = obj.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=UTC)
            return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
    warnings.append(f"{at(path, key)}: not an RFC 3339 time ({json_kind(value)}), left out")
    return None


def opt_eui(obj: JsonObject, key: str, path: str) -> str | None:
    value = opt_str(obj, key, path)
    if value is None:
        return None
    try:
        return normalize_eui(value)
    except ValueError as error:
        field = at(path, key)
        raise UplinkError("bad-dev-eui", f"{field}: {error}", field=field) from None


def opt_dev_addr(obj: JsonObject, key: str, path: str) -> str | None:
    value = opt_str(obj, key, path)
    if value is None:
        return None
    try:
        return normalize_dev_addr(value)
    except ValueError as error:
        field = at(path, key)
        raise UplinkError("malformed-message", f"{field}: {error}", field=field) from None


def decode_base64(value: object, field: str) -> bytes:
    """Standard base64 (padding optional) to bytes; `bad-base64` naming `field` otherwise."""
    if isinstance(value, str):
        try:
            return binascii.a2b_base64(value + "=" * (-len(value) % 4), strict_mode=True)
        except binascii.Error:
            pass
    raise UplinkError(
        "bad-base64", f"{field}: expected base64, got {json_kind(value)}", field=field
    )


def opt_location(
    obj: JsonObject,
    path: str,
    *,
    latitude: str = "latitude",
    longitude: str = "longitude",
    altitude: str = "altitude",
    source: str | None = None,
    accuracy: str | None = None,
    warnings: list[str],
) -> dict[str, Any] | None:
    """A position from `obj` as `Location` fields, or None when a coordinate is missing.

    The servers omit zero values, so a location without one of its coordinates is treated as
    unset (a real (0, 0) position is in the Gulf of Guinea). Coordinates out of range are left out
    with a note in `warnings`.
    """
    lat = opt_float(obj, latitude, path)
    lon = opt_float(obj, longitude, path)
    if lat is None or lon is None:
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        warnings.append(f"{path}: coordinates ({lat}, {lon}) out of range, left out")
        return None
    return {
        "latitude": lat,
        "longitude": lon,
        "altitude": opt_float(obj, altitude, path),
        "accuracy": opt_float(obj, accuracy, path) if accuracy else None,
        "source": opt_str(obj, source, path) if source else None,
    }
