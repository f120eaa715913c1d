"""The uplink archive: every raw uplink as it arrived, compressed, for `replay` after a fix.

After a codec, profile or calibration fix an admin replays a device's (or a time range's)
uplinks through the current mapping; the archive keeps the original message bytes for that,
with the source, MQTT topic (or webhook path), receive time, DevEUI and fCnt.

Storage. Each message is one row (source, topic, receive time, DevEUI, fCnt, size), so that
queries by device and time stay plain SQL. The bytes of the messages one `add_many` call
archives are compressed together in blocks (`uplink_blocks`, up to `BLOCK_BYTES` of messages
each, zlib with a preset dictionary of the network servers' JSON member names): a row of such
a block says which block and where in it (`block`, `block_offset`, its `size`). Compressing
messages one by one cost about as much CPU as parsing them (zlib's set-up dominates a message
of a few hundred bytes); in blocks the set-up is shared and the messages compress each other.
Rows written before blocks existed carry their own compressed bytes (`codec` 1: zlib with the
dictionary, message by message; 0: plain zlib) and are read as before; opening an older archive
adds the block table and columns. Each row and block records its codec, so the dictionary can
change without losing old rows.

Erasure (`erase`) rewrites the blocks that held an erased device's messages without them, so
no erased bytes stay behind; retention (`prune`) deletes the rows, and each block once none of
its rows is left.

Retention is by age of the receive time and is applied on demand (`prune`), for example once
an hour by the agent.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from agents.delivery._clock import from_us, now_us, to_us
from agents.delivery._db import Database, Synchronous
from ngsi._sqlite import insert_rows

__all__ = ["BLOCK_BYTES", "ArchivedUplink", "RawUplink", "UplinkArchive"]

# Codec 1: zlib with this dictionary. Never change it; add a codec 2 instead.
_DICTIONARY_1 = (
    b'"metadata":{"region_config_id":"eu868","region_common_name":"EU868"},"crcStatus":"CRC_OK"'
    b'"deduplicationId":"","time":"","deviceInfo":{"tenantId":"","tenantName":"",'
    b'"applicationId":"","applicationName":"","deviceProfileId":"","deviceProfileName":"",'
    b'"deviceName":"","devEui":"","deviceClassEnabled":"CLASS_A","tags":{}},"devAddr":"",'
    b'"adr":true,"dr":5,"fCnt":1,"fPort":1,"confirmed":false,"data":"","object":{},'
    b'"rxInfo":[{"gatewayId":"","uplinkId":1,"gwTime":"","nsTime":"","rssi":-1,"snr":1,'
    b'"channel":1,"rfChain":1,"location":{"latitude":,"longitude":,"altitude":},"context":"",'
    b'"txInfo":{"frequency":868100000,"modulation":{"lora":{"bandwidth":125000,'
    b'"spreadingFactor":7,"codeRate":"CR_4_5"}}},"objectJSON":"","applicationID":"",'
    b'"end_device_ids":{"device_id":"","application_ids":{"application_id":""},"dev_eui":"",'
    b'"join_eui":"","dev_addr":""},"correlation_ids":["as:up:01","gs:conn:01","gs:up:host:01",'
    b'"gs:uplink:01","ns:uplink:01","rpc:/ttn.lorawan.v3.GsNs/HandleUplink:01",'
    b'"rpc:/ttn.lorawan.v3.NsAs/HandleUplink:01"],"received_at":"2024-01-01T00:00:00.000000000Z",'
    b'"uplink_message":{"session_key_id":"","f_port":1,"f_cnt":1,"frm_payload":"",'
    b'"decoded_payload":{},"rx_metadata":[{"gateway_ids":{"gateway_id":"","eui":""},'
    b'"time":"","timestamp":1,"rssi":-1,"channel_rssi":-1,"snr":1,"location":{"latitude":,'
    b'"longitude":,"altitude":,"source":"SOURCE_REGISTRY"},"uplink_token":"","received_at":""}],'
    b'"settings":{"data_rate":{"lora":{"bandwidth":125000,"spreading_factor":7,'
    b'"coding_rate":"4/5"}},"frequency":"868100000","timestamp":1,"time":""},'
    b'"received_at":"","consumed_airtime":"0.061696s","network_ids":{"net_id":"000013",'
    b'"ns_id":"","tenant_id":"ttn","cluster_id":"eu1","cluster_address":'
    b'"eu1.cloud.thethings.network"}},"simulated":true}'
)
_PLAIN = 0
_ZDICT_1 = 1
_IN_BLOCK = 2
"""A row's `codec` when its bytes are in a block (its own `data` is empty)."""

BLOCK_BYTES = 32 * 1024
"""Message bytes compressed together in one block, at most (a larger message is a block alone).
Bounds what reading one message decompresses."""


def _compress(data: bytes, level: int) -> tuple[int, bytes]:
    packer = zlib.compressobj(level, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, _DICTIONARY_1)
    return _ZDICT_1, packer.compress(data) + packer.flush()


def _decompress(codec: int, data: bytes) -> bytes:
    if codec == _ZDICT_1:
        unpacker = zlib.decompressobj(15, _DICTIONARY_1)
        return unpacker.decompress(data) + unpacker.flush()
    if codec == _PLAIN:
        return zlib.decompress(data)
    raise ValueError(f"archived uplink compressed with unknown codec {codec}")


class RawUplink(NamedTuple):
    """One message to archive: the original bytes and where and when it came from (a named
    tuple: every uplink makes one)."""

    source: str
    payload: bytes
    received_at: datetime
    topic: str | None = None
    dev_eui: str | None = None
    f_cnt: int | None = None


@dataclass(frozen=True, slots=True)
class ArchivedUplink:
    """An archived message, decompressed."""

    id: int
    source: str
    payload: bytes
    received_at: datetime
    topic: str | None
    dev_eui: str | None
    f_cnt: int | None


_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS uplink_archive (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_us INTEGER NOT NULL,
        source TEXT NOT NULL,
        topic TEXT,
        dev_eui TEXT,
        f_cnt INTEGER,
        size INTEGER NOT NULL,
        codec INTEGER NOT NULL,
        data BLOB NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS uplink_archive_time ON uplink_archive (received_us, id)",
    "CREATE INDEX IF NOT EXISTS uplink_archive_device ON uplink_archive (dev_eui, received_us, id)",
    """
    CREATE TABLE IF NOT EXISTS uplink_blocks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        codec INTEGER NOT NULL,
        data BLOB NOT NULL
    )
    """,
)
_BLOCK_COLUMNS = (
    ("block", "ALTER TABLE uplink_archive ADD COLUMN block INTEGER"),
    ("block_offset", "ALTER TABLE uplink_archive ADD COLUMN block_offset INTEGER"),
)
_BLOCK_INDEX = (
    "CREATE INDEX IF NOT EXISTS uplink_archive_block ON uplink_archive (block) "
    "WHERE block IS NOT NULL"
)

_INSERT = (
    "INSERT INTO uplink_archive (received_us, source, topic, dev_eui, f_cnt, size, codec, data, "
    "block, block_offset)"
)
_INSERT_BLOCK = "INSERT INTO uplink_blocks (codec, data) VALUES (?, ?)"


class UplinkArchive:
    """Raw uplinks in SQLite, compressed, kept for `retention` (None: forever).

    `target` is a path (its own database, closed by `close()`) or a shared `Database`.
    `level` is the zlib level (1 fastest … 9 smallest). Thread-safe.
    """

    def __init__(
        self,
        target: str | Path | Database,
        *,
        retention: timedelta | None = timedelta(days=30),
        level: int = 6,
        synchronous: Synchronous = "normal",
    ) -> None:
        if retention is not None and retention <= timedelta(0):
            raise ValueError(f"retention must be positive or None, got {retention}")
        if not 0 <= level <= 9:
            raise ValueError(f"zlib level must be 0 to 9, got {level}")
        if isinstance(target, Database):
            self.db = target
            self._owns_db = False
        else:
            self.db = Database(target, synchronous=synchronous)
            self._owns_db = True
        self.retention = retention
        self.level = level
        with self.db.write() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(uplink_archive)")}
            for name, statement in _BLOCK_COLUMNS:
                if name not in columns:
                    conn.execute(statement)
            conn.execute(_BLOCK_INDEX)

    def close(self) -> None:
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> UplinkArchive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Writing -----------------------------------------------------------------------------------

    def add(
        self,
        *,
        source: str,
        payload: bytes,
        received_at: datetime,
        topic: str | None = None,
        dev_eui: str | None = None,
        f_cnt: int | None = None,
    ) -> int:
        """Archive one message; returns its id."""
        uplink = RawUplink(source, payload, received_at, topic, dev_eui, f_cnt)
        return self.add_many([uplink])[0]

    def add_many(self, uplinks: Iterable[RawUplink]) -> list[int]:
        """Archive several messages in one transaction (compressed before it starts, in blocks
        of up to `BLOCK_BYTES`); returns their ids in order."""
        blocks: list[tuple[bytes, list[tuple[Any, ...]]]] = []
        parts: list[bytes] = []
        rows: list[tuple[Any, ...]] = []
        offset = 0
        for uplink in uplinks:
            data = bytes(uplink.payload)
            if rows and offset + len(data) > BLOCK_BYTES:
                blocks.append((self._pack(parts), rows))
                parts, rows, offset = [], [], 0
            parts.append(data)
            rows.append(
                (
                    to_us(uplink.received_at),
                    uplink.source,
                    uplink.topic,
                    uplink.dev_eui,
                    uplink.f_cnt,
                    len(data),
                    _IN_BLOCK,
                    b"",
                    offset,
                )
            )
            offset += len(data)
        if rows:
            blocks.append((self._pack(parts), rows))
        if not blocks:
            return []
        ids: list[int] = []
        with self.db.write() as conn:
            for packed, block_rows in blocks:
                block = conn.execute(_INSERT_BLOCK, (_ZDICT_1, packed)).lastrowid
                insert_rows(conn, _INSERT, [(*row[:8], block, row[8]) for row in block_rows])
                last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
                ids.extend(range(last - len(block_rows) + 1, last + 1))
        return ids

    def _pack(self, parts: list[bytes]) -> bytes:
        return _compress(b"".join(parts), self.level)[1]

    def prune(self, now: datetime | None = None, *, retention: timedelta | None = None) -> int:
        """Delete messages received more than `retention` (default: the archive's) before `now`.

        Returns how many were deleted; does nothing when no retention is set.
        """
        keep = retention if retention is not None else self.retention
        if keep is None:
            return 0
        current = to_us(now) if now is not None else now_us()
        cutoff = current - (keep // timedelta(microseconds=1))
        with self.db.write() as conn:
            touched = [
                row[0]
                for row in conn.execute(
                    "SELECT DISTINCT block FROM uplink_archive "
                    "WHERE received_us < ? AND block IS NOT NULL",
                    (cutoff,),
                )
            ]
            cursor = conn.execute("DELETE FROM uplink_archive WHERE received_us < ?", (cutoff,))
            deleted = int(cursor.rowcount)
            _drop_empty_blocks(conn, touched)
        return deleted

    def erase(self, *, dev_eui: str | Sequence[str]) -> int:
        """Delete every archived message of these devices (DevEUIs as stored: 16 upper-case
        hex digits), whatever its age; returns how many were deleted. For erasure requests:
        retention is `prune`."""
        devices = [dev_eui] if isinstance(dev_eui, str) else list(dev_eui)
        deleted = 0
        with self.db.write() as conn:
            touched: set[int] = set()
            for start in range(0, len(devices), 500):
                part = devices[start : start + 500]
                marks = ",".join("?" * len(part))
                touched.update(
                    row[0]
                    for row in conn.execute(
                        f"SELECT DISTINCT block FROM uplink_archive WHERE dev_eui IN ({marks}) "
                        "AND block IS NOT NULL",
                        part,
                    )
                )
                cursor = conn.execute(
                    f"DELETE FROM uplink_archive WHERE dev_eui IN ({marks})", part
                )
                deleted += int(cursor.rowcount)
            for block in sorted(touched):
                self._rewrite_block(conn, block)
        return deleted

    def _rewrite_block(self, conn: sqlite3.Connection, block: int) -> None:
        """Compress `block` again with only the messages rows still point to (and offsets
        moved accordingly); delete it when none does."""
        found = conn.execute("SELECT codec, data FROM uplink_blocks WHERE id = ?", (block,))
        stored = found.fetchone()
        if stored is None:
            return
        rows = conn.execute(
            "SELECT id, block_offset, size FROM uplink_archive WHERE block = ? "
            "ORDER BY block_offset",
            (block,),
        ).fetchall()
        if not rows:
            conn.execute("DELETE FROM uplink_blocks WHERE id = ?", (block,))
            return
        data = _decompress(int(stored[0]), bytes(stored[1]))
        parts: list[bytes] = []
        moves: list[tuple[int, int]] = []
        offset = 0
        for row_id, old_offset, size in rows:
            parts.append(data[old_offset : old_offset + size])
            moves.append((offset, row_id))
            offset += size
        conn.execute(
            "UPDATE uplink_blocks SET codec = ?, data = ? WHERE id = ?",
            (_ZDICT_1, self._pack(parts), block),
        )
        conn.executemany("UPDATE uplink_archive SET block_offset = ? WHERE id = ?", moves)

    # Reading -----------------------------------------------------------------------------------

    def uplinks(
        self,
        *,
        dev_eui: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        source: str | None = None,
        page_size: int = 500,
    ) -> Iterator[ArchivedUplink]:
        """Archived messages in receive-time order, filtered by device, source and time range.

        `since` is inclusive, `until` exclusive. Read page by page, so the archive stays usable
        (and writable) while a long replay iterates.
        """
        if page_size < 1:
            raise ValueError(f"page_size must be positive, got {page_size}")
        where, params = _where(dev_eui=dev_eui, since=since, until=until, source=source)
        after: tuple[int, int] | None = None
        while True:
            clauses = list(where)
            page_params = list(params)
            if after is not None:
                clauses.append("(received_us > ? OR (received_us = ? AND id > ?))")
                page_params += [after[0], after[0], after[1]]
            sql = (
                "SELECT id, received_us, source, topic, dev_eui, f_cnt, codec, data, block, "
                "block_offset, size FROM uplink_archive"
                + (" WHERE " + " AND ".join(clauses) if clauses else "")
                + " ORDER BY received_us, id LIMIT ?"
            )
            page_params.append(page_size)
            with self.db.read() as conn:
                # one read transaction: rows and blocks as of the same moment, even while
                # another process erases (and so rewrites blocks)
                own = not conn.in_transaction
                if own:
                    conn.execute("BEGIN")
                try:
                    rows = conn.execute(sql, page_params).fetchall()
                    blocks = _load_blocks(conn, {row[8] for row in rows if row[8] is not None})
                finally:
                    if own:
                        conn.execute("COMMIT")
            for row in rows:
                yield _archived(row, blocks)
            if len(rows) < page_size:
                return
            after = (int(rows[-1][1]), int(rows[-1][0]))

    def count(
        self,
        *,
        dev_eui: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        source: str | None = None,
    ) -> int:
        """How many messages match (as in `uplinks`)."""
        where, params = _where(dev_eui=dev_eui, since=since, until=until, source=source)
        sql = "SELECT COUNT(*) FROM uplink_archive" + (
            " WHERE " + " AND ".join(where) if where else ""
        )
        with self.db.read() as conn:
            return int(conn.execute(sql, params).fetchone()[0])

    def sizes(self) -> tuple[int, int]:
        """(bytes as received, bytes stored) over the whole archive."""
        with self.db.read() as conn:
            raw, stored = conn.execute(
                "SELECT COALESCE(SUM(size), 0), COALESCE(SUM(LENGTH(data)), 0) FROM uplink_archive"
            ).fetchone()
            (in_blocks,) = conn.execute(
                "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM uplink_blocks"
            ).fetchone()
        return int(raw), int(stored) + int(in_blocks)


def _where(
    *,
    dev_eui: str | None,
    since: datetime | None,
    until: datetime | None,
    source: str | None,
) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if dev_eui is not None:
        clauses.append("dev_eui = ?")
        params.append(dev_eui)
    if source is not None:
        clauses.append("source = ?")
        params.append(source)
    if since is not None:
        clauses.append("received_us >= ?")
        params.append(to_us(since))
    if until is not None:
        clauses.append("received_us < ?")
        params.append(to_us(until))
    return clauses, params


def _drop_empty_blocks(conn: sqlite3.Connection, blocks: Iterable[int]) -> None:
    """Delete those of `blocks` no row points to any more."""
    conn.executemany(
        "DELETE FROM uplink_blocks WHERE id = ? AND NOT EXISTS "
        "(SELECT 1 FROM uplink_archive WHERE block = ?)",
        [(block, block) for block in blocks],
    )


def _load_blocks(conn: sqlite3.Connection, wanted: set[int]) -> dict[int, bytes]:
    """The decompressed `wanted` blocks, by id."""
    found: dict[int, bytes] = {}
    missing = sorted(wanted)
    for start in range(0, len(missing), 500):
        part = missing[start : start + 500]
        marks = ",".join("?" * len(part))
        for block, codec, data in conn.execute(
            f"SELECT id, codec, data FROM uplink_blocks WHERE id IN ({marks})", part
        ):
            found[int(block)] = _decompress(int(codec), bytes(data))
    return found


def _archived(row: Sequence[Any] | sqlite3.Row, blocks: Mapping[int, bytes]) -> ArchivedUplink:
    row_id, received_us, source, topic, dev_eui, f_cnt, codec, data, block, offset, size = row
    if block is not None:
        stored = blocks.get(block)
        if stored is None:
            raise ValueError(f"archived uplink {row_id}: its block {block} is missing")
        payload = stored[offset : offset + size]
    else:
        payload = _decompress(codec, bytes(data))
    return ArchivedUplink(
        id=row_id,
        source=source,
        payload=payload,
        received_at=from_us(received_us),
        topic=topic,
        dev_eui=dev_eui,
        f_cnt=f_cnt,
    )
