"""Every built-in profile, with what its kind of sensor really sends, makes entities that
validate against the official Smart Data Models schemas (offline, ../shared/sdm) and the
models, whose every attribute expands to its pinned IRI with its subject's own @context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.mapping import MappingConfig, map_uplink, validate_mapped, validate_profile_shapes
from agents.profiles import ProfileCatalog
from agents.registry import RegisteredDevice
from models._contexts import attribute_iris
from ngsi import ContextStore
from schemas import SdmSchemas
from tests.mapping._uplinks import GATEWAY_TIME, RECEIVED, uplink_for

PINNED: dict[str, dict[str, str]] = attribute_iris()
PROFILES = sorted(ProfileCatalog().names())
CONFIG = MappingConfig(data_provider="Stadt Musterstadt", source="https://lora.musterstadt.de")
# what the official schema requires and the entity's admin (not the agent) owns
ADMIN_OWNED = {"ParkingSpot": {"refParkingSite"}, "Device": {"controlledProperty"}}


@pytest.fixture(scope="module")
def catalog() -> ProfileCatalog:
    return ProfileCatalog()


@pytest.fixture(scope="module")
def sdm(shared_dir: Path) -> SdmSchemas:
    return SdmSchemas(shared_dir / "sdm")


@pytest.fixture(scope="module")
def contexts(shared_dir: Path) -> Any:
    from models import default_registry

    preload = {
        info.context_url: shared_dir / "sdm" / info.repository / "context.jsonld"
        for info in default_registry
    }
    return ContextStore(preload=preload, allow_network=False)


def device_for(profile: str) -> RegisteredDevice:
    return RegisteredDevice(
        dev_eui="70B3D57ED0000001",
        profile=profile,
        measuring_point="mitte-01",
        location={"type": "Point", "coordinates": [13.405, 52.52]},
    )


def mapped_for(catalog: ProfileCatalog, name: str) -> Any:
    profile = catalog.get(name)
    uplink = uplink_for(name)
    measurements = catalog.codec(name).decode(uplink.payload or b"", f_port=1, uplink=uplink)
    return map_uplink(uplink, measurements, device_for(name), profile, now=RECEIVED, config=CONFIG)


@pytest.mark.parametrize("name", PROFILES)
def test_builtin_profile_entities_validate_against_the_official_schemas(
    name: str, catalog: ProfileCatalog, sdm: SdmSchemas
) -> None:
    mapped = mapped_for(catalog, name)
    assert mapped.warnings == ()
    types = [entity["type"] for entity in mapped.entities]
    assert types[-1] == "Device"
    assert len(types) == len(catalog.get(name).entities) + 1, types
    for report in validate_mapped(mapped, sdm=sdm):
        assert report.problems == [], (report.entity_id, report.problems)
        assert set(report.admin_owned) <= ADMIN_OWNED.get(report.key, set()), report


@pytest.mark.parametrize("name", PROFILES)
def test_builtin_profile_shapes_validate(
    name: str, catalog: ProfileCatalog, sdm: SdmSchemas
) -> None:
    for report in validate_profile_shapes(catalog.get(name), sdm=sdm):
        assert report.ok, (report.key, report.problems)


@pytest.mark.parametrize("name", PROFILES)
def test_every_attribute_written_expands_to_its_pinned_iri(
    name: str, catalog: ProfileCatalog, contexts: Any
) -> None:
    for entity in mapped_for(catalog, name).entities:
        pinned = PINNED[entity["type"]]
        assert entity["@context"] == pinned["@context"]
        context = contexts.resolve(entity["@context"])
        for attribute in entity:
            if attribute in ("id", "type", "@context"):
                continue
            assert attribute in pinned, f"{entity['type']}.{attribute} is not a model attribute"
            assert context.expand_term(attribute) == pinned[attribute], attribute


@pytest.mark.parametrize("name", PROFILES)
def test_every_measured_property_has_a_unit_and_its_time(
    name: str, catalog: ProfileCatalog
) -> None:
    profile = catalog.get(name)
    mapped = mapped_for(catalog, name)
    for entity, spec in zip(mapped.entities, profile.entities, strict=False):
        for attribute in spec.attributes:
            if attribute not in entity:
                continue
            written = entity[attribute]
            assert written["observedAt"].endswith("Z")
            if isinstance(written["value"], int | float) and not isinstance(written["value"], bool):
                assert written.get("unitCode"), f"{entity['type']}.{attribute}"


def test_air_quality_values(catalog: ProfileCatalog) -> None:
    aqo, device = mapped_for(catalog, "air-quality-lpp").entities
    assert aqo["id"] == "urn:ngsi-ld:AirQualityObserved:mitte-01"
    assert aqo["refDevice"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:Device:70B3D57ED0000001",
    }
    assert aqo["temperature"] == {
        "type": "Property",
        "value": 21.3,
        "observedAt": "2024-05-01T12:00:04.512Z",
        "unitCode": "CEL",
    }
    assert aqo["relativeHumidity"]["value"] == 0.545
    assert aqo["co2"]["value"] == 612
    assert aqo["co2"]["unitCode"] == "59"
    assert aqo["pm25"]["value"] == 12.5
    assert aqo["dateObserved"]["value"] == {
        "@type": "DateTime",
        "@value": "2024-05-01T12:00:04.512Z",
    }
    assert aqo["typeofLocation"] == {"type": "Property", "value": "outdoor"}
    assert aqo["dataProvider"]["value"] == "Stadt Musterstadt"
    assert aqo["source"]["value"] == "https://lora.musterstadt.de"
    assert device["batteryLevel"]["value"] == 0.87
    assert device["rssi"]["value"] == -97.0
    assert device["rssi"]["unitCode"] == "DBM"
    assert device["rssi"]["snr"] == {"type": "Property", "value": 7.5, "unitCode": "2N"}
    assert device["rssi"]["gateway"]["value"] == "gw-rathaus"
    assert device["dateLastValueReported"]["value"]["@value"] == "2024-05-01T12:00:05Z"


def test_parking_occupancy(catalog: ProfileCatalog) -> None:
    spot, _device = mapped_for(catalog, "parking-occupancy-lpp").entities
    assert spot["status"]["value"] == "occupied"
    assert "unitCode" not in spot["status"]
    assert spot["refDevice"]["object"] == ["urn:ngsi-ld:Device:70B3D57ED0000001"]
    assert spot["category"]["value"] == ["onStreet"]


def test_noise_is_an_observation_over_the_reporting_period(catalog: ProfileCatalog) -> None:
    noise, _device = mapped_for(catalog, "noise-level").entities
    assert noise["LAeq"]["value"] == 58.3
    assert noise["dateObservedFrom"]["value"]["@value"] == "2024-05-01T11:55:04.512Z"
    assert noise["dateObservedTo"]["value"]["@value"] == "2024-05-01T12:00:04.512Z"
    assert noise["dateObserved"]["value"] == "2024-05-01T11:55:04.512Z/2024-05-01T12:00:04.512Z"


def test_traffic_and_people_counters(catalog: ProfileCatalog) -> None:
    traffic, _ = mapped_for(catalog, "traffic-counter").entities
    assert traffic["intensity"] == {
        "type": "Property",
        "value": 124,
        "observedAt": "2024-05-01T12:00:04.512Z",
        "unitCode": "C62",
    }
    assert traffic["averageVehicleSpeed"]["value"] == 42.6
    assert traffic["occupancy"]["value"] == 0.12
    crowd, _ = mapped_for(catalog, "people-counter").entities
    assert (crowd["peopleCount"]["value"], crowd["peopleCountTowards"]["value"]) == (310, 170)
    assert crowd["peopleCountAway"]["value"] == 140


def test_soil_moisture_is_one_device_measurement_per_quantity(catalog: ProfileCatalog) -> None:
    moisture, temperature, _device = mapped_for(catalog, "soil-moisture-lpp").entities
    assert moisture["id"] == "urn:ngsi-ld:DeviceMeasurement:mitte-01:soilMoisture"
    assert moisture["numValue"]["value"] == 34
    assert moisture["controlledProperty"]["value"] == "soilMoisture"
    assert temperature["id"] == "urn:ngsi-ld:DeviceMeasurement:mitte-01:soilTemperature"
    assert temperature["numValue"]["unitCode"] == "CEL"


def test_ttn_normalized_payload_maps_once_for_every_device(catalog: ProfileCatalog) -> None:
    mapped = mapped_for(catalog, "ttn-normalized")
    by_id = {entity["id"]: entity for entity in mapped.entities}
    weather = by_id["urn:ngsi-ld:WeatherObserved:mitte-01"]
    # the payload's own time, converted to UTC, comes first (design decision 6)
    assert mapped.time_source == "payload"
    assert weather["temperature"]["observedAt"] == "2024-05-01T09:59:30Z"
    assert weather["relativeHumidity"]["value"] == 0.43
    assert weather["windSpeed"]["value"] == 3.2
    assert weather["atmosphericPressure"]["value"] == 1012.5
    air = by_id["urn:ngsi-ld:AirQualityObserved:mitte-01"]
    assert air["co2"]["value"] == 780
    assert by_id["urn:ngsi-ld:DeviceMeasurement:mitte-01:soilMoisture"]["numValue"]["value"] == 31.5
    leak = by_id["urn:ngsi-ld:DeviceMeasurement:mitte-01:waterLeak"]
    assert leak["textValue"]["value"] == "dry"


def test_ttn_normalized_writes_air_quality_only_with_co2(catalog: ProfileCatalog) -> None:
    profile = catalog.get("ttn-normalized")
    uplink = uplink_for("ttn-normalized", normalized_payload=[{"air": {"temperature": 20.0}}])
    measurements = catalog.codec("ttn-normalized").decode(b"", f_port=1, uplink=uplink)
    mapped = map_uplink(uplink, measurements, device_for("ttn-normalized"), profile, now=RECEIVED)
    assert [entity["type"] for entity in mapped.entities] == ["WeatherObserved", "Device"]
    assert mapped.time_source == "gateway"
    assert mapped.observed_at == GATEWAY_TIME


def test_ttn_normalized_position_is_the_location(catalog: ProfileCatalog) -> None:
    profile = catalog.get("ttn-normalized")
    uplink = uplink_for(
        "ttn-normalized",
        normalized_payload=[
            {"air": {"temperature": 20.0}, "position": {"latitude": 48.137, "longitude": 11.575}}
        ],
    )
    measurements = catalog.codec("ttn-normalized").decode(b"", f_port=1, uplink=uplink)
    mapped = map_uplink(uplink, measurements, device_for("ttn-normalized"), profile, now=RECEIVED)
    assert mapped.entities[0]["location"]["value"] == {
        "type": "Point",
        "coordinates": [11.575, 48.137],
    }


@pytest.mark.parametrize("name", PROFILES)
def test_every_observation_names_the_device_that_measured_it(
    name: str, catalog: ProfileCatalog
) -> None:
    observations = [e for e in mapped_for(catalog, name).entities if e["type"] != "Device"]
    assert observations
    for entity in observations:
        objects = entity["refDevice"]["object"]
        assert entity["refDevice"]["type"] == "Relationship"
        assert "urn:ngsi-ld:Device:70B3D57ED0000001" in (
            objects if isinstance(objects, list) else [objects]
        ), entity["id"]
