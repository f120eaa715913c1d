"""GeoJSON geometries: validation with precise reasons, exact write-back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from ngsi._geometry import (
    Geometry,
    LineString,
    MultiLineString,
    MultiPoint,
    MultiPolygon,
    Point,
    Polygon,
    is_geojson_geometry,
    parse_geometry,
)

SQUARE = [[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1], [13.0, 52.0]]
HOLE = [[13.02, 52.02], [13.05, 52.02], [13.05, 52.05], [13.02, 52.02]]

VALID: list[tuple[type[Any], dict[str, Any]]] = [
    (Point, {"type": "Point", "coordinates": [13.4, 52.5]}),
    (Point, {"type": "Point", "coordinates": [13, 52, 34.5]}),
    (Point, {"type": "Point", "coordinates": [-180, -90]}),
    (Point, {"type": "Point", "coordinates": [180, 90]}),
    (LineString, {"type": "LineString", "coordinates": [[13.4, 52.5], [13.5, 52.6]]}),
    (Polygon, {"type": "Polygon", "coordinates": [SQUARE]}),
    (Polygon, {"type": "Polygon", "coordinates": [SQUARE, HOLE]}),
    (MultiPoint, {"type": "MultiPoint", "coordinates": [[13.4, 52.5], [13.5, 52.6]]}),
    (
        MultiLineString,
        {"type": "MultiLineString", "coordinates": [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]},
    ),
    (MultiPolygon, {"type": "MultiPolygon", "coordinates": [[SQUARE], [SQUARE, HOLE]]}),
    (Point, {"type": "Point", "coordinates": [13.4, 52.5], "bbox": [13.4, 52.5, 13.4, 52.5]}),
]


@pytest.mark.parametrize(("cls", "data"), VALID)
def test_valid_geometries_parse_and_write_back_exactly(
    cls: type[Any], data: dict[str, Any]
) -> None:
    geometry = parse_geometry(data)
    assert isinstance(geometry, cls)
    assert geometry.to_dict() == data
    assert geometry.model_dump() == data
    # the JSON text too: integers stay integers
    assert json.dumps(geometry.to_dict()) == json.dumps(data)
    assert is_geojson_geometry(data)


def test_geometry_union_discriminates_by_type() -> None:
    adapter: TypeAdapter[Geometry] = TypeAdapter(Geometry)
    assert isinstance(adapter.validate_python(VALID[5][1]), Polygon)
    with pytest.raises(ValidationError):
        adapter.validate_python({"type": "Circle", "coordinates": [1, 2]})


def test_parse_geometry_returns_a_geometry_it_is_given() -> None:
    point = Point(coordinates=[1, 2])
    assert parse_geometry(point) is point


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "Point", "coordinates": [13.4, 92]}, "latitude 92 is outside [-90, 90]"),
        ({"type": "Point", "coordinates": [52.5, 190.0]}, "latitude 190.0 is outside"),
        ({"type": "Point", "coordinates": [-181, 52]}, "longitude -181 is outside [-180, 180]"),
        ({"type": "Point", "coordinates": [13.4]}, "coordinates has 1 numbers"),
        ({"type": "Point", "coordinates": [1, 2, 3, 4]}, "coordinates has 4 numbers"),
        (
            {"type": "Point", "coordinates": ["13.4", 52.5]},
            "coordinates[0] must be a number, got '13.4'",
        ),
        (
            {"type": "Point", "coordinates": [True, 52.5]},
            "coordinates[0] must be a number, got True",
        ),
        ({"type": "Point", "coordinates": [float("nan"), 52.5]}, "coordinates[0] is nan"),
        ({"type": "Point", "coordinates": 13}, "coordinates must be a position"),
        (
            {"type": "LineString", "coordinates": [[1, 2]]},
            "a LineString needs at least 2 positions, got 1",
        ),
        (
            {"type": "Polygon", "coordinates": [SQUARE[:-1]]},
            "coordinates[0]: the linear ring is not closed",
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]},
            "coordinates[0]: a linear ring needs at least 4 positions, got 3",
        ),
        (
            {"type": "Polygon", "coordinates": []},
            "coordinates must be a non-empty list of linear rings",
        ),
        ({"type": "MultiPoint", "coordinates": []}, "a MultiPoint needs at least 1 positions"),
        (
            {"type": "MultiLineString", "coordinates": [[[1, 2]]]},
            "coordinates[0]: a LineString needs",
        ),
        (
            {"type": "MultiPolygon", "coordinates": [[SQUARE[:-1]]]},
            "coordinates[0][0]: the linear ring",
        ),
        ({"type": "MultiPolygon", "coordinates": []}, "non-empty list of Polygons"),
        (
            {"type": "Point", "coordinates": [1, 2], "crs": "x"},
            "member 'crs' is not part of a GeoJSON",
        ),
        ({"type": "Point", "coordinates": [1, 2], "bbox": [1, 2]}, "bbox must be a list of 4 or 6"),
        ({"type": "Circle", "coordinates": [1, 2]}, "geometry type 'Circle' is not one of"),
        ({"type": "GeometryCollection", "geometries": []}, "geometry type 'GeometryCollection'"),
        ({"coordinates": [1, 2]}, "geometry type None is not one of"),
        ({"type": "Point"}, "Point geometry has no 'coordinates'"),
    ],
)
def test_invalid_geometries_name_the_problem(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_geometry(data)
    assert message in str(caught.value)
    assert not isinstance(caught.value, ValidationError)


def test_parse_geometry_refuses_non_objects() -> None:
    with pytest.raises(ValueError, match="a geometry must be a GeoJSON object, got list"):
        parse_geometry([13.4, 52.5])


def test_geometry_error_names_the_kind() -> None:
    with pytest.raises(ValueError, match=r"^invalid Polygon: coordinates\[0\]: the linear ring"):
        parse_geometry({"type": "Polygon", "coordinates": [SQUARE[:-1]]})


def test_geometries_are_immutable() -> None:
    point = Point(coordinates=[1, 2])
    with pytest.raises(ValidationError):
        point.coordinates = [3, 4]  # type: ignore[misc]


@pytest.mark.parametrize(
    "value",
    [
        {"type": "Point"},
        {"type": "PostalAddress", "coordinates": [1, 2]},
        {"type": ["Point"], "coordinates": [1, 2]},
        [13.4, 52.5],
        "Point",
    ],
)
def test_is_geojson_geometry_is_about_shape(value: object) -> None:
    assert not is_geojson_geometry(value)
