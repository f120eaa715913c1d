"""The delivery database: one SQLite file shared by the outbox, frame counters and dead letters.

Durability (what `synchronous` means here). The file is always in WAL mode.

* `synchronous="normal"` (the default): a commit is written to the WAL before `commit` returns,
  without an fsync. Everything committed survives a crash or `kill -9` of the process, because
  the data is in the operating system's page cache; a power loss or kernel crash may lose the
  transactions committed since the last checkpoint (the database itself stays consistent). This
  is the promise the agent makes to the network server: an uplink acknowledged to MQTT is in the
  outbox even if the agent dies the next instant.
* `synchronous="full"`: the WAL is fsynced at every commit, so a commit also survives a power
  loss. It costs one fsync per transaction (milliseconds on ordinary disks); with group commit
  (many uplinks per `put_many`) that is affordable. Choose it on hosts without a
  battery-backed disk cache when losing the last second of readings on power loss matters.

One `Database` holds one connection guarded by a re-entrant lock: SQLite serialises writers
anyway, and one connection avoids `SQLITE_BUSY` between the agent's threads. Other processes
(the CLI listing dead letters while the agent runs) open their own `Database` on the same file;
WAL lets them read while the agent writes, and `busy_timeout` makes writers wait their turn.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Literal

__all__ = ["Database", "Synchronous"]

Synchronous = Literal["normal", "full"]


class Database:
    """One SQLite file in WAL mode, one connection, one lock; see the module for durability.

    `path` is created with its parent folders. Use `write()` for a transaction and `read()` for
    consistent reads; both may be nested (an inner `write()` joins the outer transaction).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "normal",
        busy_timeout: float = 10.0,
    ) -> None:
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be 'normal' or 'full', got {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.synchronous: Synchronous = synchronous
        self.lock = threading.RLock()
        self._depth = 0
        self._closed = False
        self.conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_timeout,
        )
        mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            self.conn.close()
            raise RuntimeError(
                f"{self.path}: SQLite refused WAL mode (got {mode!r}); the delivery database "
                "needs a local file system"
            )
        self.conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self.conn.execute("PRAGMA foreign_keys=OFF")
        self.conn.execute("PRAGMA temp_store=MEMORY")

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (`BEGIN IMMEDIATE` … `COMMIT`), rolled back on any exception.

        When this returns normally the transaction is committed (durable as the module says).
        Nested calls join the outermost transaction and commit with it.
        """
        with self.lock:
            self._check_open()
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                self._depth = 0
                self.conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection under the lock, for reads (autocommit outside a `write()`)."""
        with self.lock:
            self._check_open()
            yield self.conn

    def close(self) -> None:
        """Checkpoint the WAL and close the connection; idempotent."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            with suppress(sqlite3.Error):
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self.conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the delivery database {self.path} is closed")
