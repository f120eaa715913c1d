"""NGSI-v2 ↔ NGSI-LD: the official v2 examples round-trip, NGSI-LD entities survive the trip to
v2 and back, and what Orion-LD writes in its `x-ngsiv2-*` notifications is read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngsi._errors import BadRequestData
from ngsi._ids import ATTRIBUTE_MEMBERS, ENTITY_MEMBERS
from ngsi._ngsiv2 import from_ngsiv2, ngsiv2_notification, to_ngsiv2


def _exactly(data: Any) -> str:
    """JSON text with sorted keys: equal only when values and their JSON types are equal."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def _v2_examples() -> list[Any]:
    sdm = Path(__file__).resolve().parents[2] / ".." / "shared" / "sdm"
    return [
        pytest.param(path, id=path.parents[1].name)
        for path in sorted(sdm.glob("*/*/examples/example-normalized.json"))
    ]


V2_EXAMPLES = _v2_examples()


def test_the_official_v2_examples_are_there() -> None:
    assert len(V2_EXAMPLES) >= 16


# -- the official Smart Data Models examples ----------------------------------------------------


@pytest.mark.parametrize("path", V2_EXAMPLES)
def test_official_v2_example_round_trips_without_hints(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    normalized = from_ngsiv2(data)
    assert _exactly(to_ngsiv2(normalized)) == _exactly(data)
    # nothing beyond NGSI-LD is kept in the entity to make that work
    for name, attribute in normalized.items():
        if name not in ("id", "type"):
            assert attribute["type"] in ("Property", "GeoProperty", "Relationship"), name
            assert set(attribute) - {"type", "value", "object", "unitCode"} <= set(
                data[name].get("metadata", {})
            ), name


@pytest.mark.parametrize("path", V2_EXAMPLES)
def test_official_v2_example_round_trips_with_an_id_prefix(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    prefix = f"urn:ngsi-ld:{data['type']}:"
    normalized = from_ngsiv2(data, id_prefix=prefix)
    assert normalized["id"] == prefix + data["id"]
    assert _exactly(to_ngsiv2(normalized, id_prefix=prefix)) == _exactly(data)


def test_an_official_example_in_ngsi_ld_terms(shared_dir: Path) -> None:
    path = shared_dir / "sdm/dataModel.Environment/AirQualityObserved/examples"
    data = json.loads((path / "example-normalized.json").read_text(encoding="utf-8"))
    normalized = from_ngsiv2(data, relationships={"refPointOfInterest"})
    assert normalized["dateObserved"] == {
        "type": "Property",
        "value": {"@type": "DateTime", "@value": "2016-03-15T11:00:00"},
    }
    assert normalized["co"] == {"type": "Property", "value": 500, "unitCode": "GP"}
    assert normalized["location"]["type"] == "GeoProperty"
    assert normalized["refPointOfInterest"] == {
        "type": "Relationship",
        "object": "28079004-Pza.deEspanya",
    }
    assert normalized["precipitation"] == {"type": "Property", "value": False}
    # the reference comes back as a v2 Relationship unless its v2 type is given
    assert to_ngsiv2(normalized)["refPointOfInterest"]["type"] == "Relationship"
    again = to_ngsiv2(normalized, attribute_types={"refPointOfInterest": "Text"})
    assert _exactly(again) == _exactly(data)


def test_metadata_become_sub_attributes(shared_dir: Path) -> None:
    path = shared_dir / "sdm/dataModel.Parking/ParkingSpot/examples/example-normalized.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert from_ngsiv2(data)["status"] == {
        "type": "Property",
        "value": "free",
        "timestamp": {
            "type": "Property",
            "value": {"@type": "DateTime", "@value": "2018-09-21T12:00:00"},
        },
        "parkingPermit": {"type": "Property", "value": "yes"},
    }


# -- writing: the type table --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ({"type": "Property", "value": "moderate"}, {"type": "Text", "value": "moderate"}),
        ({"type": "Property", "value": 21}, {"type": "Number", "value": 21}),
        ({"type": "Property", "value": 21.5}, {"type": "Number", "value": 21.5}),
        ({"type": "Property", "value": True}, {"type": "Boolean", "value": True}),
        ({"type": "Property", "value": None}, {"type": "None", "value": None}),
        ({"type": "Property", "value": [1, 2]}, {"type": "StructuredValue", "value": [1, 2]}),
        ({"type": "Property", "value": {"a": 1}}, {"type": "StructuredValue", "value": {"a": 1}}),
        (
            {"type": "Property", "value": {"@type": "DateTime", "@value": "2024-05-01T12:00:00Z"}},
            {"type": "DateTime", "value": "2024-05-01T12:00:00Z"},
        ),
        (
            {"type": "Property", "value": {"@type": "Date", "@value": "2024-05-01"}},
            {"type": "StructuredValue", "value": {"@type": "Date", "@value": "2024-05-01"}},
        ),
        (
            {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [13.4, 52.5]}},
            {"type": "geo:json", "value": {"type": "Point", "coordinates": [13.4, 52.5]}},
        ),
        (
            {"type": "Relationship", "object": "urn:ngsi-ld:Device:1"},
            {"type": "Relationship", "value": "urn:ngsi-ld:Device:1"},
        ),
        (
            {"type": "Relationship", "object": ["urn:ngsi-ld:A:1", "urn:ngsi-ld:A:2"]},
            {"type": "Relationship", "value": ["urn:ngsi-ld:A:1", "urn:ngsi-ld:A:2"]},
        ),
        (
            {"type": "LanguageProperty", "languageMap": {"de": "Rathaus", "en": "town hall"}},
            {"type": "LanguageProperty", "value": {"de": "Rathaus", "en": "town hall"}},
        ),
        ({"type": "JsonProperty", "json": {"a": 1}}, {"type": "JsonProperty", "value": {"a": 1}}),
        ({"type": "VocabProperty", "vocab": "open"}, {"type": "VocabProperty", "value": "open"}),
        ({"type": "ListProperty", "valueList": [3, 1]}, {"type": "ListProperty", "value": [3, 1]}),
    ],
)
def test_each_kind_of_attribute_has_its_v2_type(
    attribute: dict[str, Any], expected: dict[str, Any]
) -> None:
    entity = {"id": "urn:ngsi-ld:T:1", "type": "T", "a": attribute}
    assert to_ngsiv2(entity)["a"] == expected
    assert to_ngsiv2(entity, key_values=True) == {
        "id": "urn:ngsi-ld:T:1",
        "type": "T",
        "a": expected["value"],
    }
    assert to_ngsiv2(entity, response=True)["a"] == {**expected, "metadata": {}}
    # and back: every kind is what it was
    assert from_ngsiv2(to_ngsiv2(entity)) == entity


def test_observed_at_unit_code_and_sub_attributes_become_metadata() -> None:
    entity = {
        "id": "urn:ngsi-ld:AirQualityObserved:berlin-mitte",
        "type": "AirQualityObserved",
        "@context": ["https://example.org/context.jsonld"],
        "scope": "/Berlin/Mitte",
        "createdAt": "2024-05-01T00:00:00Z",
        "no2": {
            "type": "Property",
            "value": 22.1,
            "observedAt": "2024-05-01T11:59:30Z",
            "unitCode": "GQ",
            "datasetId": "urn:ngsi-ld:Dataset:lorawan",
            "modifiedAt": "2024-05-01T12:00:00Z",
            "instanceId": "urn:ngsi-ld:Instance:1",
            "accuracy": {"type": "Property", "value": 0.5, "unitCode": "GQ"},
            "providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Device:1"},
            "sampledAt": {
                "type": "Property",
                "value": {"@type": "DateTime", "@value": "2024-05-01T11:59:00Z"},
            },
        },
    }
    assert to_ngsiv2(entity) == {
        "id": "urn:ngsi-ld:AirQualityObserved:berlin-mitte",
        "type": "AirQualityObserved",
        "no2": {
            "type": "Number",
            "value": 22.1,
            "metadata": {
                "observedAt": {"type": "DateTime", "value": "2024-05-01T11:59:30Z"},
                "unitCode": {"value": "GQ"},
                "datasetId": {"value": "urn:ngsi-ld:Dataset:lorawan"},
                # the sub-attribute's own unitCode has no place in v2 metadata
                "accuracy": {"type": "Number", "value": 0.5},
                "providedBy": {"type": "Relationship", "value": "urn:ngsi-ld:Device:1"},
                "sampledAt": {"type": "DateTime", "value": "2024-05-01T11:59:00Z"},
            },
        },
    }
    response = to_ngsiv2(entity, response=True)["no2"]["metadata"]
    assert response["unitCode"] == {"type": "Text", "value": "GQ"}
    assert response["datasetId"] == {"type": "Text", "value": "urn:ngsi-ld:Dataset:lorawan"}
    assert response["observedAt"] == {"type": "DateTime", "value": "2024-05-01T11:59:30Z"}


def test_previous_values_become_orions_builtin_metadata() -> None:
    entity = {
        "id": "urn:ngsi-ld:ParkingSpot:a-13",
        "type": "ParkingSpot",
        "status": {"type": "Property", "value": "occupied", "previousValue": "free"},
    }
    assert to_ngsiv2(entity)["status"]["metadata"] == {
        "previousValue": {"type": "Text", "value": "free"}
    }
    assert from_ngsiv2(to_ngsiv2(entity)) == entity


def test_several_instances_give_the_default_one() -> None:
    default = {"type": "Property", "value": 1}
    other = {"type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:Dataset:b"}
    third = {"type": "Property", "value": 3, "datasetId": "urn:ngsi-ld:Dataset:c"}
    entity = {"id": "urn:x:1", "type": "T", "a": [other, default], "b": [third, other]}
    v2 = to_ngsiv2(entity)
    assert v2["a"] == {"type": "Number", "value": 1}
    assert v2["b"] == {
        "type": "Number",
        "value": 3,
        "metadata": {"datasetId": {"value": "urn:ngsi-ld:Dataset:c"}},
    }
    assert to_ngsiv2(entity, key_values=True)["a"] == 1
    with pytest.raises(BadRequestData, match="'a' is an empty list"):
        to_ngsiv2({"id": "urn:x:1", "type": "T", "a": []})


def test_id_prefix_is_taken_off_only_where_it_is() -> None:
    prefix = "urn:ngsi-ld:Device:"
    assert to_ngsiv2({"id": "urn:ngsi-ld:Device:9845A", "type": "Device"}, id_prefix=prefix) == {
        "id": "9845A",
        "type": "Device",
    }
    other = {"id": "urn:ngsi-ld:DeviceModel:m-1", "type": "DeviceModel"}
    assert to_ngsiv2(other, id_prefix=prefix)["id"] == "urn:ngsi-ld:DeviceModel:m-1"
    assert from_ngsiv2({"id": "9845A", "type": "Device"}, id_prefix=prefix)["id"] == (
        "urn:ngsi-ld:Device:9845A"
    )


def test_attribute_types_name_the_v2_type() -> None:
    entity = {
        "id": "urn:x:1",
        "type": "T",
        "address": {"type": "Property", "value": {"streetAddress": "Unter den Linden 1"}},
        "level": {"type": "Property", "value": 3},
    }
    v2 = to_ngsiv2(entity, attribute_types={"address": "PostalAddress"})
    assert v2["address"] == {
        "type": "PostalAddress",
        "value": {"streetAddress": "Unter den Linden 1"},
    }
    assert v2["level"]["type"] == "Number"
    assert from_ngsiv2(v2) == entity


def test_an_entity_type_list_of_one_is_the_type() -> None:
    assert to_ngsiv2({"id": "urn:x:1", "type": ["T"]})["type"] == "T"
    with pytest.raises(BadRequestData, match="has the types"):
        to_ngsiv2({"id": "urn:x:1", "type": ["T", "U"]})


@pytest.mark.parametrize(
    ("attribute", "problem"),
    [
        (21.3, "attribute 'a' is not a normalized NGSI-LD attribute: got float 21.3"),
        ({"value": 21.3}, "attribute 'a' is not a normalized NGSI-LD attribute"),
        ({"type": "Number", "value": 21.3}, "expected an object whose 'type' is one of"),
        ({"type": "Relationship", "value": "urn:x"}, "a Relationship needs 'object'"),
        (
            {"type": "Property", "value": 1, "s": {"type": "Property"}},
            "sub-attribute 's' of attribute 'a': a Property needs 'value'",
        ),
        (
            {"type": "Property", "value": 1, "s": 5},
            "sub-attribute 's' of attribute 'a' is not a normalized NGSI-LD sub-attribute",
        ),
    ],
)
def test_what_is_not_normalized_ngsi_ld_is_refused(attribute: Any, problem: str) -> None:
    with pytest.raises(BadRequestData) as refused:
        to_ngsiv2({"id": "urn:x:1", "type": "T", "a": attribute})
    assert problem in str(refused.value.detail)
    assert "entity 'urn:x:1'" in str(refused.value.detail)


# -- notifications --------------------------------------------------------------------------------


def test_a_notification_is_what_orion_sends_to_v2_subscribers() -> None:
    entities: list[dict[str, Any]] = [
        {
            "id": "urn:ngsi-ld:ParkingSpot:a-13",
            "type": "ParkingSpot",
            "status": {"type": "Property", "value": "free", "observedAt": "2024-05-01T12:00:00Z"},
            "refParkingSite": {"type": "Relationship", "object": "urn:ngsi-ld:OnStreetParking:1"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}},
        },
        {"id": "urn:ngsi-ld:ParkingSpot:a-14", "type": "ParkingSpot"},
    ]
    body = ngsiv2_notification("urn:ngsi-ld:Subscription:ql", entities)
    assert body == {
        "subscriptionId": "urn:ngsi-ld:Subscription:ql",
        "data": [
            {
                "id": "urn:ngsi-ld:ParkingSpot:a-13",
                "type": "ParkingSpot",
                "status": {
                    "type": "Text",
                    "value": "free",
                    "metadata": {
                        "observedAt": {"type": "DateTime", "value": "2024-05-01T12:00:00Z"}
                    },
                },
                "refParkingSite": {
                    "type": "Relationship",
                    "value": "urn:ngsi-ld:OnStreetParking:1",
                    "metadata": {},
                },
                "location": {
                    "type": "geo:json",
                    "value": {"type": "Point", "coordinates": [1, 2]},
                    "metadata": {},
                },
            },
            {"id": "urn:ngsi-ld:ParkingSpot:a-14", "type": "ParkingSpot"},
        ],
    }
    key_values = ngsiv2_notification("urn:s:1", entities[:1], key_values=True)
    assert key_values == {
        "subscriptionId": "urn:s:1",
        "data": [
            {
                "id": "urn:ngsi-ld:ParkingSpot:a-13",
                "type": "ParkingSpot",
                "status": "free",
                "refParkingSite": "urn:ngsi-ld:OnStreetParking:1",
                "location": {"type": "Point", "coordinates": [1, 2]},
            }
        ],
    }
    # a v2 consumer reads the response form back into the same NGSI-LD
    assert [from_ngsiv2(item) for item in body["data"]] == entities


# -- reading --------------------------------------------------------------------------------------


def test_orion_ld_cross_notifications_are_read() -> None:
    # the shapes of Orion-LD's x-ngsiv2 notifications: NGSI-LD attribute types kept, sub-attributes
    # in "metadata", observedAt and unitCode bare (inside metadata, or beside the value), and a
    # Relationship's target under "value" or still under "object"
    default_path = {
        "id": "urn:ngsi-ld:E01",
        "type": "T",
        "P1": {
            "type": "Property",
            "value": 1,
            "metadata": {
                "Sub-R1": {"type": "Relationship", "value": "urn:E1"},
                "unitCode": "C62",
                "observedAt": "2024-05-01T12:00:00.000Z",
            },
        },
        "P2": {"type": "Property", "value": "ok", "metadata": {}},
        "R": {"type": "Relationship", "object": "urn:ngsi-ld:Building:farm001", "metadata": {}},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [1, 2, 3]},
            "metadata": {},
        },
        "name": {"type": "LanguageProperty", "value": {"de": "Hof"}, "metadata": {}},
    }
    expected = {
        "id": "urn:ngsi-ld:E01",
        "type": "T",
        "P1": {
            "type": "Property",
            "value": 1,
            "Sub-R1": {"type": "Relationship", "object": "urn:E1"},
            "unitCode": "C62",
            "observedAt": "2024-05-01T12:00:00.000Z",
        },
        "P2": {"type": "Property", "value": "ok"},
        "R": {"type": "Relationship", "object": "urn:ngsi-ld:Building:farm001"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2, 3]}},
        "name": {"type": "LanguageProperty", "languageMap": {"de": "Hof"}},
    }
    assert from_ngsiv2(default_path) == expected
    beside = {
        "id": "urn:ngsi-ld:E01",
        "type": "T",
        "P1": {
            "type": "Property",
            "value": 1,
            "unitCode": "C62",
            "observedAt": "2024-05-01T12:00:00.000Z",
            "metadata": {"Sub-R1": {"type": "Relationship", "value": "urn:E1"}},
        },
    }
    assert from_ngsiv2(beside)["P1"] == expected["P1"]


def test_v2_metadata_spellings_of_the_ngsi_ld_members() -> None:
    for unit in ({"value": "CEL"}, {"type": "Text", "value": "CEL"}, "CEL"):
        entity = {
            "id": "x",
            "type": "T",
            "t": {"type": "Number", "value": 21, "metadata": {"unitCode": unit}},
        }
        assert from_ngsiv2(entity)["t"] == {"type": "Property", "value": 21, "unitCode": "CEL"}


def test_relationships_are_read_by_name_whatever_their_v2_type() -> None:
    entity = {
        "id": "WeatherObserved-1",
        "type": "WeatherObserved",
        "refDevice": {"type": "Text", "value": "device-0A3478"},
        "refGroups": {"type": "StructuredValue", "value": ["g-1", "g-2"]},
        "refEmpty": {"type": "StructuredValue", "value": []},
        "refPlain": {"type": "Text", "value": "not named"},
    }
    normalized = from_ngsiv2(entity, relationships=["refDevice", "refGroups", "refEmpty"])
    assert normalized["refDevice"] == {"type": "Relationship", "object": "device-0A3478"}
    assert normalized["refGroups"] == {"type": "Relationship", "object": ["g-1", "g-2"]}
    # an empty list is no reference: the model that asked for a Relationship refuses it
    assert normalized["refEmpty"] == {"type": "Property", "value": []}
    assert normalized["refPlain"] == {"type": "Property", "value": "not named"}


def test_a_geo_point_becomes_a_geojson_point() -> None:
    entity = {"id": "x", "type": "T", "location": {"type": "geo:point", "value": "52.52, 13.40"}}
    assert from_ngsiv2(entity)["location"] == {
        "type": "GeoProperty",
        "value": {"type": "Point", "coordinates": [13.4, 52.52]},
    }


def test_missing_type_and_value_take_the_v2_defaults() -> None:
    entity = {"id": "x", "type": "T", "a": {"value": 3}, "b": {"type": "Text"}}
    assert from_ngsiv2(entity) == {
        "id": "x",
        "type": "T",
        "a": {"type": "Property", "value": 3},
        "b": {"type": "Property", "value": None},
    }


@pytest.mark.parametrize(
    ("entity", "problem"),
    [
        (
            {"id": "x", "type": "T", "t": 21.3},
            "entity 'x': attribute 't' is not an NGSI-v2 attribute: got float 21.3",
        ),
        (
            {"id": "x", "type": "T", "t": {"type": "Number", "value": 1, "unit": "CEL"}},
            "attribute 't' has 'unit'",
        ),
        (
            {"id": "x", "type": "T", "t": {"type": "Number", "value": 1, "metadata": []}},
            "'metadata' must be an object",
        ),
        (
            {"id": "x", "type": "T", "t": {"type": "Number", "value": 1, "metadata": {"m": 2}}},
            "metadata 'm' of attribute 't' is not an NGSI-v2 metadata",
        ),
        (
            {
                "id": "x",
                "type": "T",
                "t": {"type": "Number", "value": 1, "metadata": {"value": {"value": 2}}},
            },
            "metadata 'value' of attribute 't' is named like a member of every NGSI-LD",
        ),
        (
            {
                "id": "x",
                "type": "T",
                "t": {"type": "Number", "value": 1, "metadata": {"unitCode": {"value": 1}}},
            },
            "metadata 'unitCode' of attribute 't' must be a string",
        ),
        (
            {"id": "x", "type": "T", "r": {"type": "Relationship", "value": 5}},
            "attribute 'r' is a Relationship, but its value is int 5",
        ),
        (
            {"id": "x", "type": "T", "r": {"type": "Text", "object": "urn:x"}},
            "'object' belongs only in a Relationship",
        ),
        (
            {"id": "x", "type": "T", "t": {"type": 5, "value": 1}},
            "'type' must be a string",
        ),
        (
            {"id": "x", "type": "T", "l": {"type": "geo:line", "value": ["1, 2", "3, 4"]}},
            "geo:line locations are not read",
        ),
        (
            {"id": "x", "type": "T", "l": {"type": "geo:point", "value": "52.5"}},
            "a geo:point value is 'latitude, longitude'",
        ),
        ({"id": "x", "type": "T", "scope": {"type": "Text", "value": "/a"}}, "'scope' is named"),
        ({"id": 5, "type": "T"}, "an entity id must be a string"),
    ],
)
def test_what_is_not_ngsi_v2_is_refused(entity: dict[str, Any], problem: str) -> None:
    with pytest.raises(BadRequestData) as refused:
        from_ngsiv2(entity)
    assert problem in str(refused.value.detail)


def test_an_entity_must_be_an_object() -> None:
    with pytest.raises(BadRequestData, match="must be a JSON object"):
        from_ngsiv2([])  # type: ignore[arg-type]
    with pytest.raises(BadRequestData, match="must be a JSON object"):
        to_ngsiv2("x")  # type: ignore[arg-type]


# -- NGSI-LD → NGSI-v2 → NGSI-LD is loss-free where v2 can say it ---------------------------------

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name not in ENTITY_MEMBERS and name not in ATTRIBUTE_MEMBERS
)
uris = st.from_regex(r"urn:ngsi-ld:[A-Z][a-z]{0,6}:[a-z0-9]{1,6}", fullmatch=True)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
date_times = st.from_regex(
    r"20[0-9]{2}-0[1-9]-[0-2][1-9]T[01][0-9]:[0-5][0-9]:[0-5][0-9]Z", fullmatch=True
)
typed_date_times = st.builds(lambda text: {"@type": "DateTime", "@value": text}, date_times)
points = st.builds(
    lambda lon, lat: {"type": "Point", "coordinates": [lon, lat]},
    st.floats(-180, 180),
    st.floats(-90, 90),
)


def _attribute(kind: str, value: Any) -> dict[str, Any]:
    member = {"Property": "value", "GeoProperty": "value", "Relationship": "object"}[kind]
    return {"type": kind, member: value}


simple_attributes = (
    st.builds(_attribute, st.just("Property"), json_values | typed_date_times)
    | st.builds(_attribute, st.just("GeoProperty"), points)
    | st.builds(_attribute, st.just("Relationship"), uris | st.lists(uris, min_size=1, max_size=3))
)


@st.composite
def attributes(draw: st.DrawFn) -> dict[str, Any]:
    attribute = draw(simple_attributes)
    if draw(st.booleans()):
        attribute["observedAt"] = draw(date_times)
    if attribute["type"] == "Property" and draw(st.booleans()):
        attribute["unitCode"] = draw(st.sampled_from(["CEL", "GQ", "P1"]))
    attribute.update(draw(st.dictionaries(names, simple_attributes, max_size=2)))
    return attribute


entities = st.builds(
    lambda entity_id, type_name, attrs: {"id": entity_id, "type": type_name, **attrs},
    uris,
    st.sampled_from(["AirQualityObserved", "ParkingSpot"]),
    st.dictionaries(names, attributes(), max_size=4),
)


@SETTINGS
@given(entities)
def test_ngsi_ld_survives_ngsi_v2(entity: dict[str, Any]) -> None:
    v2 = to_ngsiv2(entity)
    assert _exactly(from_ngsiv2(v2)) == _exactly(entity)
    response = to_ngsiv2(entity, response=True)
    assert _exactly(from_ngsiv2(response)) == _exactly(entity)
    # and the v2 form is what a v2 reader reads back, unchanged
    assert _exactly(to_ngsiv2(from_ngsiv2(v2))) == _exactly(v2)
    assert all("metadata" in response[name] for name in entity if name not in ("id", "type"))
