"""Validation against the official Smart Data Models schemas: offline, formats checked, compiled
once; a missing schema is not an invalid entity."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from schemas import (
    EntityInvalid,
    SchemaError,
    SchemaNotFound,
    SdmSchemas,
    Violation,
    compile_validator,
    default_sdm_dir,
    key_values,
    local_path_for_url,
    sdm_schemas,
    urls_for_local_path,
)

AQO: dict[str, Any] = {
    "id": "urn:ngsi-ld:AirQualityObserved:berlin-mitte",
    "type": "AirQualityObserved",
    "dateObserved": {
        "type": "Property",
        "value": {"@type": "DateTime", "@value": "2024-05-01T12:00:00Z"},
    },
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [13.4, 52.52]}},
    "temperature": {"type": "Property", "value": 21.3, "unitCode": "CEL"},
    "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:70B3D57ED0000001"},
}


def test_a_valid_normalized_entity_has_no_violations_and_nothing_is_fetched(
    sdm_dir: Path, no_network: list[Any]
) -> None:
    fresh = SdmSchemas(sdm_dir)  # registry built and schema compiled under the block
    assert fresh.violations(AQO) == []
    assert fresh.is_valid(AQO)
    fresh.validate(AQO)
    assert no_network == []


def test_violations_name_entity_attribute_rule_and_message(sdm: SdmSchemas) -> None:
    entity = copy.deepcopy(AQO)
    entity["dateObserved"]["value"]["@value"] = "yesterday"
    entity["relativeHumidity"] = {"type": "Property", "value": 54}
    entity["location"]["value"]["coordinates"] = [13.4]
    del entity["refDevice"]
    entity["refDevice"] = {"type": "Relationship", "object": "not an id"}
    found = {(v.path, v.rule) for v in sdm.violations(entity)}
    assert found == {
        ("dateObserved", "format"),
        ("relativeHumidity", "maximum"),
        ("location/coordinates", "minItems"),
        ("refDevice", "anyOf"),
    }
    violation = next(v for v in sdm.violations(entity) if v.rule == "maximum")
    assert violation.entity_id == AQO["id"]
    assert violation.entity_type == "AirQualityObserved"
    assert violation.attribute == "relativeHumidity"
    assert "54 is greater than the maximum of 1" in violation.message
    assert str(violation).startswith(f"entity {AQO['id']!r}, attribute 'relativeHumidity'")
    with pytest.raises(EntityInvalid) as invalid:
        sdm.validate(entity)
    assert invalid.value.entity_id == AQO["id"]
    assert len(invalid.value.violations) == 4
    assert "relativeHumidity" in str(invalid.value)
    assert AQO["id"] in str(invalid.value)


def test_missing_required_attributes_are_named(sdm: SdmSchemas) -> None:
    entity = {"id": "urn:ngsi-ld:AirQualityObserved:x", "type": "AirQualityObserved"}
    assert {(v.path, v.rule) for v in sdm.violations(entity)} == {
        ("dateObserved", "required"),
        ("location", "required"),
    }
    assert [v.rule for v in sdm.violations({"id": "x"})] == ["required"]
    assert [v.rule for v in sdm.violations([AQO])] == ["type"]


def test_formats_are_checked(sdm: SdmSchemas) -> None:
    entity = {**key_values(AQO), "seeAlso": "not a uri", "dateCreated": "2024-13-01T00:00:00Z"}
    assert {(v.path, v.rule) for v in sdm.violations(entity)} == {
        ("seeAlso", "oneOf"),
        ("dateCreated", "format"),
    }
    device = {
        "id": "urn:ngsi-ld:Device:1",
        "type": "Device",
        "controlledProperty": ["temperature"],
        "ipAddress": ["999.1.1.1"],
    }
    assert [(v.path, v.rule) for v in sdm.violations(device)] == [("ipAddress/0", "oneOf")]


def test_a_missing_schema_is_not_an_invalid_entity(sdm: SdmSchemas, tmp_path: Path) -> None:
    with pytest.raises(SchemaNotFound) as missing:
        sdm.violations({"id": "urn:ngsi-ld:Bridge:1", "type": "Bridge"})
    assert missing.value.name == "Bridge"
    assert not isinstance(missing.value, EntityInvalid)
    assert not issubclass(EntityInvalid, SchemaNotFound)
    nowhere = SdmSchemas(tmp_path / "nothing-here")
    with pytest.raises(SchemaNotFound, match="drehscheibe models pull"):
        nowhere.validate(AQO)
    assert nowhere.types() == []


def test_a_missing_referenced_file_is_named(sdm_dir: Path, tmp_path: Path) -> None:
    copy_dir = tmp_path / "sdm"
    shutil.copytree(sdm_dir, copy_dir)
    (copy_dir / "common-schema.json").unlink()
    broken = SdmSchemas(copy_dir)
    with pytest.raises(SchemaNotFound) as missing:
        broken.validator("AirQualityObserved")
    assert "https://smart-data-models.github.io/data-models/common-schema.json" in str(
        missing.value
    )
    assert str(copy_dir / "common-schema.json") in str(missing.value)


def test_references_resolve_under_every_url_spelling(tmp_path: Path) -> None:
    subject = tmp_path / "dataModel.Demo"
    (subject / "Thing").mkdir(parents=True)
    (tmp_path / "common-schema.json").write_text(
        json.dumps(
            {
                "$id": "https://smart-data-models.github.io/data-models/common-schema.json",
                "definitions": {"Label": {"type": "string", "minLength": 3}},
            }
        )
    )
    (subject / "Demo-schema.json").write_text(
        json.dumps({"definitions": {"Level": {"type": "integer", "maximum": 5}}})
    )
    raw_main = "https://raw.githubusercontent.com/smart-data-models/dataModel.Demo/main/"
    (subject / "Thing" / "schema.json").write_text(
        json.dumps(
            {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": "https://smart-data-models.github.io/dataModel.Demo/Thing/schema.json",
                "type": "object",
                "properties": {
                    "label": {
                        "$ref": "https://raw.githubusercontent.com/smart-data-models/"
                        "data-models/master/common-schema.json#/definitions/Label"
                    },
                    "level": {"$ref": f"{raw_main}Demo-schema.json#/definitions/Level"},
                    "other": {"$ref": "../Demo-schema.json#/definitions/Level"},
                },
            }
        )
    )
    demo = SdmSchemas(tmp_path)
    thing = {"id": "urn:ngsi-ld:Thing:1", "type": "Thing", "label": "ab", "level": 6, "other": 7}
    assert {(v.path, v.rule) for v in demo.violations(thing)} == {
        ("label", "minLength"),
        ("level", "maximum"),
        ("other", "maximum"),
    }


def test_compiled_validators_are_reused(sdm_dir: Path) -> None:
    schemas = SdmSchemas(sdm_dir)
    assert schemas.validator("WeatherObserved") is schemas.validator("WeatherObserved")
    assert sdm_schemas(sdm_dir) is sdm_schemas(str(sdm_dir))


def test_the_directory_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DREHSCHEIBE_SDM_SCHEMAS", str(tmp_path))
    assert default_sdm_dir() == tmp_path
    assert SdmSchemas().root == tmp_path
    monkeypatch.delenv("DREHSCHEIBE_SDM_SCHEMAS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_sdm_dir() == tmp_path / "data" / "drehscheibe" / "sdm"


def test_normalized_is_reduced_to_key_values() -> None:
    entity = {
        **AQO,
        "@context": ["https://example.org/context.jsonld"],
        "name": {"type": "LanguageProperty", "languageMap": {"de": "Mitte"}},
        "owner": {"type": "ListRelationship", "objectList": [{"object": "urn:ngsi-ld:Person:1"}]},
        "pm10": [
            {"type": "Property", "value": 9, "datasetId": "urn:ngsi-ld:Dataset:b"},
            {"type": "Property", "value": 7},
        ],
    }
    assert key_values(entity) == {
        "id": AQO["id"],
        "type": "AirQualityObserved",
        "dateObserved": "2024-05-01T12:00:00Z",
        "location": {"type": "Point", "coordinates": [13.4, 52.52]},
        "temperature": 21.3,
        "refDevice": "urn:ngsi-ld:Device:70B3D57ED0000001",
        "name": {"de": "Mitte"},
        "owner": ["urn:ngsi-ld:Person:1"],
        "pm10": 7,
    }
    concise = {"id": "x", "type": "T", "a": {"value": 1, "unitCode": "CEL"}, "b": {"object": "u"}}
    assert key_values(concise, representation="concise") == {
        "id": "x",
        "type": "T",
        "a": 1,
        "b": "u",
    }
    assert key_values(concise, representation="keyValues") == concise


def test_every_instance_of_a_multi_attribute_is_checked(sdm: SdmSchemas) -> None:
    entity = {
        **AQO,
        "pm10": [
            {"type": "Property", "value": 7},
            {"type": "Property", "value": -1, "datasetId": "urn:ngsi-ld:Dataset:b"},
        ],
    }
    assert [(v.path, v.rule) for v in sdm.violations(entity)] == [("pm10", "minimum")]


def test_the_schema_directory_knows_urls_and_contexts(sdm: SdmSchemas) -> None:
    assert "AirQualityObserved" in sdm.types()
    assert sdm.schema_version("AirQualityObserved") == "0.1.4"
    contexts = sdm.context_files()
    url = "https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/master/context.jsonld"
    assert contexts[url] == sdm.root / "dataModel.Weather" / "context.jsonld"
    assert urls_for_local_path("common-schema.json") == [
        "https://smart-data-models.github.io/data-models/common-schema.json",
        "https://raw.githubusercontent.com/smart-data-models/data-models/master/common-schema.json",
    ]
    assert (
        local_path_for_url(
            "https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/main/"
            "weather-schema.json#/definitions/Weather-Commons"
        )
        == "dataModel.Weather/weather-schema.json"
    )
    assert local_path_for_url("https://example.org/schema.json") is None
    assert local_path_for_url("https://smart-data-models.github.io/dataModel.X/../../etc") is None


def test_an_unreadable_schema_file_is_a_schema_error(tmp_path: Path) -> None:
    (tmp_path / "dataModel.Demo" / "Thing").mkdir(parents=True)
    (tmp_path / "dataModel.Demo" / "Thing" / "schema.json").write_text("{not json")
    with pytest.raises(SchemaError, match="not valid JSON"):
        SdmSchemas(tmp_path).violations({"id": "x", "type": "Thing"})


# -- the discriminated `oneOf` of the compiled validators decides exactly as `oneOf` does

_KINDS = st.sampled_from(
    ["Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon", "Circle"]
)
_NUMBERS = st.one_of(st.floats(-200, 200, allow_nan=False), st.integers(-5, 5), st.just("1"))
_NESTED = st.recursive(_NUMBERS, lambda inner: st.lists(inner, max_size=5), max_leaves=12)
_GEOMETRIES = st.fixed_dictionaries(
    {}, optional={"type": _KINDS, "coordinates": _NESTED, "bbox": st.lists(_NUMBERS, max_size=5)}
)


@pytest.fixture(scope="module")
def location_schemas(shared_dir: Path) -> tuple[Any, Any]:
    common = json.loads((shared_dir / "sdm" / "common-schema.json").read_text())
    location = common["definitions"]["Location-Commons"]["properties"]["location"]
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **location}
    from referencing import Registry

    return compile_validator(schema, Registry()), Draft202012Validator(schema)


@settings(max_examples=300, deadline=None)
@given(geometry=_GEOMETRIES)
def test_discriminated_one_of_agrees_with_one_of(
    geometry: dict[str, Any], location_schemas: tuple[Any, Any]
) -> None:
    fast, plain = location_schemas
    assert fast.is_valid(geometry) == plain.is_valid(geometry)
    if not fast.is_valid(geometry):
        assert all(isinstance(error.message, str) for error in fast.iter_errors(geometry))


def test_violation_is_a_frozen_record() -> None:
    violation = Violation(path="a/0", rule="type", message="m")
    assert violation.attribute == "a"
    assert Violation(path="", rule="type", message="m").attribute is None
    with pytest.raises(ValueError, match="frozen"):
        violation.rule = "other"  # type: ignore[misc]
