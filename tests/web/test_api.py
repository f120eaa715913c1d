"""The page's JSON API against the embedded broker over real HTTP, with entities written by
the client."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal

import httpx
import pytest
from pydantic import ValidationError

from drehscheibe.web import STATIC_DIR, WebSettings, format_reading, read_devices, unit_label
from models import AirQualityObserved, Device, ModelRegistry, SmartDataModel
from ngsi import Client, RetryPolicy
from tests.broker.conftest import RunningBroker
from tests.conftest import free_port, wait_for_port
from tests.web.conftest import iso, start_web, write_air_quality, write_device

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
EUI = "70B3D57ED0000001"
KOE = (6.7803, 51.2237)


def _client(broker: RunningBroker, tenant: str) -> Client:
    return Client(broker.url, tenant=tenant, profile="embedded", retries=RetryPolicy.none())


def _get(url: str, **params: str) -> httpx.Response:
    return httpx.get(url, params=params, timeout=10)


def test_no_devices_is_an_empty_list(broker: RunningBroker, tenant: str) -> None:
    with start_web(broker_url=broker.url, tenant=tenant, broker_profile="embedded") as web:
        answer = _get(f"{web.url}/api/devices")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["devices"] == []
    assert body["problems"] == []


def test_a_device_with_its_observation(broker: RunningBroker, tenant: str) -> None:
    with _client(broker, tenant) as client:
        write_device(client, EUI, name="Kö air", location=KOE, last_seen=NOW)
        for minutes, no2 in ((20, 38.0), (10, 41.5), (0, 44.25)):
            write_air_quality(
                client,
                EUI,
                point="koe-01",
                observed_at=NOW - timedelta(minutes=minutes),
                no2=no2,
                temperature=21.3,
                location=KOE,
            )
    with start_web(broker_url=broker.url, tenant=tenant, broker_profile="embedded") as web:
        body = _get(f"{web.url}/api/devices").json()

    assert body["problems"] == []
    [device] = body["devices"]
    assert device["id"] == f"urn:ngsi-ld:Device:{EUI}"
    assert device["devEui"] == EUI
    assert device["name"] == "Kö air"
    assert device["state"] == "active"
    assert device["location"] == list(KOE)
    assert device["lastSeen"] == iso(NOW)
    own = {reading["name"]: reading["text"] for reading in device["readings"]}
    assert own == {"batteryLevel": "87 %", "rssi": "-97 dBm"}

    [observation] = device["observations"]
    assert observation["id"] == "urn:ngsi-ld:AirQualityObserved:koe-01"
    assert observation["type"] == "AirQualityObserved"
    assert observation["observedAt"] == iso(NOW)
    assert observation["location"] == list(KOE)
    readings = {reading["name"]: reading for reading in observation["readings"]}
    # compacted with the Environment context: short names, not IRIs, and no dateObserved
    assert set(readings) == {"no2", "temperature"}
    assert readings["no2"]["value"] == 44.25
    assert readings["no2"]["unitCode"] == "GQ"
    assert readings["no2"]["unit"] == "µg/m³"
    assert readings["no2"]["text"] == "44.25 µg/m³"
    assert readings["no2"]["observedAt"] == iso(NOW)
    assert readings["no2"]["numeric"] is True
    assert readings["temperature"]["text"] == "21.3 °C"


def test_location_and_last_seen_fall_back_to_the_observation(
    broker: RunningBroker, tenant: str
) -> None:
    with _client(broker, tenant) as client:
        write_device(client, EUI, name="unplaced", location=None, last_seen=None, battery=None)
        write_air_quality(client, EUI, observed_at=NOW, no2=30, temperature=8, location=KOE)
        write_device(client, "70B3D57ED0000002", name="silent", location=None, last_seen=None)
    with start_web(broker_url=broker.url, tenant=tenant, broker_profile="embedded") as web:
        body = _get(f"{web.url}/api/devices").json()

    by_name = {device["name"]: device for device in body["devices"]}
    assert list(by_name) == ["silent", "unplaced"]
    assert by_name["unplaced"]["location"] == list(KOE)
    assert by_name["unplaced"]["lastSeen"] == iso(NOW)
    assert by_name["silent"]["location"] is None
    assert by_name["silent"]["lastSeen"] is None
    assert by_name["silent"]["observations"] == []


class _Unresolvable(SmartDataModel):
    """A model whose subject @context the broker does not hold (and may not fetch)."""

    subject: ClassVar[str] = "Unresolvable"
    schema_version: ClassVar[str] = "0.0.1"
    type: Literal["UnresolvableObserved"] = "UnresolvableObserved"


def test_a_subject_the_broker_cannot_resolve_is_named_not_fatal(
    broker: RunningBroker, tenant: str
) -> None:
    with _client(broker, tenant) as client:
        write_device(client, EUI, name="Kö air", location=KOE, last_seen=NOW)
        write_air_quality(client, EUI, observed_at=NOW, no2=30, temperature=8)
        registry = ModelRegistry([Device, AirQualityObserved, _Unresolvable])
        view = read_devices(client, registry=registry, now=NOW)

    [device] = view.devices
    assert [o.type for o in device.observations] == ["AirQualityObserved"]
    [problem] = view.problems
    assert _Unresolvable.context_url() in problem
    assert view.generated_at == iso(NOW)


def test_history_of_one_attribute(broker: RunningBroker, tenant: str) -> None:
    with _client(broker, tenant) as client:
        write_device(client, EUI, name="Kö air", location=KOE, last_seen=NOW)
        for minutes in range(5, -1, -1):
            write_air_quality(
                client,
                EUI,
                observed_at=NOW - timedelta(minutes=minutes),
                no2=40 + minutes,
                temperature=20,
            )
    entity = f"urn:ngsi-ld:AirQualityObserved:{EUI}"
    with start_web(broker_url=broker.url, tenant=tenant, broker_profile="embedded") as web:
        url = f"{web.url}/api/entities/{entity}/history"
        typed = _get(url, attr="no2", lastN="3", type="AirQualityObserved")
        found = _get(url, attr="no2", lastN="3")
        device = _get(
            f"{web.url}/api/entities/urn:ngsi-ld:Device:{EUI}/history", attr="rssi", type="Device"
        )

    assert typed.status_code == 200, typed.text
    body = typed.json()
    assert body["entityId"] == entity
    assert body["type"] == "AirQualityObserved"
    assert body["attribute"] == "no2"
    assert body["unitCode"] == "GQ"
    assert body["unit"] == "µg/m³"
    assert body["points"] == [
        {"t": iso(NOW - timedelta(minutes=2)), "v": 42.0},
        {"t": iso(NOW - timedelta(minutes=1)), "v": 41.0},
        {"t": iso(NOW), "v": 40.0},
    ]
    # without ?type the page asks the broker which type the entity has
    assert found.status_code == 200, found.text
    assert found.json() == body
    assert device.status_code == 200, device.text
    assert [point["v"] for point in device.json()["points"]] == [-97.0]


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("AirQualityObserved:x", {}, 400, "?attr="),
        ("AirQualityObserved:x", {"attr": "no2", "lastN": "0"}, 400, "lastN"),
        ("AirQualityObserved:x", {"attr": "no2", "lastN": "many"}, 400, "lastN"),
        ("AirQualityObserved:x", {"attr": "no2", "type": "Spaceship"}, 400, "Spaceship"),
        ("AirQualityObserved:x", {"attr": "bad name!", "type": "AirQualityObserved"}, 400, ""),
        ("AirQualityObserved:nowhere", {"attr": "no2", "type": "AirQualityObserved"}, 404, ""),
        ("AirQualityObserved:nowhere", {"attr": "no2"}, 404, ""),
    ],
)
def test_history_errors_say_what_is_wrong(
    broker: RunningBroker, path: str, params: dict[str, str], status: int, says: str
) -> None:
    with _client(broker, "history-errors") as client:
        write_device(client, EUI, name="any", location=KOE, last_seen=NOW)
    with start_web(
        broker_url=broker.url, tenant="history-errors", broker_profile="embedded"
    ) as web:
        answer = _get(f"{web.url}/api/entities/urn:ngsi-ld:{path}/history", **params)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["status"] == status
    assert says in body["detail"]


def test_a_broker_that_is_away_is_a_502_naming_it() -> None:
    away = f"http://127.0.0.1:{free_port()}"
    with start_web(broker_url=away, broker_timeout=1.0) as web:
        answer = _get(f"{web.url}/api/devices")
    assert answer.status_code == 502
    assert away in answer.json()["detail"]


def test_config_and_security_headers(broker: RunningBroker) -> None:
    with start_web(
        broker_url=broker.url,
        refresh_seconds=2,
        tile_url="http://tiles.city.example:8080/osm/{z}/{x}/{y}.png",
        tile_attribution="© OpenStreetMap contributors",
    ) as web:
        answer = _get(f"{web.url}/api/config")
        page = _get(web.url + "/")
    assert answer.json() == {
        "title": "Drehscheibe: city sensors",
        "refreshSeconds": 2.0,
        "historyLastN": 100,
        "tileUrl": "http://tiles.city.example:8080/osm/{z}/{x}/{y}.png",
        "tileAttribution": "© OpenStreetMap contributors",
        "tileMaxZoom": 19,
    }
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "img-src 'self' data: http://tiles.city.example:8080;" in policy
    assert page.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("tile_url", "says"),
    [
        ("http://tiles.example.org/{z}/{x}.png", "{y}"),
        ("tiles/{z}/{x}/{y}.png", "http(s)://"),
    ],
)
def test_a_bad_tile_template_is_refused(tile_url: str, says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        WebSettings(tile_url=tile_url)


def test_an_unknown_broker_profile_is_refused() -> None:
    with pytest.raises(ValidationError, match="known profiles: embedded, orion-ld"):
        WebSettings(broker_profile="mosquitto")


def test_the_page_loads_nothing_from_elsewhere(broker: RunningBroker) -> None:
    """No CDN: every script, style and image the page names is served by the app itself."""
    with start_web(broker_url=broker.url) as web:
        page = _get(web.url + "/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        local = [ref for ref in references if ref.startswith("/static/")]
        assert sorted(set(references) - set(local)) == ["#device-table", "data:,"]
        for name in ("app.js", "map.js", "chart.js", "format.js", "style.css"):
            served = _get(f"{web.url}/static/{name}")
            assert served.status_code == 200, name
            assert served.text == (STATIC_DIR / name).read_text(encoding="utf-8")
    for file in STATIC_DIR.iterdir():
        text = file.read_text(encoding="utf-8")
        addresses = set(re.findall(r"https?://[^\s\"'`)]+", text))
        assert addresses <= {"http://www.w3.org/2000/svg"}, file.name
        assert not re.search(r"""import\s[^;]*from\s+["'](?!\./)""", text), file.name


def test_units_and_values_as_the_page_shows_them() -> None:
    assert unit_label("CEL") == "°C"
    assert unit_label("C62") == ""
    assert unit_label("XYZ") == "XYZ"
    assert unit_label(None) is None
    assert format_reading(21.3, "°C") == "21.3 °C"
    assert format_reading(612, "ppm") == "612 ppm"
    assert format_reading(0.333333, None) == "0.33"
    assert format_reading(-0.001, "") == "0"
    assert format_reading(True, None) == "yes"
    assert format_reading("open", None) == "open"


def test_web_serve_command(broker: RunningBroker, tenant: str, tmp_path) -> None:
    with _client(broker, tenant) as client:
        write_device(client, EUI, name="Kö air", location=KOE, last_seen=NOW)
    port = free_port()
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "drehscheibe",
                "web",
                "serve",
                "--broker",
                broker.url,
                "--tenant",
                tenant,
                "--broker-profile",
                "embedded",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout=30)
        answer = _get(f"http://127.0.0.1:{port}/api/devices")
        assert answer.status_code == 200, answer.text
        assert [d["devEui"] for d in answer.json()["devices"]] == [EUI]
        assert "server" not in answer.headers
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert f"page on http://127.0.0.1:{port}/" in log.read_text()


def test_web_serve_refuses_a_bad_option() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "drehscheibe",
            "web",
            "serve",
            "--tile-url",
            "http://tiles.example.org/{z}.png",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "tile_url" in done.stderr
    assert "{x}, {y}" in done.stderr
