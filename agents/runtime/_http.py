"""The agent's HTTP server: uvicorn serving a Starlette app in a thread of the agent process.

It serves `/metrics`, `/healthz`, `/readyz`, the webhook sources' routes and the endpoint where
the broker sends registry notifications; the agent builds the route list. The socket is bound
in `start()` (so that `port: 0` gives a free port whose number `port` tells) and handed to
uvicorn; uvicorn installs no signal handlers outside the main thread, so the agent's runner keeps
owning SIGTERM and SIGINT.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute

__all__ = ["HttpServer"]

logger = logging.getLogger("agents.runtime.http")


class HttpServer:
    """Serve `routes` on `host:port` from a daemon thread until `stop()`."""

    def __init__(self, routes: Sequence[BaseRoute], *, host: str, port: int) -> None:
        self.app = Starlette(routes=list(routes))
        self.host = host
        self.requested_port = port
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, timeout: float = 15.0) -> None:
        """Bind, start uvicorn in a thread and wait until it accepts connections."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno, f"cannot listen on {self.host}:{self.requested_port}: {exc.strerror}"
            ) from None
        sock.listen(1024)
        sock.set_inheritable(True)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            loop="asyncio",
            http="h11",
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="agent-http", daemon=True
        )
        self._server = server
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the agent's HTTP server on port {self.port} did not start")
            time.sleep(0.01)
        logger.info("HTTP server listening on %s:%d", self.host, self.port)

    def stop(self, *, timeout: float = 10.0) -> None:
        """Ask uvicorn to finish the requests in flight and stop; wait for its thread."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._server = None
        self._thread = None
