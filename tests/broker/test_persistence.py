"""Durability: a restart keeps everything; `kill -9` mid-batch leaves all or none of the batch;
committed changes reach the listeners, rolled-back ones never do."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ngsi import AlreadyExists, NonexistentTenant
from ngsi.broker import EntityChange, Store
from ngsi.broker._service import EntityService
from tests.broker.conftest import start_broker, start_broker_process
from tests.broker.test_entities import prop


def batch(kind: str, n: int, *, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"urn:ngsi-ld:{kind}:{i}",
            "type": kind,
            "temperature": prop(20 + i % 10, unitCode="CEL"),
            "name": prop(f"sensor number {i} " + "x" * 200),
        }
        for i in range(start, start + n)
    ]


def count(api: str, kind: str, headers: dict[str, str] | None = None) -> int:
    response = httpx.get(
        f"{api}/entities",
        params={"type": kind, "limit": 0, "count": "true"},
        headers=headers or {},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return int(response.headers["NGSILD-Results-Count"])


def test_restart_keeps_entities_tenants_and_order(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with start_broker(data) as running:
        api = running.api
        assert (
            httpx.post(f"{api}/entityOperations/upsert", json=batch("Kept", 5)).status_code == 201
        )
        tenant = {"NGSILD-Tenant": "city"}
        httpx.post(f"{api}/entities", json=batch("Other", 1)[0], headers=tenant)
        httpx.patch(f"{api}/entities/urn:ngsi-ld:Kept:3/attrs", json={"temperature": prop(99)})
    with start_broker(data) as running:
        api = running.api
        listed = httpx.get(f"{api}/entities", params={"type": "Kept"}).json()
        assert [e["id"] for e in listed] == [f"urn:ngsi-ld:Kept:{i}" for i in range(5)]
        assert listed[3]["temperature"] == prop(99)
        assert count(api, "Other", {"NGSILD-Tenant": "city"}) == 1


@pytest.mark.slow
def test_kill_9_during_a_large_batch_keeps_all_or_nothing(tmp_path: Path) -> None:
    """SIGKILL while the write transaction of a 20,000-entity upsert is open: after a restart
    the batch is there whole or not at all, and the batches committed before it are all there.

    The kill waits for the broker to hold the database's write lock for that batch (seen from
    a second connection that cannot take it), so it lands inside the batch, however fast or
    loaded the machine is."""
    size = 20_000
    data = tmp_path / "data"
    broker = start_broker_process(data, "--max-body-bytes", str(64 * 1024 * 1024))
    outcome: dict[str, Any] = {}
    try:
        api = broker.url + "/ngsi-ld/v1"
        warm = httpx.post(f"{api}/entityOperations/upsert", json=batch("Warm", size), timeout=120)
        assert warm.status_code == 201

        watcher = sqlite3.connect(data / "default.sqlite", timeout=0, isolation_level=None)
        try:
            sender = threading.Thread(target=_send_batch, args=(api, batch("Cut", size), outcome))
            sender.start()
            while not _write_lock_taken(watcher):
                assert sender.is_alive(), f"the batch ended before its write transaction: {outcome}"
                time.sleep(0.001)
            broker.kill()
        finally:
            watcher.close()
        sender.join(timeout=30)
    finally:
        broker.stop()

    restarted = start_broker_process(data)
    try:
        api = restarted.url + "/ngsi-ld/v1"
        assert count(api, "Warm") == size
        stored = count(api, "Cut")
        assert stored in (0, size), f"{stored} of {size} entities of the killed batch survived"
        if "response" in outcome:
            assert stored == size  # answered (just) before the kill: it must be durable
    finally:
        restarted.stop()


def _write_lock_taken(connection: sqlite3.Connection) -> bool:
    """Whether another connection holds the write lock of the database (SQLite WAL mode)."""
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return True
        raise
    connection.execute("ROLLBACK")
    return False


def _send_batch(api: str, entities: list[dict[str, Any]], outcome: dict[str, Any]) -> None:
    try:
        outcome["response"] = httpx.post(
            f"{api}/entityOperations/upsert", json=entities, timeout=120
        )
    except httpx.HTTPError as exc:
        outcome["error"] = exc


class Recorder:
    def __init__(self) -> None:
        self.changes: list[EntityChange] = []

    def entity_changed(self, change: EntityChange) -> None:
        self.changes.append(change)


def test_listeners_get_committed_changes_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    store.open()
    recorder = Recorder()
    store.add_listener(recorder)
    service = EntityService(store)
    try:
        body = {
            "id": "urn:ngsi-ld:T:1",
            "type": "https://example.org/T",
            "https://example.org/a": prop(1),
        }
        service.create("city", body)
        with pytest.raises(AlreadyExists):
            service.create("city", body)
        service.update_attributes("city", "urn:ngsi-ld:T:1", {"https://example.org/a": prop(2)})
        service.delete("city", "urn:ngsi-ld:T:1")
        kinds = [c.kind for c in recorder.changes]
        assert kinds == ["created", "updated", "deleted"]
        created, updated, deleted = recorder.changes
        assert created.tenant == "city"
        assert created.before is None
        assert created.entity_types == ("https://example.org/T",)
        assert created.after is not None
        assert created.after["https://example.org/a"]["value"] == 1
        assert updated.before is not None
        assert updated.after is not None
        assert updated.before["https://example.org/a"]["value"] == 1
        assert updated.after["https://example.org/a"]["value"] == 2
        assert updated.changed_attributes == frozenset({"https://example.org/a"})
        assert deleted.after is None

        def abort() -> None:
            with store.write("city") as txn:
                txn.insert({"id": "urn:ngsi-ld:T:2", "type": "T"})
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError):
            abort()
        assert len(recorder.changes) == 3
        with store.read("city") as read:
            assert read.get("urn:ngsi-ld:T:2") is None
        with pytest.raises(NonexistentTenant), store.read("nobody"):
            pass
    finally:
        store.close()


def test_writes_leave_checkpoints_to_the_store_s_thread(tmp_path: Path) -> None:
    """No write copies the log into the database (some writes run on the event loop); the
    store's own thread does, about once per interval for each tenant written to."""
    data = tmp_path / "data"

    def fill(store: Store, tenant: str | None) -> None:
        service = EntityService(store)
        for entity in batch("Checkpointed", 2000):
            entity["type"] = "https://example.org/Checkpointed"
            service.create(tenant, entity)

    store = Store(data, checkpoint_interval=3600.0)
    store.open()
    database = data / "default.sqlite"
    try:
        fill(store, None)
        assert (data / "default.sqlite-wal").stat().st_size > 4 * 1024 * 1024
        assert database.stat().st_size < 64 * 1024  # past SQLite's own automatic checkpoint
        store._tenants[None].checkpoint()
        assert database.stat().st_size > 1024 * 1024
    finally:
        store.close()

    store = Store(data, checkpoint_interval=0.05)
    store.open()
    city = data / "tenant-city.sqlite"
    try:
        fill(store, "city")
        for _ in range(250):
            if city.stat().st_size > 1024 * 1024:
                break
            time.sleep(0.02)
        assert city.stat().st_size > 1024 * 1024
        with store.read(None) as txn:
            assert txn.count(types=["https://example.org/Checkpointed"]) == 2000
        checkpointer = store._checkpointer
        assert checkpointer is not None
        assert checkpointer.is_alive()
    finally:
        store.close()
    assert not checkpointer.is_alive()
