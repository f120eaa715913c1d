"""The registry's local cache: registered devices in a SQLite file, so that an agent starts (and
maps uplinks) while the broker is away.

One table, `registry_devices` (DevEUI → the registration as JSON), and `registry_meta` for the
time of the last full resync. WAL mode, one connection guarded by a lock; every change is its own
transaction, a resync replaces the table in one. The file may be shared with other stores (the
tables are prefixed).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from agents.registry._device import RegisteredDevice

__all__ = ["DeviceCache"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registry_devices (
    dev_eui TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class DeviceCache:
    """Registered devices persisted in SQLite (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=10.0
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def load(self) -> dict[str, RegisteredDevice]:
        """Every cached registration by DevEUI. A row that no longer reads (written by another
        version) is skipped: the next resync brings it back from the broker."""
        with self._lock:
            rows = self._conn.execute("SELECT dev_eui, body FROM registry_devices").fetchall()
        found: dict[str, RegisteredDevice] = {}
        for dev_eui, body in rows:
            try:
                found[dev_eui] = RegisteredDevice.model_validate_json(body)
            except ValueError:
                continue
        return found

    def put(self, device: RegisteredDevice) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO registry_devices (dev_eui, body) VALUES (?, ?)",
                (device.dev_eui, device.model_dump_json()),
            )

    def delete(self, dev_eui: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM registry_devices WHERE dev_eui = ?", (dev_eui,))

    def replace_all(self, devices: Iterable[RegisteredDevice], *, synced_at: datetime) -> None:
        """Make the cache hold exactly `devices`, and remember when (one transaction)."""
        rows = [(device.dev_eui, device.model_dump_json()) for device in devices]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("DELETE FROM registry_devices")
                self._conn.executemany(
                    "INSERT INTO registry_devices (dev_eui, body) VALUES (?, ?)", rows
                )
                self._conn.execute(
                    "INSERT OR REPLACE INTO registry_meta (key, value) VALUES ('synced_at', ?)",
                    (synced_at.isoformat(),),
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def synced_at(self) -> datetime | None:
        """When the cache was last replaced by a full resync, if ever."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM registry_meta WHERE key = 'synced_at'"
            ).fetchone()
        return datetime.fromisoformat(row[0]) if row else None
