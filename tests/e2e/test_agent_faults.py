"""Faults: bad input never stops the agent; the broker going away loses nothing and duplicates
nothing; a killed agent loses nothing it acknowledged."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agents.delivery import DeadLetters
from agents.registry import RegisteredDevice
from ngsi import Client
from tests.broker.conftest import SDM_CONTEXTS, RunningBroker, sdm_url, start_broker
from tests.conftest import REPO, Mosquitto, free_port
from tests.e2e.support import (
    SECRET,
    agent_config,
    lpp,
    metrics,
    publisher,
    register,
    running_agent,
    start_agent_process,
    tts_topic,
    tts_uplink,
    wait_for,
)

# Agents run as real subprocesses that are killed and restarted; on a loaded 2-core CI machine
# a run takes longer than the suite-wide 120 s default.
pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(360)]

WEATHER = sdm_url("Weather")
DEVICE = sdm_url("Device")
LOOP_JS = REPO / "tests" / "agents" / "data" / "codecs" / "loop.js"

LOOPING_PROFILE = """\
name: looping-js
codec:
  name: javascript
  config: {file: loop.js, time_limit_ms: 50}
controlled_property: [temperature]
entities:
  - type: WeatherObserved
    attributes:
      temperature: {source: counter, unit: CEL}
"""


def observations(broker_url: str, tenant: str) -> dict[str, dict[str, Any]]:
    with Client(broker_url, tenant=tenant, profile="embedded") as client:
        found = client.query_all(type="WeatherObserved", context=WEATHER)
    return {entity["id"]: entity for entity in found}


def register_many(broker_url: str, tenant: str, dev_euis: list[str]) -> None:
    """Register devices in one batch (as `devices import` does, without the per-device reads)."""
    devices = [
        RegisteredDevice(
            dev_eui=dev_eui,
            profile="temperature-humidity-lpp",
            measuring_point=f"p-{dev_eui}",
            location={"type": "Point", "coordinates": [13.4, 52.5]},
            controlled_property=("temperature", "humidity"),
        ).to_entity()
        for dev_eui in dev_euis
    ]
    with Client(broker_url, tenant=tenant, profile="embedded") as client:
        result = client.batch_create(devices, context=DEVICE)
    assert not result.failed, result.failed


def test_bad_input_goes_to_dead_letters_and_the_good_keeps_flowing(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    good, looping = "70B3D57ED0000101", "70B3D57ED0000102"
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "looping-js.yaml").write_text(LOOPING_PROFILE)
    shutil.copy(LOOP_JS, profiles / "loop.js")
    register(broker.url, good, tenant=tenant, measuring_point="gut")
    register(
        broker.url,
        looping,
        tenant=tenant,
        profile="looping-js",
        measuring_point="schleife",
        profiles_dir=profiles,
    )
    document = agent_config(
        tmp_path,
        broker_url=broker.url,
        tenant=tenant,
        mqtt_port=mosquitto.port,
        profiles={"dir": str(profiles)},
    )
    topic = tts_topic(good)
    frame = lpp((1, "temperature", 20.0))
    bad_base64 = orjson.loads(tts_uplink(good, 2, frame))
    bad_base64["uplink_message"]["frm_payload"] = "not base64!!"
    with running_agent(tmp_path, document) as agent, publisher(mosquitto.port) as pub:
        pub.publish(topic, b"{this is not json")
        pub.publish(topic, orjson.dumps(bad_base64))
        pub.publish(topic, tts_uplink(good, 3, frame[:3]))  # truncated CayenneLPP
        pub.publish(tts_topic("70B3D57EDEADBEEF"), tts_uplink("70B3D57EDEADBEEF", 1, frame))
        pub.publish(tts_topic(looping), tts_uplink(looping, 1, b"\xff"))  # loops forever
        pub.publish(tts_topic(looping), tts_uplink(looping, 2, b"\x07"))  # the codec goes on
        pub.publish(topic, tts_uplink(good, 4, lpp((1, "temperature", 21.0))))
        wait_for(
            lambda: (
                (o := observations(broker.url, tenant)).get("urn:ngsi-ld:WeatherObserved:gut")
                and "urn:ngsi-ld:WeatherObserved:schleife" in o
            )
        )
        scraped = metrics(f"http://127.0.0.1:{agent.http_port}")
        assert agent.outbox is not None
        letters = DeadLetters(agent.outbox.db).list()
    found = observations(broker.url, tenant)
    assert found["urn:ngsi-ld:WeatherObserved:gut"]["temperature"]["value"] == 21.0
    assert found["urn:ngsi-ld:WeatherObserved:schleife"]["temperature"]["value"] == 7
    reasons = sorted(
        (
            letter.reason,
            (letter.detail or {}).get("parse_reason") or (letter.detail or {}).get("codec_reason"),
        )
        for letter in letters
    )
    assert reasons == [
        ("codec-error", "truncated"),
        ("codec-timeout", "timeout"),
        ("malformed-uplink", "bad-base64"),
        ("malformed-uplink", "malformed-json"),
    ]
    assert all(letter.payload for letter in letters)  # the raw message is kept for replay
    assert scraped['drehscheibe_uplinks_total{source="mqtt",outcome="accepted"}'] == 2
    assert scraped['drehscheibe_uplinks_total{source="mqtt",outcome="dead-letter"}'] == 4
    assert scraped['drehscheibe_uplinks_total{source="mqtt",outcome="unknown-device"}'] == 1
    assert scraped['drehscheibe_parse_errors_total{source="mqtt",reason="malformed-json"}'] == 1
    assert scraped['drehscheibe_decode_errors_total{source="mqtt",reason="timeout"}'] == 1
    assert scraped['drehscheibe_decode_errors_total{source="mqtt",reason="truncated"}'] == 1
    assert scraped['drehscheibe_dead_letters_added_total{reason="codec-timeout"}'] == 1


def test_readiness_follows_sources_and_broker(
    mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    silent = free_port()  # nothing answers there
    document = agent_config(
        tmp_path,
        broker_url=f"http://127.0.0.1:{silent}",
        tenant=tenant,
        mqtt_port=mosquitto.port,
        health={"broker_stale_after": 0.5},
    )
    with running_agent(tmp_path, document) as agent, publisher(mosquitto.port) as pub:
        base = f"http://127.0.0.1:{agent.http_port}"
        assert httpx.get(base + "/healthz").status_code == 200
        assert httpx.get(base + "/readyz").status_code == 200  # nothing waits yet
        assert agent.outbox is not None
        from agents.delivery import OutboxItem

        agent.outbox.put(OutboxItem(entity={"id": "urn:ngsi-ld:T:1", "type": "T"}))
        ready = wait_for(lambda: (r := httpx.get(base + "/readyz")).status_code == 503 and r.json())
        assert ready["checks"]["broker"]["ok"] is False
        assert "no answer from the broker" in ready["checks"]["broker"]["error"]
        mosquitto.stop()
        ready = wait_for(
            lambda: not (j := httpx.get(base + "/readyz").json())["checks"]["sources"]["ok"] and j
        )
        assert "mqtt" in ready["checks"]["sources"]["down"]
        mosquitto.start()
        wait_for(lambda: httpx.get(base + "/readyz").json()["checks"]["sources"]["ok"])
        del pub


@pytest.mark.slow
def test_the_broker_away_for_30_seconds_loses_nothing_and_writes_nothing_twice(
    mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    data = tmp_path / "broker-data"
    port = free_port()
    devices = [f"70B3D57ED00002{n:02X}" for n in range(5)]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    sent: list[tuple[str, datetime]] = []
    first = start_broker(data, port=port, preload_contexts=dict(SDM_CONTEXTS))
    url = first.__enter__().url
    register_many(url, tenant, devices)
    document = agent_config(tmp_path, broker_url=url, tenant=tenant, mqtt_port=mosquitto.port)
    with running_agent(tmp_path, document) as agent, publisher(mosquitto.port) as pub:
        assert agent.outbox is not None
        assert agent.mapper is not None
        registry = agent.mapper.registries[tenant]
        wait_for(lambda: len(registry) == len(devices))
        first.__exit__(None, None, None)  # the broker goes away for 30 s
        deadline = time.monotonic() + 30
        n = 0
        while time.monotonic() < deadline:
            n += 1
            for dev_eui in devices:
                at = start + timedelta(seconds=n)
                frame = lpp((1, "temperature", n / 10))
                pub.publish(tts_topic(dev_eui), tts_uplink(dev_eui, n, frame, at=at))
                sent.append((dev_eui, at))
            time.sleep(0.25)
        # every uplink is acknowledged and waits in the outbox: observation + Device each
        wait_for(lambda: agent.outbox is not None and agent.outbox.depth >= 2 * len(sent))
        with start_broker(data, port=port, preload_contexts=dict(SDM_CONTEXTS)):
            wait_for(lambda: agent.outbox is not None and agent.outbox.depth == 0, timeout=60)
            with Client(url, tenant=tenant, profile="embedded") as client:
                histories = {
                    dev_eui: client.temporal_retrieve(
                        f"urn:ngsi-ld:WeatherObserved:p-{dev_eui}",
                        attrs="temperature",
                        context=WEATHER,
                    )
                    for dev_eui in devices
                }
            current = observations(url, tenant)
        assert agent.outbox.counters.rejected == 0
    for dev_eui in devices:
        instances = histories[dev_eui]["temperature"]
        instances = instances if isinstance(instances, list) else [instances]
        seen = Counter(datetime.fromisoformat(i["observedAt"]) for i in instances)
        expected = {at for d, at in sent if d == dev_eui}
        assert set(seen) == expected, f"{dev_eui}: missing {sorted(expected - set(seen))[:5]}"
        twice = [at for at, times in seen.items() if times > 1]
        assert not twice, f"{dev_eui}: written twice: {twice[:5]}"
        last = current[f"urn:ngsi-ld:WeatherObserved:p-{dev_eui}"]
        assert last["temperature"]["value"] == n / 10


def test_a_killed_agent_loses_no_acknowledged_webhook_uplink(
    broker: RunningBroker, tenant: str, tmp_path: Path
) -> None:
    devices = [f"70B3D57ED00003{n:02X}" for n in range(120)]
    register_many(broker.url, tenant, devices)
    document = agent_config(tmp_path, broker_url=broker.url, tenant=tenant, webhook=True)
    agent = start_agent_process(tmp_path, document)
    acknowledged: list[str] = []
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(timeout=5) as http:
            for dev_eui in devices:
                if stop.is_set():
                    return
                try:
                    answer = http.post(
                        agent.url + "/webhooks/uplinks",
                        content=tts_uplink(dev_eui, 1, lpp((1, "temperature", 4.2))),
                        headers={"X-Webhook-Secret": SECRET},
                    )
                except httpx.HTTPError:
                    continue
                if answer.status_code == 202:
                    acknowledged.append(dev_eui)

    sender = threading.Thread(target=send)
    try:
        sender.start()
        wait_for(lambda: len(acknowledged) >= 40, timeout=30)
        agent.kill()  # SIGKILL mid-stream: no shutdown, no final commit, no drain
        sender.join(60)
        assert 40 <= len(acknowledged) < len(devices)
        agent = start_agent_process(tmp_path, document, name="restarted")
        wanted = {f"urn:ngsi-ld:WeatherObserved:p-{d}" for d in acknowledged}
        try:
            wait_for(lambda: wanted <= set(observations(broker.url, tenant)), timeout=120)
        except AssertionError:
            missing = sorted(wanted - set(observations(broker.url, tenant)))
            raise AssertionError(
                f"{len(missing)} acknowledged uplinks missing: {missing[:5]}\n"
                + agent.output()[-3000:]
            ) from None
        agent.stop()  # SIGTERM: a clean stop
        assert agent.process.returncode == 0, agent.output()
    finally:
        stop.set()
        agent.stop()


def test_a_killed_agent_loses_nothing_published_with_qos1_to_its_persistent_session(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    devices = [f"70B3D57ED00004{n:02X}" for n in range(150)]
    register_many(broker.url, tenant, devices)
    document = agent_config(
        tmp_path, broker_url=broker.url, tenant=tenant, mqtt_port=mosquitto.port
    )
    document["agent"]["name"] = "killed-agent"  # the same client id after the restart
    agent = start_agent_process(tmp_path, document)
    try:
        wait_for(
            lambda: (
                metrics(agent.url).get(
                    'drehscheibe_source_connected{source="mqtt",transport="mqtt"}'
                )
                == 1
            )
        )
        with publisher(mosquitto.port) as pub:
            for index, dev_eui in enumerate(devices):
                pub.publish(
                    tts_topic(dev_eui), tts_uplink(dev_eui, 1, lpp((1, "temperature", 1.5)))
                )
                if index == 60:
                    agent.kill()
        agent = start_agent_process(tmp_path, document, name="restarted")
        wanted = {f"urn:ngsi-ld:WeatherObserved:p-{d}" for d in devices}
        wait_for(lambda: wanted <= set(observations(broker.url, tenant)), timeout=120)
    finally:
        agent.stop()
