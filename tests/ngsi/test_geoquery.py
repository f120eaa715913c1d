"""geoQ: georel parsing and printing, geometry and coordinate validation, both input forms."""

from __future__ import annotations

import json
from typing import Any

import pytest
import shapely.geometry
from hypothesis import given, settings
from hypothesis import strategies as st

from ngsi._errors import BadRequestData
from ngsi._geoquery import (
    GeometryType,
    GeoQuery,
    GeoRel,
    GeoRelation,
    format_georel,
    parse_geoquery,
    parse_georel,
)
from ngsi._query import InvalidQuery

SQUARE = [[[8.0, 50.0], [9.0, 50.0], [9.0, 51.0], [8.0, 51.0], [8.0, 50.0]]]


@pytest.mark.parametrize(
    ("text", "georel"),
    [
        ("near;maxDistance==2000", GeoRel(GeoRelation.NEAR, max_distance=2000)),
        ("near;minDistance==10.5", GeoRel(GeoRelation.NEAR, min_distance=10.5)),
        (
            "near;minDistance==100;maxDistance==500",
            GeoRel(GeoRelation.NEAR, max_distance=500, min_distance=100),
        ),
        ("near;maxDistance==0", GeoRel(GeoRelation.NEAR, max_distance=0)),
        ("within", GeoRel(GeoRelation.WITHIN)),
        ("contains", GeoRel(GeoRelation.CONTAINS)),
        ("intersects", GeoRel(GeoRelation.INTERSECTS)),
        ("overlaps", GeoRel(GeoRelation.OVERLAPS)),
        ("disjoint", GeoRel(GeoRelation.DISJOINT)),
        ("equals", GeoRel(GeoRelation.EQUALS)),
    ],
)
def test_georels_parse_and_print(text: str, georel: GeoRel) -> None:
    assert parse_georel(text) == georel
    assert parse_georel(format_georel(georel)) == georel
    assert str(georel) == format_georel(georel)


def test_georel_canonical_text() -> None:
    assert format_georel(parse_georel("near;minDistance==100;maxDistance==500.0")) == (
        "near;maxDistance==500;minDistance==100"
    )
    assert format_georel(GeoRel(GeoRelation.NEAR, max_distance=12.25)) == "near;maxDistance==12.25"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("near", "georel: near needs maxDistance or minDistance"),
        ("inside", "georel: unknown relation 'inside'; expected one of near, within"),
        ("near;maxDistance:1000", "(write 'maxDistance==1000')"),
        ("near;maxDistance=1000", "(write 'maxDistance==1000')"),
        ("near;distance==5", "expected maxDistance==<metres> or minDistance==<metres>"),
        ("near;maxDistance==-5", "georel: maxDistance must be a number of metres >= 0, got -5"),
        ("near;maxDistance==1;maxDistance==2", "georel: maxDistance given twice"),
        ("within;maxDistance==5", "georel: within takes no distance; only near does"),
        ("near;minDistance==9;maxDistance==5", "minDistance 9 is greater than maxDistance 5"),
    ],
)
def test_georel_errors(text: str, message: str) -> None:
    with pytest.raises(BadRequestData) as caught:
        parse_georel(text)
    assert message in (caught.value.detail or "")
    assert caught.value.status_code == 400


def test_query_parameter_form() -> None:
    query = parse_geoquery(
        georel="near;maxDistance==2000", geometry="Point", coordinates="[8.68, 50.11]"
    )
    assert query == GeoQuery(
        GeoRel(GeoRelation.NEAR, max_distance=2000), GeometryType.POINT, (8.68, 50.11)
    )
    assert query.geoproperty == "location"
    assert query.to_params() == {
        "georel": "near;maxDistance==2000",
        "geometry": "Point",
        "coordinates": "[8.68,50.11]",
    }
    assert parse_geoquery(**query.to_params()) == query


def test_subscription_object_form() -> None:
    body = {
        "geometry": "Polygon",
        "coordinates": SQUARE,
        "georel": "within",
        "geoproperty": "observationSpace",
    }
    query = parse_geoquery(body)
    assert query.geometry is GeometryType.POLYGON
    assert query.geoproperty == "observationSpace"
    assert query.to_object() == body
    assert parse_geoquery(query.to_object()) == query
    assert parse_geoquery({**body, "coordinates": json.dumps(SQUARE)}) == query
    assert query.to_params()["geoproperty"] == "observationSpace"


@pytest.mark.parametrize(
    ("geometry", "coordinates"),
    [
        ("Point", [8.1, 50.2]),
        ("Point", [8.1, 50.2, 120.0]),
        ("MultiPoint", [[8.1, 50.2], [8.2, 50.3]]),
        ("LineString", [[8.1, 50.2], [8.2, 50.3], [8.3, 50.3]]),
        ("MultiLineString", [[[8.1, 50.2], [8.2, 50.3]], [[9.0, 51.0], [9.1, 51.1]]]),
        ("Polygon", SQUARE),
        (
            "Polygon",
            [
                SQUARE[0],
                [[8.2, 50.2], [8.4, 50.2], [8.4, 50.4], [8.2, 50.2]],
            ],
        ),
        ("MultiPolygon", [SQUARE, [[[10, 50], [11, 50], [11, 51], [10, 50]]]]),
    ],
)
def test_geometries_validate_and_feed_shapely(geometry: str, coordinates: list[Any]) -> None:
    query = parse_geoquery(
        georel="intersects", geometry=geometry, coordinates=json.dumps(coordinates)
    )
    assert query.geojson == {"type": geometry, "coordinates": coordinates}
    shape = shapely.geometry.shape(query.geojson)
    assert shape.is_valid
    assert shape.geom_type == geometry
    assert json.loads(query.coordinates_json()) == coordinates


def test_geometry_names_are_case_insensitive() -> None:
    query = parse_geoquery(georel="within", geometry="polygon", coordinates=SQUARE)
    assert query.geometry is GeometryType.POLYGON


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"georel": "within", "geometry": "Point"},
            "geo-query incomplete: coordinates missing",
        ),
        ({"geometry": "Point", "coordinates": "[1,2]"}, "georel missing"),
        ({"georel": "inside", "geometry": "Point", "coordinates": "[1,2]"}, "georel: unknown"),
        (
            {"georel": "within", "geometry": "Circle", "coordinates": "[1,2]"},
            'geometry: unknown geometry "Circle"; expected one of Point, MultiPoint',
        ),
        (
            {"georel": "within", "geometry": "Point", "coordinates": "8.1,50.2"},
            'coordinates: not a JSON array: "8.1,50.2"',
        ),
        (
            {"georel": "within", "geometry": "Point", "coordinates": '{"a": 1}'},
            "coordinates: expected a JSON array",
        ),
        (
            {"georel": "within", "geometry": "Point", "coordinates": "[1]"},
            "coordinates (Point): a position is [longitude, latitude], got [1]",
        ),
        (
            {"georel": "within", "geometry": "Point", "coordinates": '[1, "2"]'},
            "coordinates (Point): positions hold numbers",
        ),
        (
            {"georel": "within", "geometry": "Point", "coordinates": "[50.1, 95.0]"},
            "latitude 95.0 is outside -90..90 in [50.1,95.0] (GeoJSON puts longitude first)",
        ),
        (
            {"georel": "within", "geometry": "Point", "coordinates": "[190, 10]"},
            "longitude 190 is outside -180..180",
        ),
        (
            {"georel": "within", "geometry": "Point", "coordinates": "[1" + "0" * 400 + ", 0]"},
            "coordinates (Point): positions hold finite numbers",
        ),
        (
            {"georel": "within", "geometry": "LineString", "coordinates": "[[1, 2]]"},
            "coordinates (LineString): expected at least 2 positions, got 1",
        ),
        (
            {
                "georel": "within",
                "geometry": "Polygon",
                "coordinates": "[[[0,0],[1,0],[1,1],[0,1]]]",
            },
            "coordinates (Polygon): a linear ring must end where it starts",
        ),
        (
            {"georel": "within", "geometry": "Polygon", "coordinates": "[[[0,0],[1,0],[0,0]]]"},
            "expected at least 4 positions in a linear ring, got 3",
        ),
        (
            {"georel": "within", "geometry": "MultiPolygon", "coordinates": "[]"},
            "coordinates (MultiPolygon): expected at least 1 polygons, got 0",
        ),
        (
            {"georel": "near;maxDistance==10", "geometry": "Polygon", "coordinates": SQUARE},
            "georel: near measures the distance to a Point, got geometry Polygon",
        ),
        (
            {"georel": "within", "geometry": "Point", "coordinates": "[1,2]", "geoproperty": ""},
            "geoproperty: expected an attribute name such as 'location'",
        ),
        (
            {
                "georel": "within",
                "geometry": "Point",
                "coordinates": "[1,2]",
                "geoproperty": "a b",
            },
            "geoproperty: expected an attribute name",
        ),
    ],
)
def test_parameter_errors_name_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequestData) as caught:
        parse_geoquery(**fields)
    assert message in (caught.value.detail or "")
    assert caught.value.to_problem()["type"].endswith("/BadRequestData")
    assert isinstance(caught.value, InvalidQuery)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"geometry": "Point", "coordinates": [1, 2]}, "geoQ.georel missing"),
        (
            {"georel": "within", "geometry": "Point", "coordinates": [1, 2], "coords": [1]},
            "geoQ: unknown member 'coords'",
        ),
        (
            {"georel": "within", "geometry": "Point", "coordinates": [1, True]},
            "geoQ.coordinates (Point): positions hold numbers",
        ),
        (
            {"georel": 5, "geometry": "Point", "coordinates": [1, 2]},
            "geoQ.georel: expected a string",
        ),
        ({"georel": "near", "geometry": "Point", "coordinates": [1, 2]}, "geoQ.georel: near needs"),
        (
            {"georel": "within", "geometry": ["Point"], "coordinates": [1, 2]},
            "geoQ.geometry: unknown geometry",
        ),
    ],
)
def test_object_errors_name_the_member(body: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequestData) as caught:
        parse_geoquery(body)
    assert message in (caught.value.detail or "")


def test_object_must_be_a_mapping() -> None:
    with pytest.raises(BadRequestData, match="geoQ: expected a JSON object"):
        parse_geoquery([1, 2])  # type: ignore[arg-type]


def test_map_attributes_expands_the_geoproperty() -> None:
    query = parse_geoquery(georel="within", geometry="Polygon", coordinates=SQUARE)
    mapped = query.map_attributes(lambda n: "https://uri.etsi.org/ngsi-ld/" + n)
    assert mapped.geoproperty == "https://uri.etsi.org/ngsi-ld/location"
    assert mapped.coordinates == query.coordinates


def test_constructor_normalises_lists_to_tuples_and_is_hashable() -> None:
    query = GeoQuery(GeoRel(GeoRelation.WITHIN), GeometryType.POLYGON, SQUARE)  # type: ignore[arg-type]
    assert isinstance(query.coordinates[0][0], tuple)
    assert hash(query) == hash(parse_geoquery(query.to_object()))


positions = st.tuples(
    st.floats(-180, 180, allow_nan=False), st.floats(-90, 90, allow_nan=False)
).map(list)


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.tuples(st.just("Point"), positions),
        st.tuples(st.just("MultiPoint"), st.lists(positions, min_size=1, max_size=4)),
        st.tuples(st.just("LineString"), st.lists(positions, min_size=2, max_size=4)),
        st.tuples(
            st.just("Polygon"),
            st.lists(positions, min_size=3, max_size=5).map(lambda ring: [[*ring, ring[0]]]),
        ),
    ),
    st.sampled_from(["within", "contains", "intersects", "disjoint", "near;maxDistance==10"]),
)
def test_parameter_form_round_trips(shape: tuple[str, Any], georel: str) -> None:
    geometry, coordinates = shape
    if georel.startswith("near") and geometry != "Point":
        georel = "intersects"
    query = parse_geoquery(georel=georel, geometry=geometry, coordinates=json.dumps(coordinates))
    assert parse_geoquery(**query.to_params()) == query
    assert parse_geoquery(query.to_object()) == query
