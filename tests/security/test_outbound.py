"""Outbound safety over real HTTP: a broker reachable from the network does not notify or fetch
@contexts from loopback, private or link-local hosts unless allowed, also when a name resolves
to one when the connection is made (DNS rebinding, injected by a resolver that lies), and never
follows a redirect."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from ngsi._outbound import GuardedTransport, local_address_kind
from ngsi.broker._subscriptions_model import NotificationHosts
from tests.broker.conftest import start_broker
from tests.broker.test_notif_support import receiver
from tests.conftest import free_port, wait_for_port

JSON = {"Content-Type": "application/json"}
SENSOR = {"id": "urn:ngsi-ld:Sensor:o1", "type": "Sensor", "v": {"type": "Property", "value": 1}}


def subscription(uri: str) -> dict[str, Any]:
    return {
        "type": "Subscription",
        "entities": [{"type": "Sensor"}],
        "notification": {"endpoint": {"uri": uri}},
    }


@pytest.fixture
def lying_resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names → the address the resolver gives for them (others resolve as usual)."""
    answers: dict[str, str] = {}
    real = anyio.getaddrinfo

    async def resolve(host: Any, port: Any, **kwargs: Any) -> Any:
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return await real(host, port, **kwargs)

    monkeypatch.setattr(anyio, "getaddrinfo", resolve)
    return answers


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:{port}/n",
        "http://localhost:{port}/n",
        "http://10.0.0.5/n",
        "http://172.20.1.1/n",
        "http://192.168.178.1/n",
        "http://100.64.0.1/n",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00::1]/n",
        "http://[::ffff:10.1.2.3]/n",
        "mqtt://10.0.0.9:1883/city/t",
    ],
)
def test_a_broker_off_loopback_refuses_local_endpoints(tmp_path: Path, uri: str) -> None:
    with (
        start_broker(tmp_path, host="0.0.0.0", allow_anonymous=True) as running,
        httpx.Client(base_url=running.api, timeout=10) as http,
    ):
        refused = http.post("/subscriptions", json=subscription(uri.format(port=running.port)))
        assert refused.status_code == 400, refused.text
        detail = refused.json()["detail"]
        assert "notification_allow_hosts" in detail
        assert "address" in detail
        assert http.get("/subscriptions").json() == []


def test_an_allowed_local_endpoint_is_notified(tmp_path: Path) -> None:
    with (
        receiver() as rx,
        start_broker(
            tmp_path, host="0.0.0.0", allow_anonymous=True, notification_allow_hosts=["127.0.0.1"]
        ) as running,
        httpx.Client(base_url=running.api, timeout=10) as http,
    ):
        assert http.post("/subscriptions", json=subscription(rx.url)).status_code == 201
        refused = http.post("/subscriptions", json=subscription("http://10.0.0.5/n"))
        assert refused.status_code == 400
        assert http.post("/entities", json=SENSOR).status_code == 201
        assert rx.wait(1)[0].body["data"][0]["id"] == SENSOR["id"]


def test_a_name_that_resolves_to_loopback_is_not_connected(
    tmp_path: Path, lying_resolver: dict[str, str]
) -> None:
    lying_resolver["consumer.example"] = "127.0.0.1"
    with (
        receiver() as rx,
        start_broker(tmp_path, host="0.0.0.0", allow_anonymous=True) as running,
        httpx.Client(base_url=running.api, timeout=10) as http,
    ):
        made = http.post(
            "/subscriptions", json=subscription(f"http://consumer.example:{rx.port}/n")
        )
        assert made.status_code == 201, made.text
        assert http.post("/entities", json=SENSOR).status_code == 201
        location = running.url + made.headers["location"]
        deadline = time.monotonic() + 10
        while True:
            shown = http.get(location).json()["notification"]
            if shown.get("timesFailed"):
                break
            assert time.monotonic() < deadline, shown
            time.sleep(0.05)
        assert shown["status"] == "failed"
        rx.none_within(0.5)


def test_the_connect_check_sees_every_resolved_address() -> None:
    policy = NotificationHosts.of(None, bind_host="0.0.0.0")
    ip = ipaddress.ip_address
    assert policy.checks_addresses
    assert policy.connect_problem("consumer.example", ip("203.0.113.7")) is None
    problem = policy.connect_problem("consumer.example", ip("10.9.8.7"))
    assert problem is not None
    assert "10.9.8.7" in problem
    assert "private" in problem
    assert not NotificationHosts.of(None, bind_host="127.0.0.1").checks_addresses
    # A name the allow-list names is trusted wherever it resolves.
    listed = NotificationHosts.of(["consumer.example"], bind_host="0.0.0.0")
    assert not listed.checks_addresses
    assert listed.connect_problem("consumer.example", ip("127.0.0.1")) is None
    assert listed.connect_problem("other.example", ip("203.0.113.7")) is not None
    assert local_address_kind(ip("::ffff:169.254.169.254")) == "link-local"
    assert local_address_kind(ip("8.8.8.8")) is None


def test_the_guarded_transport_connects_to_the_address_it_checked(
    lying_resolver: dict[str, str],
) -> None:
    lying_resolver["consumer.example"] = "127.0.0.1"
    seen: list[tuple[str, str]] = []

    def check(host: str, address: Any) -> str | None:
        seen.append((host, str(address)))
        return None

    async def fetch(url: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=GuardedTransport(check)) as client:
            return await client.post(url, json={"n": 1})

    with receiver() as rx:
        response = anyio.run(fetch, f"http://consumer.example:{rx.port}/n")
        assert response.status_code == 200
        assert rx.got[0].headers["host"] == f"consumer.example:{rx.port}"
    assert seen == [("consumer.example", "127.0.0.1")]

    def refuse(host: str, address: Any) -> str | None:
        return f"{host} is {address}: no"

    async def refused() -> None:
        async with httpx.AsyncClient(transport=GuardedTransport(refuse)) as client:
            await client.get(f"http://consumer.example:{free_port()}/")

    with pytest.raises(httpx.ConnectError, match=r"consumer\.example is 127\.0\.0\.1: no"):
        anyio.run(refused)


# --- @contexts fetched from URLs ----------------------------------------------------------------


@contextlib.contextmanager
def context_server() -> Iterator[str]:
    """Serves `/context.jsonld` and `/moved` (a 301 to it) on 127.0.0.1."""
    port = free_port()
    document = json.dumps({"@context": {"speed": "https://example.org/speed"}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/moved":
                self.send_response(301)
                self.send_header("Location", f"http://127.0.0.1:{port}/context.jsonld")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/ld+json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    wait_for_port(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def linked(url: str) -> dict[str, str]:
    return {
        "Link": f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    }


def test_contexts_follow_the_same_rules(tmp_path: Path) -> None:
    entity = {"id": "urn:ngsi-ld:Car:c1", "type": "Car", "speed": {"type": "Property", "value": 3}}
    with context_server() as base:
        with (
            start_broker(
                tmp_path / "a", host="0.0.0.0", allow_anonymous=True, allow_context_fetch=True
            ) as running,
            httpx.Client(base_url=running.api, timeout=10) as http,
        ):
            refused = http.post("/entities", json=entity, headers=linked(base + "/context.jsonld"))
            assert refused.status_code == 503, refused.text
            assert "context_allow_hosts" in refused.json()["detail"]
        with (
            start_broker(
                tmp_path / "b",
                host="0.0.0.0",
                allow_anonymous=True,
                allow_context_fetch=True,
                context_allow_hosts=["127.0.0.1"],
            ) as running,
            httpx.Client(base_url=running.api, timeout=10) as http,
        ):
            moved = http.post("/entities", json=entity, headers=linked(base + "/moved"))
            assert moved.status_code == 503, moved.text
            assert "not followed" in moved.json()["detail"]
            fetched = http.post("/entities", json=entity, headers=linked(base + "/context.jsonld"))
            assert fetched.status_code == 201, fetched.text


def test_an_endless_answer_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    """An endpoint that answers 200 with a body that never ends: the notification counts as sent
    once 64 KiB are read, instead of hanging until the timeout and being retried."""
    port = free_port()
    hits: list[float] = []

    class Endless(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            hits.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 30))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(b"x" * (128 * 1024))
                self.wfile.flush()
                time.sleep(20)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Endless)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    wait_for_port(port)
    try:
        with (
            start_broker(tmp_path, notification_timeout=3) as running,
            httpx.Client(base_url=running.api, timeout=10) as http,
        ):
            made = http.post("/subscriptions", json=subscription(f"http://127.0.0.1:{port}/n"))
            assert made.status_code == 201
            assert http.post("/entities", json=SENSOR).status_code == 201
            location = running.url + made.headers["location"]
            deadline = time.monotonic() + 2.5  # less than the timeout of one attempt
            while True:
                shown = http.get(location).json()["notification"]
                if shown.get("lastSuccess"):
                    break
                assert time.monotonic() < deadline, shown
                time.sleep(0.05)
            assert shown["status"] == "ok"
            assert len(hits) == 1
    finally:
        server.shutdown()
        server.server_close()
