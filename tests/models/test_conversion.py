"""Models to NGSI-LD and back: kinds, metadata, default units, times, relationships, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

import ngsi
from models import (
    AirQualityObserved,
    Device,
    DeviceModel,
    Measured,
    ModelError,
    ParkingSpot,
    SmartDataModel,
    WeatherObserved,
    entity_from_ngsi,
)

AQO_ID = "urn:ngsi-ld:AirQualityObserved:berlin-mitte"
DEVICE_ID = "urn:ngsi-ld:Device:70B3D57ED0000001"
T0 = "2024-05-01T12:00:00Z"
AT_T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def _reading(**more: Any) -> AirQualityObserved:
    fields: dict[str, Any] = {
        "id": AQO_ID,
        "dateObserved": T0,
        "location": {"type": "Point", "coordinates": [13.4, 52.52]},
    }
    return AirQualityObserved(**{**fields, **more})


def test_normalized_has_kinds_units_and_times() -> None:
    reading = _reading(
        temperature=21.3,
        co2=Measured(value=612, observed_at=datetime(2024, 5, 1, 11, 59, 30, tzinfo=UTC)),
        no2=Measured(value=0.02, unit_code="GP", dataset_id="urn:ngsi-ld:Dataset:lab"),
        refDevice=DEVICE_ID,
    )
    written = reading.to_ngsi()
    assert written["location"] == {
        "type": "GeoProperty",
        "value": {"type": "Point", "coordinates": [13.4, 52.52]},
    }
    assert written["dateObserved"] == {
        "type": "Property",
        "value": {"@type": "DateTime", "@value": T0},
    }
    assert written["temperature"] == {"type": "Property", "value": 21.3, "unitCode": "CEL"}
    assert written["co2"] == {
        "type": "Property",
        "value": 612,
        "observedAt": "2024-05-01T11:59:30Z",
        "unitCode": "59",
    }
    assert written["no2"] == {
        "type": "Property",
        "value": 0.02,
        "unitCode": "GP",
        "datasetId": "urn:ngsi-ld:Dataset:lab",
    }
    assert written["refDevice"] == {"type": "Relationship", "object": DEVICE_ID}
    assert set(written) == {"id", "type", "location", "dateObserved", "temperature", "co2",
                            "no2", "refDevice"}  # fmt: skip


def test_default_units_can_be_left_out_and_key_values_has_none() -> None:
    reading = _reading(temperature=21.3, relativeHumidity=0.4)
    assert "unitCode" not in reading.to_ngsi(default_units=False)["temperature"]
    assert reading.to_ngsi("concise")["relativeHumidity"] == {"value": 0.4, "unitCode": "C62"}
    assert reading.to_ngsi("keyValues") == {
        "id": AQO_ID,
        "type": "AirQualityObserved",
        "dateObserved": T0,
        "location": {"type": "Point", "coordinates": [13.4, 52.52]},
        "temperature": 21.3,
        "relativeHumidity": 0.4,
    }


def test_each_model_knows_its_default_units() -> None:
    assert AirQualityObserved.default_unit("temperature") == "CEL"
    assert (
        AirQualityObserved.default_unit("relativeHumidity") == "C62"
    )  # a fraction 0..1, not percent
    assert AirQualityObserved.default_unit("no2") == "GQ"
    assert AirQualityObserved.default_unit("co2") == "59"
    assert WeatherObserved.default_unit("atmosphericPressure") == "A97"
    assert AirQualityObserved.default_unit("refDevice") is None
    for info in __import__("models").default_registry:
        for name in info.model.default_units:
            assert info.model.attribute_type(name) == "Property", (info.type_name, name)


def test_a_measurement_overrides_the_default_unit_and_keeps_its_time() -> None:
    reading = _reading(temperature=Measured(value=70.1, unit_code="FAH", observed_at=AT_T0))
    assert reading.to_ngsi()["temperature"] == {
        "type": "Property",
        "value": 70.1,
        "unitCode": "FAH",
        "observedAt": T0,
    }
    assert reading.value_of("temperature") == 70.1
    measured = reading.measurement("temperature")
    assert measured is not None
    assert measured.unit_code == "FAH"
    plain = _reading(temperature=20)
    assert plain.measurement("temperature") == Measured[Any](value=20, unit_code="CEL")
    assert plain.measurement("pm10") is None
    assert plain.value_of("pm10") is None


def test_datetimes_are_aware_and_keep_their_text() -> None:
    reading = _reading(dateObserved=datetime(2024, 5, 1, 14, 0, tzinfo=UTC))
    assert reading.to_ngsi("keyValues")["dateObserved"] == "2024-05-01T14:00:00Z"
    spelled = _reading(dateObserved="2024-05-01T16:00:00.00+02:00")
    assert spelled.to_ngsi("keyValues")["dateObserved"] == "2024-05-01T16:00:00.00+02:00"
    assert spelled.value_of("dateObserved") == datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone"):
        _reading(dateObserved="2024-05-01T12:00:00")
    early = _reading(dateObserved=datetime(999, 1, 2, 3, 4, 5, 6000, tzinfo=UTC))
    assert early.to_ngsi("keyValues")["dateObserved"] == "0999-01-02T03:04:05.006Z"


def test_key_values_ids_become_relationships_and_back() -> None:
    observation = {
        "id": AQO_ID,
        "type": "AirQualityObserved",
        "dateObserved": T0,
        "location": {"type": "Point", "coordinates": [13.4, 52.52]},
        "refDevice": DEVICE_ID,
        "refPointOfInterest": "urn:ngsi-ld:PointOfInterest:station-7",
    }
    reading = AirQualityObserved.from_ngsi(observation)
    normalized = reading.to_ngsi()
    assert normalized["refDevice"] == {"type": "Relationship", "object": DEVICE_ID}
    assert normalized["refPointOfInterest"]["type"] == "Relationship"
    back = AirQualityObserved.from_ngsi(normalized)
    assert back.to_ngsi("keyValues") == observation
    assert back.refDevice == DEVICE_ID


def test_device_and_its_model_and_observations_relate_both_ways() -> None:
    device = Device.from_ngsi(
        {
            "id": DEVICE_ID,
            "type": "Device",
            "controlledProperty": ["temperature", "humidity"],
            "refDeviceModel": "urn:ngsi-ld:DeviceModel:elsys-ers-co2",
            "controlledAsset": ["urn:ngsi-ld:AirQualityObserved:berlin-mitte"],
            "deviceState": "ok",
        }
    )
    normalized = device.to_ngsi()
    assert normalized["refDeviceModel"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:DeviceModel:elsys-ers-co2",
    }
    assert normalized["controlledAsset"] == {"type": "Relationship", "object": [AQO_ID]}
    assert Device.from_ngsi(normalized).to_ngsi("keyValues") == device.to_ngsi("keyValues")
    model = DeviceModel(
        id="urn:ngsi-ld:DeviceModel:elsys-ers-co2",
        category=["sensor"],
        controlledProperty=["temperature"],
        manufacturerName="Elsys",
        brandName="ERS",
        modelName="ERS CO2",
    )
    assert entity_from_ngsi(model.to_ngsi()) == model
    spot = ParkingSpot.from_ngsi(
        {
            "id": "urn:ngsi-ld:ParkingSpot:p1",
            "type": "ParkingSpot",
            "location": {"type": "Point", "coordinates": [13.4, 52.5]},
            "status": "free",
            "category": ["onStreet"],
            "refParkingSite": "urn:ngsi-ld:OnStreetParking:zone-3",
            "refDevice": [DEVICE_ID],
        }
    )
    assert spot.to_ngsi()["refDevice"] == {"type": "Relationship", "object": [DEVICE_ID]}


def test_concise_is_read_and_written() -> None:
    concise = {
        "id": AQO_ID,
        "type": "AirQualityObserved",
        "dateObserved": {"@type": "DateTime", "@value": T0},
        "location": {"type": "Point", "coordinates": [13.4, 52.52]},
        "temperature": {"value": 21.3, "unitCode": "CEL", "observedAt": T0},
        "refDevice": {"object": DEVICE_ID},
        "name": "Mitte",
    }
    reading = AirQualityObserved.from_ngsi(concise)
    assert reading.measurement("temperature") == Measured[Any](
        value=21.3, unit_code="CEL", observed_at=AT_T0
    )
    assert reading.to_ngsi("concise") == concise
    assert reading.to_ngsi()["name"] == {"type": "Property", "value": "Mitte"}


def test_undeclared_attributes_are_kept_in_every_representation() -> None:
    normalized = {
        "id": AQO_ID,
        "type": "AirQualityObserved",
        "dateObserved": {"type": "Property", "value": T0},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}},
        "batteryVoltage": {"type": "Property", "value": 3.6, "unitCode": "VLT"},
        "refStation": {"type": "Relationship", "object": "urn:ngsi-ld:Station:9"},
        "coverage": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3, 4]}},
    }
    reading = AirQualityObserved.from_ngsi(normalized)
    assert set(reading.extra_attributes()) == {"batteryVoltage", "refStation", "coverage"}
    assert reading.to_ngsi() == normalized
    assert AirQualityObserved.from_ngsi(reading.to_ngsi("concise")).to_ngsi() == normalized
    key_values = reading.to_ngsi("keyValues")
    assert key_values["refStation"] == "urn:ngsi-ld:Station:9"
    guessed = AirQualityObserved.from_ngsi(key_values).to_ngsi()
    assert guessed["refStation"]["type"] == "Relationship"
    assert guessed["coverage"]["type"] == "GeoProperty"


def test_sub_attributes_and_system_members() -> None:
    normalized = {
        "id": "urn:ngsi-ld:ParkingSpot:p1",
        "type": "ParkingSpot",
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}},
        "status": {
            "type": "Property",
            "value": "free",
            "observedAt": T0,
            "modifiedAt": T0,
            "parkingPermit": {"type": "Property", "value": "yes"},
        },
        "category": {"type": "Property", "value": ["onStreet"]},
        "refParkingSite": {"type": "Relationship", "object": "urn:ngsi-ld:OnStreetParking:z"},
        "createdAt": T0,
    }
    spot = ParkingSpot.from_ngsi(normalized)
    status = spot.measurement("status")
    assert status is not None
    assert status.extra == {"parkingPermit": {"type": "Property", "value": "yes"}}
    written = spot.to_ngsi()
    assert "createdAt" not in written
    assert "modifiedAt" not in written["status"]
    assert written["status"]["parkingPermit"] == {"type": "Property", "value": "yes"}
    assert spot.to_ngsi("concise")["status"] == {
        "value": "free",
        "observedAt": T0,
        "parkingPermit": "yes",
    }


def test_with_context_writes_the_subject_context_or_the_one_read() -> None:
    reading = _reading()
    assert reading.to_ngsi(with_context=True)["@context"] == [AirQualityObserved.context_url()]
    weather = WeatherObserved(
        id="urn:ngsi-ld:WeatherObserved:w", dateObserved=AT_T0, location=reading.location
    )
    assert weather.to_ngsi("keyValues", with_context=True)["@context"] == [
        "https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/master/context.jsonld"
    ]
    data = reading.to_ngsi()
    data["@context"] = ["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"]
    assert (
        AirQualityObserved.from_ngsi(data).to_ngsi(with_context=True)["@context"]
        == (data["@context"])
    )
    assert "@context" not in AirQualityObserved.from_ngsi(data).to_ngsi()


def test_ngsi_entity_both_ways() -> None:
    reading = _reading(temperature=21.3, refDevice=DEVICE_ID)
    entity = reading.to_entity()
    assert isinstance(entity, ngsi.Entity)
    assert entity.to_dict("normalized") == reading.to_ngsi()
    assert AirQualityObserved.from_entity(entity).to_ngsi() == reading.to_ngsi()
    loose = AirQualityObserved.from_ngsi({**reading.to_ngsi("keyValues"), "id": "station-7"})
    with pytest.raises(ngsi.BadRequestData, match="station-7"):
        loose.to_entity()


def test_reading_errors_name_the_entity_and_attribute() -> None:
    base = _reading().to_ngsi()
    with pytest.raises(ModelError, match="expected 'AirQualityObserved', got 'WeatherObserved'"):
        AirQualityObserved.from_ngsi({**base, "type": "WeatherObserved"})
    with pytest.raises(ModelError, match=r"refDevice: must be a Relationship, got a Property"):
        AirQualityObserved.from_ngsi({**base, "refDevice": {"type": "Property", "value": "x"}})
    with pytest.raises(ModelError, match="temperature: has several instances"):
        AirQualityObserved.from_ngsi(
            {
                **base,
                "temperature": [
                    {"type": "Property", "value": 1},
                    {"type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:Dataset:b"},
                ],
            }
        )
    with pytest.raises(ModelError) as bad:
        AirQualityObserved.from_ngsi(
            {**base, "co2": {"type": "Property", "value": -3}, "pm10": "7"}
        )
    assert bad.value.entity_id == AQO_ID
    assert {name for name, _ in bad.value.problems} == {"co2", "pm10"}
    assert "must be at least 0" in str(bad.value)
    with pytest.raises(ModelError, match="typeofLocation"):
        AirQualityObserved.from_ngsi({**base, "typeofLocation": "underwater"})
    with pytest.raises(ModelError, match="an entity must be a JSON object"):
        AirQualityObserved.from_ngsi([base])  # type: ignore[arg-type]


def test_numbers_and_flags_are_json_typed() -> None:
    assert _reading(co=500).to_ngsi("keyValues")["co"] == 500
    assert isinstance(_reading(co=500).co, int)
    with pytest.raises(ValueError, match="expected a number"):
        _reading(co=True)
    with pytest.raises(ValueError, match="expected a number"):
        _reading(co="500")
    with pytest.raises(ValueError, match="expected a finite number"):
        _reading(co=float("nan"))


def test_model_dump_and_validate_round_trip() -> None:
    reading = _reading(
        temperature=Measured.model_validate({"value": 21.3, "observed_at": T0}),
        refDevice=DEVICE_ID,
        co2=612,
    )
    assert AirQualityObserved.model_validate(reading.model_dump()) == reading


def test_default_units_must_name_declared_attributes() -> None:
    with pytest.raises(TypeError, match="unknown attributes"):

        class _Broken(SmartDataModel):
            subject: ClassVar[str] = "Environment"
            default_units: ClassVar[dict[str, str]] = {"temprature": "CEL"}
