"""The entity cache: reads by id answer the last committed state, per tenant, per context and
representation; rolled-back writes leave no trace; the cache stays within its memory."""

from __future__ import annotations

import asyncio
import copy
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.middleware import Middleware

from ngsi import NonexistentTenant
from ngsi._context_store import ContextStore
from ngsi.broker import BrokerSettings, Store, create_app
from ngsi.broker._cache import CachedEntity, EntityCache
from ngsi.broker._middleware import EntityCacheMiddleware
from ngsi.broker._service import EntityService
from ngsi.broker._state import Broker, WorkerPool
from tests._serve import serve_app
from tests.broker.conftest import SDM_CONTEXTS, RunningBroker, sdm_url
from tests.broker.test_entities import create, new_id, prop, thing
from tests.conftest import free_port

ENVIRONMENT = sdm_url("Environment")
ENVIRONMENT_LINK = (
    f'<{ENVIRONMENT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
)
TEMPERATURE = "https://smartdatamodels.org/dataModel.Environment/temperature"


def air_quality(entity_id: str, temperature: float) -> dict[str, Any]:
    return {
        "id": entity_id,
        "type": "AirQualityObserved",
        "temperature": prop(temperature, unitCode="CEL", observedAt="2025-01-31T12:00:00Z"),
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [6.8, 51.2]}},
    }


def test_a_read_after_a_write_sees_the_write(http: httpx.Client) -> None:
    entity_id = new_id()
    create(http, thing(entity_id, temperature=prop(1)))
    for value in range(2, 7):
        assert http.get(f"/entities/{entity_id}").json()["temperature"]["value"] == value - 1
        patched = http.patch(f"/entities/{entity_id}/attrs", json={"temperature": prop(value)})
        assert patched.status_code == 204
        assert http.get(f"/entities/{entity_id}").json()["temperature"]["value"] == value
    upsert = http.post(
        "/entityOperations/upsert",
        params={"options": "update"},
        json=[thing(entity_id, temperature=prop(42))],
    )
    assert upsert.status_code == 204, upsert.text
    assert http.get(f"/entities/{entity_id}").json()["temperature"]["value"] == 42
    assert http.delete(f"/entities/{entity_id}").status_code == 204
    assert http.get(f"/entities/{entity_id}").status_code == 404
    create(http, thing(entity_id, humidity=prop(0.5)))
    again = http.get(f"/entities/{entity_id}").json()
    assert "temperature" not in again
    assert again["humidity"]["value"] == 0.5


def test_tenants_do_not_share_cached_entities(http: httpx.Client) -> None:
    entity_id = new_id()
    for tenant, value in (("cache-a", 1), ("cache-b", 2)):
        create(http, thing(entity_id, level=prop(value)), headers={"NGSILD-Tenant": tenant})
    create(http, thing(entity_id, level=prop(3)))
    for _ in range(2):
        a = http.get(f"/entities/{entity_id}", headers={"NGSILD-Tenant": "cache-a"})
        b = http.get(f"/entities/{entity_id}", headers={"NGSILD-Tenant": "cache-b"})
        default = http.get(f"/entities/{entity_id}")
        assert a.json()["level"]["value"] == 1
        assert a.headers["ngsild-tenant"] == "cache-a"
        assert b.json()["level"]["value"] == 2
        assert default.json()["level"]["value"] == 3
        assert "ngsild-tenant" not in default.headers
    missing = http.get(f"/entities/{entity_id}", headers={"NGSILD-Tenant": "cache-nobody"})
    assert missing.status_code == 404


def test_each_context_and_representation_gets_its_own_answer(http: httpx.Client) -> None:
    entity_id = new_id("AirQualityObserved")
    create(http, air_quality(entity_id, 40), headers={"Link": ENVIRONMENT_LINK})
    link = {"Link": ENVIRONMENT_LINK}
    asks: list[tuple[dict[str, str], dict[str, str]]] = [
        ({}, link),
        ({}, {}),
        ({"options": "keyValues"}, link),
        ({"options": "keyValues"}, {}),
        ({"options": "sysAttrs"}, link),
        ({"attrs": "temperature"}, link),
        ({}, {**link, "Accept": "application/ld+json"}),
        ({}, {**link, "Accept": "application/geo+json"}),
    ]
    first = [http.get(f"/entities/{entity_id}", params=p, headers=h) for p, h in asks]
    again = [http.get(f"/entities/{entity_id}", params=p, headers=h) for p, h in asks]
    for one, two in zip(first, again, strict=True):
        assert one.status_code == two.status_code == 200
        assert one.content == two.content
        assert one.headers.get("link") == two.headers.get("link")
        assert one.headers["content-type"] == two.headers["content-type"]
    compact, expanded, key_values, key_values_expanded, sys_attrs, only, ld, geo = (
        r.json() for r in first
    )
    assert compact["temperature"]["value"] == 40
    assert expanded[TEMPERATURE]["value"] == 40
    assert key_values["temperature"] == 40
    assert key_values_expanded[TEMPERATURE] == 40
    assert "createdAt" in sys_attrs
    assert "createdAt" not in compact
    assert set(only) == {"id", "type", "temperature"}
    assert ld["@context"] == ENVIRONMENT
    assert geo["type"] == "Feature"
    assert geo["geometry"] == {"type": "Point", "coordinates": [6.8, 51.2]}

    http.patch(f"/entities/{entity_id}/attrs", json={"temperature": prop(41)}, headers=link)
    after = [http.get(f"/entities/{entity_id}", params=p, headers=h).json() for p, h in asks]
    assert after[0]["temperature"]["value"] == 41
    assert after[1][TEMPERATURE]["value"] == 41
    assert after[2]["temperature"] == 41
    assert after[3][TEMPERATURE] == 41


def test_errors_are_not_cached(http: httpx.Client) -> None:
    entity_id = new_id()
    create(http, thing(entity_id, temperature=prop(1)))
    assert http.get(f"/entities/{entity_id}").status_code == 200
    for _ in range(2):
        assert http.get(f"/entities/{entity_id}", params={"attrs": "nothing"}).status_code == 404
        assert http.get(f"/entities/{entity_id}", params={"options": "bogus"}).status_code == 400
        refused = http.get(f"/entities/{entity_id}", headers={"Accept": "text/html"})
        assert refused.status_code == 406
        bad_tenant = http.get(f"/entities/{entity_id}", headers={"NGSILD-Tenant": "no tenant!"})
        assert bad_tenant.status_code == 400


def test_a_rolled_back_write_leaves_the_cache_as_it_was(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    store.open()
    try:
        service = EntityService(store)
        entity_id = "urn:ngsi-ld:T:1"
        service.create(None, {"id": entity_id, "type": "https://example.org/T"})
        with store.read(None) as txn:
            assert txn.get(entity_id) is not None
        cached = store.cached(None, entity_id)
        assert cached is not None

        def abort() -> None:
            with store.write(None) as txn:
                current = txn.get(entity_id)
                assert current is not None
                txn.update(current, {**current, "https://example.org/a": prop(1)}, ["a"])
                assert txn.get(entity_id) == {**current, "https://example.org/a": prop(1)}
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError):
            abort()
        assert store.cached(None, entity_id) is cached
        with store.read(None) as txn:
            assert "https://example.org/a" not in (txn.get(entity_id) or {})

        with store.write(None) as txn:
            current = txn.get(entity_id)
            assert current is not None
            txn.delete_many([current])
            assert txn.get(entity_id) is None
        assert store.cached(None, entity_id) is None
        with store.read(None) as txn:
            assert txn.get(entity_id) is None
    finally:
        store.close()


def test_the_cache_keeps_to_its_memory_and_forgets_the_least_used() -> None:
    cache = EntityCache(max_bytes=10_000)
    for n in range(100):
        cache.put(None, f"urn:ngsi-ld:T:{n}", b"x" * 500)
        assert cache.size <= 10_000
    assert 0 < len(cache) < 100
    assert cache.get(None, "urn:ngsi-ld:T:0") is None
    assert cache.get(None, "urn:ngsi-ld:T:99") is not None
    kept = cache.get(None, "urn:ngsi-ld:T:90")
    assert kept is not None
    for n in range(100, 112):
        cache.put(None, f"urn:ngsi-ld:T:{n}", b"x" * 500)
    assert cache.get(None, "urn:ngsi-ld:T:90") is kept  # used recently: kept
    cache.remember(kept, "key", (b"y" * 2_000, [], None))
    assert cache.size <= 10_000
    cache.update(None, [("urn:ngsi-ld:T:90", None)])
    assert cache.get(None, "urn:ngsi-ld:T:90") is None
    cache.remember(kept, "other", (b"z", [], None))  # dropped entries take no renderings
    assert kept.rendering("other", None) is None
    assert EntityCache(max_bytes=0).put(None, "urn:ngsi-ld:T:1", b"{}") is None


@pytest.fixture
def broker_with_fast_path(tmp_path: Path) -> Iterator[RunningBroker]:
    """A broker whose app answers cached renderings in `EntityCacheMiddleware`."""
    port = free_port()
    settings = BrokerSettings(
        data_dir=tmp_path / "data", port=port, preload_contexts=dict(SDM_CONTEXTS)
    )
    app = create_app(settings)
    app.user_middleware.insert(0, Middleware(EntityCacheMiddleware))
    with serve_app(app, port=port, name="broker") as served:
        yield RunningBroker(
            url=served.url, settings=settings, server=served.server, thread=served.thread
        )


def test_the_fast_path_answers_as_the_endpoint_does(broker_with_fast_path: RunningBroker) -> None:
    with httpx.Client(base_url=broker_with_fast_path.api, timeout=10) as http:
        entity_id = new_id("AirQualityObserved")
        create(http, air_quality(entity_id, 7), headers={"Link": ENVIRONMENT_LINK})
        create(http, air_quality(entity_id, 8), headers={"NGSILD-Tenant": "fast"})
        asks: list[tuple[dict[str, str], dict[str, str]]] = [
            ({}, {"Link": ENVIRONMENT_LINK}),
            ({"options": "keyValues"}, {}),
            ({}, {"NGSILD-Tenant": "fast"}),
            ({}, {"Fiware-Service": "fast"}),
            ({}, {"Accept": "application/ld+json"}),
        ]
        for params, headers in asks:
            first = http.get(f"/entities/{entity_id}", params=params, headers=headers)
            second = http.get(f"/entities/{entity_id}", params=params, headers=headers)
            assert first.status_code == second.status_code == 200
            assert first.content == second.content
            assert _without_date(first.headers) == _without_date(second.headers)
        other = http.get(f"/entities/{entity_id}", headers={"NGSILD-Tenant": "fast"}).json()
        assert other["temperature"]["value"] == 8
        link = {"Link": ENVIRONMENT_LINK}
        http.patch(f"/entities/{entity_id}/attrs", json={"temperature": prop(9)}, headers=link)
        patched = http.get(f"/entities/{entity_id}", headers=link)
        assert patched.json()["temperature"]["value"] == 9
        refused = http.get(f"/entities/{entity_id}", headers={"Accept": "text/plain"})
        assert refused.status_code == 406
        assert http.get("/entities/urn:ngsi-ld:Nothing:1").status_code == 404
        encoded = http.get(f"/entities/{entity_id.replace(':', '%3A')}")
        assert encoded.status_code == 200


def _without_date(headers: httpx.Headers) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in headers.items() if k != "date")


def test_the_worker_pool_runs_calls_and_passes_their_errors() -> None:
    pool = WorkerPool(2, idle_exit=0.05)

    def fail() -> None:
        raise ValueError("no")

    async def main() -> list[Any]:
        results = await asyncio.gather(*(pool.run(lambda n=n: n * n) for n in range(20)))
        with pytest.raises(ValueError, match="no"):
            await pool.run(fail)
        return results

    assert asyncio.run(main()) == [n * n for n in range(20)]
    for _ in range(100):
        if not pool._threads:
            break
        time.sleep(0.02)
    assert pool._threads == 0  # idle threads end
    assert asyncio.run(pool.run(lambda: "again")) == "again"
    with pytest.raises(ValueError):
        WorkerPool(0)


def test_a_small_write_runs_on_the_event_loop_only_when_it_would_not_wait(tmp_path: Path) -> None:
    """`Broker.write_entity` writes on the event loop when the entity is cached and the tenant
    free; else (uncached, tenant busy, not inline, unknown tenant) in a worker thread."""
    store = Store(tmp_path / "data")
    store.open()
    service = EntityService(store)
    broker = Broker(
        settings=BrokerSettings(data_dir=tmp_path / "data"),
        store=store,
        entities=service,
        contexts=ContextStore(),
    )
    service.create(None, {"id": "urn:ngsi-ld:T:cached", "type": "https://example.org/T"})
    service.create(None, {"id": "urn:ngsi-ld:T:evicted", "type": "https://example.org/T"})
    store.cache.clear()
    with store.read(None) as txn:
        txn.get("urn:ngsi-ld:T:cached")  # back into the cache

    def update(entity_id: str, value: int, tenant: str | None = None) -> Callable[[], str]:
        def work() -> str:
            service.append_attributes(tenant, entity_id, {"https://example.org/a": prop(value)})
            return threading.current_thread().name

        return work

    async def main() -> list[str]:
        loop_thread = threading.current_thread().name
        where = [
            await broker.write_entity(
                None, "urn:ngsi-ld:T:cached", update("urn:ngsi-ld:T:cached", 1), inline=True
            ),
            await broker.write_entity(
                None, "urn:ngsi-ld:T:cached", update("urn:ngsi-ld:T:cached", 2), inline=False
            ),
            await broker.write_entity(
                None, "urn:ngsi-ld:T:evicted", update("urn:ngsi-ld:T:evicted", 3), inline=True
            ),
        ]
        with pytest.raises(NonexistentTenant):
            await broker.write_entity(
                "nobody",
                "urn:ngsi-ld:T:cached",
                update("urn:ngsi-ld:T:cached", 4, "nobody"),
                inline=True,
            )
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with store.write(None):
                holding.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        holding.wait(10)
        waiting = asyncio.ensure_future(
            broker.write_entity(
                None, "urn:ngsi-ld:T:cached", update("urn:ngsi-ld:T:cached", 5), inline=True
            )
        )
        await asyncio.sleep(0.1)
        assert not waiting.done()  # waits in a worker, not on the loop
        release.set()
        where.append(await waiting)
        holder.join()
        return [name == loop_thread for name in where]

    try:
        assert asyncio.run(main()) == [True, False, False, False]
        with store.read(None) as txn:
            cached = txn.get("urn:ngsi-ld:T:cached") or {}
            evicted = txn.get("urn:ngsi-ld:T:evicted") or {}
        assert cached["https://example.org/a"]["value"] == 5
        assert evicted["https://example.org/a"]["value"] == 3
        lock = store.try_lock(None, "urn:ngsi-ld:T:cached")
        assert lock is not None
        lock.release()
    finally:
        store.close()


def test_writes_are_all_or_nothing_and_read_back_inside_the_transaction(tmp_path: Path) -> None:
    """A write transaction runs its statements late (one alone, several inside BEGIN ...
    COMMIT): an abort leaves nothing, and reads inside the transaction see its writes."""
    store = Store(tmp_path / "data", cache_bytes=0)
    store.open()
    try:
        ids = [f"urn:ngsi-ld:T:{n}" for n in range(3)]
        with store.write(None) as txn:
            txn.insert_many([{"id": i, "type": "https://example.org/T"} for i in ids])

        def update(names: list[str], *, abort: bool) -> None:
            with store.write(None) as txn:
                found = txn.get_many(names)
                txn.update_many(
                    [
                        (found[i], {**found[i], "https://example.org/a": prop(1)}, ["a"])
                        for i in names
                    ]
                )
                assert all("https://example.org/a" in d for d in txn.get_many(names).values())
                assert txn.count(types=["https://example.org/T"]) == 3
                if abort:
                    raise RuntimeError("abort")

        for names in (ids[:1], ids):
            with pytest.raises(RuntimeError):
                update(names, abort=True)
            with store.read(None) as reader:
                assert not any("https://example.org/a" in d for d in reader.get_many(ids).values())
        update(ids[:1], abort=False)
        update(ids[1:], abort=False)
        with store.read(None) as reader:
            assert all("https://example.org/a" in d for d in reader.get_many(ids).values())
        with store.write(None) as txn:
            txn.kv_put("space", "key", b"value")
        with store.write(None) as txn:
            assert txn.kv_get("space", "key") == b"value"
            assert txn.kv_delete("space", "key")
            txn.kv_put("space", "other", b"x")
        with store.read(None) as reader:
            assert reader.kv_items("space") == [("other", b"x")]
    finally:
        store.close()


def test_rows_are_written_in_one_statement_or_inside_one_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path / "data", cache_bytes=0)
    store.open()
    try:
        ids = [f"urn:ngsi-ld:T:{n}" for n in range(5)]
        with store.write(None) as txn:
            txn.insert_many([{"id": i, "type": "https://example.org/T"} for i in ids])
        statements: list[str] = []
        with store.read(None) as reader:
            connection = reader._conn
        connection.set_trace_callback(statements.append)

        def update(names: list[str], value: int) -> list[str]:
            statements.clear()
            with store.write(None) as txn:
                found = txn.get_many(names)
                txn.update_many(
                    [
                        (found[i], {**found[i], "https://example.org/b": prop(value)}, ["b"])
                        for i in names
                    ]
                )
            return [s for s in statements if s.startswith("INSERT INTO entities")]

        # one entity: a plain UPDATE, alone
        assert update(ids[:1], 1) == []
        assert [x for x in statements if x.startswith("UPDATE entities")]
        assert not any(x.startswith(("BEGIN", "COMMIT")) for x in statements)
        # rows that fit in one statement: that statement alone, atomic without BEGIN/COMMIT
        (one,) = update(ids, 1)
        assert one.count("'urn:ngsi-ld:T:") == len(ids)
        assert not any(s.startswith(("BEGIN", "COMMIT")) for s in statements)
        # more than one statement takes (at most 7 bound values: two rows each): a transaction
        connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 7)
        writes = update(ids, 2)
        assert len(writes) == 3
        begin = statements.index("BEGIN IMMEDIATE")
        commit = statements.index("COMMIT")
        assert all(begin < statements.index(w) < commit for w in writes)
        connection.set_trace_callback(None)
        with store.write(None) as txn:
            txn.insert_many([{"id": "urn:ngsi-ld:T:new", "type": "https://example.org/T"}])
        with store.read(None) as reader:
            docs = reader.get_many(ids)
            rows = reader._conn.execute("SELECT id FROM entities ORDER BY seq").fetchall()
        # updated in place: every entity once, in its order, with the last value; the new one
        # after them (an update uses up a sequence number, leaving a gap)
        assert [row[0] for row in rows] == [*ids, "urn:ngsi-ld:T:new"]
        assert all(docs[i]["https://example.org/b"]["value"] == 2 for i in ids)
    finally:
        store.close()


def test_a_merge_reads_the_document_its_last_write_shared(tmp_path: Path) -> None:
    """`options=update` merges start from the document the previous write left in the cache
    (no decoding); every other read gets its own copy, and the shared one never changes."""
    store = Store(tmp_path / "data")
    store.open()
    try:
        service = EntityService(store)
        entity_id = "urn:ngsi-ld:T:shared"
        name = "https://example.org/a"
        body = {"id": entity_id, "type": "https://example.org/T", name: prop(1)}
        service.batch_upsert(None, [body], mode="update")
        entry = store.cached(None, entity_id)
        assert entry is not None
        assert entry.doc is not None
        first = entry.doc
        snapshot = copy.deepcopy(first)
        with store.read(None) as txn:
            assert txn.get_many([entity_id], shared=True)[entity_id] is first
            copied = txn.get_many([entity_id])[entity_id]
        assert copied == first
        assert copied is not first

        service.batch_upsert(None, [{**body, name: prop(2)}], mode="update")
        assert first == snapshot  # the merge copied what it changed
        entry = store.cached(None, entity_id)
        assert entry is not None
        assert entry.doc is not None
        assert entry.doc[name]["value"] == 2
        assert entry.doc[name]["createdAt"] == first[name]["createdAt"]
        assert orjson.loads(entry.raw) == entry.doc

        service.update_attributes(None, entity_id, {name: prop(3)})  # not a sharing write
        entry = store.cached(None, entity_id)
        assert entry is not None
        assert entry.doc is None
        with store.read(None) as txn:
            assert txn.get_many([entity_id], shared=True)[entity_id][name]["value"] == 3
    finally:
        store.close()


def test_a_document_written_again_in_the_transaction_is_not_shared(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    store.open()
    try:
        entity_id = "urn:ngsi-ld:T:again"
        doc = {"id": entity_id, "type": "https://example.org/T"}
        with store.write(None) as txn:
            txn.insert_many([doc])
            txn.share([doc])
            later = {**doc, "https://example.org/a": prop(1)}
            txn.update_many([(doc, later, ["https://example.org/a"])])
        entry = store.cached(None, entity_id)
        assert entry is not None
        assert entry.doc is None
        assert orjson.loads(entry.raw) == later
    finally:
        store.close()


def test_shared_documents_fill_at_most_half_the_cache_first_come_first_kept() -> None:
    cache = EntityCache(max_bytes=80_000)
    raw = b"x" * 1_000  # 1,240 bytes as an entry, 3,000 more with its document

    def write(n: int) -> CachedEntity | None:
        entity_id = f"urn:ngsi-ld:T:{n}"
        cache.update(None, [(entity_id, raw)], {entity_id: {"n": n}})
        assert cache.size <= 80_000
        return cache.get(None, entity_id)

    entries = [write(n) for n in range(30)]
    assert all(entry is not None for entry in entries)  # the bytes of all fit
    with_doc = [n for n, entry in enumerate(entries) if entry is not None and entry.doc]
    assert with_doc == list(range(13))  # 13 documents fill the half; later ones come without
    again = write(0)  # writing an entity again frees its old document's room first
    assert again is not None
    assert again.doc == {"n": 0}
    later = write(13)
    assert later is not None
    assert later.doc is None
    cache.update(None, [("urn:ngsi-ld:T:1", None)])  # a deletion frees room
    assert cache.get(None, "urn:ngsi-ld:T:1") is None
    room = write(14)
    assert room is not None
    assert room.doc == {"n": 14}
