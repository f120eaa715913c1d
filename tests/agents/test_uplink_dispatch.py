"""parse_message: bytes in, one event value out, or a typed error with a reason."""

from __future__ import annotations

import pickle

import orjson
import pytest

from agents.lorawan import (
    DEFAULT_MAX_MESSAGE_BYTES,
    JoinEvent,
    LocationEvent,
    StatusEvent,
    Uplink,
    UplinkError,
    parse_message,
)

TTS_UP = {
    "end_device_ids": {
        "device_id": "th-0042",
        "application_ids": {"application_id": "city-sensors"},
        "dev_eui": "70B3D57ED0001234",
    },
    "received_at": "2024-05-02T10:15:00Z",
    "uplink_message": {"f_port": 1, "f_cnt": 5, "frm_payload": "AWcA1w=="},
}
CS4_UP = {
    "deviceInfo": {"applicationId": "app-uuid", "devEui": "0101010101010101"},
    "fPort": 1,
    "data": "qg==",
    "rxInfo": [],
    "txInfo": {"frequency": 868100000},
}
CS4_TOPIC = "application/app-uuid/device/0101010101010101/event/"


def test_tts_mqtt_uplink() -> None:
    uplink = parse_message("tts", "v3/city-sensors@stadt/devices/th-0042/up", orjson.dumps(TTS_UP))
    assert isinstance(uplink, Uplink)
    assert (uplink.tenant, uplink.f_cnt, uplink.payload) == ("stadt", 5, b"\x01\x67\x00\xd7")


def test_tts_webhook_without_topic_is_told_by_its_body() -> None:
    uplink = parse_message("tts", None, orjson.dumps(TTS_UP).decode())
    assert isinstance(uplink, Uplink)
    join = {"end_device_ids": TTS_UP["end_device_ids"], "join_accept": {}}
    assert isinstance(parse_message("tts", None, orjson.dumps(join)), JoinEvent)


def test_chirpstack_mqtt_and_http() -> None:
    body = orjson.dumps(CS4_UP)
    over_mqtt = parse_message("chirpstack-v4", CS4_TOPIC + "up", body)
    over_http = parse_message("chirpstack-v4", None, body, event="up")
    assert isinstance(over_mqtt, Uplink)
    assert over_mqtt == over_http
    status = parse_message(
        "chirpstack-v4",
        CS4_TOPIC + "status",
        orjson.dumps({"deviceInfo": CS4_UP["deviceInfo"], "margin": 10, "batteryLevel": 55}),
    )
    assert isinstance(status, StatusEvent)
    location = parse_message(
        "chirpstack-v3",
        "application/7/device/0101010101010101/location",
        orjson.dumps({"devEUI": "AQEBAQEBAQE=", "location": {"latitude": 1.5, "longitude": 2.5}}),
    )
    assert isinstance(location, LocationEvent)
    assert location.dev_eui == "0101010101010101"


@pytest.mark.parametrize(
    ("source", "topic", "payload", "reason"),
    [
        ("tts", None, b"{not json", "malformed-json"),
        ("tts", None, b"[1, 2]", "malformed-json"),
        ("tts", None, b"\xff\xfe", "malformed-json"),
        ("tts", None, b"", "malformed-json"),
        ("loriot", None, b"{}", "unknown-source"),
        ("tts", None, b"{}", "missing-field"),
        ("tts", "v3/app/devices/dev/service/data", b'{"service_data": {}}', "unsupported-event"),
        ("tts", "not/a/topic", b"{}", "bad-topic"),
        ("chirpstack-v4", CS4_TOPIC + "log", b'{"level": "INFO"}', "unsupported-event"),
        ("chirpstack-v4", None, orjson.dumps(CS4_UP), "missing-field"),
        ("chirpstack-v4", CS4_TOPIC + "up", b'{"fPort": 1, "data": "!!"}', "bad-base64"),
    ],
)
def test_errors_have_reasons(source: str, topic: str | None, payload: bytes, reason: str) -> None:
    with pytest.raises(UplinkError) as caught:
        parse_message(source, topic, payload)
    assert caught.value.reason == reason
    assert str(caught.value).startswith(f"{reason}: ")


def test_size_limit() -> None:
    body = orjson.dumps({**TTS_UP, "padding": "x" * DEFAULT_MAX_MESSAGE_BYTES})
    with pytest.raises(UplinkError) as caught:
        parse_message("tts", None, body)
    assert caught.value.reason == "too-large"
    assert isinstance(parse_message("tts", None, body, max_bytes=len(body)), Uplink)


def test_chirpstack_message_without_dev_eui() -> None:
    body = orjson.dumps({"deviceInfo": {"applicationId": "x"}, "fPort": 1})
    with pytest.raises(UplinkError) as caught:
        parse_message("chirpstack-v4", None, body, event="up")
    assert caught.value.reason == "missing-dev-eui"
    uplink = parse_message("chirpstack-v4", CS4_TOPIC.replace("app-uuid", "x") + "up", body)
    assert isinstance(uplink, Uplink)
    assert uplink.dev_eui == "0101010101010101"


def test_error_pickles_with_its_reason_and_field() -> None:
    error = UplinkError("bad-base64", "data: expected base64", field="data")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.message, copy.field, str(copy)) == (
        "bad-base64",
        "data: expected base64",
        "data",
        "bad-base64: data: expected base64",
    )
