"""Sending a downlink: which source and topic, record, publish, record the outcome.

    with DownlinkSender.from_config(config, store=store) as sender:      # the CLI
        record = sender.send(downlink, actor="cli:alice@host")

Which network server and topic (`resolve_identity`): the identity learned from the device's
uplinks (the most recent over the sources that can send downlinks), else, when exactly one MQTT
source of The Things Stack or ChirpStack v4 is configured, that source with its configured
`application` and `ns_tenant`. `application` and `device_id` given by the caller win over what
was learned. The Things Stack needs the device id, ChirpStack the application id.

Every downlink that gets that far is recorded, also when it cannot be published (status
`FAILED` with the reason): who asked, when, what, and what became of it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from agents.downlink._formats import DOWNLINK_NETWORK_SERVERS, downlink_message, event_topics
from agents.downlink._model import Downlink, DownlinkError, DownlinkRecord, NetworkIdentity
from agents.downlink._mqtt import EventHandler, MqttConnection, MqttDownlinkClient
from agents.downlink._store import DownlinkStore

if TYPE_CHECKING:
    from agents.runtime import AgentConfig

__all__ = ["DownlinkSender", "resolve_identity"]

logger = logging.getLogger("agents.downlink")


def resolve_identity(
    store: DownlinkStore,
    dev_eui: str,
    connections: Mapping[str, MqttConnection],
    *,
    source: str | None = None,
    application: str | None = None,
    device_id: str | None = None,
) -> NetworkIdentity:
    """How to address `dev_eui` (see the module docstring); `DownlinkError` saying what is
    missing when no source can be chosen."""
    usable = {
        name: c for name, c in connections.items() if c.network_server in DOWNLINK_NETWORK_SERVERS
    }
    if source is not None:
        if source not in connections:
            known = ", ".join(sorted(connections)) or "none"
            raise DownlinkError(
                f"device {dev_eui}: no MQTT source named {source!r} (MQTT sources: {known})"
            )
        if source not in usable:
            raise DownlinkError(
                f"device {dev_eui}: source {source} is {connections[source].network_server}; "
                f"downlinks go through {' or '.join(DOWNLINK_NETWORK_SERVERS)}"
            )
        usable = {source: usable[source]}
    if not usable:
        raise DownlinkError(
            f"device {dev_eui}: the configuration has no MQTT source of "
            f"{' or '.join(DOWNLINK_NETWORK_SERVERS)} to send downlinks through"
        )
    learned = [i for i in store.identities(dev_eui) if i.source in usable]
    if learned:
        identity = learned[0]
        connection = usable[identity.source]
        update: dict[str, Any] = {}
        if identity.ns_tenant is None and connection.ns_tenant:
            update["ns_tenant"] = connection.ns_tenant
    elif len(usable) == 1:
        connection = next(iter(usable.values()))
        identity = NetworkIdentity(
            dev_eui=dev_eui,
            source=connection.source,
            network_server=connection.network_server,
            application_id=connection.application,
            ns_tenant=connection.ns_tenant,
        )
        update = {}
    else:
        raise DownlinkError(
            f"device {dev_eui}: no uplink of it seen yet and several sources could reach it "
            f"({', '.join(sorted(usable))}); choose one with --source"
        )
    if application is not None:
        update["application_id"] = application
    if device_id is not None:
        update["device_id"] = device_id
    if update:
        identity = identity.model_copy(update=update)
    return identity


def _connections(config: AgentConfig) -> dict[str, MqttConnection]:
    from agents.runtime import ConfigError, resolve_secret

    found: dict[str, MqttConnection] = {}
    for source in config.sources:
        if source.transport != "mqtt" or source.mqtt is None:
            continue
        try:
            password = resolve_secret(source.mqtt.password, what=f"source {source.name} password")
        except ConfigError as error:
            raise DownlinkError("; ".join(error.problems)) from None
        found[source.name] = MqttConnection.from_source(source, password=password)
    return found


class DownlinkSender:
    """Sends downlinks through the sources' MQTT servers and records them in `store`.

    One `MqttDownlinkClient` per source, made at the first downlink through it (or all at
    `start()` when `on_event` is given: the agent, which also receives the downlink events).
    Thread-safe.
    """

    def __init__(
        self,
        store: DownlinkStore,
        connections: Mapping[str, MqttConnection],
        *,
        client_id_prefix: str,
        on_event: EventHandler | None = None,
        client_factory: Callable[..., Any] | None = None,
        publish_timeout: float = 10.0,
    ) -> None:
        self.store = store
        self.connections = dict(connections)
        self.client_id_prefix = client_id_prefix
        self.on_event = on_event
        self.client_factory = client_factory
        self.publish_timeout = publish_timeout
        self.clients: dict[str, MqttDownlinkClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls,
        config: AgentConfig,
        *,
        store: DownlinkStore,
        client_id_prefix: str | None = None,
        **options: Any,
    ) -> DownlinkSender:
        """The sender of an agent configuration's MQTT sources (passwords resolved now). The
        default client id prefix is `<agent>-cli-<pid>`, unique per process."""
        prefix = client_id_prefix or f"{config.agent.name}-cli-{os.getpid()}"
        return cls(store, _connections(config), client_id_prefix=prefix, **options)

    def start(self) -> None:
        """Connect every source that can carry downlinks, subscribed to its downlink events."""
        for name, connection in self.connections.items():
            if connection.network_server in DOWNLINK_NETWORK_SERVERS:
                self._client(name)

    def close(self) -> None:
        with self._lock:
            clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            client.stop()

    def __enter__(self) -> DownlinkSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _client(self, name: str) -> MqttDownlinkClient:
        with self._lock:
            client = self.clients.get(name)
            if client is None:
                connection = self.connections[name]
                topics = (
                    event_topics(
                        connection.network_server,
                        application=connection.application,
                        ns_tenant=connection.ns_tenant,
                    )
                    if self.on_event is not None
                    else []
                )
                client = MqttDownlinkClient(
                    connection,
                    client_id=f"{self.client_id_prefix}-{name}-downlink",
                    event_topics=topics,
                    on_event=self.on_event,
                    client_factory=self.client_factory,
                )
                client.start()
                self.clients[name] = client
            return client

    def send(
        self,
        downlink: Downlink,
        *,
        actor: str,
        replace: bool = False,
        source: str | None = None,
        application: str | None = None,
        device_id: str | None = None,
        command: str | None = None,
        device_entity: str | None = None,
        tenant: str | None = None,
    ) -> DownlinkRecord:
        """Record `downlink` and publish it in its network server's format. Returns the record:
        `PENDING` once the MQTT server took it, `FAILED` (with the reason in `detail`) when no
        source or topic could be found or publishing failed."""
        common: dict[str, Any] = {
            "actor": actor,
            "replace": replace,
            "command": command,
            "device_entity": device_entity,
            "tenant": tenant,
        }
        try:
            identity = resolve_identity(
                self.store,
                downlink.dev_eui,
                self.connections,
                source=source,
                application=application,
                device_id=device_id,
            )
            topic, body = downlink_message(downlink, identity, replace=replace)
        except DownlinkError as error:
            return self.store.add(downlink, status="FAILED", detail=str(error), **common)
        self.store.add(
            downlink,
            identity=identity,
            topic=topic,
            detail=f"publishing to {topic}",
            **common,
        )
        try:
            self._client(identity.source).publish(topic, body, timeout=self.publish_timeout)
        except DownlinkError as error:
            logger.warning("downlink %s to %s failed: %s", downlink.id, downlink.dev_eui, error)
            found = self.store.set_status(
                downlink.id,
                "FAILED",
                detail=str(error),
                event={"event": "publish-failed"},
                first=True,
            )
        else:
            found = self.store.set_status(
                downlink.id,
                "PENDING",
                detail=f"published to {topic}",
                event={"event": "published", "topic": topic},
                first=True,
            )
        assert found is not None
        return found
