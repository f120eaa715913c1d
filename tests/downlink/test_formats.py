"""The downlink in each network server's exact MQTT format, and the event topics."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from agents.downlink import (
    Downlink,
    DownlinkError,
    NetworkIdentity,
    chirpstack_downlink,
    downlink_message,
    event_topics,
    tts_downlink,
)
from agents.lorawan import Uplink, parse_message

DOWNLINK_ID = "0b6a6c9e-6a43-4c8e-9d57-4a4b8f0f7f11"


def tts_identity(**changes: object) -> NetworkIdentity:
    values: dict[str, object] = {
        "dev_eui": "0004A30B001C0530",
        "source": "tts",
        "network_server": "tts",
        "application_id": "city-sensors",
        "device_id": "th-0042",
        "ns_tenant": "stadt",
    }
    values.update(changes)
    return NetworkIdentity.model_validate(values)


def test_tts_push_matches_the_documented_format() -> None:
    # the documented example: f_port 15, frm_payload "vu8=", priority NORMAL
    downlink = Downlink(dev_eui="0004A30B001C0530", f_port=15, payload=b"\xbe\xef", id=DOWNLINK_ID)
    topic, body = tts_downlink(downlink, tts_identity())
    assert topic == "v3/city-sensors@stadt/devices/th-0042/down/push"
    assert orjson.loads(body) == {
        "downlinks": [
            {
                "f_port": 15,
                "frm_payload": "vu8=",
                "confirmed": False,
                "priority": "NORMAL",
                "correlation_ids": [f"drehscheibe:downlink:{DOWNLINK_ID}"],
            }
        ]
    }


def test_tts_replace_and_open_source_topic() -> None:
    downlink = Downlink(
        dev_eui="0004A30B001C0530", f_port=10, payload=b"\x01", confirmed=True, priority="HIGH"
    )
    topic, body = tts_downlink(downlink, tts_identity(ns_tenant=None), replace=True)
    assert topic == "v3/city-sensors/devices/th-0042/down/replace"
    item = orjson.loads(body)["downlinks"][0]
    assert (item["confirmed"], item["priority"], item["frm_payload"]) == (True, "HIGH", "AQ==")


def test_tts_needs_the_device_id() -> None:
    downlink = Downlink(dev_eui="0004A30B001C0530", f_port=10, payload=b"\x01")
    with pytest.raises(DownlinkError, match="device id"):
        tts_downlink(downlink, tts_identity(device_id=None))


def test_chirpstack_v4_command_down() -> None:
    downlink = Downlink(
        dev_eui="0004A30B001C0530", f_port=10, payload=b"\x01\x02\x03", confirmed=True,
        id=DOWNLINK_ID,
    )  # fmt: skip
    identity = NetworkIdentity(
        dev_eui="0004A30B001C0530",
        source="cs",
        network_server="chirpstack-v4",
        application_id="2a2a6a2b-1c1d-4e4f-8a8b-0c0d0e0f1011",
    )
    topic, body = chirpstack_downlink(downlink, identity)
    # ChirpStack compares devEui with the topic's DevEUI: both lower-case hex
    assert topic == (
        "application/2a2a6a2b-1c1d-4e4f-8a8b-0c0d0e0f1011/device/0004a30b001c0530/command/down"
    )
    assert orjson.loads(body) == {
        "id": DOWNLINK_ID,
        "devEui": "0004a30b001c0530",
        "confirmed": True,
        "fPort": 10,
        "data": base64.b64encode(b"\x01\x02\x03").decode(),
    }


def test_refusals() -> None:
    downlink = Downlink(dev_eui="0004A30B001C0530", f_port=10, payload=b"\x01")
    cs = NetworkIdentity(dev_eui="0004A30B001C0530", source="cs", network_server="chirpstack-v4")
    with pytest.raises(DownlinkError, match="application id"):
        downlink_message(downlink, cs)
    with pytest.raises(DownlinkError, match="cannot replace"):
        downlink_message(downlink, cs.model_copy(update={"application_id": "a"}), replace=True)
    v3 = cs.model_copy(update={"network_server": "chirpstack-v3", "application_id": "1"})
    with pytest.raises(DownlinkError, match="chirpstack-v3"):
        downlink_message(downlink, v3)


@pytest.mark.parametrize("port", [0, 224, 255])
def test_application_ports_only(port: int) -> None:
    with pytest.raises(ValueError, match="f_port"):
        Downlink(dev_eui="0004A30B001C0530", f_port=port, payload=b"")


def test_event_topics() -> None:
    assert event_topics("tts", application="city", ns_tenant="stadt") == [
        f"v3/city@stadt/devices/+/down/{e}" for e in ("queued", "sent", "ack", "nack", "failed")
    ]
    assert event_topics("chirpstack-v4") == [
        "application/+/device/+/event/ack",
        "application/+/device/+/event/txack",
    ]
    assert event_topics("chirpstack-v3") == []


@pytest.mark.parametrize(
    ("vector", "kind", "downlink_topic"),
    [
        ("uplinks/tts_docs_mqtt_uplink.json", "tts", "v3/app1@tenant1/devices/dev1/down/push"),
        (
            "uplinks/cs4_docs_event_up.json",
            "chirpstack-v4",
            "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/command/down",
        ),
    ],
)
def test_a_downlink_answers_on_the_topic_of_the_documented_uplink(
    shared_dir: Path, vector: str, kind: str, downlink_topic: str
) -> None:
    # what the agent learns from an uplink as the network servers document it is enough to
    # address the device's downlink topic
    index = orjson.loads((shared_dir / "vectors" / "uplinks" / "index.json").read_bytes())
    (entry,) = [item for item in index["uplinks"] if item["file"] == vector]
    uplink = parse_message(kind, entry["topic"], orjson.dumps(entry["message"]))
    assert isinstance(uplink, Uplink)
    assert uplink.dev_eui is not None
    identity = NetworkIdentity(
        dev_eui=uplink.dev_eui,
        source="s",
        network_server=kind,
        application_id=uplink.application_id,
        device_id=uplink.device_id,
        ns_tenant=uplink.tenant if kind == "tts" else None,
    )
    downlink = Downlink(dev_eui=uplink.dev_eui, f_port=15, payload=b"\xbe\xef")
    topic, _ = downlink_message(downlink, identity)
    assert topic == downlink_topic
