"""The sender: outcomes mapped from the broker's answers, bisection, backoff, late readings.

Fault injection uses a fake sink (the `Sink` protocol) or the real NGSI-LD client on an httpx
MockTransport; the main path runs against the embedded broker over real HTTP.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agents.delivery import (
    Backoff,
    NgsiSink,
    Outbox,
    OutboxItem,
    QueuedItem,
    Sender,
    Sink,
    WriteResult,
)
from ngsi._client import Client
from ngsi._client_base import RawEntity
from ngsi._retry import RetryPolicy
from tests.broker.conftest import SDM_CONTEXTS, RunningBroker, sdm_url, start_broker

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
ENVIRONMENT = sdm_url("Environment")
FAST = Backoff(initial=0.002, maximum=0.01)
NO_RETRIES = RetryPolicy.none()


def reading(
    point: int,
    *,
    minute: int = 0,
    value: float = 21.5,
    tenant: str | None = "city",
    context: str | None = ENVIRONMENT,
    f_cnt: int | None = None,
) -> OutboxItem:
    at = T0 + timedelta(minutes=minute)
    return OutboxItem(
        entity={
            "id": f"urn:ngsi-ld:AirQualityObserved:point-{point}",
            "type": "AirQualityObserved",
            "temperature": {
                "type": "Property",
                "value": value,
                "unitCode": "CEL",
                "observedAt": at.isoformat().replace("+00:00", "Z"),
            },
        },
        tenant=tenant,
        context=context,
        dev_eui=f"00000000000000{point % 256:02X}",
        f_cnt=f_cnt if f_cnt is not None else minute,
        observed_at=at,
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db") as box:
        yield box


class FakeSink:
    """Accepts everything while `up`; while down, asks for a retry. Records every write."""

    def __init__(self) -> None:
        self.up = True
        self.delivered: list[tuple[str, int | None]] = []
        self.writes: list[list[QueuedItem]] = []
        self.opened = self.closed = 0

    def open(self) -> None:
        self.opened += 1

    def close(self) -> None:
        self.closed += 1

    def write(self, batch: Sequence[QueuedItem]) -> WriteResult:
        self.writes.append(list(batch))
        if not self.up:
            return WriteResult.retry_all(batch, "503 the broker is restarting")
        self.delivered.extend((item.entity_id, item.f_cnt) for item in batch)
        return WriteResult.accept_all(batch)


class Broker:
    """A MockTransport handler: `answer(request, entities)` decides; requests are recorded."""

    def __init__(self, answer: Callable[[httpx.Request, list[dict[str, Any]]], httpx.Response]):
        self.answer = answer
        self.requests: list[tuple[httpx.Request, list[dict[str, Any]]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        entities: list[dict[str, Any]] = orjson.loads(request.content)
        self.requests.append((request, entities))
        return self.answer(request, entities)

    def client(self, **kwargs: Any) -> Client:
        kwargs.setdefault("retries", NO_RETRIES)
        return Client(transport=httpx.MockTransport(self), **kwargs)

    @property
    def sent_ids(self) -> list[list[str]]:
        return [[entity["id"] for entity in entities] for _, entities in self.requests]


def problem(status: int, name: str, detail: str) -> dict[str, Any]:
    return {
        "type": f"https://uri.etsi.org/ngsi-ld/errors/{name}",
        "title": name,
        "status": status,
        "detail": detail,
    }


def all_done(request: httpx.Request, entities: list[dict[str, Any]]) -> httpx.Response:
    return httpx.Response(204)


# The sender with a fake sink ------------------------------------------------------------------


def test_the_sink_is_a_protocol_the_fake_implements() -> None:
    assert isinstance(FakeSink(), Sink)


def test_nothing_is_lost_when_the_sink_fails_for_a_while_then_recovers(outbox: Outbox) -> None:
    sink = FakeSink()
    sink.up = False
    sender = Sender(outbox, sink, batch_size=64, backoff=FAST, idle_wait=0.05)
    sender.start()
    expected: list[tuple[str, int | None]] = []
    for batch in range(20):
        items = [reading(point, minute=batch, f_cnt=batch) for point in range(25)]
        outbox.put_many(items)
        expected.extend((str(item.entity["id"]), batch) for item in items)
        if batch == 10:
            sink.up = True
        time.sleep(0.01)
    deadline = time.monotonic() + 20
    while outbox.depth and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sender.stop(drain_timeout=5)
    assert Counter(sink.delivered) == Counter(expected)
    assert len(sink.delivered) == len(set(sink.delivered)) == 500
    assert outbox.counters.retried > 0
    assert outbox.counters.accepted == 500
    assert (sink.opened, sink.closed) == (1, 1)


def test_a_sink_that_raises_loses_nothing(outbox: Outbox) -> None:
    class Exploding(FakeSink):
        def write(self, batch: Sequence[QueuedItem]) -> WriteResult:
            if len(self.writes) < 2:
                self.writes.append(list(batch))
                raise RuntimeError("the sink has a bug")
            return super().write(batch)

    sink = Exploding()
    outbox.put_many([reading(point) for point in range(5)])
    sender = Sender(outbox, sink, backoff=FAST)
    first = sender.run_once()
    assert (first.retried, first.error) == (5, "RuntimeError: the sink has a bug")
    assert first.needs_backoff
    sender.run_once()
    third = sender.run_once()
    assert third.accepted == 5
    assert outbox.depth == 0
    assert outbox.counters.write_errors == 2


def test_items_the_sink_does_not_report_on_are_retried_not_lost(outbox: Outbox) -> None:
    class Forgetful(FakeSink):
        def write(self, batch: Sequence[QueuedItem]) -> WriteResult:
            return WriteResult(accepted=[batch[0].id, 424242])

    outbox.put_many([reading(point) for point in range(3)])
    report = Sender(outbox, Forgetful()).run_once()
    assert (report.accepted, report.retried) == (1, 2)
    assert [item.attempts for item in outbox.items()] == [1, 1]


def test_stop_drains_what_is_queued(outbox: Outbox) -> None:
    sink = FakeSink()
    outbox.put_many([reading(point) for point in range(1200)])
    sender = Sender(outbox, sink, batch_size=100, backoff=FAST)
    sender.start()
    assert sender.stop(drain_timeout=10)
    assert len(sink.delivered) == 1200
    assert not sender.running


def test_workers_deliver_side_by_side_and_keep_each_entity_in_order(outbox: Outbox) -> None:
    lock = threading.Lock()
    in_flight: list[set[str]] = []
    overlaps: list[int] = []
    shared: list[set[str]] = []

    class Slow(FakeSink):
        def write(self, batch: Sequence[QueuedItem]) -> WriteResult:
            entities = {item.entity_id for item in batch}
            with lock:
                shared.extend(entities & other for other in in_flight if entities & other)
                in_flight.append(entities)
                overlaps.append(len(in_flight))
            time.sleep(0.01)
            with lock:
                in_flight.remove(entities)
                return super().write(batch)

    sink = Slow()
    outbox.put_many([reading(point % 60, minute=point) for point in range(300)])
    sender = Sender(outbox, sink, batch_size=10, backoff=FAST, workers=3)
    sender.start()
    assert sender.stop(drain_timeout=20)
    assert not sender.running
    assert Counter(sink.delivered) == Counter(
        (f"urn:ngsi-ld:AirQualityObserved:point-{point % 60}", point) for point in range(300)
    )
    assert (sink.opened, sink.closed) == (1, 1)  # the sink is the workers' to share
    assert max(overlaps) >= 2  # the workers did write side by side
    assert shared == []  # but never two writes of one entity at once
    for point in range(60):
        minutes = [m for e, m in sink.delivered if e.endswith(f"point-{point}")]
        assert minutes == [minute for minute in range(300) if minute % 60 == point]
    assert outbox.counters.late == 0


def test_stop_waits_for_the_write_in_flight_and_commits_its_outcome(outbox: Outbox) -> None:
    entered = threading.Event()

    class Slow(FakeSink):
        def write(self, batch: Sequence[QueuedItem]) -> WriteResult:
            entered.set()
            time.sleep(0.3)
            return super().write(batch)

    sink = Slow()
    outbox.put_many([reading(point) for point in range(3)])
    sender = Sender(outbox, sink, backoff=FAST)
    sender.start()
    assert entered.wait(5)
    assert sender.stop(drain_timeout=0)
    assert len(sink.delivered) == 3
    assert outbox.depth == 0


def test_stop_gives_up_draining_while_the_sink_fails(outbox: Outbox) -> None:
    sink = FakeSink()
    sink.up = False
    outbox.put_many([reading(point) for point in range(3)])
    sender = Sender(outbox, sink, backoff=Backoff(initial=5, maximum=5))
    sender.start()
    deadline = time.monotonic() + 5
    while not sink.writes and time.monotonic() < deadline:
        time.sleep(0.005)
    started = time.monotonic()
    assert not sender.stop(drain_timeout=10)
    assert time.monotonic() - started < 3
    assert outbox.depth == 3


def test_an_idle_sender_wakes_when_items_are_put(outbox: Outbox) -> None:
    sink = FakeSink()
    sender = Sender(outbox, sink, idle_wait=30)
    sender.start()
    try:
        time.sleep(0.05)
        outbox.put_many([reading(1)])
        deadline = time.monotonic() + 5
        while outbox.depth and time.monotonic() < deadline:
            time.sleep(0.005)
        assert outbox.depth == 0
    finally:
        sender.stop(drain_timeout=1)


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


def lingering(
    outbox: Outbox, *, batch_size: int, linger: float, workers: int = 1
) -> tuple[FakeSink, Sender]:
    """A started sender that has just sent one reading, so that it lingers now."""
    sink = FakeSink()
    sender = Sender(
        outbox, sink, batch_size=batch_size, backoff=FAST, linger=linger, workers=workers
    )
    sender.start()
    outbox.put_many([reading(1)])
    _wait_for(lambda: len(sink.writes) == 1)  # an idle sender goes at once
    return sink, sender


@pytest.mark.parametrize("workers", [1, 2])
def test_after_a_pass_without_a_full_batch_the_sender_lingers(outbox: Outbox, workers: int) -> None:
    with pytest.raises(ValueError, match="linger"):
        Sender(outbox, FakeSink(), linger=-1)
    # with two workers, the idle one leaves the puts to the one that lingers
    sink, sender = lingering(outbox, batch_size=100, linger=1.0, workers=workers)
    try:
        seen = time.monotonic()
        outbox.put_many([reading(2)])
        outbox.put_many([reading(3)])
        _wait_for(lambda: outbox.depth == 0)
        assert time.monotonic() - seen >= 0.5
        assert [len(write) for write in sink.writes] == [1, 2]  # both puts in one pass
    finally:
        sender.stop(drain_timeout=1)


def test_a_full_batch_ends_the_linger_at_once(outbox: Outbox) -> None:
    sink, sender = lingering(outbox, batch_size=10, linger=60)
    try:
        outbox.put_many([reading(point) for point in range(100, 110)])
        _wait_for(lambda: outbox.depth == 0)
        assert outbox.depth == 0
        assert [len(write) for write in sink.writes] == [1, 10]
    finally:
        sender.stop(drain_timeout=1)


def test_stop_ends_the_linger_and_delivers_what_waits(outbox: Outbox) -> None:
    sink, sender = lingering(outbox, batch_size=100, linger=60)
    outbox.put_many([reading(point) for point in range(2, 5)])
    started = time.monotonic()
    assert sender.stop(drain_timeout=10)
    assert time.monotonic() - started < 5
    assert sorted(entity for entity, _ in sink.delivered) == sorted(
        f"urn:ngsi-ld:AirQualityObserved:point-{point}" for point in range(1, 5)
    )


def test_backoff_grows_with_jitter_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, rng=random.Random(7))
    waits = [backoff.failure() for _ in range(6)]
    for n, wait in enumerate(waits):
        ceiling = min(8.0, 2.0**n)
        assert ceiling / 2 <= wait <= ceiling
    assert len(set(waits)) == len(waits)
    assert backoff.failure(retry_after=6.5) >= 6.5
    assert backoff.failure(retry_after=600) <= 8.0
    backoff.reset()
    assert backoff.failure() <= 1.0
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=0)


# Late readings --------------------------------------------------------------------------------


def test_a_late_reading_does_not_overwrite_a_newer_one(outbox: Outbox) -> None:
    sink = FakeSink()
    sender = Sender(outbox, sink)
    outbox.put_many([reading(1, minute=5, value=25.0)])
    sender.run_once()
    outbox.put_many([reading(1, minute=3, value=23.0), reading(2, minute=1)])
    report = sender.run_once()
    assert (report.accepted, report.late) == (2, 1)
    assert [item.entity_id for item in sink.writes[-1]] == [
        "urn:ngsi-ld:AirQualityObserved:point-2"
    ]
    assert outbox.counters.late == 1
    assert outbox.counters.snapshot()["sent"] == 2
    assert outbox.depth == 0
    # The same reading again (a redelivery) is not late: it is sent.
    outbox.put_many([reading(1, minute=5, value=25.0)])
    assert sender.run_once().late == 0
    assert sink.writes[-1][0].observed_at == T0 + timedelta(minutes=5)


def test_late_readings_go_to_the_history_sink_when_there_is_one(outbox: Outbox) -> None:
    current, history = FakeSink(), FakeSink()
    sender = Sender(outbox, current, history_sink=history)
    outbox.put_many([reading(1, minute=5)])
    sender.run_once()
    outbox.put_many([reading(1, minute=3)])
    history.up = False
    assert sender.run_once().retried == 1
    history.up = True
    assert sender.run_once().late == 1
    assert history.delivered == [("urn:ngsi-ld:AirQualityObserved:point-1", 3)]
    assert len(current.delivered) == 1


def test_readings_of_one_entity_in_a_batch_go_oldest_first_in_separate_requests(
    outbox: Outbox,
) -> None:
    broker = Broker(all_done)
    outbox.put_many([reading(1, minute=m) for m in (7, 5, 9)] + [reading(2, minute=6)])
    report = Sender(outbox, NgsiSink(broker.client())).run_once()
    assert report.accepted == 4
    observed = [
        [entity["temperature"]["observedAt"] for entity in entities]
        for _, entities in broker.requests
    ]
    assert observed == [
        ["2024-05-01T10:05:00Z", "2024-05-01T10:06:00Z"],
        ["2024-05-01T10:07:00Z"],
        ["2024-05-01T10:09:00Z"],
    ]
    mark = outbox.watermark("urn:ngsi-ld:AirQualityObserved:point-1", tenant="city")
    assert mark == int((T0 + timedelta(minutes=9)).timestamp() * 1_000_000)


def test_a_reading_waits_while_an_older_one_of_its_entity_is_not_delivered(
    outbox: Outbox,
) -> None:
    broker = Broker(
        lambda request, entities: httpx.Response(503, json=problem(503, "X", "overloaded"))
    )
    outbox.put_many([reading(1, minute=1), reading(1, minute=2)])
    report = Sender(outbox, NgsiSink(broker.client())).run_once()
    assert report.retried == 2
    assert len(broker.requests) == 1
    assert outbox.watermark("urn:ngsi-ld:AirQualityObserved:point-1", tenant="city") is None


# Outcomes from the broker's answers -----------------------------------------------------------


def test_per_entity_rejections_go_to_dead_letters_and_the_rest_is_accepted(
    outbox: Outbox,
) -> None:
    def answer(request: httpx.Request, entities: list[dict[str, Any]]) -> httpx.Response:
        ids = [entity["id"] for entity in entities]
        bad = [i for i in ids if i.endswith(("-3", "-7"))]
        return httpx.Response(
            207,
            json={
                "success": [i for i in ids if i not in bad],
                "errors": [
                    {"entityId": i, "error": problem(400, "BadRequestData", f"{i}: bad unit")}
                    for i in bad
                ],
            },
        )

    broker = Broker(answer)
    outbox.put_many([reading(point, f_cnt=point) for point in range(10)])
    report = Sender(outbox, NgsiSink(broker.client())).run_once()
    assert (report.accepted, report.rejected, report.retried) == (8, 2, 0)
    assert len(broker.requests) == 1
    letters = outbox.dead_letters.list(reason="broker-rejected")
    assert [letter.entity_id for letter in letters] == [
        "urn:ngsi-ld:AirQualityObserved:point-3",
        "urn:ngsi-ld:AirQualityObserved:point-7",
    ]
    first = letters[0]
    assert first.detail is not None
    assert first.detail["status"] == 400
    assert first.detail["problem"]["detail"] == "urn:ngsi-ld:AirQualityObserved:point-3: bad unit"
    assert "400 BadRequestData" in first.message
    assert first.source == "ngsi-ld"
    assert first.payload_json == reading(3).entity
    assert outbox.depth == 0


def test_a_batch_rejected_as_a_whole_is_bisected_to_the_bad_entity(outbox: Outbox) -> None:
    def answer(request: httpx.Request, entities: list[dict[str, Any]]) -> httpx.Response:
        if any(entity["temperature"]["value"] == "hot" for entity in entities):
            return httpx.Response(400, json=problem(400, "BadRequestData", "invalid payload"))
        return httpx.Response(204)

    broker = Broker(answer)
    items = [reading(point) for point in range(16)]
    bad = reading(11, value=0.0)
    bad.entity["temperature"]["value"] = "hot"
    items[11] = bad
    outbox.put_many(items)
    report = Sender(outbox, NgsiSink(broker.client())).run_once()
    assert (report.accepted, report.rejected, report.retried) == (15, 1, 0)
    [letter] = outbox.dead_letters.list()
    assert letter.entity_id == "urn:ngsi-ld:AirQualityObserved:point-11"
    # 1 whole request, then two halves per level down to the one entity.
    assert len(broker.requests) == 1 + 2 * 4
    assert outbox.depth == 0


def test_a_broker_that_is_away_keeps_every_item_for_later(outbox: Outbox) -> None:
    def answer(request: httpx.Request, entities: list[dict[str, Any]]) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    broker = Broker(answer)
    outbox.put_many([reading(p, tenant=t) for p in range(3) for t in ("a", "b")])
    report = Sender(outbox, NgsiSink(broker.client())).run_once()
    assert (report.accepted, report.rejected, report.retried) == (0, 0, 6)
    assert report.needs_backoff
    # After no answer at all, the other tenant's request is not even tried.
    assert len(broker.requests) == 1
    assert [item.attempts for item in outbox.items()] == [1] * 6
    assert outbox.dead_letters.count() == 0


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (503, "LdContextNotAvailable"),
        (500, "InternalError"),
        (429, "TooManyRequests"),
        (401, "Unauthorized"),
        (404, "ResourceNotFound"),
    ],
)
def test_answers_an_operator_or_time_can_fix_are_retried_not_dead_lettered(
    outbox: Outbox, status: int, name: str
) -> None:
    broker = Broker(
        lambda request, entities: httpx.Response(status, json=problem(status, name, "try later"))
    )
    outbox.put_many([reading(point) for point in range(4)])
    report = Sender(outbox, NgsiSink(broker.client())).run_once()
    assert (report.accepted, report.rejected, report.retried) == (0, 0, 4)
    assert outbox.dead_letters.count() == 0
    assert outbox.items()[0].attempts == 1


def test_a_207_without_a_word_on_an_entity_retries_it(outbox: Outbox) -> None:
    def answer(request: httpx.Request, entities: list[dict[str, Any]]) -> httpx.Response:
        return httpx.Response(207, json={"success": [entities[0]["id"]], "errors": []})

    outbox.put_many([reading(1), reading(2)])
    report = Sender(outbox, NgsiSink(Broker(answer).client())).run_once()
    assert (report.accepted, report.retried) == (1, 1)


def test_requests_are_grouped_by_tenant_and_context_with_options_update(outbox: Outbox) -> None:
    broker = Broker(all_done)
    weather = sdm_url("Weather")
    outbox.put_many(
        [
            reading(1, tenant="a", context=ENVIRONMENT),
            reading(2, tenant="b", context=ENVIRONMENT),
            reading(3, tenant="a", context=weather),
            reading(4, tenant="a", context=ENVIRONMENT),
            reading(5, tenant=None, context=None),
        ]
    )
    client = broker.client(tenant="default-city", context=sdm_url("Device"))
    assert Sender(outbox, NgsiSink(client)).run_once().accepted == 5
    seen = {
        (
            request.headers.get("NGSILD-Tenant"),
            request.headers.get("Link", "").split(">")[0].lstrip("<"),
            request.url.params.get("options"),
            tuple(entity["id"].rsplit("-", 1)[1] for entity in entities),
        )
        for request, entities in broker.requests
    }
    assert seen == {
        ("a", ENVIRONMENT, "update", ("1", "4")),
        ("b", ENVIRONMENT, "update", ("2",)),
        ("a", weather, "update", ("3",)),
        ("default-city", sdm_url("Device"), "update", ("5",)),
    }
    assert all(
        request.url.path.endswith("/entityOperations/upsert") for request, _ in broker.requests
    )


def test_recovery_after_failures_delivers_each_item_once(outbox: Outbox) -> None:
    calls = {"n": 0}

    def answer(request: httpx.Request, entities: list[dict[str, Any]]) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 3:
            return httpx.Response(503, json=problem(503, "InternalError", "starting"))
        return httpx.Response(204)

    broker = Broker(answer)
    outbox.put_many([reading(point, f_cnt=point) for point in range(50)])
    sender = Sender(outbox, NgsiSink(broker.client()), batch_size=20, backoff=FAST)
    sender.start()
    deadline = time.monotonic() + 10
    while outbox.depth and time.monotonic() < deadline:
        time.sleep(0.005)
    assert sender.stop(drain_timeout=2)
    delivered = [entity["id"] for request, entities in broker.requests[3:] for entity in entities]
    assert sorted(delivered) == sorted(str(reading(p).entity["id"]) for p in range(50))


# Against the embedded broker over real HTTP ---------------------------------------------------


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    with start_broker(
        tmp_path_factory.mktemp("sender-broker"), preload_contexts=dict(SDM_CONTEXTS)
    ) as running:
        yield running


def test_delivery_to_the_embedded_broker(embedded: RunningBroker, outbox: Outbox) -> None:
    tenant = "sender-e2e"
    with Client(
        embedded.url, profile="embedded", context=ENVIRONMENT, tenant=tenant, timeout=10
    ) as client:
        # An admin's attribute on the entity must survive the agent's upserts.
        client.batch_upsert(
            [
                {
                    "id": "urn:ngsi-ld:AirQualityObserved:point-1",
                    "type": "AirQualityObserved",
                    "name": {"type": "Property", "value": "Münsterplatz"},
                }
            ]
        )
        bad = reading(2, minute=1, tenant=tenant)
        bad.entity["temperature"].pop("value")
        outbox.put_many(
            [
                reading(1, minute=3, value=23.0, tenant=tenant),
                reading(1, minute=1, value=21.0, tenant=tenant),
                bad,
                reading(3, minute=2, value=19.0, tenant=tenant),
            ]
        )
        sender = Sender(outbox, NgsiSink(client), backoff=FAST)
        first = sender.run_once()
        assert (first.accepted, first.rejected, first.retried) == (3, 1, 0)
        # A late reading, arriving after the newer one was delivered.
        outbox.put_many([reading(1, minute=2, value=99.0, tenant=tenant)])
        assert sender.run_once().late == 1

        stored = client.retrieve("urn:ngsi-ld:AirQualityObserved:point-1")
        assert stored["temperature"]["value"] == 23.0
        assert stored["temperature"]["observedAt"] == "2024-05-01T10:03:00Z"
        assert stored["name"]["value"] == "Münsterplatz"
        assert (
            client.retrieve("urn:ngsi-ld:AirQualityObserved:point-3")["temperature"]["value"]
            == 19.0
        )
        [letter] = outbox.dead_letters.list()
        assert letter.entity_id == "urn:ngsi-ld:AirQualityObserved:point-2"
        assert "non-null 'value'" in letter.message
        assert outbox.depth == 0


def test_the_embedded_broker_stopped_and_restarted_loses_nothing(
    tmp_path: Path, outbox: Outbox
) -> None:
    from tests.conftest import free_port

    port = free_port()
    data = tmp_path / "broker"
    tenant = "restart"

    def start() -> Any:
        return start_broker(data, port=port, preload_contexts=dict(SDM_CONTEXTS))

    retries = RetryPolicy(attempts=1)
    with Client(
        f"http://127.0.0.1:{port}",
        profile="embedded",
        context=ENVIRONMENT,
        tenant=tenant,
        timeout=5,
        retries=retries,
    ) as client:
        sender = Sender(outbox, NgsiSink(client), batch_size=50, backoff=FAST, idle_wait=0.05)
        with start():
            sender.start()
            outbox.put_many([reading(p, minute=1, tenant=tenant) for p in range(40)])
            deadline = time.monotonic() + 10
            while outbox.depth and time.monotonic() < deadline:
                time.sleep(0.01)
            assert outbox.depth == 0
        # The broker is away: readings keep coming and wait in the outbox.
        outbox.put_many([reading(p, minute=2, tenant=tenant) for p in range(40)])
        time.sleep(0.2)
        assert outbox.depth == 40
        assert outbox.counters.retried > 0
        with start():
            deadline = time.monotonic() + 15
            while outbox.depth and time.monotonic() < deadline:
                time.sleep(0.01)
            assert sender.stop(drain_timeout=5)
            for p in range(40):
                stored = client.retrieve(f"urn:ngsi-ld:AirQualityObserved:point-{p}")
                assert stored["temperature"]["observedAt"] == "2024-05-01T10:02:00Z"
    assert outbox.counters.accepted == 80
    assert outbox.dead_letters.count() == 0


@pytest.mark.parametrize("raw_json", [None, False])
def test_the_ngsi_sink_passes_the_outbox_json_through(
    outbox: Outbox, raw_json: bool | None
) -> None:
    broker = Broker(all_done)
    own = reading(3, minute=2)
    both = reading(4, minute=3)  # its own @context and a URL: its own one is sent
    outbox.put_many(
        [
            reading(1),
            reading(2, minute=1),
            OutboxItem(entity={**own.entity, "@context": ENVIRONMENT}, observed_at=own.observed_at),
            both._replace(entity={**both.entity, "@context": [ENVIRONMENT]}),
        ]
    )
    stored = {item.entity_id: item.body for item in outbox.items()}
    client = broker.client()
    given: list[Any] = []
    upsert = client.batch_upsert

    def spy(entities: list[Any], **options: Any) -> Any:
        given.extend(entities)
        return upsert(entities, **options)

    client.batch_upsert = spy  # type: ignore[method-assign]
    sink = NgsiSink(client, raw_json=raw_json)

    assert sink.raw_json is (raw_json is None)
    assert Sender(outbox, sink).run_once().accepted == 4
    sent = {e["id"]: e for _, entities in broker.requests for e in entities}
    assert sent == {key: orjson.loads(body) for key, body in stored.items()}
    raw = {e.entity_id: e.json for e in given if isinstance(e, RawEntity)}
    if raw_json is None:  # the item with its own @context goes as a dict
        assert raw == {key: body for key, body in stored.items() if b"@context" not in body}
        assert len(raw) == 2
    else:
        assert raw == {}
