"""The outbox on real SQLite files: put, lease, the three outcomes, durability, backpressure."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agents.delivery import NewDeadLetter, Outbox, OutboxFull, OutboxItem, Rejection

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def reading(index: int, *, device: int = 0, value: float = 21.5, at: datetime = T0) -> OutboxItem:
    entity: dict[str, Any] = {
        "id": f"urn:ngsi-ld:AirQualityObserved:point-{device}",
        "type": "AirQualityObserved",
        "temperature": {
            "type": "Property",
            "value": value,
            "unitCode": "CEL",
            "observedAt": at.isoformat().replace("+00:00", "Z"),
        },
    }
    return OutboxItem(
        entity=entity,
        tenant="city",
        context="https://example.org/context.jsonld",
        dev_eui=f"00000000000000{device:02X}",
        f_cnt=index,
        observed_at=at,
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db")
    yield box
    box.close()


def test_put_many_then_lease_returns_the_items_in_order_with_their_provenance(
    outbox: Outbox,
) -> None:
    ids = outbox.put_many([reading(i, device=i) for i in range(3)])
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
    assert outbox.depth == 3
    tx = outbox.lease(10)
    assert [item.id for item in tx.items] == ids
    first = tx.items[0]
    assert first.entity == reading(0, device=0).entity
    assert (first.entity_id, first.entity_type) == (
        "urn:ngsi-ld:AirQualityObserved:point-0",
        "AirQualityObserved",
    )
    assert (first.tenant, first.context) == ("city", "https://example.org/context.jsonld")
    assert (first.dev_eui, first.f_cnt, first.attempts) == ("0000000000000000", 0, 0)
    assert first.observed_at == T0
    assert abs(first.enqueued_at - datetime.now(UTC)) < timedelta(seconds=5)
    tx.accept(ids)
    tx.commit()
    assert outbox.depth == 0
    assert outbox.items() == []
    assert outbox.counters.enqueued == 3
    assert outbox.counters.accepted == 3


def test_observed_at_is_taken_from_the_entity_when_not_given(outbox: Outbox) -> None:
    entity = {
        "id": "urn:ngsi-ld:Device:1",
        "type": "Device",
        "batteryLevel": {"type": "Property", "value": 0.9, "observedAt": "2024-05-01T10:00:00Z"},
        "rssi": {"type": "Property", "value": -80, "observedAt": "2024-05-01T10:00:05.5+00:00"},
        "owner": {"type": "Property", "value": "city"},
    }
    outbox.put_many([OutboxItem(entity=entity), OutboxItem(entity={"id": "x", "type": "T"})])
    first, second = outbox.items()
    assert first.observed_at == datetime(2024, 5, 1, 10, 0, 5, 500000, tzinfo=UTC)
    assert second.observed_at is None
    assert (first.tenant, first.context) == (None, None)


@pytest.mark.parametrize(
    ("entity", "message"),
    [
        ({"type": "T"}, "no 'id'"),
        ({"id": "urn:x", "type": 3}, "no 'type'"),
        ({"id": "urn:x", "type": "T", "v": {1, 2}}, "not JSON"),
    ],
)
def test_a_bad_entity_is_refused_and_nothing_of_the_batch_is_written(
    outbox: Outbox, entity: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        outbox.put_many([reading(1), OutboxItem(entity=entity)])
    assert outbox.depth == 0
    assert outbox.items() == []


def test_reject_moves_items_to_dead_letters_in_the_same_transaction(outbox: Outbox) -> None:
    good, bad = outbox.put_many([reading(1, device=1), reading(2, device=2)])
    with outbox.lease() as tx:
        tx.accept([good])
        tx.reject(
            {
                bad: Rejection(
                    message="the broker rejected entity point-2: temperature is not a number",
                    detail={"status": 400, "problem": {"type": "BadRequestData"}},
                )
            }
        )
    assert outbox.depth == 0
    [letter] = outbox.dead_letters.list()
    assert letter.reason == "broker-rejected"
    assert letter.entity_id == "urn:ngsi-ld:AirQualityObserved:point-2"
    assert letter.dev_eui == "0000000000000002"
    assert letter.tenant == "city"
    assert letter.payload_json == reading(2, device=2).entity
    assert letter.detail is not None
    assert letter.detail["status"] == 400
    assert letter.detail["f_cnt"] == 2
    assert letter.detail["context"] == "https://example.org/context.jsonld"
    assert outbox.counters.rejected == 1
    assert outbox.counters.dead_letters == 1


def test_released_items_are_kept_with_one_attempt_more_and_undecided_ones_as_they_were(
    outbox: Outbox,
) -> None:
    released, undecided, accepted = outbox.put_many([reading(i, device=i) for i in range(3)])
    with outbox.lease() as tx:
        tx.release([released], error="503 LdContextNotAvailable")
        tx.accept([accepted])
        assert [item.id for item in tx.undecided] == [undecided]
    items = {item.id: item for item in outbox.items()}
    assert set(items) == {released, undecided}
    assert items[released].attempts == 1
    assert items[undecided].attempts == 0
    again = outbox.lease()
    assert [item.id for item in again.items] == [released, undecided]
    again.commit()
    assert outbox.counters.retried == 1


def test_a_leased_item_is_not_leased_twice_until_its_transaction_ends(outbox: Outbox) -> None:
    ids = outbox.put_many([reading(i, device=i) for i in range(5)])
    first = outbox.lease(2)
    second = outbox.lease(10)
    assert [item.id for item in first.items] == ids[:2]
    assert [item.id for item in second.items] == ids[2:]
    assert not outbox.lease(10)
    assert outbox.leased == 5
    first.commit()
    assert [item.id for item in outbox.lease(10).items] == ids[:2]


def test_a_lease_leaves_the_entities_another_open_lease_holds(outbox: Outbox) -> None:
    other_tenant = reading(9, device=1)._replace(tenant="harbour")
    ids = outbox.put_many(
        [
            reading(0, device=1),
            reading(1, device=2),
            reading(2, device=1),
            reading(3, device=3),
            other_tenant,
        ]
    )
    first = outbox.lease(2)
    assert [item.id for item in first.items] == ids[:2]
    # point-1's second reading waits for the first lease; the same id in another tenant is
    # another entity
    second = outbox.lease(10)
    assert [item.id for item in second.items] == [ids[3], ids[4]]
    assert not outbox.lease(10)
    first.accept(ids[:2])
    first.commit()
    assert [item.id for item in outbox.lease(10).items] == [ids[2]]
    # one lease takes every reading of an entity no other lease holds
    second.accept([ids[3], ids[4]])
    second.commit()
    more = outbox.put_many([reading(4, device=5), reading(5, device=5)])
    assert [item.id for item in outbox.lease(10).items] == more


@pytest.mark.parametrize("open_leases", [3, 70])
def test_many_open_leases_leave_their_items_and_entities(outbox: Outbox, open_leases: int) -> None:
    # each reading its own lease, one id run each: past the number of runs the query skips
    # itself, the lease still leaves every held item and every held entity's later readings
    ids = outbox.put_many([reading(i, device=i) for i in range(open_leases)])
    held = [outbox.lease(1) for _ in range(open_leases)]
    assert [tx.items[0].id for tx in held] == ids
    later = outbox.put_many([reading(100, device=0), reading(101, device=1000)])
    assert [item.id for item in outbox.lease(10).items] == [later[1]]
    for tx in held:
        tx.accept([tx.items[0].id])
        tx.commit()
    assert [item.id for item in outbox.lease(10).items] == [later[0]]


def test_lease_stops_at_max_bytes_but_always_hands_out_one_item(outbox: Outbox) -> None:
    outbox.put_many([reading(i, device=i) for i in range(4)])
    size = len(outbox.items()[0].body)
    tx = outbox.lease(10, max_bytes=2 * size + 1)
    assert len(tx) == 2
    tx.commit()
    tx = outbox.lease(10, max_bytes=1)
    assert len(tx) == 1


def test_decisions_are_checked(outbox: Outbox) -> None:
    [item_id] = outbox.put_many([reading(1)])
    tx = outbox.lease()
    with pytest.raises(ValueError, match="not part of this transaction"):
        tx.accept([item_id + 100])
    tx.accept([item_id])
    with pytest.raises(ValueError, match="decided already"):
        tx.release([item_id])
    tx.commit()
    with pytest.raises(RuntimeError, match="committed"):
        tx.accept([item_id])


def test_the_watermark_is_the_latest_observed_at_accepted_and_survives_a_reopen(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path) as outbox:
        later, earlier = outbox.put_many(
            [reading(1, at=T0 + timedelta(minutes=5)), reading(2, at=T0)]
        )
        with outbox.lease() as tx:
            tx.accept([later])
            tx.release([earlier])
        mark = outbox.watermark("urn:ngsi-ld:AirQualityObserved:point-0", tenant="city")
        assert mark is not None
        with outbox.lease() as tx:
            tx.accept([earlier])
        assert outbox.watermark("urn:ngsi-ld:AirQualityObserved:point-0", tenant="city") == mark
        assert outbox.watermark("urn:ngsi-ld:AirQualityObserved:point-0") is None
    with Outbox(path) as reopened:
        assert reopened.watermark("urn:ngsi-ld:AirQualityObserved:point-0", tenant="city") == mark


def test_items_survive_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path, synchronous="full") as outbox:
        ids = outbox.put_many([reading(i, device=i) for i in range(10)])
        tx = outbox.lease(3)
        tx.release([item.id for item in tx.items])
        tx.commit()
        outbox.lease(4)  # never ended: the items stay
    with Outbox(path) as reopened:
        assert reopened.depth == 10
        assert [item.id for item in reopened.items()] == ids
        assert [item.attempts for item in reopened.items()][:4] == [1, 1, 1, 0]


def test_max_depth_refuses_more_and_rolls_back_the_frame_verdicts(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db", max_depth=3) as outbox:
        outbox.put_many([reading(i, device=i) for i in range(2)])
        verdict = outbox.frames.check("0004A30B001C0530", 7)
        with pytest.raises(OutboxFull, match="max_depth=3"):
            outbox.put_many([reading(7), reading(8)], frames=[verdict])
        assert outbox.depth == 2
        assert outbox.frames.device("0004A30B001C0530") is None
        retried = outbox.frames.check("0004A30B001C0530", 7)
        assert retried.kind == "first"
        outbox.put_many([reading(7)], frames=[retried])
        assert outbox.depth == 3


def test_frames_are_marked_seen_only_with_the_commit_of_their_entities(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path) as outbox:
        committed = outbox.frames.check("0004A30B001C0530", 10)
        outbox.put_many([reading(10)], frames=[committed])
        failed = outbox.frames.check("0004A30B001C0530", 11)
        with pytest.raises(ValueError, match="no 'id'"):
            outbox.put_many([OutboxItem(entity={"type": "T"})], frames=[failed])
        assert outbox.frames.check("0004A30B001C0530", 10).kind == "duplicate"
        assert outbox.frames.check("0004A30B001C0530", 11).kind == "next"
        # That verdict is never committed: after a restart, 11 is new again.
    with Outbox(path) as reopened:
        assert reopened.frames.check("0004A30B001C0530", 10).kind == "duplicate"
        assert reopened.frames.check("0004A30B001C0530", 11).kind == "next"


def test_an_uplink_without_entities_can_be_marked_seen_with_its_dead_letter(
    outbox: Outbox,
) -> None:
    verdict = outbox.frames.check("0004A30B001C0530", 3)
    assert (
        outbox.put_many(
            [],
            frames=[verdict],
            dead_letters=[
                NewDeadLetter(
                    reason="codec-error",
                    message="CayenneLPP: channel 1 type 0x67 needs 2 bytes, 1 left",
                    payload=b"\x01\x67\x01",
                    dev_eui="0004A30B001C0530",
                    source="tts",
                )
            ],
        )
        == []
    )
    assert outbox.frames.check("0004A30B001C0530", 3).kind == "duplicate"
    [letter] = outbox.dead_letters.list()
    assert letter.payload == b"\x01\x67\x01"


def test_an_entity_with_its_own_context_is_stored_without_the_url(outbox: Outbox) -> None:
    own = reading(1, device=1)
    with_own = own._replace(entity={**own.entity, "@context": ["https://example.org/own.jsonld"]})
    outbox.put_many([reading(0), with_own])
    contexts = {item.entity_id: item.context for item in outbox.items()}
    assert contexts == {
        "urn:ngsi-ld:AirQualityObserved:point-0": "https://example.org/context.jsonld",
        "urn:ngsi-ld:AirQualityObserved:point-1": None,  # its own @context is the one it gets
    }


def test_opening_an_older_outbox_drops_the_url_of_rows_with_their_own_context(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    Outbox(path).close()
    with sqlite3.connect(path) as conn:  # rows as an outbox before user_version 1 wrote them
        conn.execute("PRAGMA user_version = 0")
        url = "https://example.org/context.jsonld"
        for n, body in enumerate(
            [
                {"id": "urn:ngsi-ld:X:own", "type": "X", "@context": [url]},
                {"id": "urn:ngsi-ld:X:text", "type": "X", "note": {"value": '"@context"'}},
                {"id": "urn:ngsi-ld:X:plain", "type": "X"},
            ]
        ):
            conn.execute(
                "INSERT INTO outbox (context, entity_id, entity_type, body, enqueued_us) "
                "VALUES (?, ?, 'X', ?, ?)",
                (url, body["id"], json.dumps(body, separators=(",", ":")).encode(), n),
            )
    conn.close()
    outbox = Outbox(path)
    try:
        contexts = {item.entity_id: item.context for item in outbox.items()}
        assert contexts == {
            "urn:ngsi-ld:X:own": None,
            "urn:ngsi-ld:X:text": "https://example.org/context.jsonld",
            "urn:ngsi-ld:X:plain": "https://example.org/context.jsonld",
        }
    finally:
        outbox.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()


def test_oldest_age(outbox: Outbox) -> None:
    assert outbox.oldest_age() is None
    outbox.put_many([reading(1)])
    age = outbox.oldest_age(datetime.now(UTC) + timedelta(minutes=1))
    assert age is not None
    assert timedelta(seconds=59) < age < timedelta(seconds=65)


def test_puts_from_threads_while_a_consumer_drains_deliver_everything_once(
    outbox: Outbox,
) -> None:
    writers, per_writer = 4, 300
    seen: list[tuple[str | None, int | None]] = []
    done = threading.Event()

    def write(device: int) -> None:
        for start in range(0, per_writer, 25):
            outbox.put_many([reading(i, device=device) for i in range(start, start + 25)])

    def drain() -> None:
        while True:
            generation = outbox.generation
            with outbox.lease(64) as tx:
                seen.extend((item.dev_eui, item.f_cnt) for item in tx.items)
                tx.accept([item.id for item in tx.items])
            if not tx and done.is_set() and outbox.depth == 0:
                return
            if not tx:
                outbox.wait(generation, 0.05)

    consumer = threading.Thread(target=drain)
    consumer.start()
    threads = [threading.Thread(target=write, args=(device,)) for device in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    outbox.notify()
    consumer.join(timeout=30)
    assert not consumer.is_alive()
    assert len(seen) == writers * per_writer
    assert set(seen) == {
        (f"00000000000000{device:02X}", i) for device in range(writers) for i in range(per_writer)
    }


_ENQUEUER = textwrap.dedent(
    """
    import sys
    from agents.delivery import Outbox, OutboxItem

    outbox = Outbox(sys.argv[1])
    batch = 0
    while True:
        items = [
            OutboxItem(
                entity={"id": f"urn:ngsi-ld:Thing:{batch}-{i}", "type": "Thing",
                        "n": {"type": "Property", "value": i}},
                dev_eui="0004A30B001C0530",
                f_cnt=batch * 50 + i,
            )
            for i in range(50)
        ]
        verdicts = [outbox.frames.check("0004A30B001C0530", batch * 50 + i) for i in range(50)]
        outbox.put_many(items, frames=verdicts)
        print(f"acked {batch}", flush=True)
        batch += 1
    """
)


def test_every_acknowledged_item_survives_a_kill_9_of_the_enqueuing_process(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", _ENQUEUER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    assert process.stdout is not None
    acked: list[int] = []
    try:
        while len(acked) < 40:
            line = process.stdout.readline()
            if not line:
                raise AssertionError(process.stderr.read().decode() if process.stderr else "")
            acked.append(int(line.split()[1]))
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    # Lines printed after the 40th read were acknowledged too.
    acked.extend(int(line.split()[1]) for line in process.stdout.read().decode().splitlines())
    process.stdout.close()
    if process.stderr is not None:
        process.stderr.close()
    with Outbox(path) as reopened:
        stored = {item.entity_id for item in reopened.items()}
        for batch in acked:
            for i in range(50):
                assert f"urn:ngsi-ld:Thing:{batch}-{i}" in stored
        # Nothing half-written: whole batches only, and the frame counters agree with them.
        assert reopened.depth % 50 == 0
        frames = reopened.frames.device("0004A30B001C0530")
        assert frames is not None
        assert frames.last_f_cnt == reopened.depth - 1
        assert reopened.frames.check("0004A30B001C0530", max(acked) * 50 + 49).kind == "duplicate"
