"""Acceptance: moving and swapping sensors keeps one continuous history per measuring point.

A real Mosquitto, the agent in this process, the embedded broker over HTTP, and the CLI as
subprocesses. The history is read back through the broker's temporal API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.registry import DEVICE_CONTEXT
from tests.broker.conftest import RunningBroker, sdm_url
from tests.conftest import Mosquitto
from tests.e2e.support import (
    agent_config,
    iso,
    lpp,
    publisher,
    running_agent,
    tts_topic,
    tts_uplink,
    wait_for,
)
from tests.fleet.conftest import devices

pytestmark = pytest.mark.mqtt

WEATHER = sdm_url("Weather")
OLD, NEW = "70B3D57ED00F0001", "70B3D57ED00F0002"
POINT_ID = "urn:ngsi-ld:WeatherObserved:brunnen"
HERE = [6.7735, 51.2277]
THERE = [6.7800, 51.2300]


def link(context: str) -> dict[str, str]:
    return {
        "Link": f'<{context}>; rel="http://www.w3.org/ns/json-ld#context"; '
        'type="application/ld+json"'
    }


def current(broker: RunningBroker, tenant: str, entity_id: str) -> dict[str, Any] | None:
    return broker.entity(entity_id, tenant=tenant, context=WEATHER)


def temperature(broker: RunningBroker, tenant: str) -> float | None:
    found = current(broker, tenant, POINT_ID)
    return found["temperature"]["value"] if found else None


def instances(entity: dict[str, Any], name: str) -> list[dict[str, Any]]:
    found = entity.get(name, [])
    return found if isinstance(found, list) else [found]


def test_move_and_swap_keep_one_history_per_measuring_point(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    devices(
        broker,
        tenant,
        "register",
        OLD,
        "--profile",
        "temperature-humidity-lpp",
        "--measuring-point",
        "brunnen",
        "--location",
        f"{HERE[0]},{HERE[1]}",
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    times = [start + timedelta(minutes=10 * n) for n in range(5)]
    document = agent_config(
        tmp_path, broker_url=broker.url, tenant=tenant, mqtt_port=mosquitto.port
    )
    with running_agent(tmp_path, document) as agent, publisher(mosquitto.port) as pub:
        assert agent.mapper is not None
        registry = agent.mapper.registries[tenant]

        def send(dev_eui: str, f_cnt: int, value: float, at: datetime) -> None:
            frame = lpp((1, "temperature", value))
            pub.publish(tts_topic(dev_eui), tts_uplink(dev_eui, f_cnt, frame, at=at))
            wait_for(lambda: temperature(broker, tenant) == value, timeout=30)

        send(OLD, 1, 10.0, times[0])
        send(OLD, 2, 11.0, times[1])
        # moved between the second and the third reading
        devices(
            broker,
            tenant,
            "move",
            OLD,
            "--lat",
            str(THERE[1]),
            "--lon",
            str(THERE[0]),
            "--from",
            iso(times[1] + timedelta(minutes=5)),
        )
        wait_for(lambda: (d := registry.get(OLD)) is not None and len(d.placements) == 2)
        send(OLD, 3, 12.0, times[2])
        # swapped between the third and the fourth
        swapped = devices(broker, tenant, "swap", OLD, NEW, "--at", iso(times[3]), "-o", "json")
        assert '"registered": true' in swapped.stdout
        wait_for(lambda: (d := registry.get(NEW)) is not None and d.state == "active")
        wait_for(lambda: (d := registry.get(OLD)) is not None and d.state == "inactive")
        # right after the swap the observation names the new sensor already
        found = current(broker, tenant, POINT_ID)
        assert found is not None
        assert found["refDevice"]["object"] == f"urn:ngsi-ld:Device:{NEW}"
        pub.publish(tts_topic(OLD), tts_uplink(OLD, 4, lpp((1, "temperature", 99.0))))
        send(NEW, 1, 13.0, times[3] + timedelta(minutes=1))
        send(NEW, 2, 14.0, times[4])
        assert agent.pipeline is not None
        assert agent.pipeline.counters.uplinks.get(("mqtt", "inactive-device")) == 1

    # each sensor's first uplink set its dateFirstUsed
    for dev_eui, first in ((OLD, times[0]), (NEW, times[3] + timedelta(minutes=1))):
        stored = httpx.get(
            f"{broker.api}/entities/urn:ngsi-ld:Device:{dev_eui}",
            params={"options": "keyValues", "attrs": "dateFirstUsed,deviceState"},
            headers={**link(DEVICE_CONTEXT), "NGSILD-Tenant": tenant},
            timeout=10,
        ).json()
        assert stored["dateFirstUsed"]["@value"] == iso(first)
    response = httpx.get(
        f"{broker.api}/temporal/entities",
        params={
            "type": "WeatherObserved",
            "attrs": "temperature,location,refDevice",
            "timerel": "after",
            "timeAt": iso(start - timedelta(minutes=1)),
        },
        headers={**link(WEATHER), "NGSILD-Tenant": tenant},
        timeout=10,
    )
    response.raise_for_status()
    histories = response.json()
    assert [h["id"] for h in histories] == [POINT_ID]
    history = histories[0]
    readings = sorted(
        (item["observedAt"], item["value"]) for item in instances(history, "temperature")
    )
    assert readings == [
        (iso(times[0]), 10.0),
        (iso(times[1]), 11.0),
        (iso(times[2]), 12.0),
        (iso(times[3] + timedelta(minutes=1)), 13.0),
        (iso(times[4]), 14.0),
    ]
    places = {
        item["observedAt"]: item["value"]["coordinates"] for item in instances(history, "location")
    }
    assert places == {
        iso(times[0]): HERE,
        iso(times[1]): HERE,
        iso(times[2]): THERE,
        iso(times[3] + timedelta(minutes=1)): THERE,
        iso(times[4]): THERE,
    }
