"""Downlink events of both network servers, as outcomes of recorded downlinks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agents.downlink import parse_downlink_event

RECORD = "0b6a6c9e-6a43-4c8e-9d57-4a4b8f0f7f11"
DOWNLINK = {
    "session_key_id": "AYdmtE7Q3a0=",
    "f_port": 15,
    "f_cnt": 8,
    "frm_payload": "vu8=",
    "confirmed": True,
    "priority": "NORMAL",
    "correlation_ids": [f"drehscheibe:downlink:{RECORD}", "as:downlink:01H1"],
}


def tts_event(key: str, value: dict[str, Any], *, top_ids: list[str] | None = None) -> bytes:
    return orjson.dumps(
        {
            "end_device_ids": {
                "device_id": "valve-1",
                "application_ids": {"application_id": "water"},
                "dev_eui": "70B3D57ED0000101",
            },
            "correlation_ids": top_ids if top_ids is not None else ["as:downlink:01H1"],
            "received_at": "2024-05-02T10:15:00Z",
            key: value,
        }
    )


@pytest.mark.parametrize(
    ("kind", "key", "status"),
    [
        ("queued", "downlink_queued", "PENDING"),
        ("sent", "downlink_sent", "SENT"),
        ("ack", "downlink_ack", "ACKED"),
        ("nack", "downlink_nack", "FAILED"),
    ],
)
def test_tts_events(kind: str, key: str, status: str) -> None:
    # the agent's correlation id is inside the downlink, not among the event's own ids
    outcome = parse_downlink_event(
        "tts", f"v3/water/devices/valve-1/down/{kind}", tts_event(key, DOWNLINK)
    )
    assert outcome is not None
    assert (outcome.kind, outcome.status, outcome.record_id) == (kind, status, RECORD)
    assert (outcome.dev_eui, outcome.f_port) == ("70B3D57ED0000101", 15)


def test_tts_failed_keeps_the_reason() -> None:
    body = tts_event(
        "downlink_failed",
        {
            "downlink": DOWNLINK,
            "error": {
                "namespace": "pkg/networkserver",
                "name": "application_downlink_too_long",
                "message_format": "application downlink payload too long",
            },
        },
    )
    outcome = parse_downlink_event("tts", "v3/water/devices/valve-1/down/failed", body)
    assert outcome is not None
    assert (outcome.status, outcome.record_id) == ("FAILED", RECORD)
    assert "application_downlink_too_long" in outcome.detail


def test_tts_event_without_our_id() -> None:
    other = {**DOWNLINK, "correlation_ids": ["as:downlink:01H1"]}
    outcome = parse_downlink_event(
        "tts", "v3/water/devices/valve-1/down/ack", tts_event("downlink_ack", other)
    )
    assert outcome is not None
    assert outcome.record_id is None
    assert not outcome.anonymous
    bare = {key: value for key, value in DOWNLINK.items() if key != "correlation_ids"}
    anonymous = parse_downlink_event(
        "tts", "v3/water/devices/valve-1/down/ack", tts_event("downlink_ack", bare, top_ids=[])
    )
    assert anonymous is not None
    assert anonymous.anonymous


def cs_event(event: str, body: dict[str, Any]) -> tuple[str, bytes]:
    topic = f"application/a1b2/device/70b3d57ed0000101/event/{event}"
    message = {
        "deduplicationId": "d-1",
        "time": "2024-05-02T10:15:00Z",
        "deviceInfo": {"applicationId": "a1b2", "devEui": "70b3d57ed0000101"},
        **body,
    }
    return topic, orjson.dumps(message)


def test_chirpstack_ack_and_txack() -> None:
    outcome = parse_downlink_event(
        "chirpstack-v4", *cs_event("ack", {"queueItemId": RECORD, "acknowledged": True})
    )
    assert outcome is not None
    assert (outcome.status, outcome.record_id) == ("ACKED", RECORD)
    refused = parse_downlink_event(
        "chirpstack-v4", *cs_event("ack", {"queueItemId": RECORD, "fCntDown": 3})
    )
    assert refused is not None
    assert refused.status == "FAILED"
    sent = parse_downlink_event(
        "chirpstack-v4", *cs_event("txack", {"queueItemId": RECORD, "fCntDown": 4})
    )
    assert sent is not None
    assert (sent.status, sent.kind) == ("SENT", "txack")


def test_not_events() -> None:
    assert parse_downlink_event("tts", "v3/water/devices/valve-1/down/ack", b"not json") is None
    topic, body = cs_event("up", {"fPort": 1, "data": "AQ=="})
    assert parse_downlink_event("chirpstack-v4", topic, body) is None
