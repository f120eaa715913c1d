"""`Consumer`: checking, de-duplicating and handing off notifications, over real HTTP; retries,
dead letters and the durable inbox across restarts."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agents.consumers import Consumer, EntityChange, JsonLinesSink, SharedSecret
from tests.subscriptions._support import air_quality, now_text, wait_until


def notification(
    *entities: dict[str, Any], nid: str | None = None, sid: str = "urn:ngsi-ld:Subscription:s1"
) -> dict[str, Any]:
    return {
        "id": nid or f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
        "type": "Notification",
        "subscriptionId": sid,
        "notifiedAt": now_text(),
        "data": list(entities),
    }


def post(url: str, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(
        url, content=content, headers={"Content-Type": "application/json", **headers}, timeout=5
    )


def test_a_notification_reaches_sinks_and_handlers_in_order(tmp_path: Path) -> None:
    seen: list[EntityChange] = []
    consumer = Consumer("t", sinks=[JsonLinesSink(tmp_path / "out.jsonl")])
    consumer.on_change(seen.append)
    entity = air_quality(1, no2=42, at=now_text())
    with consumer.serve() as running:
        response = post(running.url, notification(entity), **{"NGSILD-Tenant": "city"})
        assert response.status_code == 200
        assert response.json() == {"accepted": 1, "duplicates": 0}
        assert consumer.drain()
    (change,) = seen
    assert change.entity_id == entity["id"]
    assert change.tenant == "city"
    assert change.value("no2") == 42
    line = orjson.loads((tmp_path / "out.jsonl").read_bytes().splitlines()[0])
    assert line["entityId"] == entity["id"]
    assert line["tenant"] == "city"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"not json", 400, "not JSON"),
        ([1, 2], 400, "expected a Notification object"),
        ({"id": "urn:x", "type": "Something"}, 400, "expected type Notification"),
        (
            {"id": "urn:x", "type": "Notification", "notifiedAt": "2024-01-01T00:00:00Z"},
            400,
            "subscriptionId",
        ),
        (
            {
                "id": "urn:x",
                "subscriptionId": "urn:s",
                "notifiedAt": "2024-01-01T00:00:00Z",
                "data": [{"type": "T"}],
            },
            400,
            "data[0]: an entity needs an id",
        ),
        (b"x" * 2_000_000, 413, "larger than"),
    ],
)
def test_bad_notifications_are_refused_with_a_reason(body: Any, status: int, says: str) -> None:
    consumer = Consumer("t")
    with consumer.serve() as running:
        response = post(running.url, body)
    assert response.status_code == status
    assert says in response.json()["detail"]
    assert consumer.counters["invalid"] == 1


def test_the_shared_secret_is_required() -> None:
    got: list[EntityChange] = []
    consumer = Consumer("t", secret=SharedSecret(header="X-Drehscheibe-Secret", value="s3cret"))
    consumer.on_change(got.append)
    body = notification(air_quality(1, no2=1, at=now_text()))
    with consumer.serve() as running:
        assert post(running.url, body).status_code == 401
        assert post(running.url, body, **{"X-Drehscheibe-Secret": "s3cre"}).status_code == 401
        assert post(running.url, body, **{"X-Drehscheibe-Secret": "s3cret!"}).status_code == 401
        assert post(running.url, body, **{"x-drehscheibe-secret": "s3cret"}).status_code == 200
        consumer.drain()
    assert len(got) == 1
    assert consumer.counters["unauthorized"] == 3


def test_repeats_are_dropped_by_notification_id_and_by_change(tmp_path: Path) -> None:
    got: list[EntityChange] = []
    consumer = Consumer("t")
    consumer.on_change(got.append)
    at = now_text()
    first = notification(air_quality(1, no2=1, at=at), air_quality(2, no2=2, at=at))
    with consumer.serve() as running:
        assert post(running.url, first).json() == {"accepted": 2, "duplicates": 0}
        # the same notification again (a redelivery)
        repeat = post(running.url, first).json()
        assert repeat["duplicates"] == 2
        assert repeat["accepted"] == 0
        # a broker's retry: a new notification id around the same changes, plus a new one
        retry = notification(air_quality(1, no2=1, at=at), air_quality(3, no2=3, at=at))
        assert post(running.url, retry).json() == {"accepted": 1, "duplicates": 1}
        # the same entity with a newer observation is a new change
        assert (
            post(running.url, notification(air_quality(1, no2=1, at=now_text()))).json()["accepted"]
            == 1
        )
        consumer.drain()
    assert [c.entity_id[-9:] for c in got] == ["station-1", "station-2", "station-3", "station-1"]


def test_without_a_time_only_the_notification_id_identifies_a_repeat() -> None:
    got: list[EntityChange] = []
    consumer = Consumer("t")
    consumer.on_change(got.append)
    spot = {
        "id": "urn:ngsi-ld:ParkingSpot:1",
        "type": "ParkingSpot",
        "status": {"type": "Property", "value": "free"},
    }
    with consumer.serve() as running:
        for _ in range(2):
            assert post(running.url, notification(spot)).json()["accepted"] == 1
        consumer.drain()
    assert len(got) == 2


def test_a_full_inbox_answers_503_so_the_broker_retries() -> None:
    release = threading.Event()
    consumer = Consumer("t", queue_limit=2)

    @consumer.on_change
    def slow(change: EntityChange) -> None:
        release.wait(10)

    with consumer.serve() as running:
        statuses = [
            post(running.url, notification(air_quality(i, no2=i, at=now_text()))).status_code
            for i in range(5)
        ]
        release.set()
        consumer.drain()
    assert statuses.count(200) >= 2
    assert statuses[-1] == 503
    assert consumer.counters["rejected_full"] >= 1


def test_a_failing_step_is_retried_from_where_it_failed(tmp_path: Path) -> None:
    archive = JsonLinesSink(tmp_path / "a.jsonl")
    calls: list[str] = []
    failures = iter([True, True, False])
    consumer = Consumer("t", sinks=[archive], state_dir=tmp_path / "state", retry_delays=(0.05,))

    @consumer.on_change
    def flaky(change: EntityChange) -> None:
        calls.append(change.entity_id)
        if next(failures, False):
            raise RuntimeError("downstream is down")

    with consumer.serve() as running:
        post(running.url, notification(air_quality(1, no2=1, at=now_text())))
        assert wait_until(lambda: consumer.counters["handled"] == 1, timeout=10)
    assert len(calls) == 3
    assert len((tmp_path / "a.jsonl").read_bytes().splitlines()) == 1
    assert consumer.counters["failures"] == 2


def test_a_notification_that_keeps_failing_is_set_aside(tmp_path: Path) -> None:
    consumer = Consumer("t", state_dir=tmp_path / "state", retry_delays=(0.01,), max_attempts=3)
    got: list[str] = []

    @consumer.on_change
    def picky(change: EntityChange) -> None:
        if change.value("no2") == 666:
            raise ValueError("cannot handle this one")
        got.append(change.entity_id)

    with consumer.serve() as running:
        post(running.url, notification(air_quality(1, no2=666, at=now_text())))
        post(running.url, notification(air_quality(2, no2=1, at=now_text())))
        assert wait_until(lambda: consumer.counters["dead"] == 1 and len(got) == 1, timeout=10)
        assert consumer.inbox.dead_count() == 1


def test_the_durable_inbox_keeps_what_was_acknowledged_and_what_was_seen(tmp_path: Path) -> None:
    state = tmp_path / "state"
    blocked = threading.Event()
    first = Consumer("t", state_dir=state)

    @first.on_change
    def stuck(change: EntityChange) -> None:
        blocked.wait(30)
        raise RuntimeError("stopped before handling")

    at = now_text()
    body = notification(air_quality(1, no2=1, at=at), air_quality(2, no2=2, at=at))
    with first.serve() as running:
        assert post(running.url, body).status_code == 200
        # the consumer "crashes": the handler never succeeds before the stop
        first._stopping.set()
        blocked.set()
    got: list[EntityChange] = []
    second = Consumer("t", state_dir=state)
    second.on_change(got.append)
    with second.serve() as running:
        assert wait_until(lambda: len(got) == 2, timeout=10)
        assert post(running.url, body).json()["duplicates"] == 2
        retried = notification(air_quality(2, no2=2, at=at))
        assert post(running.url, retried).json()["duplicates"] == 1
        second.drain()
    assert len(got) == 2


def test_health_shows_the_counters() -> None:
    consumer = Consumer("t")
    with consumer.serve() as running:
        post(running.url, notification(air_quality(1, no2=1, at=now_text())))
        consumer.drain()
        health = httpx.get(running.base_url + "/health").json()
    assert health["consumer"] == "t"
    assert health["accepted"] == 1
    assert health["durable"] is False
