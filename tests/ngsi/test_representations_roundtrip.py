"""Property tests: the representations are loss-free where NGSI-LD allows it, and the pydantic
path agrees with the dict functions on every generated entity."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngsi._entity import Entity
from ngsi._ids import ATTRIBUTE_MEMBERS, ENTITY_MEMBERS
from ngsi._representations import (
    is_bare_value,
    to_concise,
    to_key_values,
    to_normalized,
)
from ngsi._time import format_datetime

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KINDS = (  # Property is the commonest kind, and the one with the most ways to be written
    "Property",
    "Property",
    "Property",
    "GeoProperty",
    "Relationship",
    "LanguageProperty",
    "JsonProperty",
    "VocabProperty",
    "ListProperty",
)
MEMBER = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "JsonProperty": "json",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
}

# -- building blocks ----------------------------------------------------------------------------

type_names = st.sampled_from(["AirQualityObserved", "Device", "ParkingSpot", "WeatherObserved"])
local_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,12}", fullmatch=True)
uris = st.builds(
    lambda t, local: f"urn:ngsi-ld:{t}:{local}", type_names, local_ids
) | st.sampled_from(["https://example.org/sensor/1", "urn:ngsi-ld:Device:70b3d57ed0000001"])
dataset_ids = st.builds(lambda local: f"urn:ngsi-ld:Dataset:{local}", local_ids)
attribute_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name not in ENTITY_MEMBERS
)
sub_attribute_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name not in ATTRIBUTE_MEMBERS
)
times = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.just(UTC),
).map(
    lambda moment: format_datetime(
        moment.replace(microsecond=0)
        if moment.microsecond % 3 == 0
        else moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        if moment.microsecond % 3 == 1
        else moment
    )
)
unit_codes = st.sampled_from(["CEL", "P1", "GQ", "MTR", "KMH", "C62"])

# JSON values, with the shapes that make the representations ambiguous mixed in on purpose
tricky_keys = st.sampled_from(
    [
        "type",
        "value",
        "object",
        "languageMap",
        "json",
        "vocab",
        "valueList",
        "coordinates",
        "@value",
    ]
)
tricky_strings = st.sampled_from(
    ["Property", "Relationship", "GeoProperty", "Point", "PostalAddress", "urn:ngsi-ld:Device:1"]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**9), 10**9)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | tricky_strings
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(tricky_keys | st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)

longitudes = st.integers(-180, 180) | st.floats(-180, 180)
latitudes = st.integers(-90, 90) | st.floats(-90, 90)
positions = st.tuples(longitudes, latitudes).map(list) | st.tuples(
    longitudes, latitudes, st.floats(-100, 5000)
).map(list)
rings = st.lists(positions, min_size=3, max_size=5).map(lambda ring: [*ring, list(ring[0])])
polygons = st.lists(rings, min_size=1, max_size=2)
geometries = st.one_of(
    positions.map(lambda p: {"type": "Point", "coordinates": p}),
    st.lists(positions, min_size=2, max_size=4).map(
        lambda c: {"type": "LineString", "coordinates": c}
    ),
    polygons.map(lambda c: {"type": "Polygon", "coordinates": c}),
    st.lists(positions, min_size=1, max_size=3).map(
        lambda c: {"type": "MultiPoint", "coordinates": c}
    ),
    st.lists(st.lists(positions, min_size=2, max_size=3), min_size=1, max_size=2).map(
        lambda c: {"type": "MultiLineString", "coordinates": c}
    ),
    st.lists(polygons, min_size=1, max_size=2).map(
        lambda c: {"type": "MultiPolygon", "coordinates": c}
    ),
)

attribute_shaped = st.one_of(
    st.builds(lambda v: {"type": "Property", "value": v}, scalars),
    st.builds(lambda v: {"value": v}, scalars),
    st.builds(lambda o: {"object": o}, uris),
)
property_values = st.one_of(
    json_values,
    geometries,  # a Property may hold GeoJSON without being a GeoProperty
    attribute_shaped,  # a value that looks like an attribute
    st.lists(attribute_shaped, min_size=1, max_size=2),  # ... or like a multi-attribute
)
language_maps = st.dictionaries(
    st.sampled_from(["de", "en", "fr", "de-CH", "@none"]),
    st.text(max_size=8) | st.lists(st.text(max_size=5), min_size=1, max_size=2),
    min_size=1,
    max_size=3,
)
vocab_terms = st.sampled_from(["traffic", "environment", "parking", "schema:Place"])
main_values = {
    "Property": property_values,
    "GeoProperty": geometries,
    "Relationship": uris | st.lists(uris, min_size=1, max_size=3),
    "LanguageProperty": language_maps,
    "JsonProperty": json_values,
    "VocabProperty": vocab_terms | st.lists(vocab_terms, min_size=1, max_size=3, unique=True),
    "ListProperty": st.lists(json_values, max_size=3),
}


@st.composite
def attributes(
    draw: st.DrawFn,
    *,
    kinds: tuple[str, ...] = KINDS,
    depth: int = 0,
    dataset_id: str | None = None,
    metadata: bool = True,
) -> dict[str, Any]:
    """One normalized attribute instance."""
    kind = draw(st.sampled_from(kinds))
    out: dict[str, Any] = {"type": kind, MEMBER[kind]: draw(main_values[kind])}
    if dataset_id is not None:
        out["datasetId"] = dataset_id
    # metadata on about half of the attributes, so that bare concise values are common too
    if not metadata or draw(st.booleans()):
        return out
    if draw(st.booleans()):
        out["observedAt"] = draw(times)
    if kind == "Property" and draw(st.booleans()):
        out["unitCode"] = draw(unit_codes)
    if kind == "Relationship" and draw(st.integers(0, 3)) == 0:
        out["objectType"] = draw(type_names)
    if draw(st.integers(0, 3)) == 0:
        out["createdAt"] = draw(times)
        out["modifiedAt"] = draw(times)
    if depth == 0 and draw(st.booleans()):
        out.update(draw(st.dictionaries(sub_attribute_names, attributes(depth=1), max_size=2)))
    return out


@st.composite
def attribute_values(draw: st.DrawFn) -> dict[str, Any] | list[dict[str, Any]]:
    """One instance, or a multi-attribute with distinct datasetIds and at most one default."""
    if draw(st.integers(0, 2)) != 0:
        dataset = draw(st.none() | dataset_ids)
        return draw(attributes(dataset_id=dataset))
    datasets: list[str | None] = list(
        draw(st.lists(dataset_ids, min_size=1, max_size=3, unique=True))
    )
    if draw(st.integers(0, 2)) != 0:
        datasets[0] = None
    return [draw(attributes(dataset_id=dataset)) for dataset in datasets]


@st.composite
def entities(draw: st.DrawFn) -> dict[str, Any]:
    """A normalized entity with any kinds of attributes, metadata and multi-attributes."""
    entity: dict[str, Any] = {"id": draw(uris), "type": draw(type_names)}
    if draw(st.integers(0, 4)) == 0:
        entity["type"] = draw(st.lists(type_names, min_size=1, max_size=2, unique=True))
    if draw(st.integers(0, 4)) == 0:
        entity["scope"] = draw(st.sampled_from(["/Berlin", "/Berlin/Mitte"]))
    if draw(st.integers(0, 3)) == 0:
        entity["createdAt"] = draw(times)
        entity["modifiedAt"] = draw(times)
    for name in draw(st.lists(attribute_names, max_size=6, unique=True)):
        entity[name] = draw(attribute_values())
    if draw(st.integers(0, 4)) == 0:
        entity["@context"] = ["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"]
    return entity


@st.composite
def plain_entities(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    """A normalized entity that keyValues can carry: no metadata, one instance per attribute,
    no kinds that keyValues cannot tell apart (LanguageProperty, JsonProperty, ...), no
    Property holding GeoJSON. Returns the entity and its Relationship names."""
    entity: dict[str, Any] = {"id": draw(uris), "type": draw(type_names)}
    relationships: set[str] = set()
    for name in draw(st.lists(attribute_names, max_size=6, unique=True)):
        attribute = draw(
            attributes(kinds=("Property", "GeoProperty", "Relationship"), metadata=False)
        )
        if attribute["type"] == "Property" and _is_geojson(attribute["value"]):
            attribute["value"] = {"geometry": attribute["value"]}
        if attribute["type"] == "Relationship":
            relationships.add(name)
        entity[name] = attribute
    return entity, relationships


def _is_geojson(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("type"), str)
        and value["type"]
        in {
            "Point",
            "LineString",
            "Polygon",
            "MultiPoint",
            "MultiLineString",
            "MultiPolygon",
        }
        and "coordinates" in value
    )


def _wire(data: dict[str, Any]) -> dict[str, Any]:
    """Through JSON text and back, as on the wire."""
    out: dict[str, Any] = json.loads(json.dumps(data, allow_nan=False))
    return out


# -- properties ---------------------------------------------------------------------------------


@SETTINGS
@given(entities())
def test_normalized_concise_normalized_is_identity(entity: dict[str, Any]) -> None:
    assert to_normalized(entity, representation="normalized") == entity
    assert to_normalized(entity) == entity
    concise = _wire(to_concise(entity))
    assert to_normalized(concise) == entity
    assert to_normalized(concise, representation="concise") == entity


@SETTINGS
@given(entities())
def test_pydantic_path_agrees_with_the_dict_functions(entity: dict[str, Any]) -> None:
    model = Entity.from_dict(entity)
    assert model.to_dict("normalized", sys_attrs=True) == entity
    assert model.to_dict("concise", sys_attrs=True) == to_concise(entity)
    assert model.to_dict("keyValues", sys_attrs=True) == to_key_values(entity)
    assert model.to_dict("concise") == to_concise(entity, sys_attrs=False)
    assert model.to_dict("keyValues") == to_key_values(entity, sys_attrs=False)
    assert model.to_dict() == to_normalized(entity, sys_attrs=False)
    assert Entity.from_dict(_wire(to_concise(entity))) == model
    assert Entity.model_validate_json(model.model_dump_json()) == model


@SETTINGS
@given(plain_entities())
def test_normalized_key_values_normalized_is_identity(
    case: tuple[dict[str, Any], set[str]],
) -> None:
    entity, relationships = case
    key_values = _wire(to_key_values(entity))
    assert (
        to_normalized(key_values, representation="keyValues", relationships=relationships) == entity
    )
    model = Entity.from_dict(key_values, representation="keyValues", relationships=relationships)
    assert model.to_dict() == entity
    assert model.to_dict("keyValues") == key_values
    # "auto" reads keyValues the same way whenever the values cannot be taken for attributes
    if all(
        is_bare_value(value) for name, value in key_values.items() if name not in ("id", "type")
    ):
        assert to_normalized(key_values, relationships=relationships) == entity
