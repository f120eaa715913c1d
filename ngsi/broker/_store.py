"""Storage of the embedded broker: one SQLite file per tenant, behind a narrow interface.

Layout: `<data_dir>/default.sqlite` for the default tenant and `<data_dir>/tenant-<name>.sqlite`
for each named one, in WAL mode with `synchronous=NORMAL`. An entity is one row: its id, its
insertion sequence (the order queries answer in) and the orjson of its expanded, normalized form
with system attributes (`doc`); its expanded types are indexed in a second table. (The `attrs`
column is left empty: attribute names are read from `doc` by SQLite's JSON functions when
asked for, which keeps a typical row small enough to share a page with another.)

The last committed state of recently used entities is also kept in memory, as the stored bytes
(`ngsi.broker._cache`): reads by id answer from there, and `Store.cached` lets the event loop
answer without a worker thread.

Contract:
- Every request works inside one transaction: `Store.read(tenant)` or `Store.write(tenant)`
  returns a context manager that holds the tenant's lock for its whole life; a write commits on a
  clean exit and rolls back on an exception, so a batch is stored all or nothing (also when the
  process is killed mid-batch: SQLite's journal takes care of that).
- After a write commits, every `EntityChange` it recorded goes to each registered listener, on the
  committing thread (which may be the event loop: a listener never blocks), still under the
  tenant lock, so listeners see commits in order per tenant.
  A listener that also has `entities_changed(changes)` gets the changes of one write in one call.
- All methods block on SQLite: call them from a worker thread (`Broker.run`). The one exception is
  a small write of one cached entity under `try_lock`, which waits for nothing (see below).
- `read()` of a tenant nothing was written to raises `NonexistentTenant`; `write()` creates it.
- The write-ahead log is copied into the database (checkpointed) by a thread of the store's own,
  about once a second for each tenant written to, never by a write: a write that finds the
  entity in the cache and the tenant free (`try_lock`) may run on the event loop.
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ngsi._errors import BadRequestData, NonexistentTenant
from ngsi._sqlite import chunk_size, insert_rows
from ngsi.broker._cache import DEFAULT_CACHE_BYTES, CachedEntity, EntityCache
from ngsi.broker._events import ChangeKind, ChangeListener, EntityChange

__all__ = [
    "EntityRow",
    "ReadTransaction",
    "Store",
    "WriteTransaction",
    "validate_tenant",
]

log = logging.getLogger(__name__)

_TENANT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,49}$")
_DEFAULT_FILE = "default.sqlite"
_TENANT_PREFIX = "tenant-"
_SQL_CHUNK = 500
CHECKPOINT_INTERVAL = 1.0
"""Seconds between two checkpoints of a tenant that is being written to."""
_NOT_PENDING: Any = object()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    attrs TEXT NOT NULL,
    doc BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS entity_types (
    type TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (type, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entity_types_seq ON entity_types (seq);
CREATE TABLE IF NOT EXISTS kv (
    space TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (space, key)
) WITHOUT ROWID;
"""


def validate_tenant(tenant: str | None) -> str | None:
    """Return the tenant name (None for the default tenant) or raise BadRequestData."""
    if tenant is None or tenant == "":
        return None
    if not _TENANT_RE.match(tenant):
        raise BadRequestData(
            f"invalid tenant name {tenant!r}: expected 1 to 50 letters, digits, '_' or '-'"
        )
    return tenant


@dataclass(frozen=True, slots=True)
class EntityRow:
    """One stored entity: the expanded normalized document and its insertion sequence."""

    seq: int
    doc: dict[str, Any]


def _types_of(doc: Mapping[str, Any]) -> tuple[str, ...]:
    value = doc.get("type")
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(t for t in value if isinstance(t, str))
    return ()


_ENTITY_MEMBERS = frozenset({"id", "type", "scope", "createdAt", "modifiedAt", "deletedAt"})
_ATTRIBUTE_KEY = (
    "j.key NOT IN ('id', 'type', 'scope', 'createdAt', 'modifiedAt', 'deletedAt')"
    " AND substr(j.key, 1, 1) != '@'"
)
"""SQL: the key `j.key` of a stored document (from json_each) is an attribute name."""


def _attr_names(doc: Mapping[str, Any]) -> list[str]:
    return [k for k in doc if k not in _ENTITY_MEMBERS and not k.startswith("@")]


class _Tenant:
    """One tenant's SQLite connection and the lock that serialises access to it."""

    def __init__(self, name: str | None, path: Path) -> None:
        self.name = name
        self.path = path
        self.lock = threading.RLock()
        self.written = False
        """Whether a write came since the last checkpoint."""
        self.conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=OFF")
        self.conn.execute("PRAGMA cache_size=-65536")
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self.conn.execute("PRAGMA wal_autocheckpoint=0")  # see checkpoint()

        self.conn.executescript(_SCHEMA)

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database, between two writes (the tenant's lock
        keeps them out), so that the next write starts the log from its beginning again."""
        with self.lock:
            if not self.written:
                return
            self.written = False
            try:
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                log.exception("checkpoint of %s failed", self.path)

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class ReadTransaction:
    """Reads of one tenant inside one SQLite read transaction.

    Handlers reach storage only through these methods; documents come back as dicts the caller
    owns (decoded per call, so mutating them never changes what is stored).
    """

    def __init__(self, tenant: _Tenant, cache: EntityCache) -> None:
        self._tenant = tenant
        self._conn = tenant.conn
        self._cache = cache

    @property
    def tenant(self) -> str | None:
        return self._tenant.name

    def _sql(self) -> sqlite3.Connection:
        """The connection, for a read that must see everything written so far."""
        return self._conn

    def _raw(self, entity_id: str) -> bytes | None:
        """The stored bytes of `entity_id` as committed (from the cache, else SQLite)."""
        entry = self._cache.get(self._tenant.name, entity_id)
        if entry is not None:
            return entry.raw
        row = self._sql().execute("SELECT doc FROM entities WHERE id = ?", (entity_id,)).fetchone()
        if row is None:
            return None
        raw: bytes = row[0]
        self._cache.put(self._tenant.name, entity_id, raw)
        return raw

    def get(self, entity_id: str) -> dict[str, Any] | None:
        """The stored document of `entity_id`, or None."""
        raw = self._raw(entity_id)
        if raw is None:
            return None
        doc: dict[str, Any] = orjson.loads(raw)
        return doc

    def get_many(
        self, entity_ids: Sequence[str], *, shared: bool = False
    ) -> dict[str, dict[str, Any]]:
        """The stored documents of those ids that exist, by id. `shared=True` may return the
        cache's own documents: the caller must not change them, nor anything in them."""
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        cache, tenant = self._cache, self._tenant.name
        unique = list(dict.fromkeys(entity_ids))
        for entity_id, entry in zip(unique, cache.get_many(tenant, unique), strict=True):
            raw = self._pending_raw(entity_id)
            if raw is _NOT_PENDING:
                if entry is None:
                    missing.append(entity_id)
                    continue
                doc = entry.doc
                if shared and doc is not None:
                    found[entity_id] = doc
                    continue
                raw = entry.raw
            if raw is not None:
                found[entity_id] = orjson.loads(raw)
        for start in range(0, len(missing), _SQL_CHUNK):
            chunk = missing[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._sql().execute(f"SELECT id, doc FROM entities WHERE id IN ({marks})", chunk)
            for entity_id, doc in rows:
                found[entity_id] = orjson.loads(doc)
                cache.put(tenant, entity_id, doc)
        return found

    def _pending_raw(self, entity_id: str) -> Any:
        """Bytes written to `entity_id` by this transaction (None: deleted), else a marker."""
        return _NOT_PENDING

    def existing_ids(self, entity_ids: Sequence[str]) -> set[str]:
        """Those of `entity_ids` that are stored."""
        found: set[str] = set()
        unique = list(dict.fromkeys(entity_ids))
        for start in range(0, len(unique), _SQL_CHUNK):
            chunk = unique[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                row[0]
                for row in self._sql().execute(
                    f"SELECT id FROM entities WHERE id IN ({marks})", chunk
                )
            )
        return found

    def scan(
        self,
        *,
        types: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        id_regex: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[EntityRow]:
        """Entities in insertion order, narrowed in SQL by any of their types, ids or id regex.

        `types` and `ids` are alternatives each (an entity matches when one of its types is in
        `types` and its id in `ids`); `id_regex` is a Python regular expression matched with
        `re.match`-anchored full-match semantics by the caller's pattern.
        """
        if types is not None and ids is None and id_regex is None and limit is not None:
            # Only types: page through the (type, seq) index, then read just that page.
            seqs = self._type_page(types, after_seq=after_seq, limit=limit, offset=offset)
            yield from self.rows(seqs)
            return
        sql, params = self._where(types=types, ids=ids, id_regex=id_regex, after_seq=after_seq)
        sql = "SELECT seq, doc FROM entities" + sql + " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params.extend((limit, offset))
        elif offset:
            sql += " LIMIT -1 OFFSET ?"
            params.append(offset)
        for seq, doc in self._sql().execute(sql, params):
            yield EntityRow(seq, orjson.loads(doc))

    def _type_page(
        self, types: Sequence[str], *, after_seq: int, limit: int, offset: int
    ) -> list[int]:
        marks = ",".join("?" * len(types)) or "NULL"
        distinct = "DISTINCT " if len(types) > 1 else ""
        sql = f"SELECT {distinct}seq FROM entity_types WHERE type IN ({marks})"
        params: list[Any] = list(types)
        if after_seq:
            sql += " AND seq > ?"
            params.append(after_seq)
        sql += " ORDER BY seq LIMIT ? OFFSET ?"
        params.extend((limit, offset))
        return [row[0] for row in self._sql().execute(sql, params)]

    def rows(self, seqs: Sequence[int]) -> list[EntityRow]:
        """The stored entities with those insertion sequences (those that exist), in order."""
        found: list[EntityRow] = []
        for start in range(0, len(seqs), _SQL_CHUNK):
            chunk = list(seqs[start : start + _SQL_CHUNK])
            marks = ",".join("?" * len(chunk))
            found.extend(
                EntityRow(seq, orjson.loads(doc))
                for seq, doc in self._sql().execute(
                    f"SELECT seq, doc FROM entities WHERE seq IN ({marks}) ORDER BY seq", chunk
                )
            )
        found.sort(key=lambda row: row.seq)
        return found

    def count(
        self,
        *,
        types: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        id_regex: str | None = None,
    ) -> int:
        """How many entities `scan` with the same filters would yield."""
        if types is not None and ids is None and id_regex is None:
            marks = ",".join("?" * len(types)) or "NULL"
            row = (
                self._sql()
                .execute(
                    f"SELECT count(DISTINCT seq) FROM entity_types WHERE type IN ({marks})",
                    list(types),
                )
                .fetchone()
            )
            return int(row[0])
        sql, params = self._where(types=types, ids=ids, id_regex=id_regex, after_seq=0)
        row = self._sql().execute("SELECT count(*) FROM entities" + sql, params).fetchone()
        return int(row[0])

    def _where(
        self,
        *,
        types: Sequence[str] | None,
        ids: Sequence[str] | None,
        id_regex: str | None,
        after_seq: int,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if types is not None:
            marks = ",".join("?" * len(types)) or "NULL"
            clauses.append(f"seq IN (SELECT seq FROM entity_types WHERE type IN ({marks}))")
            params.extend(types)
        if ids is not None:
            marks = ",".join("?" * len(ids)) or "NULL"
            clauses.append(f"id IN ({marks})")
            params.extend(ids)
        if id_regex is not None:
            clauses.append("id REGEXP ?")
            params.append(id_regex)
        if after_seq:
            clauses.append("seq > ?")
            params.append(after_seq)
        if not clauses:
            return "", params
        return " WHERE " + " AND ".join(clauses), params

    def type_counts(self) -> dict[str, int]:
        """Each stored expanded type with the number of entities that have it."""
        return dict(
            self._sql().execute(
                "SELECT type, count(*) FROM entity_types GROUP BY type ORDER BY type"
            )
        )

    def attribute_names_by_type(self, types: Sequence[str] | None = None) -> dict[str, set[str]]:
        """The expanded attribute names in use, per expanded type (all types when None)."""
        sql = (
            "SELECT DISTINCT t.type, j.key FROM entity_types t JOIN entities e ON e.seq = t.seq,"
            " json_each(CAST(e.doc AS TEXT)) j WHERE " + _ATTRIBUTE_KEY
        )
        params: list[Any] = []
        if types is not None:
            sql += " AND t.type IN (" + (",".join("?" * len(types)) or "NULL") + ")"
            params.extend(types)
        result: dict[str, set[str]] = {}
        if types is None:
            result.update((type_name, set()) for type_name in self.type_counts())
        else:
            present = self.type_counts()
            result.update((type_name, set()) for type_name in types if type_name in present)
        for type_name, name in self._sql().execute(sql, params):
            result.setdefault(type_name, set()).add(name)
        return result

    def attribute_counts(self) -> dict[str, int]:
        """Each expanded attribute name with the number of entities that have it."""
        return dict(
            self._sql().execute(
                "SELECT j.key, count(*) FROM entities e, json_each(CAST(e.doc AS TEXT)) j WHERE "
                + _ATTRIBUTE_KEY
                + " GROUP BY j.key"
            )
        )

    def kv_get(self, space: str, key: str) -> bytes | None:
        row = (
            self._sql()
            .execute("SELECT value FROM kv WHERE space = ? AND key = ?", (space, key))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def kv_items(self, space: str) -> list[tuple[str, bytes]]:
        return [
            (key, bytes(value))
            for key, value in self._sql().execute(
                "SELECT key, value FROM kv WHERE space = ? ORDER BY key", (space,)
            )
        ]


class WriteTransaction(ReadTransaction):
    """Reads and writes of one tenant inside one SQLite write transaction.

    Each write records the `EntityChange` that the store hands to listeners after commit.
    """

    def __init__(self, tenant: _Tenant, cache: EntityCache, now: datetime) -> None:
        super().__init__(tenant, cache)
        self.now = now
        self.changes: list[EntityChange] = []
        self.written: dict[str, bytes | None] = {}
        """Entity id → the bytes this transaction stored (None: deleted), for the cache."""
        self._shared: dict[str, tuple[dict[str, Any], bytes | None]] = {}
        self._began = False
        self._deferred: tuple[Callable[[], object], bool] | None = None
        """The last write statement(s), not run yet, and whether they are one statement."""

    def _pending_raw(self, entity_id: str) -> Any:
        return self.written.get(entity_id, _NOT_PENDING)

    def share(self, docs: Iterable[dict[str, Any]]) -> None:
        """Hand documents just written to the cache as they are, for `get_many(shared=True)`
        after the commit: the caller gives them up (neither it nor anyone else changes them
        any more). A document written over again later in the transaction is not shared."""
        written = self.written
        for doc in docs:
            entity_id = doc["id"]
            self._shared[entity_id] = (doc, written.get(entity_id))

    def shared_documents(self) -> dict[str, dict[str, Any]]:
        """The shared documents that are still what this transaction wrote, by entity id."""
        written = self.written
        return {
            entity_id: doc
            for entity_id, (doc, raw) in self._shared.items()
            if raw is not None and written.get(entity_id) is raw
        }

    # Writes run inside one SQLite transaction, begun when a second statement comes: a
    # transaction that is one statement (an attribute update, say) runs it on its own, which
    # SQLite makes atomic as well, and saves a BEGIN and a COMMIT.

    def _sql(self) -> sqlite3.Connection:
        self._flush()
        return self._conn

    def _begun(self) -> sqlite3.Connection:
        """The connection, inside the transaction (begun now if need be)."""
        self._flush()
        if not self._began:
            self._conn.execute("BEGIN IMMEDIATE")
            self._began = True
        return self._conn

    def _defer(self, sql: str, params: Sequence[Any]) -> None:
        """Run one write statement: later, when another statement or the commit comes."""
        self._flush()
        conn = self._conn
        self._deferred = (functools.partial(conn.execute, sql, params), True)

    def _defer_rows(self, head: str, rows: Sequence[Sequence[Any]], *, tail: str = "") -> None:
        """Write `rows` (see `insert_rows`): later, when another statement or the commit
        comes."""
        self._flush()
        conn = self._conn
        self._deferred = (
            functools.partial(insert_rows, conn, head, rows, tail=tail),
            len(rows) <= chunk_size(conn, len(rows[0])),
        )

    def _flush(self) -> None:
        deferred = self._deferred
        if deferred is None:
            return
        self._deferred = None
        if not self._began:
            self._conn.execute("BEGIN IMMEDIATE")
            self._began = True
        deferred[0]()

    def _commit(self) -> None:
        deferred = self._deferred
        if deferred is not None and not self._began and deferred[1]:
            # One statement: atomic on its own.
            self._deferred = None
            deferred[0]()
            return
        self._flush()
        if self._began:
            self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        self._deferred = None
        if self._began and self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _raw(self, entity_id: str) -> bytes | None:
        raw = self.written.get(entity_id, _NOT_PENDING)
        if raw is not _NOT_PENDING:
            return raw  # type: ignore[no-any-return]
        return super()._raw(entity_id)

    def _record(
        self,
        kind: ChangeKind,
        entity_id: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        changed: Iterable[str],
    ) -> None:
        doc = after if after is not None else before
        assert doc is not None
        self.changes.append(
            EntityChange(
                tenant=self._tenant.name,
                kind=kind,
                entity_id=entity_id,
                entity_types=_types_of(doc),
                before=before,
                after=after,
                changed_attributes=frozenset(changed),
                at=self.now,
            )
        )

    def insert_many(self, docs: Sequence[dict[str, Any]]) -> None:
        """Store new entities (their ids must not exist yet: check first)."""
        if not docs:
            return
        conn = self._begun()
        rows = [(doc["id"], "", orjson.dumps(doc)) for doc in docs]
        written = self.written
        for entity_id, _, raw in rows:
            written[entity_id] = raw
        if len(rows) == 1:
            cursor = conn.execute("INSERT INTO entities (id, attrs, doc) VALUES (?, ?, ?)", rows[0])
            first_seq = cursor.lastrowid
            assert first_seq is not None
            seqs = [first_seq]
        else:
            start = conn.execute("SELECT coalesce(max(seq), 0) FROM entities").fetchone()[0]
            start = max(start, self._sequence_high())
            insert_rows(
                conn,
                "INSERT INTO entities (seq, id, attrs, doc)",
                [(start + i + 1, *row) for i, row in enumerate(rows)],
            )
            seqs = [start + i + 1 for i in range(len(rows))]
        insert_rows(
            conn,
            "INSERT INTO entity_types (type, seq)",
            [(t, seq) for doc, seq in zip(docs, seqs, strict=True) for t in set(_types_of(doc))],
        )
        for doc in docs:
            self._record("created", doc["id"], None, doc, _attr_names(doc))

    def _sequence_high(self) -> int:
        row = (
            self._sql()
            .execute("SELECT seq FROM sqlite_sequence WHERE name = 'entities'")
            .fetchone()
        )
        return 0 if row is None else int(row[0])

    def insert(self, doc: dict[str, Any]) -> None:
        self.insert_many([doc])

    def update_many(
        self, updates: Sequence[tuple[dict[str, Any], dict[str, Any], Iterable[str]]]
    ) -> None:
        """Overwrite stored entities: each item is (before, after, changed attribute names).

        The entity keeps its insertion sequence; its types are re-indexed when they changed.
        """
        if not updates:
            return
        rows = [(after["id"], "", orjson.dumps(after)) for _, after, _ in updates]
        written = self.written
        for entity_id, _, raw in rows:
            written[entity_id] = raw
        if len(rows) == 1:
            entity_id, attrs, raw = rows[0]
            self._defer(
                "UPDATE entities SET attrs = ?, doc = ? WHERE id = ?", (attrs, raw, entity_id)
            )
        else:
            # Every id exists: an upsert is an update, written in one statement per chunk (an
            # UPDATE takes one per row). The insert attempt uses up a sequence number each:
            # sequences stay increasing, with gaps.
            self._defer_rows(
                "INSERT INTO entities (id, attrs, doc)",
                rows,
                tail="ON CONFLICT (id) DO UPDATE SET attrs = excluded.attrs, doc = excluded.doc",
            )
        retyped = [
            (before, after)
            for before, after, _ in updates
            if before.get("type") != after.get("type")
            and set(_types_of(before)) != set(_types_of(after))
        ]
        for before, after in retyped:
            conn = self._begun()
            seq = conn.execute("SELECT seq FROM entities WHERE id = ?", (after["id"],)).fetchone()[
                0
            ]
            conn.execute("DELETE FROM entity_types WHERE seq = ?", (seq,))
            conn.executemany(
                "INSERT INTO entity_types (type, seq) VALUES (?, ?)",
                [(t, seq) for t in set(_types_of(after))],
            )
            del before
        for before, after, changed in updates:
            self._record("updated", after["id"], before, after, changed)

    def update(self, before: dict[str, Any], after: dict[str, Any], changed: Iterable[str]) -> None:
        self.update_many([(before, after, changed)])

    def delete_many(self, docs: Sequence[dict[str, Any]]) -> None:
        """Remove stored entities (given by their current documents)."""
        conn = self._begun()
        for doc in docs:
            row = conn.execute("SELECT seq FROM entities WHERE id = ?", (doc["id"],)).fetchone()
            if row is None:
                continue
            conn.execute("DELETE FROM entity_types WHERE seq = ?", (row[0],))
            conn.execute("DELETE FROM entities WHERE seq = ?", (row[0],))
            self.written[doc["id"]] = None
            self._record("deleted", doc["id"], doc, None, _attr_names(doc))

    def kv_put(self, space: str, key: str, value: bytes) -> None:
        self._defer(
            "INSERT INTO kv (space, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (space, key) DO UPDATE SET value = excluded.value",
            (space, key, value),
        )

    def kv_delete(self, space: str, key: str) -> bool:
        cursor = self._begun().execute("DELETE FROM kv WHERE space = ? AND key = ?", (space, key))
        return cursor.rowcount > 0


def _regexp(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    return _compiled(pattern).search(value) is not None


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        if len(_PATTERNS) > 256:
            _PATTERNS.clear()
        compiled = _PATTERNS[pattern] = re.compile(pattern)
    return compiled


class Store:
    """The broker's storage: tenants, entities and small key-value records per tenant.

    `open()` creates the data folder and opens the tenants already on disk; `close()` closes
    them. Safe to use from many threads.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.cache = EntityCache(max_bytes=cache_bytes)
        self.checkpoint_interval = checkpoint_interval
        self._tenants: dict[str | None, _Tenant] = {}
        self._lock = threading.Lock()
        self._listeners: list[ChangeListener] = []
        self._opened = False
        self._checkpointer: threading.Thread | None = None
        self._closing = threading.Event()

    def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.data_dir.glob("*.sqlite")):
            name: str | None
            if path.name == _DEFAULT_FILE:
                name = None
            elif path.name.startswith(_TENANT_PREFIX):
                name = path.name[len(_TENANT_PREFIX) : -len(".sqlite")]
            else:
                continue
            self._open_tenant(name, path)
        self._opened = True

    def close(self) -> None:
        self._closing.set()
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.join()
        with self._lock:
            for tenant in self._tenants.values():
                tenant.close()  # SQLite checkpoints when the last connection closes
            self._tenants.clear()
            self.cache.clear()
            self._opened = False
        self._closing.clear()

    def _checkpoint_tenants(self) -> None:
        while not self._closing.wait(self.checkpoint_interval):
            with self._lock:
                tenants = list(self._tenants.values())
            for tenant in tenants:
                tenant.checkpoint()

    def add_listener(self, listener: ChangeListener) -> None:
        """Register a listener for committed entity changes (see the module contract)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        self._listeners.remove(listener)

    def tenants(self) -> list[str | None]:
        """The tenants that exist (None is the default tenant)."""
        with self._lock:
            return list(self._tenants)

    def tenant_exists(self, tenant: str | None) -> bool:
        return tenant in self._tenants

    def cached(self, tenant: str | None, entity_id: str) -> CachedEntity | None:
        """The cached last committed state of an entity, or None (then ask `read`). Never
        touches SQLite nor waits for a lock held by a write: safe on the event loop."""
        return self.cache.get(tenant, entity_id)

    def try_lock(self, tenant: str | None, entity_id: str) -> threading.RLock | None:
        """The tenant's lock, taken, when a write of `entity_id` would wait for nothing: the
        tenant is open, the entity is in the cache and no other thread holds the lock. Else
        None. The caller releases the lock; `write` in between runs without waiting."""
        found = self._tenants.get(tenant)
        if found is None or self.cache.get(tenant, entity_id) is None:
            return None
        if not found.lock.acquire(blocking=False):
            return None
        return found.lock

    def _path(self, tenant: str | None) -> Path:
        if tenant is None:
            return self.data_dir / _DEFAULT_FILE
        return self.data_dir / f"{_TENANT_PREFIX}{tenant}.sqlite"

    def _open_tenant(self, name: str | None, path: Path) -> _Tenant:
        tenant = _Tenant(name, path)
        tenant.conn.create_function("REGEXP", 2, _regexp, deterministic=True)
        self._tenants[name] = tenant
        if self._checkpointer is None:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_tenants, name="ngsi-checkpoint", daemon=True
            )
            self._checkpointer.start()
        return tenant

    def _tenant(self, tenant: str | None, *, create: bool) -> _Tenant:
        found = self._tenants.get(tenant)
        if found is not None:
            return found
        if not create and tenant is not None:
            raise NonexistentTenant(f"tenant {tenant!r} does not exist (nothing was written to it)")
        with self._lock:
            found = self._tenants.get(tenant)
            if found is None:
                found = self._open_tenant(tenant, self._path(tenant))
            return found

    @contextmanager
    def read(self, tenant: str | None) -> Iterator[ReadTransaction]:
        """A read transaction on `tenant`; NonexistentTenant if nothing was written to a named
        tenant (the default tenant always exists)."""
        found = self._tenant(tenant, create=False)
        with found.lock:
            # The tenant lock keeps writers out, so plain autocommit reads are consistent.
            yield ReadTransaction(found, self.cache)

    @contextmanager
    def write(self, tenant: str | None, *, create: bool = True) -> Iterator[WriteTransaction]:
        """A write transaction on `tenant` (created unless `create=False`, then a missing named
        tenant is NonexistentTenant); all or nothing."""
        found = self._tenant(tenant, create=create)
        with found.lock:
            txn = WriteTransaction(found, self.cache, _now())
            try:
                yield txn
                txn._commit()
            except BaseException:
                txn._rollback()
                raise
            finally:
                found.written = True
            if txn.written:
                self.cache.update(tenant, txn.written.items(), txn.shared_documents())
            self._emit(txn.changes)

    def _emit(self, changes: Sequence[EntityChange]) -> None:
        if not changes or not self._listeners:
            return
        for listener in list(self._listeners):
            bulk = getattr(listener, "entities_changed", None)
            if bulk is not None and len(changes) > 1:
                try:
                    bulk(changes)
                except Exception:
                    log.exception("change listener %r failed", listener)
                continue
            for change in changes:
                try:
                    listener.entity_changed(change)
                except Exception:
                    log.exception("change listener %r failed", listener)


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
