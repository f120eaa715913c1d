"""The simulated fleet through the whole path: registration via the CLI, uplinks over a real
Mosquitto, the LoRaWAN agent, observation entities in the embedded broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.profiles import ProfileCatalog
from agents.runtime import Agent, AgentConfig
from agents.simulator import (
    MqttSink,
    SimulatedMessage,
    Simulator,
    build_fleet,
    register_fleet,
    run_simulation,
)
from tests.broker.conftest import SDM_CONTEXTS, sdm_url, start_broker
from tests.conftest import Mosquitto, free_port


def _wait(predicate: Callable[[], Any], *, timeout: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s (last {last!r})")


@pytest.mark.mqtt
@pytest.mark.slow
@pytest.mark.parametrize("network_server", ["tts", "chirpstack-v4"])
def test_the_fleet_becomes_observation_entities(
    tmp_path: Path, mosquitto: Mosquitto, network_server: str
) -> None:
    fleet = build_fleet(9, seed=13, network_server=network_server)  # type: ignore[arg-type]
    catalog = ProfileCatalog()
    with start_broker(tmp_path / "broker", preload_contexts=dict(SDM_CONTEXTS)) as broker:
        report = register_fleet(fleet, broker=broker.url)
        assert len(report.registered) == 9
        config = AgentConfig.from_mapping(
            {
                "agent": {"name": f"sim-e2e-{free_port()}", "data_dir": "agent-data"},
                "broker": {"url": broker.url, "profile": "embedded", "retry_max": 1.0},
                "http": {"host": "127.0.0.1", "port": 0},
                "sources": [
                    {
                        "name": "city",
                        "network_server": network_server,
                        "transport": "mqtt",
                        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "qos": 1},
                    }
                ],
                "pipeline": {"batch_wait": 0.005},
            },
            base_dir=tmp_path,
            environ={},
        )
        agent = Agent(config, drain_timeout=2.0)
        agent.start()
        try:
            _wait(lambda: agent.readiness().checks["sources"]["ok"], timeout=30)
            simulator = Simulator(fleet)
            sent_messages: list[SimulatedMessage] = []
            with MqttSink("127.0.0.1", mosquitto.port, qos=1) as sink:
                sent = run_simulation(
                    simulator,
                    sink,
                    # A device's two uplinks are 1.5 s apart, so their payload times differ.
                    rate=6.0,
                    count=2 * len(fleet.devices),
                    on_message=lambda message, _delivered: sent_messages.append(message),
                )
            assert sent.failed == 0

            expected: list[str] = []
            for device in fleet.devices:
                for entity in catalog.get(device.profile).entities:
                    suffix = f":{entity.id_suffix}" if entity.id_suffix else ""
                    expected.append(f"urn:ngsi-ld:{entity.type}:{device.measuring_point}{suffix}")

            def missing() -> list[str]:
                gone = []
                for entity_id in expected:
                    response = httpx.get(f"{broker.api}/entities/{entity_id}", timeout=10)
                    if response.status_code != 200:
                        gone.append(entity_id)
                return gone

            _wait(lambda: not missing(), timeout=45)

            # The last air-quality reading arrived as sent (CO2 in ppm, humidity as a ratio).
            air = next(d for d in fleet.devices if d.profile == "air-quality-lpp")
            last = [m for m in sent_messages if m.dev_eui == air.dev_eui][-1]
            link = (
                f'<{sdm_url("Environment")}>; rel="http://www.w3.org/ns/json-ld#context"; '
                'type="application/ld+json"'
            )

            def co2() -> Any:
                response = httpx.get(
                    f"{broker.api}/entities/urn:ngsi-ld:AirQualityObserved:{air.measuring_point}",
                    params={"options": "keyValues"},
                    headers={"Link": link},
                    timeout=10,
                )
                return response.json().get("co2") == last.reading.values["concentration_3"]

            _wait(co2, timeout=20)
        finally:
            agent.stop()
