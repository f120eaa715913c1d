"""End to end through a real Mosquitto and the embedded broker over HTTP: uplinks of registered
devices become valid Smart Data Models entities, with the right values, units, times, IRIs and
relationships; the registry follows the broker; admins' attributes survive; late readings and
sensor swaps behave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agents.registry import Registry
from models import entity_from_ngsi
from ngsi import Client
from schemas import sdm_schemas
from tests.broker.conftest import RunningBroker, sdm_url
from tests.conftest import SHARED, Mosquitto
from tests.e2e.support import (
    SECRET,
    agent_config,
    chirpstack_topic,
    chirpstack_uplink,
    iso,
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
ENVIRONMENT = sdm_url("Environment")
DEVICE = sdm_url("Device")


def client(broker: RunningBroker, tenant: str) -> Client:
    return Client(broker.url, tenant=tenant, profile="embedded")


def entity(
    broker: RunningBroker, tenant: str, entity_id: str, context: str | None
) -> dict[str, Any] | None:
    return broker.entity(entity_id, tenant=tenant, context=context)


def context_iri(subject: str, term: str) -> str:
    document = orjson.loads(
        (SHARED / "sdm" / f"dataModel.{subject}" / "context.jsonld").read_bytes()
    )
    iri: str = document["@context"][term]
    return iri


def value_of(found: dict[str, Any] | None, name: str) -> Any:
    if found is None or name not in found:
        return None
    return found[name].get("value", found[name].get("object"))


def test_tts_uplinks_become_valid_weather_observations(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    dev_eui = "70B3D57ED0000001"
    register(broker.url, dev_eui, tenant=tenant, measuring_point="rathaus")
    at = datetime.now(UTC).replace(microsecond=123000) - timedelta(seconds=5)
    document = agent_config(
        tmp_path, broker_url=broker.url, tenant=tenant, mqtt_port=mosquitto.port
    )
    with running_agent(tmp_path, document) as agent, publisher(mosquitto.port) as pub:
        frame = lpp((0, "percentage", 80), (1, "temperature", 21.5), (2, "humidity", 55.0))
        pub.publish(tts_topic(dev_eui), tts_uplink(dev_eui, 7, frame, at=at))
        observation_id = "urn:ngsi-ld:WeatherObserved:rathaus"
        found = wait_for(lambda: entity(broker, tenant, observation_id, WEATHER))
        device = wait_for(
            lambda: (
                (e := entity(broker, tenant, f"urn:ngsi-ld:Device:{dev_eui}", DEVICE))
                and "rssi" in e
                and e
            )
        )
        # The Things Stack's enterprise topics name the tenant: v3/{app}@{tenant}/devices/...
        other = "70B3D57ED0000002"
        register(broker.url, other, tenant=tenant, measuring_point="rathaus-2")
        assert agent.mapper is not None
        registry = agent.mapper.registries[tenant]
        wait_for(lambda: registry.get(other) is not None)  # the broker's notification
        pub.publish(tts_topic(other, tenant="ttn"), tts_uplink(other, 1, frame, at=at))
        wait_for(lambda: entity(broker, tenant, "urn:ngsi-ld:WeatherObserved:rathaus-2", WEATHER))
    # values, units and time
    assert found["temperature"]["value"] == 21.5
    assert found["temperature"]["unitCode"] == "CEL"
    assert found["relativeHumidity"]["value"] == pytest.approx(0.55)
    assert datetime.fromisoformat(found["temperature"]["observedAt"]) == at
    assert found["refDevice"] == {
        "type": "Relationship",
        "object": f"urn:ngsi-ld:Device:{dev_eui}",
    }
    assert found["location"]["value"]["coordinates"] == [13.405, 52.52]
    assert device["batteryLevel"]["value"] == pytest.approx(0.8)
    assert device["rssi"]["value"] == -80.0
    assert device["rssi"]["snr"]["value"] == 7.5
    # valid Smart Data Models entities, by the model and the official schema
    model = entity_from_ngsi(found)
    assert type(model).__name__ == "WeatherObserved"
    schemas = sdm_schemas(SHARED / "sdm")
    assert schemas.violations(found) == []
    # the IRIs stored are those of the Weather subject's context
    expanded = entity(broker, tenant, observation_id, None)
    assert expanded is not None
    assert context_iri("Weather", "temperature") in expanded
    assert context_iri("Weather", "refDevice") in expanded
    assert "temperature" not in expanded
    device_expanded = entity(broker, tenant, f"urn:ngsi-ld:Device:{dev_eui}", None)
    assert device_expanded is not None
    assert context_iri("Device", "batteryLevel") in device_expanded


def test_chirpstack_uplinks_over_mqtt_become_air_quality_observations(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    dev_eui = "0004A30B001C0530"
    register(
        broker.url, dev_eui, tenant=tenant, profile="air-quality-lpp", measuring_point="mitte-01"
    )
    document = agent_config(
        tmp_path,
        broker_url=broker.url,
        tenant=tenant,
        mqtt_port=mosquitto.port,
        network_server="chirpstack-v4",
    )
    observed = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    frame = lpp(
        (1, "temperature", 18.2),
        (2, "humidity", 61.5),
        (3, "concentration", 612),
        (9, "unixtime", int(observed.timestamp())),
    )
    with running_agent(tmp_path, document), publisher(mosquitto.port) as pub:
        pub.publish(chirpstack_topic(dev_eui), chirpstack_uplink(dev_eui, 3, frame))
        found = wait_for(
            lambda: entity(broker, tenant, "urn:ngsi-ld:AirQualityObserved:mitte-01", ENVIRONMENT)
        )
    assert found["co2"]["value"] == 612
    assert found["co2"]["unitCode"] == "59"
    assert found["temperature"]["value"] == 18.2
    # the payload's own timestamp comes first (design decision 6)
    assert datetime.fromisoformat(found["co2"]["observedAt"]) == observed
    assert found["typeofLocation"]["value"] == "outdoor"
    assert sdm_schemas(SHARED / "sdm").violations(found) == []
    expanded = entity(broker, tenant, "urn:ngsi-ld:AirQualityObserved:mitte-01", None)
    assert expanded is not None
    assert context_iri("Environment", "co2") in expanded
    assert context_iri("Environment", "temperature") in expanded


def test_webhooks_field_masked_tts_and_chirpstack_http(
    broker: RunningBroker, tenant: str, tmp_path: Path
) -> None:
    tts_eui, cs_eui = "70B3D57ED0000011", "70B3D57ED0000012"
    register(broker.url, tts_eui, tenant=tenant, measuring_point="hook-tts")
    register(broker.url, cs_eui, tenant=tenant, measuring_point="hook-cs")
    (tmp_path / "secret").write_text(SECRET)
    document = agent_config(tmp_path, broker_url=broker.url, tenant=tenant)
    document["sources"] = [
        {
            "name": "tts-hook",
            "network_server": "tts",
            "transport": "webhook",
            "webhook": {
                "path": "/tts/{devEUI}/{devID}",
                "secret_header": "X-Secret",
                "secret_file": "secret",
            },
        },
        {
            "name": "cs-hook",
            "network_server": "chirpstack-v4",
            "transport": "webhook",
            "webhook": {
                "path": "/chirpstack",
                "secret_header": "Authorization",
                "secret_file": "secret",
            },
        },
    ]
    with running_agent(tmp_path, document) as agent:
        base = f"http://127.0.0.1:{agent.http_port}"
        full = orjson.loads(tts_uplink(tts_eui, 4, lpp((1, "temperature", 9.5))))
        masked = {"uplink_message": full["uplink_message"], "received_at": full["received_at"]}
        answer = httpx.post(
            f"{base}/tts/{tts_eui}/dev-a",
            content=orjson.dumps(masked),
            headers={"X-Secret": SECRET},
        )
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"outcome": "accepted"}
        answer = httpx.post(
            f"{base}/chirpstack?event=up",
            content=chirpstack_uplink(cs_eui, 1, lpp((1, "temperature", 11.0))),
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        assert answer.status_code == 202, answer.text
        # ChirpStack posts every event kind; the agent answers those it has no use for
        log_event = httpx.post(
            f"{base}/chirpstack?event=log",
            content=b'{"level": "INFO", "code": "UPLINK_CODEC"}',
            headers={"Authorization": SECRET},
        )
        assert log_event.status_code == 202
        assert log_event.json()["outcome"] == "ignored"
        denied = httpx.post(
            f"{base}/chirpstack?event=up", content=b"{}", headers={"Authorization": "x"}
        )
        assert denied.status_code == 401
        tts = wait_for(
            lambda: entity(broker, tenant, "urn:ngsi-ld:WeatherObserved:hook-tts", WEATHER)
        )
        cs = wait_for(
            lambda: entity(broker, tenant, "urn:ngsi-ld:WeatherObserved:hook-cs", WEATHER)
        )
    assert tts["temperature"]["value"] == 9.5
    assert cs["temperature"]["value"] == 11.0


def test_a_device_registered_while_the_agent_runs_starts_flowing(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    dev_eui = "70B3D57ED0000021"
    document = agent_config(
        tmp_path, broker_url=broker.url, tenant=tenant, mqtt_port=mosquitto.port
    )
    with running_agent(tmp_path, document) as agent, publisher(mosquitto.port) as pub:
        assert agent.pipeline is not None
        counters = agent.pipeline.counters
        # the registry's subscription exists before the device does
        wait_for(lambda: agent.mapper is not None and agent.mapper.counters["resyncs"] >= 1)
        with client(broker, tenant) as c:
            wait_for(
                lambda: any(
                    s.subscription_name and agent.config.agent.name in s.subscription_name
                    for s in c.list_subscriptions()
                )
            )
        pub.publish(tts_topic(dev_eui), tts_uplink(dev_eui, 1, lpp((1, "temperature", 5.0))))
        wait_for(lambda: counters.uplinks.get(("mqtt", "unknown-device")) == 1)
        register(broker.url, dev_eui, tenant=tenant, measuring_point="neu")
        assert agent.mapper is not None
        registry = agent.mapper.registries[tenant]
        wait_for(lambda: registry.get(dev_eui) is not None)
        assert agent.mapper.counters["resyncs"] == 1  # the notification did it, not a resync
        pub.publish(tts_topic(dev_eui), tts_uplink(dev_eui, 2, lpp((1, "temperature", 6.0))))
        found = wait_for(lambda: entity(broker, tenant, "urn:ngsi-ld:WeatherObserved:neu", WEATHER))
    assert found["temperature"]["value"] == 6.0
    # after a restart the broker's subscription (made by the first run) still reaches the agent
    later = "70B3D57ED0000022"
    with running_agent(tmp_path, document) as agent:
        assert agent.mapper is not None
        mapper = agent.mapper
        wait_for(lambda: mapper.counters["resyncs"] >= 1)
        register(broker.url, later, tenant=tenant, measuring_point="spaeter")
        wait_for(lambda: mapper.registries[tenant].get(later) is not None)
        assert mapper.counters["resyncs"] == 1
        # counted once applied: the device may be there a moment before
        wait_for(lambda: mapper.counters["notifications"] >= 1)
    with client(broker, tenant) as c:
        mine = [
            s
            for s in c.list_subscriptions()
            if s.subscription_name and "devices" in s.subscription_name
        ]
    assert len(mine) == 1  # found again, not made twice


def test_admin_attributes_survive_a_hundred_uplinks(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    dev_eui = "70B3D57ED0000031"
    register(broker.url, dev_eui, tenant=tenant, measuring_point="schule")
    observation_id = "urn:ngsi-ld:WeatherObserved:schule"
    device_id = f"urn:ngsi-ld:Device:{dev_eui}"
    document = agent_config(
        tmp_path, broker_url=broker.url, tenant=tenant, mqtt_port=mosquitto.port
    )
    start = datetime.now(UTC) - timedelta(minutes=10)
    with running_agent(tmp_path, document), publisher(mosquitto.port) as pub:
        pub.publish(
            tts_topic(dev_eui), tts_uplink(dev_eui, 1, lpp((1, "temperature", 1.0)), at=start)
        )
        wait_for(lambda: entity(broker, tenant, observation_id, WEATHER))
        with client(broker, tenant) as c:
            c.append_attrs(
                observation_id,
                {"name": {"type": "Property", "value": "Schulhof Nord"}},
                context=WEATHER,
            )
            c.append_attrs(
                device_id,
                {"serialNumber": {"type": "Property", "value": "SN-4711"}},
                context=DEVICE,
            )
        for n in range(2, 102):
            at = start + timedelta(seconds=n)
            pub.publish(
                tts_topic(dev_eui),
                tts_uplink(dev_eui, n, lpp((1, "temperature", n / 10)), at=at),
                qos=1,
            )
        wait_for(
            lambda: value_of(entity(broker, tenant, observation_id, WEATHER), "temperature") == 10.1
        )
    observation = entity(broker, tenant, observation_id, WEATHER)
    device = entity(broker, tenant, device_id, DEVICE)
    assert value_of(observation, "name") == "Schulhof Nord"
    assert value_of(device, "serialNumber") == "SN-4711"
    assert value_of(device, "profile") == "temperature-humidity-lpp"  # the registration too


def test_a_late_reading_does_not_overwrite_a_newer_one(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    dev_eui = "70B3D57ED0000041"
    register(broker.url, dev_eui, tenant=tenant, measuring_point="hafen")
    observation_id = "urn:ngsi-ld:WeatherObserved:hafen"
    document = agent_config(
        tmp_path, broker_url=broker.url, tenant=tenant, mqtt_port=mosquitto.port
    )
    newer = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    older = newer - timedelta(minutes=15)
    with running_agent(tmp_path, document) as agent, publisher(mosquitto.port) as pub:
        pub.publish(
            tts_topic(dev_eui), tts_uplink(dev_eui, 20, lpp((1, "temperature", 20.0)), at=newer)
        )
        wait_for(
            lambda: value_of(entity(broker, tenant, observation_id, WEATHER), "temperature") == 20.0
        )
        # a buffered frame from a quarter of an hour before arrives now
        pub.publish(
            tts_topic(dev_eui), tts_uplink(dev_eui, 19, lpp((1, "temperature", 3.0)), at=older)
        )
        assert agent.outbox is not None
        counters = agent.outbox.counters
        wait_for(lambda: counters.late >= 2)  # the observation and the Device update
    current = entity(broker, tenant, observation_id, WEATHER)
    assert value_of(current, "temperature") == 20.0
    assert current is not None
    assert datetime.fromisoformat(current["temperature"]["observedAt"]) == newer
    # the late reading is in the history
    with client(broker, tenant) as c:
        history = c.temporal_retrieve(observation_id, attrs="temperature", context=WEATHER)
    values = sorted(instance["value"] for instance in _instances(history, "temperature"))
    assert values == [3.0, 20.0]


def _instances(history: dict[str, Any], name: str) -> list[dict[str, Any]]:
    found = history.get(name, [])
    return found if isinstance(found, list) else [found]


def test_a_sensor_swap_keeps_one_observation_entity(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    old, new = "70B3D57ED0000051", "70B3D57ED0000052"
    register(broker.url, old, tenant=tenant, measuring_point="brunnen")
    observation_id = "urn:ngsi-ld:WeatherObserved:brunnen"
    document = agent_config(
        tmp_path, broker_url=broker.url, tenant=tenant, mqtt_port=mosquitto.port
    )
    first = datetime.now(UTC) - timedelta(minutes=30)
    with running_agent(tmp_path, document) as agent, publisher(mosquitto.port) as pub:
        pub.publish(tts_topic(old), tts_uplink(old, 1, lpp((1, "temperature", 12.0)), at=first))
        wait_for(lambda: entity(broker, tenant, observation_id, WEATHER))
        with client(broker, tenant) as c:
            Registry(c).update(old, state="decommissioned")
        register(broker.url, new, tenant=tenant, measuring_point="brunnen")
        assert agent.mapper is not None
        registry = agent.mapper.registries[tenant]
        wait_for(lambda: registry.get(new) is not None)
        wait_for(lambda: (d := registry.get(old)) is not None and d.state == "decommissioned")
        pub.publish(tts_topic(old), tts_uplink(old, 2, lpp((1, "temperature", 99.0))))
        pub.publish(tts_topic(new), tts_uplink(new, 1, lpp((1, "temperature", 13.0))))
        wait_for(
            lambda: (
                value_of(entity(broker, tenant, observation_id, WEATHER), "refDevice")
                == f"urn:ngsi-ld:Device:{new}"
            )
        )
        assert agent.pipeline is not None
        assert agent.pipeline.counters.uplinks.get(("mqtt", "inactive-device")) == 1
    with client(broker, tenant) as c:
        observations = c.query(type="WeatherObserved", context=WEATHER, limit=100)
    assert [o["id"] for o in observations] == [observation_id]
    assert value_of(observations[0], "temperature") == 13.0


def test_simulated_uplinks_go_to_their_own_tenant_and_events_reach_the_device(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    dev_eui = "70B3D57ED0000061"
    register(broker.url, dev_eui, tenant=tenant, measuring_point="markt")
    document = agent_config(
        tmp_path, broker_url=broker.url, tenant=tenant, mqtt_port=mosquitto.port
    )
    observation_id = "urn:ngsi-ld:WeatherObserved:markt"
    device_id = f"urn:ngsi-ld:Device:{dev_eui}"
    with running_agent(tmp_path, document), publisher(mosquitto.port) as pub:
        pub.publish(
            tts_topic(dev_eui),
            tts_uplink(dev_eui, 0, lpp((1, "temperature", 42.0)), simulated=True),
        )
        simulated_tenant = f"{tenant}-simulated"
        found = wait_for(lambda: entity(broker, simulated_tenant, observation_id, WEATHER))
        assert found["temperature"]["value"] == 42.0
        assert entity(broker, tenant, observation_id, WEATHER) is None
        join = {
            "end_device_ids": {
                "device_id": f"dev-{dev_eui.lower()}",
                "application_ids": {"application_id": "city"},
                "dev_eui": dev_eui,
                "dev_addr": "260B1234",
            },
            "received_at": iso(datetime.now(UTC)),
            "join_accept": {"session_key_id": "AYfg", "received_at": iso(datetime.now(UTC))},
        }
        pub.publish(tts_topic(dev_eui).replace("/up", "/join"), orjson.dumps(join))
        solved = {
            "end_device_ids": join["end_device_ids"],
            "received_at": iso(datetime.now(UTC)),
            "location_solved": {
                "service": "lora-cloud-geolocation",
                "location": {
                    "latitude": 52.5163,
                    "longitude": 13.3777,
                    "accuracy": 40,
                    "source": "SOURCE_LORA_TDOA",
                },
            },
        }
        pub.publish(tts_topic(dev_eui).replace("/up", "/location/solved"), orjson.dumps(solved))
        device = wait_for(
            lambda: (
                (d := entity(broker, tenant, device_id, DEVICE))
                and "devAddr" in d
                and "solvedLocation" in d
                and d
            )
        )
    assert device["devAddr"]["value"] == "260B1234"
    assert device["solvedLocation"]["value"]["coordinates"] == [13.3777, 52.5163]
    assert device["solvedLocation"]["accuracy"]["value"] == 40
    assert device["location"]["value"]["coordinates"] == [13.405, 52.52]  # the registration's


def test_unknown_devices_can_be_registered_as_unprovisioned(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    dev_eui = "70B3D57ED0000071"
    document = agent_config(
        tmp_path,
        broker_url=broker.url,
        tenant=tenant,
        mqtt_port=mosquitto.port,
        devices={"unknown": "register"},
    )
    with running_agent(tmp_path, document) as agent, publisher(mosquitto.port) as pub:
        pub.publish(tts_topic(dev_eui), tts_uplink(dev_eui, 1, lpp((1, "temperature", 5.0))))
        device = wait_for(lambda: entity(broker, tenant, f"urn:ngsi-ld:Device:{dev_eui}", DEVICE))
        assert agent.pipeline is not None
        assert agent.pipeline.counters.uplinks[("mqtt", "unknown-device")] == 1
        # an unprovisioned device's next uplinks are counted, not mapped
        assert agent.mapper is not None
        registry = agent.mapper.registries[tenant]
        wait_for(lambda: registry.get(dev_eui) is not None)
        pub.publish(tts_topic(dev_eui), tts_uplink(dev_eui, 2, lpp((1, "temperature", 6.0))))
        wait_for(
            lambda: (
                agent.pipeline is not None
                and agent.pipeline.counters.uplinks.get(("mqtt", "inactive-device")) == 1
            )
        )
    assert value_of(device, "deviceState") == "unprovisioned"
    assert value_of(device, "name") == f"dev-{dev_eui.lower()}"
    with client(broker, tenant) as c:
        assert c.query(type="WeatherObserved", context=WEATHER) == []
