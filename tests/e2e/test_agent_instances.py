"""Two agent instances splitting the uplinks through an MQTT shared subscription (a real
Mosquitto, the embedded broker over HTTP): every uplink reaches the broker once, and the fleet
check of one instance counts the uplinks the other received."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.runtime import Agent
from ngsi import Client
from tests.broker.conftest import RunningBroker, sdm_url
from tests.conftest import Mosquitto
from tests.e2e.support import (
    agent_config,
    lpp,
    publisher,
    register,
    running_agent,
    tts_topic,
    tts_uplink,
    wait_for,
)

pytestmark = pytest.mark.mqtt

WEATHER = sdm_url("Weather")


def drained(agent: Agent) -> bool:
    return agent.outbox is not None and agent.outbox.depth == 0


def accepted(agent: Agent) -> int:
    assert agent.pipeline is not None
    return agent.pipeline.counters.uplinks.get(("mqtt", "accepted"), 0)


def test_two_instances_share_the_uplinks_and_each_judges_all_devices(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    devices = [f"70B3D57ED00F07{n:02X}" for n in range(3)]
    for dev_eui in devices:
        register(
            broker.url,
            dev_eui,
            tenant=tenant,
            measuring_point=f"p-{dev_eui}",
            installed=datetime.now(UTC) - timedelta(days=1),
        )
    documents = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        document = agent_config(
            tmp_path / name, broker_url=broker.url, tenant=tenant, mqtt_port=mosquitto.port
        )
        document["sources"][0]["mqtt"]["shared_group"] = "agents"
        documents.append(document)
    start = datetime.now(UTC) - timedelta(days=2)  # long enough ago to be silent now
    sent: list[tuple[str, datetime]] = []
    with (
        running_agent(tmp_path / "a", documents[0]) as a,
        running_agent(tmp_path / "b", documents[1]) as b,
        publisher(mosquitto.port) as pub,
    ):
        for n in range(1, 11):
            for dev_eui in devices:
                at = start + timedelta(seconds=n)
                frame = lpp((1, "temperature", n / 10))
                pub.publish(tts_topic(dev_eui), tts_uplink(dev_eui, n, frame, at=at))
                sent.append((dev_eui, at))
        wait_for(lambda: accepted(a) + accepted(b) == len(sent))
        assert accepted(a) > 0
        assert accepted(b) > 0  # the uplinks were split
        wait_for(lambda: drained(a) and drained(b))

        # one more uplink of the first device: whichever instance takes it, the other one's
        # fleet check finds it through the Device's dateLastValueReported
        before = accepted(a)
        pub.publish(tts_topic(devices[0]), tts_uplink(devices[0], 11, lpp((1, "temperature", 2.0))))
        wait_for(lambda: accepted(a) + accepted(b) == len(sent) + 1)
        other = b if accepted(a) > before else a
        wait_for(lambda: drained(a) and drained(b))
        assert other.fleet is not None
        verdicts = {verdict.dev_eui: verdict for verdict in other.fleet.check()}
        # (its fCnt gaps are this instance's share only: see docs/performance.md)
        assert "silent" not in verdicts[devices[0]].reasons, verdicts[devices[0]].detail

    with Client(broker.url, tenant=tenant, profile="embedded") as client:
        for dev_eui in devices:
            history = client.temporal_retrieve(
                f"urn:ngsi-ld:WeatherObserved:p-{dev_eui}", attrs="temperature", context=WEATHER
            )
            instances = history["temperature"]
            instances = instances if isinstance(instances, list) else [instances]
            seen = Counter(datetime.fromisoformat(i["observedAt"]) for i in instances)
            expected = {at for d, at in sent if d == dev_eui}
            assert expected <= set(seen), f"{dev_eui}: missing {sorted(expected - set(seen))}"
            assert max(seen.values()) == 1, f"{dev_eui}: a reading written twice"
