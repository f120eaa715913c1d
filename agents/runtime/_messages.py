"""What travels from a source to the pipeline: `Message`, its `Outcome`, and `MessageQueue`.

A source (an MQTT callback, a webhook request) copies what it received into a `Message` (the
raw bytes, the topic or webhook path variables, the receive time) and puts it on the bounded
`MessageQueue`; it does nothing else on its own thread. The pipeline takes messages in batches,
and once a batch is durable (its entities, dead letters and frame counters committed to the
outbox in one transaction) it calls each message's `ack` with the `Outcome`: the MQTT source
then sends the PUBACK, the webhook answers its HTTP request.

`ack` is called exactly once per message taken by the pipeline when the batch commits; it is not
called for a message the agent gave up on while stopping (an MQTT message stays unacknowledged
and the network server's session redelivers it; a webhook request gets its timeout answer).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["Message", "MessageQueue", "Outcome", "OutcomeKind", "SimulatedPolicy", "SourceInfo"]

OutcomeKind = Literal[
    "accepted",
    "duplicate",
    "dead-letter",
    "unknown-device",
    "inactive-device",
    "ignored",
    "simulated-dropped",
]
"""What became of a message, once durable.

- `accepted`: an uplink whose entities are in the outbox (or an event recorded on its Device);
- `duplicate`: an uplink seen before (same DevEUI and fCnt), dropped;
- `dead-letter`: unreadable or undecodable; stored in the dead letters with the reason;
- `unknown-device`: no registered device (counted; with `devices.unknown: register` the
  registry also registers it as unprovisioned);
- `inactive-device`: registered, but unprovisioned, inactive or decommissioned (counted);
- `ignored`: a well-formed event the agent has no use for (a downlink event, a log event);
- `simulated-dropped`: a simulated uplink, dropped by the source's `simulated: drop` policy.
"""

SimulatedPolicy = Literal["drop", "tenant"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The fate of one message: `kind`, and for a dead letter the `reason` and `message`."""

    kind: OutcomeKind
    reason: str | None = None
    message: str | None = None


ACCEPTED = Outcome("accepted")


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the pipeline needs to know about the source of a message.

    `kind` is the network server (`tts`, `chirpstack-v4`, `chirpstack-v3`), `tenant` the
    NGSI-LD tenant its devices and entities live in (None: the broker's default). Simulated
    uplinks (The Things Stack's `simulated: true`) are dropped (`drop`) or written to
    `simulated_tenant` instead (`tenant`), never mixed with real readings.
    """

    name: str
    kind: str
    transport: Literal["mqtt", "webhook", "replay"]
    tenant: str | None = None
    simulated: SimulatedPolicy = "tenant"
    simulated_tenant: str | None = None


@dataclass(slots=True)
class Message:
    """One message as received: raw bytes and where and when they came from.

    `received_at` is the agent's wall clock (seconds since the epoch) when the source got the
    message. `topic` is the MQTT topic (None for webhooks); `event` and `path_vars` what a
    webhook's query string and path say. `ack` is called once the outcome is durable.
    """

    source: SourceInfo
    payload: bytes
    received_at: float
    topic: str | None = None
    event: str | None = None
    path_vars: Mapping[str, str] | None = None
    ack: Callable[[Outcome], None] | None = None


class MessageQueue:
    """A bounded FIFO between source threads and the one pipeline thread.

    `put` never blocks: it returns False when the queue is full (the source counts the overflow
    and applies its policy). `take` blocks until at least one message is there, then gathers up
    to `max_items`, waiting at most `max_wait` seconds more for a fuller batch.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"the queue size must be positive, got {maxsize}")
        self.maxsize = maxsize
        self._items: deque[Message] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._want = 0  # a waiting `take` is woken once this many items are there
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: Message) -> bool:
        """Append `message`; False (nothing done) when the queue is full or closed."""
        with self._lock:
            if self._closed or len(self._items) >= self.maxsize:
                return False
            self._items.append(message)
            if self._want and len(self._items) >= self._want:
                self._not_empty.notify()
        return True

    def take(self, max_items: int, *, timeout: float, max_wait: float = 0.0) -> list[Message]:
        """Up to `max_items` messages, oldest first; `[]` after `timeout` s without any.

        Once a first message is there, waits up to `max_wait` s for the batch to fill.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._items:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return []
                self._want = 1
                try:
                    self._not_empty.wait(remaining)
                finally:
                    self._want = 0
            if max_wait > 0 and len(self._items) < max_items:
                fill_deadline = time.monotonic() + max_wait
                while len(self._items) < max_items and not self._closed:
                    remaining = fill_deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._want = max_items
                    try:
                        self._not_empty.wait(remaining)
                    finally:
                        self._want = 0
            n = min(max_items, len(self._items))
            popleft = self._items.popleft
            return [popleft() for _ in range(n)]

    def close(self) -> None:
        """Refuse further `put`s and wake a waiting `take` (which then returns what is left)."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()

    def reopen(self) -> None:
        """Accept `put`s again after `close`."""
        with self._lock:
            self._closed = False
