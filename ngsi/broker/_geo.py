"""Geo-queries evaluated with shapely: near (geodesic metres), within, contains, intersects,
disjoint, equals, overlaps, on Point, LineString and Polygon (and their Multi forms).

Coordinates are WGS 84 `[longitude, latitude]`. The topological relations are evaluated on the
plane of degrees, as GeoJSON and the NGSI-LD brokers do. `near` measures in metres on the sphere
(haversine, mean Earth radius 6,371,008.8 m): from the query point to the nearest point of the
entity's geometry (0 when the point lies inside a polygon).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.ops import nearest_points

from ngsi._errors import BadRequestData
from ngsi._geoquery import GeoQuery, parse_geoquery

__all__ = [
    "EARTH_RADIUS_M",
    "GeoFilter",
    "geo_filter_from_params",
    "geo_filter_from_query",
    "haversine_m",
]

EARTH_RADIUS_M = 6_371_008.8

_RELATIONS = frozenset(
    {"near", "within", "contains", "intersects", "disjoint", "equals", "overlaps"}
)


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two WGS 84 positions."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _distance_m(point: Any, geometry: Any) -> float:
    if geometry.geom_type == "Point":
        return haversine_m(point.x, point.y, geometry.x, geometry.y)
    if geometry.geom_type in ("Polygon", "MultiPolygon") and geometry.covers(point):
        return 0.0
    if geometry.geom_type == "MultiPoint":
        return min(haversine_m(point.x, point.y, p.x, p.y) for p in geometry.geoms)
    nearest = nearest_points(point, geometry)[1]
    return haversine_m(point.x, point.y, nearest.x, nearest.y)


@dataclass(frozen=True, kw_only=True)
class GeoFilter:
    """One geo-query: relation, query geometry (GeoJSON), expanded geo-property name.

    `min_distance`/`max_distance` (metres) apply to `near` only; one of them is required there.
    """

    relation: str
    geometry: Mapping[str, Any]
    geoproperty: str
    min_distance: float | None = None
    max_distance: float | None = None

    def __post_init__(self) -> None:
        if self.relation not in _RELATIONS:
            raise BadRequestData(
                f"georel {self.relation!r} is not one of {', '.join(sorted(_RELATIONS))}"
            )
        if self.relation == "near":
            if self.min_distance is None and self.max_distance is None:
                raise BadRequestData("georel near needs maxDistance or minDistance (metres)")
            if self.geometry.get("type") != "Point":
                raise BadRequestData("georel near needs a Point geometry")

    def predicate(self) -> Callable[[Mapping[str, Any]], bool]:
        """A test for stored documents: does the entity's geo-property satisfy the relation?"""
        try:
            query = shape(self.geometry)
        except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException) as exc:
            raise BadRequestData(f"geo-query geometry is not valid: {exc}") from None
        shapely.prepare(query)
        relation = self.relation
        name = self.geoproperty
        low, high = self.min_distance, self.max_distance

        def test(geometry: Any) -> bool:
            if relation == "near":
                distance = _distance_m(query, geometry)
                if high is not None and distance > high:
                    return False
                return not (low is not None and distance < low)
            if relation == "within":
                return bool(query.covers(geometry))
            if relation == "contains":
                return bool(geometry.covers(query))
            if relation == "intersects":
                return bool(query.intersects(geometry))
            if relation == "disjoint":
                return bool(query.disjoint(geometry))
            if relation == "equals":
                return bool(geometry.equals(query))
            return bool(geometry.overlaps(query))

        def matches(doc: Mapping[str, Any]) -> bool:
            attribute = doc.get(name)
            if attribute is None:
                return False
            for instance in attribute if isinstance(attribute, list) else [attribute]:
                value = instance.get("value") if isinstance(instance, dict) else None
                if not isinstance(value, dict):
                    continue
                try:
                    geometry = shape(value)
                except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException):
                    continue
                if test(geometry):
                    return True
            return False

        return matches


def geo_filter_from_params(
    *,
    georel: str | None,
    geometry: str | None,
    coordinates: Any,
    geoproperty: str,
) -> GeoFilter:
    """A `GeoFilter` from the geo-query members (`georel`, `geometry`, `coordinates` as JSON
    text or an already parsed array), parsed by `ngsi._geoquery.parse_geoquery`; `geoproperty`
    is expanded already. BadRequestData when anything is missing or malformed."""
    query = parse_geoquery(georel=georel, geometry=geometry, coordinates=coordinates)
    return geo_filter_from_query(query, geoproperty=geoproperty)


def geo_filter_from_query(query: GeoQuery, *, geoproperty: str) -> GeoFilter:
    """A `GeoFilter` for a parsed `GeoQuery`; `geoproperty` is the expanded name to test."""
    return GeoFilter(
        relation=query.georel.relation.value,
        geometry=query.geojson,
        geoproperty=geoproperty,
        min_distance=query.georel.min_distance,
        max_distance=query.georel.max_distance,
    )
