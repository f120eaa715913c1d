"""The pydantic Entity and attribute models."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest
from pydantic import ValidationError

from ngsi._entity import (
    Entity,
    GeoProperty,
    JsonProperty,
    LanguageProperty,
    ListProperty,
    Property,
    Relationship,
    VocabProperty,
    parse_attribute,
)
from ngsi._errors import BadRequestData
from ngsi._geometry import Point, Polygon
from ngsi._time import format_datetime, parse_datetime

ID = "urn:ngsi-ld:AirQualityObserved:berlin-mitte-01"
POINT = {"type": "Point", "coordinates": [13.4, 52.5]}
NOON = datetime(2024, 5, 1, 12, tzinfo=UTC)


def _entity(**attributes: Any) -> dict[str, Any]:
    return {"id": ID, "type": "AirQualityObserved", **attributes}


def _detail(data: dict[str, Any], **options: Any) -> str:
    with pytest.raises(BadRequestData) as caught:
        Entity.from_dict(data, **options)
    return caught.value.detail or ""


def test_build_with_keywords_and_write_every_representation() -> None:
    entity = Entity(
        id=ID,
        type="AirQualityObserved",
        attributes={
            "temperature": Property(
                value=21.3,
                unitCode="CEL",
                observedAt=NOON,
                attributes={"accuracy": Property(value=0.5)},
            ),
            "refDevice": Relationship(object="urn:ngsi-ld:Device:70b3d57ed0000001"),
            "name": LanguageProperty(languageMap={"de": "Mitte"}),
        },
        location=GeoProperty(value=Point(coordinates=[13.4, 52.5])),
    )
    assert entity.to_dict() == _entity(
        temperature={
            "type": "Property",
            "value": 21.3,
            "unitCode": "CEL",
            "observedAt": "2024-05-01T12:00:00Z",
            "accuracy": {"type": "Property", "value": 0.5},
        },
        refDevice={"type": "Relationship", "object": "urn:ngsi-ld:Device:70b3d57ed0000001"},
        name={"type": "LanguageProperty", "languageMap": {"de": "Mitte"}},
        location={"type": "GeoProperty", "value": POINT},
    )
    assert entity.to_dict("concise") == _entity(
        temperature={
            "value": 21.3,
            "unitCode": "CEL",
            "observedAt": "2024-05-01T12:00:00Z",
            "accuracy": 0.5,
        },
        refDevice={"object": "urn:ngsi-ld:Device:70b3d57ed0000001"},
        name={"languageMap": {"de": "Mitte"}},
        location=POINT,
    )
    assert entity.to_dict("keyValues") == _entity(
        temperature=21.3,
        refDevice="urn:ngsi-ld:Device:70b3d57ed0000001",
        name={"de": "Mitte"},
        location=POINT,
    )
    location = entity.location
    assert location is not None
    assert isinstance(location.value, Point)
    assert entity.observationSpace is None
    assert entity.operationSpace is None


def test_model_dump_and_validate_use_the_normalized_wire_form() -> None:
    data = _entity(
        temperature={"type": "Property", "value": 21.3, "observedAt": "2024-05-01T12:00:00.250Z"},
        createdAt="2024-05-01T11:00:00Z",
    )
    entity = Entity.model_validate(data)
    assert entity.model_dump() == data
    assert json.loads(entity.model_dump_json()) == data
    assert Entity.model_validate_json(json.dumps(data)) == entity
    temperature = entity.attributes["temperature"]
    assert isinstance(temperature, Property)
    assert temperature.model_dump() == data["temperature"]


def test_attribute_to_dict() -> None:
    prop = Property(value=21.3, unitCode="CEL", createdAt=NOON)
    assert prop.to_dict() == {"type": "Property", "value": 21.3, "unitCode": "CEL"}
    assert prop.to_dict(sys_attrs=True)["createdAt"] == "2024-05-01T12:00:00Z"
    assert prop.to_dict("concise") == {"value": 21.3, "unitCode": "CEL"}
    assert prop.to_dict("keyValues") == 21.3
    assert Property(value=1).to_dict("concise") == 1
    assert Relationship(object="urn:ngsi-ld:Thing:b").to_dict("keyValues") == "urn:ngsi-ld:Thing:b"
    with pytest.raises(ValueError, match="unknown representation"):
        prop.to_dict("simplified")  # type: ignore[arg-type]


# -- time ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "written"),
    [
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),
        ("2024-05-01T12:00:00.250Z", "2024-05-01T12:00:00.250Z"),
        ("2024-05-01T12:00:00.000Z", "2024-05-01T12:00:00Z"),
        ("2024-05-01T12:00:00.123456Z", "2024-05-01T12:00:00.123456Z"),
        ("2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00Z"),
        ("2020-09-16T13:30:00+05:30", "2020-09-16T08:00:00Z"),
        ("2024-05-01T12:00:00+00:00", "2024-05-01T12:00:00Z"),
        (datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2))), "2024-05-01T12:00:00Z"),
    ],
)
def test_observed_at_is_utc_with_z(given: Any, written: str) -> None:
    prop = Property(value=1, observedAt=given)
    assert prop.observedAt is not None
    assert prop.observedAt.tzinfo is UTC
    assert prop.to_dict()["observedAt"] == written


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("2024-05-01T12:00:00", "has no timezone; write it in UTC with a 'Z'"),
        (datetime(2024, 5, 1, 12), "has no timezone"),
        ("yesterday", "'yesterday' is not an ISO 8601 date-time"),
        (1714564800, "must be an ISO 8601 string, got int"),
    ],
)
def test_observed_at_must_be_an_aware_iso_datetime(given: Any, message: str) -> None:
    detail = _detail(_entity(t={"type": "Property", "value": 1, "observedAt": given}))
    assert detail.startswith(f"entity {ID!r}: attribute 't' (Property) observedAt: ")
    assert message in detail


# -- validation errors name the entity, the attribute, the problem -----------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "T"}, "entity: id is missing"),
        ({"id": ID}, f"entity {ID!r}: type is missing"),
        (
            {"id": "sensor-1", "type": "T"},
            "entity 'sensor-1': id: 'sensor-1' is not an absolute URI: it has no scheme",
        ),
        (_entity(type="Air Quality"), "type: entity type 'Air Quality' contains whitespace"),
        (_entity(type=[]), "type: entity type must not be an empty list"),
        (_entity(type=["A", "A"]), "entity type lists a name twice"),
        (
            _entity(scope="Berlin"),
            f"entity {ID!r}: scope 'Berlin' must be a path such as '/Berlin/Mitte'",
        ),
        (_entity(**{"air temperature": 1}), "attribute name 'air temperature' contains whitespace"),
        (_entity(**{"a=b": 1}), "attribute name 'a=b' contains '='"),
        (
            _entity(t={"type": "Property", "value": 1, "unitCode": ""}),
            "attribute 't' (Property): unitCode '' must be a non-empty code",
        ),
        (
            _entity(t={"type": "Property", "value": 1, "datasetId": "raw"}),
            "attribute 't' (Property) datasetId: 'raw' is not an absolute URI",
        ),
        (
            _entity(t={"type": "Relationship", "object": "Device:1 2"}),
            "attribute 't' (Relationship) object: 'Device:1 2' is not an absolute URI",
        ),
        (
            _entity(t={"type": "Relationship", "object": []}),
            "object must be a URI or a non-empty list",
        ),
        (
            _entity(t={"type": "Relationship", "object": "urn:ngsi-ld:Thing:b", "unitCode": "CEL"}),
            "attribute 't' (Relationship): 'unitCode' does not belong in a Relationship; "
            "it is a member of a Property",
        ),
        (
            _entity(
                t={"type": "GeoProperty", "value": {"type": "Point", "coordinates": [52.5, 113.4]}}
            ),
            "attribute 't' (GeoProperty) value Point: coordinates: "
            "latitude 113.4 is outside [-90, 90]",
        ),
        (
            _entity(t={"type": "GeoProperty", "value": "POINT(13 52)"}),
            "attribute 't' (GeoProperty) value",
        ),
        (
            _entity(t={"type": "LanguageProperty", "languageMap": {}}),
            "languageMap must name at least one language",
        ),
        (
            _entity(t={"type": "LanguageProperty", "languageMap": {"de de": "x"}}),
            "languageMap key 'de de' is not a language tag",
        ),
        (
            _entity(t=[{"type": "Property", "value": 1}, {"type": "Property", "value": 2}]),
            "attribute 't' has more than one instance without datasetId "
            "(only one default instance is allowed)",
        ),
        (
            _entity(
                t=[
                    {"type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:Dataset:1"},
                    {"type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:Dataset:1"},
                ]
            ),
            "attribute 't' has two instances with datasetId 'urn:ngsi-ld:Dataset:1'",
        ),
        (
            _entity(
                t=[
                    {"type": "Property", "value": 1},
                    {"type": "Property", "value": 2, "datasetId": "x"},
                ]
            ),
            "attribute 't' instance 1 (Property) datasetId: 'x' is not an absolute URI",
        ),
        (
            _entity(
                t={
                    "type": "Property",
                    "value": 1,
                    "u": {"type": "Property", "value": 2, "observedAt": "x"},
                }
            ),
            "attribute 't' (Property) sub-attribute 'u' (Property) observedAt: "
            "date-time 'x' is not an ISO 8601",
        ),
        (
            _entity(t={"type": "Property", "value": 1, "@id": "urn:x:y"}),
            "sub-attribute name '@id' starts with '@'",
        ),
        (
            _entity(t={"type": "Property", "value": float("inf")}),
            "value is inf, which JSON cannot carry",
        ),
        (_entity(t={"type": "VocabProperty", "vocab": "a b"}), "vocab 'a b' contains whitespace"),
    ],
)
def test_invalid_entities_say_where_and_why(data: dict[str, Any], message: str) -> None:
    assert message in _detail(data)


def test_sdm_v2_attributes_are_refused_with_a_hint() -> None:
    detail = _detail(_entity(temperature={"type": "Number", "value": 12.2}))
    assert "attribute 'temperature': type 'Number' is not an NGSI-LD attribute type" in detail
    assert "representation='keyValues'" in detail


def test_many_problems_are_summarised() -> None:
    data = _entity(
        **{f"a{index}": {"type": "Property", "value": 1, "datasetId": "x"} for index in range(8)}
    )
    assert "and 3 more problems" in _detail(data)


def test_property_values_must_be_plain_json() -> None:
    class Level(StrEnum):
        MODERATE = "moderate"

    assert Property(value=Level.MODERATE).to_dict("keyValues") == "moderate"
    assert Property(value={"a": [1, 2.5, True, None, "x"]}).value == {
        "a": [1, 2.5, True, None, "x"]
    }
    for bad, message in [
        ((1, 2), "value is a tuple, which is not a JSON value"),
        ({1: "a"}, "value has a non-string key 1"),
        ({"a": [1, {2, 3}]}, "value.a[1] is a set"),
        (
            NOON,
            "value is a datetime, which is not a JSON value "
            "(format dates with ngsi.format_datetime)",
        ),
    ]:
        with pytest.raises(ValidationError) as caught:
            Property(value=bad)
        assert message in str(caught.value)


# -- multi-attributes, access -----------------------------------------------------------------


def test_multi_attribute_access_by_dataset_id() -> None:
    entity = Entity.from_dict(
        _entity(
            no2=[
                {"value": 23, "unitCode": "GQ"},
                {"value": 25, "unitCode": "GQ", "datasetId": "urn:ngsi-ld:Dataset:raw"},
            ],
            location=[{"value": POINT, "datasetId": "urn:ngsi-ld:Dataset:gps"}],
        )
    )
    default = entity.attribute("no2")
    raw = entity.attribute("no2", dataset_id="urn:ngsi-ld:Dataset:raw")
    assert isinstance(default, Property)
    assert default.value == 23
    assert isinstance(raw, Property)
    assert raw.value == 25
    assert entity.attribute("no2", dataset_id="urn:ngsi-ld:Dataset:other") is None
    assert entity.attribute("pm10") is None
    assert entity.location is None  # no default instance
    assert isinstance(
        entity.attribute("location", dataset_id="urn:ngsi-ld:Dataset:gps"), GeoProperty
    )


def test_location_that_is_not_a_geo_property() -> None:
    entity = Entity.from_dict(_entity(location={"type": "Property", "value": "Berlin"}))
    assert entity.location is None
    assert entity.attribute("location") == Property(value="Berlin")


def test_entity_types_and_scope_lists() -> None:
    entity = Entity.from_dict(
        _entity(type=["AirQualityObserved", "Sensor"], scope=["/Berlin", "/Berlin/Mitte"])
    )
    assert entity.types == ["AirQualityObserved", "Sensor"]
    assert Entity(id=ID, type="A").types == ["A"]
    assert entity.to_dict()["scope"] == ["/Berlin", "/Berlin/Mitte"]


def test_context_is_kept_aside_and_written_back() -> None:
    context = [
        "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"
    ]
    entity = Entity.from_dict(_entity(**{"@context": context}))
    assert entity.context == context
    assert "@context" not in entity.attributes
    for representation in ("normalized", "concise", "keyValues"):
        assert entity.to_dict(representation)["@context"] == context
    with pytest.raises(ValidationError, match="either 'context' or '@context'"):
        Entity.model_validate({"id": ID, "type": "T", "context": "a", "@context": "b"})


def test_sys_attrs_are_written_only_when_asked() -> None:
    data = _entity(
        createdAt="2024-05-01T11:00:00Z",
        modifiedAt="2024-05-01T12:00:00Z",
        t={"type": "Property", "value": 1, "createdAt": "2024-05-01T11:00:00Z"},
    )
    entity = Entity.from_dict(data)
    assert entity.createdAt == datetime(2024, 5, 1, 11, tzinfo=UTC)
    assert entity.to_dict() == _entity(t={"type": "Property", "value": 1})
    assert entity.to_dict(sys_attrs=True) == data
    assert entity.to_dict("keyValues") == _entity(t=1)
    assert entity.to_dict("keyValues", sys_attrs=True)["createdAt"] == "2024-05-01T11:00:00Z"


def test_an_attribute_named_attributes() -> None:
    data = _entity(attributes={"type": "Property", "value": ["a", "b"]})
    entity = Entity.from_dict(data)
    assert entity.attributes["attributes"] == Property(value=["a", "b"])
    assert entity.to_dict() == data
    sub = {"type": "Property", "value": 1, "attributes": {"type": "Property", "value": 2}}
    assert Entity.from_dict(_entity(t=sub)).to_dict() == _entity(t=sub)


def test_other_attribute_kinds() -> None:
    data = _entity(
        raw={"type": "JsonProperty", "json": {"type": "Property", "value": 1}},
        category={"type": "VocabProperty", "vocab": ["traffic", "environment"]},
        samples={"type": "ListProperty", "valueList": [1, {"a": 2}]},
        owner={"type": "Relationship", "object": "urn:ngsi-ld:Person:1", "objectType": "Person"},
    )
    entity = Entity.from_dict(data)
    raw = entity.attributes["raw"]
    assert isinstance(raw, JsonProperty)
    assert raw.value == {"type": "Property", "value": 1}
    assert JsonProperty(value=[1]).to_dict() == {"type": "JsonProperty", "json": [1]}
    assert isinstance(entity.attributes["category"], VocabProperty)
    assert isinstance(entity.attributes["samples"], ListProperty)
    assert entity.to_dict() == data
    assert entity.to_dict("keyValues")["raw"] == {"type": "Property", "value": 1}


def test_polygon_location_round_trips() -> None:
    ring = [[-3.8035, 43.4629], [-3.8031, 43.4630], [-3.8031, 43.4628], [-3.8035, 43.4629]]
    data = _entity(
        location={"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": [ring]}}
    )
    entity = Entity.from_dict(data)
    assert entity.location is not None
    assert isinstance(entity.location.value, Polygon)
    assert entity.to_dict() == data


def test_parse_attribute() -> None:
    assert parse_attribute(21.3) == Property(value=21.3)
    assert parse_attribute({"object": "urn:ngsi-ld:Thing:b"}) == Relationship(
        object="urn:ngsi-ld:Thing:b"
    )
    assert parse_attribute(POINT) == GeoProperty(value=Point(coordinates=[13.4, 52.5]))
    many = parse_attribute([{"value": 1}, {"value": 2, "datasetId": "urn:ngsi-ld:Dataset:2"}])
    assert isinstance(many, list)
    assert len(many) == 2
    with pytest.raises(BadRequestData, match="attribute 'temperature' has more than one instance"):
        parse_attribute([{"value": 1}, {"value": 2}], name="temperature")
    with pytest.raises(BadRequestData, match=r"attribute 'temperature' \(Property\) observedAt"):
        parse_attribute({"value": 1, "observedAt": "now"}, name="temperature")


def test_keyword_attributes_and_typos() -> None:
    entity = Entity(id=ID, type="T", temperature=Property(value=1))
    assert entity.attributes == {"temperature": Property(value=1)}
    with pytest.raises(ValidationError):
        Entity(id=ID, type="T", scopes="/Berlin")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="attribute 'temperature' is given twice"):
        Entity.model_validate(
            {
                "id": ID,
                "type": "T",
                "attributes": {"temperature": Property(value=1)},
                "temperature": Property(value=2),
            }
        )


def test_format_and_parse_datetime() -> None:
    assert (
        format_datetime(datetime(999, 1, 2, 3, 4, 5, 6000, tzinfo=UTC))
        == "0999-01-02T03:04:05.006Z"
    )
    assert parse_datetime("2024-05-01T12:00:00.5+01:00") == datetime(
        2024, 5, 1, 11, 0, 0, 500000, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="cannot format naive datetime"):
        format_datetime(datetime(2024, 5, 1))
    with pytest.raises(ValueError, match="observedAt '2024-05-01' has no timezone"):
        parse_datetime("2024-05-01", what="observedAt")
