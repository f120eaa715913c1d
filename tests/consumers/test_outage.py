"""A consumer that is away: what the broker retried to it arrives once, nothing is written twice.

The embedded broker retries a notification after 0.5 s and 2 s by default (about 2.5 s in
all, plus the answer timeouts), so with its defaults a consumer may be away that long and no
longer: what fails after the last retry is counted as failed, not kept. The 20-second outage
of the acceptance criteria needs a longer retry schedule, which the notifier takes as an option
(`retry_delays`; here 1, 2, 4, 8, 8, 8 s: retries until 31 s after the first failure). Orion-LD
does not retry failed notifications at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from agents.consumers import Consumer, EntityChange, planning_consumer, receiver_app
from agents.subscriptions import apply_plan, parse_consumers_file, plan
from ngsi import Client
from tests.conftest import free_port
from tests.subscriptions._support import (
    TRANSPORTATION,
    broker_with,
    now_text,
    start_consumer,
    traffic_flow,
    wait_until,
)


def subscribe(client: Client, endpoint: str) -> None:
    text = f"""
project: outage
consumers:
  - name: planning
    kind: planning
    endpoint: {endpoint}
    subscriptions:
      - {{name: changes, template: planning.changes, params: {{types: [TrafficFlowObserved]}}}}
"""
    assert apply_plan(client, plan(client, parse_consumers_file(text))).ok


def upsert(client: Client, first: int, count: int, *, pause: float = 0.05) -> None:
    for number in range(first, first + count):
        flow = traffic_flow(number % 3, intensity=number, at=now_text())
        assert client.batch_upsert([flow], context=TRANSPORTATION).ok
        time.sleep(pause)


def archived(path: Path) -> list[tuple[str, int]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT entity_id, observed_us FROM changes").fetchall()


@pytest.mark.slow
def test_a_consumer_down_for_20_seconds_loses_nothing_the_broker_retried(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "archive.db"
    with broker_with(tmp_path / "broker", retry_delays=(1, 2, 4, 8, 8, 8), timeout=2.0) as broker:
        consumer = start_consumer("planning", "--out", str(out), port=port, log=tmp_path / "c.log")
        try:
            with Client(broker.url) as client:
                subscribe(client, consumer.notify_url)
                upsert(client, 0, 10)
                assert wait_until(lambda: len(archived(out)) == 10)
                consumer.stop()
                down_at = time.monotonic()
                upsert(client, 10, 20)
                time.sleep(max(0.0, 20.0 - (time.monotonic() - down_at)))
                consumer = start_consumer(
                    "planning", "--out", str(out), port=port, log=tmp_path / "c.log"
                )
                assert wait_until(lambda: len(archived(out)) >= 30, timeout=30), len(archived(out))
                time.sleep(0.5)
                rows = archived(out)
                assert len(rows) == len(set(rows)) == 30
                (status,) = client.list_subscriptions()
                assert status.notification.last_success is not None
        finally:
            consumer.stop()


def test_within_the_default_retry_window_nothing_is_lost(tmp_path: Path) -> None:
    port = free_port()
    consumer, archive = planning_consumer(
        archive_path=tmp_path / "archive.db", state_dir=tmp_path / "state"
    )
    with broker_with(tmp_path / "broker") as broker, Client(broker.url) as client:
        with consumer.serve(port=port) as running:
            subscribe(client, running.url)
        upsert(client, 0, 3, pause=0.0)
        time.sleep(1.0)  # away for a second: within the default 0.5 s + 2 s of retries
        with consumer.serve(port=port):
            assert wait_until(lambda: archive.count() == 3, timeout=10), archive.count()


class SlowFirstAnswers:
    """ASGI wrapper: the first `slow` answers are held back `delay` seconds (after the
    consumer took the notification), so the broker times out and sends it again."""

    def __init__(self, app: Any, *, slow: int, delay: float) -> None:
        self.app = app
        self.slow = slow
        self.delay = delay

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.slow <= 0:
            await self.app(scope, receive, send)
            return
        self.slow -= 1

        async def late_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(self.delay)
            await send(message)

        await self.app(scope, receive, late_send)


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, timeout=15)
    try:
        yield f"http://127.0.0.1:{port}/notify"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_a_retried_notification_is_not_written_twice(tmp_path: Path) -> None:
    consumer, archive = planning_consumer(archive_path=tmp_path / "a.db", state_dir=tmp_path / "s")
    notified: list[EntityChange] = []
    consumer.on_change(notified.append)
    consumer.start()
    try:
        app = SlowFirstAnswers(receiver_app(consumer), slow=1, delay=1.5)
        with (
            broker_with(tmp_path / "broker", retry_delays=(0.2, 0.5), timeout=0.5) as broker,
            serve(app) as url,
            Client(broker.url) as client,
        ):
            subscribe(client, url)
            upsert(client, 0, 1)
            assert wait_until(lambda: consumer.counters["duplicates"] >= 1, timeout=10)
            upsert(client, 1, 2)
            assert wait_until(lambda: archive.count() == 3, timeout=10)
            time.sleep(0.3)
            assert archive.count() == 3
            assert len(notified) == 3
            # the broker did send the first change twice, with two notification ids
            assert consumer.counters["received"] >= 4
    finally:
        consumer.stop()


def test_notifications_reach_a_consumer_in_this_process(tmp_path: Path) -> None:
    got: list[EntityChange] = []
    consumer = Consumer("t", state_dir=tmp_path / "s")
    consumer.on_change(got.append)
    with (
        broker_with(tmp_path / "broker") as broker,
        consumer.serve() as running,
        Client(broker.url) as client,
    ):
        subscribe(client, running.url)
        upsert(client, 0, 5, pause=0.0)
        assert wait_until(lambda: len(got) == 5)
