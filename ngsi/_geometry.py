"""GeoJSON geometries (RFC 7946) as NGSI-LD GeoProperty values.

A position is `[longitude, latitude]` or `[longitude, latitude, altitude]` in WGS 84 degrees
(longitude in [-180, 180], latitude in [-90, 90]). A LineString has at least two positions; a
Polygon is one or more closed linear rings (at least four positions, the last equal to the
first), the first ring the outer boundary. Numbers keep their JSON type: `[13, 52]` stays integers,
so a geometry writes back exactly as it was read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_serializer,
)

__all__ = [
    "GEOMETRY_TYPES",
    "Geometry",
    "LineString",
    "MultiLineString",
    "MultiPoint",
    "MultiPolygon",
    "Point",
    "Polygon",
    "is_geojson_geometry",
    "parse_geometry",
]

GEOMETRY_TYPES = frozenset(
    {"Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon"}
)

Number = int | float
Position = list[Number]


def is_geojson_geometry(obj: object) -> bool:
    """Whether `obj` has the shape of a GeoJSON geometry: an object with a `type` naming one of
    the six geometry types and a `coordinates` member. The coordinates are not checked."""
    if not isinstance(obj, dict):
        return False
    kind = obj.get("type")
    return kind.__class__ is str and kind in GEOMETRY_TYPES and "coordinates" in obj


def _number(value: object, where: str) -> Number:
    if value.__class__ is int or value.__class__ is float:
        number: Number = value
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError(f"{where} is {number}, not a finite number")
        return number
    raise ValueError(f"{where} must be a number, got {value!r}")


def _position(value: object, where: str) -> Position:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where} must be a position [longitude, latitude], got {value!r}")
    if len(value) not in (2, 3):
        raise ValueError(
            f"{where} has {len(value)} numbers; a position is [longitude, latitude] "
            "or [longitude, latitude, altitude]"
        )
    position = [_number(item, f"{where}[{index}]") for index, item in enumerate(value)]
    longitude, latitude = position[0], position[1]
    if not -180 <= longitude <= 180:
        raise ValueError(f"{where}: longitude {longitude} is outside [-180, 180]")
    if not -90 <= latitude <= 90:
        raise ValueError(
            f"{where}: latitude {latitude} is outside [-90, 90] "
            "(GeoJSON puts longitude first, then latitude)"
        )
    return position


def _positions(value: object, where: str, *, minimum: int, what: str) -> list[Position]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where} must be a list of positions, got {value!r}")
    if len(value) < minimum:
        raise ValueError(f"{where}: a {what} needs at least {minimum} positions, got {len(value)}")
    return [_position(item, f"{where}[{index}]") for index, item in enumerate(value)]


def _ring(value: object, where: str) -> list[Position]:
    ring = _positions(value, where, minimum=4, what="linear ring")
    if ring[0] != ring[-1]:
        raise ValueError(
            f"{where}: the linear ring is not closed (first position {ring[0]} differs from "
            f"last position {ring[-1]})"
        )
    return ring


def _polygon(value: object, where: str) -> list[list[Position]]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{where} must be a non-empty list of linear rings, got {value!r}")
    return [_ring(item, f"{where}[{index}]") for index, item in enumerate(value)]


def _list(value: object, where: str, what: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{where} must be a non-empty list of {what}, got {value!r}")
    return value


class _Geometry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bbox: list[Number] | None = None

    @field_validator("bbox", mode="before")
    @classmethod
    def _check_bbox(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, list | tuple) or len(value) not in (4, 6):
            raise ValueError(f"bbox must be a list of 4 or 6 numbers, got {value!r}")
        return [_number(item, f"bbox[{index}]") for index, item in enumerate(value)]

    @model_serializer(mode="plain")
    def _serialize(self) -> dict[str, Any]:
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The GeoJSON object."""
        data: dict[str, Any] = {
            "type": getattr(self, "type"),  # noqa: B009 - declared by each subclass
            "coordinates": _copy(getattr(self, "coordinates")),  # noqa: B009
        }
        if self.bbox is not None:
            data["bbox"] = list(self.bbox)
        return data


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


class Point(_Geometry):
    """A single position."""

    type: Literal["Point"] = "Point"
    coordinates: Position

    @field_validator("coordinates", mode="before")
    @classmethod
    def _check(cls, value: object) -> object:
        return _position(value, "coordinates")


class LineString(_Geometry):
    """Two or more positions joined by straight lines."""

    type: Literal["LineString"] = "LineString"
    coordinates: list[Position]

    @field_validator("coordinates", mode="before")
    @classmethod
    def _check(cls, value: object) -> object:
        return _positions(value, "coordinates", minimum=2, what="LineString")


class Polygon(_Geometry):
    """An outer linear ring and optional holes, each closed and of at least four positions."""

    type: Literal["Polygon"] = "Polygon"
    coordinates: list[list[Position]]

    @field_validator("coordinates", mode="before")
    @classmethod
    def _check(cls, value: object) -> object:
        return _polygon(value, "coordinates")


class MultiPoint(_Geometry):
    """One or more positions."""

    type: Literal["MultiPoint"] = "MultiPoint"
    coordinates: list[Position]

    @field_validator("coordinates", mode="before")
    @classmethod
    def _check(cls, value: object) -> object:
        return _positions(value, "coordinates", minimum=1, what="MultiPoint")


class MultiLineString(_Geometry):
    """One or more LineStrings."""

    type: Literal["MultiLineString"] = "MultiLineString"
    coordinates: list[list[Position]]

    @field_validator("coordinates", mode="before")
    @classmethod
    def _check(cls, value: object) -> object:
        where = "coordinates"
        lines = _list(value, where, "LineStrings")
        return [
            _positions(line, f"{where}[{index}]", minimum=2, what="LineString")
            for index, line in enumerate(lines)
        ]


class MultiPolygon(_Geometry):
    """One or more Polygons."""

    type: Literal["MultiPolygon"] = "MultiPolygon"
    coordinates: list[list[list[Position]]]

    @field_validator("coordinates", mode="before")
    @classmethod
    def _check(cls, value: object) -> object:
        where = "coordinates"
        polygons = _list(value, where, "Polygons")
        return [_polygon(polygon, f"{where}[{index}]") for index, polygon in enumerate(polygons)]


Geometry = Annotated[
    Point | LineString | Polygon | MultiPoint | MultiLineString | MultiPolygon,
    Field(discriminator="type"),
]
"""Any of the six GeoJSON geometries, told apart by `type`."""

_GEOMETRY_ADAPTER: TypeAdapter[Geometry] = TypeAdapter(Geometry)


def geometry_error_message(error: ValidationError) -> str:
    """A one-line reason from a geometry ValidationError (the first problem found)."""
    first = error.errors(include_url=False)[0]
    message = str(first.get("msg", "invalid geometry"))
    message = message.removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        return f"member {first['loc'][-1]!r} is not part of a GeoJSON geometry"
    if first.get("type") == "missing":
        return f"member {first['loc'][-1]!r} is missing"
    return message


def parse_geometry(obj: object) -> Geometry:
    """Validate a GeoJSON geometry object; raise ValueError saying what is wrong and where."""
    if isinstance(obj, _Geometry):
        return obj  # type: ignore[return-value]
    if not isinstance(obj, Mapping):
        raise ValueError(f"a geometry must be a GeoJSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind.__class__ is not str or kind not in GEOMETRY_TYPES:
        raise ValueError(
            f"geometry type {kind!r} is not one of {', '.join(sorted(GEOMETRY_TYPES))}"
        )
    if "coordinates" not in obj:
        raise ValueError(f"{kind} geometry has no 'coordinates'")
    try:
        return _GEOMETRY_ADAPTER.validate_python(dict(obj))
    except ValidationError as error:
        raise ValueError(f"invalid {kind}: {geometry_error_message(error)}") from None
