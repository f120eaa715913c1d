"""Test helpers for subscriptions and notifications: a broker served by uvicorn on a free
loopback port, an HTTP notification receiver, an MQTT subscriber. No tests live here."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion

from ngsi.broker import BrokerSettings, create_app
from ngsi.broker._subscriptions import SubscriptionService, create_extension
from tests._serve import serve_app
from tests.conftest import free_port, wait_for_port

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
API = "/ngsi-ld/v1"


@dataclass
class RunningBroker:
    """A broker app served by uvicorn in a thread; `client` talks to it over real HTTP."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread
    app: Any
    client: httpx.Client

    @property
    def service(self) -> SubscriptionService:
        service = self.app.state.broker.extras["subscriptions"]
        assert isinstance(service, SubscriptionService)
        return service

    def create_entity(self, entity: dict[str, Any], *, tenant: str | None = None) -> None:
        headers = {"Content-Type": "application/json"}
        if tenant:
            headers["NGSILD-Tenant"] = tenant
        response = self.client.post(f"{API}/entities", json=entity, headers=headers)
        assert response.status_code == 201, response.text

    def patch_attrs(self, entity_id: str, attrs: dict[str, Any], **kw: Any) -> None:
        response = self.client.patch(f"{API}/entities/{entity_id}/attrs", json=attrs, **kw)
        assert response.status_code == 204, response.text

    def append_attrs(self, entity_id: str, attrs: dict[str, Any]) -> None:
        response = self.client.post(f"{API}/entities/{entity_id}/attrs", json=attrs)
        assert response.status_code == 204, response.text

    def subscribe(self, subscription: dict[str, Any], *, tenant: str | None = None) -> str:
        headers = {"Content-Type": "application/json"}
        if tenant:
            headers["NGSILD-Tenant"] = tenant
        body = {"type": "Subscription", **subscription}
        response = self.client.post(f"{API}/subscriptions", json=body, headers=headers)
        assert response.status_code == 201, response.text
        location = response.headers["location"]
        return location.rsplit("/", 1)[-1]


@contextlib.contextmanager
def running_broker(
    data_dir: Path, *, temporal: dict[str, Any] | None = None, **options: Any
) -> Iterator[RunningBroker]:
    """Serve a broker with the subscription extension (its options passed through) and, when
    `temporal` is given, the temporal extension with those options."""
    port = free_port()
    settings = BrokerSettings(data_dir=data_dir, port=port)
    options.setdefault("retry_delays", (0.05, 0.1))
    options.setdefault("timeout", 2.0)
    extensions: list[Any] = [create_extension(settings, **options)]
    if temporal is not None:
        from ngsi.broker._temporal import create_extension as temporal_extension

        extensions.append(temporal_extension(settings, **temporal))
    app = create_app(settings, extensions=extensions)
    with (
        serve_app(app, port=port, name="broker") as served,
        httpx.Client(base_url=served.url, timeout=10) as client,
    ):
        yield RunningBroker(
            url=served.url, server=served.server, thread=served.thread, app=app, client=client
        )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every request it gets.

    `status` is the answer (200 by default); `hang` makes it read the request and never answer;
    `delay` answers after that many seconds.
    """

    port: int
    server: ThreadingHTTPServer
    requests: queue.Queue[Received] = field(default_factory=queue.Queue)
    status: int = 200
    hang: bool = False
    delay: float = 0.0
    got: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"

    def wait(self, count: int = 1, *, timeout: float = 10.0) -> list[Received]:
        """The next `count` requests (AssertionError if they do not come in time)."""
        return self._take(lambda taken: len(taken) >= count, f"{count} notifications", timeout)

    def wait_entities(self, count: int, *, timeout: float = 10.0) -> list[Any]:
        """The entities of the next notifications, until `count` came (the broker may carry
        several changes that wait together in one notification)."""
        taken = self._take(
            lambda taken: sum(len(r.body["data"]) for r in taken) >= count,
            f"{count} notified entities",
            timeout,
        )
        return [entity for request in taken for entity in request.body["data"]]

    def _take(
        self, enough: Callable[[list[Received]], bool], expected: str, timeout: float
    ) -> list[Received]:
        taken: list[Received] = []
        deadline = time.monotonic() + timeout
        while not enough(taken):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"expected {expected}, got {len(taken)} requests: {taken}")
            try:
                taken.append(self.requests.get(timeout=remaining))
            except queue.Empty:
                continue
        return taken

    def none_within(self, seconds: float) -> None:
        """Assert that no request arrives within `seconds`."""
        try:
            extra = self.requests.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected notification: {extra}")


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    port = free_port()
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            me = holder["receiver"]
            item = Received(
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(raw) if raw else None,
                at=time.monotonic(),
            )
            me.got.append(item)
            me.requests.put(item)
            if me.hang:
                time.sleep(60)
                return
            if me.delay:
                time.sleep(me.delay)
            self.send_response(me.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    me = Receiver(port=port, server=server)
    holder["receiver"] = me
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    wait_for_port(port)
    try:
        yield me
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (the dead-endpoint case)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        sock.close()


@dataclass
class MqttSubscriber:
    """A paho client subscribed to a topic (again after every reconnect)."""

    client: mqtt.Client
    messages: queue.Queue[tuple[str, Any, int]]
    subscribed: threading.Event

    def wait(self, *, timeout: float = 10.0) -> tuple[str, Any, int]:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no MQTT message arrived") from None


@contextlib.contextmanager
def mqtt_subscriber(host: str, port: int, topic: str, *, qos: int = 2) -> Iterator[MqttSubscriber]:
    messages: queue.Queue[tuple[str, Any, int]] = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{free_port()}")

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        c.subscribe(topic, qos=qos)

    def on_subscribe(c: mqtt.Client, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        subscribed.set()

    def on_message(c: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        messages.put((message.topic, json.loads(message.payload), message.qos))

    def on_disconnect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        subscribed.clear()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.reconnect_delay_set(min_delay=1, max_delay=2)
    client.connect_async(host, port)
    client.loop_start()
    if not subscribed.wait(10):
        raise RuntimeError("the MQTT test subscriber could not subscribe")
    try:
        yield MqttSubscriber(client=client, messages=messages, subscribed=subscribed)
    finally:
        client.disconnect()
        client.loop_stop()
