"""The agent's HTTP endpoints refuse what is not authenticated, and nothing of a refused request
is written: not to the outbox, the archive, the dead letters nor the broker."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from agents.runtime import Agent
from tests.broker.conftest import RunningBroker, sdm_url
from tests.e2e.support import (
    SECRET,
    agent_config,
    lpp,
    register,
    running_agent,
    tts_uplink,
    wait_for,
)

TENANT = "security"
DEV_EUI = "70B3D57ED00000F1"
OBSERVATION = "urn:ngsi-ld:WeatherObserved:flood-gauge"


def observation(broker: RunningBroker) -> httpx.Response:
    link = f'<{sdm_url("Weather")}>; rel="http://www.w3.org/ns/json-ld#context"'
    return httpx.get(
        f"{broker.api}/entities/{OBSERVATION}",
        headers={"NGSILD-Tenant": TENANT, "Link": link},
        timeout=10,
    )


def written(agent: Agent) -> dict[str, int]:
    assert agent.outbox is not None
    assert agent.archive is not None
    return {
        "outbox": agent.outbox.depth,
        "archive": agent.archive.count(),
        "dead_letters": agent.outbox.dead_letters.count(),
    }


def test_a_webhook_without_or_with_a_wrong_secret_is_refused_and_nothing_is_written(
    broker: RunningBroker, tmp_path: Path
) -> None:
    register(broker.url, DEV_EUI, tenant=TENANT, measuring_point="flood-gauge")
    document = agent_config(tmp_path, broker_url=broker.url, tenant=TENANT, webhook=True)
    uplink = tts_uplink(DEV_EUI, 7, lpp((1, "temperature", 4.5)))
    with running_agent(tmp_path, document) as agent:
        url = f"http://127.0.0.1:{agent.http_port}/webhooks/uplinks"
        before = written(agent)
        refusals = [
            httpx.post(url, content=uplink),
            httpx.post(url, content=uplink, headers={"X-Webhook-Secret": ""}),
            httpx.post(url, content=uplink, headers={"X-Webhook-Secret": SECRET + "x"}),
            httpx.post(url, content=uplink, headers={"X-Webhook-Secret": SECRET[:-1]}),
            httpx.post(url, content=uplink, headers={"Authorization": f"Bearer {SECRET}"}),
        ]
        for refused in refusals:
            assert refused.status_code == 401, refused.text
            assert "X-Webhook-Secret" in refused.json()["error"]
        time.sleep(0.5)  # anything queued would be committed within the pipeline's batch wait
        assert written(agent) == before == {"outbox": 0, "archive": 0, "dead_letters": 0}
        assert observation(broker).status_code == 404

        # The same uplink with the secret goes all the way (the refusals were not an accident).
        accepted = httpx.post(url, content=uplink, headers={"X-Webhook-Secret": SECRET})
        assert accepted.status_code == 202, accepted.text
        found = wait_for(lambda: observation(broker).status_code == 200, timeout=20)
        assert found
        assert written(agent)["archive"] == 1


def test_the_registry_notification_endpoint_needs_its_token(
    broker: RunningBroker, tmp_path: Path
) -> None:
    document = agent_config(tmp_path, broker_url=broker.url, tenant=TENANT)
    with running_agent(tmp_path, document) as agent:
        url = f"http://127.0.0.1:{agent.http_port}{agent.config.registry.notification_path}"
        fake = {
            "id": "urn:ngsi-ld:Notification:1",
            "type": "Notification",
            "subscriptionId": "urn:ngsi-ld:Subscription:x",
            "notifiedAt": "2026-11-26T10:00:00.000Z",
            "data": [{"id": "urn:ngsi-ld:Device:70B3D57ED00000F2", "type": "Device"}],
        }
        for headers in ({}, {"X-Drehscheibe-Token": "guess"}):
            assert httpx.post(url, json=fake, headers=headers).status_code == 401
