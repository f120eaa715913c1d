"""The dead-letter store: inputs the agent could not deliver, kept with the reason, for people.

Anything the agent gives up on goes here instead of being dropped: an uplink that is not JSON,
a payload the codec refuses, an entity that fails validation, an entity the broker rejects for
good. Each entry keeps the raw input (uplink bytes, the JSON it came as, or the entity), where it
came from (`source`), the device and entity when known, a machine-readable reason code and a
human message, so that an admin can read it, fix the cause and replay it.

    letters = DeadLetters(outbox.db)          # or DeadLetters("/var/lib/drehscheibe/outbox.db")
    letters.add(reason="codec-error", message="CayenneLPP: channel 3 type 0x67 needs 2 bytes",
                payload=raw, dev_eui="0004A30B001C0530", source="tts")
    for entry in letters.list(reason="codec-error", since=yesterday): ...
    entries = letters.take_for_replay(dev_eui="0004A30B001C0530")   # marked as replayed
"""

from __future__ import annotations

import builtins
import enum
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from agents.delivery._clock import from_us, now_us, to_us
from agents.delivery._db import Database, Synchronous
from agents.delivery._metrics import DeliveryCounters

__all__ = [
    "DeadLetter",
    "DeadLetterNotFound",
    "DeadLetterReason",
    "DeadLetters",
    "NewDeadLetter",
]


class DeadLetterReason(enum.StrEnum):
    """The reason codes the agent uses; any other lowercase code (`a-z`, `0-9`, `-`) is allowed."""

    MALFORMED_UPLINK = "malformed-uplink"
    """The message is not a readable uplink (bad JSON, bad base64, missing fields)."""
    UNKNOWN_DEVICE = "unknown-device"
    """No registered device has this DevEUI and the agent is set to drop unknown devices."""
    CODEC_ERROR = "codec-error"
    """The codec refused the payload (truncated, unknown type, wrong length)."""
    CODEC_TIMEOUT = "codec-timeout"
    """The codec ran out of time, memory or stack, or took its engine process down with it."""
    MAPPING_ERROR = "mapping-error"
    """The profile could not map the measurements to the entity (missing value, bad unit)."""
    VALIDATION_ERROR = "validation-error"
    """The entity does not satisfy its Smart Data Model."""
    BROKER_REJECTED = "broker-rejected"
    """The broker refused the entity for good (a 4xx for this entity)."""


_REASON_RE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


class DeadLetterNotFound(KeyError):
    """No dead letter has this id."""

    def __init__(self, letter_id: int) -> None:
        super().__init__(letter_id)
        self.letter_id = letter_id

    def __str__(self) -> str:
        return f"no dead letter with id {self.letter_id}"


class DeadLetter(BaseModel):
    """One stored dead letter.

    The raw input is in `payload` when it was given as bytes, else in `payload_json` (a JSON
    value: an uplink already parsed, an entity). `detail` holds structured context, such as the
    broker's ProblemDetails. `replayed_at` and `replay_count` say whether and how often it was
    taken for replay.
    """

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    id: int
    created_at: datetime
    reason: str
    message: str
    source: str | None = None
    dev_eui: str | None = None
    entity_id: str | None = None
    tenant: str | None = None
    payload: bytes | None = None
    payload_json: Any = None
    detail: dict[str, Any] | None = None
    replayed_at: datetime | None = None
    replay_count: int = 0

    @property
    def raw(self) -> bytes | None:
        """The input as bytes: `payload`, or `payload_json` serialized; None if none was kept."""
        if self.payload is not None:
            return self.payload
        if self.payload_json is None:
            return None
        return orjson.dumps(self.payload_json)


@dataclass(frozen=True, slots=True)
class NewDeadLetter:
    """A dead letter to add; the same fields as `DeadLetters.add`."""

    reason: str
    message: str
    payload: Any = None
    dev_eui: str | None = None
    source: str | None = None
    entity_id: str | None = None
    tenant: str | None = None
    detail: Mapping[str, Any] | None = None
    at: datetime | None = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_us INTEGER NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    source TEXT,
    dev_eui TEXT,
    entity_id TEXT,
    tenant TEXT,
    payload BLOB,
    payload_is_json INTEGER NOT NULL DEFAULT 0,
    detail TEXT,
    replayed_us INTEGER,
    replay_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS dead_letters_reason ON dead_letters (reason, created_us);
CREATE INDEX IF NOT EXISTS dead_letters_device ON dead_letters (dev_eui, created_us);
CREATE INDEX IF NOT EXISTS dead_letters_created ON dead_letters (created_us);
"""

_COLUMNS = (
    "id, created_us, reason, message, source, dev_eui, entity_id, tenant, payload, "
    "payload_is_json, detail, replayed_us, replay_count"
)

_INSERT = (
    "INSERT INTO dead_letters (created_us, reason, message, source, dev_eui, entity_id, tenant, "
    "payload, payload_is_json, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the dead-letter table in a delivery database (idempotent)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def dead_letter_row(letter: NewDeadLetter, *, default_us: int) -> tuple[Any, ...]:
    """The insert parameters of one new dead letter; raises ValueError for a bad reason code."""
    reason = str(letter.reason)
    if not _REASON_RE.match(reason):
        raise ValueError(
            f"dead-letter reason {reason!r} must be a lowercase code such as 'codec-error' "
            "(letters, digits and '-', at most 64)"
        )
    payload: bytes | None
    is_json = 0
    if letter.payload is None:
        payload = None
    elif isinstance(letter.payload, bytes | bytearray | memoryview):
        payload = bytes(letter.payload)
    else:
        payload = orjson.dumps(letter.payload, default=_json_default)
        is_json = 1
    detail = (
        orjson.dumps(dict(letter.detail), default=_json_default).decode()
        if letter.detail is not None
        else None
    )
    created = to_us(letter.at) if letter.at is not None else default_us
    return (
        created,
        reason,
        letter.message,
        letter.source,
        letter.dev_eui,
        letter.entity_id,
        letter.tenant,
        payload,
        is_json,
        detail,
    )


def insert_dead_letters(
    conn: sqlite3.Connection, letters: Sequence[NewDeadLetter], *, default_us: int
) -> None:
    """Insert inside the caller's transaction (the outbox rejects and dead-letters atomically)."""
    conn.executemany(
        _INSERT, [dead_letter_row(letter, default_us=default_us) for letter in letters]
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    raise TypeError(f"cannot store {type(value).__name__} in a dead letter")


class DeadLetters:
    """The dead-letter store in a delivery database.

    `target` is a path (a database of its own, closed by `close()`) or an open `Database`
    shared with the outbox (then rejections and dead letters commit together, and closing is
    the outbox's business). Thread-safe.
    """

    def __init__(
        self,
        target: str | Path | Database,
        *,
        counters: DeliveryCounters | None = None,
        synchronous: Synchronous = "normal",
    ) -> None:
        if isinstance(target, Database):
            self.db = target
            self._owns_db = False
        else:
            self.db = Database(target, synchronous=synchronous)
            self._owns_db = True
        self.counters = counters if counters is not None else DeliveryCounters()
        with self.db.write() as conn:
            create_schema(conn)

    def close(self) -> None:
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> DeadLetters:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Adding ------------------------------------------------------------------------------------

    def add(
        self,
        *,
        reason: str,
        message: str,
        payload: Any = None,
        dev_eui: str | None = None,
        source: str | None = None,
        entity_id: str | None = None,
        tenant: str | None = None,
        detail: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> int:
        """Store one dead letter and return its id; durable when this returns.

        `reason` is a code (`DeadLetterReason` or any lowercase code), `message` says what went
        wrong in words an admin can act on. `payload` is the raw input: bytes are kept as they
        are, anything else as JSON (dicts, lists, pydantic models). `detail` is structured
        context (a ProblemDetails, codec warnings). `at` defaults to now.
        """
        letter = NewDeadLetter(
            reason=reason,
            message=message,
            payload=payload,
            dev_eui=dev_eui,
            source=source,
            entity_id=entity_id,
            tenant=tenant,
            detail=detail,
            at=at,
        )
        return self.add_many([letter])[0]

    def add_many(self, letters: Iterable[NewDeadLetter]) -> list[int]:
        """Store several dead letters in one transaction; their ids in order."""
        rows = [dead_letter_row(letter, default_us=now_us()) for letter in letters]
        ids: list[int] = []
        with self.db.write() as conn:
            for row in rows:
                cursor = conn.execute(_INSERT, row)
                ids.append(int(cursor.lastrowid or 0))
            self.counters.dead_letters += len(rows)
        return ids

    # Reading -----------------------------------------------------------------------------------

    def show(self, letter_id: int) -> DeadLetter:
        """The dead letter with this id; raises `DeadLetterNotFound`."""
        with self.db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM dead_letters WHERE id = ?", (letter_id,)
            ).fetchone()
        if row is None:
            raise DeadLetterNotFound(letter_id)
        return _letter(row)

    def list(
        self,
        *,
        reason: str | Sequence[str] | None = None,
        dev_eui: str | None = None,
        source: str | None = None,
        entity_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        replayed: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[DeadLetter]:
        """Dead letters matching every given filter, oldest first.

        `reason` is one code or several; `since` is inclusive, `until` exclusive; `replayed`
        True or False selects entries taken (or not yet taken) for replay.
        """
        where, params = _where(
            reason=reason,
            dev_eui=dev_eui,
            source=source,
            entity_id=entity_id,
            since=since,
            until=until,
            replayed=replayed,
        )
        sql = f"SELECT {_COLUMNS} FROM dead_letters{where} ORDER BY id"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        elif offset:
            sql += " LIMIT -1 OFFSET ?"
            params.append(offset)
        with self.db.read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_letter(row) for row in rows]

    def count(
        self,
        *,
        reason: str | Sequence[str] | None = None,
        dev_eui: str | None = None,
        source: str | None = None,
        entity_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        replayed: bool | None = None,
    ) -> int:
        """How many dead letters match the filters (as in `list`)."""
        where, params = _where(
            reason=reason,
            dev_eui=dev_eui,
            source=source,
            entity_id=entity_id,
            since=since,
            until=until,
            replayed=replayed,
        )
        with self.db.read() as conn:
            found = conn.execute(f"SELECT COUNT(*) FROM dead_letters{where}", params).fetchone()
        return int(found[0])

    def counts_by_reason(self) -> dict[str, int]:
        """How many dead letters there are per reason code."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason ORDER BY reason"
            ).fetchall()
        return {str(reason): int(n) for reason, n in rows}

    # Changing ----------------------------------------------------------------------------------

    def purge(
        self,
        *,
        ids: Sequence[int] | None = None,
        reason: str | Sequence[str] | None = None,
        dev_eui: str | None = None,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        replayed: bool | None = None,
        everything: bool = False,
    ) -> int:
        """Delete the dead letters matching every given filter; returns how many went.

        Without any filter it refuses (ValueError) unless `everything=True`, so that a filter
        forgotten by a script does not empty the store.
        """
        where, params = _where(
            ids=ids,
            reason=reason,
            dev_eui=dev_eui,
            source=source,
            since=since,
            until=until,
            replayed=replayed,
        )
        if not where and not everything:
            raise ValueError(
                "purge needs a filter (ids, reason, dev_eui, source, since, until, replayed) "
                "or everything=True"
            )
        with self.db.write() as conn:
            cursor = conn.execute(f"DELETE FROM dead_letters{where}", params)
        return int(cursor.rowcount)

    def prune(self, now: datetime | None = None, *, retention: timedelta) -> int:
        """Delete the dead letters created more than `retention` before `now` (retention of
        the store, e.g. once a day); returns how many went."""
        if retention <= timedelta(0):
            raise ValueError(f"retention must be positive, got {retention}")
        cutoff = (to_us(now) if now is not None else now_us()) - (
            retention // timedelta(microseconds=1)
        )
        with self.db.write() as conn:
            cursor = conn.execute("DELETE FROM dead_letters WHERE created_us < ?", (cutoff,))
        return int(cursor.rowcount)

    def erase(self, *, dev_eui: str | Sequence[str] = (), entity_ids: Sequence[str] = ()) -> int:
        """Delete every dead letter of these devices (by DevEUI) or about these entities (by
        entity id), whatever its age or reason; returns how many went. For erasure requests."""
        devices = [dev_eui] if isinstance(dev_eui, str) else list(dev_eui)
        deleted = 0
        with self.db.write() as conn:
            for column, values in (("dev_eui", devices), ("entity_id", list(entity_ids))):
                for start in range(0, len(values), 500):
                    part = values[start : start + 500]
                    marks = ",".join("?" * len(part))
                    cursor = conn.execute(
                        f"DELETE FROM dead_letters WHERE {column} IN ({marks})", part
                    )
                    deleted += int(cursor.rowcount)
        return deleted

    def take_for_replay(
        self,
        *,
        ids: Sequence[int] | None = None,
        reason: str | Sequence[str] | None = None,
        dev_eui: str | None = None,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        include_replayed: bool = False,
        limit: int | None = None,
    ) -> builtins.list[DeadLetter]:
        """The matching entries, marked as replayed in the same transaction, oldest first.

        Entries already taken are left out unless `include_replayed`. The entries stay in the
        store (marked, with `replay_count` raised): purge them once the replay worked. If the
        replay fails again, the pipeline adds a new dead letter with the new reason.
        """
        where, params = _where(
            ids=ids,
            reason=reason,
            dev_eui=dev_eui,
            source=source,
            since=since,
            until=until,
            replayed=None if include_replayed else False,
        )
        sql = f"SELECT id FROM dead_letters{where} ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        stamp = now_us()
        with self.db.write() as conn:
            taken = [int(row[0]) for row in conn.execute(sql, params).fetchall()]
            conn.executemany(
                "UPDATE dead_letters SET replayed_us = ?, replay_count = replay_count + 1 "
                "WHERE id = ?",
                [(stamp, letter_id) for letter_id in taken],
            )
            rows = _select_ids(conn, taken)
        return [_letter(row) for row in rows]


def _select_ids(conn: sqlite3.Connection, ids: Sequence[int]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        marks = ",".join("?" * len(part))
        rows.extend(
            conn.execute(
                f"SELECT {_COLUMNS} FROM dead_letters WHERE id IN ({marks}) ORDER BY id", part
            ).fetchall()
        )
    return rows


def _where(
    *,
    ids: Sequence[int] | None = None,
    reason: str | Sequence[str] | None = None,
    dev_eui: str | None = None,
    source: str | None = None,
    entity_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    replayed: bool | None = None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if ids is not None:
        clauses.append(f"id IN ({','.join('?' * len(ids))})" if ids else "0")
        params.extend(int(letter_id) for letter_id in ids)
    if reason is not None:
        reasons = [reason] if isinstance(reason, str) else list(reason)
        clauses.append(f"reason IN ({','.join('?' * len(reasons))})" if reasons else "0")
        params.extend(str(code) for code in reasons)
    for column, value in (("dev_eui", dev_eui), ("source", source), ("entity_id", entity_id)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        clauses.append("created_us >= ?")
        params.append(to_us(since))
    if until is not None:
        clauses.append("created_us < ?")
        params.append(to_us(until))
    if replayed is True:
        clauses.append("replayed_us IS NOT NULL")
    elif replayed is False:
        clauses.append("replayed_us IS NULL")
    if not clauses:
        return "", params
    return " WHERE " + " AND ".join(clauses), params


def _letter(row: Sequence[Any]) -> DeadLetter:
    (
        letter_id,
        created_us,
        reason,
        message,
        source,
        dev_eui,
        entity_id,
        tenant,
        payload,
        payload_is_json,
        detail,
        replayed_us,
        replay_count,
    ) = row
    return DeadLetter(
        id=letter_id,
        created_at=from_us(created_us),
        reason=reason,
        message=message,
        source=source,
        dev_eui=dev_eui,
        entity_id=entity_id,
        tenant=tenant,
        payload=None if payload is None or payload_is_json else bytes(payload),
        payload_json=orjson.loads(payload) if payload is not None and payload_is_json else None,
        detail=orjson.loads(detail) if detail is not None else None,
        replayed_at=from_us(replayed_us) if replayed_us is not None else None,
        replay_count=replay_count,
    )
