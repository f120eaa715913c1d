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
