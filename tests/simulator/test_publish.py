"""Publishing through a real Mosquitto and to a real webhook endpoint; pacing."""

from __future__ import annotations

import contextlib
import io
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agents.lorawan import Uplink, parse_message
from agents.simulator import (
    JsonLinesSink,
    MqttSink,
    PublishError,
    Simulator,
    WebhookSink,
    build_fleet,
    run_simulation,
    tts_topic,
)
from tests.conftest import Mosquitto, free_port


class Subscriber:
    """A paho client subscribed to `#` that keeps (topic, payload) of every message."""

    def __init__(self, port: int) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{free_port()}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda c, u, m, rc, p: self.ready.set()
        self.client.on_message = lambda c, u, msg: self.received.put(
            (msg.topic, bytes(msg.payload))
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10), "the subscriber did not subscribe"

    def take(self, count: int, *, timeout: float = 20.0) -> list[tuple[str, bytes]]:
        found: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                found.append(self.received.get(timeout=0.1))
        return found

    def more(self, wait: float = 0.5) -> int:
        time.sleep(wait)
        return self.received.qsize()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def subscriber(mosquitto: Mosquitto) -> Iterator[Subscriber]:
    running = Subscriber(mosquitto.port)
    try:
        yield running
    finally:
        running.close()


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drehscheibe", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.mqtt
def test_the_cli_publishes_the_requested_count_on_the_right_topics(
    mosquitto: Mosquitto, subscriber: Subscriber
) -> None:
    result = _cli(
        "run", "--devices", "12", "--seed", "5", "--count", "36", "--rate", "150",
        "--qos", "1", "--mqtt-port", str(mosquitto.port), "--no-state", "--output", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = orjson.loads(result.stdout)
    assert summary["uplinks"] == 36
    assert summary["messages"] == 36
    assert summary["failed"] == 0
    received = subscriber.take(36)
    assert len(received) == 36
    assert subscriber.more() == 0
    fleet = build_fleet(12, seed=5)
    expected_topics = {tts_topic(fleet, device) for device in fleet.devices}
    per_topic: dict[str, list[int]] = {}
    for topic, payload in received:
        assert topic in expected_topics
        uplink = parse_message("tts", topic, payload)
        assert isinstance(uplink, Uplink)
        per_topic.setdefault(topic, []).append(uplink.f_cnt or 0)
    assert set(per_topic) == expected_topics
    assert all(sorted(counts) == [0, 1, 2] for counts in per_topic.values())


@pytest.mark.mqtt
def test_chirpstack_with_duplicates_over_qos0(mosquitto: Mosquitto, subscriber: Subscriber) -> None:
    fleet = build_fleet(10, seed=6, network_server="chirpstack-v4")
    simulator = Simulator(fleet, duplicate_rate=0.3)
    with MqttSink("127.0.0.1", mosquitto.port, qos=0) as sink:
        report = run_simulation(simulator, sink, rate=None, count=40)
    assert report.uplinks == 40
    assert report.messages == 40 + report.duplicates
    assert report.duplicates > 3
    received = subscriber.take(report.messages)
    assert len(received) == report.messages
    for topic, payload in received:
        assert topic.startswith(f"application/{fleet.application_uuid}/device/")
        assert topic.endswith("/event/up")
        assert isinstance(parse_message("chirpstack-v4", topic, payload), Uplink)
    ids = [orjson.loads(payload)["deduplicationId"] for _topic, payload in received]
    assert len(ids) - len(set(ids)) == report.duplicates


@pytest.mark.mqtt
def test_a_broker_that_is_not_there_is_reported() -> None:
    sink = MqttSink("127.0.0.1", free_port(), connect_timeout=1.0)
    with pytest.raises(PublishError, match=r"not connected within 1 s"):
        sink.open()
    result = _cli(
        "run", "-n", "3", "--once", "--mqtt-port", str(free_port()), "--no-state",
        "--connect-timeout", "1",
    )  # fmt: skip
    assert result.returncode == 3
    assert "MQTT broker 127.0.0.1" in result.stderr


def test_pacing_spreads_the_uplinks_over_time() -> None:
    simulator = Simulator(build_fleet(5, seed=1))
    out = io.BytesIO()
    report = run_simulation(simulator, JsonLinesSink(out), rate=40.0, count=21)
    assert report.uplinks == 21
    assert report.seconds >= 0.45  # the 21st uplink is due 0.5 s after the first
    lines = out.getvalue().splitlines()
    assert len(lines) == 21
    times = [
        datetime.fromisoformat(orjson.loads(line)["payload"]["uplink_message"]["settings"]["time"])
        for line in lines
    ]
    assert (times[-1] - times[0]).total_seconds() >= 0.45


def test_a_duration_bounds_the_run_and_a_simulated_clock_runs_fast() -> None:
    simulator = Simulator(build_fleet(5, seed=1))
    out = io.BytesIO()
    start = datetime(2024, 6, 11, 6, 0, tzinfo=UTC)
    report = run_simulation(
        simulator, JsonLinesSink(out), rate=20.0, duration=0.5, clock_start=start, speedup=3600
    )
    assert 5 <= report.uplinks <= 11
    assert report.seconds < 1.5
    last = orjson.loads(out.getvalue().splitlines()[-1])["payload"]
    at = datetime.fromisoformat(last["uplink_message"]["settings"]["time"])
    assert 60 * 5 < (at - start).total_seconds() < 3600  # minutes passed in half a second


def test_a_stop_event_ends_the_run() -> None:
    simulator = Simulator(build_fleet(5, seed=1))
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    report = run_simulation(simulator, JsonLinesSink(io.BytesIO()), rate=10.0, stop=stop)
    timer.join()
    assert 2 <= report.uplinks <= 5


@dataclass
class Hook:
    url: str
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    status: int = 204


@pytest.fixture
def hook() -> Iterator[Hook]:
    port = free_port()
    found = Hook(url=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            found.requests.append((self.path, dict(self.headers.items()), body))
            self.send_response(found.status)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_webhooks_post_the_same_json_with_the_secret(hook: Hook) -> None:
    fleet = build_fleet(4, seed=9)
    sink = WebhookSink(
        hook.url + "/webhooks/tts/{devEUI}/{devID}", secret_header="X-Webhook-Secret", secret="s3"
    )
    with sink:
        report = run_simulation(Simulator(fleet), sink, rate=None, count=4)
    assert report.failed == 0
    assert sink.failed == 0
    assert len(hook.requests) == 4
    for path, headers, body in hook.requests:
        _, _, _, eui, device_id = path.split("/")
        assert headers["X-Webhook-Secret"] == "s3"
        assert headers["Content-Type"] == "application/json"
        uplink = parse_message("tts", None, body, path_vars={"devEUI": eui, "devID": device_id})
        assert isinstance(uplink, Uplink)
        assert uplink.dev_eui == eui

    hook.requests.clear()
    chirpstack = fleet.revised(network_server="chirpstack-v4")
    with WebhookSink(hook.url + "/webhooks/chirpstack") as sink:
        run_simulation(Simulator(chirpstack), sink, rate=None, count=2)
    assert [path for path, _, _ in hook.requests] == ["/webhooks/chirpstack?event=up"] * 2
    for _, _, body in hook.requests:
        assert isinstance(parse_message("chirpstack-v4", None, body, event="up"), Uplink)


def test_webhook_refusals_are_counted(hook: Hook) -> None:
    hook.status = 401
    with WebhookSink(hook.url + "/x") as sink:
        report = run_simulation(Simulator(build_fleet(3)), sink, rate=None, count=3)
    assert report.failed == 3
    assert sink.failed == 3
    assert sink.last_error is not None
    assert sink.last_error.startswith("HTTP 401")
