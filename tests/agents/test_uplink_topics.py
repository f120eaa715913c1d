"""MQTT topics of The Things Stack and ChirpStack, and EUI spellings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agents.lorawan import (
    Topic,
    UplinkError,
    normalize_dev_addr,
    normalize_eui,
    parse_chirpstack_v3_topic,
    parse_chirpstack_v4_topic,
    parse_tts_topic,
)

TTS_EVENTS = [
    "up",
    "join",
    "down/queued",
    "down/sent",
    "down/ack",
    "down/nack",
    "down/failed",
    "down/push",
    "service/data",
    "location/solved",
]


@pytest.mark.parametrize("event", TTS_EVENTS)
def test_tts_topic_with_tenant(event: str) -> None:
    assert parse_tts_topic(f"v3/city-sensors@stadt/devices/th-0042/{event}") == Topic(
        source="tts",
        event=event,
        application_id="city-sensors",
        tenant="stadt",
        device_id="th-0042",
    )


@pytest.mark.parametrize("event", TTS_EVENTS)
def test_tts_topic_without_tenant(event: str) -> None:
    topic = parse_tts_topic(f"v3/city-sensors/devices/th-0042/{event}")
    assert (topic.application_id, topic.tenant, topic.device_id, topic.event) == (
        "city-sensors",
        None,
        "th-0042",
        event,
    )


@pytest.mark.parametrize(
    ("parse", "topic", "fields"),
    [
        (
            parse_tts_topic,
            "v3/app@ttn/devices/dev-1/up",
            {"event": "up", "application_id": "app", "tenant": "ttn", "device_id": "dev-1"},
        ),
        (
            parse_tts_topic,
            "v3/app/devices/dev-1/down/ack",
            {"event": "down/ack", "application_id": "app", "tenant": None, "device_id": "dev-1"},
        ),
        (
            parse_chirpstack_v4_topic,
            "application/a1/device/0004a30b001c0530/event/up",
            {"event": "up", "application_id": "a1", "dev_eui": "0004A30B001C0530"},
        ),
    ],
)
def test_topics_built_without_validation_equal_validated_ones(
    parse: Any, topic: str, fields: dict[str, Any]
) -> None:
    if hasattr(parse, "cache_clear"):
        parse.cache_clear()
    source = "tts" if topic.startswith("v3/") else "chirpstack-v4"
    parsed = parse(topic)
    validated = Topic.model_validate({"source": source, **fields})
    assert parsed == validated
    assert parsed.model_fields_set == validated.model_fields_set
    assert parsed.model_dump() == validated.model_dump()
    assert hash(parsed) == hash(validated)
    with pytest.raises(ValidationError):
        parsed.event = "join"  # type: ignore[misc]


@pytest.mark.parametrize(
    "topic",
    [
        "v2/app/devices/dev/up",
        "v3/app/devices/dev",
        "v3/app/gateways/dev/up",
        "v3//devices/dev/up",
        "v3/app@/devices/dev/up",
        "v3/app/devices//up",
        "v3/app/devices/dev/down/",
        "",
    ],
)
def test_bad_tts_topics(topic: str) -> None:
    with pytest.raises(UplinkError) as caught:
        parse_tts_topic(topic)
    assert (caught.value.reason, caught.value.field) == ("bad-topic", "topic")


@pytest.mark.parametrize(
    "event", ["up", "join", "ack", "txack", "status", "log", "location", "integration"]
)
def test_chirpstack_v4_topic(event: str) -> None:
    topic = parse_chirpstack_v4_topic(
        f"application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/{event}"
    )
    assert topic == Topic(
        source="chirpstack-v4",
        event=event,
        application_id="17c82e96-be03-4f38-aef3-f83d48582d97",
        dev_eui="0101010101010101",
    )


def test_chirpstack_v4_command_topic_and_lowercase_eui() -> None:
    topic = parse_chirpstack_v4_topic("application/app/device/a840414bf185f365/command/down")
    assert (topic.event, topic.dev_eui) == ("command/down", "A840414BF185F365")


@pytest.mark.parametrize(
    ("raw", "event"),
    [
        ("application/123/device/0202020202020202/event/up", "up"),
        ("application/123/device/0202020202020202/rx", "up"),
        ("application/123/device/0202020202020202/join", "join"),
        ("application/123/device/0202020202020202/error", "error"),
    ],
)
def test_chirpstack_v3_topics(raw: str, event: str) -> None:
    topic = parse_chirpstack_v3_topic(raw)
    assert (topic.source, topic.application_id, topic.dev_eui, topic.event) == (
        "chirpstack-v3",
        "123",
        "0202020202020202",
        event,
    )


@pytest.mark.parametrize(
    "raw",
    [
        "application/123/device/0202020202020202/rx",
        "application/123/device/02020202020202/event/up",
        "application/123/devices/0202020202020202/event/up",
        "app/123/device/0202020202020202/event/up",
        "application//device/0202020202020202/event/up",
        "application/123/device/0202020202020202/event/",
    ],
)
def test_bad_chirpstack_v4_topics(raw: str) -> None:
    with pytest.raises(UplinkError) as caught:
        parse_chirpstack_v4_topic(raw)
    assert caught.value.reason == "bad-topic"


@pytest.mark.parametrize(
    "spelling",
    [
        "0004a30b001c0530",
        "0004A30B001C0530",
        "00-04-A3-0B-00-1C-05-30",
        "00:04:a3:0b:00:1c:05:30",
        "00 04 a3 0b 00 1c 05 30",
        "AASjCwAcBTA=",
        "AASjCwAcBTA",
    ],
)
def test_eui_spellings(spelling: str) -> None:
    assert normalize_eui(spelling) == "0004A30B001C0530"


@pytest.mark.parametrize(
    "bad", ["", "0004a30b001c053", "0004a30b001c05300", "g004a30b001c0530", "AASjCwAc"]
)
def test_bad_euis(bad: str) -> None:
    with pytest.raises(ValueError, match="EUI-64"):
        normalize_eui(bad)


def test_dev_addr_spellings() -> None:
    assert normalize_dev_addr("00189440") == "00189440"
    assert normalize_dev_addr("01-da-1f-15") == "01DA1F15"
    assert normalize_dev_addr("AAGJRA==") == "00018944"
    with pytest.raises(ValueError, match="DevAddr"):
        normalize_dev_addr("0018944")
