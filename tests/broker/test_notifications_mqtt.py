"""MQTT notifications through a real Mosquitto: QoS 0/1/2, MQTT 3.1.1 and 5.0, a broker restart."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ngsi.broker._notifier_mqtt import parse_mqtt_endpoint
from tests.broker.test_notif_support import API, RunningBroker, mqtt_subscriber, running_broker
from tests.conftest import Mosquitto

pytestmark = pytest.mark.mqtt


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RunningBroker]:
    with running_broker(tmp_path, timeout=8.0, retry_delays=(1.0, 2.0)) as running:
        yield running


def mqtt_subscription(mosquitto: Mosquitto, topic: str, kind: str, **info: str) -> dict[str, Any]:
    return {
        "entities": [{"type": kind}],
        "notification": {
            "format": "keyValues",
            "endpoint": {
                "uri": f"mqtt://{mosquitto.host}:{mosquitto.port}/{topic}",
                "notifierInfo": [{"key": k, "value": v} for k, v in info.items()],
                "receiverInfo": [{"key": "X-Consumer", "value": "traffic"}],
            },
        },
    }


@pytest.mark.parametrize("version", ["mqtt3.1.1", "mqtt5.0"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_notifications_reach_an_mqtt_subscriber(
    broker: RunningBroker, mosquitto: Mosquitto, version: str, qos: int
) -> None:
    kind = f"Counter{uuid.uuid4().hex[:6]}"
    topic = f"city/notifications/{kind}"
    broker.create_entity(
        {"id": f"urn:ngsi-ld:{kind}:1", "type": kind, "count": {"type": "Property", "value": 0}}
    )
    with mqtt_subscriber(mosquitto.host, mosquitto.port, topic) as subscriber:
        sid = broker.subscribe(
            mqtt_subscription(
                mosquitto, topic, kind, **{"MQTT-Version": version, "MQTT-QoS": str(qos)}
            )
        )
        broker.patch_attrs(f"urn:ngsi-ld:{kind}:1", {"count": {"type": "Property", "value": 1}})
        got_topic, message, got_qos = subscriber.wait()
    assert got_topic == topic
    assert got_qos == qos
    assert message["metadata"]["Content-Type"] == "application/json"
    assert message["metadata"]["X-Consumer"] == "traffic"
    assert "Link" in message["metadata"]
    body = message["body"]
    assert body["type"] == "Notification"
    assert body["subscriptionId"] == sid
    assert body["data"] == [{"id": f"urn:ngsi-ld:{kind}:1", "type": kind, "count": 1}]
    status = broker.client.get(f"{API}/subscriptions/{sid}").json()["notification"]
    assert status["status"] == "ok"
    assert status["timesSent"] == 1


def test_subscriptions_share_one_connection_per_broker(
    broker: RunningBroker, mosquitto: Mosquitto
) -> None:
    kind = f"Gate{uuid.uuid4().hex[:6]}"
    broker.create_entity(
        {"id": f"urn:ngsi-ld:{kind}:1", "type": kind, "open": {"type": "Property", "value": False}}
    )
    with mqtt_subscriber(mosquitto.host, mosquitto.port, "gates/#") as subscriber:
        for topic in ("gates/a", "gates/b", "gates/c"):
            broker.subscribe(mqtt_subscription(mosquitto, topic, kind, **{"MQTT-QoS": "1"}))
        broker.patch_attrs(f"urn:ngsi-ld:{kind}:1", {"open": {"type": "Property", "value": True}})
        topics = sorted(subscriber.wait()[0] for _ in range(3))
    assert topics == ["gates/a", "gates/b", "gates/c"]
    assert broker.service.notifier.stats()["mqtt_connections"] == 1


@pytest.mark.parametrize("qos", [0, 1])
def test_notifications_continue_after_the_mqtt_broker_restarts(
    broker: RunningBroker, mosquitto: Mosquitto, qos: int
) -> None:
    kind = f"Lamp{uuid.uuid4().hex[:6]}"
    topic = f"lamps/{kind}"
    entity_id = f"urn:ngsi-ld:{kind}:1"
    broker.create_entity(
        {"id": entity_id, "type": kind, "on": {"type": "Property", "value": False}}
    )
    with mqtt_subscriber(mosquitto.host, mosquitto.port, topic) as subscriber:
        broker.subscribe(mqtt_subscription(mosquitto, topic, kind, **{"MQTT-QoS": str(qos)}))
        broker.patch_attrs(entity_id, {"on": {"type": "Property", "value": True}})
        assert subscriber.wait()[1]["body"]["data"][0]["on"] is True

        mosquitto.stop()
        mosquitto.start()
        assert subscriber.subscribed.wait(10), "the test subscriber did not come back"

        broker.patch_attrs(entity_id, {"on": {"type": "Property", "value": False}})
        _, message, _ = subscriber.wait(timeout=15)
        assert message["body"]["data"][0]["on"] is False


def test_a_missing_mqtt_broker_marks_the_notification_failed(tmp_path: Path) -> None:
    from tests.conftest import free_port

    port = free_port()
    kind = "Valve"
    with running_broker(tmp_path, timeout=0.5, retry_delays=()) as broker:
        broker.create_entity(
            {"id": "urn:ngsi-ld:Valve:1", "type": kind, "open": {"type": "Property", "value": 1}}
        )
        sid = broker.subscribe(
            {
                "entities": [{"type": kind}],
                "notification": {"endpoint": {"uri": f"mqtt://127.0.0.1:{port}/valves"}},
            }
        )
        broker.patch_attrs("urn:ngsi-ld:Valve:1", {"open": {"type": "Property", "value": 2}})
        deadline = time.monotonic() + 5
        while True:
            status = broker.client.get(f"{API}/subscriptions/{sid}").json()["notification"]
            if status.get("status") == "failed" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status["status"] == "failed"
        assert status["timesFailed"] == 1


@pytest.mark.parametrize(
    ("uri", "info", "problem"),
    [
        ("mqtt://broker:1883", (), "names no topic"),
        ("mqtt://broker/a/#", (), "wildcards"),
        ("mqtt://broker/t", (("MQTT-Version", "mqtt4"),), "MQTT-Version"),
        ("mqtt://broker/t", (("MQTT-QoS", "high"),), "MQTT-QoS"),
    ],
)
def test_bad_mqtt_endpoints_are_rejected(
    uri: str, info: tuple[tuple[str, str], ...], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_mqtt_endpoint(uri, info)


def test_mqtt_endpoint_parts() -> None:
    target = parse_mqtt_endpoint(
        "mqtts://user:p%40ss@broker.city.example/city/air",
        (("mqtt-version", "mqtt5.0"), ("MQTT-QoS", "2")),
    )
    assert (target.tls, target.host, target.port) == (True, "broker.city.example", 8883)
    assert (target.username, target.password) == ("user", "p@ss")
    assert (target.topic, target.version, target.qos) == ("city/air", "mqtt5.0", 2)
