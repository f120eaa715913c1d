"""The pipeline's `UplinkMapper`: registry, profiles, codecs and mapping behind one call.

    mapper = build_mapper(config, client=client)
    mapped = mapper.map_uplink(uplink, source=info, tenant=info.tenant)

Per uplink (on the pipeline's thread, no I/O):

1. The device: `Registry.get(DevEUI)` of the source's tenant (one registry, with its own cache
   file, per NGSI-LD tenant the sources use). Unknown → None (the pipeline counts it); with
   `devices.unknown: register` the registry also registers it as unprovisioned, on a
   background thread so that the broker's latency never stalls the pipeline. A device that is
   unprovisioned, inactive or decommissioned → `DeviceNotInService` (counted, not a dead letter).
2. The profile (`ProfileCatalog.get`) and its codec (built once, shared). The profile's entity
   shapes are validated once, at its first uplink, against the Smart Data Models classes (and
   the official schemas when they are installed, `schemas.default_sdm_dir()`); a profile whose
   entities do not validate sends its uplinks to the dead letters (`validation-error`) instead
   of the outbox.
3. `codec.decode` (a `CodecError` goes up to the pipeline: `codec-error` / `codec-timeout`).
4. `map_uplink` with the configuration's `dataProvider` / `source`; every value is checked by its
   model field's validator there. Its entities become `OutboxItem`s for the output tenant (the
   source's, or the simulated tenant), with their subject's @context and observation time.

Events (join, location, status) update what the agent owns of the Device entity, through the
outbox like everything else (`upsert?options=update`):

* join → `devAddr` and `dateLastJoin` (and, in the pipeline, a new frame-counter session);
* location solved by the network → `solvedLocation` (a GeoProperty with `observedAt`, `source`
  and `accuracy`): the registered `location` stays the admin's;
* ChirpStack status → `batteryLevel` (0–1) and `margin` (dB), unless the device runs on
  external power or cannot measure.

Events of a decommissioned device are dropped like its uplinks (no more data accepted).

Lifecycle on the way: the first uplink of a device without `dateFirstUsed` writes it (its
receive time) on the Device; an observation's `location`, when it is the registered one, is
where the device was at the observation time (`RegisteredDevice.location_at`: a move from a
later date does not relocate earlier readings), with that time as `observedAt`, so the
measuring point's history says where each reading was made.

Registry upkeep (`subscribe`, `resync`, `apply_notification`) runs on the agent's keeper thread
and the HTTP server, never on the pipeline's.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.codecs import CodecError
from agents.delivery import Outbox, OutboxItem, UplinkArchive
from agents.fleet import (
    HEALTH_REASONS,
    Backfiller,
    FleetMonitor,
    StorageIntegration,
    StorageIntegrationError,
)
from agents.lorawan import JoinEvent, LocationEvent, StatusEvent, Uplink
from agents.mapping import (
    MappingConfig,
    MappingError,
    map_uplink,
    validate_profile_shapes,
)
from agents.profiles import DeviceProfile, ProfileCatalog, ProfileError, ProfileNotFound
from agents.registry import DEVICE_CONTEXT, RegisteredDevice, Registry
from agents.runtime._config import AgentConfig, ConfigError
from agents.runtime._messages import Message, MessageQueue, SourceInfo
from agents.runtime._metrics import MetricFamily, counter, gauge
from agents.runtime._pipeline import DeviceNotInService, Mapped, MappingFailure
from models import format_datetime
from ngsi import Client

__all__ = ["DeviceMapper", "build_fleet_monitor", "build_mapper", "fleet_metric_families"]

logger = logging.getLogger("agents.runtime.devices")


def _typed(at: datetime) -> dict[str, str]:
    return {"@type": "DateTime", "@value": format_datetime(at)}


class DeviceMapper:
    """Registry + profiles + codecs + mapping (see the module docstring).

    `registries` maps each NGSI-LD tenant the sources use (None: the default tenant) to its
    `Registry`. `catalog` holds the profiles. Thread-safety: `map_uplink` and the event methods
    run on the pipeline's thread; `apply_notification`, `resync` and `subscribe` on others (the
    registry itself is thread-safe).
    """

    def __init__(
        self,
        registries: Mapping[str | None, Registry],
        catalog: ProfileCatalog,
        *,
        mapping: MappingConfig,
        unknown: str = "drop",
        validate_shapes: bool = True,
        sdm: Any = None,
        subscription_name: str = "drehscheibe/agent/devices",
        registry_enabled: bool = True,
        clients: tuple[Client, ...] = (),
    ) -> None:
        self.registries = dict(registries)
        self.catalog = catalog
        self.mapping = mapping
        self.unknown = unknown
        self.validate_shapes = validate_shapes
        self.sdm = sdm
        self.subscription_name = subscription_name
        self.registry_enabled = registry_enabled
        self._clients = clients
        self.counters: dict[str, int] = {
            "not_in_service": 0,
            "events_unknown_device": 0,
            "notifications": 0,
            "resyncs": 0,
            "resync_failures": 0,
        }
        self._shapes: dict[str, str | None] = {}
        self._first: set[tuple[str | None, str]] = set()
        self._unknown: queue.Queue[tuple[Registry, Uplink]] = queue.Queue(maxsize=1000)
        self._unknown_seen: set[tuple[str | None, str]] = set()
        self._worker: threading.Thread | None = None
        self._closed = threading.Event()
        if unknown == "register":
            self._worker = threading.Thread(
                target=self._register_unknown, name="agent-unknown-devices", daemon=True
            )
            self._worker.start()

    def close(self) -> None:
        """Stop the background registration and close the registries' caches."""
        self._closed.set()
        if self._worker is not None:
            self._worker.join(5)
        for registry in self.registries.values():
            registry.close()
        for client in self._clients:
            client.close()

    def reload_profiles(self) -> None:
        """Read the profiles folder again (keeper thread). The catalog swaps its tables at once;
        the shape checks are redone at each profile's next uplink."""
        self.catalog.reload()
        self._shapes = {}
        problems = self.catalog.problems()
        for name, error in problems.items():
            logger.error("profile %s does not load: %s", name, error)

    def registry(self, tenant: str | None) -> Registry:
        found = self.registries.get(tenant)
        if found is None:
            raise MappingFailure(
                "mapping-error", f"no device registry for tenant {tenant or '(default)'}"
            )
        return found

    # Uplinks -----------------------------------------------------------------------------------

    def device(self, uplink: Uplink, *, source: SourceInfo) -> RegisteredDevice | None:
        """The registration of the uplink's device in the source's tenant, or None."""
        dev_eui = uplink.dev_eui
        if dev_eui is None:
            return None
        return self.registry(source.tenant).get(dev_eui)

    def map_uplink(
        self, uplink: Uplink, *, source: SourceInfo, tenant: str | None
    ) -> Mapped | None:
        device = self.device(uplink, source=source)
        if device is None:
            self._handle_unknown(uplink, source)
            return None
        if not device.maps_uplinks:
            self.counters["not_in_service"] += 1
            raise DeviceNotInService(
                "unprovisioned" if device.profile is None else "not-in-service",
                f"device {device.dev_eui} is {device.state}",
            )
        assert device.profile is not None
        profile = self._profile(device)
        codec = self.catalog.codec(profile.name)
        measurements = codec.decode(uplink.payload or b"", f_port=uplink.f_port or 0, uplink=uplink)
        try:
            mapped = map_uplink(
                uplink, measurements, device, profile, now=datetime.now(UTC), config=self.mapping
            )
        except MappingError as error:
            if error.reason in ("not-in-service", "unprovisioned"):
                self.counters["not_in_service"] += 1
                raise DeviceNotInService(error.reason, error.message) from None
            raise MappingFailure(
                "mapping-error",
                f"device {device.dev_eui}: {error}",
                detail={"mapping_reason": error.reason, "attribute": error.attribute},
            ) from None
        dev_eui = device.dev_eui
        f_cnt = uplink.f_cnt
        parts = mapped.outbox_parts(take=True)
        first_use = device.date_first_used is None and (source.tenant, dev_eui) not in self._first
        for body, _context, at in parts:
            if body.get("type") == "Device":
                if first_use:
                    body["dateFirstUsed"] = {"type": "Property", "value": _typed(at)}
                continue
            placed = body.get("location")
            if isinstance(placed, dict) and placed.get("value") == device.location:
                # the place the reading was made at: a move from a later date leaves it be
                observed_text = mapped.observed_text
                body["location"] = {
                    "type": "GeoProperty",
                    "value": device.location_at(at),
                    "observedAt": observed_text
                    if observed_text is not None and at is mapped.observed_at
                    else format_datetime(at),
                }
        if first_use:
            self._first.add((source.tenant, dev_eui))
            self.registry(source.tenant).mark_first_used(dev_eui, mapped.received_at)
        items = [
            OutboxItem(
                entity=body,
                tenant=tenant,
                context=context,
                dev_eui=dev_eui,
                f_cnt=f_cnt,
                observed_at=at,
            )
            for body, context, at in parts
        ]
        warnings = tuple(str(w) for w in mapped.warnings)
        if warnings and logger.isEnabledFor(logging.DEBUG):
            for warning in warnings:
                logger.debug("mapping: %s", warning)
        return Mapped(items=items, warnings=warnings, device=device.device_id)

    def _profile(self, device: RegisteredDevice) -> DeviceProfile:
        name = device.profile
        assert name is not None
        try:
            profile = self.catalog.get(name)
        except (ProfileNotFound, ProfileError) as exc:
            raise MappingFailure(
                "mapping-error",
                f"device {device.dev_eui}: profile {name!r}: {exc}",
                detail={"profile": name},
            ) from None
        if self.validate_shapes:
            shapes = self._shapes  # the keeper may swap the table
            if name not in shapes:
                shapes[name] = self._check_shapes(profile)
            problem = shapes[name]
            if problem is not None:
                raise MappingFailure(
                    "validation-error",
                    f"device {device.dev_eui}: profile {name} makes entities that do not "
                    f"validate: {problem}",
                    detail={"profile": name},
                )
        return profile

    def _check_shapes(self, profile: DeviceProfile) -> str | None:
        try:
            reports = validate_profile_shapes(profile, sdm=self.sdm)
        except (MappingError, CodecError, ValueError) as exc:
            return str(exc)
        problems = [f"{r.key}: {p}" for r in reports for p in r.problems]
        if problems:
            logger.error("profile %s: %s", profile.name, "; ".join(problems))
            return "; ".join(problems[:5])
        return None

    def _handle_unknown(self, uplink: Uplink, source: SourceInfo) -> None:
        if self.unknown != "register" or uplink.dev_eui is None:
            return
        key = (source.tenant, uplink.dev_eui)
        if key in self._unknown_seen:
            return
        self._unknown_seen.add(key)
        try:
            self._unknown.put_nowait((self.registry(source.tenant), uplink))
        except queue.Full:
            self._unknown_seen.discard(key)

    def _register_unknown(self) -> None:
        while not self._closed.is_set():
            try:
                registry, uplink = self._unknown.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                outcome = registry.unknown_device(uplink)
                logger.info("unknown device %s: %s", uplink.dev_eui, outcome.message)
            except Exception:
                logger.exception("registering unknown device %s failed", uplink.dev_eui)
            finally:
                if uplink.dev_eui is not None:
                    # let a later uplink try again (the registry itself paces its retries)
                    self._unknown_seen = {k for k in self._unknown_seen if k[1] != uplink.dev_eui}

    # Events ------------------------------------------------------------------------------------

    def _event_device(self, event: Any, source: SourceInfo) -> RegisteredDevice | None:
        dev_eui = getattr(event, "dev_eui", None)
        device = self.registry(source.tenant).get(dev_eui) if dev_eui else None
        if device is None:
            self.counters["events_unknown_device"] += 1
        elif device.state == "decommissioned":
            self.counters["not_in_service"] += 1
            return None
        return device

    def _item(
        self,
        device: RegisteredDevice,
        entity: dict[str, Any],
        *,
        tenant: str | None,
        at: datetime | None,
    ) -> OutboxItem:
        return OutboxItem(
            entity=entity,
            tenant=tenant,
            context=DEVICE_CONTEXT,
            dev_eui=device.dev_eui,
            observed_at=at,
        )

    def join(self, event: JoinEvent, *, source: SourceInfo, tenant: str | None) -> list[OutboxItem]:
        device = self._event_device(event, source)
        if device is None:
            return []
        at = event.received_at or datetime.now(UTC)
        entity: dict[str, Any] = {
            "id": device.device_id,
            "type": "Device",
            "dateLastJoin": {"type": "Property", "value": _typed(at)},
        }
        if event.dev_addr is not None:
            entity["devAddr"] = {
                "type": "Property",
                "value": event.dev_addr,
                "observedAt": format_datetime(at),
            }
        return [self._item(device, entity, tenant=tenant, at=at)]

    def location(
        self, event: LocationEvent, *, source: SourceInfo, tenant: str | None
    ) -> list[OutboxItem]:
        device = self._event_device(event, source)
        if device is None:
            return []
        at = event.received_at or datetime.now(UTC)
        where = event.location
        coordinates: list[float] = [where.longitude, where.latitude]
        if where.altitude is not None:
            coordinates.append(where.altitude)
        solved: dict[str, Any] = {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": coordinates},
            "observedAt": format_datetime(at),
        }
        origin = event.service or where.source
        if origin:
            solved["source"] = {"type": "Property", "value": origin}
        if where.accuracy is not None:
            solved["accuracy"] = {"type": "Property", "value": where.accuracy, "unitCode": "MTR"}
        entity = {"id": device.device_id, "type": "Device", "solvedLocation": solved}
        return [self._item(device, entity, tenant=tenant, at=at)]

    def status(
        self, event: StatusEvent, *, source: SourceInfo, tenant: str | None
    ) -> list[OutboxItem]:
        device = self._event_device(event, source)
        if device is None:
            return []
        at = event.received_at or datetime.now(UTC)
        text = format_datetime(at)
        entity: dict[str, Any] = {"id": device.device_id, "type": "Device"}
        if event.battery_level is not None and not event.external_power:
            level = min(max(event.battery_level / 100.0, 0.0), 1.0)
            entity["batteryLevel"] = {"type": "Property", "value": level, "observedAt": text}
        if event.margin is not None:
            entity["margin"] = {
                "type": "Property",
                "value": event.margin,
                "unitCode": "2N",
                "observedAt": text,
            }
        if len(entity) == 2:
            return []
        return [self._item(device, entity, tenant=tenant, at=at)]

    # Registry upkeep (keeper thread, HTTP server) ---------------------------------------------

    def subscribe(self, endpoint: str, *, token: str) -> None:
        """Create or refresh each tenant's registry subscription (notifications to `endpoint`,
        with the tenant as a query parameter and `token` as a header)."""
        for tenant, registry in self.registries.items():
            uri = endpoint if tenant is None else f"{endpoint}?tenant={tenant}"
            registry.ensure_subscription(
                uri,
                name=self.subscription_name,
                receiver_info={"X-Drehscheibe-Token": token},
            )

    def resync(self) -> None:
        """A full resync of every tenant's registry (raises the first failure after trying all)."""
        failure: Exception | None = None
        for tenant, registry in self.registries.items():
            try:
                report = registry.resync()
                self.counters["resyncs"] += 1
                if report.added or report.removed or report.updated:
                    logger.info(
                        "registry %s: %d devices (%d added, %d changed, %d removed)",
                        tenant or "(default tenant)",
                        report.total,
                        len(report.added),
                        len(report.updated),
                        len(report.removed),
                    )
            except Exception as exc:
                self.counters["resync_failures"] += 1
                failure = failure or exc
        if failure is not None:
            raise failure

    def apply_notification(self, body: Any, *, tenant: str | None = None) -> None:
        """Apply a registry notification to the tenant's registry."""
        registry = self.registries.get(tenant)
        if registry is None:
            raise ValueError(f"no registry for tenant {tenant!r}")
        if not isinstance(body, Mapping):
            raise ValueError("a notification is a JSON object")
        report = registry.apply_notification(body)
        self.counters["notifications"] += 1
        if report.added or report.updated or report.removed:
            logger.info(
                "registry notification: added %s, changed %s, removed %s",
                list(report.added),
                list(report.updated),
                list(report.removed),
            )

    def metric_families(self) -> list[MetricFamily]:
        devices = [
            ({"tenant": tenant or ""}, float(len(registry)))
            for tenant, registry in self.registries.items()
        ]
        registered = sum(r.counters["unknown_registered"] for r in self.registries.values())
        return [
            gauge(
                "drehscheibe_registry_devices",
                "Registered devices in the cache, by tenant.",
                devices,
            ),
            counter(
                "drehscheibe_registry_notifications_total",
                "Registry notifications applied.",
                [({}, self.counters["notifications"])],
            ),
            counter(
                "drehscheibe_registry_resyncs_total",
                "Full registry resyncs, by result.",
                [
                    ({"result": "ok"}, self.counters["resyncs"]),
                    ({"result": "failed"}, self.counters["resync_failures"]),
                ],
            ),
            counter(
                "drehscheibe_unknown_devices_registered_total",
                "Unknown devices registered as unprovisioned.",
                [({}, registered)],
            ),
            counter(
                "drehscheibe_devices_not_in_service_total",
                "Uplinks of devices that are unprovisioned, inactive or decommissioned.",
                [({}, self.counters["not_in_service"])],
            ),
        ]


def _registry_cache(config: AgentConfig, tenant: str | None) -> Path:
    base = config.registry_path
    if tenant is None:
        return base
    return base.with_name(f"{base.stem}-{tenant}{base.suffix}")


def build_mapper(config: AgentConfig, *, client: Client | None) -> DeviceMapper:
    """The mapper of an agent configuration: a registry per tenant of the sources (sharing the
    broker settings, each with its cache file), the profile catalog, the mapping settings."""
    catalog = ProfileCatalog(config.profiles.dir)
    tenants: set[str | None] = {config.broker.tenant}
    for source in config.sources:
        tenants.add(source.tenant if source.tenant is not None else config.broker.tenant)
    registries: dict[str | None, Registry] = {}
    made: list[Client] = []
    for tenant in sorted(tenants, key=lambda t: t or ""):
        tenant_client = client
        if client is not None and tenant != config.broker.tenant:
            tenant_client = Client(
                config.broker.url,
                tenant=tenant,
                timeout=config.broker.timeout,
                auth=client.auth,
                profile=config.broker.profile,
                retries=client.retries,
            )
            made.append(tenant_client)
        registries[tenant] = Registry(
            tenant_client,
            cache_path=_registry_cache(config, tenant),
            profiles=catalog,
            unknown_devices=config.devices.unknown,
        )
    sdm = None
    try:
        from schemas import default_sdm_dir, sdm_schemas

        if default_sdm_dir().is_dir():
            sdm = sdm_schemas()
    except Exception:  # official schemas are optional
        sdm = None
    return DeviceMapper(
        registries,
        catalog,
        mapping=MappingConfig(
            data_provider=config.mapping.data_provider, source=config.mapping.source
        ),
        unknown=config.devices.unknown,
        sdm=sdm,
        subscription_name=f"drehscheibe/agent/{config.agent.name}/devices",
        registry_enabled=client is not None,
        clients=tuple(made),
    )


def build_fleet_monitor(
    config: AgentConfig,
    mapper: DeviceMapper,
    *,
    outbox: Outbox | None,
    archive: UplinkArchive | None,
    clock: Callable[[], datetime] | None = None,
    queue: MessageQueue | None = None,
) -> FleetMonitor | None:
    """The agent's fleet health check (`fleet` in the configuration), or None when it is
    disabled or the agent has no broker to write `health` to. With `fleet.backfill`, an
    archive and the agent's `queue`, fCnt gaps of those sources are filled from The Things
    Stack's Storage Integration: the fetched uplinks enter the queue like received ones."""
    if not config.fleet.enabled or not mapper.registry_enabled:
        return None
    backfiller: Backfiller | None = None
    if config.fleet.backfill and archive is not None and queue is not None:
        backfiller = _backfiller(config, archive, queue)
    return FleetMonitor(
        mapper.registries,
        mapper.catalog,
        settings=config.fleet,
        archive=archive,
        dead_letters=outbox.db if outbox is not None else None,
        frames=outbox.frames if outbox is not None else None,
        clock=clock,
        backfiller=backfiller,
    )


def _backfiller(config: AgentConfig, archive: UplinkArchive, queue: MessageQueue) -> Backfiller:
    from agents.runtime._agent import source_info

    infos: dict[str, SourceInfo] = {}
    storages: dict[str, StorageIntegration] = {}
    problems: list[str] = []
    for entry in config.fleet.backfill:
        try:
            source = config.source(entry.source)
        except KeyError:
            problems.append(f"fleet/backfill/{entry.source}: no source of that name")
            continue
        if source.network_server != "tts":
            problems.append(
                f"fleet/backfill/{entry.source}: the Storage Integration is The Things "
                f"Stack's; this source is {source.network_server}"
            )
            continue
        try:
            key = entry.api_key()
        except StorageIntegrationError as exc:
            problems.append(f"fleet/backfill/{entry.source}: {exc}")
            continue
        infos[source.name] = source_info(source, default_tenant=config.broker.tenant)
        storages[source.name] = StorageIntegration(entry.url, api_key=key, timeout=entry.timeout)
    if problems:
        raise ConfigError("configuration", problems)

    def submit(name: str, payload: bytes, topic: str | None) -> bool:
        info = infos[name]
        return queue.put(
            Message(
                source=info,
                payload=payload,
                received_at=time.time(),
                topic=topic if info.transport == "mqtt" else None,
            )
        )

    limit = max((entry.max_uplinks for entry in config.fleet.backfill), default=100)
    return Backfiller(archive, storages, submit, max_uplinks=limit)


def fleet_metric_families(monitor: FleetMonitor) -> list[MetricFamily]:
    """The fleet check's figures for `/metrics`: devices by health status, by reason, each
    device that is not healthy, and the checks themselves."""
    summary = monitor.summary()
    unhealthy = monitor.unhealthy()
    reasons = dict.fromkeys(HEALTH_REASONS, 0)
    for health in unhealthy:
        for reason in health.reasons:
            reasons[reason] += 1
    counters = monitor.counters
    return [
        gauge(
            "drehscheibe_fleet_devices",
            "Devices in service by health status at the last check (ok, degraded, silent, "
            "unknown).",
            [
                ({"status": status}, float(summary.get(status, 0)))
                for status in ("ok", "degraded", "silent", "unknown")
            ],
        ),
        gauge(
            "drehscheibe_fleet_problems",
            "Devices with each health problem at the last check.",
            [({"reason": reason}, float(n)) for reason, n in reasons.items()],
        ),
        gauge(
            "drehscheibe_device_unhealthy",
            "1 for each device and reason it is not healthy for, at the last check.",
            [
                ({"tenant": h.tenant or "", "dev_eui": h.dev_eui, "reason": reason}, 1.0)
                for h in sorted(unhealthy, key=lambda h: (h.tenant or "", h.dev_eui))
                for reason in h.reasons
            ],
        ),
        counter(
            "drehscheibe_fleet_checks_total",
            "Fleet health checks, by result.",
            [({"result": "ok"}, counters.checks), ({"result": "failed"}, counters.failures)],
        ),
        counter(
            "drehscheibe_fleet_health_writes_total",
            "Changed health verdicts written on Device entities, by result.",
            [
                ({"result": "ok"}, counters.writes),
                ({"result": "failed"}, counters.write_failures),
            ],
        ),
        gauge(
            "drehscheibe_fleet_last_check_seconds",
            "When the last fleet health check ran (Unix time, the agent's clock).",
            [
                (
                    {},
                    counters.last_check.timestamp() if counters.last_check is not None else 0.0,
                )
            ],
        ),
    ]
