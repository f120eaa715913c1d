"""Retention of the current state: entities not updated for N days are removed, on a schedule.

The history has its own retention (`ngsi.broker._temporal`); this is the other half. An entity
whose `modifiedAt` is older than the retention of its type (`state_retention_days_by_type`,
expanded type IRI → days, else `state_retention_days`; None: kept for ever) is deleted as a
`DELETE /entities/{id}` would delete it: subscribers get the deletion, the cache forgets it. Its
history is not deleted with it: the history keeps it for the history's own retention (the
entity expired, it was not erased). An entity with several types takes the shortest retention
of them.

`StateRetention.expire(now=...)` runs one pass over every tenant and returns how many entities
it removed per tenant; `RetentionExtension` (a broker extension, see `ngsi.broker._app`) runs a
pass every `retention_interval` seconds on a thread of its own, the first one soon after start.
A pass deletes in transactions of at most 500 entities, so writers wait for one short
transaction at a time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import anyio.to_thread
from starlette.routing import BaseRoute

from ngsi._errors import NonexistentTenant
from ngsi._time import parse_datetime
from ngsi.broker._settings import BrokerSettings
from ngsi.broker._state import Broker
from ngsi.broker._store import Store

__all__ = ["RetentionExtension", "StateRetention", "create_extension"]

log = logging.getLogger(__name__)

_CHUNK: Final = 500
_FIRST_PASS_DELAY: Final = 5.0


class _Sparing(Protocol):
    def spare(self, tenant: str | None, entity_ids: Sequence[str]) -> None: ...


class StateRetention:
    """Removes expired entities from the current state (see the module documentation).

    `retention` is the default period (None: no default), `retention_by_type` the period per
    expanded type. `history`, when given, is told which deletions are expiries, so that it
    keeps their history.
    """

    def __init__(
        self,
        store: Store,
        *,
        retention: timedelta | None = None,
        retention_by_type: Mapping[str, timedelta] | None = None,
        history: _Sparing | None = None,
    ) -> None:
        self.store = store
        self.retention = retention
        self.retention_by_type = dict(retention_by_type or {})
        self.history = history

    @property
    def active(self) -> bool:
        return self.retention is not None or bool(self.retention_by_type)

    def _period(self, types: Sequence[str]) -> timedelta | None:
        periods = [self.retention_by_type[t] for t in types if t in self.retention_by_type]
        if periods:
            return min(periods)
        return self.retention

    def expired(self, tenant: str | None, *, now: datetime | None = None) -> list[str]:
        """The ids of the entities of `tenant` whose retention has passed at `now`."""
        if not self.active:
            return []
        moment = now or datetime.now(UTC)
        found: list[str] = []
        with self.store.read(tenant) as txn:
            conn = txn._sql()
            types_of: dict[int, list[str]] = {}
            for seq, type_name in conn.execute("SELECT seq, type FROM entity_types"):
                types_of.setdefault(int(seq), []).append(str(type_name))
            rows = conn.execute(
                "SELECT seq, id, json_extract(CAST(doc AS TEXT), '$.modifiedAt') FROM entities"
            )
            for seq, entity_id, modified in rows:
                period = self._period(types_of.get(int(seq), []))
                if period is None or not isinstance(modified, str):
                    continue
                try:
                    changed = parse_datetime(modified)
                except ValueError:
                    continue
                if changed < moment - period:
                    found.append(str(entity_id))
        return found

    def expire(self, *, now: datetime | None = None) -> dict[str | None, int]:
        """One pass over every tenant; returns the entities removed per tenant (only tenants
        where some were)."""
        removed: dict[str | None, int] = {}
        if not self.active:
            return removed
        for tenant in self.store.tenants():
            try:
                ids = self.expired(tenant, now=now)
            except NonexistentTenant:
                continue
            count = self.delete(tenant, ids)
            if count:
                removed[tenant] = count
        return removed

    def delete(self, tenant: str | None, entity_ids: Sequence[str]) -> int:
        """Delete these entities of `tenant` as expired (their history stays); returns how
        many existed."""
        count = 0
        for start in range(0, len(entity_ids), _CHUNK):
            chunk = list(entity_ids[start : start + _CHUNK])
            with self.store.write(tenant, create=False) as txn:
                docs = list(txn.get_many(chunk).values())
                if self.history is not None:
                    # before the commit, which hands the deletions to the history
                    self.history.spare(tenant, [str(doc["id"]) for doc in docs])
                txn.delete_many(docs)
                count += len(docs)
        return count


class RetentionExtension:
    """Current-state retention as a broker extension: settings `state_retention_days`,
    `state_retention_days_by_type` and `retention_interval` (seconds between passes). Does
    nothing (no thread) when no retention is set. Options override the settings:
    `retention`, `retention_by_type` (timedelta), `interval` (seconds)."""

    name = "retention"

    def __init__(self, settings: BrokerSettings, **options: Any) -> None:
        self.settings = settings
        self.options = options
        self.retention: StateRetention | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._broker: Broker | None = None

    def routes(self) -> Sequence[BaseRoute]:
        return []

    async def start(self, broker: Broker) -> None:
        settings = broker.settings
        days = getattr(settings, "state_retention_days", None)
        by_type = getattr(settings, "state_retention_days_by_type", None) or {}
        retention = self.options.get("retention", timedelta(days=float(days)) if days else None)
        retention_by_type = self.options.get(
            "retention_by_type", {t: timedelta(days=float(d)) for t, d in by_type.items()}
        )
        interval = float(
            self.options.get("interval", getattr(settings, "retention_interval", 3600.0))
        )
        self.retention = StateRetention(
            broker.store, retention=retention, retention_by_type=retention_by_type
        )
        self._broker = broker
        if not self.retention.active:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="ngsi-retention", daemon=True
        )
        self._thread.start()

    def _run(self, interval: float) -> None:
        wait = min(_FIRST_PASS_DELAY, interval)
        while not self._stop.wait(wait):
            wait = interval
            assert self.retention is not None
            # The history may start after this extension: look it up at every pass.
            history = self._broker.extras.get("temporal") if self._broker else None
            self.retention.history = history if hasattr(history, "spare") else None
            try:
                removed = self.retention.expire()
            except Exception:
                log.exception("current-state retention pass failed")
                continue
            for tenant, count in removed.items():
                log.info(
                    "retention: %d entities of tenant %s not updated within their retention "
                    "removed",
                    count,
                    tenant or "(default)",
                )

    async def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            with contextlib.suppress(RuntimeError):
                await anyio.to_thread.run_sync(thread.join, 30.0)


def create_extension(settings: BrokerSettings, **options: Any) -> RetentionExtension:
    """The retention extension for `create_app` (see `RetentionExtension`)."""
    return RetentionExtension(settings, **options)
