"""Storage of the embedded broker: one SQLite file per tenant, behind a narrow interface.

Layout: `<data_dir>/default.sqlite` for the default tenant and `<data_dir>/tenant-<name>.sqlite`
for each named one, in WAL mode with `synchronous=NORMAL`. An entity is one row: its id, its
insertion sequence (the order queries answer in), its expanded attribute names, and the orjson of
its expanded, normalized form with system attributes (`doc`); its expanded types are indexed in a
second table.

Contract:
- Every request works inside one transaction: `Store.read(tenant)` or `Store.write(tenant)`
  returns a context manager that holds the tenant's lock for its whole life; a write commits on a
  clean exit and rolls back on an exception, so a batch is stored all or nothing (also when the
  process is killed mid-batch: SQLite's journal takes care of that).
- After a write commits, every `EntityChange` it recorded goes to each registered listener, on the
  committing thread, still under the tenant lock, so listeners see commits in order per tenant.
- All methods block on SQLite: call them from sync endpoints or `run_in_threadpool`.
- `read()` of a tenant nothing was written to raises `NonexistentTenant`; `write()` creates it.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ngsi._errors import BadRequestData, NonexistentTenant
from ngsi.broker._events import ChangeKind, ChangeListener, EntityChange

__all__ = ["EntityRow", "ReadTransaction", "Store", "WriteTransaction", "validate_tenant"]

log = logging.getLogger(__name__)

_TENANT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,49}$")
_DEFAULT_FILE = "default.sqlite"
_TENANT_PREFIX = "tenant-"
_SQL_CHUNK = 500

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


def _attr_names(doc: Mapping[str, Any]) -> str:
    return "\n".join(k for k in doc if k not in _ENTITY_MEMBERS and not k.startswith("@"))


class _Tenant:
    """One tenant's SQLite connection and the lock that serialises access to it."""

    def __init__(self, name: str | None, path: Path) -> None:
        self.name = name
        self.path = path
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=OFF")
        self.conn.execute("PRAGMA cache_size=-65536")
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self.conn.execute("PRAGMA wal_autocheckpoint=8192")

        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class ReadTransaction:
    """Reads of one tenant inside one SQLite read transaction.

    Handlers reach storage only through these methods; documents come back as dicts the caller
    owns (decoded per call, so mutating them never changes what is stored).
    """

    def __init__(self, tenant: _Tenant) -> None:
        self._tenant = tenant
        self._conn = tenant.conn

    @property
    def tenant(self) -> str | None:
        return self._tenant.name

    def get(self, entity_id: str) -> dict[str, Any] | None:
        """The stored document of `entity_id`, or None."""
        row = self._conn.execute("SELECT doc FROM entities WHERE id = ?", (entity_id,)).fetchone()
        if row is None:
            return None
        doc: dict[str, Any] = orjson.loads(row[0])
        return doc

    def get_many(self, entity_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored documents of those ids that exist, by id."""
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(entity_ids))
        for start in range(0, len(unique), _SQL_CHUNK):
            chunk = unique[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT id, doc FROM entities WHERE id IN ({marks})", chunk)
            for entity_id, doc in rows:
                found[entity_id] = orjson.loads(doc)
        return found

    def existing_ids(self, entity_ids: Sequence[str]) -> set[str]:
        """Those of `entity_ids` that are stored."""
        found: set[str] = set()
        unique = list(dict.fromkeys(entity_ids))
        for start in range(0, len(unique), _SQL_CHUNK):
            chunk = unique[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                row[0]
                for row in self._conn.execute(
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
        sql, params = self._where(types=types, ids=ids, id_regex=id_regex, after_seq=after_seq)
        sql = "SELECT seq, doc FROM entities" + sql + " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params.extend((limit, offset))
        elif offset:
            sql += " LIMIT -1 OFFSET ?"
            params.append(offset)
        for seq, doc in self._conn.execute(sql, params):
            yield EntityRow(seq, orjson.loads(doc))

    def count(
        self,
        *,
        types: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        id_regex: str | None = None,
    ) -> int:
        """How many entities `scan` with the same filters would yield."""
        sql, params = self._where(types=types, ids=ids, id_regex=id_regex, after_seq=0)
        row = self._conn.execute("SELECT count(*) FROM entities" + sql, params).fetchone()
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
            self._conn.execute(
                "SELECT type, count(*) FROM entity_types GROUP BY type ORDER BY type"
            )
        )

    def attribute_names_by_type(self, types: Sequence[str] | None = None) -> dict[str, set[str]]:
        """The expanded attribute names in use, per expanded type (all types when None)."""
        sql = "SELECT t.type, e.attrs FROM entity_types t JOIN entities e ON e.seq = t.seq"
        params: list[Any] = []
        if types is not None:
            sql += " WHERE t.type IN (" + (",".join("?" * len(types)) or "NULL") + ")"
            params.extend(types)
        result: dict[str, set[str]] = {}
        for type_name, attrs in self._conn.execute(sql, params):
            names = result.setdefault(type_name, set())
            if attrs:
                names.update(attrs.split("\n"))
        return result

    def attribute_counts(self) -> dict[str, int]:
        """Each expanded attribute name with the number of entities that have it."""
        counts: dict[str, int] = {}
        for (attrs,) in self._conn.execute("SELECT attrs FROM entities"):
            if attrs:
                for name in attrs.split("\n"):
                    counts[name] = counts.get(name, 0) + 1
        return counts

    def kv_get(self, space: str, key: str) -> bytes | None:
        row = self._conn.execute(
            "SELECT value FROM kv WHERE space = ? AND key = ?", (space, key)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def kv_items(self, space: str) -> list[tuple[str, bytes]]:
        return [
            (key, bytes(value))
            for key, value in self._conn.execute(
                "SELECT key, value FROM kv WHERE space = ? ORDER BY key", (space,)
            )
        ]


class WriteTransaction(ReadTransaction):
    """Reads and writes of one tenant inside one SQLite write transaction.

    Each write records the `EntityChange` that the store hands to listeners after commit.
    """

    def __init__(self, tenant: _Tenant, now: datetime) -> None:
        super().__init__(tenant)
        self.now = now
        self.changes: list[EntityChange] = []

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
        conn = self._conn
        rows = [(doc["id"], _attr_names(doc), orjson.dumps(doc)) for doc in docs]
        if len(rows) == 1:
            cursor = conn.execute("INSERT INTO entities (id, attrs, doc) VALUES (?, ?, ?)", rows[0])
            first_seq = cursor.lastrowid
            assert first_seq is not None
            seqs = [first_seq]
        else:
            start = conn.execute("SELECT coalesce(max(seq), 0) FROM entities").fetchone()[0]
            start = max(start, self._sequence_high())
            conn.executemany(
                "INSERT INTO entities (seq, id, attrs, doc) VALUES (?, ?, ?, ?)",
                [(start + i + 1, *row) for i, row in enumerate(rows)],
            )
            seqs = [start + i + 1 for i in range(len(rows))]
        conn.executemany(
            "INSERT INTO entity_types (type, seq) VALUES (?, ?)",
            [(t, seq) for doc, seq in zip(docs, seqs, strict=True) for t in set(_types_of(doc))],
        )
        for doc in docs:
            self._record("created", doc["id"], None, doc, _attr_names(doc).split("\n"))

    def _sequence_high(self) -> int:
        row = self._conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'entities'"
        ).fetchone()
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
        conn = self._conn
        conn.executemany(
            "UPDATE entities SET attrs = ?, doc = ? WHERE id = ?",
            [(_attr_names(after), orjson.dumps(after), after["id"]) for _, after, _ in updates],
        )
        retyped = [
            (before, after)
            for before, after, _ in updates
            if set(_types_of(before)) != set(_types_of(after))
        ]
        for before, after in retyped:
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
        conn = self._conn
        for doc in docs:
            row = conn.execute("SELECT seq FROM entities WHERE id = ?", (doc["id"],)).fetchone()
            if row is None:
                continue
            conn.execute("DELETE FROM entity_types WHERE seq = ?", (row[0],))
            conn.execute("DELETE FROM entities WHERE seq = ?", (row[0],))
            self._record("deleted", doc["id"], doc, None, _attr_names(doc).split("\n"))

    def kv_put(self, space: str, key: str, value: bytes) -> None:
        self._conn.execute(
            "INSERT INTO kv (space, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (space, key) DO UPDATE SET value = excluded.value",
            (space, key, value),
        )

    def kv_delete(self, space: str, key: str) -> bool:
        cursor = self._conn.execute("DELETE FROM kv WHERE space = ? AND key = ?", (space, key))
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

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self._tenants: dict[str | None, _Tenant] = {}
        self._lock = threading.Lock()
        self._listeners: list[ChangeListener] = []
        self._opened = False

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
        with self._lock:
            for tenant in self._tenants.values():
                tenant.close()
            self._tenants.clear()
            self._opened = False

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

    def _path(self, tenant: str | None) -> Path:
        if tenant is None:
            return self.data_dir / _DEFAULT_FILE
        return self.data_dir / f"{_TENANT_PREFIX}{tenant}.sqlite"

    def _open_tenant(self, name: str | None, path: Path) -> _Tenant:
        tenant = _Tenant(name, path)
        tenant.conn.create_function("REGEXP", 2, _regexp, deterministic=True)
        self._tenants[name] = tenant
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
            yield ReadTransaction(found)

    @contextmanager
    def write(self, tenant: str | None, *, create: bool = True) -> Iterator[WriteTransaction]:
        """A write transaction on `tenant` (created unless `create=False`, then a missing named
        tenant is NonexistentTenant); all or nothing."""
        found = self._tenant(tenant, create=create)
        with found.lock:
            conn = found.conn
            conn.execute("BEGIN IMMEDIATE")
            txn = WriteTransaction(found, _now())
            try:
                yield txn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._emit(txn.changes)

    def _emit(self, changes: Sequence[EntityChange]) -> None:
        if not changes or not self._listeners:
            return
        for listener in list(self._listeners):
            for change in changes:
                try:
                    listener.entity_changed(change)
                except Exception:
                    log.exception("change listener %r failed", listener)


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
