"""NGSI-LD geo-queries (`geoQ`, ETSI GS CIM 009 clause 4.10): parsed, validated, printed.

A geo-query has four parts, given as query parameters (`georel`, `geometry`, `coordinates` as
JSON text, `geoproperty`) or as a subscription's `geoQ` object (`coordinates` as a JSON array
or as JSON text):

    georel      = "near;maxDistance==" number     distances in metres, >= 0; both distances
                / "near;minDistance==" number     may be given ("near;maxDistance==500;
                / "within" / "contains" / "intersects" / "overlaps" / "disjoint" / "equals"
                                                   minDistance==100"), near needs a Point
    geometry    = Point / MultiPoint / LineString / MultiLineString / Polygon / MultiPolygon
    coordinates = the GeoJSON coordinates of that geometry, [longitude, latitude(, altitude)]
    geoproperty = the GeoProperty to test, "location" when not given

Evaluating the relation is the broker's job (with shapely: `shapely.geometry.shape(q.geojson)`).
Every problem raises InvalidQuery (a BadRequestData on the wire, as NGSI-LD prescribes for an
invalid geo-query) naming the field and what was expected.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeAlias

from ngsi._query import InvalidQuery, _is_printable_name

__all__ = [
    "DEFAULT_GEOPROPERTY",
    "GeoQuery",
    "GeoRel",
    "GeoRelation",
    "GeometryType",
    "format_georel",
    "parse_geoquery",
    "parse_georel",
]

DEFAULT_GEOPROPERTY = "location"


class GeoRelation(StrEnum):
    """The spatial relation of a georel, valued by its spelling."""

    NEAR = "near"
    WITHIN = "within"
    CONTAINS = "contains"
    INTERSECTS = "intersects"
    OVERLAPS = "overlaps"
    DISJOINT = "disjoint"
    EQUALS = "equals"


class GeometryType(StrEnum):
    """The GeoJSON geometry types a geo-query accepts."""

    POINT = "Point"
    MULTI_POINT = "MultiPoint"
    LINE_STRING = "LineString"
    MULTI_LINE_STRING = "MultiLineString"
    POLYGON = "Polygon"
    MULTI_POLYGON = "MultiPolygon"


Coordinates: TypeAlias = tuple[Any, ...]
"""GeoJSON coordinates as nested tuples of floats (a position is `(lon, lat)` or with altitude)."""


def _format_distance(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True, slots=True)
class GeoRel:
    """A georel: the relation and, for `near`, the distance bounds in metres."""

    relation: GeoRelation
    max_distance: float | None = None
    min_distance: float | None = None

    def __post_init__(self) -> None:
        relation = GeoRelation(self.relation)
        object.__setattr__(self, "relation", relation)
        for name, spelling in (("max_distance", "maxDistance"), ("min_distance", "minDistance")):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{spelling} must be a number of metres, got {value!r}")
            try:
                metres = float(value)
            except OverflowError:
                metres = math.inf
            if not math.isfinite(metres) or metres < 0:
                raise ValueError(f"{spelling} must be a number of metres >= 0, got {metres!r}")
            object.__setattr__(self, name, metres)
        has_distance = self.max_distance is not None or self.min_distance is not None
        if relation is GeoRelation.NEAR and not has_distance:
            raise ValueError("near needs maxDistance or minDistance ('near;maxDistance==1000')")
        if relation is not GeoRelation.NEAR and has_distance:
            raise ValueError(f"{relation.value} takes no distance; only near does")
        if (
            self.max_distance is not None
            and self.min_distance is not None
            and self.min_distance > self.max_distance
        ):
            raise ValueError(
                f"minDistance {_format_distance(self.min_distance)} is greater than "
                f"maxDistance {_format_distance(self.max_distance)}"
            )

    def __str__(self) -> str:
        return format_georel(self)


_NEAR_PART = re.compile(r"(maxDistance|minDistance)==(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)")


def parse_georel(text: str) -> GeoRel:
    """Parse `near;maxDistance==1000`, `within`, ... Raises InvalidQuery naming georel."""
    if not isinstance(text, str):
        raise InvalidQuery(f"georel: expected a string, got {type(text).__name__}")
    parts = text.strip().split(";")
    name = parts[0].strip()
    try:
        relation = GeoRelation(name)
    except ValueError:
        expected = ", ".join(r.value for r in GeoRelation)
        raise InvalidQuery(
            f"georel: unknown relation {name!r}; expected one of {expected}"
        ) from None
    distances: dict[str, float] = {}
    for part in parts[1:]:
        part = part.strip()
        m = _NEAR_PART.fullmatch(part)
        if m is None:
            hint = ""
            if ":" in part or ("=" in part and "==" not in part):
                hint = " (write 'maxDistance==1000')"
            raise InvalidQuery(
                f"georel: expected maxDistance==<metres> or minDistance==<metres> after "
                f"'{relation.value};', got {part!r}{hint}"
            )
        key, number = m.groups()
        if key in distances:
            raise InvalidQuery(f"georel: {key} given twice in {_show(text)}")
        distances[key] = float(number)
    try:
        return GeoRel(
            relation,
            max_distance=distances.get("maxDistance"),
            min_distance=distances.get("minDistance"),
        )
    except ValueError as exc:
        raise InvalidQuery(f"georel: {exc} in {_show(text)}") from None


def format_georel(georel: GeoRel) -> str:
    """The georel text: `near;maxDistance==1000`, `within`, ... (max before min)."""
    text = georel.relation.value
    if georel.max_distance is not None:
        text += f";maxDistance=={_format_distance(georel.max_distance)}"
    if georel.min_distance is not None:
        text += f";minDistance=={_format_distance(georel.min_distance)}"
    return text


# --------------------------------------------------------------------------------------------
# coordinates


def _position(value: Any, where: str) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or len(value) not in (2, 3):
        raise ValueError(f"{where}: a position is [longitude, latitude], got {_show(value)}")
    numbers: list[float] = []
    for number in value:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError(f"{where}: positions hold numbers, got {_show(value)}")
        try:
            numbers.append(float(number))
        except OverflowError:
            numbers.append(math.inf)
        if not math.isfinite(numbers[-1]):
            raise ValueError(f"{where}: positions hold finite numbers, got {_show(value)}")
    lon, lat = numbers[0], numbers[1]
    if not -180.0 <= lon <= 180.0:
        raise ValueError(f"{where}: longitude {value[0]} is outside -180..180 in {_show(value)}")
    if not -90.0 <= lat <= 90.0:
        raise ValueError(
            f"{where}: latitude {value[1]} is outside -90..90 in {_show(value)} "
            "(GeoJSON puts longitude first)"
        )
    return tuple(numbers)


def _array(value: Any, where: str, what: str, minimum: int) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where}: expected an array of {what}, got {_show(value)}")
    if len(value) < minimum:
        raise ValueError(f"{where}: expected at least {minimum} {what}, got {len(value)}")
    return value


def _line(value: Any, where: str) -> tuple[tuple[float, ...], ...]:
    items = _array(value, where, "positions", 2)
    return tuple(_position(p, where) for p in items)


def _ring(value: Any, where: str) -> tuple[tuple[float, ...], ...]:
    items = _array(value, where, "positions in a linear ring", 4)
    ring = tuple(_position(p, where) for p in items)
    if ring[0] != ring[-1]:
        raise ValueError(
            f"{where}: a linear ring must end where it starts, {_show(list(ring[0]))} "
            f"!= {_show(list(ring[-1]))}"
        )
    return ring


def _polygon(value: Any, where: str) -> tuple[tuple[tuple[float, ...], ...], ...]:
    items = _array(value, where, "linear rings", 1)
    return tuple(_ring(r, where) for r in items)


def _coordinates(geometry: GeometryType, value: Any) -> Coordinates:
    where = f"coordinates ({geometry.value})"
    if geometry is GeometryType.POINT:
        return _position(value, where)
    if geometry is GeometryType.MULTI_POINT:
        return tuple(_position(p, where) for p in _array(value, where, "positions", 1))
    if geometry is GeometryType.LINE_STRING:
        return _line(value, where)
    if geometry is GeometryType.MULTI_LINE_STRING:
        return tuple(_line(v, where) for v in _array(value, where, "line strings", 1))
    if geometry is GeometryType.POLYGON:
        return _polygon(value, where)
    return tuple(_polygon(v, where) for v in _array(value, where, "polygons", 1))


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _as_lists(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_as_lists(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# the query


@dataclass(frozen=True, slots=True)
class GeoQuery:
    """A validated geo-query.

    `coordinates` are nested tuples of floats in GeoJSON order (longitude first); lists given to
    the constructor are converted. `geojson` is the reference geometry as a GeoJSON dict.
    """

    georel: GeoRel
    geometry: GeometryType
    coordinates: Coordinates
    geoproperty: str = DEFAULT_GEOPROPERTY

    def __post_init__(self) -> None:
        if not isinstance(self.georel, GeoRel):
            raise TypeError(f"georel must be a GeoRel (parse_georel), got {self.georel!r}")
        geometry = GeometryType(self.geometry)
        object.__setattr__(self, "geometry", geometry)
        object.__setattr__(self, "coordinates", _coordinates(geometry, self.coordinates))
        if not isinstance(self.geoproperty, str) or not self.geoproperty:
            raise ValueError(f"geoproperty must be a non-empty name, got {self.geoproperty!r}")
        if self.georel.relation is GeoRelation.NEAR and geometry is not GeometryType.POINT:
            raise ValueError(
                f"georel: near measures the distance to a Point, got geometry {geometry.value}"
            )

    @property
    def geojson(self) -> dict[str, Any]:
        """`{"type": "Point", "coordinates": [8.1, 50.2]}`, ready for `shapely.geometry.shape`."""
        return {"type": self.geometry.value, "coordinates": _as_lists(self.coordinates)}

    def coordinates_json(self) -> str:
        """The coordinates as compact JSON text, the form of the `coordinates` query parameter."""
        return json.dumps(_as_lists(self.coordinates), separators=(",", ":"))

    def to_params(self) -> dict[str, str]:
        """Query parameters: georel, geometry, coordinates, and geoproperty unless `location`."""
        params = {
            "georel": format_georel(self.georel),
            "geometry": self.geometry.value,
            "coordinates": self.coordinates_json(),
        }
        if self.geoproperty != DEFAULT_GEOPROPERTY:
            params["geoproperty"] = self.geoproperty
        return params

    def to_object(self) -> dict[str, Any]:
        """The `geoQ` member of a subscription (coordinates as a JSON array)."""
        body: dict[str, Any] = {
            "geometry": self.geometry.value,
            "coordinates": _as_lists(self.coordinates),
            "georel": format_georel(self.georel),
        }
        if self.geoproperty != DEFAULT_GEOPROPERTY:
            body["geoproperty"] = self.geoproperty
        return body

    def map_attributes(self, fn: Callable[[str], str]) -> GeoQuery:
        """The same query with `fn` applied to the geoproperty name (to expand it to an IRI)."""
        return GeoQuery(self.georel, self.geometry, self.coordinates, fn(self.geoproperty))


_GEOMETRY_BY_LOWER = {g.value.lower(): g for g in GeometryType}
_OBJECT_MEMBERS = ("geometry", "coordinates", "georel", "geoproperty")


def parse_geoquery(
    geo_q: Mapping[str, Any] | None = None,
    /,
    *,
    georel: str | None = None,
    geometry: str | None = None,
    coordinates: str | list[Any] | tuple[Any, ...] | None = None,
    geoproperty: str | None = None,
) -> GeoQuery:
    """Validate a geo-query given as query parameters or as a subscription's `geoQ` object.

        parse_geoquery(georel="near;maxDistance==2000", geometry="Point",
                       coordinates="[8.68,50.11]")
        parse_geoquery({"georel": "within", "geometry": "Polygon", "coordinates": [[...]]})

    `coordinates` is JSON text or an already decoded array. Raises InvalidQuery naming the field
    (`georel`, `geometry`, `coordinates`, `geoproperty`; `geoQ.<member>` for the object form).
    """
    prefix = ""
    if geo_q is not None:
        if not isinstance(geo_q, Mapping):
            raise InvalidQuery(f"geoQ: expected a JSON object, got {_show(geo_q)}")
        if any(v is not None for v in (georel, geometry, coordinates, geoproperty)):
            raise TypeError("pass either a geoQ object or the separate fields, not both")
        unknown = [k for k in geo_q if k not in _OBJECT_MEMBERS]
        if unknown:
            raise InvalidQuery(
                f"geoQ: unknown member {unknown[0]!r}; expected {', '.join(_OBJECT_MEMBERS)}"
            )
        prefix = "geoQ."
        georel = geo_q.get("georel")
        geometry = geo_q.get("geometry")
        coordinates = geo_q.get("coordinates")
        geoproperty = geo_q.get("geoproperty")

    missing = [
        prefix + name
        for name, value in (
            ("georel", georel),
            ("geometry", geometry),
            ("coordinates", coordinates),
        )
        if value is None
    ]
    if missing:
        raise InvalidQuery(
            f"geo-query incomplete: {', '.join(missing)} missing "
            "(georel, geometry and coordinates go together)"
        )

    if not isinstance(georel, str):
        raise InvalidQuery(f"{prefix}georel: expected a string, got {_show(georel)}")
    try:
        rel = parse_georel(georel)
    except InvalidQuery as exc:
        raise InvalidQuery(f"{prefix}{exc.detail}") from None

    if not isinstance(geometry, str) or geometry.strip().lower() not in _GEOMETRY_BY_LOWER:
        expected = ", ".join(g.value for g in GeometryType)
        raise InvalidQuery(
            f"{prefix}geometry: unknown geometry {_show(geometry)}; expected one of {expected}"
        )
    geometry_type = _GEOMETRY_BY_LOWER[geometry.strip().lower()]

    decoded: Any = coordinates
    if isinstance(coordinates, str):
        try:
            decoded = json.loads(coordinates)
        except ValueError:
            raise InvalidQuery(
                f"{prefix}coordinates: not a JSON array: {_show(coordinates)} "
                "(write for example [8.68,50.11])"
            ) from None
    if not isinstance(decoded, list | tuple):
        raise InvalidQuery(f"{prefix}coordinates: expected a JSON array, got {_show(decoded)}")

    if geoproperty is None:
        geoproperty = DEFAULT_GEOPROPERTY
    elif not isinstance(geoproperty, str) or not _is_printable_name(geoproperty):
        raise InvalidQuery(
            f"{prefix}geoproperty: expected an attribute name such as 'location', "
            f"got {_show(geoproperty)}"
        )

    try:
        return GeoQuery(rel, geometry_type, tuple(decoded), geoproperty)
    except ValueError as exc:
        raise InvalidQuery(f"{prefix}{exc}") from None
