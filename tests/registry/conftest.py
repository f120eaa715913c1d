"""Fixtures for the registry: the embedded broker (per module), a client, a notification
receiver on loopback."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from ngsi import Client
from tests.broker.conftest import RunningBroker, broker_url  # noqa: F401
from tests.conftest import free_port


@pytest.fixture
def client(broker: RunningBroker) -> Iterator[Client]:
    with Client(broker.url, profile="embedded", timeout=10) as made:
        yield made


@dataclass
class Receiver:
    """An HTTP endpoint on 127.0.0.1 that keeps every JSON body POSTed to it."""

    url: str
    bodies: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    headers: list[dict[str, str]] = field(default_factory=list)

    def next(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.bodies.get(timeout=timeout)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    port = free_port()
    found = Receiver(url=f"http://127.0.0.1:{port}/notify/devices")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            found.headers.append(dict(self.headers.items()))
            found.bodies.put(orjson.loads(self.rfile.read(length)))
            self.send_response(204)
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
