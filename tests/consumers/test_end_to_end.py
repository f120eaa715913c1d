"""End to end over real processes, from LoRaWAN uplinks to the three reference consumers.

Uplinks are published to Mosquitto at 100 uplinks/s: traffic counters whose payload the network
server decoded, in The Things Stack v3 format, and CayenneLPP air-quality stations in ChirpStack
v4 format; a `drehscheibe agent run` process with one MQTT source per network server decodes
and maps them and upserts the entities into a
`drehscheibe broker serve` process; the subscriptions come from a consumers file applied with
`drehscheibe subscriptions apply`; the three reference consumers run as `drehscheibe consume
run` processes: traffic and environment over HTTP, planning over MQTT. Every change arrives,
within 1 s of its uplink; a paused subscription delivers nothing, and delivers again after
`resume`. The latency figures (uplink published → change received by the consumer) are printed.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sqlite3
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.broker.conftest import SDM_CONTEXTS, BrokerProcess, start_broker_process
from tests.conftest import Mosquitto
from tests.e2e.support import (
    Publisher,
    agent_config,
    chirpstack_topic,
    chirpstack_uplink,
    lpp,
    publisher,
    register,
    start_agent_process,
    tts_topic,
    tts_uplink,
)
from tests.subscriptions._support import (
    ConsumerProcess,
    cli_env,
    run_cli,
    start_consumer,
    wait_until,
    write_file,
)

# Five processes and six CLI runs: give a loaded CI machine room beyond the default 120 s.
pytestmark = [pytest.mark.mqtt, pytest.mark.slow, pytest.mark.timeout(300)]

COUNTERS = 10
STATIONS = 10
RATE = 100  # uplinks per second, half traffic counters, half air-quality stations
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


def counter_eui(number: int) -> str:
    return f"70B3D57ED0E1{number:04X}"


def station_eui(number: int) -> str:
    return f"70B3D57ED0E2{number:04X}"


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


@contextlib.contextmanager
def broker_process(tmp_path: Path) -> Iterator[BrokerProcess]:
    preload = [f"--preload-context={url}={path}" for url, path in SDM_CONTEXTS.items()]
    running = start_broker_process(tmp_path / "broker", *preload, log=tmp_path / "broker.log")
    try:
        yield running
    finally:
        running.stop()


def archived(path: Path) -> list[tuple[str, int, str]]:
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        try:
            return conn.execute(
                "SELECT entity_id, observed_us, received_at FROM changes"
            ).fetchall()
        except sqlite3.OperationalError:
            return []


def env_changes(folder: Path) -> list[dict[str, Any]]:
    path = folder / "changes.jsonl"
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.endswith(b"}")]


def traffic_state(process: ConsumerProcess) -> dict[str, float]:
    state = process.get("/state")
    return {
        lane["entityId"]: lane["intensity"]
        for segment in state["roadSegments"]
        for lane in segment["lanes"]
    }


class Fleet:
    """The simulated devices: publishes their uplinks and remembers what they said."""

    def __init__(self, mqtt: Publisher) -> None:
        self.mqtt = mqtt
        self.f_cnt = 0
        self.last_intensity: dict[str, float] = {}
        self.published = 0

    def uplink(self, tick: int, number: int, *, value: int) -> None:
        at = datetime.now(UTC)
        self.f_cnt += 1
        if number % 2 == 0:
            device = number // 2 % COUNTERS
            eui = counter_eui(device)
            body = orjson.loads(tts_uplink(eui, self.f_cnt, b"\x00", at=at, f_port=2))
            body["uplink_message"]["decoded_payload"] = {
                "vehicleCount": value,
                "averageSpeed": 42.5,
                "occupancy": 20,
            }
            topic, payload = tts_topic(eui), orjson.dumps(body)
            self.last_intensity[f"urn:ngsi-ld:TrafficFlowObserved:lane-{device}"] = float(value)
        else:
            eui = station_eui(number // 2 % STATIONS)
            frame = lpp((1, "temperature", 20.0 + tick % 10), (3, "concentration", 400 + value))
            topic, payload = chirpstack_topic(eui), chirpstack_uplink(eui, self.f_cnt, frame, at=at)
        self.mqtt.publish(topic, payload)
        self.published += 1

    def run(self, *, seconds: float, start: int = 0) -> None:
        """RATE uplinks/s for `seconds`, in ticks of 100 ms; each tick one uplink per device."""
        ticks = int(seconds * 10)
        per_tick = RATE // 10
        began = time.monotonic()
        for tick in range(ticks):
            for number in range(per_tick):
                self.uplink(tick, number + (tick % 2) * per_tick, value=start + tick)
            delay = began + (tick + 1) * 0.1 - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def latencies_ms(rows: list[tuple[str, str]]) -> list[float]:
    """Milliseconds from each observation (the uplink's time) to its receipt."""
    out = []
    for observed, received in rows:
        start = datetime.fromisoformat(observed.replace("Z", "+00:00"))
        end = datetime.fromisoformat(received.replace("Z", "+00:00"))
        out.append((end - start).total_seconds() * 1000)
    return out


def figures(label: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{label}: {len(values)} changes, p50 {statistics.median(values):.0f} ms, "
        f"p99 {p99:.0f} ms, max {ordered[-1]:.0f} ms"
    )


def test_uplinks_through_the_agent_reach_the_three_consumers(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with broker_process(tmp_path) as broker, consumers(tmp_path, mosquitto) as running:
        traffic, environment, _planning = running
        for number in range(COUNTERS):
            register(
                broker.url,
                counter_eui(number),
                tenant=None,
                profile="traffic-counter",
                measuring_point=f"lane-{number}",
                location=(13.40 + number * 0.001, 52.52),
            )
        for number in range(STATIONS):
            register(
                broker.url,
                station_eui(number),
                tenant=None,
                profile="air-quality-lpp",
                measuring_point=f"station-{number}",
                location=(13.30 + number * 0.001, 52.50),
            )
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

        document = agent_config(
            tmp_path, broker_url=broker.url, tenant=None, mqtt_port=mosquitto.port
        )
        chirpstack = copy.deepcopy(document["sources"][0])
        chirpstack.update(name="chirpstack", network_server="chirpstack-v4")
        document["sources"].append(chirpstack)
        agent = start_agent_process(tmp_path, document)
        try:
            assert wait_until(
                lambda: httpx.get(agent.url + "/readyz", timeout=5).status_code == 200, timeout=30
            ), agent.output()
            with publisher(mosquitto.port) as mqtt:
                fleet = Fleet(mqtt)
                fleet.run(seconds=0.2)  # warm-up
                assert wait_until(lambda: len(env_changes(tmp_path / "env")) == 10, timeout=20), (
                    agent.output()
                )
                warm = fleet.published
                began = time.monotonic()
                fleet.run(seconds=SECONDS, start=100)
                published = time.monotonic() - began
                sent_at = time.monotonic()
                stations = (fleet.published) // 2
                arrived = wait_until(
                    lambda: (
                        traffic_state(traffic) == fleet.last_intensity
                        and len(env_changes(tmp_path / "env")) == stations
                        and len(archived(tmp_path / "planning.db")) == fleet.published
                    ),
                    timeout=15,
                )
                waited = time.monotonic() - sent_at
                assert arrived, (
                    len(env_changes(tmp_path / "env")),
                    len(archived(tmp_path / "planning.db")),
                    fleet.published,
                    agent.output()[-2000:],
                )
                rate = (fleet.published - warm) / published
                env_ms = latencies_ms(
                    [
                        (row["observedAt"], row["receivedAt"])
                        for row in env_changes(tmp_path / "env")
                    ]
                )
                planning_ms = [
                    (
                        datetime.fromisoformat(received.replace("Z", "+00:00")).timestamp() * 1e6
                        - observed
                    )
                    / 1000
                    for _, observed, received in archived(tmp_path / "planning.db")
                ]
                print(
                    f"\n{fleet.published - warm} uplinks in {published:.2f} s ({rate:.0f}/s) "
                    "through the agent; every change at the three consumers "
                    f"{waited * 1000:.0f} ms after the last uplink"
                )
                print(figures("environment (HTTP), uplink -> consumer", env_ms))
                print(figures("planning (MQTT), uplink -> consumer", planning_ms))
                assert max(env_ms) < 1000
                assert max(planning_ms) < 1000
                rows = [
                    (entity, observed) for entity, observed, _ in archived(tmp_path / "planning.db")
                ]
                assert len(set(rows)) == len(rows)

                # Pause the traffic subscription: nothing more arrives there.
                flow_id = _subscription_id(broker.url, "e2e/traffic/flow")
                paused = run_cli("subscriptions", "pause", flow_id, "--broker", broker.url)
                assert paused.returncode == 0, paused.stderr
                before = traffic_state(traffic)
                expected = fleet.published + 50
                fleet.run(seconds=0.5, start=1000)
                assert wait_until(lambda: len(archived(tmp_path / "planning.db")) == expected)
                time.sleep(0.5)
                assert traffic_state(traffic) == before
                # ... and after resume it delivers again.
                resumed = run_cli("subscriptions", "resume", flow_id, "--broker", broker.url)
                assert resumed.returncode == 0, resumed.stderr
                fleet.run(seconds=0.3, start=2000)
                assert wait_until(lambda: traffic_state(traffic) == fleet.last_intensity, timeout=5)
        finally:
            agent.stop()

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
        "13.30,52.49,13.3015,52.51",
        "--limit",
        "1000",
        "--output",
        "json",
    )
    assert query.returncode == 0, query.stderr
    found = json.loads(query.stdout)
    assert {c["entityId"] for c in found} == {
        "urn:ngsi-ld:AirQualityObserved:station-0",
        "urn:ngsi-ld:AirQualityObserved:station-1",
    }


def _subscription_id(broker_url: str, name: str) -> str:
    from ngsi import Client

    with Client(broker_url) as client:
        return next(str(s.id) for s in client.list_subscriptions() if s.subscription_name == name)
