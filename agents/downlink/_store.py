"""The downlink records and the devices' network identities: one SQLite file in the agent's data
folder (`<data_dir>/downlinks.db`), shared by the agent and the CLI.

Tables:

* `downlinks`: every downlink, whoever sent it (the CLI, a command on a Device entity): who,
  when, what (DevEUI, fPort, payload, confirmed, priority), through which source and topic, its
  status (`PENDING`, `SENT`, `ACKED`, `FAILED`), a detail and every network-server event seen.
* `identities`: how each network server names a device (application id, device id, tenant),
  learned from its uplinks, so that a downlink reaches the right topic.

A status only moves forward (`PENDING` → `SENT` → `ACKED` or `FAILED`); a late `down/queued`
after `down/sent` is recorded as an event without moving the status back. The file is in WAL
mode (see `agents.delivery.Database`): the CLI reads and writes it while the agent runs.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from agents.delivery import Database
from agents.downlink._events import DownlinkOutcome
from agents.downlink._model import (
    TERMINAL_STATUSES,
    Downlink,
    DownlinkRecord,
    DownlinkStatus,
    NetworkIdentity,
)

__all__ = ["DOWNLINKS_FILE", "DownlinkStore"]

DOWNLINKS_FILE = "downlinks.db"
"""The store's file name in the agent's data folder."""

_RANK = {"PENDING": 0, "SENT": 1, "ACKED": 2, "FAILED": 2}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS downlinks (
    id TEXT PRIMARY KEY,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    actor TEXT NOT NULL,
    dev_eui TEXT NOT NULL,
    f_port INTEGER NOT NULL,
    payload BLOB NOT NULL,
    confirmed INTEGER NOT NULL,
    priority TEXT NOT NULL,
    replace INTEGER NOT NULL DEFAULT 0,
    source TEXT,
    network_server TEXT,
    topic TEXT,
    command TEXT,
    device_entity TEXT,
    tenant TEXT,
    status TEXT NOT NULL,
    detail TEXT,
    events TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS downlinks_device ON downlinks (dev_eui, created_us);
CREATE TABLE IF NOT EXISTS identities (
    dev_eui TEXT NOT NULL,
    source TEXT NOT NULL,
    network_server TEXT NOT NULL,
    application_id TEXT,
    device_id TEXT,
    ns_tenant TEXT,
    seen_us INTEGER NOT NULL,
    PRIMARY KEY (dev_eui, source)
);
CREATE INDEX IF NOT EXISTS identities_device_id ON identities (device_id);
"""

_COLUMNS = (
    "id, created_us, updated_us, actor, dev_eui, f_port, payload, confirmed, priority, "
    "replace, source, network_server, topic, command, device_entity, tenant, status, detail, "
    "events"
)


def _us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _record(row: tuple[Any, ...]) -> DownlinkRecord:
    return DownlinkRecord(
        id=row[0],
        created_at=_at(row[1]),
        updated_at=_at(row[2]),
        actor=row[3],
        dev_eui=row[4],
        f_port=row[5],
        payload=bytes(row[6]),
        confirmed=bool(row[7]),
        priority=row[8],
        replace=bool(row[9]),
        source=row[10],
        network_server=row[11],
        topic=row[12],
        command=row[13],
        device_entity=row[14],
        tenant=row[15],
        status=row[16],
        detail=row[17],
        events=tuple(orjson.loads(row[18] or "[]")),
    )


class DownlinkStore:
    """The downlink records and network identities (see the module docstring).

    Thread-safe (one connection under a lock). Identities are also kept in memory, so that
    `learn` costs a dict lookup per uplink and writes only when something changed.
    """

    def __init__(self, path: str | Path) -> None:
        self.db = Database(path)
        with self.db.write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            # the last identity seen of each device, so that a restart does not write them all
            # again as their uplinks come in
            self._known: dict[str, tuple[Any, ...]] = {
                row[0]: tuple(row[1:])
                for row in conn.execute(
                    "SELECT dev_eui, source, network_server, application_id, device_id, "
                    "ns_tenant FROM identities ORDER BY seen_us"
                )
            }
        self._lock = threading.Lock()

    @classmethod
    def in_data_dir(cls, data_dir: str | Path) -> DownlinkStore:
        """The store of the agent whose data folder is `data_dir`."""
        return cls(Path(data_dir) / DOWNLINKS_FILE)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> DownlinkStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Records ----------------------------------------------------------------------------------

    def add(
        self,
        downlink: Downlink,
        *,
        actor: str,
        status: DownlinkStatus = "PENDING",
        replace: bool = False,
        identity: NetworkIdentity | None = None,
        topic: str | None = None,
        command: str | None = None,
        device_entity: str | None = None,
        tenant: str | None = None,
        detail: str | None = None,
        now: datetime | None = None,
    ) -> DownlinkRecord:
        """Record a downlink (before it is published: a crash leaves a trace)."""
        at = _us(now or datetime.now(UTC))
        row = (
            downlink.id,
            at,
            at,
            actor,
            downlink.dev_eui,
            downlink.f_port,
            downlink.payload,
            int(downlink.confirmed),
            downlink.priority,
            int(replace),
            identity.source if identity else None,
            identity.network_server if identity else None,
            topic,
            command,
            device_entity,
            tenant,
            status,
            detail,
            "[]",
        )
        with self.db.write() as conn:
            conn.execute(
                f"INSERT INTO downlinks ({_COLUMNS}) VALUES ({', '.join('?' * len(row))})", row
            )
        found = self.get(downlink.id)
        assert found is not None
        return found

    def get(self, record_id: str) -> DownlinkRecord | None:
        with self.db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM downlinks WHERE id = ?", (record_id,)
            ).fetchone()
        return _record(row) if row is not None else None

    def list(self, dev_eui: str | None = None, *, limit: int = 100) -> list[DownlinkRecord]:
        """The newest `limit` records, newest first; of one device when `dev_eui` is given."""
        with self.db.read() as conn:
            if dev_eui is None:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM downlinks ORDER BY created_us DESC, rowid DESC "
                    "LIMIT ?",
                    (limit,),
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM downlinks WHERE dev_eui = ? "
                    "ORDER BY created_us DESC, rowid DESC LIMIT ?",
                    (dev_eui, limit),
                ).fetchall()
        return [_record(row) for row in rows]

    def set_status(
        self,
        record_id: str,
        status: DownlinkStatus,
        *,
        detail: str | None = None,
        event: dict[str, Any] | None = None,
        topic: str | None = None,
        first: bool = False,
        now: datetime | None = None,
    ) -> DownlinkRecord | None:
        """Move a record to `status` (never backwards, never out of `ACKED`/`FAILED`), append
        `event` to its events (put it first with `first`: the publisher's own outcome, which the
        network server's answers can overtake); returns the record as it is now, None for an
        unknown id."""
        at = _us(now or datetime.now(UTC))
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT status, events FROM downlinks WHERE id = ?", (record_id,)
            ).fetchone()
            if row is None:
                return None
            current, events_text = row
            events = orjson.loads(events_text or "[]")
            if event is not None:
                events.insert(0 if first else len(events), event)
            moves = current not in TERMINAL_STATUSES and _RANK[status] >= _RANK[current]
            conn.execute(
                "UPDATE downlinks SET updated_us = ?, events = ?, status = ?, "
                "detail = COALESCE(?, detail), topic = COALESCE(?, topic) WHERE id = ?",
                (
                    at,
                    orjson.dumps(events).decode(),
                    status if moves else current,
                    detail if moves else None,
                    topic,
                    record_id,
                ),
            )
        return self.get(record_id)

    def match(self, outcome: DownlinkOutcome, *, source: str | None = None) -> str | None:
        """The record an event belongs to: the one it names; for an event that names no
        downlink at all (`anonymous`), the newest open record of its device (by DevEUI, or by
        the network server's device id through the identities) with the same fPort when the
        event says one, confirmed only for `ack`/`nack`; else None."""
        if outcome.record_id is not None:
            return outcome.record_id if self.get(outcome.record_id) is not None else None
        if not outcome.anonymous:
            return None
        dev_eui = outcome.dev_eui
        if dev_eui is None and outcome.device_id is not None:
            with self.db.read() as conn:
                found = conn.execute(
                    "SELECT dev_eui FROM identities WHERE device_id = ? "
                    "ORDER BY seen_us DESC LIMIT 1",
                    (outcome.device_id,),
                ).fetchone()
            dev_eui = found[0] if found else None
        if dev_eui is None:
            return None
        query = "SELECT id FROM downlinks WHERE dev_eui = ? AND status IN ('PENDING', 'SENT')"
        params: list[Any] = [dev_eui]
        if source is not None:
            query += " AND (source = ? OR source IS NULL)"
            params.append(source)
        if outcome.f_port is not None:
            query += " AND f_port = ?"
            params.append(outcome.f_port)
        if outcome.kind in ("ack", "nack"):
            query += " AND confirmed = 1"
        query += " ORDER BY created_us DESC LIMIT 1"
        with self.db.read() as conn:
            row = conn.execute(query, params).fetchone()
        return row[0] if row else None

    # Identities -------------------------------------------------------------------------------

    def knows(
        self,
        dev_eui: str,
        source: str,
        network_server: str,
        application_id: str | None,
        device_id: str | None,
        ns_tenant: str | None,
    ) -> bool:
        """Whether this is the identity last learned of `dev_eui` (then `learn` would write
        nothing): a dict lookup, for every uplink."""
        known = (source, network_server, application_id, device_id, ns_tenant)
        return self._known.get(dev_eui) == known

    def learn(self, identity: NetworkIdentity) -> bool:
        """Remember how the network server names a device; True when something changed."""
        value = (
            identity.network_server,
            identity.application_id,
            identity.device_id,
            identity.ns_tenant,
        )
        # the last identity seen per device: a device heard through another source is written
        with self._lock:
            if self._known.get(identity.dev_eui) == (identity.source, *value):
                return False
            self._known[identity.dev_eui] = (identity.source, *value)
        at = _us(identity.seen_at or datetime.now(UTC))
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO identities (dev_eui, source, network_server, application_id, "
                "device_id, ns_tenant, seen_us) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (dev_eui, source) DO UPDATE SET network_server = excluded."
                "network_server, application_id = excluded.application_id, device_id = "
                "excluded.device_id, ns_tenant = excluded.ns_tenant, seen_us = excluded.seen_us",
                (identity.dev_eui, identity.source, *value, at),
            )
        return True

    def identities(self, dev_eui: str) -> builtins.list[NetworkIdentity]:
        """What is known of how network servers name `dev_eui`, the most recently seen first."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT dev_eui, source, network_server, application_id, device_id, ns_tenant, "
                "seen_us FROM identities WHERE dev_eui = ? ORDER BY seen_us DESC",
                (dev_eui,),
            ).fetchall()
        return [
            NetworkIdentity(
                dev_eui=row[0],
                source=row[1],
                network_server=row[2],
                application_id=row[3],
                device_id=row[4],
                ns_tenant=row[5],
                seen_at=_at(row[6]),
            )
            for row in rows
        ]

    def learn_all(self, identities: Iterable[NetworkIdentity]) -> None:
        for identity in identities:
            self.learn(identity)
