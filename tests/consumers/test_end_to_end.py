"""End to end over real processes: the broker is driven with batch upserts (as the LoRaWAN agent
will), subscriptions come from a consumers file applied with the CLI, and the three reference
consumers run as `drehscheibe consume run` processes: traffic and environment over HTTP,
planning over MQTT (Mosquitto). 100 updates/s; every change arrives, within 1 s; a paused
subscription delivers nothing, and delivers again after `resume`."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import statistics
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from ngsi import Client
from tests.conftest import Mosquitto
from tests.subscriptions._support import (
    ENVIRONMENT,
    TRANSPORTATION,
    ConsumerProcess,
    air_quality,
    broker_with,
    cli_env,
    now_text,
    run_cli,
    start_consumer,
    traffic_flow,
    wait_until,
    write_file,
)

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

LANES = 5
STATIONS = 5
RATE = 100  # updates per second, half traffic, half air quality
SECONDS = 3.0
SECRET = "e2e-secret"

CONSUMERS = """\
project: e2e
consumers:
  - name: traffic
    kind: traffic
    endpoint: {traffic}
    subscriptions:
      - name: flow
        template: traffic.flow
        params: {{watch: [intensity]}}
  - name: environment
    kind: environment
    endpoint:
      uri: {environment}
      receiverInfo: {{X-Drehscheibe-Secret: "${{E2E_SECRET}}"}}
    subscriptions:
      - name: observations
        template: environment.archive
        params: {{types: [AirQualityObserved]}}
  - name: planning
    kind: planning
    endpoint:
      uri: {planning}
      notifierInfo: {{MQTT-QoS: "1"}}
    subscriptions:
      - name: changes
        template: planning.changes
        params: {{types: [TrafficFlowObserved, AirQualityObserved]}}
"""


@contextlib.contextmanager
def consumers(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[ConsumerProcess, ...]]:
    env = cli_env(E2E_SECRET=SECRET)
    started: list[ConsumerProcess] = []
    try:
        started.append(
            start_consumer(
                "traffic", "--out", str(tmp_path / "traffic.json"), log=tmp_path / "traffic.log"
            )
        )
        started.append(
            start_consumer(
                "environment",
                "--out",
                str(tmp_path / "env"),
                "--secret-header",
                "X-Drehscheibe-Secret",
                "--secret-env",
                "E2E_SECRET",
                log=tmp_path / "environment.log",
                env=env,
            )
        )
        planning = start_consumer(
            "planning",
            "--mqtt",
            f"mqtt://127.0.0.1:{mosquitto.port}/e2e/planning",
            "--out",
            str(tmp_path / "planning.db"),
            log=tmp_path / "planning.log",
        )
        started.append(planning)
        planning.wait_for_log("subscribed to e2e/planning")
        yield tuple(started)
    finally:
        for process in started:
            process.stop()


def archived(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        try:
            return conn.execute("SELECT entity_id, observed_us FROM changes").fetchall()
        except sqlite3.OperationalError:
            return []


def env_changes(folder: Path) -> list[dict[str, Any]]:
    path = folder / "changes.jsonl"
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.endswith(b"}")]


def drive(client: Client, *, seconds: float, start: int = 0) -> tuple[list[str], dict[str, float]]:
    """Upsert at RATE updates/s; returns the observedAt texts and the last intensity per lane."""
    ticks = int(seconds * 10)
    per_tick = RATE // 10
    stamps: list[str] = []
    last: dict[str, float] = {}
    began = time.monotonic()
    for tick in range(ticks):
        at = now_text()
        stamps.append(at)
        value = float(start + tick)
        flows = [traffic_flow(n, intensity=value + n, at=at) for n in range(per_tick // 2)]
        airs = [air_quality(n, no2=value, at=at) for n in range(per_tick // 2)]
        assert client.batch_upsert(flows, context=TRANSPORTATION).ok
        assert client.batch_upsert(airs, context=ENVIRONMENT).ok
        for flow in flows:
            last[flow["id"]] = flow["intensity"]["value"]
        delay = began + (tick + 1) * 0.1 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return stamps, last


def traffic_state(process: ConsumerProcess) -> dict[str, float]:
    state = process.get("/state")
    return {
        lane["entityId"]: lane["intensity"]
        for segment in state["roadSegments"]
        for lane in segment["lanes"]
    }


def latency_ms(rows: list[dict[str, Any]]) -> list[float]:
    out = []
    for row in rows:
        observed = datetime.fromisoformat(row["observedAt"].replace("Z", "+00:00"))
        received = datetime.fromisoformat(row["receivedAt"].replace("Z", "+00:00"))
        out.append((received - observed).total_seconds() * 1000)
    return out


def test_apply_notify_pause_resume_over_real_processes(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with broker_with(tmp_path / "broker") as broker, consumers(tmp_path, mosquitto) as running:
        traffic, environment, _planning = running
        path = write_file(
            tmp_path / "consumers.yaml",
            CONSUMERS.format(
                traffic=traffic.notify_url,
                environment=environment.notify_url,
                planning=f"mqtt://127.0.0.1:{mosquitto.port}/e2e/planning",
            ),
        )
        env = cli_env(E2E_SECRET=SECRET)
        result = run_cli("subscriptions", "apply", "-f", str(path), "--broker", broker.url, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "applied: 4 changes" in result.stdout

        with Client(broker.url) as client:
            stamps, last = drive(client, seconds=SECONDS)
            sent_at = time.monotonic()
            expected_air = len(stamps) * (RATE // 20)
            expected_all = 2 * expected_air
            # Everything arrives, and within a second of the last upsert.
            arrived = wait_until(
                lambda: (
                    traffic_state(traffic) == last
                    and len(env_changes(tmp_path / "env")) == expected_air
                    and len(archived(tmp_path / "planning.db")) == expected_all
                ),
                timeout=10,
            )
            waited = time.monotonic() - sent_at
            assert arrived, (
                traffic_state(traffic),
                len(env_changes(tmp_path / "env")),
                len(archived(tmp_path / "planning.db")),
            )
            delays = latency_ms(env_changes(tmp_path / "env"))
            print(
                f"\n{RATE} updates/s for {SECONDS:g} s: all {expected_all} changes at the "
                f"consumers {waited * 1000:.0f} ms after the last upsert; environment latency "
                f"p50 {statistics.median(delays):.0f} ms, max {max(delays):.0f} ms"
            )
            assert waited < 1.0
            # nothing twice: one archived row per (entity, observation)
            rows = archived(tmp_path / "planning.db")
            assert len(set(rows)) == len(rows) == expected_all

            # Pause the traffic subscription: nothing more arrives there.
            flow_id = next(
                str(s.id)
                for s in client.list_subscriptions()
                if s.subscription_name == "e2e/traffic/flow"
            )
            paused = run_cli("subscriptions", "pause", flow_id, "--broker", broker.url)
            assert paused.returncode == 0, paused.stderr
            _, _later = drive(client, seconds=0.5, start=1000)
            assert wait_until(lambda: len(archived(tmp_path / "planning.db")) == expected_all + 50)
            time.sleep(0.5)
            assert traffic_state(traffic) == last
            # ... and after resume it delivers again.
            resumed = run_cli("subscriptions", "resume", flow_id, "--broker", broker.url)
            assert resumed.returncode == 0, resumed.stderr
            _, final = drive(client, seconds=0.3, start=2000)
            assert wait_until(lambda: traffic_state(traffic) == final, timeout=5)

        # A second apply changes nothing (the pause is the operators' and the file is silent
        # about isActive).
        again = run_cli("subscriptions", "apply", "-f", str(path), "--broker", broker.url, env=env)
        assert again.returncode == 0, again.stderr
        assert "0 to create, 0 to update, 0 to recreate, 0 to delete; 4 unchanged." in again.stdout
        health = environment.get("/health")
        assert health["unauthorized"] == 0
        assert health["durable"] is True
    query = run_cli(
        "consume",
        "query",
        str(tmp_path / "planning.db"),
        "--type",
        "AirQualityObserved",
        "--bbox",
        "13.30,52.49,13.315,52.51",
        "--limit",
        "500",
        "--output",
        "json",
    )
    assert query.returncode == 0, query.stderr
    found = json.loads(query.stdout)
    assert {c["entityId"] for c in found} == {
        "urn:ngsi-ld:AirQualityObserved:station-0",
        "urn:ngsi-ld:AirQualityObserved:station-1",
    }
