"""The MQTT source: a network server's MQTT integration into the pipeline's queue (paho-mqtt 2.x).

One `MqttSource` per configured source, each with its own client, credentials and TLS:

* The client is built with `CallbackAPIVersion.VERSION2`, connected with `connect_async` and
  run by `loop_start`, so paho does the reconnecting (`reconnect_delay_set(min, max)`, doubling,
  reset after a successful CONNACK); a network server that is away at start is retried.
* Subscriptions are made in `on_connect`, so they come back after every reconnect. A refused
  CONNACK is logged with its reason and shown in health; on "not authorized" the source stops
  retrying (`disconnect()`), because a wrong password does not get better with time.
* QoS 1 with a persistent session where the network server offers it (ChirpStack's Mosquitto;
  The Things Stack offers QoS 0 only): MQTT 3.1.1 `clean_session=False` with a stable client id,
  MQTT 5 `clean_start=False` with a session expiry interval and a `Receive Maximum`. With
  `shared_group`, topics are subscribed as `$share/<group>/<topic>` so that several agent
  instances split the uplinks.
* Manual acknowledgement: paho runs with `manual_ack=True`; a QoS 1 uplink is acknowledged
  (`client.ack(mid, qos)`) only when the pipeline has committed its batch to the outbox. A
  message received on an earlier connection is not acknowledged on a later one (its packet id
  may now name another message): the server's session redelivers it and the frame counters drop
  the copy.
* Callbacks are tiny: `on_message` copies topic, payload and the receive time into a `Message`
  and puts it on the bounded queue. When the queue is full a QoS 0 message is dropped and
  counted (`overflow`); a QoS 1 message waits up to `overflow_wait` seconds on the network
  thread (backpressure: the server holds further messages in its in-flight window), then is
  counted and left unacknowledged for redelivery. Every callback catches, logs and counts its
  own errors: an exception must never end paho's loop thread.
* Reading: paho reads each packet with several `recv` calls (the command byte, each byte of
  the remaining length, the rest) after a `select`, which costs more CPU than handling the
  message. `BufferedClient` (the default client) reads the socket in blocks of `READ_SIZE` and
  hands paho the packets from that buffer, all of them after one `select`: a packet whole in
  the buffer goes to paho's packet handler at once, one split across reads through paho's own
  reader. It relies on paho's reader internals (`_sock_recv`, `_packet_read`, `_in_packet`),
  pinned by tests against the installed paho-mqtt 2.x. It also calls `on_message` directly
  when no callback was added for a topic filter (`message_callback_add`), where paho matches
  every topic against the empty set of filters first.

The MQTT session lives in the server's memory and is not durability: durability is the outbox.
"""

from __future__ import annotations

import functools
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agents._threads import name_native_thread
from agents.runtime._config import MqttConfig, SourceConfig
from agents.runtime._messages import Message, MessageQueue, Outcome, SourceInfo

__all__ = [
    "READ_SIZE",
    "BufferedClient",
    "ClientFactory",
    "MqttCounters",
    "MqttSource",
    "default_topics",
]

logger = logging.getLogger("agents.runtime.mqtt")

ClientFactory = Callable[..., Any]
"""Builds the paho client: called with `mqtt.Client`'s keyword arguments (the test seam)."""

READ_SIZE = 64 * 1024
"""Bytes `BufferedClient` asks the socket for at once."""


class BufferedClient(mqtt.Client):
    """paho's `Client`, reading the socket in blocks (see the module docstring).

    paho asks `_sock_recv(n)` for at most `n` bytes; this answers from a buffer filled by one
    `recv(READ_SIZE)`, and `loop_read` goes on while the buffer holds bytes, so that every
    packet of a block is handled before paho waits in `select` again (which knows nothing of
    the buffer). `_packet_read` hands a packet that is whole in the buffer to paho's handler
    directly. A new connection starts with an empty buffer. The packets, their order and
    everything paho does with them are unchanged.
    """

    _buffer: bytes = b""
    _offset: int = 0
    _filtered: bool = False
    """Whether a callback was added for a topic filter (`message_callback_add`)."""

    def _sock_recv(self, bufsize: int) -> bytes:
        buffer = self._buffer
        offset = self._offset
        if offset >= len(buffer):
            buffer = super()._sock_recv(max(bufsize, READ_SIZE))  # raises BlockingIOError
            if not buffer:
                return buffer  # end of stream: paho sees the connection lost
            self._buffer = buffer
            offset = 0
        end = offset + bufsize
        self._offset = min(end, len(buffer))
        if offset == 0 and end >= len(buffer):
            return buffer
        return buffer[offset:end]

    def _packet_read(self) -> MQTTErrorCode:
        # A packet whole in the buffer is handed to paho's handler at once (what paho's own
        # reader would do after a recv per header byte and one for the rest); anything else
        # (a packet split across reads, a malformed length) goes through paho's reader.
        packet = self._in_packet
        buffer = self._buffer
        start = self._offset
        end = len(buffer)
        if packet["command"] != 0 or end - start < 2:
            return super()._packet_read()
        length = 0
        shift = 0
        position = start + 1
        while True:
            if position >= end or shift > 21:
                return super()._packet_read()
            byte = buffer[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if position + length > end:
            return super()._packet_read()
        self._offset = position + length
        packet["command"] = buffer[start]
        packet["have_remaining"] = 1
        packet["remaining_length"] = length
        packet["packet"] = bytearray(memoryview(buffer)[position : position + length])
        packet["to_process"] = 0
        packet["pos"] = 0
        try:
            rc: MQTTErrorCode = self._packet_handle()
        except MalformedPacket:
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = {
            "command": 0,
            "have_remaining": 0,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": 0,
            "packet": bytearray(b""),
            "to_process": 0,
            "pos": 0,
        }
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        return rc

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while (
            rc == MQTTErrorCode.MQTT_ERR_SUCCESS
            and self._offset < len(self._buffer)
            and self._sock is not None
        ):
            rc = super().loop_read(max_packets)
        return rc

    def reconnect(self) -> MQTTErrorCode:
        self._buffer = b""
        self._offset = 0
        return super().reconnect()

    def message_callback_add(self, sub: str, callback: Any) -> None:
        self._filtered = True
        super().message_callback_add(sub, callback)

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        # paho matches every message's topic against the callbacks added per topic filter,
        # decoding the topic twice, under a lock, to call `on_message` when none matches: a
        # third of its CPU per message. Without such callbacks `on_message` is called directly.
        if self._filtered:
            super()._handle_on_message(message)
            return
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise


_TTS_EVENTS = {"up": "up", "join": "join", "location": "location/solved", "status": None}
_CHIRPSTACK_EVENTS = {"up": "up", "join": "join", "location": "location", "status": "status"}


def default_topics(source: SourceConfig) -> list[str]:
    """The topics a source subscribes when its configuration names none.

    The Things Stack: `v3/{app}[@{tenant}]/devices/+/{up|join|location/solved}`; ChirpStack v4
    and v3: `application/{app}/device/+/event/{up|join|location|status}`; `{app}` is the
    configured application or `+`.
    """
    assert source.mqtt is not None
    mqtt_config = source.mqtt
    app = mqtt_config.application or "+"
    topics: list[str] = []
    if source.network_server == "tts":
        prefix = f"v3/{app}@{mqtt_config.ns_tenant}" if mqtt_config.ns_tenant else f"v3/{app}"
        for event in mqtt_config.events:
            suffix = _TTS_EVENTS[event]
            if suffix is not None:
                topics.append(f"{prefix}/devices/+/{suffix}")
    else:
        for event in mqtt_config.events:
            topics.append(f"application/{app}/device/+/event/{_CHIRPSTACK_EVENTS[event]}")
    return topics


@dataclass
class MqttCounters:
    """Figures of one MQTT source, each written by the paho thread only."""

    received: int = 0
    overflow: int = 0
    acked: int = 0
    stale_acks: int = 0
    connects: int = 0
    disconnects: int = 0
    refused: int = 0
    callback_errors: int = 0


class MqttSource:
    """A network server's MQTT integration as a source (see the module docstring).

    `start()` returns at once (the connection is made in paho's thread); `stop()` disconnects
    and joins the thread. `connected` is True between a successful CONNACK and the next
    disconnect; `ready` once, in that connection, the server also granted every subscription
    (before that, an uplink can pass unseen). `last_error` says why the source is not ready,
    for health.
    """

    transport = "mqtt"

    def __init__(
        self,
        config: SourceConfig,
        queue: MessageQueue,
        *,
        info: SourceInfo,
        client_id: str,
        password: str | None = None,
        client_factory: ClientFactory | None = None,
        overflow_wait: float = 5.0,
    ) -> None:
        if config.mqtt is None:
            raise ValueError(f"source {config.name} has no mqtt settings")
        self.config = config
        self.settings: MqttConfig = config.mqtt
        self.name = config.name
        self.info = info
        self.queue = queue
        self.client_id = client_id
        self.topics = list(self.settings.topics or default_topics(config))
        if self.settings.shared_group:
            self.topics = [f"$share/{self.settings.shared_group}/{t}" for t in self.topics]
        self.counters = MqttCounters()
        self.connected = False
        self.subscribed = False
        self.last_error: str | None = "not connected yet"
        self.overflow_wait = overflow_wait
        self._password = password
        self._factory: ClientFactory = client_factory or BufferedClient
        self._client: Any = None
        self._generation = 0
        self._stopping = threading.Event()
        self._qos = self.settings.qos

    # Lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Build the client and start connecting in paho's thread; never blocks on the network."""
        settings = self.settings
        v5 = settings.protocol == "5"
        kwargs: dict[str, Any] = {
            "callback_api_version": CallbackAPIVersion.VERSION2,
            "client_id": self.client_id,
            "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            "manual_ack": True,
            "reconnect_on_failure": True,
        }
        if not v5:
            kwargs["clean_session"] = not settings.persistent_session
        client = self._factory(**kwargs)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_connect_fail = self._on_connect_fail
        client.reconnect_delay_set(
            min_delay=settings.reconnect_min,
            max_delay=max(settings.reconnect_max, settings.reconnect_min),
        )
        if settings.username is not None or self._password is not None:
            client.username_pw_set(settings.username, self._password)
        tls = settings.tls
        if tls is not None and tls.enabled:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            if tls.insecure:
                client.tls_insecure_set(True)
        port = settings.port or (8883 if tls is not None and tls.enabled else 1883)
        connect: dict[str, Any] = {"keepalive": settings.keepalive}
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.ReceiveMaximum = settings.receive_maximum
            if settings.persistent_session:
                properties.SessionExpiryInterval = settings.session_expiry
                connect["clean_start"] = False
            else:
                connect["clean_start"] = True
            connect["properties"] = properties
        self._stopping.clear()
        self._client = client
        client.connect_async(settings.host, port, **connect)
        client.loop_start()
        logger.info(
            "source %s: connecting to mqtt://%s:%d as %s (QoS %d, %s session), topics %s",
            self.name,
            settings.host,
            port,
            self.client_id,
            settings.qos,
            "persistent" if settings.persistent_session else "clean",
            ", ".join(self.topics),
        )

    def stop(self) -> None:
        """Disconnect and stop paho's thread. Messages not acknowledged yet stay with the
        server's session (QoS 1, persistent) for the next start."""
        self._stopping.set()
        client = self._client
        if client is None:
            return
        try:
            client.disconnect()
        except Exception:
            logger.debug("source %s: disconnect failed", self.name, exc_info=True)
        client.loop_stop()
        self.connected = False
        self.subscribed = False
        self._client = None

    # Acknowledging -----------------------------------------------------------------------------

    def _ack(self, mid: int, qos: int, generation: int, outcome: Outcome) -> None:
        client = self._client
        if client is None or generation != self._generation:
            self.counters.stale_acks += 1
            return
        client.ack(mid, qos)
        self.counters.acked += 1

    @property
    def ready(self) -> bool:
        return self.connected and self.subscribed

    # Callbacks (paho's network thread: small, never raising) -----------------------------------

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        try:
            name_native_thread(f"mqtt-{self.name}")  # paho's thread, started by paho
            if reason_code.is_failure:
                self.connected = False
                self.counters.refused += 1
                self.last_error = f"connection refused: {reason_code}"
                logger.error(
                    "source %s: the MQTT server refused the connection: %s",
                    self.name,
                    reason_code,
                )
                if _not_authorized(reason_code):
                    self.last_error = f"not authorized ({reason_code}); check the credentials"
                    client.disconnect()
                return
            self._generation += 1
            self.counters.connects += 1
            self.subscribed = False
            self.connected = True
            self.last_error = None
            session = bool(getattr(flags, "session_present", False))
            logger.info(
                "source %s: connected (session %s)", self.name, "resumed" if session else "new"
            )
            client.subscribe([(topic, self._qos) for topic in self.topics])
        except Exception:
            self.counters.callback_errors += 1
            logger.exception("source %s: on_connect failed", self.name)

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        try:
            granted = True
            for topic, code in zip(self.topics, reason_codes, strict=False):
                if code.is_failure:
                    granted = False
                    self.last_error = f"subscription to {topic} refused: {code}"
                    logger.error("source %s: subscribing %s refused: %s", self.name, topic, code)
            self.subscribed = granted
        except Exception:
            self.counters.callback_errors += 1
            logger.exception("source %s: on_subscribe failed", self.name)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        try:
            was = self.connected
            self.connected = False
            self.subscribed = False
            if was:
                self.counters.disconnects += 1
            if was and not self._stopping.is_set():
                # (a refused CONNACK is followed by a disconnect: keep the refusal's reason)
                self.last_error = f"disconnected: {reason_code}"
                logger.warning(
                    "source %s: disconnected (%s); paho reconnects with backoff",
                    self.name,
                    reason_code,
                )
        except Exception:
            self.counters.callback_errors += 1
            logger.exception("source %s: on_disconnect failed", self.name)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        try:
            self.connected = False
            self.last_error = "cannot reach the MQTT server"
            logger.warning("source %s: cannot reach the MQTT server; retrying", self.name)
        except Exception:
            self.counters.callback_errors += 1

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            self.counters.received += 1
            qos = msg.qos
            ack = functools.partial(self._ack, msg.mid, qos, self._generation) if qos > 0 else None
            message = Message(
                source=self.info,
                payload=msg.payload,
                received_at=time.time(),
                topic=msg.topic,
                ack=ack,
            )
            if self.queue.put(message):
                return
            if qos > 0:
                deadline = time.monotonic() + self.overflow_wait
                while time.monotonic() < deadline and not self._stopping.is_set():
                    time.sleep(0.005)
                    if self.queue.put(message):
                        return
            self.counters.overflow += 1
            if self.counters.overflow in (1, 10, 100) or self.counters.overflow % 1000 == 0:
                logger.warning(
                    "source %s: the pipeline queue is full; %d messages dropped so far%s",
                    self.name,
                    self.counters.overflow,
                    " (QoS 1: left unacknowledged for redelivery)" if qos else "",
                )
        except Exception:
            self.counters.callback_errors += 1
            logger.exception("source %s: on_message failed", self.name)


def _not_authorized(reason_code: Any) -> bool:
    value = getattr(reason_code, "value", None)
    # MQTT 3.1.1 CONNACK 4/5 map to 0x86/0x87 in paho's ReasonCode; MQTT 5 uses 0x86, 0x87, 0x8C
    return value in (0x04, 0x05, 0x86, 0x87, 0x8C)
