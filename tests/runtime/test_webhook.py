"""The webhook source over real HTTP: secrets in constant time, body limits, path variables,
202 only once the message is durable, 503 when the agent cannot take it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agents.runtime._config import SourceConfig
from agents.runtime._http import HttpServer
from agents.runtime._messages import ACCEPTED, Message, MessageQueue, Outcome, SourceInfo
from agents.runtime._webhook import WebhookSource


def webhook(path: str, **options: Any) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "hook",
            "network_server": "tts",
            "transport": "webhook",
            "webhook": {"path": path, "secret_header": "X-Secret", **options},
        }
    )


class Served:
    def __init__(
        self, config: SourceConfig, *, queue_size: int = 100, max_body: int = 4096
    ) -> None:
        self.queue = MessageQueue(queue_size)
        info = SourceInfo(name=config.name, kind=config.network_server, transport="webhook")
        self.source = WebhookSource(
            config, self.queue, info=info, secret="s3cret", max_body_bytes=max_body
        )
        self.server = HttpServer([self.source.route()], host="127.0.0.1", port=0)
        self.seen: list[Message] = []
        self.outcome: Outcome | None = ACCEPTED
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, daemon=True)

    def _work(self) -> None:
        while not self._stop.is_set():
            for message in self.queue.take(10, timeout=0.05):
                self.seen.append(message)
                if self.outcome is not None and message.ack is not None:
                    message.ack(self.outcome)

    def __enter__(self) -> Served:
        self.server.start()
        self._worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._worker.join(5)
        self.server.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
def served() -> Iterator[Served]:
    with Served(webhook("/webhooks/tts/{devEUI}/{devID}")) as running:
        yield running


def test_a_message_is_answered_202_once_durable_with_path_variables(served: Served) -> None:
    response = httpx.post(
        served.url + "/webhooks/tts/0004A30B001C0530/dev-1?event=up",
        content=b'{"uplink_message": {}}',
        headers={"X-Secret": "s3cret"},
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"outcome": "accepted"}
    [message] = served.seen
    assert message.path_vars == {"devEUI": "0004A30B001C0530", "devID": "dev-1"}
    assert message.event == "up"
    assert message.topic is None
    assert message.payload == b'{"uplink_message": {}}'


@pytest.mark.parametrize("headers", [{}, {"X-Secret": "wrong"}, {"X-Secret": "s3cret2"}])
def test_a_missing_or_wrong_secret_is_401_and_nothing_is_queued(
    served: Served, headers: dict[str, str]
) -> None:
    response = httpx.post(served.url + "/webhooks/tts/A/B", content=b"{}", headers=headers)
    assert response.status_code == 401
    assert "X-Secret" in response.json()["error"]
    assert served.seen == []
    assert served.source.counters.unauthorized == 1


def test_a_bearer_token_counts_for_authorization() -> None:
    with Served(webhook("/cs", secret_header="Authorization")) as running:
        ok = httpx.post(
            running.url + "/cs", content=b"{}", headers={"Authorization": "Bearer s3cret"}
        )
        raw = httpx.post(running.url + "/cs", content=b"{}", headers={"Authorization": "s3cret"})
        bad = httpx.post(running.url + "/cs", content=b"{}", headers={"Authorization": "Bearer x"})
    assert (ok.status_code, raw.status_code, bad.status_code) == (202, 202, 401)
    assert bad.headers["WWW-Authenticate"] == "Bearer"


def test_a_body_over_the_limit_is_413_declared_or_streamed(served: Served) -> None:
    big = b"x" * 5000
    declared = httpx.post(
        served.url + "/webhooks/tts/A/B", content=big, headers={"X-Secret": "s3cret"}
    )
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b"y" * 1000

    streamed = httpx.post(
        served.url + "/webhooks/tts/A/B", content=chunks(), headers={"X-Secret": "s3cret"}
    )
    assert streamed.status_code == 413
    assert served.seen == []


def test_an_unreadable_message_is_400_after_it_is_kept(served: Served) -> None:
    served.outcome = Outcome("dead-letter", "malformed-uplink", "the body is not JSON")
    response = httpx.post(
        served.url + "/webhooks/tts/A/B", content=b"{", headers={"X-Secret": "s3cret"}
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "malformed-uplink"
    served.outcome = Outcome("dead-letter", "codec-error", "truncated")
    response = httpx.post(
        served.url + "/webhooks/tts/A/B", content=b"{}", headers={"X-Secret": "s3cret"}
    )
    assert response.status_code == 202
    assert response.json()["outcome"] == "dead-letter"


def test_503_when_the_queue_is_full_or_the_message_is_not_stored_in_time() -> None:
    config = webhook("/w", timeout=0.3)
    running = Served(config, queue_size=1)
    running.server.start()
    try:
        headers = {"X-Secret": "s3cret"}
        slow = httpx.post(running.url + "/w", content=b"{}", headers=headers)
        assert slow.status_code == 503  # nobody commits: the request times out
        assert "retry" in slow.json()["error"]
        full = httpx.post(running.url + "/w", content=b"{}", headers=headers)
        assert full.status_code == 503  # the first message still fills the queue
        assert full.headers["Retry-After"] == "5"
        assert running.source.counters.timeouts == 1
        assert running.source.counters.overflow == 1
    finally:
        running.server.stop()
