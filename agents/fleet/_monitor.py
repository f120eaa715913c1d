"""The fleet monitor: checks every device in service, periodically, and marks its Device entity.

    monitor = FleetMonitor(registries, profiles, settings=FleetSettings(interval=60),
                           archive=archive, dead_letters=outbox.db, frames=outbox.frames)
    monitor.start()            # a thread: check() every `interval` seconds
    results = monitor.check()  # or one check now

A check reads, for each tenant's registry, the devices that map uplinks (active or in
maintenance, with a profile), the expected reporting interval of their profile, what the
agent's stores hold (`agents.fleet._records`) and each Device's `batteryLevel`,
`dateLastValueReported` and current `health` in the broker, judges each device (`assess`) and
writes `health` where the verdict changed. The last uplink is the later of what this agent
received and the Device's `dateLastValueReported`, which any agent instance writes: with
several instances splitting the uplinks, a device is not silent because another instance
received it.

    "health": {"type": "Property", "value": "silent", "observedAt": "...",
               "reasons": {"type": "Property", "value": ["silent"]},
               "detail": {"type": "Property", "value": ["no uplink for 7 min; expected ..."]}}

`deviceState` stays the lifecycle the admin sets; `health` is the agent's. An NGSI-LD
subscription on `Device` watching `health` (for example with `q=health!="ok"`) notifies an
alert channel when a device goes silent and again when it recovers. The attribute is written
directly (batch update, not through the outbox): it is derived state that the next check writes
again if the broker was away. Unchanged verdicts are not written, so a quiet fleet costs one
read of the Device entities per check; the changed ones go in one request per thousand devices,
and a device whose entity is gone fails alone.

Time comes from `clock` (injectable): the silence of a device is `clock() - last uplink`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agents._threads import name_native_thread
from agents.delivery import Database, FrameCounters, UplinkArchive
from agents.fleet._backfill import Backfiller
from agents.fleet._health import (
    DeviceFigures,
    DeviceHealth,
    FleetSettings,
    HealthStatus,
    assess,
)
from agents.fleet._records import UplinkFigures, decode_errors, uplink_figures
from agents.registry import DEVICE_CONTEXT, ProfileLookup, RegisteredDevice, Registry
from models import format_datetime
from ngsi import NgsiError

__all__ = ["FleetCounters", "FleetMonitor", "health_attribute"]

logger = logging.getLogger("agents.fleet")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def health_attribute(health: DeviceHealth) -> dict[str, Any]:
    """The Device's `health` Property for a verdict (normalized NGSI-LD)."""
    attribute: dict[str, Any] = {
        "type": "Property",
        "value": health.status,
        "observedAt": format_datetime(health.checked_at),
    }
    if health.reasons:
        attribute["reasons"] = {"type": "Property", "value": list(health.reasons)}
    if health.detail:
        attribute["detail"] = {"type": "Property", "value": list(health.detail)}
    return attribute


@dataclass
class FleetCounters:
    """The monitor's figures since start."""

    checks: int = 0
    failures: int = 0
    writes: int = 0
    write_failures: int = 0
    last_check: datetime | None = None
    last_error: str | None = None
    by_status: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Broker:
    battery: float | None
    status: str | None
    reasons: tuple[str, ...]
    last_reported: datetime | None = None


def _as_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    return (str(value),)


def _value(attribute: Any) -> Any:
    if isinstance(attribute, Mapping):
        return attribute.get("value")
    return attribute


def _instant(attribute: Any) -> datetime | None:
    """A DateTime Property's value (`{"@type": "DateTime", "@value": ...}` or plain text) as
    an aware datetime; None when absent or unreadable."""
    value = _value(attribute)
    if isinstance(value, Mapping):
        value = value.get("@value")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


LOGGED_TURNS = 20
"""Devices whose status changed that a check logs one by one; more are logged as a summary
(a new fleet's first check, a gateway outage), each device then at debug level."""


def _log_turns(turned: list[DeviceHealth]) -> None:
    def text(health: DeviceHealth) -> str:
        detail = f": {'; '.join(health.detail)}" if health.detail else ""
        return f"device {health.dev_eui} is {health.status}{detail}"

    if len(turned) <= LOGGED_TURNS:
        for health in turned:
            (logger.info if health.status == "ok" else logger.warning)("%s", text(health))
        return
    counts: dict[str, int] = {}
    for health in turned:
        counts[health.status] = counts.get(health.status, 0) + 1
        logger.debug("%s", text(health))
    log = logger.info if set(counts) == {"ok"} else logger.warning
    log(
        "%d devices changed health: %s (%s, ...; each at debug level)",
        len(turned),
        ", ".join(f"{count} {status}" for status, count in sorted(counts.items())),
        ", ".join(health.dev_eui for health in turned[:5]),
    )


class FleetMonitor:
    """Checks the health of every device in service (see the module docstring).

    `registries` maps each NGSI-LD tenant to its `Registry` (whose client writes `health`);
    `profiles` gives each device's expected `reporting_interval`; `archive`, `dead_letters`
    (the delivery database holding them) and `frames` are the agent's stores (each optional).
    `clock` returns the current time (aware; default the system's UTC clock). `on_check` is
    called with each check's verdicts. `backfiller` (optional) runs after each check and
    fetches what fCnt gaps miss from The Things Stack's Storage Integration. Thread-safety:
    `check` runs on the monitor's thread (or the caller's); `results` and `counters` may be
    read from any thread.
    """

    def __init__(
        self,
        registries: Mapping[str | None, Registry],
        profiles: ProfileLookup | None,
        *,
        settings: FleetSettings | None = None,
        archive: UplinkArchive | None = None,
        dead_letters: Database | None = None,
        frames: FrameCounters | None = None,
        clock: Callable[[], datetime] | None = None,
        on_check: Callable[[list[DeviceHealth]], None] | None = None,
        backfiller: Backfiller | None = None,
    ) -> None:
        self.registries = dict(registries)
        self.profiles = profiles
        self.settings = settings or FleetSettings()
        self.archive = archive
        self.dead_letters = dead_letters
        self.frames = frames
        self.clock = clock or _utc_now
        self.on_check = on_check
        self.backfiller = backfiller
        self.counters = FleetCounters()
        self.results: dict[tuple[str | None, str], DeviceHealth] = {}
        self._lock = threading.Lock()
        self._batteries: dict[tuple[str | None, str], float] = {}
        self._written: dict[tuple[str | None, str], tuple[str, tuple[str, ...]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Thread --------------------------------------------------------------------------------

    def start(self) -> None:
        """Run `check` every `settings.interval` seconds on a thread of its own."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="agent-fleet", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.backfiller is not None:
            self.backfiller.close()

    def _run(self) -> None:
        name_native_thread()
        while not self._stop.wait(self.settings.interval):
            try:
                self.check()
            except Exception as exc:
                logger.exception("the fleet health check failed")
                with self._lock:
                    self.counters.failures += 1
                    self.counters.last_error = f"{type(exc).__name__}: {exc}"

    # One check -----------------------------------------------------------------------------

    def _interval(self, device: RegisteredDevice) -> float | None:
        if self.profiles is not None and device.profile is not None:
            try:
                profile = self.profiles.get(device.profile)
            except (KeyError, ValueError):
                profile = None
            found = getattr(profile, "reporting_interval", None)
            if isinstance(found, int | float) and found > 0:
                return float(found)
        return self.settings.default_interval

    def _broker_view(self, tenant: str | None, registry: Registry) -> dict[str, _Broker] | None:
        client = registry.client
        if client is None:
            return None
        found: dict[str, _Broker] = {}
        try:
            for entity in client.iter_entities(
                type="Device",
                q="devEUI",
                attrs="devEUI,batteryLevel,health,dateLastValueReported",
                context=DEVICE_CONTEXT,
            ):
                dev_eui = _value(entity.get("devEUI"))
                if not isinstance(dev_eui, str):
                    continue
                battery = _value(entity.get("batteryLevel"))
                health = entity.get("health")
                reasons = health.get("reasons") if isinstance(health, Mapping) else None
                found[dev_eui] = _Broker(
                    battery=float(battery) if isinstance(battery, int | float) else None,
                    status=_value(health) if health is not None else None,
                    reasons=_as_list(_value(reasons)),
                    last_reported=_instant(entity.get("dateLastValueReported")),
                )
        except NgsiError as exc:
            logger.warning(
                "fleet check: cannot read the Device entities of tenant %s (%s); health is "
                "judged without the battery and written at the next check",
                tenant or "(default)",
                exc,
            )
            return None
        return found

    def check(self) -> list[DeviceHealth]:
        """Judge every device in service now, write the changed verdicts, return them all."""
        now = self.clock()
        since = now - timedelta(seconds=self.settings.window)
        stored: dict[str, UplinkFigures] = (
            uplink_figures(self.archive, since=since) if self.archive is not None else {}
        )
        errors = decode_errors(self.dead_letters, since=since) if self.dead_letters else {}
        verdicts: list[DeviceHealth] = []
        for tenant, registry in self.registries.items():
            broker = self._broker_view(tenant, registry)
            changed: list[DeviceHealth] = []
            for device in registry.list():
                if not device.maps_uplinks:
                    continue
                key = (tenant, device.dev_eui)
                seen = stored.get(device.dev_eui, UplinkFigures())
                last = seen.last
                frames = self.frames.device(device.dev_eui) if self.frames is not None else None
                if frames is not None and frames.last_received_at is not None:
                    last = max(last, frames.last_received_at) if last else frames.last_received_at
                view = broker.get(device.dev_eui) if broker is not None else None
                if view is not None and view.last_reported is not None:
                    # another agent instance may have received the device's latest uplink
                    last = max(last, view.last_reported) if last else view.last_reported
                if view is not None and view.battery is not None:
                    self._batteries[key] = view.battery
                figures = DeviceFigures(
                    dev_eui=device.dev_eui,
                    device_id=device.device_id,
                    tenant=tenant,
                    state=device.state,
                    profile=device.profile,
                    expected_interval=self._interval(device),
                    last_uplink=last,
                    installed=device.date_installed or device.date_first_used,
                    battery=self._batteries.get(key),
                    uplinks=seen.uplinks,
                    missed=seen.missed,
                    decode_errors=errors.get(device.dev_eui, 0),
                )
                health = assess(figures, settings=self.settings, now=now)
                verdicts.append(health)
                if broker is not None and health.status != "unknown":
                    wanted = (health.status, tuple(health.reasons))
                    if view is not None and (view.status, view.reasons) == wanted:
                        self._written[key] = wanted
                    else:
                        changed.append(health)
            if changed:
                self._write(registry, changed)
        with self._lock:
            self.results = {(h.tenant, h.dev_eui): h for h in verdicts}
            self.counters.checks += 1
            self.counters.last_check = now
            self.counters.last_error = None
            by_status: dict[str, int] = {}
            for health in verdicts:
                by_status[health.status] = by_status.get(health.status, 0) + 1
            self.counters.by_status = by_status
        if self.backfiller is not None:
            try:
                self.backfiller.run(since=since)
            except Exception:
                logger.exception("the backfill of fCnt gaps failed")
        if self.on_check is not None:
            try:
                self.on_check(verdicts)
            except Exception:
                logger.exception("the fleet check's follow-up failed")
        return verdicts

    def _write(self, registry: Registry, changed: list[DeviceHealth]) -> None:
        """Write the verdicts that differ from the broker's, in batch updates (a request per
        thousand devices, not one per device: a fleet's first check changes them all)."""
        client = registry.client
        assert client is not None
        entities = [
            {"id": health.device_id, "type": "Device", "health": health_attribute(health)}
            for health in changed
        ]
        try:
            result = client.batch_update(entities, context=DEVICE_CONTEXT)
        except NgsiError as exc:
            with self._lock:
                self.counters.write_failures += len(changed)
            logger.warning("cannot write the health of %d devices: %s", len(changed), exc)
            return
        failed = {failure.entity_id: failure for failure in result.failed}
        turned: list[DeviceHealth] = []
        with self._lock:
            self.counters.write_failures += len(failed)
            self.counters.writes += len(changed) - len(failed)
        for health in changed:
            failure = failed.get(health.device_id)
            if failure is not None:
                problem = failure.problem
                logger.warning(
                    "cannot write the health of %s: %s",
                    health.device_id,
                    problem.detail or problem.title or problem.type,
                )
                continue
            key = (health.tenant, health.dev_eui)
            previous = self._written.get(key)
            self._written[key] = (health.status, tuple(health.reasons))
            if previous is None or previous[0] != health.status:
                turned.append(health)
        _log_turns(turned)

    # Reading -------------------------------------------------------------------------------

    def summary(self) -> dict[HealthStatus | str, int]:
        """How many devices had each status at the last check."""
        with self._lock:
            return dict(self.counters.by_status)

    def unhealthy(self) -> list[DeviceHealth]:
        """The verdicts of the last check that are not `ok` (nor `unknown`)."""
        with self._lock:
            results = list(self.results.values())
        return [h for h in results if h.status in ("silent", "degraded")]
