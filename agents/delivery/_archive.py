"""The uplink archive: every raw uplink as it arrived, compressed, for `replay` after a fix.

After a codec, profile or calibration fix an admin replays a device's (or a time range's)
uplinks through the current mapping; the archive keeps the original message bytes for that,
with the source, MQTT topic (or webhook path), receive time, DevEUI and fCnt.

Messages are compressed one by one with zlib and a preset dictionary of the network servers'
JSON member names (uplinks are small JSON documents whose size is mostly those names; on the
network servers' documented examples the dictionary saves about a third of what plain zlib
leaves). Each row records its codec, so the dictionary can change without losing old rows.

Retention is by age of the receive time and is applied on demand (`prune`), for example once
an hour by the agent.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agents.delivery._db import Database, Synchronous, from_us, now_us, to_us

__all__ = ["ArchivedUplink", "RawUplink", "UplinkArchive"]

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


@dataclass(frozen=True, slots=True)
class RawUplink:
    """One message to archive: the original bytes and where and when it came from."""

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
)

_INSERT = (
    "INSERT INTO uplink_archive (received_us, source, topic, dev_eui, f_cnt, size, codec, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


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
        """Archive several messages in one transaction (compressed before it starts)."""
        rows: list[tuple[Any, ...]] = []
        for uplink in uplinks:
            data = bytes(uplink.payload)
            codec, packed = _compress(data, self.level)
            rows.append(
                (
                    to_us(uplink.received_at),
                    uplink.source,
                    uplink.topic,
                    uplink.dev_eui,
                    uplink.f_cnt,
                    len(data),
                    codec,
                    packed,
                )
            )
        if not rows:
            return []
        with self.db.write() as conn:
            conn.executemany(_INSERT, rows)
            last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
        return list(range(last - len(rows) + 1, last + 1))

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
            cursor = conn.execute("DELETE FROM uplink_archive WHERE received_us < ?", (cutoff,))
        return int(cursor.rowcount)

    def erase(self, *, dev_eui: str | Sequence[str]) -> int:
        """Delete every archived message of these devices (DevEUIs as stored: 16 upper-case
        hex digits), whatever its age; returns how many were deleted. For erasure requests:
        retention is `prune`."""
        devices = [dev_eui] if isinstance(dev_eui, str) else list(dev_eui)
        deleted = 0
        with self.db.write() as conn:
            for start in range(0, len(devices), 500):
                part = devices[start : start + 500]
                marks = ",".join("?" * len(part))
                cursor = conn.execute(
                    f"DELETE FROM uplink_archive WHERE dev_eui IN ({marks})", part
                )
                deleted += int(cursor.rowcount)
        return deleted

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
                "SELECT id, received_us, source, topic, dev_eui, f_cnt, codec, data "
                "FROM uplink_archive"
                + (" WHERE " + " AND ".join(clauses) if clauses else "")
                + " ORDER BY received_us, id LIMIT ?"
            )
            page_params.append(page_size)
            with self.db.read() as conn:
                rows = conn.execute(sql, page_params).fetchall()
            for row in rows:
                yield _archived(row)
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
        return int(raw), int(stored)


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


def _archived(row: Sequence[Any] | sqlite3.Row) -> ArchivedUplink:
    row_id, received_us, source, topic, dev_eui, f_cnt, codec, data = row
    return ArchivedUplink(
        id=row_id,
        source=source,
        payload=_decompress(codec, bytes(data)),
        received_at=from_us(received_us),
        topic=topic,
        dev_eui=dev_eui,
        f_cnt=f_cnt,
    )
