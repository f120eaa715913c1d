"""The dead-letter store: add, list with filters, show, purge, take for replay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.delivery import (
    DeadLetterNotFound,
    DeadLetterReason,
    DeadLetters,
    NewDeadLetter,
    Outbox,
)
from ngsi import ProblemDetails

DEV_A = "0004A30B001C0530"
DEV_B = "0004A30B001C0531"
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def letters(tmp_path: Path) -> Iterator[DeadLetters]:
    with DeadLetters(tmp_path / "deadletters.db") as store:
        yield store


def fill(letters: DeadLetters) -> list[int]:
    return [
        letters.add(
            reason=DeadLetterReason.CODEC_ERROR,
            message="CayenneLPP: channel 3 type 0x67 needs 2 bytes, 1 left",
            payload=b"\x03\x67\x01",
            dev_eui=DEV_A,
            source="tts",
            at=T0,
        ),
        letters.add(
            reason="malformed-uplink",
            message="the message is not JSON: Expecting value at line 1 column 1",
            payload=b"not json",
            source="chirpstack-v4",
            at=T0 + timedelta(minutes=1),
        ),
        letters.add(
            reason="broker-rejected",
            message="the broker rejected entity urn:ngsi-ld:Device:x with 400 BadRequestData",
            payload={"id": "urn:ngsi-ld:Device:x", "type": "Device"},
            dev_eui=DEV_B,
            entity_id="urn:ngsi-ld:Device:x",
            tenant="city",
            detail={"problem": ProblemDetails(type="BadRequestData", status=400)},
            source="ngsi-ld",
            at=T0 + timedelta(minutes=2),
        ),
        letters.add(
            reason="codec-timeout",
            message="the JavaScript codec ran longer than 100 ms",
            payload={"bytes": "AQID", "fPort": 2},
            dev_eui=DEV_B,
            source="tts",
            at=T0 + timedelta(minutes=3),
        ),
    ]


def test_add_then_show_keeps_everything(letters: DeadLetters) -> None:
    ids = fill(letters)
    codec = letters.show(ids[0])
    assert codec.reason == "codec-error"
    assert codec.payload == b"\x03\x67\x01"
    assert codec.payload_json is None
    assert codec.raw == b"\x03\x67\x01"
    assert (codec.dev_eui, codec.source, codec.created_at) == (DEV_A, "tts", T0)
    assert codec.replayed_at is None
    rejected = letters.show(ids[2])
    assert rejected.payload is None
    assert rejected.payload_json == {"id": "urn:ngsi-ld:Device:x", "type": "Device"}
    assert rejected.raw == b'{"id":"urn:ngsi-ld:Device:x","type":"Device"}'
    assert rejected.detail == {"problem": {"type": "BadRequestData", "status": 400}}
    assert (rejected.entity_id, rejected.tenant) == ("urn:ngsi-ld:Device:x", "city")
    assert letters.counters.dead_letters == 4
    # The model serializes for `--output json`.
    assert '"payload":"A2cB"' in codec.model_dump_json()
    with pytest.raises(DeadLetterNotFound, match="no dead letter with id 999"):
        letters.show(999)


def test_an_unusable_reason_code_is_refused(letters: DeadLetters) -> None:
    with pytest.raises(ValueError, match="lowercase code"):
        letters.add(reason="Codec Error", message="x")
    assert letters.count() == 0


def test_list_filters_by_reason_device_source_and_time(letters: DeadLetters) -> None:
    ids = fill(letters)
    assert [entry.id for entry in letters.list()] == ids
    assert [entry.id for entry in letters.list(reason="codec-error")] == [ids[0]]
    assert [entry.id for entry in letters.list(reason=["codec-error", "codec-timeout"])] == [
        ids[0],
        ids[3],
    ]
    assert [entry.id for entry in letters.list(dev_eui=DEV_B)] == [ids[2], ids[3]]
    assert [entry.id for entry in letters.list(source="tts")] == [ids[0], ids[3]]
    assert [entry.id for entry in letters.list(entity_id="urn:ngsi-ld:Device:x")] == [ids[2]]
    window = letters.list(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
    assert [entry.id for entry in window] == [ids[1], ids[2]]
    assert [entry.id for entry in letters.list(limit=2, offset=1)] == ids[1:3]
    assert [entry.id for entry in letters.list(offset=3)] == [ids[3]]
    assert letters.count(dev_eui=DEV_B) == 2
    assert letters.counts_by_reason() == {
        "broker-rejected": 1,
        "codec-error": 1,
        "codec-timeout": 1,
        "malformed-uplink": 1,
    }


def test_take_for_replay_marks_the_entries_and_does_not_take_them_twice(
    letters: DeadLetters,
) -> None:
    ids = fill(letters)
    taken = letters.take_for_replay(dev_eui=DEV_B)
    assert [entry.id for entry in taken] == [ids[2], ids[3]]
    assert all(entry.replayed_at is not None and entry.replay_count == 1 for entry in taken)
    assert letters.take_for_replay(dev_eui=DEV_B) == []
    again = letters.take_for_replay(dev_eui=DEV_B, include_replayed=True, limit=1)
    assert [(entry.id, entry.replay_count) for entry in again] == [(ids[2], 2)]
    assert [entry.id for entry in letters.list(replayed=False)] == [ids[0], ids[1]]
    assert [entry.id for entry in letters.list(replayed=True)] == [ids[2], ids[3]]
    assert letters.count() == 4


def test_purge_by_filter_and_never_by_accident(letters: DeadLetters) -> None:
    ids = fill(letters)
    with pytest.raises(ValueError, match="needs a filter"):
        letters.purge()
    assert letters.purge(reason="codec-error") == 1
    assert letters.purge(ids=[ids[1]]) == 1
    letters.take_for_replay(ids=[ids[2]])
    assert letters.purge(replayed=True) == 1
    assert letters.purge(ids=[]) == 0
    assert [entry.id for entry in letters.list()] == [ids[3]]
    assert letters.purge(everything=True) == 1
    assert letters.count() == 0


def test_a_second_process_view_of_the_same_file_sees_the_entries(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path) as outbox:
        letter_id = outbox.dead_letters.add(
            reason="unknown-device", message="no registered device 0004A30B001C0599"
        )
        with DeadLetters(path) as other:
            assert other.show(letter_id).reason == "unknown-device"
            other.purge(ids=[letter_id])
        assert outbox.dead_letters.count() == 0


def test_add_many_is_one_transaction(letters: DeadLetters) -> None:
    ids = letters.add_many(
        [
            NewDeadLetter(reason="mapping-error", message="no value for 'temperature'"),
            NewDeadLetter(reason="validation-error", message="co2 must be >= 0, got -4"),
        ]
    )
    assert len(ids) == 2
    assert [entry.reason for entry in letters.list()] == ["mapping-error", "validation-error"]
    with pytest.raises(ValueError, match="lowercase"):
        letters.add_many([NewDeadLetter(reason="ok", message="x"), NewDeadLetter("BAD", "x")])
    assert letters.count() == 2
