"""The uplink archive: compressed raw uplinks, retention, iteration by device and time."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.delivery import RawUplink, UplinkArchive
from agents.delivery._archive import BLOCK_BYTES, _compress, _decompress

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


# Blocks ---------------------------------------------------------------------------------------


def blocks_of(path: Path) -> list[bytes]:
    """Every block of the archive file, decompressed."""
    with sqlite3.connect(path) as conn:
        stored = conn.execute("SELECT codec, data FROM uplink_blocks ORDER BY id").fetchall()
    return [_decompress(codec, bytes(data)) for codec, data in stored]


def burst(count: int, *, dev_eui: str = DEV_A, start: int = 0) -> list[RawUplink]:
    return [
        RawUplink(
            source="tts",
            payload=f'{{"n": {n}, "dev": "{dev_eui}", "pad": "{"x" * (n * 37 % 900)}"}}'.encode(),
            received_at=T0 + timedelta(seconds=n),
            dev_eui=dev_eui,
            f_cnt=n,
        )
        for n in range(start, start + count)
    ]


def test_a_batch_is_stored_in_blocks_and_each_message_comes_back(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    big = RawUplink(source="tts", payload=b"y" * (BLOCK_BYTES + 5), received_at=T0, f_cnt=999)
    uplinks = [*burst(150), big, *burst(100, start=150)]
    with UplinkArchive(path) as archive:
        ids = archive.add_many(uplinks)
        assert ids == list(range(1, len(uplinks) + 1))
        assert archive.add_many([]) == []
        back = {u.f_cnt: u.payload for u in archive.uplinks(page_size=7)}
        assert back == {u.f_cnt: u.payload for u in uplinks}
        assert [u.payload for u in archive.uplinks(dev_eui=DEV_A, page_size=50)] == [
            u.payload for u in sorted(uplinks[:150] + uplinks[151:], key=lambda u: u.received_at)
        ]
        raw, stored = archive.sizes()
        assert raw == sum(len(u.payload) for u in uplinks)
        assert stored < raw / 4
    contents = blocks_of(path)
    assert len(contents) >= 4  # several blocks, the big message alone in one
    assert b"y" * (BLOCK_BYTES + 5) in contents
    assert all(len(block) <= BLOCK_BYTES for block in contents if b"yyyy" not in block)


def test_erasure_rewrites_the_blocks_without_the_device(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    mixed = [u for pair in zip(burst(60), burst(60, dev_eui=DEV_B), strict=True) for u in pair]
    alone = burst(5, dev_eui=DEV_A, start=500)
    with UplinkArchive(path) as archive:
        archive.add_many(mixed)
        archive.add_many(alone)
        before = len(blocks_of(path))
        assert archive.erase(dev_eui=DEV_A) == 65
        assert archive.count(dev_eui=DEV_A) == 0
        assert [u.payload for u in archive.uplinks()] == [u.payload for u in mixed[1::2]]
        assert archive.erase(dev_eui=[DEV_A]) == 0
    contents = blocks_of(path)
    assert len(contents) == before - 1  # the block of only erased messages is gone
    assert not any(DEV_A.encode() in block for block in contents)
    assert all(DEV_B.encode() in block for block in contents)


def test_prune_drops_a_block_once_none_of_its_messages_is_left(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    with UplinkArchive(path, retention=timedelta(days=1)) as archive:
        archive.add_many(burst(3))  # T0 .. T0+2s: one block
        archive.add_many(burst(3, start=86_400))  # a day later: another block
        assert len(blocks_of(path)) == 2
        assert archive.prune(T0 + timedelta(days=1, seconds=2)) == 2  # a block half pruned
        assert len(blocks_of(path)) == 2
        assert [u.f_cnt for u in archive.uplinks()] == [2, 86_400, 86_401, 86_402]
        assert archive.prune(T0 + timedelta(days=1, seconds=5)) == 1
        assert len(blocks_of(path)) == 1
        assert [u.f_cnt for u in archive.uplinks()] == [86_400, 86_401, 86_402]


OLD_SCHEMA = """
    CREATE TABLE uplink_archive (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_us INTEGER NOT NULL,
        source TEXT NOT NULL,
        topic TEXT,
        dev_eui TEXT,
        f_cnt INTEGER,
        size INTEGER NOT NULL,
        codec INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX uplink_archive_time ON uplink_archive (received_us, id);
    CREATE INDEX uplink_archive_device ON uplink_archive (dev_eui, received_us, id);
"""


def test_an_archive_of_messages_compressed_one_by_one_still_replays(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    old = burst(4)
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
        for uplink in old[:3]:
            codec, packed = _compress(uplink.payload, 6)
            conn.execute(
                "INSERT INTO uplink_archive (received_us, source, topic, dev_eui, f_cnt, size, "
                "codec, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    int(uplink.received_at.timestamp() * 1_000_000),
                    uplink.source,
                    None,
                    uplink.dev_eui,
                    uplink.f_cnt,
                    len(uplink.payload),
                    codec,
                    packed,
                ),
            )
        conn.execute(
            "INSERT INTO uplink_archive (received_us, source, size, codec, data) "
            "VALUES (?, 'tts', ?, 0, ?)",
            (int(old[3].received_at.timestamp() * 1_000_000), 5, zlib.compress(b"plain")),
        )
    with UplinkArchive(path) as archive:
        archive.add_many(burst(2, dev_eui=DEV_B, start=10))
        got = [u.payload for u in archive.uplinks()]
        assert got == [
            *(u.payload for u in old[:3]),
            b"plain",
            *(u.payload for u in burst(2, dev_eui=DEV_B, start=10)),
        ]
        assert archive.erase(dev_eui=DEV_A) == 3
        assert archive.count() == 3
        raw, stored = archive.sizes()
        assert raw == 5 + sum(len(u.payload) for u in burst(2, dev_eui=DEV_B, start=10))
        assert stored > 0
