"""Acceptance: a device that stops sending is marked silent within the configured multiple of
its profile's reporting interval, and recovers when it sends again.

A real Mosquitto, the agent in this process with an injected clock (so that minutes pass in
milliseconds), the embedded broker over HTTP, an NGSI-LD subscription that acts on `health`,
and `drehscheibe devices health` as a subprocess."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agents.fleet import FleetSettings
from agents.registry import DEVICE_CONTEXT
from agents.runtime import Agent, AgentConfig
from tests.broker.conftest import RunningBroker
from tests.conftest import Mosquitto
from tests.e2e.support import (
    agent_config,
    lpp,
    publisher,
    register,
    tts_topic,
    tts_uplink,
    wait_for,
)
from tests.fleet.conftest import devices
from tests.registry.conftest import Receiver, receiver  # noqa: F401

pytestmark = pytest.mark.mqtt

DEV_EUI = "70B3D57ED00F0101"
DEVICE_ID = f"urn:ngsi-ld:Device:{DEV_EUI}"
PROFILE = """\
name: thermo-2min
extends: temperature-humidity-lpp
reporting_interval: 120
"""


class Clock:
    """The agent's clock, moved forward by the test."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


def health_of(broker: RunningBroker, tenant: str) -> dict[str, Any] | None:
    response = httpx.get(
        f"{broker.api}/entities/{DEVICE_ID}",
        params={"attrs": "health"},
        headers={
            "Link": f'<{DEVICE_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; '
            'type="application/ld+json"',
            "NGSILD-Tenant": tenant,
        },
        timeout=10,
    )
    if response.status_code == 404:  # no health yet (or no such entity)
        return None
    response.raise_for_status()
    found: dict[str, Any] | None = response.json().get("health")
    return found


def status(broker: RunningBroker, tenant: str) -> str | None:
    found = health_of(broker, tenant)
    return found["value"] if found else None


def test_a_silent_device_is_marked_and_recovers(
    broker: RunningBroker,
    mosquitto: Mosquitto,
    tenant: str,
    tmp_path: Path,
    receiver: Receiver,  # noqa: F811
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "thermo-2min.yaml").write_text(PROFILE)
    register(broker.url, DEV_EUI, tenant=tenant, profile="thermo-2min", profiles_dir=profiles)
    # an alert rule: notify when a device's health is not ok
    subscription = {
        "type": "Subscription",
        "entities": [{"type": "Device"}],
        "watchedAttributes": ["health"],
        "q": 'health!="ok"',
        "notification": {"endpoint": {"uri": receiver.url, "accept": "application/json"}},
    }
    httpx.post(
        f"{broker.api}/subscriptions",
        content=orjson.dumps({**subscription, "@context": DEVICE_CONTEXT}),
        headers={"Content-Type": "application/ld+json", "NGSILD-Tenant": tenant},
        timeout=10,
    ).raise_for_status()

    document = agent_config(
        tmp_path,
        broker_url=broker.url,
        tenant=tenant,
        mqtt_port=mosquitto.port,
        profiles={"dir": str(profiles)},
    )
    config = AgentConfig.from_mapping(document, base_dir=tmp_path, environ={})
    config = config.model_copy(
        update={"fleet": FleetSettings(interval=0.1, silent_after=3, min_uplinks=50)}
    )
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    agent = Agent(config, drain_timeout=2.0, clock=clock)
    agent.start()
    try:
        assert agent.fleet is not None
        fleet = agent.fleet
        # an uplink published before the subscription is granted passes unseen
        wait_for(lambda: agent.readiness().checks["sources"]["ok"], timeout=30)

        def checks_after(count: int) -> None:
            wait_for(lambda: fleet.counters.checks >= count + 2, timeout=20)

        with publisher(mosquitto.port) as pub:
            for f_cnt in (1, 2, 3):
                pub.publish(
                    tts_topic(DEV_EUI),
                    tts_uplink(DEV_EUI, f_cnt, lpp((1, "temperature", 20.0 + f_cnt)), at=clock()),
                )
                if f_cnt < 3:
                    clock.advance(minutes=2)
            wait_for(lambda: status(broker, tenant) == "ok", timeout=30)

            # 5 minutes without an uplink: less than 3 x 2 minutes, still ok
            clock.advance(minutes=5)
            checks_after(fleet.counters.checks)
            assert status(broker, tenant) == "ok"
            assert agent.pipeline is not None

            # 6.5 minutes: more than 3 x 2 minutes, silent at the next check
            clock.advance(minutes=1.5)
            checks_after(fleet.counters.checks)
            found = health_of(broker, tenant)
            assert found is not None
            assert found["value"] == "silent"
            reasons = found["reasons"]["value"]
            assert reasons in ("silent", ["silent"])
            text = agent.metrics_text()
            assert 'drehscheibe_fleet_devices{status="silent"} 1' in text
            assert (
                f'drehscheibe_device_unhealthy{{tenant="{tenant}",dev_eui="{DEV_EUI}",'
                'reason="silent"} 1'
            ) in text
            notified = receiver.next(timeout=10)
            assert [item["id"] for item in notified["data"]] == [DEVICE_ID]

            shown = devices(broker, tenant, "health", "--output", "json")
            [record] = orjson.loads(shown.stdout)
            assert record["devEUI"] == DEV_EUI
            assert record["health"] == "silent"
            assert record["reasons"] == ["silent"]
            assert record["detail"] == [
                "no uplink for 6 min; expected every 2 min (silent after 3x)"
            ]

            # it sends again: ok at the next check
            pub.publish(
                tts_topic(DEV_EUI),
                tts_uplink(DEV_EUI, 4, lpp((1, "temperature", 24.0)), at=clock()),
            )
            wait_for(lambda: status(broker, tenant) == "ok", timeout=30)
            checks_after(fleet.counters.checks)
            assert 'drehscheibe_fleet_devices{status="ok"} 1' in agent.metrics_text()
            table = devices(broker, tenant, "health", env={**os.environ, "COLUMNS": "200"})
            assert "1 device(s): 1 ok" in table.stdout
            assert DEV_EUI in table.stdout
    finally:
        agent.stop()
