"""A consumer that is away: what the broker retried to it arrives once, nothing is written twice.

The embedded broker retries a failed notification for 2 minutes by default (waits of 0.5 s
doubling up to 4 s: `BrokerSettings.notification_retry_for`, `notification_retry_max_delay`),
with the same notification id on every attempt, so that a consumer restarting within that time
loses nothing and drops what it already took by its id. Orion-LD does not retry at all.
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

import orjson
import pytest
import uvicorn
from pydantic import ValidationError

from agents.consumers import Consumer, EntityChange, planning_consumer, receiver_app
from agents.subscriptions import apply_plan, parse_consumers_file, plan
from ngsi import Client
from ngsi.broker import BrokerSettings
from ngsi.broker._notifier_send import DEFAULT_RETRY_DELAYS, backoff_delays
from tests.broker.conftest import SDM_CONTEXTS, start_broker_process
from tests.conftest import free_port
from tests.subscriptions._support import (
    TRANSPORTATION,
    broker_with,
    now_text,
    start_consumer,
    traffic_flow,
    wait_until,
)


def subscribe(client: Client, endpoint: str, *, consumer: str = "planning") -> None:
    text = f"""
project: outage
consumers:
  - name: {consumer}
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
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        try:
            return conn.execute("SELECT entity_id, observed_us FROM changes").fetchall()
        except sqlite3.OperationalError:
            return []


def test_the_default_retry_schedule_covers_a_restart_of_well_over_20_seconds() -> None:
    settings = BrokerSettings(data_dir=Path("unused"))
    delays = backoff_delays(
        retry_for=settings.notification_retry_for,
        max_delay=settings.notification_retry_max_delay,
    )
    assert delays == DEFAULT_RETRY_DELAYS
    assert delays[:5] == (0.5, 1.0, 2.0, 4.0, 4.0)
    assert max(delays) == 4.0
    assert 120.0 <= sum(delays) < 124.0
    assert backoff_delays(retry_for=0, max_delay=8) == ()
    assert backoff_delays(retry_for=3, max_delay=1, first=0.5) == (0.5, 1.0, 1.0, 1.0)
    with pytest.raises(ValidationError, match="notification_retry_for"):
        BrokerSettings(data_dir=Path("unused"), notification_retry_for=-1)
    with pytest.raises(ValidationError, match="notification_retry_max_delay"):
        BrokerSettings(data_dir=Path("unused"), notification_retry_max_delay=0)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_consumer_down_for_20_seconds_loses_nothing_with_the_default_settings(
    tmp_path: Path,
) -> None:
    """A real `drehscheibe broker serve` with its default options, a real consumer process."""
    preload = [f"--preload-context={url}={path}" for url, path in SDM_CONTEXTS.items()]
    broker = start_broker_process(tmp_path / "broker", *preload, log=tmp_path / "broker.log")
    port = free_port()
    out = tmp_path / "archive.db"
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
            assert wait_until(lambda: len(archived(out)) >= 30, timeout=20), len(archived(out))
            back = time.monotonic() - down_at
            time.sleep(0.5)
            rows = archived(out)
            assert len(rows) == len(set(rows)) == 30
            (status,) = client.list_subscriptions()
            assert status.notification.last_success is not None
            print(f"\nconsumer away 20 s: all 30 changes archived once, {back:.1f} s after it left")
    finally:
        consumer.stop()
        broker.stop()


class Recording:
    """ASGI wrapper: records the id of every notification; the first `slow` answers are held
    back `delay` seconds (after the consumer took the notification), so that the broker times
    out and sends it again."""

    def __init__(self, app: Any, *, slow: int, delay: float) -> None:
        self.app = app
        self.slow = slow
        self.delay = delay
        self.ids: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    self.ids.append(orjson.loads(b"".join(chunks))["id"])
            return message

        if self.slow <= 0:
            await self.app(scope, recording_receive, send)
            return
        self.slow -= 1

        async def late_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(self.delay)
            await send(message)

        await self.app(scope, recording_receive, late_send)


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


def test_a_retried_notification_keeps_its_id_and_is_not_written_twice(tmp_path: Path) -> None:
    consumer, archive = planning_consumer(archive_path=tmp_path / "a.db", state_dir=tmp_path / "s")
    notified: list[EntityChange] = []
    consumer.on_change(notified.append)
    consumer.start()
    try:
        app = Recording(receiver_app(consumer), slow=1, delay=1.5)
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
            # the broker sent the first change twice, both times with the same id
            assert app.ids[0] == app.ids[1]
    finally:
        consumer.stop()


def test_a_dead_endpoint_slows_neither_the_writers_nor_other_subscriptions(
    tmp_path: Path,
) -> None:
    got: list[EntityChange] = []
    consumer = Consumer("live", state_dir=tmp_path / "s")
    consumer.on_change(got.append)
    with (
        broker_with(tmp_path / "broker") as broker,
        consumer.serve() as running,
        Client(broker.url) as client,
    ):
        subscribe(client, f"http://127.0.0.1:{free_port()}/notify", consumer="dead")
        subscribe(client, running.url, consumer="live")
        began = time.monotonic()
        upsert(client, 0, 50, pause=0.0)
        writing = time.monotonic() - began
        assert wait_until(lambda: len(got) == 50, timeout=5), len(got)
        arrived = time.monotonic() - began
        print(
            f"\n50 writes in {writing * 1000:.0f} ms, all at the live consumer in {arrived:.2f} s"
        )
        dead = next(s for s in client.list_subscriptions() if "dead" in str(s.subscription_name))
        assert dead.notification.last_success is None


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
