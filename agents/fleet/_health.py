"""The health of one device, judged from plain figures: the rules, without any I/O.

    health = assess(figures, settings=FleetSettings(), now=datetime.now(UTC))
    health.status      # "ok", "degraded", "silent" or "unknown"
    health.reasons     # ("silent", "battery-low", ...)

Rules, each with a reason code (a device may have several):

- `silent`: no uplink for longer than `silent_after` times the expected reporting interval
  (the profile's `reporting_interval`, else `default_interval`); a device that never sent
  counts from `dateInstalled` (or `dateFirstUsed`);
- `battery-low`: the Device's `batteryLevel` (0-1) is below `battery_low`;
- `frame-gaps`: of the frames the device sent in the `window` (by fCnt), more than `gap_rate`
  never arrived;
- `decode-errors`: of its uplinks in the `window`, more than `decode_error_rate` did not
  decode.

Rates are judged only once the window holds `min_uplinks` uplinks, so that one lost frame of a
device that just started is not an alarm. The status is `silent` when the device is silent,
`degraded` for any other reason, `ok` without reasons, and `unknown` when nothing can be judged
(no expected interval, no uplink and no installation date).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.fleet._backfill import BackfillSource

__all__ = [
    "HEALTH_REASONS",
    "DeviceFigures",
    "DeviceHealth",
    "FleetSettings",
    "HealthReason",
    "HealthStatus",
    "assess",
]

HealthStatus = Literal["ok", "degraded", "silent", "unknown"]
"""The value of a Device's `health` attribute."""

HealthReason = Literal["silent", "battery-low", "frame-gaps", "decode-errors"]
"""Why a device is not `ok` (the `reasons` sub-property of `health`)."""

HEALTH_REASONS: tuple[HealthReason, ...] = ("silent", "battery-low", "frame-gaps", "decode-errors")


class FleetSettings(BaseModel):
    """`fleet` in the agent's configuration: when the health check runs and what it flags.

    `interval` is the seconds between two checks; `silent_after` the multiple of a device's
    expected reporting interval after which it is silent; `default_interval` the expected
    interval (seconds) of devices whose profile states none (None: their silence is not
    judged); `battery_low` a battery level (0–1); `gap_rate` and `decode_error_rate` fractions
    of the uplinks in the last `window` seconds, judged from `min_uplinks` uplinks on.
    `backfill` names the The Things Stack sources whose Storage Integration fills fCnt gaps.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    interval: float = Field(default=60.0, gt=0)
    silent_after: float = Field(default=3.0, ge=1)
    default_interval: float | None = Field(default=None, gt=0)
    battery_low: float = Field(default=0.2, ge=0, le=1)
    gap_rate: float = Field(default=0.25, gt=0, le=1)
    decode_error_rate: float = Field(default=0.25, gt=0, le=1)
    window: float = Field(default=86400.0, gt=0)
    min_uplinks: int = Field(default=4, ge=1)
    backfill: tuple[BackfillSource, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceFigures:
    """What is known of one device at the time of a check.

    `expected_interval` in seconds (None: unknown); `last_uplink` the receive time of its
    latest uplink; `installed` when it was installed (or first used); `battery` its
    `batteryLevel`; `uplinks` how many uplinks arrived in the window, `missed` how many fCnts
    in between never arrived, `decode_errors` how many of them failed to decode.
    """

    dev_eui: str
    device_id: str
    tenant: str | None = None
    state: str = "active"
    profile: str | None = None
    expected_interval: float | None = None
    last_uplink: datetime | None = None
    installed: datetime | None = None
    battery: float | None = None
    uplinks: int = 0
    missed: int = 0
    decode_errors: int = 0


class DeviceHealth(BaseModel):
    """The verdict on one device (see the module docstring), with the figures behind it."""

    model_config = ConfigDict(frozen=True)

    dev_eui: str
    device_id: str
    tenant: str | None = None
    state: str
    profile: str | None = None
    status: HealthStatus
    reasons: tuple[HealthReason, ...] = ()
    detail: tuple[str, ...] = ()
    checked_at: datetime
    last_uplink: datetime | None = None
    silent_seconds: float | None = None
    expected_interval: float | None = None
    battery: float | None = None
    uplinks: int = 0
    missed: int = 0
    gap_rate: float | None = None
    decode_errors: int = 0
    decode_error_rate: float | None = None


def _span(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def assess(figures: DeviceFigures, *, settings: FleetSettings, now: datetime) -> DeviceHealth:
    """Judge one device by the rules of the module docstring at time `now` (aware)."""
    reasons: list[HealthReason] = []
    detail: list[str] = []
    judged = False
    interval = figures.expected_interval
    since = figures.last_uplink or figures.installed
    silent_seconds = (now - since).total_seconds() if since is not None else None
    if interval is not None and silent_seconds is not None:
        judged = True
        limit = settings.silent_after * interval
        if silent_seconds > limit:
            reasons.append("silent")
            what = "no uplink" if figures.last_uplink is not None else "never sent an uplink"
            detail.append(
                f"{what} for {_span(silent_seconds)}; expected every {_span(interval)} "
                f"(silent after {settings.silent_after:g}x)"
            )
    if figures.battery is not None and figures.battery >= 0:
        judged = True
        if figures.battery < settings.battery_low:
            reasons.append("battery-low")
            detail.append(f"battery at {figures.battery:.0%}, below {settings.battery_low:.0%}")
    gap_rate: float | None = None
    sent = figures.uplinks + figures.missed
    if figures.uplinks >= settings.min_uplinks and sent:
        judged = True
        gap_rate = figures.missed / sent
        if gap_rate > settings.gap_rate:
            reasons.append("frame-gaps")
            detail.append(
                f"{figures.missed} of {sent} frames lost ({gap_rate:.0%}, more than "
                f"{settings.gap_rate:.0%})"
            )
    error_rate: float | None = None
    if figures.uplinks >= settings.min_uplinks:
        judged = True
        error_rate = figures.decode_errors / figures.uplinks
        if error_rate > settings.decode_error_rate:
            reasons.append("decode-errors")
            detail.append(
                f"{figures.decode_errors} of {figures.uplinks} uplinks did not decode "
                f"({error_rate:.0%}, more than {settings.decode_error_rate:.0%})"
            )
    status: HealthStatus
    if "silent" in reasons:
        status = "silent"
    elif reasons:
        status = "degraded"
    else:
        status = "ok" if judged or figures.last_uplink is not None else "unknown"
    return DeviceHealth(
        dev_eui=figures.dev_eui,
        device_id=figures.device_id,
        tenant=figures.tenant,
        state=figures.state,
        profile=figures.profile,
        status=status,
        reasons=tuple(reasons),
        detail=tuple(detail),
        checked_at=now,
        last_uplink=figures.last_uplink,
        silent_seconds=silent_seconds if figures.last_uplink is not None else None,
        expected_interval=interval,
        battery=figures.battery,
        uplinks=figures.uplinks,
        missed=figures.missed,
        gap_rate=gap_rate,
        decode_errors=figures.decode_errors,
        decode_error_rate=error_rate,
    )
