"""Acceptance: downlinks from the CLI on the network servers' MQTT topics in their exact formats,
and commands written on Device entities relayed as downlinks whose status reaches ACKED.

Real Mosquitto, the embedded broker over HTTP, the agent in this process, the CLI as a real
subprocess.
"""

from __future__ import annotations

import base64
import queue
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agents.downlink import DownlinkStore
from agents.registry import DEVICE_CONTEXT
from ngsi import Client
from tests.broker.conftest import RunningBroker
from tests.conftest import Mosquitto, free_port, run_drehscheibe
from tests.e2e.support import (
    agent_config,
    chirpstack_topic,
    chirpstack_uplink,
    lpp,
    publisher,
    register,
    running_agent,
    tts_topic,
    tts_uplink,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.mqtt

FRAME = lpp((0, "percentage", 80), (1, "temperature", 21.5), (2, "humidity", 55.0))


@pytest.fixture
def tenant() -> str:
    return "dl" + uuid.uuid4().hex[:10]


class Listener:
    """A paho client that collects every message on `topic` (a filter)."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dl-{free_port()}")
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def next(self, timeout: float = 20.0) -> tuple[str, Any]:
        topic, payload = self.messages.get(timeout=timeout)
        return topic, orjson.loads(payload)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_drehscheibe(*args)


def learned(tmp_path: Path, dev_eui: str) -> bool:
    with DownlinkStore.in_data_dir(tmp_path / "agent-data") as store:
        return bool(store.identities(dev_eui))


def status(tmp_path: Path, record_id: str) -> str | None:
    """The record's status, read from the agent's store as the CLI reads it."""
    with DownlinkStore.in_data_dir(tmp_path / "agent-data") as store:
        record = store.get(record_id)
    return record.status if record is not None else None


def records(config: Path, dev_eui: str) -> list[dict[str, Any]]:
    done = cli("devices", "downlinks", dev_eui, "-c", str(config), "--output", "json")
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = orjson.loads(done.stdout)
    return found


def test_cli_downlink_through_the_things_stack(
    broker: RunningBroker, tenant: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    dev_eui = "70B3D57ED00D0001"
    register(broker.url, dev_eui, tenant=tenant)
    document = agent_config(
        tmp_path, broker_url=broker.url, tenant=tenant, mqtt_port=mosquitto.port
    )
    config = write_config(tmp_path, document)
    listener = Listener(mosquitto.port, "v3/+/devices/+/down/+")
    try:
        with running_agent(tmp_path, document), publisher(mosquitto.port) as pub:
            # the uplink teaches the agent the device's application, tenant and device id
            pub.publish(tts_topic(dev_eui, tenant="stadt"), tts_uplink(dev_eui, 1, FRAME))
            wait_for(lambda: learned(tmp_path, dev_eui))
            done = cli(
                "devices", "downlink", dev_eui.lower(), "--port", "15", "--payload", "BEEF",
                "--confirmed", "-c", str(config), "--output", "json",
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            record = orjson.loads(done.stdout)
            topic, body = listener.next()
            assert topic == f"v3/city@stadt/devices/dev-{dev_eui.lower()}/down/push"
            assert body == {
                "downlinks": [
                    {
                        "f_port": 15,
                        "frm_payload": "vu8=",
                        "confirmed": True,
                        "priority": "NORMAL",
                        "correlation_ids": [record["correlationId"]],
                    }
                ]
            }
            assert record["status"] == "PENDING"
            assert record["actor"].startswith("cli:")
            # The Things Stack reports the acknowledgement with the downlink's correlation id
            ack = {
                "end_device_ids": {
                    "device_id": f"dev-{dev_eui.lower()}",
                    "application_ids": {"application_id": "city"},
                    "dev_eui": dev_eui,
                },
                "correlation_ids": ["as:downlink:01HX"],
                "received_at": "2026-11-26T10:00:00Z",
                "downlink_ack": {**body["downlinks"][0], "f_cnt": 3},
            }
            base = f"v3/city@stadt/devices/dev-{dev_eui.lower()}"
            pub.publish(f"{base}/down/ack", orjson.dumps(ack))
            wait_for(lambda: status(tmp_path, record["id"]) == "ACKED")
            # --replace uses down/replace; the listing shows both, newest first
            done = cli(
                "devices", "downlink", dev_eui, "-p", "16", "--payload", "01", "--replace",
                "-c", str(config),
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            topic, body = listener.next()
            while topic.endswith("/down/ack"):
                topic, body = listener.next()
            assert topic == f"{base}/down/replace"
            assert body["downlinks"][0]["f_port"] == 16
    finally:
        listener.close()
    with DownlinkStore.in_data_dir(tmp_path / "agent-data") as store:
        listed = store.list(dev_eui)
    assert [(r.f_port, r.status, r.replace) for r in listed] == [
        (16, "PENDING", True),
        (15, "ACKED", False),
    ]
    assert [e["event"] for e in listed[1].events][-1] == "ack"


def test_cli_downlink_through_chirpstack(
    broker: RunningBroker, tenant: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    dev_eui = "70B3D57ED00D0002"
    app = "2a2a6a2b-1c1d-4e4f-8a8b-0c0d0e0f1011"
    register(broker.url, dev_eui, tenant=tenant)
    document = agent_config(
        tmp_path,
        broker_url=broker.url,
        tenant=tenant,
        mqtt_port=mosquitto.port,
        network_server="chirpstack-v4",
    )
    config = write_config(tmp_path, document)
    listener = Listener(mosquitto.port, "application/+/device/+/command/down")
    try:
        with running_agent(tmp_path, document), publisher(mosquitto.port) as pub:
            pub.publish(
                chirpstack_topic(dev_eui, app=app), chirpstack_uplink(dev_eui, 1, FRAME, app=app)
            )
            wait_for(lambda: learned(tmp_path, dev_eui))
            done = cli(
                "devices", "downlink", dev_eui, "--port", "10", "--json",
                '{"setReportingInterval": 1}', "-c", str(config), "--output", "json",
            )  # fmt: skip
            # the profile's encoder is CayenneLPP: names must be <type>_<channel>
            assert done.returncode == 6
            assert "CayenneLPP" in done.stderr
            # --wait: the command returns once the agent recorded the device's acknowledgement
            waiting = subprocess.Popen(
                [
                    sys.executable, "-m", "drehscheibe", "devices", "downlink", dev_eui,
                    "--port", "10", "--json", '{"generic_1": 600}', "--confirmed", "--wait", "90",
                    "-c", str(config), "--output", "json",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            try:
                topic, body = listener.next(timeout=60)
                assert topic == f"application/{app}/device/{dev_eui.lower()}/command/down"
                assert body == {
                    "id": body["id"],
                    "devEui": dev_eui.lower(),
                    "confirmed": True,
                    "fPort": 10,
                    "data": base64.b64encode(bytes.fromhex("016400000258")).decode(),
                }
                event = f"application/{app}/device/{dev_eui.lower()}/event"
                info = {"applicationId": app, "devEui": dev_eui.lower()}
                txack = {
                    "time": "2026-11-26T10:00:00Z",
                    "deviceInfo": info,
                    "queueItemId": body["id"],
                    "fCntDown": 4,
                }
                pub.publish(f"{event}/txack", orjson.dumps(txack))
                wait_for(lambda: status(tmp_path, body["id"]) == "SENT")
                assert waiting.poll() is None  # a confirmed downlink waits for the device
                ack = {**txack, "acknowledged": True}
                pub.publish(f"{event}/ack", orjson.dumps(ack))
                stdout, stderr = waiting.communicate(timeout=60)
            finally:
                if waiting.poll() is None:
                    waiting.kill()
                    waiting.wait()
            assert waiting.returncode == 0, stderr
            record = orjson.loads(stdout)
            assert (record["id"], record["status"]) == (body["id"], "ACKED")
            assert [e["event"] for e in record["events"]] == ["published", "txack", "ack"]
    finally:
        listener.close()


def test_cli_records_a_downlink_it_cannot_send(tmp_path: Path) -> None:
    document = agent_config(
        tmp_path, broker_url="http://127.0.0.1:9", tenant=None, mqtt_port=free_port()
    )
    config = write_config(tmp_path, document)
    # no uplink taught the device id, and none was given: recorded as FAILED, exit code 1
    unknown = cli(
        "devices", "downlink", "70B3D57ED00D0003", "-p", "1", "--payload", "01", "-c",
        str(config), "--output", "json",
    )  # fmt: skip
    assert unknown.returncode == 1
    assert "needs its application id" in unknown.stderr
    (record,) = records(config, "70B3D57ED00D0003")
    assert record["status"] == "FAILED"
    assert record["topic"] is None


def device_entity(broker: RunningBroker, tenant: str, entity_id: str) -> dict[str, Any]:
    with Client(broker.url, tenant=tenant, profile="embedded") as client:
        return client.retrieve(entity_id, context=DEVICE_CONTEXT)


def command_status(broker: RunningBroker, tenant: str, entity_id: str) -> str | None:
    attribute = device_entity(broker, tenant, entity_id).get("setReportingInterval_status")
    return attribute["value"] if isinstance(attribute, dict) else None


def test_command_on_the_device_entity_becomes_a_downlink_and_reaches_acked(
    broker: RunningBroker, tenant: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    dev_eui = "70B3D57ED00D0004"
    device = register(broker.url, dev_eui, tenant=tenant)
    document = agent_config(
        tmp_path, broker_url=broker.url, tenant=tenant, mqtt_port=mosquitto.port
    )
    listener = Listener(mosquitto.port, "v3/+/devices/+/down/push")
    client = Client(broker.url, tenant=tenant, profile="embedded")
    try:
        with running_agent(tmp_path, document) as agent, publisher(mosquitto.port) as pub:
            pub.publish(tts_topic(dev_eui), tts_uplink(dev_eui, 1, FRAME))
            wait_for(lambda: learned(tmp_path, dev_eui))
            # the agent subscribed to the command its devices' profile declares
            wait_for(
                lambda: any(
                    (s.subscription_name or "").endswith("/commands/setReportingInterval")
                    for s in client.list_subscriptions(context=DEVICE_CONTEXT)
                )
            )
            # anyone with access to the broker writes the command
            client.append_attrs(
                device.device_id,
                {"setReportingInterval": {"type": "Property", "value": 600}},
                context=DEVICE_CONTEXT,
            )
            topic, body = listener.next()
            assert topic == f"v3/city/devices/dev-{dev_eui.lower()}/down/push"
            (item,) = body["downlinks"]
            assert (item["f_port"], item["confirmed"]) == (10, True)
            assert base64.b64decode(item["frm_payload"]) == bytes.fromhex("016400000258")
            wait_for(lambda: command_status(broker, tenant, device.device_id) == "PENDING")
            base = f"v3/city/devices/dev-{dev_eui.lower()}"
            ids = {"device_id": f"dev-{dev_eui.lower()}", "dev_eui": dev_eui,
                   "application_ids": {"application_id": "city"}}  # fmt: skip
            for kind, expected in (("sent", "SENT"), ("ack", "ACKED")):
                event = {"end_device_ids": ids, f"downlink_{kind}": item}
                pub.publish(f"{base}/down/{kind}", orjson.dumps(event))

                def reached(wanted: str = expected) -> bool:
                    return command_status(broker, tenant, device.device_id) == wanted

                wait_for(reached)
            found = device_entity(broker, tenant, device.device_id)
            info = found["setReportingInterval_info"]["value"]
            assert info["correlationId"] == item["correlation_ids"][0]
            assert info["payload"] == "016400000258"
            assert agent.downlinks is not None
            # a value the command's encoder refuses is answered on the entity, not sent
            client.append_attrs(
                device.device_id,
                {"setReportingInterval": {"type": "Property", "value": "soon"}},
                context=DEVICE_CONTEXT,
            )
            wait_for(lambda: command_status(broker, tenant, device.device_id) == "FAILED")
            refused = device_entity(broker, tenant, device.device_id)
            assert "expected a number" in refused["setReportingInterval_info"]["value"]["detail"]
            metrics = agent.metrics_text()
            assert 'drehscheibe_commands_total{result="relayed"} 1' in metrics
            assert 'drehscheibe_commands_total{result="refused"} 1' in metrics
            assert listener.messages.empty()
    finally:
        listener.close()
        client.close()
