"""Backfill: frames lost between the network server and the agent (an fCnt gap) are fetched from
The Things Stack's Storage Integration (a small HTTP server on loopback answering in its
documented shape) and end in the measuring point's history, read back through the broker's
temporal API. A real Mosquitto, the agent in this process, the embedded broker over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from agents.fleet import BackfillSource, FleetSettings
from agents.runtime import Agent, AgentConfig
from tests.broker.conftest import RunningBroker, sdm_url
from tests.conftest import Mosquitto, free_port
from tests.e2e.support import (
    agent_config,
    iso,
    lpp,
    publisher,
    register,
    tts_topic,
    tts_uplink,
    wait_for,
)

pytestmark = pytest.mark.mqtt

DEV_EUI = "70B3D57ED00F0201"
DEVICE = f"dev-{DEV_EUI.lower()}"
KEY = "NNSXS.STORAGE.KEY"
WEATHER = sdm_url("Weather")


@dataclass
class Storage:
    url: str
    stored: list[dict[str, Any]] = field(default_factory=list)
    asked: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def storage() -> Iterator[Storage]:
    port = free_port()
    found = Storage(url=f"http://127.0.0.1:{port}")
    path = f"/api/v3/as/applications/city/devices/{DEVICE}/packages/storage/uplink_message"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if self.headers.get("Authorization") != f"Bearer {KEY}":
                self.send_response(401)
                self.end_headers()
                return
            if parts.path != path or self.headers.get("Accept") != "text/event-stream":
                self.send_response(404)
                self.end_headers()
                return
            found.asked.append(query)
            after = datetime.fromisoformat(query["after"])
            before = datetime.fromisoformat(query["before"])
            lines = [
                orjson.dumps({"result": message})
                for message in found.stored
                if after <= datetime.fromisoformat(message["received_at"]) <= before
            ]
            data = b"\n\n".join(lines)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def history(broker: RunningBroker, tenant: str, since: datetime) -> list[tuple[str, float]]:
    response = httpx.get(
        f"{broker.api}/temporal/entities/urn:ngsi-ld:WeatherObserved:{DEV_EUI}",
        params={"attrs": "temperature", "timerel": "after", "timeAt": iso(since)},
        headers={
            "Link": f'<{WEATHER}>; rel="http://www.w3.org/ns/json-ld#context"; '
            'type="application/ld+json"',
            "NGSILD-Tenant": tenant,
        },
        timeout=10,
    )
    if response.status_code == 404:
        return []
    response.raise_for_status()
    found = response.json().get("temperature", [])
    items = found if isinstance(found, list) else [found]
    return sorted((item["observedAt"], item["value"]) for item in items)


def test_fcnt_gaps_are_filled_from_the_storage_integration(
    broker: RunningBroker,
    mosquitto: Mosquitto,
    tenant: str,
    tmp_path: Path,
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    register(broker.url, DEV_EUI, tenant=tenant)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    at = [start + timedelta(minutes=n) for n in range(5)]
    values = [10.0, 11.0, 12.0, 13.0, 14.0]
    messages = [
        orjson.loads(tts_uplink(DEV_EUI, n + 1, lpp((1, "temperature", values[n])), at=at[n]))
        for n in range(5)
    ]
    storage.stored = messages
    monkeypatch.setenv("FLEET_TEST_STORAGE_KEY", KEY)
    document = agent_config(
        tmp_path, broker_url=broker.url, tenant=tenant, mqtt_port=mosquitto.port
    )
    config = AgentConfig.from_mapping(document, base_dir=tmp_path, environ={})
    settings = FleetSettings(
        interval=0.2,
        backfill=(
            BackfillSource(source="mqtt", url=storage.url, api_key_env="FLEET_TEST_STORAGE_KEY"),
        ),
    )
    agent = Agent(config.model_copy(update={"fleet": settings}), drain_timeout=2.0)
    agent.start()
    try:
        wait_for(lambda: agent.readiness().checks["sources"]["ok"], timeout=30)
        with publisher(mosquitto.port) as pub:
            # frames 3 and 4 never reach the agent (QoS 0 on the way)
            for n in (0, 1, 4):
                pub.publish(tts_topic(DEV_EUI), orjson.dumps(messages[n]))
            wanted = [(iso(at[n]), values[n]) for n in range(5)]
            wait_for(lambda: history(broker, tenant, start - timedelta(minutes=1)) == wanted)
        # asked once, for the time between the frames around the gap
        assert len(storage.asked) == 1
        assert storage.asked[0]["after"] == iso(at[1])
        assert storage.asked[0]["before"] == iso(at[4])
        assert agent.fleet is not None
        backfiller = agent.fleet.backfiller
        assert backfiller is not None
        assert backfiller.totals.submitted == 2
        # the current state is still the newest reading
        current = httpx.get(
            f"{broker.api}/entities/urn:ngsi-ld:WeatherObserved:{DEV_EUI}",
            params={"options": "keyValues"},
            headers={
                "Link": f'<{WEATHER}>; rel="http://www.w3.org/ns/json-ld#context"; '
                'type="application/ld+json"',
                "NGSILD-Tenant": tenant,
            },
            timeout=10,
        ).json()
        assert current["temperature"] == 14.0
        assert agent.pipeline is not None
        assert agent.pipeline.counters.uplinks[("mqtt", "accepted")] == 5
        checks = agent.fleet.counters.checks
        wait_for(lambda: agent.fleet is not None and agent.fleet.counters.checks > checks + 1)
        assert backfiller.totals.gaps == 0
        assert len(storage.asked) == 1
    finally:
        agent.stop()
