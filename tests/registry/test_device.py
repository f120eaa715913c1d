"""A registration and its Device entity: defaults, the broker form and back, the IRIs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agents.registry import (
    DEVICE_CONTEXT,
    REGISTRY_ATTRIBUTES,
    Calibration,
    RegisteredDevice,
    RegistryError,
    parse_point,
)
from models import Device
from ngsi import ContextStore
from schemas import SdmSchemas

SDM = "https://smartdatamodels.org/"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"


def full_device() -> RegisteredDevice:
    return RegisteredDevice(
        dev_eui="70-b3-d5-7e-d0-00-00-01",
        name="Rathausplatz",
        description="CO2 at the town hall",
        profile="air-quality-lpp",
        measuring_point="rathaus",
        location={"type": "Point", "coordinates": [13.4, 52.5]},
        owner=("urn:ngsi-ld:Organization:umweltamt",),
        device_model="acme-aq-1",
        state="active",
        date_installed=datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
        calibration=(
            Calibration(
                attribute="temperature",
                offset=-0.4,
                valid_from=datetime(2024, 3, 1, tzinfo=UTC),
                valid_until=datetime(2025, 3, 1, tzinfo=UTC),
                note="reference station",
            ),
            Calibration(attribute="co2", scale=1.05, entity_type="AirQualityObserved"),
        ),
        controlled_property=("airPollution", "temperature"),
    )


def test_defaults_come_from_the_dev_eui() -> None:
    device = RegisteredDevice(dev_eui="70b3d57ed0000001", profile="x")
    assert device.dev_eui == "70B3D57ED0000001"
    assert device.device_id == "urn:ngsi-ld:Device:70B3D57ED0000001"
    assert device.point == "70B3D57ED0000001"
    assert device.observation_id("AirQualityObserved") == (
        "urn:ngsi-ld:AirQualityObserved:70B3D57ED0000001"
    )
    assert device.observation_id("DeviceMeasurement", "soilMoisture").endswith(
        ":70B3D57ED0000001:soilMoisture"
    )
    assert device.maps_uplinks


def test_named_ids() -> None:
    device = full_device()
    assert device.device_id == "urn:ngsi-ld:Device:70B3D57ED0000001"
    assert device.device_model == "urn:ngsi-ld:DeviceModel:acme-aq-1"
    named = RegisteredDevice(dev_eui="70B3D57ED0000001", profile="x", device_id="urn:city:aq:7")
    assert named.device_id == "urn:city:aq:7"
    token = RegisteredDevice(dev_eui="70B3D57ED0000001", profile="x", device_id="aq-7")
    assert token.device_id == "urn:ngsi-ld:Device:aq-7"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dev_eui": "1234"}, "EUI-64"),
        ({"dev_eui": "70B3D57ED0000001"}, "has no profile"),
        (
            {"dev_eui": "70B3D57ED0000001", "profile": "x", "measuring_point": "a b"},
            "measuring point",
        ),
        ({"dev_eui": "70B3D57ED0000001", "profile": "x", "state": "lost"}, "state"),
    ],
)
def test_bad_registrations(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RegisteredDevice(**fields)


def test_an_unprovisioned_device_needs_no_profile_and_maps_nothing() -> None:
    device = RegisteredDevice(dev_eui="70B3D57ED0000001", state="unprovisioned")
    assert not device.maps_uplinks
    entity = device.to_entity()
    assert "profile" not in entity
    assert entity["deviceState"]["value"] == "unprovisioned"


def test_the_device_entity_and_back() -> None:
    device = full_device()
    entity = device.to_entity()
    assert entity["id"] == device.device_id
    assert entity["devEUI"] == {"type": "Property", "value": "70B3D57ED0000001"}
    assert entity["refDeviceModel"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:DeviceModel:acme-aq-1",
    }
    assert entity["dateInstalled"]["value"] == {
        "@type": "DateTime",
        "@value": "2024-03-01T09:30:00Z",
    }
    assert entity["dateLastCalibration"]["value"]["@value"] == "2024-03-01T00:00:00Z"
    assert entity["calibration"]["value"][0] == {
        "attribute": "temperature",
        "offset": -0.4,
        "scale": 1.0,
        "validFrom": "2024-03-01T00:00:00Z",
        "validUntil": "2025-03-01T00:00:00Z",
        "note": "reference station",
    }
    assert entity["supportedProtocol"]["value"] == ["lora"]
    assert set(entity) - {"id", "type"} <= set(REGISTRY_ATTRIBUTES)
    Device.from_ngsi(entity)  # the model accepts it
    assert RegisteredDevice.from_entity(entity) == device


def test_the_device_entity_validates_against_the_official_schema(shared_dir: Path) -> None:
    assert SdmSchemas(shared_dir / "sdm").violations(full_device().to_entity()) == []


def test_a_broker_rendering_reads_back_too() -> None:
    entity = full_device().to_entity()
    key_values = {
        "id": entity["id"],
        "type": "Device",
        **{
            name: value.get("value", value.get("object"))
            for name, value in entity.items()
            if isinstance(value, dict)
        },
    }
    key_values["dateInstalled"] = "2024-03-01T09:30:00Z"
    key_values["dateLastCalibration"] = "2024-03-01T00:00:00Z"
    assert RegisteredDevice.from_entity(key_values) == full_device()


def test_an_entity_that_is_not_a_registered_device_is_refused() -> None:
    with pytest.raises(RegistryError, match="not a registered device"):
        RegisteredDevice.from_entity({"id": "urn:ngsi-ld:Device:gw1", "type": "Device"})
    bad = full_device().to_entity()
    bad["measuringPoint"] = {"type": "Property", "value": "no spaces allowed"}
    with pytest.raises(RegistryError, match="measuring point"):
        RegisteredDevice.from_entity(bad)


def test_registration_attributes_expand_with_the_device_context(shared_dir: Path) -> None:
    store = ContextStore(
        preload={DEVICE_CONTEXT: shared_dir / "sdm" / "dataModel.Device" / "context.jsonld"},
        allow_network=False,
    )
    context = store.resolve(DEVICE_CONTEXT)
    expected_sdm = {
        "controlledProperty": f"{SDM}dataModel.Device/controlledProperty",
        "deviceState": f"{SDM}dataModel.Device/deviceState",
        "dateInstalled": f"{SDM}dataModel.Device/dateInstalled",
        "dateLastCalibration": f"{SDM}dataModel.Device/dateLastCalibration",
        "refDeviceModel": f"{SDM}dataModel.Device/refDeviceModel",
        "deviceCategory": f"{SDM}dataModel.Device/deviceCategory",
        "supportedProtocol": f"{SDM}dataModel.Device/supportedProtocol",
        "name": f"{SDM}name",
        "owner": f"{SDM}owner",
    }
    for name, iri in expected_sdm.items():
        assert context.expand_term(name) == iri, name
    # the LoRaWAN registration's own terms are not Smart Data Models terms
    for name in ("devEUI", "profile", "measuringPoint", "calibration"):
        assert context.expand_term(name) == f"{DEFAULT_VOCAB}{name}", name


def test_parse_point() -> None:
    assert parse_point("13.405, 52.52") == {"type": "Point", "coordinates": [13.405, 52.52]}
    with pytest.raises(ValueError, match="longitude comes first"):
        parse_point("52.52,190")
    with pytest.raises(ValueError, match="LON,LAT"):
        parse_point("Berlin")
