"""MQTT notifications: one paho-mqtt connection per broker, shared by every subscription using it.

An endpoint `mqtt[s]://[user:password@]host[:port]/topic` names a broker and a topic;
`notifierInfo` may set `MQTT-Version` (`mqtt3.1.1`, the default, or `mqtt5.0`) and `MQTT-QoS`
(0, the default, 1 or 2). The message is `{"metadata": {headers}, "body": Notification}`.

Contract:
- A connection is opened on first use with `connect_async()` + `loop_start()`; paho's loop
  reconnects after any drop (keep-alive timeout, broker restart) with a growing delay, so a broker
  that goes away and comes back is used again without anyone's help.
- `MqttSender.send()` waits (at most the notification timeout) for the connection to be up before
  publishing, and for QoS 1/2 until the broker acknowledged the message; otherwise it raises a
  retryable DeliveryError. paho callbacks only flip flags and wake the notifier's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ngsi.broker._notifier_send import DeliveryError, Outgoing, notification_headers

__all__ = ["MqttConnections", "MqttSender", "MqttTarget", "parse_mqtt_endpoint"]

log = logging.getLogger(__name__)

MQTT_VERSIONS = {"mqtt3.1.1": mqtt.MQTTv311, "mqtt5.0": mqtt.MQTTv5}


@dataclass(frozen=True, kw_only=True, slots=True)
class MqttTarget:
    """A parsed MQTT endpoint: the broker connection it needs and the topic and QoS to use."""

    tls: bool
    host: str
    port: int
    username: str | None
    password: str | None
    version: str
    topic: str
    qos: int

    @property
    def connection_key(self) -> tuple[bool, str, int, str | None, str | None, str]:
        return (self.tls, self.host, self.port, self.username, self.password, self.version)

    @property
    def label(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port}/{self.topic} ({self.version}, QoS {self.qos})"


def parse_mqtt_endpoint(uri: str, notifier_info: tuple[tuple[str, str], ...] = ()) -> MqttTarget:
    """Parse an MQTT endpoint URI and its notifierInfo; ValueError says what is wrong."""
    parts = urlsplit(uri)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"expected an mqtt:// or mqtts:// URI, got {uri!r}")
    if not parts.hostname:
        raise ValueError(f"the MQTT endpoint {uri!r} names no host")
    topic = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if not topic:
        raise ValueError(f"the MQTT endpoint {uri!r} names no topic (mqtt://host:port/topic)")
    if "+" in topic or "#" in topic or "#" in uri:
        raise ValueError(f"the MQTT topic {topic!r} must not contain the wildcards + or #")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"the MQTT endpoint {uri!r} has an invalid port") from exc
    info = {k.lower(): v for k, v in notifier_info}
    version = info.get("mqtt-version", "mqtt3.1.1")
    if version not in MQTT_VERSIONS:
        raise ValueError(
            f"notifierInfo MQTT-Version {version!r} is not supported: use mqtt3.1.1 or mqtt5.0"
        )
    qos_text = info.get("mqtt-qos", "0")
    if qos_text not in ("0", "1", "2"):
        raise ValueError(f"notifierInfo MQTT-QoS {qos_text!r} must be 0, 1 or 2")
    tls = parts.scheme == "mqtts"
    return MqttTarget(
        tls=tls,
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        version=version,
        topic=topic,
        qos=int(qos_text),
    )


ClientFactory = Callable[[MqttTarget], mqtt.Client]


def _default_client(target: MqttTarget) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"drehscheibe-notifier-{uuid.uuid4().hex[:12]}",
        protocol=MQTT_VERSIONS[target.version],
    )
    if target.username is not None:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set()
    return client


class _Connection:
    """One paho client, its loop thread and what the notifier's loop waits on."""

    def __init__(self, target: MqttTarget, client: mqtt.Client, loop: asyncio.AbstractEventLoop):
        self.target = target
        self.client = client
        self.loop = loop
        self.changed = asyncio.Event()
        self._lock = threading.Lock()
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._done_early: set[int] = set()
        self.failures = 0
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.connect_async(target.host, target.port, keepalive=30)
        client.loop_start()

    # paho callbacks (network thread): flip flags, wake the loop, never raise.
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        try:
            if getattr(reason_code, "is_failure", False):
                log.error(
                    "MQTT broker %s:%s refused the notifier: %s",
                    self.target.host,
                    self.target.port,
                    reason_code,
                )
            else:
                log.info(
                    "notifier connected to MQTT broker %s:%s", self.target.host, self.target.port
                )
            self._wake()
        except Exception:  # pragma: no cover - defensive, callbacks must not raise
            log.exception("MQTT on_connect failed")

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        try:
            log.info(
                "notifier lost MQTT broker %s:%s (%s); reconnecting",
                self.target.host,
                self.target.port,
                reason_code,
            )
            self._wake()
        except Exception:  # pragma: no cover
            log.exception("MQTT on_disconnect failed")

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        try:
            failed = bool(getattr(reason_code, "is_failure", False))
            with self._lock:
                future = self._pending.pop(mid, None)
                if future is None:
                    if len(self._done_early) > 1000:
                        self._done_early.clear()
                    self._done_early.add(mid)
            if future is not None:
                self.loop.call_soon_threadsafe(_resolve, future, failed, reason_code)
        except Exception:  # pragma: no cover
            log.exception("MQTT on_publish failed")

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
            self.loop.call_soon_threadsafe(self.changed.set)

    async def publish(self, payload: bytes, *, topic: str, qos: int, timeout: float) -> None:
        deadline = self.loop.time() + timeout
        while not self.client.is_connected():
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise DeliveryError(
                    f"not connected to the MQTT broker {self.target.host}:{self.target.port}",
                    retry=True,
                )
            self.changed.clear()
            if self.client.is_connected():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))
        future: asyncio.Future[None] = self.loop.create_future()
        info = self.client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            # paho keeps a QoS>0 message it could not write and sends it after reconnecting;
            # the retry may then deliver it twice, which QoS 1 allows.
            with self._lock:
                self._done_early.discard(info.mid)
            raise DeliveryError(f"MQTT publish failed: {mqtt.error_string(info.rc)}", retry=True)
        with self._lock:
            if info.mid in self._done_early:
                self._done_early.discard(info.mid)
                return
            self._pending[info.mid] = future
        try:
            remaining = max(deadline - self.loop.time(), 0.1)
            await asyncio.wait_for(future, remaining)
        except TimeoutError as exc:
            with self._lock:
                self._pending.pop(info.mid, None)
            if info.is_published():
                return
            raise DeliveryError(
                f"the MQTT broker {self.target.host}:{self.target.port} did not acknowledge "
                f"within {timeout:g} s",
                retry=True,
            ) from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        with contextlib.suppress(Exception):
            self.client.loop_stop()


def _resolve(future: asyncio.Future[None], failed: bool, reason_code: Any) -> None:
    if future.done():
        return
    if failed:
        future.set_exception(
            DeliveryError(f"the MQTT broker rejected the message: {reason_code}", retry=False)
        )
    else:
        future.set_result(None)


class MqttConnections:
    """The notifier's MQTT connections, one per (broker, credentials, protocol version).

    Used from the notifier's event loop only; `close()` stops every paho loop thread.
    """

    def __init__(self, *, client_factory: ClientFactory | None = None) -> None:
        self._factory = client_factory or _default_client
        self._connections: dict[tuple[Any, ...], _Connection] = {}

    def get(self, target: MqttTarget) -> _Connection:
        key = target.connection_key
        connection = self._connections.get(key)
        if connection is None:
            connection = _Connection(target, self._factory(target), asyncio.get_running_loop())
            self._connections[key] = connection
        return connection

    def close(self) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        for connection in connections:
            connection.close()

    def __len__(self) -> int:
        return len(self._connections)


class MqttSender:
    """Publishes notifications of one MQTT endpoint through the shared connection pool."""

    def __init__(self, target: MqttTarget, connections: MqttConnections) -> None:
        self.target = target
        self._connections = connections

    async def send(self, item: Outgoing, body: dict[str, Any], timeout: float) -> None:
        message = {"metadata": notification_headers(item), "body": body}
        connection = self._connections.get(self.target)
        await connection.publish(
            orjson.dumps(message), topic=self.target.topic, qos=self.target.qos, timeout=timeout
        )

    async def aclose(self) -> None:
        """Nothing to do: the connection belongs to the pool."""
