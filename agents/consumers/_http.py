"""The HTTP side of a consumer: a small Starlette app served by uvicorn.

Routes: `POST /notify` (the path is configurable) takes notifications and answers with the
`Receipt` (200 / 400 / 401 / 413 / 503, JSON body with the counts); `GET /health` gives the
consumer's counters; the consumer's own `routes` follow (the reference consumers serve their
state there). The check, de-duplication and hand-off happen in `Consumer.receive`, in a worker
thread, so the event loop never waits for SQLite.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from agents.consumers._consumer import Consumer

__all__ = ["RunningReceiver", "receiver_app", "run_blocking", "serve_in_thread"]

log = logging.getLogger("agents.consumers.http")


def receiver_app(consumer: Consumer, *, path: str = "/notify") -> Starlette:
    """The consumer as an ASGI app (the consumer must be started by whoever runs it)."""

    async def notify(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > consumer.max_body_bytes:
            consumer._count("received")
            consumer._count("invalid")
            return JSONResponse(
                {"detail": f"the body is larger than {consumer.max_body_bytes} bytes"},
                status_code=413,
            )
        body = await request.body()
        receipt = await run_in_threadpool(consumer.receive, body, headers=dict(request.headers))
        return JSONResponse(receipt.to_json(), status_code=receipt.status)

    async def health(request: Request) -> Response:
        return JSONResponse({"consumer": consumer.name, **consumer.stats()})

    routes: list[Any] = [
        Route(path, notify, methods=["POST"], name="notify"),
        Route("/health", health, methods=["GET"], name="health"),
        *consumer.routes,
    ]
    return Starlette(routes=routes)


@dataclass
class RunningReceiver:
    """A consumer served in a thread: `url` is where notifications go."""

    host: str
    port: int
    path: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + self.path


def _config(consumer: Consumer, host: str, port: int, path: str) -> uvicorn.Config:
    return uvicorn.Config(
        receiver_app(consumer, path=path),
        host=host,
        port=port,
        loop="asyncio",
        http="h11",
        lifespan="off",
        log_level="warning",
        access_log=False,
        server_header=False,
    )


@contextlib.contextmanager
def serve_in_thread(
    consumer: Consumer, *, host: str = "127.0.0.1", port: int = 0, path: str = "/notify"
) -> Iterator[RunningReceiver]:
    """Serve a started consumer over HTTP in a thread until the block ends (port 0: any free)."""
    server = uvicorn.Server(_config(consumer, host, port, path))
    thread = threading.Thread(target=server.run, name=f"receiver-{consumer.name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the receiver of consumer {consumer.name!r} did not start")
        time.sleep(0.01)
    bound = port
    for listener in getattr(server, "servers", []):
        for sock in listener.sockets:
            bound = int(sock.getsockname()[1])
    try:
        yield RunningReceiver(host=host, port=bound, path=path, server=server, thread=thread)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class _Stopped(Exception):
    """SIGTERM arrived: stop like after Ctrl-C."""


def _raise_stopped(signum: int, frame: Any) -> None:
    raise _Stopped()


def run_blocking(
    consumer: Consumer,
    *,
    host: str,
    port: int | None,
    path: str,
    mqtt: str | None,
    topic: str | None,
) -> None:
    """Run the consumer in the foreground until SIGINT/SIGTERM (see `Consumer.run`); returns
    after a clean stop (sinks closed, the inbox saved)."""
    from agents.consumers._mqtt import MqttReceiver

    if port is None and mqtt is None:
        raise ValueError("give an HTTP port, an MQTT URL, or both")
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_stopped) if main else None
    consumer.start()
    receiver = MqttReceiver(consumer, mqtt, topic=topic) if mqtt else None
    try:
        if receiver is not None:
            receiver.start()
        if port is not None:
            uvicorn.Server(_config(consumer, host, port, path)).run()
        else:
            threading.Event().wait()
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        if receiver is not None:
            receiver.stop()
        consumer.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
