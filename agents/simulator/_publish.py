"""Sending simulated uplinks: to an MQTT broker, to a webhook, or as JSON lines; paced.

    with MqttSink("127.0.0.1", 1883, qos=1) as sink:
        report = run_simulation(simulator, sink, rate=20.0, duration=60)

`run_simulation` sends uplinks at a steady total rate (the i-th at `i / rate` seconds after the
start, so a slow send is caught up rather than drifting), for a count, a duration, or until
`stop` is set; duplicates follow their uplink at once. Times in the messages are the wall clock,
or a simulated clock (`clock_start`, running `speedup` times as fast) to watch a day pass in
minutes. The frame counters are saved every `save_every` seconds and at the end.

Sinks (`Sink`): `MqttSink` publishes with paho-mqtt (MQTT 3.1.1 as The Things Stack speaks it;
QoS 0, 1 or 2; a bounded window of unacknowledged messages), `WebhookSink` POSTs each body as
the network servers' webhooks and HTTP integrations do (The Things Stack: the URL's
`{devEUI}`, `{devID}`, `{appID}` filled in; ChirpStack: `?event=up`), `JsonLinesSink` writes one
JSON line per message (`--dry-run`). A message a sink could not deliver is counted, not raised.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import IO, Any, Protocol, Self

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from agents.simulator._simulator import SimulatedMessage, Simulator

__all__ = [
    "JsonLinesSink",
    "MqttSink",
    "PublishError",
    "RunReport",
    "Sink",
    "WebhookSink",
    "run_simulation",
]


class PublishError(RuntimeError):
    """A sink cannot start (the MQTT broker refuses or does not answer): the message says
    where and why."""


class Sink(Protocol):
    """Where simulated messages go.

    `open()` before the first `send`, `close()` after the last; `close` waits (bounded) for
    messages still in flight. `send` returns False for a message it could not deliver and never
    raises for one message's failure; `failed` counts the messages not delivered (final after
    `close`, which may find unacknowledged ones). Used from one thread.
    """

    failed: int

    def open(self) -> None: ...

    def send(self, message: SimulatedMessage) -> bool: ...

    def close(self) -> None: ...


class _SinkContext:
    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class MqttSink(_SinkContext):
    """Publishes to an MQTT broker with paho-mqtt 2.x (see the module docstring).

    `max_inflight` bounds the messages not yet sent (QoS 0) or acknowledged (QoS 1 and 2);
    `send` waits for the oldest beyond that. `open` raises `PublishError` when no connection is up
    within `connect_timeout` seconds. `failed` counts messages the client refused or that were
    not acknowledged by `close`.
    """

    _ids = itertools.count(1)

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        qos: int = 0,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        tls: bool = False,
        keepalive: int = 60,
        max_inflight: int = 200,
        connect_timeout: float = 10.0,
        close_timeout: float = 30.0,
    ) -> None:
        if qos not in (0, 1, 2):
            raise ValueError(f"MQTT QoS must be 0, 1 or 2, not {qos}")
        self.host = host
        self.port = port
        self.qos = qos
        self.username = username
        self.password = password
        self.client_id = client_id or f"drehscheibe-simulator-{os.getpid()}-{next(self._ids)}"
        self.tls = tls
        self.keepalive = keepalive
        self.max_inflight = max_inflight
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self.failed = 0
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._refused: str | None = None
        self._pending: deque[mqtt.MQTTMessageInfo] = deque()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
        else:
            self._refused = None
            self._connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._connected.clear()

    def open(self) -> None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set()
        client.max_inflight_messages_set(self.max_inflight)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client
        client.connect_async(self.host, self.port, keepalive=self.keepalive)
        client.loop_start()
        if not self._connected.wait(self.connect_timeout):
            reason = self._refused or "no answer"
            self._stop()
            raise PublishError(
                f"MQTT broker {self.host}:{self.port}: not connected within "
                f"{self.connect_timeout:g} s ({reason})"
            )

    def send(self, message: SimulatedMessage) -> bool:
        client = self._client
        if client is None:
            raise PublishError("the MQTT sink is not open")
        info = client.publish(message.topic, message.payload, qos=self.qos)
        queued = info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
            # QoS 1 and 2 messages published while reconnecting go out once connected.
            info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self.qos > 0
        )
        if not queued:
            self.failed += 1
            return False
        # QoS 0 messages count as sent once written to the socket, QoS 1/2 once acknowledged.
        self._pending.append(info)
        while len(self._pending) > self.max_inflight:
            oldest = self._pending.popleft()
            if not self._wait(oldest, self.close_timeout):
                self.failed += 1
        return True

    @staticmethod
    def _wait(info: mqtt.MQTTMessageInfo, timeout: float) -> bool:
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def close(self) -> None:
        if self._client is None:
            return
        deadline = time.monotonic() + self.close_timeout
        while self._pending:
            info = self._pending.popleft()
            if not self._wait(info, max(deadline - time.monotonic(), 0.01)):
                self.failed += 1
        self._stop()

    def _stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()


class WebhookSink(_SinkContext):
    """POSTs each message's body to `url` (see the module docstring).

    `secret_header`/`secret` add the shared secret the receiving webhook checks; The Things
    Stack also sends `X-Tts-Domain`. Responses other than 2xx and transport errors count in
    `failed` and make `send` return False.
    """

    def __init__(
        self,
        url: str,
        *,
        secret_header: str | None = None,
        secret: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.secret_header = secret_header
        self.secret = secret
        self.timeout = timeout
        self.failed = 0
        self.last_error: str | None = None
        self._transport = transport
        self._client: httpx.Client | None = None

    def open(self) -> None:
        self._client = httpx.Client(timeout=self.timeout, transport=self._transport)

    def target(self, message: SimulatedMessage) -> str:
        """The URL this message is POSTed to."""
        if message.network_server == "tts":
            url = self.url
            for name, value in message.path_vars.items():
                url = url.replace("{" + name + "}", value)
            return url
        return self.url + ("&" if "?" in self.url else "?") + "event=up"

    def send(self, message: SimulatedMessage) -> bool:
        if self._client is None:
            raise PublishError("the webhook sink is not open")
        headers = {"Content-Type": "application/json"}
        if message.network_server == "tts":
            headers["X-Tts-Domain"] = "eu1.cloud.thethings.network"
        if self.secret_header and self.secret is not None:
            headers[self.secret_header] = self.secret
        try:
            response = self._client.post(
                self.target(message), content=message.payload, headers=headers
            )
        except httpx.HTTPError as error:
            self.failed += 1
            self.last_error = f"{type(error).__name__}: {error}"
            return False
        if not response.is_success:
            self.failed += 1
            self.last_error = f"HTTP {response.status_code}: {response.text[:200]}"
            return False
        return True

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


class JsonLinesSink(_SinkContext):
    """Writes one JSON line per message (`SimulatedMessage.to_json_line`) to a binary stream."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.failed = 0

    def open(self) -> None:
        pass

    def send(self, message: SimulatedMessage) -> bool:
        self.stream.write(message.to_json_line() + b"\n")
        return True

    def close(self) -> None:
        self.stream.flush()


@dataclass
class RunReport:
    """What a run sent: uplinks generated, messages sent (duplicates included), duplicates,
    corrupt messages by kind, messages a sink could not deliver, and the seconds it took."""

    uplinks: int = 0
    messages: int = 0
    duplicates: int = 0
    corrupt: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Uplinks per second achieved."""
        return self.uplinks / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "uplinks": self.uplinks,
            "messages": self.messages,
            "duplicates": self.duplicates,
            "corrupt": dict(self.corrupt),
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 2),
        }


def run_simulation(
    simulator: Simulator,
    sink: Sink,
    *,
    rate: float | None = 10.0,
    count: int | None = None,
    duration: float | None = None,
    clock_start: datetime | None = None,
    speedup: float = 1.0,
    save_every: float = 1.0,
    stop: threading.Event | None = None,
    on_message: Callable[[SimulatedMessage, bool], None] | None = None,
) -> RunReport:
    """Send uplinks through an open `sink` (see the module docstring).

    `rate` is uplinks per second (None: as fast as the sink takes them); the run ends after
    `count` uplinks, after `duration` seconds, or when `stop` is set, whichever comes first
    (none of them: until `stop`). `on_message(message, delivered)` sees every message sent.
    """
    if rate is not None and rate <= 0:
        raise ValueError(f"the rate must be positive, not {rate}")
    if speedup <= 0:
        raise ValueError(f"the speed-up must be positive, not {speedup}")
    stop = stop or threading.Event()
    report = RunReport()
    started = time.monotonic()
    last_save = started
    wall_origin = clock_start or datetime.now(UTC)
    simulated_clock = clock_start is not None or speedup != 1.0
    try:
        while not stop.is_set():
            if count is not None and report.uplinks >= count:
                break
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            if rate is not None:
                due = started + report.uplinks / rate
                if due > now:
                    wait = due - now
                    if duration is not None:
                        wait = min(wait, max(started + duration - now, 0.0))
                    if stop.wait(wait):
                        break
                    if duration is not None and time.monotonic() - started >= duration:
                        break
            at = (
                wall_origin + timedelta(seconds=(time.monotonic() - started) * speedup)
                if simulated_clock
                else datetime.now(UTC)
            )
            messages = simulator.uplink(simulator.next_device(), at)
            report.uplinks += 1
            for message in messages:
                delivered = sink.send(message)
                report.messages += 1
                if message.duplicate:
                    report.duplicates += 1
                if message.corruption:
                    report.corrupt[message.corruption] += 1
                if not delivered:
                    report.failed += 1
                if on_message is not None:
                    on_message(message, delivered)
            if time.monotonic() - last_save >= save_every:
                simulator.counters.save()
                last_save = time.monotonic()
    finally:
        simulator.counters.save()
        report.seconds = time.monotonic() - started
    return report
