"""Lifecycle in the registration: dates, placements and tags on the Device entity and back, the
location a reading was made at, a swap onto a device that was registered already, and the
agent refusing a decommissioned device's events."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agents.lorawan import StatusEvent
from agents.mapping import MappingConfig
from agents.profiles import ProfileCatalog
from agents.registry import Placement, RegisteredDevice, Registry
from agents.runtime import DeviceMapper, SourceInfo
from models import Device
from ngsi import Client
from schemas import SdmSchemas
from tests.broker.conftest import RunningBroker

HERE = {"type": "Point", "coordinates": [6.7735, 51.2277]}
THERE = {"type": "Point", "coordinates": [6.78, 51.23, 40.0]}
MOVED = datetime(2026, 3, 1, tzinfo=UTC)


def moved_device(**changes: object) -> RegisteredDevice:
    fields: dict[str, object] = {
        "dev_eui": "70B3D57ED00F0401",
        "profile": "temperature-humidity-lpp",
        "measuring_point": "brunnen",
        "location": THERE,
        "placements": (
            Placement(location=THERE, valid_from=MOVED),
            Placement(location=HERE),
        ),
        "date_installed": datetime(2026, 1, 1, tzinfo=UTC),
        "date_first_used": datetime(2026, 1, 2, 8, 30, tzinfo=UTC),
        "tags": {"district": "Altstadt"},
        "controlled_property": ("temperature",),
    }
    fields.update(changes)
    return RegisteredDevice.model_validate(fields)


def test_lifecycle_attributes_and_back(shared_dir: Path) -> None:
    device = moved_device(state="decommissioned", date_decommissioned=MOVED)
    # placements are kept in time order, whatever order they were given in
    assert [p.valid_from for p in device.placements] == [None, MOVED]
    entity = device.to_entity()
    assert entity["dateFirstUsed"]["value"] == {
        "@type": "DateTime",
        "@value": "2026-01-02T08:30:00Z",
    }
    assert entity["dateDecommissioned"]["value"]["@value"] == "2026-03-01T00:00:00Z"
    assert entity["locationHistory"]["value"] == [
        {"longitude": 6.7735, "latitude": 51.2277},
        {
            "longitude": 6.78,
            "latitude": 51.23,
            "altitude": 40.0,
            "validFrom": "2026-03-01T00:00:00Z",
        },
    ]
    assert entity["tags"]["value"] == {"district": "Altstadt"}
    Device.from_ngsi(entity)
    assert SdmSchemas(shared_dir / "sdm").violations(entity) == []
    assert RegisteredDevice.from_entity(entity) == device


def test_the_location_a_reading_was_made_at() -> None:
    device = moved_device()
    assert device.location_at(datetime(2026, 2, 1, tzinfo=UTC)) == HERE
    assert device.location_at(MOVED) == THERE
    assert device.location_at(datetime(2027, 1, 1, tzinfo=UTC)) == THERE
    unmoved = moved_device(placements=())
    assert unmoved.location_at(datetime(2020, 1, 1, tzinfo=UTC)) == THERE


def test_a_swap_onto_a_registered_device(broker: RunningBroker) -> None:
    tenant = "lifecycle-swap"
    with Client(broker.url, tenant=tenant, profile="embedded") as client:
        registry = Registry(client, profiles=ProfileCatalog())
        registry.register(
            RegisteredDevice(
                dev_eui="70B3D57ED00F0411",
                profile="temperature-humidity-lpp",
                measuring_point="schule",
                location=HERE,
            )
        )
        registry.register(
            RegisteredDevice(dev_eui="70B3D57ED00F0412", name="spare", state="unprovisioned")
        )
        report = registry.swap("70B3D57ED00F0411", "70B3D57ED00F0412", at=MOVED)
        assert not report.registered
        assert report.new.name == "spare"
        assert report.new.profile == "temperature-humidity-lpp"
        assert report.new.state == "active"
        assert report.new.point == "schule"
        assert report.new.location == HERE
        assert report.new.date_installed == MOVED
        assert report.old.state == "inactive"
        assert registry.fetch("70B3D57ED00F0412") == report.new


def test_a_decommissioned_device_s_events_are_not_accepted() -> None:
    registry = Registry()
    active = moved_device(dev_eui="70B3D57ED00F0421")
    retired = moved_device(dev_eui="70B3D57ED00F0422", state="decommissioned")
    registry.apply_notification({"data": [active.to_entity(), retired.to_entity()]})
    mapper = DeviceMapper({None: registry}, ProfileCatalog(), mapping=MappingConfig())
    source = SourceInfo(name="cs", kind="chirpstack-v4", transport="mqtt")
    try:
        for device, expected in ((active, 1), (retired, 0)):
            event = StatusEvent(source="chirpstack-v4", dev_eui=device.dev_eui, battery_level=80)
            assert len(mapper.status(event, source=source, tenant=None)) == expected
        assert mapper.counters["not_in_service"] == 1
    finally:
        mapper.close()
