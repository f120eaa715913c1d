"""Temporal history of the embedded broker: every committed change kept, queried over time.

`History` listens to the store: each committed change is queued (never blocking the writer; a
full queue drops the change and counts it) and written by one writer thread, in batches, to a
per-tenant SQLite file `<data_dir>/history/default.sqlite` or `.../tenant-<name>.sqlite`.
What is recorded: every attribute instance an operation wrote (for a creation, all of them), as
stored (expanded, with observedAt, unitCode, datasetId, sub-attributes and system attributes),
with an `instanceId` (`urn:ngsi-ld:attribute:instance:<file>-<change>-<position>`, stable for
as long as the instance is kept). Deleting an entity deletes its history, as the ETSI
conformance suite expects by default (`keep_deleted=True` keeps it). A retention (a default and
per entity type) removes instances whose observedAt (else the time they were recorded) is older;
an entity left without instances leaves the history. The retention reaches every tenant with a
history file, also those not written to since the broker started. An entity the current-state
retention expires (`History.spare`, see `ngsi.broker._retention`) keeps its history.

Storage: one row per recorded change of an entity, holding the instances it wrote as one JSON
document, indexed by (entity, order): writing costs one small row per entity change, and a
temporal read decodes the changes of the entities it returns and selects instances from them.
A file of the earlier layout (one row per instance) is converted when it is first opened.

The API (NGSI-LD 1.6.1 clause 5.7.3 and 5.7.4), under `/ngsi-ld/v1`:

    POST   /temporal/entities            adds the instances of a temporal entity to its history
                                         (201 for a new entity, 204 when it had history)
    GET    /temporal/entities            type, id, idPattern, attrs, q, timerel, timeAt,
                                         endTimeAt, timeproperty, lastN, limit, offset, count,
                                         options=temporalValues|sysAttrs
    POST   /temporal/entityOperations/query   the same as a Query body (temporalQ, geoQ...)
    GET    /temporal/entities/{id}       attrs, timerel..., lastN, options
    DELETE /temporal/entities/{id}       removes the history of one entity

`timerel` is `before`, `after` or `between` (with `endTimeAt`), applied to `timeproperty`
(`observedAt` by default, or `createdAt`/`modifiedAt`: the time the instance was recorded);
instances without that time are left out when a timerel is given. `lastN` keeps the N latest
instances of each attribute (and datasetId). `q` and the geo-query hold on the entity's latest
recorded state.
Instances are listed oldest first. A read waits (at most a second) for the changes committed
before it to be written, so a GET right after a PATCH shows it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ngsi._context import Context, compact_entity, expand_entity
from ngsi._context_http import context_from_request, format_link_header
from ngsi._core_context import CORE_CONTEXT_URL
from ngsi._errors import BadRequestData, ResourceNotFound
from ngsi._ids import uri_problem
from ngsi._sqlite import insert_rows
from ngsi._time import parse_datetime
from ngsi.broker._endpoints import API_PREFIX, path_param
from ngsi.broker._entities import (
    SYSTEM_MEMBERS,
    attribute_names,
    entity_types,
    format_time,
    validate_fragment,
)
from ngsi.broker._events import EntityChange
from ngsi.broker._geo import geo_filter_from_params
from ngsi.broker._http import JSON_LD, negotiate, read_json, request_tenant, response_class
from ngsi.broker._params import EntityQueryParams, parse_options, split_list
from ngsi.broker._settings import BrokerSettings
from ngsi.broker._state import Broker, broker_of
from ngsi.broker._store import Store
from ngsi.broker._subscriptions_model import compile_subscription_q

__all__ = [
    "History",
    "TemporalExtension",
    "TemporalQuery",
    "create_extension",
    "temporal_routes",
]

log = logging.getLogger(__name__)

TimeProperty = Literal["observedAt", "createdAt", "modifiedAt"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS entity (
    entity_id TEXT PRIMARY KEY,
    types TEXT NOT NULL,
    first_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entity_type (
    type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    PRIMARY KEY (type, entity_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS change (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entity INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    oldest TEXT NOT NULL,
    doc BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS change_by_entity ON change (entity, seq);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""
"""One row per recorded change of an entity: `entity` is the entity's `first_seq`, `doc` the
attribute instances the change wrote (`{name: instance or [instances]}`, expanded, as stored),
`oldest` the earliest time among them (observedAt, else `recorded_at`) for the retention."""
_VALUE_MEMBER: Final = {
    "Property": ("value", "values"),
    "GeoProperty": ("value", "values"),
    "Relationship": ("object", "objects"),
    "LanguageProperty": ("languageMap", "languageMaps"),
    "VocabProperty": ("vocab", "vocabs"),
    "JsonProperty": ("json", "jsons"),
    "ListProperty": ("valueList", "valueLists"),
    "ListRelationship": ("objectList", "objectLists"),
}
_BATCH: Final = 2000
"""Changes written to the history in one transaction, at most."""


def _instant(value: str | datetime) -> str:
    """A time as a sortable UTC string with microseconds (how the history compares times)."""
    moment = parse_datetime(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_INSTANTS: dict[str, str | None] = {}
_TYPE_CACHE_LIMIT: Final = 200_000


def _cached_instant(value: Any) -> str | None:
    """`_safe_instant`, memoised: a batch of readings usually shares its observedAt."""
    if not isinstance(value, str):
        return None
    if value in _INSTANTS:
        return _INSTANTS[value]
    if len(_INSTANTS) >= 4096:
        _INSTANTS.clear()
    found = _INSTANTS[value] = _safe_instant(value)
    return found


def _safe_instant(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return _instant(value)
    except ValueError:
        return None


def _instances(attribute: Any) -> list[Mapping[str, Any]]:
    if isinstance(attribute, list):
        return [item for item in attribute if isinstance(item, Mapping)]
    if isinstance(attribute, Mapping):
        return [attribute]
    return []


def _written(
    instance: Mapping[str, Any], stamp: Any, previous: Sequence[Mapping[str, Any]]
) -> bool:
    """Whether the update stamped `stamp` wrote this instance of a multi-instance attribute.

    Its `modifiedAt` is the update's, and it is not the instance the entity held before: an
    instance written by an earlier request within the same millisecond carries the same stamp.
    (Rewriting an instance unchanged within that millisecond is therefore not recorded twice.)
    """
    modified = instance.get("modifiedAt")
    if modified is None:
        return True
    return modified == stamp and all(instance != old for old in previous)


@dataclass(frozen=True, kw_only=True, slots=True)
class TemporalQuery:
    """What a temporal request asks for (names expanded)."""

    types: list[list[str]] | None = None
    ids: list[str] | None = None
    id_pattern: str | None = None
    attrs: list[str] | None = None
    predicate: Callable[[Mapping[str, Any]], bool] | None = None
    timerel: Literal["before", "after", "between"] | None = None
    time_at: str | None = None
    end_time_at: str | None = None
    time_property: TimeProperty = "observedAt"
    last_n: int | None = None
    limit: int = 20
    offset: int = 0


class _TenantHistory:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)
        self.file_id = _file_id(self.conn)
        _migrate_instances(self.conn)
        row = self.conn.execute("SELECT coalesce(max(first_seq), 0) FROM entity").fetchone()
        self.next_first = int(row[0]) + 1
        self.entities: dict[str, tuple[int, tuple[str, ...]]] = {}
        """Entity id → (its key, its types as indexed); a cache: absent means "look in the
        table"."""

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def instance_id(self, seq: int, position: int) -> str:
        """The instanceId of the instance at `position` in change `seq` (stable, unique)."""
        return f"urn:ngsi-ld:attribute:instance:{self.file_id}-{seq:x}-{position:x}"


def _file_id(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = 'file_id'").fetchone()
    if row is not None:
        return str(row[0])
    value = uuid.uuid4().hex
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('file_id', ?)", (value,))
    return str(conn.execute("SELECT value FROM meta WHERE key = 'file_id'").fetchone()[0])


def _migrate_instances(conn: sqlite3.Connection) -> None:
    """Move the rows of the earlier layout (one row per attribute instance, in `instance`) into
    `change`, keeping their order and their instanceIds."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'instance'"
    ).fetchone()
    if found is None:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        keys = dict(conn.execute("SELECT entity_id, first_seq FROM entity"))
        rows = []
        for entity_id, attr, observed, recorded, doc in conn.execute(
            "SELECT entity_id, attr, observed_at, recorded_at, doc FROM instance ORDER BY seq"
        ):
            key = keys.get(entity_id)
            if key is not None:
                rows.append(
                    (key, recorded, observed or recorded, orjson.dumps({attr: orjson.loads(doc)}))
                )
        conn.executemany(
            "INSERT INTO change (entity, recorded_at, oldest, doc) VALUES (?, ?, ?, ?)", rows
        )
        conn.execute("DROP TABLE instance")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@dataclass(slots=True)
class _Instance:
    """One recorded attribute instance, as read back from the history."""

    attr: str
    dataset_id: str
    observed_at: str | None
    recorded_at: str
    seq: int
    position: int
    doc: dict[str, Any]

    def time(self, column: TimeProperty) -> str | None:
        return self.observed_at if column == "observedAt" else self.recorded_at


def _read_instances(history: _TenantHistory, key: int) -> list[_Instance]:
    """Every recorded instance of the entity with `key`, in recording order, each with its
    instanceId."""
    found: list[_Instance] = []
    for seq, recorded, raw in history.conn.execute(
        "SELECT seq, recorded_at, doc FROM change WHERE entity = ? ORDER BY seq", (key,)
    ):
        doc = orjson.loads(raw)
        position = 0
        for attr, value in doc.items():
            for instance in value if isinstance(value, list) else [value]:
                if not isinstance(instance, dict):
                    continue
                if "instanceId" not in instance:
                    instance["instanceId"] = history.instance_id(seq, position)
                found.append(
                    _Instance(
                        attr,
                        instance.get("datasetId") or "",
                        _cached_instant(instance.get("observedAt")),
                        recorded,
                        seq,
                        position,
                        instance,
                    )
                )
                position += 1
    return found


class History:
    """Records committed changes and answers temporal queries (see the module documentation).

    Thread-safety: `entity_changed` (and `entities_changed`, the same for several changes at
    once) may be called from any thread and never blocks; queries run in worker threads;
    `start()`/`stop()` once each. At most `queue_limit` changes wait to be written; further
    ones are dropped and counted in `dropped`. `retention` (a default) and
    `retention_by_type` (expanded type → period) bound how long instances are kept; changes are
    written in batches gathered over `coalesce` seconds.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        retention: timedelta | None = None,
        retention_by_type: Mapping[str, timedelta] | None = None,
        keep_deleted: bool = False,
        queue_limit: int = 100_000,
        purge_interval: float = 60.0,
        coalesce: float = 0.05,
    ) -> None:
        self.folder = Path(data_dir) / "history"
        self.retention = retention
        self.retention_by_type = dict(retention_by_type or {})
        self.keep_deleted = keep_deleted
        self.purge_interval = purge_interval
        self.coalesce = coalesce
        self.queue_limit = queue_limit
        self._pending: collections.deque[EntityChange] = collections.deque()
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._stopping = False
        self._tenants: dict[str | None, _TenantHistory] = {}
        self._tenants_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._enqueued = 0
        self._written = 0
        self._recorded: tuple[datetime, str] | None = None
        self._spared: set[tuple[str | None, str]] = set()
        self.dropped = 0

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="ngsi-history", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        with self._lock:
            self._stopping = True
            self._has_work.notify()
        self._thread.join(timeout=30)
        self._thread = None
        with self._tenants_lock:
            for tenant in self._tenants.values():
                tenant.close()
            self._tenants.clear()

    def _tenant(self, tenant: str | None, *, create: bool) -> _TenantHistory | None:
        found = self._tenants.get(tenant)
        if found is not None:
            return found
        name = "default.sqlite" if tenant is None else f"tenant-{tenant}.sqlite"
        path = self.folder / name
        if not create and not path.exists():
            return None
        with self._tenants_lock:
            found = self._tenants.get(tenant)
            if found is None:
                found = self._tenants[tenant] = _TenantHistory(path)
            return found

    def tenants(self) -> list[str | None]:
        """The tenants that have a history file (None: the default tenant), also those not
        opened since the broker started."""
        found: list[str | None] = list(self._tenants)
        if self.folder.is_dir():
            for path in sorted(self.folder.glob("*.sqlite")):
                name: str | None
                if path.name == "default.sqlite":
                    name = None
                elif path.name.startswith("tenant-"):
                    name = path.name[len("tenant-") : -len(".sqlite")]
                else:
                    continue
                if name not in found:
                    found.append(name)
        return found

    # --- recording ------------------------------------------------------------------------

    def entity_changed(self, change: EntityChange) -> None:
        """Queue a committed change for the history; never blocks, never raises."""
        self.entities_changed((change,))

    def entities_changed(self, changes: Sequence[EntityChange]) -> None:
        """Queue committed changes for the history, in order; never blocks, never raises."""
        try:
            with self._lock:
                room = self.queue_limit - len(self._pending)
                taken = changes if len(changes) <= room else changes[: max(room, 0)]
                self._pending.extend(taken)
                self._enqueued += len(taken)
                if taken:
                    self._has_work.notify()
            if len(taken) < len(changes):
                before = self.dropped
                self.dropped += len(changes) - len(taken)
                if (
                    any(before < mark <= self.dropped for mark in (1, 10, 100))
                    or before // 1000 != self.dropped // 1000
                ):
                    log.warning("history queue full: %d entity changes not recorded", self.dropped)
        except Exception:
            log.exception("queuing entity changes for the history failed")

    def spare(self, tenant: str | None, entity_ids: Sequence[str]) -> None:
        """Keep the history of these entities when their deletion comes (the current-state
        retention expires entities; their history follows its own retention). Call it before
        the deletion is committed; each id is spared once."""
        with self._lock:
            self._spared.update((tenant, entity_id) for entity_id in entity_ids)

    def caught_up(self, *, timeout: float = 1.0) -> None:
        """Wait (at most `timeout` s) until everything queued before this call is written."""
        with self._progress:
            target = self._enqueued
            self._progress.wait_for(lambda: self._written >= target, timeout)

    def _run(self) -> None:
        last_purge = time.monotonic()
        while True:
            with self._lock:
                if not self._pending and not self._stopping:
                    self._has_work.wait(timeout=1.0)
                waiting = len(self._pending)
                stopping = self._stopping
            if waiting and waiting < _BATCH and self.coalesce and not stopping:
                # Let a burst of changes gather: fewer, larger transactions, and fewer turns of
                # this thread taking the interpreter from the request handlers.
                time.sleep(self.coalesce)
            with self._lock:
                pending = self._pending
                batch = [pending.popleft() for _ in range(min(len(pending), _BATCH))]
            if batch:
                try:
                    self._write(batch)
                except Exception:
                    log.exception("writing %d changes to the history failed", len(batch))
                with self._progress:
                    self._written += len(batch)
                    self._progress.notify_all()
                del batch
            elif stopping:
                return
            if time.monotonic() - last_purge >= self.purge_interval:
                last_purge = time.monotonic()
                try:
                    self.purge()
                except Exception:
                    log.exception("purging the history failed")

    def _write(self, changes: Sequence[EntityChange]) -> None:
        by_tenant: dict[str | None, list[EntityChange]] = {}
        for change in changes:
            by_tenant.setdefault(change.tenant, []).append(change)
        for tenant, items in by_tenant.items():
            history = self._tenant(tenant, create=True)
            assert history is not None
            with history.lock:
                conn = history.conn
                conn.execute("BEGIN")
                try:
                    rows: list[tuple[int, str, str, bytes]] = []
                    for change in items:
                        self._record(history, change, rows)
                    insert_rows(conn, "INSERT INTO change (entity, recorded_at, oldest, doc)", rows)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")

    def _record(
        self, history: _TenantHistory, change: EntityChange, rows: list[tuple[int, str, str, bytes]]
    ) -> None:
        """Update the entity index for `change` and add its row (the instances it wrote)."""
        entity_id = change.entity_id
        if change.kind == "deleted":
            with self._lock:
                spared = (change.tenant, entity_id) in self._spared
                self._spared.discard((change.tenant, entity_id))
            if not self.keep_deleted and not spared:
                _forget(history, entity_id)
            return
        after = change.after
        assert after is not None
        before = change.before
        types = entity_types(after)
        known = history.entities.get(entity_id)
        key = known[0] if known is not None and known[1] == types else None
        if key is None:
            key = self._index_entity(history, entity_id, types)
        recorded = self._recorded_at(change.at)
        names = attribute_names(after) if change.kind == "created" else change.changed_attributes
        stamp = after.get("modifiedAt")
        check_stamp = change.kind == "updated" and bool(stamp)
        written: dict[str, Any] = {}
        oldest: str | None = None
        instants = _INSTANTS
        for name in names:
            value = after.get(name)
            if value.__class__ is dict:
                modified = value.get("modifiedAt")
                if check_stamp and modified is not None and modified != stamp:
                    continue
                written[name] = value
                items: Sequence[Mapping[str, Any]] = (value,)
            else:
                items = _instances(value)
                if check_stamp:
                    previous = _instances(before.get(name)) if before is not None else []
                    items = [item for item in items if _written(item, stamp, previous)]
                if not items:
                    continue
                written[name] = items
            for instance in items:
                observed = instance.get("observedAt")
                moment = instants.get(observed) if observed.__class__ is str else None
                if moment is None:
                    moment = _cached_instant(observed) or recorded
                if oldest is None or moment < oldest:
                    oldest = moment
        if oldest is not None:
            rows.append((key, recorded, oldest, orjson.dumps(written)))

    def _recorded_at(self, moment: datetime) -> str:
        last = self._recorded
        if last is not None and last[0] == moment:
            return last[1]
        text = _instant(moment)
        self._recorded = (moment, text)
        return text

    def _index_entity(self, history: _TenantHistory, entity_id: str, types: tuple[str, ...]) -> int:
        """Index the entity (new, or with new types); returns its key."""
        conn = history.conn
        exists = conn.execute(
            "SELECT types, first_seq FROM entity WHERE entity_id = ?", (entity_id,)
        ).fetchone()
        if exists is None:
            key = history.next_first
            conn.execute(
                "INSERT INTO entity (entity_id, types, first_seq) VALUES (?, ?, ?)",
                (entity_id, orjson.dumps(list(types)), key),
            )
            history.next_first += 1
        else:
            key = int(exists[1])
            if tuple(orjson.loads(exists[0])) != types:
                conn.execute(
                    "UPDATE entity SET types = ? WHERE entity_id = ?",
                    (orjson.dumps(list(types)), entity_id),
                )
        conn.executemany(
            "INSERT OR IGNORE INTO entity_type (type, entity_id) VALUES (?, ?)",
            [(t, entity_id) for t in types],
        )
        if len(history.entities) >= _TYPE_CACHE_LIMIT:
            history.entities.clear()
        history.entities[entity_id] = (key, types)
        return key

    def purge(self, *, now: datetime | None = None) -> int:
        """Remove instances older than the retention; returns how many were removed."""
        if self.retention is None and not self.retention_by_type:
            return 0
        now = now or datetime.now(UTC)
        removed = 0
        for tenant in self.tenants():
            history = self._tenant(tenant, create=False)
            if history is None:
                continue
            with history.lock:
                conn = history.conn
                conn.execute("BEGIN")
                try:
                    of_type = (
                        "SELECT e.first_seq FROM entity e JOIN entity_type t "
                        "ON t.entity_id = e.entity_id WHERE t.type IN ({})"
                    )
                    for type_name, period in self.retention_by_type.items():
                        removed += _purge_rows(
                            history,
                            _instant(now - period),
                            f"entity IN ({of_type.format('?')})",
                            [type_name],
                        )
                    if self.retention is not None:
                        special = list(self.retention_by_type)
                        marks = ",".join("?" * len(special))
                        removed += _purge_rows(
                            history,
                            _instant(now - self.retention),
                            f"entity NOT IN ({of_type.format(marks)})" if special else "1",
                            special,
                        )
                    _drop_empty_entities(history)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        return removed

    def provide(
        self,
        tenant: str | None,
        entity_id: str,
        types: list[str],
        attributes: Mapping[str, Sequence[Mapping[str, Any]]],
        *,
        now: datetime | None = None,
    ) -> bool:
        """Add attribute instances to an entity's history directly (the temporal provision API);
        the current state of the entity is not touched. Returns True when the entity was new."""
        self.caught_up()
        history = self._tenant(tenant, create=True)
        assert history is not None
        moment = now or datetime.now(UTC)
        recorded = _instant(moment)
        stamp = format_time(moment)
        with history.lock:
            conn = history.conn
            conn.execute("BEGIN")
            try:
                row = conn.execute(
                    "SELECT types, first_seq FROM entity WHERE entity_id = ?", (entity_id,)
                ).fetchone()
                created = row is None
                history.entities.pop(entity_id, None)
                if created:
                    key = history.next_first
                    conn.execute(
                        "INSERT INTO entity (entity_id, types, first_seq) VALUES (?, ?, ?)",
                        (entity_id, orjson.dumps(types), key),
                    )
                    history.next_first += 1
                else:
                    key = int(row[1])
                    merged = list(dict.fromkeys([*orjson.loads(row[0]), *types]))
                    conn.execute(
                        "UPDATE entity SET types = ? WHERE entity_id = ?",
                        (orjson.dumps(merged), entity_id),
                    )
                conn.executemany(
                    "INSERT OR IGNORE INTO entity_type (type, entity_id) VALUES (?, ?)",
                    [(t, entity_id) for t in types],
                )
                written: dict[str, list[dict[str, Any]]] = {}
                oldest: str | None = None
                for name, instances in attributes.items():
                    for instance in instances:
                        doc = {k: v for k, v in instance.items() if k != "instanceId"}
                        doc["createdAt"] = stamp
                        doc["modifiedAt"] = stamp
                        written.setdefault(name, []).append(doc)
                        at = _cached_instant(instance.get("observedAt")) or recorded
                        if oldest is None or at < oldest:
                            oldest = at
                if oldest is not None:
                    conn.execute(
                        "INSERT INTO change (entity, recorded_at, oldest, doc) VALUES (?, ?, ?, ?)",
                        (key, recorded, oldest, orjson.dumps(written)),
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return created

    def forget(self, tenant: str | None, entity_id: str) -> bool:
        """Delete the history of one entity; False if there was none."""
        self.caught_up()
        history = self._tenant(tenant, create=False)
        if history is None:
            return False
        with history.lock:
            conn = history.conn
            conn.execute("BEGIN")
            try:
                found = _forget(history, entity_id)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return found

    # --- queries --------------------------------------------------------------------------

    def query(self, tenant: str | None, request: TemporalQuery) -> tuple[list[dict[str, Any]], int]:
        """The temporal evolution of the selected entities (expanded), one page, and the total.

        Entities without any instance in the time window are left out when a timerel is given.
        """
        self.caught_up()
        history = self._tenant(tenant, create=False)
        if history is None:
            return [], 0
        with history.lock:
            candidates = self._candidates(history.conn, request)
            selected: list[dict[str, Any]] = []
            for entity_id, key, types in candidates:
                entity = self._entity(history, entity_id, key, types, request)
                if entity is not None:
                    selected.append(entity)
        total = len(selected)
        return selected[request.offset : request.offset + request.limit], total

    def retrieve(
        self, tenant: str | None, entity_id: str, request: TemporalQuery
    ) -> dict[str, Any]:
        self.caught_up()
        history = self._tenant(tenant, create=False)
        if history is None:
            raise ResourceNotFound(f"no temporal history of entity {entity_id!r}")
        with history.lock:
            row = history.conn.execute(
                "SELECT types, first_seq FROM entity WHERE entity_id = ?", (entity_id,)
            ).fetchone()
            if row is None:
                raise ResourceNotFound(f"no temporal history of entity {entity_id!r}")
            instances = _read_instances(history, int(row[1]))
            if request.attrs is not None:
                wanted = set(request.attrs)
                if not any(instance.attr in wanted for instance in instances):
                    raise ResourceNotFound(
                        f"entity {entity_id!r} has no history of attribute(s) "
                        + ", ".join(request.attrs)
                    )
            entity = self._entity(
                history,
                entity_id,
                int(row[1]),
                orjson.loads(row[0]),
                request,
                keep_empty=True,
                instances=instances,
            )
        assert entity is not None
        return entity

    def _candidates(
        self, conn: sqlite3.Connection, request: TemporalQuery
    ) -> list[tuple[str, int, list[str]]]:
        sql = "SELECT entity_id, first_seq, types FROM entity"
        params: list[Any] = []
        clauses: list[str] = []
        if request.types is not None:
            wanted = sorted({t for group in request.types for t in group})
            marks = ",".join("?" * len(wanted))
            clauses.append(
                f"entity_id IN (SELECT entity_id FROM entity_type WHERE type IN ({marks}))"
            )
            params.extend(wanted)
        if request.ids is not None:
            marks = ",".join("?" * len(request.ids))
            clauses.append(f"entity_id IN ({marks})")
            params.extend(request.ids)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY first_seq"
        pattern = re.compile(request.id_pattern) if request.id_pattern else None
        found: list[tuple[str, int, list[str]]] = []
        for entity_id, key, raw in conn.execute(sql, params):
            types: list[str] = orjson.loads(raw)
            if request.types is not None and not any(
                set(group) <= set(types) for group in request.types
            ):
                continue
            if pattern is not None and pattern.fullmatch(entity_id) is None:
                continue
            found.append((entity_id, int(key), types))
        return found

    def _entity(
        self,
        history: _TenantHistory,
        entity_id: str,
        key: int,
        types: list[str],
        request: TemporalQuery,
        *,
        keep_empty: bool = False,
        instances: list[_Instance] | None = None,
    ) -> dict[str, Any] | None:
        if instances is None:
            instances = _read_instances(history, key)
        if request.predicate is not None and not request.predicate(
            _latest(instances, entity_id, types)
        ):
            return None
        column = request.time_property
        selected = instances
        if request.attrs is not None:
            wanted = set(request.attrs)
            selected = [i for i in selected if i.attr in wanted]
        if request.timerel is not None:
            start = request.time_at
            assert start is not None
            if request.timerel == "before":
                selected = [i for i in selected if (t := i.time(column)) is not None and t < start]
            elif request.timerel == "after":
                selected = [i for i in selected if (t := i.time(column)) is not None and t > start]
            else:
                end = request.end_time_at
                assert end is not None
                selected = [
                    i for i in selected if (t := i.time(column)) is not None and start <= t < end
                ]

        def when(instance: _Instance) -> tuple[str, int, int]:
            moment = instance.time(column)
            if moment is None:
                moment = instance.recorded_at
            return moment, instance.seq, instance.position

        if request.last_n is not None:
            by_series: dict[tuple[str, str], list[_Instance]] = {}
            for instance in selected:
                by_series.setdefault((instance.attr, instance.dataset_id), []).append(instance)
            selected = [
                instance
                for series in by_series.values()
                for instance in sorted(series, key=when, reverse=True)[: request.last_n]
            ]
        selected.sort(key=lambda i: (i.attr, *when(i)))
        attributes: dict[str, list[dict[str, Any]]] = {}
        for instance in selected:
            attributes.setdefault(instance.attr, []).append(instance.doc)
        if not attributes and not keep_empty and (request.timerel is not None or request.attrs):
            return None
        entity: dict[str, Any] = {"id": entity_id, "type": types[0] if len(types) == 1 else types}
        entity.update(attributes)
        return entity


def _latest(instances: list[_Instance], entity_id: str, types: list[str]) -> dict[str, Any]:
    """The entity as its latest recorded instances show it (for q and geo-queries)."""
    latest: dict[str, dict[str, dict[str, Any]]] = {}
    for instance in instances:
        latest.setdefault(instance.attr, {})[instance.dataset_id] = instance.doc
    doc: dict[str, Any] = {"id": entity_id, "type": types}
    for attr, by_dataset in latest.items():
        items = list(by_dataset.values())
        doc[attr] = items[0] if len(items) == 1 else items
    return doc


def _forget(history: _TenantHistory, entity_id: str) -> bool:
    conn = history.conn
    history.entities.pop(entity_id, None)
    row = conn.execute("SELECT first_seq FROM entity WHERE entity_id = ?", (entity_id,)).fetchone()
    if row is None:
        return False
    conn.execute("DELETE FROM change WHERE entity = ?", (row[0],))
    conn.execute("DELETE FROM entity WHERE entity_id = ?", (entity_id,))
    conn.execute("DELETE FROM entity_type WHERE entity_id = ?", (entity_id,))
    return True


def _drop_empty_entities(history: _TenantHistory) -> None:
    """Forget the entities the retention left without any instance (a temporal query no
    longer lists them; a later change indexes them again)."""
    conn = history.conn
    empty = [
        str(row[0])
        for row in conn.execute(
            "SELECT entity_id FROM entity WHERE NOT EXISTS "
            "(SELECT 1 FROM change WHERE change.entity = entity.first_seq)"
        )
    ]
    for entity_id in empty:
        _forget(history, entity_id)


def _purge_rows(history: _TenantHistory, cutoff: str, where: str, params: list[Any]) -> int:
    """Drop the instances older than `cutoff` from the changes selected by `where`; returns
    how many were dropped. A change left without instances is deleted; the instances kept
    keep their instanceId."""
    conn = history.conn
    removed = 0
    rows = conn.execute(
        f"SELECT seq, recorded_at, doc FROM change WHERE oldest < ? AND {where}",
        (cutoff, *params),
    ).fetchall()
    for seq, recorded, raw in rows:
        doc = orjson.loads(raw)
        kept: dict[str, Any] = {}
        oldest: str | None = None
        dropped = 0
        position = 0
        for attr, value in doc.items():
            items = []
            for instance in value if isinstance(value, list) else [value]:
                if not isinstance(instance, dict):
                    continue
                instance.setdefault("instanceId", history.instance_id(seq, position))
                position += 1
                moment = _cached_instant(instance.get("observedAt")) or recorded
                if moment < cutoff:
                    dropped += 1
                    continue
                items.append(instance)
                oldest = moment if oldest is None or moment < oldest else oldest
            if items:
                kept[attr] = items if isinstance(value, list) else items[0]
        if not dropped:
            continue
        removed += dropped
        if oldest is None:
            conn.execute("DELETE FROM change WHERE seq = ?", (seq,))
        else:
            conn.execute(
                "UPDATE change SET doc = ?, oldest = ? WHERE seq = ?",
                (orjson.dumps(kept), oldest, seq),
            )
    return removed


# --- rendering ----------------------------------------------------------------------------------


def render_temporal(
    entity: Mapping[str, Any],
    context: Context,
    *,
    temporal_values: bool,
    sys_attrs: bool,
    time_property: TimeProperty,
) -> dict[str, Any]:
    """A temporal entity as the response shows it, compacted with `context`.

    Normalized: each attribute is the list of its instances (with `instanceId`); with
    `temporal_values` (the simplified temporal representation) each attribute is
    `{"type": T, "values": [[value, time], ...]}` (`objects` for Relationships, `languageMaps`
    of `[{"languageMap": {...}}, time]` for LanguageProperties...).
    """
    out: dict[str, Any] = {}
    for key, value in entity.items():
        if key in ("id", "type"):
            out[key] = value
            continue
        instances = [
            instance
            if sys_attrs
            else {k: v for k, v in instance.items() if k not in SYSTEM_MEMBERS}
            for instance in value
        ]
        if temporal_values:
            out[key] = _simplified(instances, time_property)
        else:
            out[key] = instances
    compacted = compact_entity(out, context)
    return compacted


def _simplified(instances: list[dict[str, Any]], time_property: TimeProperty) -> dict[str, Any]:
    kind = instances[0].get("type", "Property") if instances else "Property"
    member, plural = _VALUE_MEMBER.get(kind, ("value", "values"))
    if kind == "LanguageProperty":
        pairs = [
            [{"languageMap": instance.get(member)}, instance.get(time_property)]
            for instance in instances
        ]
    else:
        pairs = [[instance.get(member), instance.get(time_property)] for instance in instances]
    return {"type": kind, plural: pairs}


# --- HTTP ---------------------------------------------------------------------------------------

_EXTRA_KEY = "temporal"


def history_of(request: Request) -> History:
    history = broker_of(request).extras.get(_EXTRA_KEY)
    if not isinstance(history, History):
        raise RuntimeError("the temporal extension is not started")
    return history


def _time_params(params: Mapping[str, str], *, required: bool) -> dict[str, Any]:
    timerel = params.get("timerel")
    time_at = params.get("timeAt")
    end_time_at = params.get("endTimeAt")
    time_property = params.get("timeproperty") or "observedAt"
    if time_property not in ("observedAt", "createdAt", "modifiedAt"):
        raise BadRequestData(
            "parameter 'timeproperty' must be observedAt, createdAt or modifiedAt, "
            f"not {time_property!r}"
        )
    values: dict[str, Any] = {"time_property": time_property}
    if timerel is None:
        if required:
            raise BadRequestData(
                "a temporal query needs 'timerel' (before, after or between) and 'timeAt'"
            )
        if time_at or end_time_at:
            raise BadRequestData("'timeAt' and 'endTimeAt' need a 'timerel'")
    else:
        if timerel not in ("before", "after", "between"):
            raise BadRequestData(
                f"parameter 'timerel' must be before, after or between, not {timerel!r}"
            )
        if not time_at:
            raise BadRequestData(f"timerel={timerel} needs 'timeAt'")
        try:
            values["time_at"] = _instant(time_at)
            if timerel == "between":
                if not end_time_at:
                    raise BadRequestData("timerel=between needs 'endTimeAt'")
                values["end_time_at"] = _instant(end_time_at)
                if values["end_time_at"] <= values["time_at"]:
                    raise BadRequestData("'endTimeAt' must be after 'timeAt'")
        except ValueError as exc:
            raise BadRequestData(f"timeAt/endTimeAt: {exc}") from None
        values["timerel"] = timerel
    last_n = params.get("lastN")
    if last_n is not None:
        try:
            values["last_n"] = int(last_n)
        except ValueError:
            raise BadRequestData(
                f"parameter 'lastN' must be a positive integer, not {last_n!r}"
            ) from None
        if values["last_n"] <= 0:
            raise BadRequestData(f"parameter 'lastN' must be a positive integer, not {last_n!r}")
    return values


def _respond(
    payload: Any,
    *,
    media: str,
    context: Context,
    tenant: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    all_headers = {} if tenant is None else {"NGSILD-Tenant": tenant}
    if headers:
        all_headers.update(headers)
    if media == JSON_LD:
        value = context.to_jsonld()
        if isinstance(payload, dict):
            payload = {**payload, "@context": value}
        else:
            payload = [{**item, "@context": value} for item in payload]
    else:
        all_headers["Link"] = format_link_header(context.url or CORE_CONTEXT_URL)
    return response_class(media)(payload, status_code=200, headers=all_headers)


async def query_temporal(request: Request) -> Response:
    return await _query(request, request.query_params)


async def query_temporal_post(request: Request) -> Response:
    """`POST /temporal/entityOperations/query` with a Query body (entities, attrs, q, geoQ,
    temporalQ); paging and options stay in the URL."""
    body, _ = await read_json(request)
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('the body must be a Query object (with "type": "Query")')
    params: dict[str, str] = dict(request.query_params)
    selectors = body.get("entities") or []
    if not isinstance(selectors, list) or not all(isinstance(e, dict) for e in selectors):
        raise BadRequestData("Query member 'entities' must be a list of entity selectors")
    types = [str(e["type"]) for e in selectors if "type" in e]
    if types:
        params["type"] = ",".join(dict.fromkeys(types))
    ids = [str(e["id"]) for e in selectors if "id" in e]
    if ids and len(ids) == len(selectors):
        params["id"] = ",".join(ids)
    patterns = {str(e["idPattern"]) for e in selectors if "idPattern" in e}
    if len(patterns) == 1:
        params["idPattern"] = patterns.pop()
    attrs = body.get("attrs")
    if isinstance(attrs, list):
        params["attrs"] = ",".join(str(a) for a in attrs)
    if isinstance(body.get("q"), str):
        params["q"] = body["q"]
    geoq = body.get("geoQ")
    if isinstance(geoq, dict):
        for key in ("georel", "geometry", "geoproperty"):
            if key in geoq:
                params[key] = str(geoq[key])
        if "coordinates" in geoq:
            coordinates = geoq["coordinates"]
            params["coordinates"] = (
                coordinates if isinstance(coordinates, str) else orjson.dumps(coordinates).decode()
            )
    temporal = body.get("temporalQ")
    if isinstance(temporal, dict):
        for key in ("timerel", "timeAt", "endTimeAt", "timeproperty", "lastN"):
            if key in temporal:
                params[key] = str(temporal[key])
    return await _query(request, params)


async def _query(request: Request, params: Mapping[str, str]) -> Response:
    broker = broker_of(request)
    history = history_of(request)
    tenant = request_tenant(request)
    media = negotiate(request)
    link = request.headers.get("link")
    settings = broker.settings

    def work() -> tuple[list[dict[str, Any]], int, Context, bool]:
        context = context_from_request(link, None, None, broker.contexts)
        parsed = EntityQueryParams.from_query(
            params,
            context,
            default_limit=settings.default_page_size,
            max_limit=settings.max_page_size,
        )
        times = _time_params(params, required=False)
        _, sys_attrs, options = parse_options(params)
        predicates = []
        if parsed.q:
            predicates.append(compile_subscription_q(parsed.q, context))
        if parsed.geo:
            geo = parsed.geo
            predicates.append(
                geo_filter_from_params(
                    georel=geo["georel"],
                    geometry=geo["geometry"],
                    coordinates=geo["coordinates"],
                    geoproperty=context.expand_term(geo["geoproperty"]),
                ).predicate()
            )
        selection = TemporalQuery(
            types=parsed.types,
            ids=parsed.ids,
            id_pattern=parsed.id_pattern,
            attrs=parsed.attrs,
            predicate=_all_of(predicates),
            limit=parsed.limit,
            offset=parsed.offset,
            **times,
        )
        page, total = history.query(tenant, selection)
        rendered = [
            render_temporal(
                entity,
                context,
                temporal_values="temporalValues" in options,
                sys_attrs=sys_attrs,
                time_property=selection.time_property,
            )
            for entity in page
        ]
        return rendered, total, context, parsed.count

    rendered, total, context, count = await broker.run(work)
    headers = {"NGSILD-Results-Count": str(total)} if count else None
    return _respond(rendered, media=media, context=context, tenant=tenant, headers=headers)


def _all_of(
    predicates: list[Callable[[Mapping[str, Any]], bool]],
) -> Callable[[Mapping[str, Any]], bool] | None:
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]

    def every(doc: Mapping[str, Any]) -> bool:
        return all(predicate(doc) for predicate in predicates)

    return every


def _entity_id(request: Request) -> str:
    entity_id = path_param(request, "entity_id")
    problem = uri_problem(entity_id)
    if problem:
        raise BadRequestData(f"entity id {entity_id!r} in the path is not a URI: {problem}")
    return entity_id


async def retrieve_temporal(request: Request) -> Response:
    broker = broker_of(request)
    history = history_of(request)
    tenant = request_tenant(request)
    media = negotiate(request)
    entity_id = _entity_id(request)
    params = request.query_params
    link = request.headers.get("link")

    def work() -> tuple[dict[str, Any], Context]:
        context = context_from_request(link, None, None, broker.contexts)
        times = _time_params(params, required=False)
        _, sys_attrs, options = parse_options(params)
        attrs = [context.expand_term(a) for a in split_list(params.get("attrs"))] or None
        selection = TemporalQuery(attrs=attrs, **times)
        entity = history.retrieve(tenant, entity_id, selection)
        rendered = render_temporal(
            entity,
            context,
            temporal_values="temporalValues" in options,
            sys_attrs=sys_attrs,
            time_property=selection.time_property,
        )
        return rendered, context

    rendered, context = await broker.run(work)
    return _respond(rendered, media=media, context=context, tenant=tenant)


async def delete_temporal(request: Request) -> Response:
    broker = broker_of(request)
    history = history_of(request)
    tenant = request_tenant(request)
    entity_id = _entity_id(request)
    if not await broker.run(history.forget, tenant, entity_id):
        raise ResourceNotFound(f"no temporal history of entity {entity_id!r}")
    return Response(status_code=204, headers={} if tenant is None else {"NGSILD-Tenant": tenant})


def _temporal_body(body: Any, context: Context) -> tuple[str, list[str], dict[str, list[Any]]]:
    """(id, expanded types, expanded attribute instances) of a temporal entity body."""
    if not isinstance(body, dict):
        raise BadRequestData(f"a temporal entity must be a JSON object, got {type(body).__name__}")
    entity_id = body.get("id")
    problem = uri_problem(entity_id)
    if problem:
        raise BadRequestData(f"temporal entity id: {problem}")
    assert isinstance(entity_id, str)
    where = f"temporal entity {entity_id!r}"
    if "type" not in body:
        raise BadRequestData(f"{where}: 'type' is missing")
    expanded = expand_entity(body, context)
    types = list(entity_types(expanded))
    if not types:
        raise BadRequestData(f"{where}: 'type' must be a name or a list of names")
    attributes: dict[str, list[Any]] = {}
    for name in attribute_names(expanded):
        value = expanded[name]
        items = value if isinstance(value, list) else [value]
        if not items:
            raise BadRequestData(f"{where}: attribute {name!r} has no instances")
        for item in items:
            validate_fragment({name: item}, where=where)
        attributes[name] = items
    return entity_id, types, attributes


async def create_temporal(request: Request) -> Response:
    broker = broker_of(request)
    history = history_of(request)
    tenant = request_tenant(request)
    body, media = await read_json(request)
    link = request.headers.get("link")

    def work() -> tuple[str, bool]:
        body_context = body.get("@context") if isinstance(body, dict) else None
        context = context_from_request(link, body_context, media, broker.contexts)
        entity_id, types, attributes = _temporal_body(body, context)
        return entity_id, history.provide(tenant, entity_id, types, attributes)

    entity_id, created = await broker.run(work)
    headers = {} if tenant is None else {"NGSILD-Tenant": tenant}
    if not created:
        return Response(status_code=204, headers=headers)
    location = f"{API_PREFIX}/temporal/entities/{quote(entity_id, safe=':@!$&+,;=-._~')}"
    return Response(status_code=201, headers={"Location": location, **headers})


def temporal_routes() -> list[BaseRoute]:
    """The temporal resources, relative to `/ngsi-ld/v1`."""
    return [
        Route("/temporal/entities", query_temporal, methods=["GET"], name="temporal_entities"),
        Route(
            "/temporal/entities", create_temporal, methods=["POST"], name="temporal_entity_create"
        ),
        Route(
            "/temporal/entityOperations/query",
            query_temporal_post,
            methods=["POST"],
            name="temporal_query",
        ),
        Route(
            "/temporal/entities/{entity_id}",
            retrieve_temporal,
            methods=["GET"],
            name="temporal_entity",
        ),
        Route(
            "/temporal/entities/{entity_id}",
            delete_temporal,
            methods=["DELETE"],
            name="temporal_entity_delete",
        ),
    ]


class TemporalExtension:
    """Temporal history as a broker extension (`ngsi.broker._app`).

    Options: `retention` / `retention_by_type` (timedelta; types expanded), `keep_deleted`;
    from the broker settings, when they have them: `history_retention_days` (float) and
    `history_retention_days_by_type` (expanded type → days).
    """

    name = "temporal"

    def __init__(self, settings: BrokerSettings, **options: Any) -> None:
        self.settings = settings
        self.options = options
        self.history: History | None = None
        self._store: Store | None = None

    def routes(self) -> Sequence[BaseRoute]:
        return temporal_routes()

    async def start(self, broker: Broker) -> None:
        settings = broker.settings
        options = dict(self.options)
        days = getattr(settings, "history_retention_days", None)
        if days and "retention" not in options:
            options["retention"] = timedelta(days=float(days))
        by_type = getattr(settings, "history_retention_days_by_type", None)
        if by_type and "retention_by_type" not in options:
            options["retention_by_type"] = {t: timedelta(days=float(d)) for t, d in by_type.items()}
        history = History(settings.data_dir, **options)
        await broker.run(history.start)
        broker.store.add_listener(history)
        broker.extras[_EXTRA_KEY] = history
        self.history = history
        self._store = broker.store

    async def stop(self) -> None:
        if self.history is None:
            return
        if self._store is not None:
            with contextlib.suppress(ValueError):
                self._store.remove_listener(self.history)
        history, self.history = self.history, None
        await anyio.to_thread.run_sync(history.stop)


def create_extension(settings: BrokerSettings, **options: Any) -> TemporalExtension:
    """The temporal extension for `create_app` (options go to `History`)."""
    return TemporalExtension(settings, **options)
