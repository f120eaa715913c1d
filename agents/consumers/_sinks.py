"""Sinks: where a consumer puts the entity changes it receives.

Contract of a `Sink` (called from the consumer's single worker thread, never concurrently):

- `open()` once before the first `write`; `close()` once after the last, flushing everything;
- `write(changes)` gets the changes of one notification, in order; when it returns they are
  written (as durable as the sink's medium); when it raises, the consumer retries the same
  changes later (after backoff), so a sink must not half-write a batch it then fails: write
  atomically or make a repeat harmless.

The sinks here: `JsonLinesSink` (one JSON object per change, appended), `CsvSink` (one row per
change), `GeoJsonSink` (the latest state of every entity as a FeatureCollection, for a GIS),
`SqliteSink` (a table of changes) and `WebhookSink` (forwards the changes as an NGSI-LD
notification to another endpoint).
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
import orjson

from agents.consumers._change import EntityChange, timestamp

__all__ = [
    "CsvSink",
    "GeoJsonSink",
    "JsonLinesSink",
    "Sink",
    "SinkError",
    "SqliteSink",
    "WebhookSink",
    "write_atomically",
]


class SinkError(Exception):
    """A sink could not write; the consumer retries the changes later."""


@runtime_checkable
class Sink(Protocol):
    """Where changes go (see the module documentation for the contract)."""

    name: str

    def open(self) -> None: ...

    def write(self, changes: Sequence[EntityChange]) -> None: ...

    def close(self) -> None: ...


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


class JsonLinesSink:
    """Appends one JSON object per change (`EntityChange.to_json()`) to a file."""

    def __init__(self, path: str | Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.name = f"jsonl:{self.path.name}"
        self.fsync = fsync
        self._file: io.BufferedWriter | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")

    def write(self, changes: Sequence[EntityChange]) -> None:
        if self._file is None:
            self.open()
        assert self._file is not None
        data = b"".join(orjson.dumps(change.to_json()) + b"\n" for change in changes)
        self._file.write(data)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


_CSV_BASE = (
    "entityId",
    "entityType",
    "observedAt",
    "receivedAt",
    "subscriptionId",
    "notificationId",
    "tenant",
    "longitude",
    "latitude",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return orjson.dumps(value).decode()


def _point(change: EntityChange) -> tuple[float | None, float | None]:
    geometry = change.location
    if geometry and geometry.get("type") == "Point":
        coordinates = geometry.get("coordinates") or []
        if len(coordinates) >= 2:
            return float(coordinates[0]), float(coordinates[1])
    return None, None


class CsvSink:
    """One row per change. With `attributes`, one column per attribute (bare values, objects as
    JSON); without, one `values` column holding all of them as JSON. A Point location also goes
    into `longitude` / `latitude`."""

    def __init__(self, path: str | Path, *, attributes: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        self.name = f"csv:{self.path.name}"
        self.attributes = list(attributes) if attributes else None
        self.columns = [*_CSV_BASE, *(self.attributes or ["values"])]
        self._file: io.TextIOWrapper | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = self.path.open("a", encoding="utf-8", newline="")
        if new:
            csv.writer(self._file).writerow(self.columns)
            self._file.flush()

    def write(self, changes: Sequence[EntityChange]) -> None:
        if self._file is None:
            self.open()
        assert self._file is not None
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for change in changes:
            lon, lat = _point(change)
            row = [
                change.entity_id,
                change.entity_type,
                timestamp(change.observed_at),
                timestamp(change.received_at),
                change.subscription_id,
                change.notification_id,
                change.tenant or "",
                _cell(lon),
                _cell(lat),
            ]
            if self.attributes is None:
                values = {k: v for k, v in change.values.items() if k != "location"}
                row.append(orjson.dumps(values, option=orjson.OPT_SORT_KEYS).decode())
            else:
                row.extend(_cell(change.value(name)) for name in self.attributes)
            writer.writerow(row)
        self._file.write(buffer.getvalue())
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class GeoJsonSink:
    """The latest state of every entity as a GeoJSON FeatureCollection file, for a GIS.

    A change replaces an entity's feature only when it is not older than the one held (late
    notifications do not move a sensor back in time). The file is rewritten atomically at most
    every `write_interval` seconds and at `close()`; it is read back at `open()`, so the state
    survives a restart. `features()` gives the current collection without waiting for the file.
    """

    def __init__(self, path: str | Path, *, write_interval: float = 1.0) -> None:
        self.path = Path(path)
        self.name = f"geojson:{self.path.name}"
        self.write_interval = write_interval
        self._features: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._last_write = 0.0
        self._dirty = False

    def open(self) -> None:
        if self.path.exists():
            try:
                data = orjson.loads(self.path.read_bytes())
                for feature in data.get("features", []):
                    if isinstance(feature, dict) and feature.get("id"):
                        self._features[str(feature["id"])] = feature
            except (OSError, orjson.JSONDecodeError, AttributeError):
                self._features = {}

    def write(self, changes: Sequence[EntityChange]) -> None:
        with self._lock:
            for change in changes:
                observed = timestamp(change.observed_at)
                current = self._features.get(change.entity_id)
                if (
                    current is not None
                    and str(current["properties"].get("observedAt", "")) > observed
                ):
                    continue
                properties = {k: v for k, v in change.values.items() if k != "location"}
                properties["type"] = change.entity_type
                properties["observedAt"] = observed
                self._features[change.entity_id] = {
                    "type": "Feature",
                    "id": change.entity_id,
                    "geometry": change.location,
                    "properties": properties,
                }
                self._dirty = True
        if time.monotonic() - self._last_write >= self.write_interval:
            self.flush()

    def features(self) -> dict[str, Any]:
        with self._lock:
            return {
                "type": "FeatureCollection",
                "features": [self._features[k] for k in sorted(self._features)],
            }

    def flush(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
        write_atomically(self.path, orjson.dumps(self.features()))
        self._last_write = time.monotonic()

    def close(self) -> None:
        self.flush()


class SqliteSink:
    """Appends each change as a row of table `changes` in a SQLite file (WAL).

    Columns: seq, entity_id, entity_type, observed_at, notified_at, received_at,
    subscription_id, notification_id, tenant, entity (JSON text).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"sqlite:{self.path.name}"
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "entity_id TEXT NOT NULL, entity_type TEXT NOT NULL, observed_at TEXT NOT NULL, "
            "notified_at TEXT NOT NULL, received_at TEXT NOT NULL, subscription_id TEXT NOT NULL, "
            "notification_id TEXT NOT NULL, tenant TEXT, entity TEXT NOT NULL)"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS changes_entity ON changes(entity_id, observed_at)")
        self._conn = conn

    def write(self, changes: Sequence[EntityChange]) -> None:
        if self._conn is None:
            self.open()
        assert self._conn is not None
        rows = [
            (
                c.entity_id,
                c.entity_type,
                timestamp(c.observed_at),
                timestamp(c.notified_at),
                timestamp(c.received_at),
                c.subscription_id,
                c.notification_id,
                c.tenant,
                orjson.dumps(dict(c.entity)).decode(),
            )
            for c in changes
        ]
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(
                "INSERT INTO changes (entity_id, entity_type, observed_at, notified_at, "
                "received_at, subscription_id, notification_id, tenant, entity) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class WebhookSink:
    """Forwards changes to another endpoint as an NGSI-LD notification (one per subscription
    of the batch), with `headers` (e.g. a shared secret). The forwarded notification's id is
    derived from the received one, so a retried forward carries the same id and the receiver
    can drop the repeat. Any answer but 2xx, and any transport error, raises `SinkError`."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.name = f"webhook:{url}"
        self.headers = dict(headers or {})
        self.timeout = timeout
        self._transport = transport
        self._client: httpx.Client | None = None

    def open(self) -> None:
        self._client = httpx.Client(
            transport=self._transport, timeout=self.timeout, trust_env=False
        )

    def write(self, changes: Sequence[EntityChange]) -> None:
        if self._client is None:
            self.open()
        assert self._client is not None
        groups: dict[str, list[EntityChange]] = {}
        for change in changes:
            groups.setdefault(change.subscription_id, []).append(change)
        for subscription_id, group in groups.items():
            first = group[0]
            body = {
                "id": "urn:ngsi-ld:Notification:"
                + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{first.notification_id} {self.url}")),
                "type": "Notification",
                "subscriptionId": subscription_id,
                "notifiedAt": timestamp(first.notified_at),
                "data": [dict(change.entity) for change in group],
            }
            headers = {"Content-Type": "application/json", **self.headers}
            if first.tenant:
                headers.setdefault("NGSILD-Tenant", first.tenant)
            try:
                response = self._client.post(self.url, content=orjson.dumps(body), headers=headers)
            except httpx.HTTPError as exc:
                raise SinkError(f"forwarding to {self.url} failed: {exc!r}") from exc
            if not response.is_success:
                raise SinkError(f"forwarding to {self.url}: answered {response.status_code}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
