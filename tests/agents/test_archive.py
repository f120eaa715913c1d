"""The uplink archive: compressed raw uplinks, retention, iteration by device and time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.delivery import RawUplink, UplinkArchive

DEV_A = "0004A30B001C0530"
DEV_B = "0004A30B001C0531"
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[UplinkArchive]:
    with UplinkArchive(tmp_path / "archive.db", retention=timedelta(days=7)) as store:
        yield store


def vectors(shared_dir: Path) -> list[bytes]:
    folder = shared_dir / "vectors" / "uplinks"
    return [
        path.read_bytes() for path in sorted(folder.glob("*.json")) if path.name != "index.json"
    ]


def test_messages_come_back_byte_for_byte_and_smaller_on_disk(
    archive: UplinkArchive, shared_dir: Path
) -> None:
    messages = vectors(shared_dir)
    assert messages
    ids = archive.add_many(
        RawUplink(source="tts", payload=message, received_at=T0 + timedelta(seconds=i))
        for i, message in enumerate(messages)
    )
    assert len(ids) == len(messages)
    assert [uplink.payload for uplink in archive.uplinks()] == messages
    raw, stored = archive.sizes()
    assert raw == sum(len(message) for message in messages)
    assert stored < raw * 0.6


def test_one_message_with_its_provenance(archive: UplinkArchive) -> None:
    archive.add(
        source="chirpstack-v4",
        payload=b"\x00\xffnot json at all",
        received_at=T0,
        topic="application/1/device/0004a30b001c0530/event/up",
        dev_eui=DEV_A,
        f_cnt=12,
    )
    [uplink] = archive.uplinks()
    assert uplink.payload == b"\x00\xffnot json at all"
    assert (uplink.source, uplink.topic, uplink.dev_eui, uplink.f_cnt) == (
        "chirpstack-v4",
        "application/1/device/0004a30b001c0530/event/up",
        DEV_A,
        12,
    )
    assert uplink.received_at == T0


def test_iteration_by_device_and_time_range_in_receive_order(archive: UplinkArchive) -> None:
    # Added out of order: iteration follows the receive time.
    for minute in (5, 1, 3, 0, 4, 2):
        for dev_eui in (DEV_A, DEV_B):
            archive.add(
                source="tts",
                payload=f"{dev_eui}:{minute}".encode(),
                received_at=T0 + timedelta(minutes=minute),
                dev_eui=dev_eui,
                f_cnt=minute,
            )
    assert [u.f_cnt for u in archive.uplinks(dev_eui=DEV_A)] == [0, 1, 2, 3, 4, 5]
    ranged = archive.uplinks(
        dev_eui=DEV_B, since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=4)
    )
    assert [u.payload for u in ranged] == [f"{DEV_B}:{m}".encode() for m in (1, 2, 3)]
    everything = list(archive.uplinks(since=T0 + timedelta(minutes=4)))
    assert [(u.f_cnt, u.dev_eui) for u in everything] == [
        (4, DEV_A),
        (4, DEV_B),
        (5, DEV_A),
        (5, DEV_B),
    ]
    assert archive.count(dev_eui=DEV_A, until=T0 + timedelta(minutes=2)) == 2
    assert archive.count(source="chirpstack-v4") == 0


def test_iteration_pages_through_equal_times_without_losing_or_repeating(
    archive: UplinkArchive,
) -> None:
    archive.add_many(
        RawUplink(source="tts", payload=str(i).encode(), received_at=T0 + timedelta(seconds=i // 4))
        for i in range(23)
    )
    got = [int(u.payload) for u in archive.uplinks(page_size=5)]
    assert got == list(range(23))
    with pytest.raises(ValueError, match="page_size"):
        list(archive.uplinks(page_size=0))


def test_prune_applies_the_retention_by_receive_time(archive: UplinkArchive) -> None:
    now = T0 + timedelta(days=10)
    for days in (0, 2, 3, 4, 9):
        archive.add(source="tts", payload=b"x", received_at=T0 + timedelta(days=days))
    # Older than 7 days before `now` goes; exactly 7 days old stays.
    assert archive.prune(now) == 2
    assert [u.received_at for u in archive.uplinks()] == [
        T0 + timedelta(days=3),
        T0 + timedelta(days=4),
        T0 + timedelta(days=9),
    ]
    assert archive.prune(now) == 0
    assert archive.prune(now, retention=timedelta(days=1)) == 2
    assert archive.count() == 1


def test_without_retention_prune_keeps_everything(tmp_path: Path) -> None:
    with UplinkArchive(tmp_path / "a.db", retention=None) as archive:
        archive.add(source="tts", payload=b"x", received_at=T0 - timedelta(days=3650))
        assert archive.prune() == 0
        assert archive.count() == 1
    with pytest.raises(ValueError, match="retention"):
        UplinkArchive(tmp_path / "b.db", retention=timedelta(0))


def test_the_archive_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    with UplinkArchive(path) as archive:
        archive.add(source="tts", payload=b"kept", received_at=T0, dev_eui=DEV_A)
    with UplinkArchive(path, level=1) as reopened:
        assert [u.payload for u in reopened.uplinks(dev_eui=DEV_A)] == [b"kept"]
