"""`drehscheibe devices ...` and `drehscheibe profiles ...` as real subprocesses, against the
embedded broker over HTTP."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agents.registry import DEVICE_CONTEXT
from tests.broker.conftest import RunningBroker
from tests.conftest import run_drehscheibe

_counter = itertools.count(1)
LINK = f'<{DEVICE_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def new_eui() -> str:
    return f"A84041{next(_counter):010X}"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_drehscheibe(*args, env=env)


def devices(broker: RunningBroker, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("devices", *args, "--broker", broker.url)


def entity(broker: RunningBroker, entity_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{broker.api}/entities/{entity_id}", headers={"Link": LINK}, timeout=10)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def test_register_creates_the_device_entity_in_the_broker(broker: RunningBroker) -> None:
    eui = new_eui()
    result = devices(
        broker,
        "register",
        eui.lower(),
        "--profile",
        "air-quality-lpp",
        "--name",
        "Marktplatz",
        "--measuring-point",
        "markt-01",
        "--location",
        "13.4050,52.5200",
        "--owner",
        "urn:ngsi-ld:Organization:umweltamt",
        "--installed",
        "2024-03-01T09:00:00+01:00",
        "--output",
        "json",
    )
    assert result.returncode == 0, result.stderr
    printed = orjson.loads(result.stdout)
    assert printed["dev_eui"] == eui
    stored = entity(broker, f"urn:ngsi-ld:Device:{eui}")
    assert stored is not None
    assert stored["devEUI"]["value"] == eui
    assert stored["profile"]["value"] == "air-quality-lpp"
    assert stored["measuringPoint"]["value"] == "markt-01"
    assert stored["location"]["value"] == {"type": "Point", "coordinates": [13.405, 52.52]}
    assert stored["dateInstalled"]["value"]["@value"] == "2024-03-01T08:00:00Z"
    assert "airPollution" in stored["controlledProperty"]["value"]

    again = devices(broker, "register", eui, "--profile", "air-quality-lpp")
    assert again.returncode == 4
    assert "registered already" in again.stderr


@pytest.mark.parametrize(
    ("dev_eui", "args", "code", "message"),
    [
        (None, ("--profile", "nope"), 6, "no device profile named 'nope'"),
        (None, ("--profile", "noise-level", "--location", "52.5,190"), 2, "longitude comes first"),
        (None, ("--profile", "noise-level", "--installed", "2024-03-01"), 2, "no time zone"),
        ("12345", ("--profile", "noise-level"), 2, "EUI-64"),
    ],
)
def test_register_refuses_bad_registrations(
    broker: RunningBroker, dev_eui: str | None, args: tuple[str, ...], code: int, message: str
) -> None:
    result = devices(broker, "register", dev_eui or new_eui(), *args)
    assert result.returncode == code, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_list_show_update_calibrate_delete(broker: RunningBroker) -> None:
    eui = new_eui()
    assert (
        devices(broker, "register", eui, "--profile", "noise-level", "--name", "Schule").returncode
        == 0
    )

    listed = devices(broker, "list", "--profile", "noise-level", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert eui in [device["dev_eui"] for device in orjson.loads(listed.stdout)]
    table = cli("devices", "list", "--broker", broker.url, env={**os.environ, "COLUMNS": "160"})
    assert eui in table.stdout

    shown = devices(broker, "show", eui, "--output", "json")
    assert orjson.loads(shown.stdout)["name"] == "Schule"

    updated = devices(
        broker, "update", eui, "--name", "", "--state", "maintenance", "--output", "json"
    )
    assert updated.returncode == 0, updated.stderr
    stored = entity(broker, f"urn:ngsi-ld:Device:{eui}")
    assert stored is not None
    assert "name" not in stored
    assert stored["deviceState"]["value"] == "maintenance"

    calibrated = devices(
        broker,
        "calibrate",
        eui,
        "LAeq",
        "--offset",
        "-1.5",
        "--from",
        "2024-01-01T00:00:00Z",
        "--output",
        "json",
    )
    assert calibrated.returncode == 0, calibrated.stderr
    stored = entity(broker, f"urn:ngsi-ld:Device:{eui}")
    assert stored is not None
    assert stored["calibration"]["value"] == [
        {"attribute": "LAeq", "offset": -1.5, "scale": 1.0, "validFrom": "2024-01-01T00:00:00Z"}
    ]

    deleted = devices(broker, "delete", eui, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert entity(broker, f"urn:ngsi-ld:Device:{eui}") is None
    missing = devices(broker, "show", eui)
    assert missing.returncode == 4
    assert "not registered" in missing.stderr


def test_import_a_csv_file(broker: RunningBroker, tmp_path: Path) -> None:
    good, bad = new_eui(), new_eui()
    path = tmp_path / "devices.csv"
    path.write_text(
        "dev_eui,profile,name,location\n"
        f'{good},people-counter,Brücke,"13.37,52.51"\n'
        f"{bad},nope,Unknown,\n",
        encoding="utf-8",
    )
    result = devices(broker, "import", str(path), "--output", "json")
    assert result.returncode == 6
    report = orjson.loads(result.stdout)
    assert report["registered"] == [good]
    assert report["failed"][0]["where"] == "row 3"
    stored = entity(broker, f"urn:ngsi-ld:Device:{good}")
    assert stored is not None
    assert stored["name"]["value"] == "Brücke"


# -- profiles ---------------------------------------------------------------------------------


def test_profiles_list_says_which_user_profiles_override_builtins(tmp_path: Path) -> None:
    (tmp_path / "noise-level.yaml").write_text(
        "name: noise-level\nextends: noise-level\nreporting_interval: 60\n", encoding="utf-8"
    )
    result = cli("profiles", "list", "--profiles-dir", str(tmp_path), "--output", "json")
    assert result.returncode == 0, result.stderr
    entries = {entry["name"]: entry for entry in orjson.loads(result.stdout)}
    assert entries["noise-level"]["origin"] == "user"
    assert entries["noise-level"]["overrides_builtin"] is True
    assert entries["air-quality-lpp"]["origin"] == "builtin"
    table = cli(
        "profiles", "list", "--profiles-dir", str(tmp_path), env={**os.environ, "COLUMNS": "160"}
    )
    assert "overrides built-in" in table.stdout


def test_profiles_show() -> None:
    result = cli("profiles", "show", "ttn-normalized", "--output", "json")
    assert result.returncode == 0, result.stderr
    shown = orjson.loads(result.stdout)
    assert shown["origin"] == "builtin"
    assert shown["codec"] == {"name": "network-server", "config": {"use": "normalized"}}
    assert cli("profiles", "show", "nope").returncode == 2


def test_profiles_test_decodes_and_maps_one_payload(shared_dir: Path) -> None:
    # temperature 21.3 on channel 1, relative humidity 54.5 % on 2, CO2 612 ppm on 3
    result = cli(
        "profiles",
        "test",
        "air-quality-lpp",
        "--payload",
        "01 67 00 D5 02 68 6D 03 7D 02 64",
        "--port",
        "1",
        "--measuring-point",
        "probe",
        "--sdm-dir",
        str(shared_dir / "sdm"),
    )
    assert result.returncode == 0, result.stderr
    aqo, device = orjson.loads(result.stdout)
    assert aqo["id"] == "urn:ngsi-ld:AirQualityObserved:probe"
    assert aqo["temperature"]["value"] == 21.3
    assert aqo["relativeHumidity"]["value"] == 0.545
    assert aqo["co2"]["value"] == 612
    assert device["type"] == "Device"


def test_profiles_test_with_a_network_server_object() -> None:
    result = cli(
        "profiles", "test", "traffic-counter", "--decoded", '{"count": 55, "avgSpeed": 31.25}'
    )
    assert result.returncode == 0, result.stderr
    flow = orjson.loads(result.stdout)[0]
    assert flow["intensity"]["value"] == 55
    assert flow["averageVehicleSpeed"]["value"] == 31.2


def test_profiles_test_reports_what_is_wrong() -> None:
    truncated = cli("profiles", "test", "air-quality-lpp", "--payload", "0167", "--port", "1")
    assert truncated.returncode == 6
    assert "truncated" in truncated.stderr
    flagged = cli("profiles", "test", "air-quality-lpp", "--payload", "016703E8", "--port", "1")
    assert flagged.returncode == 0, flagged.stderr
    assert "implausible" in flagged.stderr


def test_profiles_check(shared_dir: Path) -> None:
    result = cli("profiles", "check", "--sdm-dir", str(shared_dir / "sdm"), "--output", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = orjson.loads(result.stdout)
    assert report["official_schemas"] is True
    assert all(item["ok"] for item in report["results"])
