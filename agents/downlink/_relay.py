"""The agent's downlink side: learn network identities, relay commands, follow their outcome.

    relay = DownlinkRelay.for_agent(config, registries=mapper.registries, catalog=mapper.catalog)
    relay.start()                                   # MQTT clients, subscribed to downlink events
    pipeline = Pipeline(queue, outbox, relay.observe(mapper), ...)
    relay.ensure_subscriptions(notification_base_url, token=token)    # keeper thread
    relay.handle_notification(body, command="setReportingInterval", tenant=None)
    relay.stop()

* `observe(mapper)` wraps the pipeline's mapper: every uplink (and join) teaches the store how
  the network server names its device (source, application id, device id, tenant). A dict
  lookup per uplink; the file is written only when something changed.
* Commands: one NGSI-LD subscription per command name the profiles declare and tenant of the
  registries (`ensure_subscriptions`), notifying `COMMAND_NOTIFICATION_PATH`; each
  notification's entities become downlinks (`handle_notification`), and the status is written
  back on the Device entity (`<command>_status`, `<command>_info`, see `agents.downlink._commands`).
  Only devices this agent has heard (an uplink taught their network identity) are served: with
  several agents on one tenant (one per network server), the one that hears a device sends its
  commands and the others leave them alone. A device must have sent an uplink before it gets a
  command, which LoRaWAN class A devices need anyway to receive one.
* Downlink events (The Things Stack `down/*`, ChirpStack `event/ack|txack`) arrive on the
  relay's own MQTT clients; a worker thread matches them to records, moves the records'
  status and, for commands, writes the new status on the Device entity. Broker writes happen on
  that thread only, never on paho's.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agents._threads import name_native_thread
from agents.downlink._commands import (
    STATUS_SUFFIX,
    EncoderCache,
    command_downlink,
    command_names,
    command_status_attributes,
)
from agents.downlink._events import parse_downlink_event
from agents.downlink._model import DownlinkError, DownlinkRecord, DownlinkStatus, NetworkIdentity
from agents.downlink._sender import DownlinkSender
from agents.downlink._store import DownlinkStore
from agents.lorawan import JoinEvent, LocationEvent, StatusEvent, Uplink
from agents.profiles import ProfileCatalog
from agents.registry import DEVICE_CONTEXT, Registry
from ngsi import Endpoint, EntitySelector, KeyValuePair, NotificationParams, Subscription
from schemas import key_values

if TYPE_CHECKING:
    from agents.runtime import AgentConfig

__all__ = ["COMMAND_NOTIFICATION_PATH", "DownlinkRelay", "ObservingMapper"]

logger = logging.getLogger("agents.downlink")

COMMAND_NOTIFICATION_PATH = "/notifications/commands"
"""Where the agent serves command notifications (`?command=<name>[&tenant=<tenant>]`)."""

_NULL = "urn:ngsi-ld:null"


class ObservingMapper:
    """The pipeline's mapper, with every uplink's and join's device identity taught to the
    downlink store first (see the module docstring). Everything else is the wrapped mapper's."""

    def __init__(self, mapper: Any, relay: DownlinkRelay) -> None:
        self.mapper = mapper
        self.relay = relay

    def __getattr__(self, name: str) -> Any:
        return getattr(self.mapper, name)

    def map_uplink(self, uplink: Uplink, *, source: Any, tenant: str | None) -> Any:
        self.relay.learn(uplink, source)
        return self.mapper.map_uplink(uplink, source=source, tenant=tenant)

    def join(self, event: JoinEvent, *, source: Any, tenant: str | None) -> Any:
        self.relay.learn(event, source)
        return self.mapper.join(event, source=source, tenant=tenant)

    def location(self, event: LocationEvent, *, source: Any, tenant: str | None) -> Any:
        return self.mapper.location(event, source=source, tenant=tenant)

    def status(self, event: StatusEvent, *, source: Any, tenant: str | None) -> Any:
        return self.mapper.status(event, source=source, tenant=tenant)


class DownlinkRelay:
    """The agent's downlink side (see the module docstring).

    `registries` maps each NGSI-LD tenant (None: the default) to its device registry (whose
    client writes the command status); `catalog` holds the profiles with their commands.
    `counters` holds figures for the metrics.
    """

    def __init__(
        self,
        store: DownlinkStore,
        sender: DownlinkSender,
        *,
        registries: Mapping[str | None, Registry],
        catalog: ProfileCatalog,
        subscription_prefix: str = "drehscheibe/agent/commands",
    ) -> None:
        self.store = store
        self.sender = sender
        self.registries = registries
        self.catalog = catalog
        self.subscription_prefix = subscription_prefix
        self.counters: dict[str, int] = {
            "commands": 0,
            "commands_elsewhere": 0,
            "notifications_repeated": 0,
            "command_failures": 0,
            "events": 0,
            "events_unmatched": 0,
            "status_writes": 0,
            "status_write_failures": 0,
        }
        self._encoders: EncoderCache = {}
        self._notifications: OrderedDict[str, None] = OrderedDict()
        self._notifications_lock = threading.Lock()
        self._work: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=10000)
        self._worker: threading.Thread | None = None
        sender.on_event = self._on_event

    @classmethod
    def for_agent(
        cls,
        config: AgentConfig,
        *,
        registries: Mapping[str | None, Registry],
        catalog: ProfileCatalog,
        client_factory: Callable[..., Any] | None = None,
    ) -> DownlinkRelay:
        """The relay of an agent configuration: its store in the data folder, one MQTT client
        per MQTT source (`<agent>-<source>-downlink`)."""
        store = DownlinkStore.in_data_dir(config.agent.data_dir)
        try:
            sender = DownlinkSender.from_config(
                config,
                store=store,
                client_id_prefix=config.agent.name,
                client_factory=client_factory,
            )
        except Exception:
            store.close()
            raise
        return cls(
            store,
            sender,
            registries=registries,
            catalog=catalog,
            subscription_prefix=f"drehscheibe/agent/{config.agent.name}/commands",
        )

    # Lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="agent-downlinks", daemon=True)
        self._worker.start()
        self.sender.on_event = self._on_event
        self.sender.start()

    def stop(self) -> None:
        self.sender.close()
        if self._worker is not None:
            self._work.put(None)
            self._worker.join(10)
            self._worker = None
        self.store.close()

    def observe(self, mapper: Any) -> ObservingMapper:
        return ObservingMapper(mapper, self)

    # Identities -------------------------------------------------------------------------------

    def learn(self, event: Uplink | JoinEvent, source: Any) -> None:
        """Remember how the network server names the event's device (never raises)."""
        dev_eui = event.dev_eui
        if dev_eui is None or (event.device_id is None and event.application_id is None):
            return
        kind = getattr(source, "kind", None) or event.source
        ns_tenant = event.tenant if kind == "tts" else None
        try:
            if self.store.knows(
                dev_eui, source.name, kind, event.application_id, event.device_id, ns_tenant
            ):
                return
            self.store.learn(
                NetworkIdentity(
                    dev_eui=dev_eui,
                    source=source.name,
                    network_server=kind,
                    application_id=event.application_id,
                    device_id=event.device_id,
                    ns_tenant=ns_tenant,
                    seen_at=datetime.now(UTC),
                )
            )
        except Exception:
            logger.exception("remembering the network identity of %s failed", dev_eui)

    # Commands ---------------------------------------------------------------------------------

    def commands(self) -> list[str]:
        """The command names the profiles declare."""
        profiles = []
        for name in self.catalog.names():
            try:
                profiles.append(self.catalog.get(name))
            except Exception:
                continue
        return command_names(profiles)

    def subscription(
        self, command: str, endpoint: str, *, token: str, tenant: str | None
    ) -> Subscription:
        """The subscription that notifies the agent when `command` is written on a Device."""
        uri = f"{endpoint}?command={command}" + (f"&tenant={tenant}" if tenant else "")
        params = NotificationParams(
            endpoint=Endpoint(
                uri=uri,
                accept="application/json",
                receiver_info=[KeyValuePair(key="X-Drehscheibe-Token", value=token)],
            ),
            format="normalized",
        )
        return Subscription.model_validate(
            {
                "subscriptionName": f"{self.subscription_prefix}/{command}",
                "description": f"Command {command} written on a Device: the agent sends it "
                "as a downlink",
                "entities": [EntitySelector(type="Device").model_dump(exclude_none=True)],
                "watchedAttributes": [command],
                "q": "devEUI",
                "notification": params.model_dump(by_alias=True, exclude_none=True),
                "jsonldContext": DEVICE_CONTEXT,
                "notificationTrigger": ["attributeCreated", "attributeUpdated"],
            }
        )

    def ensure_subscriptions(self, endpoint: str, *, token: str) -> int:
        """Create (or point at `endpoint`) one subscription per command and tenant; returns how
        many exist. Raises the client's errors (the keeper retries)."""
        commands = self.commands()
        count = 0
        for tenant, registry in self.registries.items():
            client = registry.client
            if client is None or not commands:
                continue
            existing = {
                s.subscription_name: s
                for s in client.list_subscriptions(context=DEVICE_CONTEXT)
                if s.subscription_name
            }
            for command in commands:
                wanted = self.subscription(command, endpoint, token=token, tenant=tenant)
                found = existing.get(wanted.subscription_name or "")
                if found is None or found.id is None:
                    client.create_subscription(wanted, context=DEVICE_CONTEXT)
                elif found.notification.endpoint.uri != wanted.notification.endpoint.uri:
                    client.update_subscription(
                        found.id,
                        {"notification": wanted.to_dict()["notification"]},
                        context=DEVICE_CONTEXT,
                    )
                count += 1
        return count

    def handle_notification(
        self, body: Mapping[str, Any], *, command: str, tenant: str | None
    ) -> list[DownlinkRecord]:
        """Send `command` for every entity of a notification; returns the records made. Each
        outcome (also a refusal: no such command, bad value) is written back as the command's
        status. A notification the broker sends again (same `id`, a retry after a timeout) is
        not sent twice."""
        registry = self.registries.get(tenant)
        if registry is None:
            raise ValueError(f"no device registry for tenant {tenant!r}")
        data = body.get("data")
        if not isinstance(data, list):
            raise ValueError("a notification has a data array")
        notification_id = body.get("id")
        if isinstance(notification_id, str) and notification_id:
            key = f"{tenant}|{command}|{notification_id}"
            with self._notifications_lock:
                if key in self._notifications:
                    self.counters["notifications_repeated"] += 1
                    return []
                self._notifications[key] = None
                while len(self._notifications) > 1000:
                    self._notifications.popitem(last=False)
        records: list[DownlinkRecord] = []
        for entity in data:
            if not isinstance(entity, Mapping):
                continue
            record = self._command(entity, command=command, tenant=tenant, registry=registry)
            if record is not None:
                records.append(record)
        return records

    def _command(
        self, entity: Mapping[str, Any], *, command: str, tenant: str | None, registry: Registry
    ) -> DownlinkRecord | None:
        entity_id = str(entity.get("id"))
        attribute = entity.get(command)
        if attribute is None:
            return None
        values = key_values({"id": entity_id, "type": "Device", command: attribute})
        value = values.get(command)
        if value is None or value == _NULL:
            return None
        dev_eui = key_values(entity).get("devEUI") if "devEUI" in entity else None
        device = registry.get(dev_eui) if isinstance(dev_eui, str) else None
        if device is None or not self.store.identities(device.dev_eui):
            # a device this agent has not heard is served by another agent (network server)
            self.counters["commands_elsewhere"] += 1
            logger.info("command %s on %s: not a device this agent has heard", command, entity_id)
            return None
        self.counters["commands"] += 1
        try:
            if device.profile is None:
                raise DownlinkError(f"device {device.dev_eui} has no profile")
            profile = self.catalog.get(device.profile)
            downlink = command_downlink(
                profile, command, value, dev_eui=device.dev_eui, encoders=self._encoders
            )
        except (DownlinkError, KeyError, ValueError) as error:
            self.counters["command_failures"] += 1
            logger.warning("command %s on %s refused: %s", command, entity_id, error)
            self._write_status(entity_id, tenant, command, "FAILED", record=None, detail=str(error))
            return None
        record = self.sender.send(
            downlink,
            actor=f"ngsi-ld:{entity_id}",
            command=command,
            device_entity=entity_id,
            tenant=tenant,
        )
        if record.status == "FAILED":
            self.counters["command_failures"] += 1
        self._write_status(entity_id, tenant, command, record.status, record=record)
        return record

    def _write_status(
        self,
        entity_id: str,
        tenant: str | None,
        command: str,
        status: DownlinkStatus,
        *,
        record: DownlinkRecord | None,
        detail: str | None = None,
    ) -> None:
        attrs = command_status_attributes(command, status, record=record, detail=detail)
        registry = self.registries.get(tenant)
        client = registry.client if registry is not None else None

        def write() -> None:
            if client is None:
                return
            try:
                client.append_attrs(entity_id, attrs, context=DEVICE_CONTEXT)
                self.counters["status_writes"] += 1
            except Exception as error:
                self.counters["status_write_failures"] += 1
                logger.warning(
                    "writing %s%s=%s on %s failed: %s",
                    command,
                    STATUS_SUFFIX,
                    status,
                    entity_id,
                    error,
                )

        self._submit(write)

    # Metrics ----------------------------------------------------------------------------------

    def metric_families(self) -> list[Any]:
        """The relay's figures as the agent's metric families."""
        from agents.runtime._metrics import counter, gauge

        c = self.counters
        published = [
            ({"source": name}, float(client.published))
            for name, client in self.sender.clients.items()
        ]
        connected = [
            ({"source": name}, 1.0 if client.connected else 0.0)
            for name, client in self.sender.clients.items()
        ]
        return [
            counter(
                "drehscheibe_downlinks_published_total",
                "Downlinks published to the network server, by source.",
                published,
            ),
            gauge(
                "drehscheibe_downlink_client_connected",
                "1 when the source's downlink client is connected.",
                connected,
            ),
            counter(
                "drehscheibe_commands_total",
                "Commands written on Device entities, by result (relayed, refused, not-heard).",
                [
                    ({"result": "relayed"}, float(c["commands"] - c["command_failures"])),
                    ({"result": "refused"}, float(c["command_failures"])),
                    ({"result": "not-heard"}, float(c["commands_elsewhere"])),
                ],
            ),
            counter(
                "drehscheibe_downlink_events_total",
                "Downlink events of the network servers, by whether they matched a record.",
                [
                    ({"matched": "true"}, float(c["events"] - c["events_unmatched"])),
                    ({"matched": "false"}, float(c["events_unmatched"])),
                ],
            ),
            counter(
                "drehscheibe_command_status_writes_total",
                "Command status writes to the broker, by result.",
                [
                    ({"result": "ok"}, float(c["status_writes"])),
                    ({"result": "failed"}, float(c["status_write_failures"])),
                ],
            ),
        ]

    # Events -----------------------------------------------------------------------------------

    def _submit(self, job: Callable[[], None]) -> None:
        try:
            self._work.put_nowait(job)
        except queue.Full:
            logger.error("the downlink worker's queue is full; a status update is dropped")

    def _on_event(self, source: str, topic: str, payload: bytes) -> None:
        def job() -> None:
            self.handle_event(source, topic, payload)

        self._submit(job)

    def handle_event(self, source: str, topic: str, payload: bytes) -> DownlinkRecord | None:
        """Apply one downlink event to its record (and the command's status on the Device);
        returns the record as it is now, None when the event matches none."""
        connection = self.sender.connections.get(source)
        if connection is None:
            return None
        outcome = parse_downlink_event(connection.network_server, topic, payload)
        if outcome is None:
            return None
        self.counters["events"] += 1
        record_id = self.store.match(outcome, source=source)
        if record_id is None:
            self.counters["events_unmatched"] += 1
            logger.debug("downlink event %s on %s matches no record", outcome.kind, topic)
            return None
        before = self.store.get(record_id)
        record = self.store.set_status(
            record_id, outcome.status, detail=outcome.detail, event=outcome.to_json()
        )
        if (
            record is not None
            and before is not None
            and record.command is not None
            and record.device_entity is not None
            and record.status != before.status
        ):
            self._write_status(
                record.device_entity, record.tenant, record.command, record.status, record=record
            )
        return record

    def _run(self) -> None:
        name_native_thread()
        while True:
            job = self._work.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                logger.exception("a downlink job failed")
