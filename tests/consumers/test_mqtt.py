"""The MQTT receiver against a real Mosquitto: the envelope, the secret in its metadata, and a
persistent session that keeps QoS 1 notifications while the consumer is away."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agents.consumers import Consumer, EntityChange, MqttReceiver, SharedSecret, parse_mqtt_url
from tests.conftest import Mosquitto
from tests.subscriptions._support import air_quality, now_text, wait_until

pytestmark = pytest.mark.mqtt


def publish(broker: Mosquitto, topic: str, messages: list[dict[str, Any]], *, qos: int = 1) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for message in messages:
            client.publish(topic, orjson.dumps(message), qos=qos).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def envelope(entity: dict[str, Any], **metadata: str) -> dict[str, Any]:
    return {
        "metadata": {"Content-Type": "application/json", **metadata},
        "body": {
            "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
            "type": "Notification",
            "subscriptionId": "urn:ngsi-ld:Subscription:m",
            "notifiedAt": now_text(),
            "data": [entity],
        },
    }


def test_the_url_names_host_port_and_topic() -> None:
    settings = parse_mqtt_url("mqtt://user:pw@broker.local:1884/city/planning")
    assert (settings.host, settings.port, settings.topic, settings.username) == (
        "broker.local",
        1884,
        "city/planning",
        "user",
    )
    assert parse_mqtt_url("mqtt://h", topic="t").port == 1883
    with pytest.raises(ValueError, match="no topic"):
        parse_mqtt_url("mqtt://h")


def test_notifications_arrive_with_their_metadata(mosquitto: Mosquitto) -> None:
    got: list[EntityChange] = []
    consumer = Consumer("mqtt-a", secret=SharedSecret(header="X-Key", value="k"))
    consumer.on_change(got.append)
    consumer.start()
    receiver = MqttReceiver(consumer, f"mqtt://{mosquitto.host}:{mosquitto.port}/city/n")
    receiver.start()
    try:
        assert receiver.subscribed.wait(10)
        publish(
            mosquitto,
            "city/n",
            [
                envelope(
                    air_quality(1, no2=1, at=now_text()), **{"X-Key": "k", "NGSILD-Tenant": "city"}
                ),
                envelope(air_quality(2, no2=2, at=now_text()), **{"X-Key": "wrong"}),
            ],
        )
        assert wait_until(lambda: len(got) == 1 and receiver.refused == 1)
    finally:
        receiver.stop()
        consumer.stop()
    assert got[0].tenant == "city"
    assert consumer.counters["unauthorized"] == 1


def test_a_persistent_session_keeps_what_came_while_away(mosquitto: Mosquitto) -> None:
    got: list[EntityChange] = []
    consumer = Consumer("mqtt-b")
    consumer.on_change(got.append)
    url = f"mqtt://{mosquitto.host}:{mosquitto.port}/city/p"
    consumer.start()
    try:
        first = MqttReceiver(consumer, url, client_id="planning-test")
        first.start()
        assert first.subscribed.wait(10)
        first.stop()
        publish(
            mosquitto, "city/p", [envelope(air_quality(i, no2=i, at=now_text())) for i in range(3)]
        )
        second = MqttReceiver(consumer, url, client_id="planning-test")
        second.start()
        try:
            assert wait_until(lambda: len(got) == 3, timeout=10)
        finally:
            second.stop()
    finally:
        consumer.stop()
    assert sorted(c.value("no2") for c in got) == [0, 1, 2]
