"""`drehscheibe broker serve` as a real subprocess: the notification and history options reach
the broker, bad values stop it with exit code 2 and a message naming the option."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.broker.conftest import start_broker_process

AQO = "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"


def subscription(uri: str) -> dict[str, object]:
    return {
        "type": "Subscription",
        "entities": [{"type": "Sensor"}],
        "notification": {"endpoint": {"uri": uri}},
    }


def test_serve_applies_the_notification_allow_list(tmp_path: Path) -> None:
    broker = start_broker_process(
        tmp_path / "data",
        "--notification-allow-host",
        "consumer.example",
        "--notification-allow-host",
        "10.0.0.0/8",
        "--notification-timeout",
        "2.5",
        "--history-retention-days",
        "30",
        "--history-retention-days-by-type",
        f"{AQO}=7",
    )
    try:
        with httpx.Client(base_url=broker.url + "/ngsi-ld/v1", timeout=10) as http:
            refused = http.post("/subscriptions", json=subscription("http://127.0.0.1:9/n"))
            assert refused.status_code == 400
            detail = refused.json()["detail"]
            assert "'127.0.0.1'" in detail
            assert "notification_allow_hosts" in detail
            assert "--notification-allow-host" in detail
            for uri in ("https://consumer.example/n", "http://10.1.2.3:8080/n"):
                assert http.post("/subscriptions", json=subscription(uri)).status_code == 201
    finally:
        broker.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--notification-allow-host", "not a host"], "notification_allow_hosts"),
        (["--notification-timeout", "0"], "notification_timeout"),
        (["--history-retention-days", "-3"], "history_retention_days"),
        (["--history-retention-days-by-type", "AirQualityObserved=30"], "expanded type IRI"),
        (["--history-retention-days-by-type", f"{AQO}=soon"], "TYPE=DAYS"),
        (["--state-retention-days", "0"], "state_retention_days"),
        (["--state-retention-days-by-type", "AirQualityObserved=30"], "expanded type IRI"),
        (["--retention-interval", "0"], "retention_interval"),
        (["--cache-mb", "-1"], "--cache-mb"),
    ],
)
def test_bad_option_values_exit_2_naming_the_problem(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "drehscheibe", "broker", "serve", "--data", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "500"},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    output = " ".join(result.stderr.replace("│", " ").split())
    assert message in output
    assert "Traceback" not in result.stderr


ENVIRONMENT = "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"


def test_smart_data_models_are_understood_offline_unless_switched_off(tmp_path: Path) -> None:
    link = (
        f'<{ENVIRONMENT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    )
    entity = {
        "id": "urn:ngsi-ld:AirQualityObserved:mitte-01",
        "type": "AirQualityObserved",
        "NO2": {"type": "Property", "value": 41.5, "unitCode": "GQ"},
    }
    broker = start_broker_process(tmp_path / "data")
    try:
        with httpx.Client(base_url=broker.url + "/ngsi-ld/v1", timeout=10) as http:
            created = http.post("/entities", json=entity, headers={"Link": link})
            assert created.status_code == 201, created.text
            found = http.get(f"/entities/{entity['id']}", headers={"Link": link}).json()
            assert found["type"] == "AirQualityObserved"
            assert found["NO2"]["value"] == 41.5
            expanded = http.get(f"/entities/{entity['id']}").json()
            assert expanded["type"] == AQO
    finally:
        broker.stop()
    bare = start_broker_process(tmp_path / "bare", "--no-model-contexts")
    try:
        with httpx.Client(base_url=bare.url + "/ngsi-ld/v1", timeout=10) as http:
            refused = http.post("/entities", json=entity, headers={"Link": link})
            assert refused.status_code == 503
            assert refused.json()["type"].endswith("LdContextNotAvailable")
    finally:
        bare.stop()
