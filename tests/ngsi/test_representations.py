"""The dict functions: reading any representation, writing concise and keyValues."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ngsi._entity import Entity
from ngsi._errors import BadRequestData
from ngsi._representations import (
    concise_attribute,
    from_normalized,
    is_bare_value,
    key_values_attribute,
    to_concise,
    to_key_values,
    to_normalized,
)

ID = "urn:ngsi-ld:AirQualityObserved:berlin-mitte-01"
POINT = {"type": "Point", "coordinates": [13.4, 52.5]}
OBSERVED = "2024-05-01T12:00:00Z"

NORMALIZED: dict[str, Any] = {
    "id": ID,
    "type": "AirQualityObserved",
    "scope": "/Berlin/Mitte",
    "createdAt": "2024-05-01T11:00:00Z",
    "modifiedAt": "2024-05-01T12:00:01.250Z",
    "temperature": {
        "type": "Property",
        "value": 21.3,
        "unitCode": "CEL",
        "observedAt": OBSERVED,
        "createdAt": "2024-05-01T11:00:00Z",
        "accuracy": {"type": "Property", "value": 0.5, "unitCode": "CEL"},
        "providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Device:a"},
    },
    "no2": [
        {"type": "Property", "value": 23, "unitCode": "GQ"},
        {"type": "Property", "value": 25, "unitCode": "GQ", "datasetId": "urn:ngsi-ld:Dataset:raw"},
    ],
    "airQualityLevel": {"type": "Property", "value": "moderate"},
    "address": {
        "type": "Property",
        "value": {"streetAddress": "Unter den Linden 1", "type": "PostalAddress"},
    },
    "location": {"type": "GeoProperty", "value": POINT},
    "operationSpace": {"type": "GeoProperty", "value": POINT, "observedAt": OBSERVED},
    "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:70b3d57ed0000001"},
    "refSensors": {
        "type": "Relationship",
        "object": ["urn:ngsi-ld:Device:a", "urn:ngsi-ld:Device:b"],
    },
    "name": {
        "type": "LanguageProperty",
        "languageMap": {"de": "Mitte", "en": ["Centre", "Middle"]},
    },
    "raw": {"type": "JsonProperty", "json": {"type": "Property", "value": 1}},
    "category": {"type": "VocabProperty", "vocab": ["traffic", "environment"]},
    "samples": {"type": "ListProperty", "valueList": [1, 2, 3]},
    "@context": [
        "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"
    ],
}

CONCISE: dict[str, Any] = {
    "id": ID,
    "type": "AirQualityObserved",
    "scope": "/Berlin/Mitte",
    "createdAt": "2024-05-01T11:00:00Z",
    "modifiedAt": "2024-05-01T12:00:01.250Z",
    "temperature": {
        "value": 21.3,
        "unitCode": "CEL",
        "observedAt": OBSERVED,
        "createdAt": "2024-05-01T11:00:00Z",
        "accuracy": {"value": 0.5, "unitCode": "CEL"},
        "providedBy": {"object": "urn:ngsi-ld:Device:a"},
    },
    "no2": [
        {"value": 23, "unitCode": "GQ"},
        {"value": 25, "unitCode": "GQ", "datasetId": "urn:ngsi-ld:Dataset:raw"},
    ],
    "airQualityLevel": "moderate",
    "address": {"streetAddress": "Unter den Linden 1", "type": "PostalAddress"},
    "location": POINT,
    "operationSpace": {"value": POINT, "observedAt": OBSERVED},
    "refDevice": {"object": "urn:ngsi-ld:Device:70b3d57ed0000001"},
    "refSensors": {"object": ["urn:ngsi-ld:Device:a", "urn:ngsi-ld:Device:b"]},
    "name": {"languageMap": {"de": "Mitte", "en": ["Centre", "Middle"]}},
    "raw": {"json": {"type": "Property", "value": 1}},
    "category": {"vocab": ["traffic", "environment"]},
    "samples": {"valueList": [1, 2, 3]},
    "@context": NORMALIZED["@context"],
}

KEY_VALUES: dict[str, Any] = {
    "id": ID,
    "type": "AirQualityObserved",
    "scope": "/Berlin/Mitte",
    "createdAt": "2024-05-01T11:00:00Z",
    "modifiedAt": "2024-05-01T12:00:01.250Z",
    "temperature": 21.3,
    "no2": [23, 25],
    "airQualityLevel": "moderate",
    "address": {"streetAddress": "Unter den Linden 1", "type": "PostalAddress"},
    "location": POINT,
    "operationSpace": POINT,
    "refDevice": "urn:ngsi-ld:Device:70b3d57ed0000001",
    "refSensors": ["urn:ngsi-ld:Device:a", "urn:ngsi-ld:Device:b"],
    "name": {"de": "Mitte", "en": ["Centre", "Middle"]},
    "raw": {"type": "Property", "value": 1},
    "category": ["traffic", "environment"],
    "samples": [1, 2, 3],
    "@context": NORMALIZED["@context"],
}


def test_concise_of_the_reference_entity() -> None:
    assert to_concise(NORMALIZED) == CONCISE


def test_key_values_of_the_reference_entity() -> None:
    assert to_key_values(NORMALIZED) == KEY_VALUES


@pytest.mark.parametrize("representation", ["auto", "concise"])
def test_concise_reads_back_to_normalized(representation: Any) -> None:
    assert to_normalized(CONCISE, representation=representation) == NORMALIZED


@pytest.mark.parametrize("representation", ["auto", "normalized", "concise"])
def test_normalized_reads_back_unchanged(representation: Any) -> None:
    assert to_normalized(NORMALIZED, representation=representation) == NORMALIZED


def test_conversions_do_not_touch_their_input() -> None:
    before = copy.deepcopy(NORMALIZED)
    to_concise(NORMALIZED)
    to_key_values(NORMALIZED)
    to_normalized(CONCISE)
    to_normalized(KEY_VALUES, representation="keyValues")
    assert before == NORMALIZED


def test_pydantic_path_agrees_with_the_dict_functions() -> None:
    entity = Entity.from_dict(NORMALIZED)
    assert entity.to_dict("normalized", sys_attrs=True) == NORMALIZED
    assert entity.to_dict("concise", sys_attrs=True) == to_concise(NORMALIZED)
    assert entity.to_dict("keyValues", sys_attrs=True) == to_key_values(NORMALIZED)
    assert Entity.from_dict(CONCISE) == entity
    assert Entity.from_dict(CONCISE, representation="concise") == entity


def test_key_values_read_with_relationship_names() -> None:
    metadata_free = {
        "id": ID,
        "type": "AirQualityObserved",
        "airQualityLevel": {"type": "Property", "value": "moderate"},
        "location": {"type": "GeoProperty", "value": POINT},
        "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:70b3d57ed0000001"},
        "refSensors": {"type": "Relationship", "object": ["urn:ngsi-ld:Device:a"]},
    }
    key_values = to_key_values(metadata_free)
    names = {"refDevice", "refSensors"}
    for representation in ("keyValues", "auto"):
        assert (
            to_normalized(key_values, representation=representation, relationships=names)
            == metadata_free
        )
    assert (
        to_normalized(key_values, representation="keyValues", infer_relationships=True)
        == metadata_free
    )
    assert Entity.from_dict(key_values, relationships=names).to_dict() == metadata_free


# -- the "auto" rules, attribute by attribute ---------------------------------------------------


def _read(value: Any, **options: Any) -> Any:
    return to_normalized({"id": ID, "type": "T", "x": value}, **options)["x"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # 1. normalized
        ({"type": "Property", "value": 1}, {"type": "Property", "value": 1}),
        (
            {"type": "Relationship", "object": "urn:a:b"},
            {"type": "Relationship", "object": "urn:a:b"},
        ),
        ({"type": "GeoProperty", "value": POINT}, {"type": "GeoProperty", "value": POINT}),
        # normalized, with concise sub-attributes
        (
            {"type": "Property", "value": 1, "accuracy": 0.5},
            {"type": "Property", "value": 1, "accuracy": {"type": "Property", "value": 0.5}},
        ),
        # 2. concise
        ({"value": 1}, {"type": "Property", "value": 1}),
        ({"value": POINT}, {"type": "GeoProperty", "value": POINT}),
        (
            {"value": 1, "observedAt": OBSERVED},
            {"type": "Property", "value": 1, "observedAt": OBSERVED},
        ),
        ({"object": "urn:a:b"}, {"type": "Relationship", "object": "urn:a:b"}),
        ({"languageMap": {"de": "x"}}, {"type": "LanguageProperty", "languageMap": {"de": "x"}}),
        ({"json": {"a": 1}}, {"type": "JsonProperty", "json": {"a": 1}}),
        ({"vocab": "x"}, {"type": "VocabProperty", "vocab": "x"}),
        ({"valueList": [1]}, {"type": "ListProperty", "valueList": [1]}),
        # GeoJSON, bare
        (POINT, {"type": "GeoProperty", "value": POINT}),
        # 3. multi-attribute
        (
            [{"value": 1}, {"type": "Property", "value": 2, "datasetId": "urn:d:2"}],
            [
                {"type": "Property", "value": 1},
                {"type": "Property", "value": 2, "datasetId": "urn:d:2"},
            ],
        ),
        # 4. bare values
        (21.3, {"type": "Property", "value": 21.3}),
        ("urn:ngsi-ld:Device:1", {"type": "Property", "value": "urn:ngsi-ld:Device:1"}),
        (None, {"type": "Property", "value": None}),
        ([], {"type": "Property", "value": []}),
        ([1, 2], {"type": "Property", "value": [1, 2]}),
        ([{"value": 1}, 2], {"type": "Property", "value": [{"value": 1}, 2]}),
        (
            {"type": "PostalAddress", "x": 1},
            {"type": "Property", "value": {"type": "PostalAddress", "x": 1}},
        ),
        (
            {"@type": "DateTime", "@value": OBSERVED},
            {"type": "Property", "value": {"@type": "DateTime", "@value": OBSERVED}},
        ),
        ({"type": "Point"}, {"type": "Property", "value": {"type": "Point"}}),
    ],
)
def test_auto_rules(value: Any, expected: Any) -> None:
    assert _read(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {"type": "Property", "value": 1},
            {"type": "Property", "value": {"type": "Property", "value": 1}},
        ),
        ({"value": 1}, {"type": "Property", "value": {"value": 1}}),
        ([{"value": 1}], {"type": "Property", "value": [{"value": 1}]}),
        (POINT, {"type": "GeoProperty", "value": POINT}),
        (
            {"type": "Number", "value": 1},
            {"type": "Property", "value": {"type": "Number", "value": 1}},
        ),
    ],
)
def test_key_values_reads_everything_as_a_bare_value(value: Any, expected: Any) -> None:
    assert _read(value, representation="keyValues") == expected


def test_relationship_names_apply_to_bare_values() -> None:
    assert _read("urn:a:b", relationships={"x"}) == {"type": "Relationship", "object": "urn:a:b"}
    assert _read(["urn:a:b"], relationships=["x"]) == {
        "type": "Relationship",
        "object": ["urn:a:b"],
    }
    # an attribute that says what it is wins over the names
    assert _read({"value": "urn:a:b"}, relationships={"x"}) == {
        "type": "Property",
        "value": "urn:a:b",
    }


@pytest.mark.parametrize("value", [21.3, {"a": 1}, [], [1], POINT])
def test_declared_relationship_with_a_non_uri_value_is_refused(value: Any) -> None:
    for representation in ("keyValues", "auto"):
        with pytest.raises(BadRequestData) as caught:
            _read(value, relationships={"x"}, representation=representation)
        assert f"entity {ID!r}: attribute 'x' is declared a Relationship" in (
            caught.value.detail or ""
        )


def test_relationship_inference_takes_ref_names_holding_uris() -> None:
    data = {
        "id": ID,
        "type": "T",
        "refDevice": "urn:ngsi-ld:Device:1",
        "refSensors": ["urn:ngsi-ld:Device:1", "https://example.org/d/2"],
        "refPointOfInterest": "28079004-Pza.deEspanya",  # not a URI: stays a Property
        "reference": "urn:ngsi-ld:Thing:1",  # not ref + capital
        "ref": "urn:ngsi-ld:Thing:1",
        "refEmpty": [],
        "sub": {"value": 1, "refThing": "urn:ngsi-ld:Thing:1"},  # sub-attributes are not inferred
    }
    out = to_normalized(data, infer_relationships=True)
    assert out["refDevice"] == {"type": "Relationship", "object": "urn:ngsi-ld:Device:1"}
    assert out["refSensors"]["type"] == "Relationship"
    for name in ("refPointOfInterest", "reference", "ref", "refEmpty"):
        assert out[name]["type"] == "Property", name
    assert out["sub"]["refThing"] == {"type": "Property", "value": "urn:ngsi-ld:Thing:1"}
    assert to_normalized(data)["refDevice"]["type"] == "Property"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"type": "Number", "value": 1}, "type 'Number' is not an NGSI-LD attribute type"),
        ({"type": "geo:json", "value": POINT}, "type 'geo:json' is not an NGSI-LD attribute type"),
        ({"value": 1, "object": "urn:a:b"}, "has both 'value' and 'object'"),
        ({"type": "Property"}, "a Property needs 'value'"),
        ({"type": "Relationship", "value": "urn:a:b"}, "a Relationship needs 'object'"),
        (
            {"type": "Property", "value": 1, "object": "urn:a:b"},
            "'object' does not belong in a Property, whose value is in 'value'",
        ),
        (
            {"value": 1, "sub": [{"value": 1}, {"value": 2}]},
            "sub-attribute 'sub' of 'x': a sub-attribute cannot",
        ),
    ],
)
def test_malformed_attributes_are_refused_with_the_reason(value: Any, message: str) -> None:
    with pytest.raises(BadRequestData) as caught:
        _read(value)
    detail = caught.value.detail or ""
    assert detail.startswith(f"entity {ID!r}: ")
    assert message in detail


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (21.3, "attribute 'x' is not in normalized form: got float 21.3"),
        (
            {"value": 1},
            "attribute 'x' is not in normalized form: got an object with members 'value'",
        ),
        ({"type": "Number", "value": 1}, "its type 'Number' is not an NGSI-LD attribute type"),
        ([], "got an array"),
        (
            {"type": "Property", "value": 1, "accuracy": 0.5},
            "sub-attribute 'accuracy' of 'x' is not in normalized form",
        ),
    ],
)
def test_normalized_mode_refuses_other_forms(value: Any, message: str) -> None:
    with pytest.raises(BadRequestData) as caught:
        _read(value, representation="normalized")
    assert message in (caught.value.detail or "")


def test_entity_must_be_an_object() -> None:
    with pytest.raises(BadRequestData, match="an entity must be a JSON object, got an array"):
        to_normalized([{"id": ID}])  # type: ignore[arg-type]


def test_unknown_representation_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="representation must be one of"):
        to_normalized({}, representation="simplified")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="representation must be"):
        from_normalized({}, "simplified")  # type: ignore[arg-type]


def test_fragments_without_id_and_type_convert() -> None:
    fragment = {"temperature": {"value": 21.3, "unitCode": "CEL"}}
    assert to_normalized(fragment) == {
        "temperature": {"type": "Property", "value": 21.3, "unitCode": "CEL"}
    }
    with pytest.raises(BadRequestData) as caught:
        to_normalized({"temperature": {"type": "Number", "value": 1}})
    assert (caught.value.detail or "").startswith("attribute 'temperature': ")


# -- writing concise --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "concise"),
    [
        ({"type": "Property", "value": 1}, 1),
        ({"type": "Property", "value": "x"}, "x"),
        ({"type": "Property", "value": None}, None),
        ({"type": "Property", "value": [1, 2]}, [1, 2]),
        ({"type": "Property", "value": {"a": 1}}, {"a": 1}),
        # values that would be read back as something else are wrapped
        ({"type": "Property", "value": {"value": 1}}, {"value": {"value": 1}}),
        ({"type": "Property", "value": {"object": "x"}}, {"value": {"object": "x"}}),
        (
            {"type": "Property", "value": {"type": "Property", "value": 1}},
            {"value": {"type": "Property", "value": 1}},
        ),
        (
            {"type": "Property", "value": {"type": "Relationship"}},
            {"value": {"type": "Relationship"}},
        ),
        ({"type": "Property", "value": [{"value": 1}]}, {"value": [{"value": 1}]}),
        # a GeoJSON value of a plain Property keeps its type
        ({"type": "Property", "value": POINT}, {"type": "Property", "value": POINT}),
        ({"type": "GeoProperty", "value": POINT}, POINT),
        (
            {"type": "GeoProperty", "value": POINT, "datasetId": "urn:d:1"},
            {"value": POINT, "datasetId": "urn:d:1"},
        ),
        # a GeoProperty whose value is not GeoJSON-shaped keeps its type (invalid, but not lost)
        (
            {"type": "GeoProperty", "value": "POINT(13 52)"},
            {"type": "GeoProperty", "value": "POINT(13 52)"},
        ),
        ({"type": "Relationship", "object": "urn:a:b"}, {"object": "urn:a:b"}),
        (
            {"type": "Relationship", "object": "urn:a:b", "objectType": "Device"},
            {"object": "urn:a:b", "objectType": "Device"},
        ),
    ],
)
def test_concise_attribute_forms(attribute: dict[str, Any], concise: Any) -> None:
    assert concise_attribute(attribute) == concise
    assert _read(concise) == attribute


def test_concise_multi_attribute_instances_are_never_bare() -> None:
    instances = [
        {"type": "Property", "value": 1},
        {"type": "GeoProperty", "value": POINT, "datasetId": "urn:d:1"},
    ]
    assert concise_attribute(instances) == [{"value": 1}, {"value": POINT, "datasetId": "urn:d:1"}]
    assert key_values_attribute(instances) == [1, POINT]


@pytest.mark.parametrize(
    ("value", "bare"),
    [
        (1, True),
        ("x", True),
        ([], True),
        ([1, {"value": 1}], True),
        ({"a": 1}, True),
        ({"type": "PostalAddress"}, True),
        ({"value": 1}, False),
        ({"type": "Property"}, False),
        (POINT, False),
        ([{"value": 1}], False),
        ([{"type": "GeoProperty"}], False),
    ],
)
def test_is_bare_value(value: Any, bare: bool) -> None:
    assert is_bare_value(value) is bare


def test_writers_refuse_what_is_not_normalized() -> None:
    for writer in (to_concise, to_key_values):
        with pytest.raises(BadRequestData) as caught:
            writer({"id": ID, "type": "T", "temperature": 21.3})
        assert (
            "attribute 'temperature' is not in normalized form (convert it with to_normalized"
            in (caught.value.detail or "")
        )
        with pytest.raises(BadRequestData, match="a Relationship needs 'object'"):
            writer({"id": ID, "type": "T", "r": {"type": "Relationship", "value": "urn:a:b"}})


# -- system attributes --------------------------------------------------------------------------


def test_sys_attrs_false_drops_system_attributes_everywhere() -> None:
    for function in (to_concise, to_key_values):
        out = function(NORMALIZED, sys_attrs=False)
        assert "createdAt" not in out
        assert "modifiedAt" not in out
    concise = to_concise(NORMALIZED, sys_attrs=False)
    assert "createdAt" not in concise["temperature"]
    normalized = to_normalized(NORMALIZED, sys_attrs=False)
    assert "createdAt" not in normalized
    assert "createdAt" not in normalized["temperature"]
    assert from_normalized(NORMALIZED, "normalized", sys_attrs=False) == normalized


def test_a_property_with_only_system_attributes_goes_bare_without_them() -> None:
    attribute = {"type": "Property", "value": 1, "modifiedAt": OBSERVED}
    assert concise_attribute(attribute) == {"value": 1, "modifiedAt": OBSERVED}
    assert concise_attribute(attribute, sys_attrs=False) == 1


def test_from_normalized_dispatches() -> None:
    assert from_normalized(NORMALIZED, "concise") == CONCISE
    assert from_normalized(NORMALIZED, "keyValues") == KEY_VALUES
    assert from_normalized(NORMALIZED, "normalized") == NORMALIZED
