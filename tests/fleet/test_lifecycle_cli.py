"""`drehscheibe devices decommission|calibrate|move|swap` as subprocesses against the embedded
broker: dates, policies and the errors an admin gets."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from agents.profiles import ProfileCatalog
from agents.registry import RegisteredDevice, Registry
from ngsi import Client
from tests.broker.conftest import RunningBroker
from tests.fleet.conftest import cli, device_entity, devices


def register(
    broker: RunningBroker, tenant: str, dev_eui: str, *, installed: datetime | None = None
) -> None:
    """Register in this process (the CLI's `register` has tests of its own)."""
    with Client(broker.url, tenant=tenant, profile="embedded") as client:
        Registry(client, profiles=ProfileCatalog()).register(
            RegisteredDevice(
                dev_eui=dev_eui,
                profile="temperature-humidity-lpp",
                location={"type": "Point", "coordinates": [6.77, 51.22]},
                date_installed=installed,
            )
        )


def test_decommission_keeps_the_entity_or_removes_it(broker: RunningBroker, tenant: str) -> None:
    register(broker, tenant, "70B3D57ED00F0301")
    register(broker, tenant, "70B3D57ED00F0302")
    devices(
        broker, tenant, "decommission", "70B3D57ED00F0301", "--yes", "--at", "2026-11-01T08:00:00Z"
    )
    kept = device_entity(broker, tenant, "70B3D57ED00F0301")
    assert kept is not None
    assert kept["deviceState"] == "decommissioned"
    assert kept["dateDecommissioned"] == {"@type": "DateTime", "@value": "2026-11-01T08:00:00Z"}
    removed = devices(
        broker, tenant, "decommission", "70B3D57ED00F0302", "--yes", "--remove-entity"
    )
    assert "deleted urn:ngsi-ld:Device:70B3D57ED00F0302" in removed.stdout
    assert device_entity(broker, tenant, "70B3D57ED00F0302") is None
    missing = cli(
        "devices", "decommission", "70B3D57ED00F0399", "--yes",
        "--broker", broker.url, "--tenant", tenant,
    )  # fmt: skip
    assert missing.returncode == 4
    assert "70B3D57ED00F0399 is not registered" in missing.stderr


def test_calibrations_follow_each_other(broker: RunningBroker, tenant: str) -> None:
    eui = "70B3D57ED00F0311"
    register(broker, tenant, eui)
    for offset, start in (("0.5", "2026-01-01T00:00:00Z"), ("0.8", "2026-06-01T00:00:00Z")):
        devices(
            broker, tenant, "calibrate", eui, "temperature", "--offset", offset, "--from", start
        )
    # the same start again replaces that calibration
    shown = devices(
        broker, tenant, "calibrate", eui, "temperature", "--offset", "0.9",
        "--from", "2026-06-01T00:00:00Z", "-o", "json",
    )  # fmt: skip
    calibration = orjson.loads(shown.stdout)["calibration"]
    assert [(c["offset"], c["validFrom"], c["validUntil"]) for c in calibration] == [
        (0.5, "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"),
        (0.9, "2026-06-01T00:00:00Z", None),
    ]
    stored = device_entity(broker, tenant, eui)
    assert stored is not None
    assert stored["dateLastCalibration"]["@value"] == "2026-06-01T00:00:00Z"


def test_moves_keep_their_history_and_go_forward(broker: RunningBroker, tenant: str) -> None:
    eui = "70B3D57ED00F0321"
    register(broker, tenant, eui, installed=datetime(2026, 1, 1, tzinfo=UTC))
    devices(
        broker, tenant, "move", eui, "--lat", "51.23", "--lon", "6.78",
        "--from", "2026-03-01T00:00:00Z",
    )  # fmt: skip
    stored = device_entity(broker, tenant, eui)
    assert stored is not None
    assert stored["location"] == {"type": "Point", "coordinates": [6.78, 51.23]}
    history = stored["locationHistory"]
    history = history if isinstance(history, list) else [history]
    assert history == [
        {"longitude": 6.77, "latitude": 51.22},
        {"longitude": 6.78, "latitude": 51.23, "validFrom": "2026-03-01T00:00:00Z"},
    ]
    earlier = cli(
        "devices", "move", eui, "--lat", "51.0", "--lon", "6.0", "--from",
        "2026-02-01T00:00:00Z", "--broker", broker.url, "--tenant", tenant,
    )  # fmt: skip
    assert earlier.returncode == 6
    assert "a move must start after the last one" in earlier.stderr


def test_a_swap_needs_two_devices_in_service(broker: RunningBroker, tenant: str) -> None:
    register(broker, tenant, "70B3D57ED00F0331")
    register(broker, tenant, "70B3D57ED00F0332")
    devices(broker, tenant, "decommission", "70B3D57ED00F0332", "--yes")
    common = ("--broker", broker.url, "--tenant", tenant)
    itself = cli("devices", "swap", "70B3D57ED00F0331", "70B3D57ED00F0331", *common)
    assert itself.returncode == 6
    assert "with itself" in itself.stderr
    retired = cli("devices", "swap", "70B3D57ED00F0331", "70B3D57ED00F0332", *common)
    assert retired.returncode == 6
    assert "70B3D57ED00F0332 is decommissioned" in retired.stderr
    swapped = devices(
        broker, tenant, "swap", "70B3D57ED00F0331", "70B3D57ED00F0333", "--decommission-old"
    )
    assert "70B3D57ED00F0333 replaces 70B3D57ED00F0331" in " ".join(swapped.stdout.split())
    old = device_entity(broker, tenant, "70B3D57ED00F0331")
    new = device_entity(broker, tenant, "70B3D57ED00F0333")
    assert old is not None
    assert new is not None
    assert old["deviceState"] == "decommissioned"
    assert "dateDecommissioned" in old
    assert new["deviceState"] == "active"
    assert new["profile"] == "temperature-humidity-lpp"
    assert new["measuringPoint"] == "70B3D57ED00F0331"
