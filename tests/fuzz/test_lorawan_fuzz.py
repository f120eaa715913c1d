"""Fuzz: the network-server parsers (The Things Stack, ChirpStack v4 JSON, ChirpStack v3
Protobuf-JSON, MQTT topics) take mutations of the documented uplinks and random text without
crashing: they return an event value or raise `UplinkError`, nothing else."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.lorawan import (
    SOURCES,
    UplinkError,
    parse_chirpstack_v3_topic,
    parse_chirpstack_v4_topic,
    parse_message,
    parse_tts_topic,
)
from tests.fuzz._support import (
    FUZZ,
    json_values,
    mutated,
    mutated_bytes,
    uplink_vectors,
    webhook_path_vars,
)

VECTORS = uplink_vectors()
PATH_VARS = webhook_path_vars()
TOPIC_PARSERS = (parse_tts_topic, parse_chirpstack_v4_topic, parse_chirpstack_v3_topic)
EVENTS = st.sampled_from([None, "up", "join", "status", "log", "location", "down/ack", "x"])


def parse(source: str, topic: str | None, payload: bytes, **options: Any) -> None:
    with contextlib.suppress(UplinkError):
        parse_message(source, topic, payload, **options)


def test_the_seed_corpus_parses() -> None:
    assert {source for source, _, _ in VECTORS} == set(SOURCES)
    for (source, topic, message), path_vars in zip(VECTORS, PATH_VARS, strict=True):
        parse_message(source, topic, orjson.dumps(message), path_vars=path_vars)


@pytest.mark.parametrize("index", range(len(VECTORS)))
@FUZZ
@given(data=st.data(), event=EVENTS, with_topic=st.booleans())
def test_mutated_messages(
    index: int, data: st.DataObject, event: str | None, with_topic: bool
) -> None:
    source, topic, message = VECTORS[index]
    changed = data.draw(mutated(message))
    payload = orjson.dumps(changed)
    parse(source, topic if with_topic else None, payload, event=event, path_vars=PATH_VARS[index])
    # the same message as another network server's
    parse(data.draw(st.sampled_from(SOURCES)), None, payload, event=event)


@pytest.mark.parametrize("index", range(len(VECTORS)))
@FUZZ
@given(data=st.data())
def test_mutated_bytes(index: int, data: st.DataObject) -> None:
    source, topic, message = VECTORS[index]
    parse(source, topic, data.draw(mutated_bytes(orjson.dumps(message))))


@FUZZ
@given(
    source=st.sampled_from([*SOURCES, "other"]),
    body=json_values,
    path_vars=st.dictionaries(
        st.sampled_from(["devEUI", "devID", "appID", "tenant", "x"]), st.text(max_size=20)
    ),
    event=EVENTS,
)
def test_any_json(source: str, body: Any, path_vars: dict[str, str], event: str | None) -> None:
    parse(source, None, orjson.dumps(body), path_vars=path_vars, event=event)


segments = st.one_of(
    st.sampled_from(
        [
            "v3",
            "application",
            "device",
            "devices",
            "event",
            "up",
            "rx",
            "command",
            "down",
            "",
            "app1@tenant1",
            "0101010101010101",
            "123",
            "@",
            "join",
            "location",
            "solved",
        ]
    ),
    st.text(max_size=20),
)


@FUZZ
@given(parts=st.lists(segments, max_size=8), raw=st.text(max_size=60), pick=st.integers(0, 2))
def test_topics(parts: list[str], raw: str, pick: int) -> None:
    for text in ("/".join(parts), raw):
        for parser in TOPIC_PARSERS:
            with contextlib.suppress(UplinkError):
                parser(text)
    source, _, message = VECTORS[pick * 2 % len(VECTORS)]
    parse(source, "/".join(parts), orjson.dumps(message))
