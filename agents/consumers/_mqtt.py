"""The MQTT side of a consumer: notifications published by a broker's MQTT notifier.

A broker sends `{"metadata": {headers}, "body": Notification}` to the topic of the subscription's
`mqtt://host:port/topic` endpoint; `metadata` holds the receiverInfo pairs (the shared secret)
and `NGSILD-Tenant`.

Contract:
- paho-mqtt 2 with `CallbackAPIVersion.VERSION2`; `connect_async` + `loop_start`, so paho's loop
  reconnects by itself; the subscription is made in `on_connect`, so it comes back after every
  reconnect.
- The session is persistent (a fixed client id, `clean_session=False`) and messages are
  acknowledged by hand (`manual_ack`): a QoS 1/2 message is acknowledged only after
  `Consumer.receive` handed it off (or refused it for good: 400/401), so the MQTT broker keeps
  what a stopped consumer has not taken yet. Use `MQTT-QoS` 1 in the subscription's
  notifierInfo for that; QoS 0 messages are lost while the consumer is away.
- Callbacks only copy the message onto a bounded queue; a worker thread calls `receive`. When
  the inbox is full (503) the worker waits and tries again; the message stays unacknowledged
  meanwhile, which holds back the MQTT broker (its in-flight window).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

if TYPE_CHECKING:
    from agents.consumers._consumer import Consumer

__all__ = ["MqttReceiver", "MqttSettings", "parse_mqtt_url"]

log = logging.getLogger("agents.consumers.mqtt")


@dataclass(frozen=True, kw_only=True)
class MqttSettings:
    host: str
    port: int
    topic: str
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_mqtt_url(url: str, *, topic: str | None = None) -> MqttSettings:
    """`mqtt[s]://[user:password@]host[:port][/topic]`; `topic` overrides the URL's path."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"expected an mqtt:// or mqtts:// URL, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"the MQTT URL {url!r} names no host")
    chosen = topic or unquote(parts.path.lstrip("/"))
    if not chosen:
        raise ValueError(f"no topic: give it in the URL ({url}/topic) or as --topic")
    tls = parts.scheme == "mqtts"
    return MqttSettings(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        topic=chosen,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


ClientFactory = Callable[[str], mqtt.Client]


def _default_client(client_id: str) -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        manual_ack=True,
    )


class MqttReceiver:
    """Feeds a started `Consumer` from an MQTT topic (see the module documentation)."""

    def __init__(
        self,
        consumer: Consumer,
        url: str,
        *,
        topic: str | None = None,
        qos: int = 1,
        client_id: str | None = None,
        queue_limit: int = 1000,
        client_factory: ClientFactory = _default_client,
    ) -> None:
        self.consumer = consumer
        self.settings = parse_mqtt_url(url, topic=topic)
        self.qos = qos
        self.client_id = client_id or f"drehscheibe-consumer-{consumer.name}"
        self._factory = client_factory
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_limit)
        self._client: mqtt.Client | None = None
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.dropped = 0
        self.refused = 0

    # paho callbacks: copy and return, never raise -----------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        try:
            if reason_code.is_failure:
                log.error("MQTT connection refused: %s", reason_code)
                return
            self.connected.set()
            client.subscribe(self.settings.topic, qos=self.qos)
        except Exception:
            log.exception("MQTT on_connect failed")

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        try:
            if any(code.is_failure for code in reason_codes):
                log.error("MQTT: subscribing to %s refused: %s", self.settings.topic, reason_codes)
                return
            log.info("MQTT: subscribed to %s", self.settings.topic)
            self.subscribed.set()
        except Exception:
            log.exception("MQTT on_subscribe failed")

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._queue.put_nowait((message.payload, message.mid, message.qos))
        except queue.Full:
            self.dropped += 1
            log.warning(
                "MQTT: %d notifications wait already; one is left unacknowledged",
                self._queue.maxsize,
            )
        except Exception:
            log.exception("MQTT on_message failed")

    # lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        client = self._factory(self.client_id)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        if self.settings.username is not None:
            client.username_pw_set(self.settings.username, self.settings.password)
        if self.settings.tls:
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        client.loop_start()
        self._client = client
        self._worker = threading.Thread(target=self._work, name="mqtt-receiver", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._worker is not None:
            self._worker.join(timeout=10)
            self._worker = None
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def _ack(self, mid: int, qos: int) -> None:
        if self._client is not None and qos > 0:
            self._client.ack(mid, qos)

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                payload, mid, qos = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                envelope = orjson.loads(payload)
            except orjson.JSONDecodeError:
                self.refused += 1
                log.warning("MQTT: a message on %s is not JSON; dropped", self.settings.topic)
                self._ack(mid, qos)
                continue
            if isinstance(envelope, dict) and "body" in envelope:
                metadata = envelope.get("metadata") or {}
                body = envelope["body"]
            else:
                metadata, body = {}, envelope
            headers = (
                {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
            )
            while not self._stopping.is_set():
                try:
                    receipt = self.consumer.receive(
                        body if isinstance(body, dict) else orjson.dumps(body), headers=headers
                    )
                except Exception:
                    log.exception("MQTT: receiving a notification failed")
                    self._stopping.wait(1.0)
                    continue
                if receipt.status == 503:
                    self._stopping.wait(0.5)
                    continue
                if receipt.status >= 400:
                    self.refused += 1
                    log.warning(
                        "MQTT: notification refused (%s): %s", receipt.status, receipt.detail
                    )
                self._ack(mid, qos)
                break
