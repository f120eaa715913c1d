"""Where a received notification waits for the handlers, and what has been seen before.

`put` is the hand-off the receiver answers after: in a `SqliteInbox` the notification and the
keys it marks as seen (its id, its entities' fingerprints) are committed in one transaction,
so a 2xx means the notification survives a crash of the consumer and a redelivery of it is
recognised even after a restart. A `MemoryInbox` holds the same in memory: fast, nothing
survives a restart (the broker's retries are then the only safety net).

The set of seen keys is bounded (`seen_capacity`, the newest keys are kept): a redelivery older
than that many notifications ago is no longer recognised.

Items move through `take` → `advance` (handlers done so far) → `done`; an item whose handlers
keep failing is retried `max_attempts` times and then moved aside (`dead`) with the error.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from agents.delivery import Database

__all__ = ["Inbox", "InboxFull", "InboxItem", "MemoryInbox", "SqliteInbox"]


class InboxFull(Exception):
    """The inbox holds `limit` notifications already; the sender should retry later."""


@dataclass(kw_only=True)
class InboxItem:
    """One notification waiting: `progress` handlers have processed it already."""

    seq: int
    received_at: datetime
    tenant: str | None
    notification: dict[str, Any]
    progress: int = 0
    attempts: int = 0


class Inbox(Protocol):
    """The hand-off between receiving and handling (see the module documentation)."""

    durable: bool

    def seen(self, keys: Iterable[str]) -> set[str]: ...

    def put(
        self,
        notification: dict[str, Any],
        *,
        tenant: str | None,
        received_at: datetime,
        keys: Sequence[str],
    ) -> int: ...

    def take(self, limit: int) -> list[InboxItem]: ...

    def advance(self, item: InboxItem, progress: int) -> None: ...

    def done(self, item: InboxItem) -> None: ...

    def failed(self, item: InboxItem, error: str) -> int: ...

    def release(self, items: Sequence[InboxItem]) -> None: ...

    def dead(self, item: InboxItem, error: str) -> None: ...

    def pending(self) -> int: ...

    def dead_count(self) -> int: ...

    def close(self) -> None: ...


class _SeenKeys:
    """The newest `capacity` keys, in insertion order."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.keys: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def add(self, keys: Iterable[str]) -> list[str]:
        evicted: list[str] = []
        for key in keys:
            self.keys[key] = None
            self.keys.move_to_end(key)
        while len(self.keys) > self.capacity:
            evicted.append(self.keys.popitem(last=False)[0])
        return evicted


class MemoryInbox:
    """The inbox in memory: bounded (`limit`), lost on restart."""

    durable = False

    def __init__(self, *, limit: int = 10_000, seen_capacity: int = 100_000) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._items: deque[InboxItem] = deque()
        self._taken: dict[int, InboxItem] = {}
        self._seen = _SeenKeys(seen_capacity)
        self._next = 1
        self._dead: list[tuple[InboxItem, str]] = []

    def seen(self, keys: Iterable[str]) -> set[str]:
        with self._lock:
            return {key for key in keys if key in self._seen}

    def put(
        self,
        notification: dict[str, Any],
        *,
        tenant: str | None,
        received_at: datetime,
        keys: Sequence[str],
    ) -> int:
        with self._lock:
            if len(self._items) + len(self._taken) >= self.limit:
                raise InboxFull(f"{self.limit} notifications are waiting")
            seq = self._next
            self._next += 1
            self._items.append(
                InboxItem(
                    seq=seq, received_at=received_at, tenant=tenant, notification=notification
                )
            )
            self._seen.add(keys)
            return seq

    def take(self, limit: int) -> list[InboxItem]:
        with self._lock:
            out: list[InboxItem] = []
            while self._items and len(out) < limit:
                item = self._items.popleft()
                self._taken[item.seq] = item
                out.append(item)
            return out

    def advance(self, item: InboxItem, progress: int) -> None:
        item.progress = progress

    def done(self, item: InboxItem) -> None:
        with self._lock:
            self._taken.pop(item.seq, None)

    def failed(self, item: InboxItem, error: str) -> int:
        with self._lock:
            item.attempts += 1
            return item.attempts

    def release(self, items: Sequence[InboxItem]) -> None:
        """Give taken items back, in order, ahead of everything else."""
        with self._lock:
            for item in reversed(items):
                if self._taken.pop(item.seq, None) is not None:
                    self._items.appendleft(item)

    def dead(self, item: InboxItem, error: str) -> None:
        with self._lock:
            self._taken.pop(item.seq, None)
            self._dead.append((item, error))

    def pending(self) -> int:
        with self._lock:
            return len(self._items) + len(self._taken)

    def dead_count(self) -> int:
        with self._lock:
            return len(self._dead)

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    tenant TEXT,
    notification BLOB NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS seen (
    key TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_by_seq ON seen(seq);
CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    tenant TEXT,
    notification BLOB NOT NULL,
    error TEXT NOT NULL,
    failed_at TEXT NOT NULL
);
"""


class SqliteInbox:
    """The inbox in a SQLite file (WAL): what `put` committed survives a crash."""

    durable = True

    def __init__(
        self,
        path: str | Path,
        *,
        limit: int = 100_000,
        seen_capacity: int = 100_000,
        synchronous: str = "normal",
    ) -> None:
        self.limit = limit
        self.db = Database(path, synchronous="full" if synchronous == "full" else "normal")
        with self.db.write() as conn:
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(statement)
        self._seen = _SeenKeys(seen_capacity)
        self._seen_seq = 0
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT key, seq FROM seen ORDER BY seq DESC LIMIT ?", (seen_capacity,)
            ).fetchall()
            self._pending = int(conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0])
        for key, seq in reversed(rows):
            self._seen.add([key])
            self._seen_seq = max(self._seen_seq, int(seq))
        self._taken: set[int] = set()
        self._lock = threading.Lock()

    def seen(self, keys: Iterable[str]) -> set[str]:
        with self._lock:
            return {key for key in keys if key in self._seen}

    def put(
        self,
        notification: dict[str, Any],
        *,
        tenant: str | None,
        received_at: datetime,
        keys: Sequence[str],
    ) -> int:
        with self._lock:
            if self._pending >= self.limit:
                raise InboxFull(f"{self.limit} notifications are waiting")
            with self.db.write() as conn:
                cursor = conn.execute(
                    "INSERT INTO inbox (received_at, tenant, notification) VALUES (?, ?, ?)",
                    (received_at.isoformat(), tenant, orjson.dumps(notification)),
                )
                seq = int(cursor.lastrowid or 0)
                for key in keys:
                    self._seen_seq += 1
                    conn.execute(
                        "INSERT OR REPLACE INTO seen (key, seq) VALUES (?, ?)",
                        (key, self._seen_seq),
                    )
                evicted = self._seen.add(keys)
                if evicted:
                    conn.executemany("DELETE FROM seen WHERE key = ?", ((k,) for k in evicted))
            self._pending += 1
            return seq

    def take(self, limit: int) -> list[InboxItem]:
        with self._lock, self.db.read() as conn:
            rows = conn.execute(
                "SELECT seq, received_at, tenant, notification, progress, attempts FROM inbox "
                "ORDER BY seq LIMIT ?",
                (limit + len(self._taken),),
            ).fetchall()
            out: list[InboxItem] = []
            for seq, received_at, tenant, raw, progress, attempts in rows:
                if seq in self._taken:
                    continue
                self._taken.add(seq)
                out.append(
                    InboxItem(
                        seq=seq,
                        received_at=datetime.fromisoformat(received_at),
                        tenant=tenant,
                        notification=orjson.loads(raw),
                        progress=progress,
                        attempts=attempts,
                    )
                )
                if len(out) >= limit:
                    break
            return out

    def advance(self, item: InboxItem, progress: int) -> None:
        item.progress = progress
        with self.db.write() as conn:
            conn.execute("UPDATE inbox SET progress = ? WHERE seq = ?", (progress, item.seq))

    def done(self, item: InboxItem) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM inbox WHERE seq = ?", (item.seq,))
        with self._lock:
            self._taken.discard(item.seq)
            self._pending -= 1

    def failed(self, item: InboxItem, error: str) -> int:
        item.attempts += 1
        with self.db.write() as conn:
            conn.execute(
                "UPDATE inbox SET attempts = ?, progress = ? WHERE seq = ?",
                (item.attempts, item.progress, item.seq),
            )
        return item.attempts

    def release(self, items: Sequence[InboxItem]) -> None:
        """Give taken items back; they are taken again in order of arrival."""
        with self._lock:
            for item in items:
                self._taken.discard(item.seq)

    def dead(self, item: InboxItem, error: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO dead (seq, received_at, tenant, notification, error, "
                "failed_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    item.seq,
                    item.received_at.isoformat(),
                    item.tenant,
                    orjson.dumps(item.notification),
                    error,
                    datetime.now(UTC).isoformat(),
                ),
            )
            conn.execute("DELETE FROM inbox WHERE seq = ?", (item.seq,))
        with self._lock:
            self._taken.discard(item.seq)
            self._pending -= 1

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def dead_count(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM dead").fetchone()[0])

    def close(self) -> None:
        self.db.close()
