"""Network-server downlink events, read as what they mean for a recorded downlink.

The events themselves are parsed by `agents.lorawan` (`DownlinkEvent`); this module adds what
the downlink records need: which record an event belongs to and the status it gives.

| network server | event | status |
|---|---|---|
| The Things Stack | `down/queued` | `PENDING` |
| The Things Stack | `down/sent` | `SENT` |
| The Things Stack | `down/ack` | `ACKED` |
| The Things Stack | `down/nack` | `FAILED` (the device did not acknowledge) |
| The Things Stack | `down/failed` | `FAILED` (with the network server's error) |
| ChirpStack v4 | `event/txack` | `SENT` |
| ChirpStack v4 | `event/ack` | `ACKED` when `acknowledged`, else `FAILED` |

The record comes from the correlation ids (The Things Stack; those of the event and of the
downlink inside it are both read) or the `queueItemId` (ChirpStack). Events that name neither
at all match by device in the store (see `DownlinkStore.match`); an event that names only
others' downlinks (another application's) matches none.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from agents.downlink._model import DownlinkStatus, record_id_of
from agents.lorawan import DownlinkEvent, UplinkError, parse_message

__all__ = ["DownlinkOutcome", "parse_downlink_event", "status_of"]


@dataclass(frozen=True, slots=True)
class DownlinkOutcome:
    """One downlink event: the record it names (`record_id`, None when it names none), the
    device, the event `kind` (`queued`, `sent`, `ack`, `nack`, `failed`, `txack`), the `status`
    it gives and a `detail` for people."""

    kind: str
    status: DownlinkStatus
    record_id: str | None
    dev_eui: str | None
    device_id: str | None
    application_id: str | None
    f_port: int | None
    confirmed: bool | None
    detail: str
    received_at: datetime | None
    anonymous: bool = False
    """The event names no downlink at all (no correlation id, no queue item id); only such an
    event may be matched to a record by its device."""

    def to_json(self) -> dict[str, Any]:
        event: dict[str, Any] = {"event": self.kind, "status": self.status, "detail": self.detail}
        if self.received_at is not None:
            event["at"] = self.received_at.isoformat().replace("+00:00", "Z")
        return event


def status_of(event: DownlinkEvent) -> tuple[DownlinkStatus, str]:
    """The status a downlink event gives, and a detail for people."""
    kind = event.kind
    if kind == "queued":
        return "PENDING", "queued by the network server"
    if kind in ("sent", "txack"):
        return "SENT", "sent by a gateway" + (f" (fCnt {event.f_cnt})" if event.f_cnt else "")
    if kind == "ack":
        if event.acknowledged is False:
            return "FAILED", "the device did not acknowledge it"
        return "ACKED", "acknowledged by the device"
    if kind == "nack":
        return "FAILED", "the device did not acknowledge it (nack)"
    return "FAILED", event.error or "the network server reports a failure"


def _correlation_ids(body: Any) -> list[str]:
    found: list[str] = []

    def take(value: Any) -> None:
        if isinstance(value, list):
            found.extend(item for item in value if isinstance(item, str))

    if not isinstance(body, dict):
        return found
    take(body.get("correlation_ids"))
    for key, value in body.items():
        if key.startswith("downlink_") and isinstance(value, dict):
            take(value.get("correlation_ids"))
            inner = value.get("downlink")
            if isinstance(inner, dict):
                take(inner.get("correlation_ids"))
    return found


def parse_downlink_event(
    network_server: str, topic: str | None, payload: bytes
) -> DownlinkOutcome | None:
    """The outcome of one message on a downlink-event topic, or None for anything that is not a
    downlink event (raises nothing: a bad message is not an outcome). An event that names
    downlinks, none of them the agent's, has `record_id` None and is not `anonymous`: it is
    another application's downlink."""
    try:
        event = parse_message(network_server, topic, payload)
    except UplinkError:
        return None
    if not isinstance(event, DownlinkEvent):
        return None
    record_id: str | None = None
    ids: list[str] = []
    if event.queue_item_id:
        try:
            record_id = str(uuid.UUID(event.queue_item_id))
        except ValueError:
            record_id = None
    if record_id is None:
        ids = list(event.correlation_ids)
        if network_server == "tts":
            with contextlib.suppress(orjson.JSONDecodeError):
                ids += _correlation_ids(orjson.loads(payload))
        record_id = record_id_of(ids)
    status, detail = status_of(event)
    return DownlinkOutcome(
        kind=event.kind,
        status=status,
        record_id=record_id,
        dev_eui=event.dev_eui,
        device_id=event.device_id,
        application_id=event.application_id,
        f_port=event.f_port,
        confirmed=event.confirmed,
        detail=detail,
        received_at=event.received_at,
        anonymous=not event.queue_item_id and not ids,
    )
