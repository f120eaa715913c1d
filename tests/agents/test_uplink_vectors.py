"""Acceptance: every uplink in shared/vectors/uplinks/index.json normalises as its expectation says.

The expectation is compared field by field. Its `observed_at` is the network server's receive
time as the message states it (`Uplink.received_at`). It was derived from the message alone, so
the test parses each file once without its topic (everything must match exactly) and once with
its topic (the topic may only add what the message lacks: The Things Stack's tenant).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.lorawan import (
    Uplink,
    UplinkError,
    parse_chirpstack_v3_uplink,
    parse_chirpstack_v4_uplink,
    parse_message,
    parse_tts_topic,
    parse_tts_uplink,
)

SOURCES = {
    "tts_v3": "tts",
    "chirpstack_v4": "chirpstack-v4",
    "chirpstack_v3_pbjson": "chirpstack-v3",
}


def _index(shared: Path) -> list[dict[str, Any]]:
    document = json.loads((shared / "vectors" / "uplinks" / "index.json").read_text())
    vectors: list[dict[str, Any]] = document["uplinks"]
    return vectors


def _collect() -> list[dict[str, Any]]:
    from tests.conftest import SHARED

    try:
        return _index(SHARED)
    except OSError:
        return []


VECTORS = _collect()
ALL = [pytest.param(i, id=Path(v["file"]).stem) for i, v in enumerate(VECTORS)]
WITH_TOPIC = [pytest.param(i, id=Path(v["file"]).stem) for i, v in enumerate(VECTORS) if v["topic"]]


def test_index_lists_the_documented_uplinks(shared_dir: Path) -> None:
    vectors = _index(shared_dir)
    assert len(vectors) == len(VECTORS) == 5
    assert {v["expected_normalized"]["ns"] for v in vectors} == set(SOURCES)


@pytest.fixture
def vector(index: int, shared_dir: Path) -> dict[str, Any]:
    found = dict(VECTORS[index])
    found["bytes"] = (shared_dir / "vectors" / found["file"]).read_bytes()
    return found


def _parse(vector: dict[str, Any], *, topic: str | None) -> Uplink:
    message = orjson.loads(vector["bytes"])
    ns = vector["expected_normalized"]["ns"]
    if ns == "tts_v3":
        return parse_tts_uplink(message, topic=topic)
    if ns == "chirpstack_v4":
        return parse_chirpstack_v4_uplink(message, topic=topic)
    assert ns == "chirpstack_v3_pbjson"
    return parse_chirpstack_v3_uplink(message, topic=topic)


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _gateway(uplink: Uplink, index: int) -> dict[str, Any]:
    reception = uplink.gateways[index]
    return {
        "id": reception.gateway_id,
        "eui": reception.gateway_eui,
        "rssi": reception.rssi,
        "snr": reception.snr,
        "lat": reception.location.latitude if reception.location else None,
        "lon": reception.location.longitude if reception.location else None,
    }


ACTUAL: dict[str, Callable[[Uplink], Any]] = {
    "ns": lambda u: {v: k for k, v in SOURCES.items()}[u.source],
    "dev_eui": lambda u: u.dev_eui,
    "device_id": lambda u: u.device_id,
    "application_id": lambda u: u.application_id,
    "tenant_id": lambda u: u.tenant,
    "device_profile": lambda u: u.device_profile,
    "tags": lambda u: u.tags,
    "f_port": lambda u: u.f_port,
    "f_cnt": lambda u: u.f_cnt,
    "payload_hex": lambda u: None if u.payload is None else u.payload.hex().upper(),
    "decoded": lambda u: u.decoded,
    "observed_at": lambda u: u.received_at,
    "frequency_hz": lambda u: u.frequency,
    "spreading_factor": lambda u: u.spreading_factor,
    "bandwidth_hz": lambda u: u.bandwidth,
    "coding_rate": lambda u: u.coding_rate,
    "gateways": lambda u: [_gateway(u, i) for i in range(len(u.gateways))],
}


def _compare(
    uplink: Uplink, expected: dict[str, Any], *, skip: frozenset[str] = frozenset()
) -> None:
    unknown = set(expected) - set(ACTUAL)
    assert not unknown, f"expectation fields this test does not compare: {unknown}"
    for field, want in expected.items():
        if field in skip:
            continue
        got = ACTUAL[field](uplink)
        if field == "observed_at":
            want = _time(want)
        assert got == want, f"{field}: expected {want!r}, got {got!r}"


@pytest.mark.parametrize("index", ALL)
def test_vector_file_is_the_indexed_message(vector: dict[str, Any]) -> None:
    assert orjson.loads(vector["bytes"]) == vector["message"]


@pytest.mark.parametrize("index", ALL)
def test_vector_normalised_as_expected(vector: dict[str, Any]) -> None:
    uplink = _parse(vector, topic=None)
    _compare(uplink, vector["expected_normalized"])
    # Lossless through JSON (the outbox's form) and equal to a validated reconstruction.
    assert Uplink.model_validate_json(uplink.model_dump_json()) == uplink


@pytest.mark.parametrize("index", WITH_TOPIC)
def test_vector_with_its_topic(vector: dict[str, Any]) -> None:
    topic = vector["topic"]
    uplink = _parse(vector, topic=topic)
    expected = vector["expected_normalized"]
    _compare(uplink, expected, skip=frozenset({"tenant_id"}))
    if vector["expected_normalized"]["ns"] == "tts_v3":
        # The expectation leaves the tenant out; the topic `v3/app1@tenant1/...` names it.
        assert uplink.tenant == (expected["tenant_id"] or parse_tts_topic(topic).tenant)
    else:
        assert uplink.tenant == expected["tenant_id"]


@pytest.mark.parametrize("index", ALL)
def test_vector_through_parse_message(vector: dict[str, Any]) -> None:
    source = SOURCES[vector["expected_normalized"]["ns"]]
    topic = vector["topic"]
    expected = vector["expected_normalized"]
    if expected["dev_eui"] is None and expected["device_id"] is None:
        # The field-masked webhook names no device: the dispatcher refuses it without path vars.
        with pytest.raises(UplinkError) as caught:
            parse_message(source, topic, vector["bytes"])
        assert caught.value.reason == "missing-device"
        uplink = parse_message(
            source, topic, vector["bytes"], path_vars={"devID": "dev9", "appID": "app9"}
        )
        assert isinstance(uplink, Uplink)
        assert (uplink.device_id, uplink.application_id) == ("dev9", "app9")
        _compare(uplink, expected, skip=frozenset({"device_id", "application_id"}))
        return
    event = None if topic is not None or source == "tts" else "up"
    uplink = parse_message(source, topic, vector["bytes"], event=event)
    assert isinstance(uplink, Uplink)
    _compare(uplink, expected, skip=frozenset({"tenant_id"}))
