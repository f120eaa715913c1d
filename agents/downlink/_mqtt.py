"""The MQTT side of downlinks: one paho client per network-server source that publishes downlinks
and, in the agent, receives the downlink events.

It is a client of its own (client id `<agent>-<source>-downlink` in the agent, a random one in
the CLI), next to the source's uplink client, so that publishing never waits behind uplinks and a
CLI never takes the agent's session over. It connects with a clean session: downlink events are
status updates, and one missed is not worth a persistent session. Publishing uses the source's
QoS (The Things Stack takes QoS 0 only) and, for QoS 1, waits for the PUBACK.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agents.downlink._model import DownlinkError

if TYPE_CHECKING:
    from agents.runtime import SourceConfig

__all__ = ["EventHandler", "MqttConnection", "MqttDownlinkClient"]

logger = logging.getLogger("agents.downlink.mqtt")

EventHandler = Callable[[str, str, bytes], None]
"""Called with (source name, topic, payload) for each downlink event (paho's thread: be quick)."""


@dataclass(frozen=True)
class MqttConnection:
    """Where and how to connect: taken from a source's `mqtt` settings (`from_source`)."""

    source: str
    network_server: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    protocol: str = "3.1.1"
    qos: int = 0
    keepalive: int = 60
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    application: str | None = None
    ns_tenant: str | None = None

    @classmethod
    def from_source(cls, source: SourceConfig, *, password: str | None) -> MqttConnection:
        """The connection of an MQTT source of the agent configuration."""
        settings = source.mqtt
        if settings is None:
            raise DownlinkError(f"source {source.name} is not an MQTT source")
        tls = settings.tls
        enabled = tls is not None and tls.enabled
        return cls(
            source=source.name,
            network_server=source.network_server,
            host=settings.host,
            port=settings.port or (8883 if enabled else 1883),
            username=settings.username,
            password=password,
            protocol=settings.protocol,
            qos=settings.qos,
            keepalive=settings.keepalive,
            tls=enabled,
            ca_file=str(tls.ca_file) if tls is not None and tls.ca_file else None,
            cert_file=str(tls.cert_file) if tls is not None and tls.cert_file else None,
            key_file=str(tls.key_file) if tls is not None and tls.key_file else None,
            tls_insecure=bool(tls is not None and tls.insecure),
            application=settings.application,
            ns_tenant=settings.ns_tenant,
        )


class MqttDownlinkClient:
    """Publishes downlinks to one source's MQTT server; subscribes `event_topics` and hands each
    message to `on_event`. `start()` returns at once (paho connects and reconnects in its
    thread); `wait_connected` waits for the first CONNACK."""

    def __init__(
        self,
        connection: MqttConnection,
        *,
        client_id: str,
        event_topics: Sequence[str] = (),
        on_event: EventHandler | None = None,
        client_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.connection = connection
        self.client_id = client_id
        self.event_topics = list(event_topics)
        self.on_event = on_event
        self._factory = client_factory or mqtt.Client
        self._client: Any = None
        self._connected = threading.Event()
        self.last_error: str | None = "not connected yet"
        self.published = 0
        self.events = 0

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        c = self.connection
        v5 = c.protocol == "5"
        kwargs: dict[str, Any] = {
            "callback_api_version": CallbackAPIVersion.VERSION2,
            "client_id": self.client_id,
            "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        }
        if not v5:
            kwargs["clean_session"] = True
        client = self._factory(**kwargs)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_connect_fail = self._on_connect_fail
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        if c.username is not None or c.password is not None:
            client.username_pw_set(c.username, c.password)
        if c.tls:
            client.tls_set(
                ca_certs=c.ca_file, certfile=c.cert_file, keyfile=c.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )  # fmt: skip
            if c.tls_insecure:
                client.tls_insecure_set(True)
        self._client = client
        client.connect_async(c.host, c.port, keepalive=c.keepalive)
        client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            client.disconnect()
        except Exception:
            logger.debug("source %s: disconnect failed", self.connection.source, exc_info=True)
        client.loop_stop()
        self._connected.clear()
        self._client = None

    def publish(self, topic: str, body: bytes, *, timeout: float = 10.0) -> None:
        """Publish one downlink; for QoS 1 wait for the server's PUBACK. Raises `DownlinkError`
        when the server is not connected or does not confirm within `timeout`."""
        client = self._client
        source = self.connection.source
        if client is None or not self._connected.wait(timeout):
            raise DownlinkError(
                f"source {source}: not connected to mqtt://{self.connection.host}:"
                f"{self.connection.port} ({self.last_error})"
            )
        info = client.publish(topic, body, qos=self.connection.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise DownlinkError(f"source {source}: publishing to {topic} failed: rc {info.rc}")
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as error:
            raise DownlinkError(f"source {source}: publishing to {topic} failed: {error}") from None
        if not info.is_published():
            raise DownlinkError(
                f"source {source}: the MQTT server did not confirm the downlink within "
                f"{timeout:g} s"
            )
        self.published += 1

    # paho callbacks (its network thread: small, never raising) ---------------------------------

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        try:
            if reason_code.is_failure:
                self.last_error = f"connection refused: {reason_code}"
                logger.error(
                    "source %s: the MQTT server refused the downlink client: %s",
                    self.connection.source,
                    reason_code,
                )
                return
            self.last_error = None
            if self.event_topics:
                client.subscribe([(topic, self.connection.qos) for topic in self.event_topics])
            self._connected.set()
        except Exception:
            logger.exception("source %s: on_connect failed", self.connection.source)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self.last_error = "cannot reach the MQTT server"

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._connected.clear()
        if self.last_error is None:
            self.last_error = f"disconnected: {reason_code}"

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            self.events += 1
            if self.on_event is not None:
                self.on_event(self.connection.source, message.topic, bytes(message.payload))
        except Exception:
            logger.exception("source %s: handling a downlink event failed", self.connection.source)
