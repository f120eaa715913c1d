"""Reading device lists to import: CSV or JSON, one registration per row or object.

CSV needs a header row. Columns (case and `-`/`_` do not matter; `devEUI` and `dev_eui` are the
same column): `dev_eui` (required), `profile`, `name`, `description`, `measuring_point`,
`device_id`, `location` (`LON,LAT`, quoted) or `longitude` and `latitude`, `owner` (several
separated by `;`), `device_model`, `state`, `date_installed`. Empty cells are absent values.

JSON is a list of objects, or `{"devices": [...]}`, with the same keys (snake_case or camelCase)
and also `calibration` (a list of `{attribute, offset, scale, validFrom, validUntil,
entityType}`) and `location` as a GeoJSON geometry or `[lon, lat]`.

Every problem names the row (CSV, 1-based, the header is row 1) or the index (JSON) and the
DevEUI when known; good rows are kept.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from agents.registry._device import RegisteredDevice

__all__ = ["ImportProblem", "ParsedImport", "format_of", "parse_device_list", "parse_point"]

_KEYS = {
    "deveui": "dev_eui",
    "profile": "profile",
    "name": "name",
    "description": "description",
    "measuringpoint": "measuring_point",
    "deviceid": "device_id",
    "id": "device_id",
    "location": "location",
    "longitude": "longitude",
    "lon": "longitude",
    "latitude": "latitude",
    "lat": "latitude",
    "owner": "owner",
    "devicemodel": "device_model",
    "refdevicemodel": "device_model",
    "state": "state",
    "devicestate": "state",
    "dateinstalled": "date_installed",
    "installed": "date_installed",
    "calibration": "calibration",
    "controlledproperty": "controlled_property",
}


class ImportProblem(BaseModel):
    """A row (CSV, 1-based with the header as row 1) or item (JSON, 0-based) that was not read."""

    model_config = ConfigDict(frozen=True)

    where: str
    message: str
    dev_eui: str | None = None

    def __str__(self) -> str:
        device = f" ({self.dev_eui})" if self.dev_eui else ""
        return f"{self.where}{device}: {self.message}"


class ParsedImport(BaseModel):
    """The registrations read from a file, and the rows that could not be read."""

    model_config = ConfigDict(frozen=True)

    devices: list[RegisteredDevice]
    problems: list[ImportProblem]


def parse_point(text: str) -> dict[str, Any]:
    """`LON,LAT` (or `LON,LAT,ALT`) → a GeoJSON Point; `ValueError` saying what is expected."""
    parts = [part.strip() for part in text.split(",")]
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (2, 3):
        raise ValueError(f"{text!r} is not a location: expected LON,LAT such as 13.4050,52.5200")
    longitude, latitude = numbers[0], numbers[1]
    if not (-180 <= longitude <= 180 and -90 <= latitude <= 90):
        raise ValueError(
            f"{text!r} is not a location: longitude comes first (-180..180), then latitude "
            "(-90..90)"
        )
    return {"type": "Point", "coordinates": numbers}


def _key(name: str) -> str | None:
    return _KEYS.get(re.sub(r"[\s_-]", "", name).lower())


def _record(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    unknown = []
    for name, value in raw.items():
        key = _key(str(name))
        if key is None:
            unknown.append(str(name))
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        out[key] = value.strip() if isinstance(value, str) else value
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
    longitude, latitude = out.pop("longitude", None), out.pop("latitude", None)
    if longitude is not None or latitude is not None:
        if "location" in out:
            raise ValueError("give location or longitude/latitude, not both")
        out["location"] = parse_point(f"{longitude},{latitude}")
    location = out.get("location")
    if isinstance(location, str):
        out["location"] = parse_point(location)
    elif isinstance(location, list):
        out["location"] = parse_point(",".join(str(item) for item in location))
    owner = out.get("owner")
    if isinstance(owner, str):
        out["owner"] = [part.strip() for part in owner.split(";") if part.strip()]
    return out


def _parse_rows(
    rows: list[tuple[str, Mapping[str, Any]]],
    complete: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> ParsedImport:
    devices: list[RegisteredDevice] = []
    problems: list[ImportProblem] = []
    seen: dict[str, str] = {}
    for where, raw in rows:
        dev_eui = raw.get("dev_eui") or raw.get("devEUI") or raw.get("DevEUI")
        try:
            record = _record(raw)
            if complete is not None:
                record = complete(record)
            device = RegisteredDevice.model_validate(record)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(step) for step in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            problems.append(
                ImportProblem(
                    where=where,
                    message=f"{field}: {message}" if field else message,
                    dev_eui=str(dev_eui) if dev_eui else None,
                )
            )
            continue
        except ValueError as exc:
            problems.append(
                ImportProblem(
                    where=where, message=str(exc), dev_eui=str(dev_eui) if dev_eui else None
                )
            )
            continue
        if device.dev_eui in seen:
            problems.append(
                ImportProblem(
                    where=where,
                    message=f"the same DevEUI is in {seen[device.dev_eui]} already",
                    dev_eui=device.dev_eui,
                )
            )
            continue
        seen[device.dev_eui] = where
        devices.append(device)
    return ParsedImport(devices=devices, problems=problems)


def parse_device_list(
    data: bytes | str,
    *,
    format: str,
    complete: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> ParsedImport:
    """Read a device list in `format` (`csv` or `json`; see the module docstring).

    `complete(record)` may fill in fields before a row is validated (the registry uses it for
    the profile's controlledProperty). Raises `ValueError` when the file as a whole does not
    read (not JSON, no header, not a list).
    """
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    rows: list[tuple[str, Mapping[str, Any]]] = []
    if format == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise ValueError("the CSV file has no header row")
        missing = [name for name in reader.fieldnames if _key(name) is None]
        if missing:
            raise ValueError(f"unknown CSV column(s): {', '.join(missing)}")
        for number, row in enumerate(reader, start=2):
            rows.append((f"row {number}", {k: v for k, v in row.items() if k is not None}))
    elif format == "json":
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        if isinstance(document, dict) and isinstance(document.get("devices"), list):
            document = document["devices"]
        if not isinstance(document, list):
            raise ValueError('expected a JSON list of devices (or {"devices": [...]})')
        for index, item in enumerate(document):
            if not isinstance(item, dict):
                rows.append((f"item {index}", {"_": item}))
            else:
                rows.append((f"item {index}", item))
    else:
        raise ValueError(f"unknown format {format!r}: csv or json")
    return _parse_rows(rows, complete)


def format_of(path: Path) -> str:
    """`csv` or `json`, from the file name."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".json",):
        return "json"
    raise ValueError(f"{path}: cannot tell the format from the name; use .csv or .json")
