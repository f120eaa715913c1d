"""Commands: Device attributes that become downlinks, and the status written back.

A profile declares the commands its devices understand (`downlink.commands`, see
`agents.profiles.CommandSpec`). Anyone who may write the Device entity sends one by writing an
attribute of that name:

    POST /ngsi-ld/v1/entities/urn:ngsi-ld:Device:0004A30B001C0530/attrs
    {"setReportingInterval": {"type": "Property", "value": 600}}

The agent is notified (one subscription per command name, watching only that attribute),
encodes the value with the command's encoder and sends the downlink. It writes the outcome on
the same entity, as FIWARE IoT agents do, in two attributes of its own:

* `<command>_status`: `PENDING` (handed to the network server), `SENT` (transmitted by a
  gateway), `ACKED` (acknowledged by the device), `FAILED`; `observedAt` is when it changed;
* `<command>_info`: the downlink's record id and correlation id, fPort, payload (hex), and the
  detail (the network server's event or the error).

The value given to the encoder is the attribute's value; JavaScript encoders get a value that is
not an object as `{"<command>": value}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from agents.downlink._encoders import DownlinkEncoder, JavaScriptEncoder, encoder_for
from agents.downlink._model import Downlink, DownlinkError, DownlinkRecord, DownlinkStatus
from agents.profiles import CommandSpec, DeviceProfile

__all__ = [
    "INFO_SUFFIX",
    "STATUS_SUFFIX",
    "EncoderCache",
    "command_downlink",
    "command_names",
    "command_spec",
    "command_status_attributes",
    "profile_downlink",
]

EncoderCache = dict[tuple[str, str | None], tuple[DeviceProfile, DownlinkEncoder]]
"""Encoders built per (profile, command), kept while the profile object is the same."""

STATUS_SUFFIX = "_status"
INFO_SUFFIX = "_info"


def command_names(profiles: Iterable[DeviceProfile]) -> list[str]:
    """Every command name the profiles declare, sorted."""
    names: set[str] = set()
    for profile in profiles:
        if profile.downlink is not None:
            names.update(profile.downlink.commands)
    return sorted(names)


def command_spec(profile: DeviceProfile, command: str) -> CommandSpec:
    """The profile's declaration of `command`; `DownlinkError` when it declares none."""
    commands = profile.downlink.commands if profile.downlink is not None else {}
    spec = commands.get(command)
    if spec is None:
        listed = ", ".join(sorted(commands)) or "none"
        raise DownlinkError(
            f"profile {profile.name} declares no command {command!r} (it declares: {listed})"
        )
    return spec


def _encoder(
    profile: DeviceProfile,
    spec: CommandSpec | None,
    cache: EncoderCache | None,
    command: str | None,
) -> DownlinkEncoder:
    key = (profile.name, command)
    cached = cache.get(key) if cache is not None else None
    if cached is not None and cached[0] is profile:
        return cached[1]
    choice = spec.encoder if spec is not None and spec.encoder is not None else None
    if choice is None and profile.downlink is not None:
        choice = profile.downlink.encoder
    if choice is None:
        raise DownlinkError(
            f"profile {profile.name} names no downlink encoder"
            + (f" for command {command}" if command else "")
            + " (downlink.encoder)"
        )
    encoder = encoder_for(choice, profile)
    if cache is not None:
        cache[key] = (profile, encoder)  # a reloaded profile is a new object: a new encoder
    return encoder


def profile_downlink(
    profile: DeviceProfile,
    data: Any,
    *,
    dev_eui: str,
    f_port: int | None = None,
    confirmed: bool = False,
    encoders: EncoderCache | None = None,
) -> Downlink:
    """A downlink of `data` encoded with the profile's downlink encoder; the fPort is
    `f_port`, else the encoder's, else the profile's `downlink.f_port`."""
    encoded = _encoder(profile, None, encoders, None).encode(data, f_port=f_port)
    port = f_port or encoded.f_port or (profile.downlink.f_port if profile.downlink else None)
    if port is None:
        raise DownlinkError(f"device {dev_eui}: give --port (profile {profile.name} names none)")
    return _downlink(dev_eui, port, encoded.payload, confirmed=confirmed, priority="NORMAL")


def command_downlink(
    profile: DeviceProfile,
    command: str,
    value: Any,
    *,
    dev_eui: str,
    encoders: EncoderCache | None = None,
) -> Downlink:
    """The downlink that carries `command` with `value` to a device of `profile`; raises
    `DownlinkError` naming the command and what was wrong."""
    spec = command_spec(profile, command)
    encoder = _encoder(profile, spec, encoders, command)
    data = value
    if not isinstance(value, Mapping) and isinstance(encoder, JavaScriptEncoder):
        data = {command: value}
    try:
        encoded = encoder.encode(data, f_port=spec.f_port)
    except DownlinkError as error:
        raise DownlinkError(f"command {command} of device {dev_eui}: {error}") from None
    port = (
        spec.f_port
        or encoded.f_port
        or (profile.downlink.f_port if profile.downlink is not None else None)
    )
    if port is None:
        raise DownlinkError(
            f"command {command} of device {dev_eui}: no fPort (give f_port in the profile)"
        )
    return _downlink(
        dev_eui, port, encoded.payload, confirmed=spec.confirmed, priority=spec.priority
    )


def _downlink(
    dev_eui: str, f_port: int, payload: bytes, *, confirmed: bool, priority: str
) -> Downlink:
    try:
        return Downlink.model_validate(
            {
                "dev_eui": dev_eui,
                "f_port": f_port,
                "payload": payload,
                "confirmed": confirmed,
                "priority": priority,
            }
        )
    except ValueError as error:
        raise DownlinkError(f"device {dev_eui}: {error}") from None


def _time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def command_status_attributes(
    command: str,
    status: DownlinkStatus,
    *,
    record: DownlinkRecord | None = None,
    detail: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The `<command>_status` and `<command>_info` attributes (normalized) for a status."""
    when = _time(at or datetime.now(UTC))
    info: dict[str, Any] = {}
    if record is not None:
        info.update(
            {
                "downlinkId": record.id,
                "correlationId": record.correlation_id,
                "fPort": record.f_port,
                "payload": record.payload.hex().upper(),
                "confirmed": record.confirmed,
            }
        )
        detail = detail or record.detail
    if detail:
        info["detail"] = detail
    return {
        command + STATUS_SUFFIX: {"type": "Property", "value": status, "observedAt": when},
        command + INFO_SUFFIX: {"type": "Property", "value": info, "observedAt": when},
    }
