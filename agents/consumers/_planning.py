"""The planning reference consumer: an append-only archive of every change, queryable by time
and area.

`PlanningArchive` is a SQLite file (WAL) with one row per received entity change: entity id and
type, `observedAt` (UTC, also as microseconds for range queries), when it was notified and
received, the subscription, the tenant, the bounding box of its location, and the entity as
received (with the previous values of a `showChanges` subscription). Rows are only ever added:
triggers refuse UPDATE and DELETE, so an analysis can trust that nothing was rewritten.

`query(since=, until=, bbox=, types=, entity_id=, limit=)` selects by observation time
(`since` ≤ observedAt < `until`) and area (`bbox` = min lon, min lat, max lon, max lat: the
location intersects the box; entities without a location are left out when an area is asked
for), oldest first. The consumer's HTTP receiver serves the same as
`GET /changes?from=&to=&bbox=&type=&id=&limit=`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from shapely.geometry import box, shape
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agents.consumers._change import EntityChange, timestamp
from agents.consumers._consumer import Consumer
from agents.consumers._sinks import Sink
from agents.delivery._clock import from_us, to_us
from ngsi import parse_datetime

__all__ = ["PlanningArchive", "planning_consumer"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        entity_id TEXT NOT NULL,
        entity_type TEXT NOT NULL,
        observed_us INTEGER NOT NULL,
        notified_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        subscription_id TEXT NOT NULL,
        notification_id TEXT NOT NULL,
        tenant TEXT,
        min_lon REAL, min_lat REAL, max_lon REAL, max_lat REAL,
        entity BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS changes_time ON changes(observed_us)",
    "CREATE INDEX IF NOT EXISTS changes_entity ON changes(entity_id, observed_us)",
    """CREATE TRIGGER IF NOT EXISTS changes_no_update BEFORE UPDATE ON changes
       BEGIN SELECT RAISE(ABORT, 'the planning archive is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS changes_no_delete BEFORE DELETE ON changes
       BEGIN SELECT RAISE(ABORT, 'the planning archive is append-only'); END""",
)


def _bbox(geometry: dict[str, Any] | None) -> tuple[float, float, float, float] | None:
    if geometry is None:
        return None
    try:
        bounds = shape(geometry).bounds
    except (ValueError, TypeError, AttributeError, KeyError):
        return None
    if not bounds or any(b != b for b in bounds):
        return None
    return (float(bounds[0]), float(bounds[1]), float(bounds[2]), float(bounds[3]))


class PlanningArchive:
    """The archive (see the module documentation); a sink, and readable from any thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"archive:{self.path.name}"
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        if self._conn is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            conn.execute(statement)
        self._conn = conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.open()
        assert self._conn is not None
        return self._conn

    def write(self, changes: Sequence[EntityChange]) -> None:
        rows = []
        for change in changes:
            bounds = _bbox(change.location)
            rows.append(
                (
                    change.entity_id,
                    change.entity_type,
                    to_us(change.observed_at),
                    timestamp(change.notified_at),
                    timestamp(change.received_at),
                    change.subscription_id,
                    change.notification_id,
                    change.tenant,
                    *(bounds or (None, None, None, None)),
                    orjson.dumps(dict(change.entity)),
                )
            )
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT INTO changes (entity_id, entity_type, observed_us, notified_at, "
                    "received_at, subscription_id, notification_id, tenant, min_lon, min_lat, "
                    "max_lon, max_lat, entity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def count(self) -> int:
        with self._lock:
            return int(self._connection().execute("SELECT COUNT(*) FROM changes").fetchone()[0])

    def query(
        self,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        bbox: Sequence[float] | None = None,
        types: Sequence[str] | None = None,
        entity_id: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Archived changes, oldest observation first (see the module documentation)."""
        clauses: list[str] = []
        params: list[Any] = []
        if since is not None:
            clauses.append("observed_us >= ?")
            params.append(to_us(parse_datetime(since, what="since")))
        if until is not None:
            clauses.append("observed_us < ?")
            params.append(to_us(parse_datetime(until, what="until")))
        area = None
        if bbox is not None:
            if len(bbox) != 4:
                raise ValueError("bbox is min longitude, min latitude, max longitude, max latitude")
            min_lon, min_lat, max_lon, max_lat = (float(v) for v in bbox)
            if min_lon > max_lon or min_lat > max_lat:
                raise ValueError(f"bbox {list(bbox)}: the minimum is above the maximum")
            area = box(min_lon, min_lat, max_lon, max_lat)
            clauses.append("max_lon >= ? AND min_lon <= ? AND max_lat >= ? AND min_lat <= ?")
            params.extend([min_lon, max_lon, min_lat, max_lat])
        if types:
            clauses.append(f"entity_type IN ({','.join('?' for _ in types)})")
            params.extend(types)
        if entity_id is not None:
            clauses.append("entity_id = ?")
            params.append(entity_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = (
            "SELECT seq, entity_id, entity_type, observed_us, notified_at, received_at, "
            f"subscription_id, notification_id, tenant, entity FROM changes {where} "
            "ORDER BY observed_us, seq LIMIT ?"
        )
        with self._lock:
            rows = self._connection().execute(sql, [*params, max(1, limit)]).fetchall()
        out: list[dict[str, Any]] = []
        for seq, eid, etype, observed, notified, received, sid, nid, tenant, raw in rows:
            entity = orjson.loads(raw)
            if area is not None:
                geometry = EntityChange(
                    subscription_id=sid,
                    notification_id=nid,
                    notified_at=from_us(observed),
                    received_at=from_us(observed),
                    tenant=tenant,
                    entity=entity,
                ).location
                if geometry is None or not area.intersects(shape(geometry)):
                    continue
            out.append(
                {
                    "seq": seq,
                    "entityId": eid,
                    "entityType": etype,
                    "observedAt": timestamp(from_us(observed)),
                    "notifiedAt": notified,
                    "receivedAt": received,
                    "subscriptionId": sid,
                    "notificationId": nid,
                    "tenant": tenant,
                    "entity": entity,
                }
            )
        return out

    def routes(self) -> list[Route]:
        async def changes(request: Request) -> Response:
            params = request.query_params
            try:
                bbox = [float(v) for v in params["bbox"].split(",")] if "bbox" in params else None
                limit = int(params.get("limit", "1000"))
                found = self.query(
                    since=params.get("from"),
                    until=params.get("to"),
                    bbox=bbox,
                    types=params["type"].split(",") if "type" in params else None,
                    entity_id=params.get("id"),
                    limit=min(limit, 10_000),
                )
            except ValueError as exc:
                return JSONResponse({"detail": str(exc)}, status_code=400)
            return JSONResponse(found)

        return [Route("/changes", changes, methods=["GET"])]


def planning_consumer(
    *,
    name: str = "planning",
    archive_path: str | Path,
    extra_sinks: Sequence[Sink] = (),
    **options: Any,
) -> tuple[Consumer, PlanningArchive]:
    """The planning consumer and its archive; `options` go to `Consumer`."""
    archive = PlanningArchive(archive_path)
    consumer = Consumer(name, sinks=[archive, *extra_sinks], routes=archive.routes(), **options)
    return consumer, archive
