"""An ASGI app served by uvicorn in a thread of the test process, on a loopback port."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from tests.conftest import free_port


@dataclass
class Served:
    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread


@contextlib.contextmanager
def serve_app(app: Any, *, port: int | None = None, name: str = "app") -> Iterator[Served]:
    """Serve `app` (lifespan on) on `port` (default: a free one) until the block ends; raises
    RuntimeError when it does not start within 15 s."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        http="h11",
        lifespan="on",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"{name}-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the {name} on port {port} did not start")
        time.sleep(0.01)
    try:
        yield Served(url=f"http://127.0.0.1:{port}", port=port, server=server, thread=thread)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
