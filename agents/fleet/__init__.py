"""Fleet health: which registered devices went silent, run low on battery, lose frames or send
payloads that do not decode, marked on their Device entities.

    monitor = FleetMonitor(registries, catalog, settings=FleetSettings(silent_after=3),
                           archive=archive, dead_letters=outbox.db, frames=outbox.frames)
    monitor.start()                       # the agent does this; or monitor.check() once

* `FleetSettings`: thresholds and the check interval (`fleet` in the agent's configuration).
* `assess`: the rules, from `DeviceFigures` to a `DeviceHealth` (status and reasons), no I/O.
* `FleetMonitor`: gathers the figures from the registry, the profiles' `reporting_interval`,
  the uplink archive, the dead letters and the broker, and writes the Device's `health`.
* `Backfiller`: fCnt gaps filled from The Things Stack's Storage Integration.
* `read_health`: the Device entities' health as the broker has it (`devices health`).
* `frame_gaps`, `uplink_figures`, `decode_errors`: what the agent's stores say per device.
"""

from agents.fleet._backfill import (
    Backfiller,
    BackfillReport,
    BackfillSource,
    StorageIntegration,
    StorageIntegrationError,
)
from agents.fleet._health import (
    HEALTH_REASONS,
    DeviceFigures,
    DeviceHealth,
    FleetSettings,
    HealthReason,
    HealthStatus,
    assess,
)
from agents.fleet._monitor import FleetCounters, FleetMonitor, health_attribute
from agents.fleet._read import HEALTH_ATTRIBUTES, HealthRecord, read_health
from agents.fleet._records import UplinkFigures, decode_errors, frame_gaps, uplink_figures

__all__ = [
    "HEALTH_ATTRIBUTES",
    "HEALTH_REASONS",
    "BackfillReport",
    "BackfillSource",
    "Backfiller",
    "DeviceFigures",
    "DeviceHealth",
    "FleetCounters",
    "FleetMonitor",
    "FleetSettings",
    "HealthReason",
    "HealthRecord",
    "HealthStatus",
    "StorageIntegration",
    "StorageIntegrationError",
    "UplinkFigures",
    "assess",
    "decode_errors",
    "frame_gaps",
    "health_attribute",
    "read_health",
    "uplink_figures",
]
