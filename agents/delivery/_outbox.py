"""The outbox: a durable queue of NGSI-LD entities between mapping and the broker.

The agent puts the entities of an uplink in the outbox before it acknowledges the uplink
(`put_many` returns only after the commit); a sender leases batches, writes them to a sink and
ends each lease as a transaction with three outcomes:

* `accept(ids)`: the sink confirmed them; they leave the outbox, and the entity's "last sent"
  `observedAt` moves forward (see `watermark`).
* `reject(rejections)`: the sink refused them for good; they move to the dead letters in the
  same SQLite transaction, never retried.
* `release(ids)`: not delivered this time (broker away, 5xx, 429); kept, their attempt count
  raised.

Anything neither accepted nor rejected is kept. Nothing leaves the outbox except by accept or
reject, so a crash at any point delivers each item at least once.

Ordering. Items are leased in the order they were put; the sender orders a batch by
`observedAt` and decides whether a reading is late (older than what was already sent for its
entity). Several leases may be open at once (a sender with several workers): an entity's items
are then all in one lease or wait, so its readings still reach the sink in order.

Coalescing: none. Several pending updates of one entity are never merged into one upsert. The
broker keeps a history entry for each upsert, so merging two readings of the same attribute
would drop the older reading from history, and the readings of one device nearly always carry
the same attributes (so merging only disjoint attributes would seldom apply, while making one
reading's rejection or lateness the fate of another). Each item is its own upsert; the NGSI-LD
sink sends the readings of one entity in separate requests, oldest first.

Backpressure: with `max_depth`, `put_many` raises `OutboxFull` instead of growing past it; the
agent then stops acknowledging, and the network server's MQTT session holds the uplinks.

Durability: see `agents.delivery._db` (WAL; `synchronous="normal"` survives a killed process,
`"full"` also a power loss).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import orjson

from agents.delivery._clock import from_us, now_us, to_us
from agents.delivery._db import Database, Synchronous
from agents.delivery._deadletters import (
    DeadLetterReason,
    DeadLetters,
    NewDeadLetter,
    insert_dead_letters,
)
from agents.delivery._dedup import FrameCounters, FrameVerdict
from agents.delivery._metrics import DeliveryCounters
from ngsi._sqlite import insert_rows

__all__ = [
    "Outbox",
    "OutboxFull",
    "OutboxItem",
    "QueuedItem",
    "Rejection",
    "Transaction",
]


class OutboxFull(Exception):
    """The outbox holds `max_depth` items already; do not acknowledge the uplink."""


class OutboxItem(NamedTuple):
    """One entity to deliver, with where it goes and where it came from.

    `entity` is a normalized NGSI-LD entity (`id` and `type` required), without `@context`:
    `context` is the @context URL to write it with (the client applies contexts per type;
    None means the client's default). An entity with an `@context` of its own is written with
    that one, and its `context` is dropped. `tenant` None means the sink's default tenant.
    `dev_eui` and `f_cnt` name the uplink it came from. `observed_at` orders the readings of one
    entity; when None it is taken from the entity (the latest `observedAt` of its attributes).
    A named tuple, like `QueuedItem`: every uplink makes two.
    """

    entity: Mapping[str, Any]
    tenant: str | None = None
    context: str | None = None
    dev_eui: str | None = None
    f_cnt: int | None = None
    observed_at: datetime | None = None


class QueuedItem(NamedTuple):
    """An item in the outbox as a lease hands it out. `body` is the entity as JSON bytes.

    A named tuple, not a frozen dataclass: a lease builds hundreds of them at a time, and a
    frozen dataclass's `__init__` costs seven times as much."""

    id: int
    entity_id: str
    entity_type: str
    tenant: str | None
    context: str | None
    body: bytes
    dev_eui: str | None
    f_cnt: int | None
    observed_us: int | None
    enqueued_us: int
    attempts: int

    @property
    def entity(self) -> dict[str, Any]:
        """The entity as a new dict (decoded from `body` at each call)."""
        value: dict[str, Any] = orjson.loads(self.body)
        return value

    @property
    def observed_at(self) -> datetime | None:
        return from_us(self.observed_us) if self.observed_us is not None else None

    @property
    def enqueued_at(self) -> datetime:
        return from_us(self.enqueued_us)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a sink refused an item for good; becomes a dead letter.

    `message` is for people (which entity, what the broker said); `detail` structured context
    (the ProblemDetails and status); `reason` the dead-letter code.
    """

    message: str
    reason: str = DeadLetterReason.BROKER_REJECTED
    detail: Mapping[str, Any] | None = None
    source: str = "sender"


_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT,
        context TEXT,
        entity_id TEXT NOT NULL,
        entity_type TEXT NOT NULL,
        body BLOB NOT NULL,
        dev_eui TEXT,
        f_cnt INTEGER,
        observed_us INTEGER,
        enqueued_us INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS sent_watermarks (
        tenant TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        observed_us INTEGER NOT NULL,
        PRIMARY KEY (tenant, entity_id)
    ) WITHOUT ROWID
    """,
)

_VERSION = 1
"""The outbox's layout (SQLite's `user_version`). 1: a row with a `context` URL has no
`@context` of its own in its body (`_row` moves such an entity to the rows without a URL)."""


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring rows written before `_VERSION` to it."""
    found = conn.execute(
        "SELECT id, body FROM outbox WHERE context IS NOT NULL AND instr(body, ?) > 0",
        (b'"@context"',),
    ).fetchall()
    own = [(row_id,) for row_id, body in found if "@context" in orjson.loads(body)]
    conn.executemany("UPDATE outbox SET context = NULL WHERE id = ?", own)
    conn.execute(f"PRAGMA user_version = {_VERSION}")


_INSERT = (
    "INSERT INTO outbox (tenant, context, entity_id, entity_type, body, dev_eui, f_cnt, "
    "observed_us, enqueued_us)"
)
_MAX_SKIPPED_RUNS = 64
"""Open leases' id runs that a lease's query excludes at most (beyond, Python skips them)."""

_SELECT = (
    "SELECT id, entity_id, entity_type, tenant, context, body, dev_eui, f_cnt, observed_us, "
    "enqueued_us, attempts FROM outbox"
)


class Outbox:
    """The durable outbox in one SQLite file (created if missing), shared with the frame
    counters (`frames`) and the dead letters (`dead_letters`) so that they commit together.

    `synchronous` is the durability level (see the module). `max_depth` bounds the number of
    items (None: unbounded). `window` and `reset_below` configure `frames`. Thread-safe: the
    agent's threads put while the sender leases.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "normal",
        max_depth: int | None = None,
        window: int = 64,
        reset_below: int = 16,
        counters: DeliveryCounters | None = None,
    ) -> None:
        if max_depth is not None and max_depth < 1:
            raise ValueError(f"max_depth must be positive or None, got {max_depth}")
        self.counters = counters if counters is not None else DeliveryCounters()
        self.db = Database(path, synchronous=synchronous)
        self.max_depth = max_depth
        try:
            with self.db.write() as conn:
                for statement in _SCHEMA:
                    conn.execute(statement)
                if int(conn.execute("PRAGMA user_version").fetchone()[0]) < _VERSION:
                    _upgrade(conn)
                self._depth = int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
                self._watermarks: dict[tuple[str, str], int] = {
                    (tenant, entity_id): observed
                    for tenant, entity_id, observed in conn.execute(
                        "SELECT tenant, entity_id, observed_us FROM sent_watermarks"
                    )
                }
            self.dead_letters = DeadLetters(self.db, counters=self.counters)
            self.frames = FrameCounters(
                self.db, window=window, reset_below=reset_below, counters=self.counters
            )
        except BaseException:
            self.db.close()
            raise
        self._leased = 0
        self._held: dict[tuple[str, str], int] = {}
        """Open leases' items by entity (tenant, id): what `lease` leaves alone."""
        self._open: dict[Transaction, list[tuple[int, int]]] = {}
        """Open leases' item ids as runs."""
        self._changed = threading.Condition(threading.Lock())
        self._generation = 0

    @property
    def path(self) -> Path:
        return self.db.path

    def close(self) -> None:
        """Close the database; leases not ended are simply kept. Idempotent."""
        self.db.close()
        self.notify()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # Putting -----------------------------------------------------------------------------------

    def put_many(
        self,
        items: Iterable[OutboxItem],
        *,
        frames: Sequence[FrameVerdict] = (),
        dead_letters: Sequence[NewDeadLetter] = (),
    ) -> list[int]:
        """Put items, mark uplinks seen (`frames`) and add dead letters, in one transaction.

        Durable when it returns: acknowledge the uplinks only then. Returns the new items' ids.
        Raises ValueError (nothing written) when an entity has no string `id` or `type` or is
        not JSON-serializable, and `OutboxFull` when `max_depth` would be exceeded; in both
        cases, and if the commit fails, the frame verdicts are rolled back.
        """
        try:
            rows = [_row(item, index) for index, item in enumerate(items)]
            with self.db.write() as conn:
                if self.max_depth is not None and self._depth + len(rows) > self.max_depth:
                    raise OutboxFull(
                        f"the outbox {self.path} holds {self._depth} items; {len(rows)} more "
                        f"would exceed max_depth={self.max_depth}"
                    )
                stamp = now_us()
                last = 0
                if rows:
                    insert_rows(conn, _INSERT, [(*row, stamp) for row in rows])
                    # AUTOINCREMENT ids of one write transaction are consecutive.
                    last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
                if frames:
                    self.frames.persist(conn, frames)
                if dead_letters:
                    insert_dead_letters(conn, dead_letters, default_us=stamp)
        except BaseException:
            if frames:
                self.frames.rollback(frames)
            raise
        with self.db.lock:
            self._depth += len(rows)
            self.counters.enqueued += len(rows)
            self.counters.dead_letters += len(dead_letters)
        if not rows:
            return []
        self.notify()
        return list(range(last - len(rows) + 1, last + 1))

    def put(self, item: OutboxItem, *, frame: FrameVerdict | None = None) -> int:
        """Put one item (see `put_many`); returns its id."""
        return self.put_many([item], frames=(frame,) if frame is not None else ())[0]

    # Leasing -----------------------------------------------------------------------------------

    def lease(self, max_items: int = 500, *, max_bytes: int = 4 << 20) -> Transaction:
        """The oldest items not leased yet, as a `Transaction`; it may be empty.

        At most `max_items` items and `max_bytes` of entity JSON (at least one item, however
        large). Items of an entity that another open lease holds are left for a later lease,
        so that leases may be delivered side by side without reordering any entity's readings.
        End the transaction with `commit()` (or a `with` block).
        """
        if max_items < 1:
            raise ValueError(f"max_items must be positive, got {max_items}")
        with self.db.read() as conn:
            held = self._held
            # SQLite passes over the rows open leases hold without handing them to Python.
            skip = [run for runs in self._open.values() for run in runs]
            if len(skip) > _MAX_SKIPPED_RUNS:
                skip = []
            where = " AND ".join(["id NOT BETWEEN ? AND ?"] * len(skip))
            cursor = conn.execute(
                _SELECT + (" WHERE " + where if where else "") + " ORDER BY id",
                [bound for run in skip for bound in run],
            )
            try:
                items = _take(cursor, held, max_items, max_bytes)
            finally:
                cursor.close()
            self._leased += len(items)
            for item in items:
                key = (item.tenant or "", item.entity_id)
                held[key] = held.get(key, 0) + 1
            tx = Transaction(self, items)
            if items:
                self._open[tx] = _runs([item.id for item in items])
        return tx

    def _end(self, tx: Transaction) -> None:
        accepted = [item for item in tx.items if item.id in tx._accepted]
        rejected = [item for item in tx.items if item.id in tx._rejected]
        released = [item for item in tx.items if item.id in tx._released]
        try:
            with self.db.write() as conn:
                stamp = now_us()
                gone = sorted(item.id for item in (*accepted, *rejected))
                if gone:
                    conn.executemany("DELETE FROM outbox WHERE id BETWEEN ? AND ?", _runs(gone))
                if rejected:
                    insert_dead_letters(
                        conn,
                        [_dead_letter(item, tx._rejected[item.id]) for item in rejected],
                        default_us=stamp,
                    )
                if released:
                    conn.executemany(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                        [(tx._released[item.id], item.id) for item in released],
                    )
                moved = self._watermark_moves(accepted)
                if moved:
                    insert_rows(
                        conn,
                        "INSERT INTO sent_watermarks (tenant, entity_id, observed_us)",
                        [(tenant, entity_id, us) for (tenant, entity_id), us in moved.items()],
                        tail="ON CONFLICT (tenant, entity_id) DO UPDATE SET "
                        "observed_us = max(observed_us, excluded.observed_us)",
                    )
        except BaseException:
            # Nothing changed: the items stay, free to be leased again.
            with self.db.lock:
                self._unlease(tx)
            raise
        with self.db.lock:
            self._unlease(tx)
            self._depth -= len(gone)
            self._watermarks.update(moved)
            self.counters.accepted += len(accepted)
            self.counters.rejected += len(rejected)
            self.counters.retried += len(released)
            self.counters.dead_letters += len(rejected)
        if self._depth > self._leased:
            # items this lease held back from other leases may be taken now
            self.notify()

    def _unlease(self, tx: Transaction) -> None:
        held = self._held
        self._open.pop(tx, None)
        self._leased -= len(tx.items)
        for item in tx.items:
            key = (item.tenant or "", item.entity_id)
            left = held[key] - 1
            if left:
                held[key] = left
            else:
                del held[key]

    def _watermark_moves(self, accepted: Sequence[QueuedItem]) -> dict[tuple[str, str], int]:
        moved: dict[tuple[str, str], int] = {}
        for item in accepted:
            if item.observed_us is None:
                continue
            key = (item.tenant or "", item.entity_id)
            best = moved.get(key, self._watermarks.get(key))
            if best is None or item.observed_us > best:
                moved[key] = item.observed_us
        return moved

    # State -------------------------------------------------------------------------------------

    def watermark(self, entity_id: str, *, tenant: str | None = None) -> int | None:
        """The latest `observedAt` (µs since the epoch) accepted for this entity, or None.

        A reading older than this is late: it must not overwrite the entity's current state.
        """
        return self._watermarks.get((tenant or "", entity_id))

    @property
    def depth(self) -> int:
        """Items in the outbox (leased ones included)."""
        return self._depth

    @property
    def leased(self) -> int:
        """Items leased and not yet ended."""
        with self.db.lock:
            return self._leased

    @property
    def waiting(self) -> int:
        """Items not leased (some may belong to entities an open lease holds). Read without
        the database's lock, so that a `wait_until` condition may use it while a write runs."""
        return self._depth - self._leased

    def oldest_age(self, now: datetime | None = None) -> timedelta | None:
        """How long the oldest item has waited, or None when the outbox is empty."""
        with self.db.read() as conn:
            row = conn.execute("SELECT enqueued_us FROM outbox ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        current = to_us(now) if now is not None else now_us()
        return timedelta(microseconds=max(current - int(row[0]), 0))

    def items(self, *, limit: int | None = None) -> list[QueuedItem]:
        """The items in the outbox, oldest first (for inspection; leased ones included)."""
        sql = _SELECT + " ORDER BY id" + (" LIMIT ?" if limit is not None else "")
        with self.db.read() as conn:
            rows = conn.execute(sql, (limit,) if limit is not None else ()).fetchall()
        return [_queued(row) for row in rows]

    # Waiting -----------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Grows whenever items are put (or `notify` is called); pass it to `wait`."""
        return self._generation

    def wait(self, generation: int, timeout: float) -> bool:
        """Block until `generation` changed or `timeout` seconds passed; True if it changed."""
        return self.wait_until(lambda: self._generation != generation, timeout)

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Block until `ready()` is true (checked now, at each put and `notify`) or `timeout`
        seconds passed; returns `ready()`."""
        with self._changed:
            return self._changed.wait_for(ready, timeout)

    def notify(self) -> None:
        """Wake everyone in `wait`."""
        with self._changed:
            self._generation += 1
            self._changed.notify_all()


class Transaction:
    """A leased batch and what became of each item; end it with `commit()`.

    Decide each item at most once: `accept`, `reject` or `release`. `commit()` applies all
    decisions in one SQLite transaction and frees the lease; items left undecided are kept as
    they were (no attempt counted). Used as a context manager it commits on leaving, also when
    an exception leaves the block (the decisions made so far stand).
    """

    def __init__(self, outbox: Outbox, items: list[QueuedItem]) -> None:
        self.outbox = outbox
        self.items = items
        self._ids = {item.id for item in items}
        self._accepted: set[int] = set()
        self._rejected: dict[int, Rejection] = {}
        self._released: dict[int, str | None] = {}
        self._done = False

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def undecided(self) -> list[QueuedItem]:
        """Items neither accepted, rejected nor released yet."""
        decided = self._accepted | self._rejected.keys() | self._released.keys()
        return [item for item in self.items if item.id not in decided]

    def accept(self, ids: Iterable[int]) -> None:
        """The sink confirmed these items: delete them at commit."""
        for item_id in ids:
            self._decide(item_id)
            self._accepted.add(item_id)

    def reject(self, rejections: Mapping[int, Rejection]) -> None:
        """The sink refused these items for good: dead letters at commit."""
        for item_id, rejection in rejections.items():
            self._decide(item_id)
            self._rejected[item_id] = rejection

    def release(self, ids: Iterable[int], *, error: str | None = None) -> None:
        """Not delivered this time: keep them, one attempt more, with the error noted."""
        for item_id in ids:
            self._decide(item_id)
            self._released[item_id] = error

    def commit(self) -> None:
        """Apply the decisions and end the lease (once; later calls do nothing)."""
        if self._done:
            return
        self._done = True
        self.outbox._end(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.commit()

    def _decide(self, item_id: int) -> None:
        if self._done:
            raise RuntimeError("this transaction is committed already")
        if item_id not in self._ids:
            raise ValueError(f"outbox item {item_id} is not part of this transaction")
        if item_id in self._accepted or item_id in self._rejected or item_id in self._released:
            raise ValueError(f"outbox item {item_id} was decided already in this transaction")


def _row(item: OutboxItem, index: int) -> tuple[Any, ...]:
    entity: Any = item.entity
    try:
        entity_id = entity.get("id")
        entity_type = entity.get("type")
    except AttributeError:
        raise ValueError(
            f"outbox item #{index}: the entity must be a mapping, got {type(entity).__name__}"
        ) from None
    if not isinstance(entity_id, str) or not entity_id:
        raise ValueError(f"outbox item #{index}: the entity has no 'id' string")
    if not isinstance(entity_type, str) or not entity_type:
        raise ValueError(f"outbox item #{index}: entity {entity_id!r} has no 'type' string")
    try:
        body = orjson.dumps(entity)
    except TypeError as exc:
        raise ValueError(
            f"outbox item #{index}: entity {entity_id!r} is not JSON-serializable: {exc}"
        ) from None
    observed = item.observed_at
    observed_us = to_us(observed) if observed is not None else _latest_observed_us(entity)
    context = item.context
    if context is not None and "@context" in entity:
        # its own @context wins over the URL (the client's rule), and the sender sends the
        # rows of a URL without looking for one (see _VERSION)
        context = None
    return (
        item.tenant,
        context,
        entity_id,
        entity_type,
        body,
        item.dev_eui,
        item.f_cnt,
        observed_us,
    )


def _latest_observed_us(entity: Mapping[str, Any]) -> int | None:
    latest: int | None = None
    for value in entity.values():
        attributes = value if isinstance(value, list) else (value,)
        for attribute in attributes:
            if not isinstance(attribute, Mapping):
                continue
            text = attribute.get("observedAt")
            if not isinstance(text, str):
                continue
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                continue
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            us = to_us(parsed)
            if latest is None or us > latest:
                latest = us
    return latest


def _take(
    cursor: sqlite3.Cursor, held: Mapping[tuple[str, str], int], max_items: int, max_bytes: int
) -> list[QueuedItem]:
    """The cursor's rows as items, in order, leaving out those of held entities: at most
    `max_items` and `max_bytes` of entity JSON (at least one item, however large)."""
    items: list[QueuedItem] = []
    size = 0
    make = QueuedItem._make
    while rows := cursor.fetchmany(max_items):
        for row in rows:
            if held and (row[3] or "", row[1]) in held:
                continue
            length = len(row[5])
            if items and size + length > max_bytes:
                return items
            items.append(make(row))
            size += length
            if len(items) >= max_items:
                return items
    return items


def _runs(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted ids as (first, last) runs of consecutive ids: a batch is usually one run."""
    runs: list[tuple[int, int]] = []
    first = last = ids[0]
    for item_id in ids[1:]:
        if item_id != last + 1:
            runs.append((first, last))
            first = item_id
        last = item_id
    runs.append((first, last))
    return runs


def _queued(row: Sequence[Any]) -> QueuedItem:
    # The columns of _SELECT are in the order of QueuedItem's fields.
    return QueuedItem._make(row)


def _dead_letter(item: QueuedItem, rejection: Rejection) -> NewDeadLetter:
    detail: dict[str, Any] = dict(rejection.detail or {})
    detail.setdefault("outbox_id", item.id)
    detail.setdefault("attempts", item.attempts + 1)
    if item.context is not None:
        detail.setdefault("context", item.context)
    if item.f_cnt is not None:
        detail.setdefault("f_cnt", item.f_cnt)
    if item.observed_us is not None:
        detail.setdefault("observedAt", from_us(item.observed_us).isoformat())
    return NewDeadLetter(
        reason=rejection.reason,
        message=rejection.message,
        payload=orjson.Fragment(item.body),
        dev_eui=item.dev_eui,
        source=rejection.source,
        entity_id=item.entity_id,
        tenant=item.tenant,
        detail=detail,
    )
