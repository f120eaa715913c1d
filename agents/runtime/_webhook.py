"""The webhook source: The Things Stack webhooks and ChirpStack HTTP integrations, served by the
agent's HTTP server (Starlette on uvicorn).

One `WebhookSource` per configured source gives one route (`route()`), at the configured path,
which may hold The Things Stack's path variables (`/webhooks/tts/{devID}`, `{devEUI}`, `{appID}`,
...): they reach the parser as `path_vars`, so field-masked bodies without `end_device_ids`
still name their device. ChirpStack's HTTP integration names the event in the query string
(`?event=up`); events the agent has no use for (`log`, `txack`...) are answered 202 and counted.

A request is answered in this order:

1. 401 unless the configured header carries the source's secret (compared with
   `hmac.compare_digest`, in constant time; for `Authorization`, `Bearer <secret>` also counts).
2. 413 when the body is larger than the limit (by `Content-Length` or while reading).
3. 503 with `Retry-After` when the pipeline's queue is full, or when the message did not become
   durable within `timeout` seconds (the network server may retry; duplicates are dropped).
4. Once the pipeline has committed the message's batch to the outbox (the durable point):
   202 with `{"outcome": ...}` for everything the agent took responsibility for (an accepted
   uplink, a duplicate, an unknown device, a simulated uplink, a codec error kept as a dead
   letter), 400 when the body was not a readable message at all (it is in the dead letters too).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from agents.runtime._config import SourceConfig
from agents.runtime._messages import Message, MessageQueue, Outcome, SourceInfo

__all__ = ["WebhookCounters", "WebhookSource"]

logger = logging.getLogger("agents.runtime.webhook")

_BAD_REQUEST_REASONS = frozenset({"malformed-json", "too-large", "malformed-uplink"})


@dataclass
class WebhookCounters:
    """Figures of one webhook source (written on the HTTP server's event loop)."""

    received: int = 0
    unauthorized: int = 0
    too_large: int = 0
    overflow: int = 0
    timeouts: int = 0
    answered: int = 0


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


class WebhookSource:
    """A webhook endpoint feeding the pipeline's queue (see the module docstring).

    `secret` is required: a webhook source without one refuses to start. `max_body_bytes` bounds
    request bodies. The route's endpoint runs on the HTTP server's event loop; the pipeline
    answers it through the message's `ack`, from its own thread.
    """

    transport = "webhook"

    def __init__(
        self,
        config: SourceConfig,
        queue: MessageQueue,
        *,
        info: SourceInfo,
        secret: str,
        max_body_bytes: int,
    ) -> None:
        if config.webhook is None:
            raise ValueError(f"source {config.name} has no webhook settings")
        if not secret:
            raise ValueError(f"webhook source {config.name} needs a secret")
        self.config = config
        self.name = config.name
        self.info = info
        self.queue = queue
        self.path = config.webhook.path
        self.header = config.webhook.secret_header
        self.timeout = config.webhook.timeout
        self.max_body_bytes = config.webhook.max_body_bytes or max_body_bytes
        self.counters = WebhookCounters()
        self._secret = secret.encode()
        self._bearer = self.header.lower() == "authorization"

    @property
    def connected(self) -> bool:
        """A webhook source is ready whenever the HTTP server runs."""
        return True

    ready = connected

    last_error: str | None = None

    def start(self) -> None:
        """Nothing to start: the agent's HTTP server serves `route()`."""

    def stop(self) -> None:
        """Nothing to stop: requests in flight get their timeout answer."""

    def route(self) -> Route:
        return Route(self.path, self.handle, methods=["POST"], name=f"webhook-{self.name}")

    def _authorized(self, request: Request) -> bool:
        given = request.headers.get(self.header)
        if given is None:
            hmac.compare_digest(b"", self._secret)
            return False
        raw = given.encode("utf-8", "surrogateescape")
        exact = hmac.compare_digest(raw, self._secret)
        if self._bearer:
            token = raw[7:] if raw[:7].lower() == b"bearer " else b""
            bearer = hmac.compare_digest(token, self._secret)
            return exact or bearer
        return exact

    async def _body(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                if int(declared) > self.max_body_bytes:
                    return None
            except ValueError:
                pass
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def handle(self, request: Request) -> Response:
        """The endpoint (see the module docstring for the answers)."""
        self.counters.received += 1
        if not self._authorized(request):
            self.counters.unauthorized += 1
            return _json(
                401,
                {"error": f"missing or wrong secret in header {self.header}"},
                {"WWW-Authenticate": "Bearer"} if self._bearer else None,
            )
        try:
            body = await self._body(request)
        except ClientDisconnect:
            return Response(status_code=400)
        if body is None:
            self.counters.too_large += 1
            return _json(413, {"error": f"the body is larger than {self.max_body_bytes} bytes"})
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Outcome] = loop.create_future()

        def answer(outcome: Outcome) -> None:
            loop.call_soon_threadsafe(_settle, done, outcome)

        path_vars = {str(k): str(v) for k, v in request.path_params.items()}
        message = Message(
            source=self.info,
            payload=body,
            received_at=time.time(),
            topic=None,
            event=request.query_params.get("event"),
            path_vars=path_vars or None,
            ack=answer,
        )
        if not self.queue.put(message):
            self.counters.overflow += 1
            return _json(503, {"error": "the agent is busy; retry"}, {"Retry-After": "5"})
        try:
            outcome = await asyncio.wait_for(asyncio.shield(done), self.timeout)
        except TimeoutError:
            self.counters.timeouts += 1
            return _json(
                503,
                {"error": f"the uplink was not stored within {self.timeout:g} s; retry"},
                {"Retry-After": "10"},
            )
        self.counters.answered += 1
        result: dict[str, Any] = {"outcome": outcome.kind}
        if outcome.reason is not None:
            result["reason"] = outcome.reason
        if outcome.message is not None:
            result["message"] = outcome.message
        if outcome.kind == "dead-letter" and outcome.reason in _BAD_REQUEST_REASONS:
            return _json(400, result)
        return _json(202, result)


def _settle(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)
