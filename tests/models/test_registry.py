"""The model registry: type → class, subject, schema version and the subject's @context."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from models import (
    AirQualityObserved,
    ModelError,
    ModelRegistry,
    SmartDataModel,
    UnknownModel,
    WeatherObserved,
    default_registry,
    entity_from_ngsi,
    model_class,
    model_info,
)

SUBJECTS = {
    "Environment": [
        "AirQualityObserved",
        "FloodMonitoring",
        "IndoorEnvironmentObserved",
        "NoiseLevelObserved",
        "WaterObserved",
    ],
    "Weather": ["WeatherForecast", "WeatherObserved"],
    "Transportation": ["CrowdFlowObserved", "ItemFlowObserved", "TrafficFlowObserved"],
    "Parking": ["OffStreetParking", "OnStreetParking", "ParkingSpot"],
    "Device": ["Device", "DeviceMeasurement", "DeviceModel"],
}


def test_the_shipped_models_by_subject() -> None:
    assert default_registry.subjects() == SUBJECTS
    assert len(default_registry) == 16
    assert model_class("WeatherObserved") is WeatherObserved
    assert "AirQualityObserved" in default_registry
    assert "Bridge" not in default_registry


@pytest.mark.parametrize("type_name", sorted(t for types in SUBJECTS.values() for t in types))
def test_schema_version_and_context_follow_upstream(type_name: str, shared_dir: Path) -> None:
    info = model_info(type_name)
    schema_file = shared_dir / "sdm" / info.repository / type_name / "schema.json"
    assert info.schema_version == json.loads(schema_file.read_text())["$schemaVersion"]
    assert info.context_url == (
        f"https://raw.githubusercontent.com/smart-data-models/{info.repository}/master/"
        "context.jsonld"
    )
    assert (shared_dir / "sdm" / info.repository / "context.jsonld").is_file()
    assert info.model.type_name() == type_name
    assert default_registry.context_url(type_name) == info.context_url


def test_unknown_types() -> None:
    with pytest.raises(UnknownModel, match=r"'Bridge'.*known: AirQualityObserved"):
        model_class("Bridge")
    with pytest.raises(UnknownModel):
        entity_from_ngsi({"id": "urn:ngsi-ld:Bridge:1", "type": "Bridge"})
    with pytest.raises(ModelError, match="needs a string type"):
        entity_from_ngsi({"id": "urn:ngsi-ld:Bridge:1"})


def test_entities_are_read_by_their_type() -> None:
    reading = entity_from_ngsi(
        {
            "id": "urn:ngsi-ld:WeatherObserved:w1",
            "type": "WeatherObserved",
            "dateObserved": "2024-05-01T12:00:00Z",
            "location": {"type": "Point", "coordinates": [13.4, 52.5]},
            "temperature": 18.5,
        }
    )
    assert isinstance(reading, WeatherObserved)
    assert reading.to_ngsi()["temperature"]["unitCode"] == "CEL"


def test_a_registry_of_ones_own() -> None:
    class Beehive(SmartDataModel):
        subject: ClassVar[str] = "Agrifood"
        schema_version: ClassVar[str] = "0.0.1"
        type: Literal["Beehive"] = "Beehive"

    registry = ModelRegistry([AirQualityObserved])
    info = registry.register(Beehive)
    assert info.context_url.endswith("/dataModel.Agrifood/master/context.jsonld")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Beehive)
    registry.register(Beehive, replace=True)
    assert registry.types() == ["AirQualityObserved", "Beehive"]

    class Nameless(SmartDataModel):
        type: Literal["Nameless"] = "Nameless"

    with pytest.raises(TypeError, match="subject"):
        registry.register(Nameless)
