"""The JSON Schemas the project publishes for its models, and the loader of its own schemas."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from models import default_registry, entity_json_schema
from models._schema import SCHEMA_ID_PREFIX
from schemas import (
    OWN_SCHEMA_DIR,
    OWN_SCHEMA_ID_PREFIX,
    SchemaNotFound,
    document_validator,
    load_schema,
    schema_names,
    validate_document,
)
from tests.models.test_examples import DEFECTS

MODELS = [pytest.param(info.model, id=info.type_name) for info in default_registry]


@pytest.mark.parametrize("model", MODELS)
def test_committed_schema_matches_the_model(model: Any) -> None:
    committed = load_schema(model.type_name())
    assert committed == entity_json_schema(model), (
        f"schemas/json/{model.type_name()}.schema.json is out of date: run "
        "`drehscheibe models schemas --write`"
    )


def test_no_stale_entity_schemas() -> None:
    entity_schemas = {
        name for name in schema_names() if load_schema(name).get("x-ngsi-ld") is not None
    }
    assert entity_schemas == set(default_registry.types())


def test_both_packages_agree_on_the_id_prefix() -> None:
    assert SCHEMA_ID_PREFIX == OWN_SCHEMA_ID_PREFIX
    for name in schema_names():
        assert load_schema(name)["$id"] == OWN_SCHEMA_ID_PREFIX + name


def test_schemas_are_package_data() -> None:
    assert OWN_SCHEMA_DIR.parent.name == "schemas"
    assert (OWN_SCHEMA_DIR / "AirQualityObserved.schema.json").is_file()


def test_a_published_schema_states_units_kinds_and_context() -> None:
    schema = load_schema("AirQualityObserved")
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["temperature"]["x-ngsi-ld"] == {
        "type": "Property",
        "unitCode": "CEL",
    }
    assert schema["properties"]["refDevice"]["x-ngsi-ld"] == {"type": "Relationship"}
    assert schema["properties"]["location"]["x-ngsi-ld"] == {"type": "GeoProperty"}
    assert schema["x-ngsi-ld"]["@context"] == (
        "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
        "context.jsonld"
    )
    assert set(schema["required"]) == {"id", "type", "dateObserved", "location"}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(path, id=f"{path.parents[1].name}/{path.name}")
        for path in sorted(
            (Path(__file__).resolve().parents[2] / ".." / "shared" / "sdm").glob(
                "*/*/examples/example.json"
            )
        )
    ],
)
def test_official_key_values_examples_pass_the_published_schema(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    defect = DEFECTS.get((data["type"], path.name))
    if defect is not None:
        found = {(v.attribute, v.rule) for v in validate_document(data["type"], data)}
        assert {name for name, _ in found} == defect.model
        data = copy.deepcopy(data)
        defect.fix(data)
    assert validate_document(data["type"], data) == []


def test_validate_document_reports_paths() -> None:
    bad = {
        "id": "urn:ngsi-ld:ParkingSpot:1",
        "type": "ParkingSpot",
        "location": {"type": "Point", "coordinates": [200, 10]},
        "status": "vacant",
        "category": ["onStreet", "onStreet"],
        "refParkingSite": "urn:ngsi-ld:OnStreetParking:z",
    }
    found = {(v.path, v.rule) for v in validate_document("ParkingSpot", bad)}
    assert ("status", "enum") in found
    assert ("category", "uniqueItems") in found
    assert any(path.startswith("location") for path, _ in found)
    assert all(v.entity_id == bad["id"] for v in validate_document("ParkingSpot", bad))


def test_unknown_schema_names() -> None:
    with pytest.raises(SchemaNotFound, match=r"no schema for 'no-such-schema'.*known: "):
        load_schema("no-such-schema")
    with pytest.raises(SchemaNotFound):
        validate_document("../pyproject", {})
    assert document_validator("WeatherObserved") is document_validator("WeatherObserved")
