"""The values of a downlink: what to send, to which device, and what became of it."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.lorawan import EUI
from agents.profiles import DownlinkPriority

__all__ = [
    "CORRELATION_PREFIX",
    "TERMINAL_STATUSES",
    "Downlink",
    "DownlinkError",
    "DownlinkPriority",
    "DownlinkRecord",
    "DownlinkStatus",
    "NetworkIdentity",
    "correlation_id",
    "new_downlink_id",
    "record_id_of",
]


DownlinkStatus = Literal["PENDING", "SENT", "ACKED", "FAILED"]
"""What became of a downlink: `PENDING` handed to the network server (queued there),
`SENT` transmitted by a gateway, `ACKED` acknowledged by the device (confirmed downlinks),
`FAILED` refused, not acknowledged, or never published."""

TERMINAL_STATUSES: frozenset[str] = frozenset({"ACKED", "FAILED"})

CORRELATION_PREFIX = "drehscheibe:downlink:"
"""Correlation ids the agent gives its downlinks start with this; the rest is the record id."""


class DownlinkError(ValueError):
    """A downlink cannot be made or sent: which device, which field, what was expected."""


def new_downlink_id() -> str:
    """A fresh record id (a UUID, which ChirpStack also takes as its queue item id)."""
    return str(uuid.uuid4())


def correlation_id(record_id: str) -> str:
    """The correlation id The Things Stack carries through every event of the downlink."""
    return CORRELATION_PREFIX + record_id


def record_id_of(correlation_ids: tuple[str, ...] | list[str]) -> str | None:
    """The record id named by one of `correlation_ids` (a network server's event), or None."""
    for item in correlation_ids:
        if item.startswith(CORRELATION_PREFIX):
            rest = item[len(CORRELATION_PREFIX) :]
            try:
                return str(uuid.UUID(rest))
            except ValueError:
                continue
    return None


class Downlink(BaseModel):
    """One downlink: `dev_eui`, `f_port` (1-223, the application ports), `payload` bytes (at
    most 242, the largest LoRaWAN application payload), `confirmed`, `priority`, and `id`, the
    record id from which the correlation id is made (`correlation_id`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dev_eui: EUI
    f_port: int = Field(ge=1, le=223)
    payload: bytes = Field(max_length=242)
    confirmed: bool = False
    priority: DownlinkPriority = "NORMAL"
    id: str = Field(default_factory=new_downlink_id)

    @field_validator("dev_eui")
    @classmethod
    def _eui(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9A-F]{16}", value):
            raise ValueError(f"{value!r} is not a DevEUI (16 hex digits)")
        return value

    @field_validator("id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError(f"downlink id {value!r} is not a UUID") from None

    @property
    def correlation_id(self) -> str:
        return correlation_id(self.id)


class NetworkIdentity(BaseModel):
    """How the network server names a device, as learned from its uplinks (or given): the
    source it came through, its kind, the application id (ChirpStack: a UUID) and device id
    (The Things Stack), and The Things Stack tenant of the topic (`app@tenant`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dev_eui: EUI
    source: str
    network_server: str
    application_id: str | None = None
    device_id: str | None = None
    ns_tenant: str | None = None
    seen_at: datetime | None = None


class DownlinkRecord(BaseModel):
    """A downlink as recorded: who asked (`actor`), when, what, through which source and topic,
    its `status` and `detail` (the last event, an error), and every network-server event seen.

    `command` names the Device attribute it was relayed from (None for a direct downlink);
    `device_entity` and `tenant` are where the command's status is written back.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    created_at: datetime
    updated_at: datetime
    actor: str
    dev_eui: str
    f_port: int
    payload: bytes
    confirmed: bool
    priority: str
    replace: bool = False
    source: str | None = None
    network_server: str | None = None
    topic: str | None = None
    command: str | None = None
    device_entity: str | None = None
    tenant: str | None = None
    status: DownlinkStatus
    detail: str | None = None
    events: tuple[dict[str, Any], ...] = ()

    @property
    def correlation_id(self) -> str:
        return correlation_id(self.id)

    def to_json(self) -> dict[str, Any]:
        """The record for `--output json`: times in ISO 8601, the payload in hex."""
        return {
            "id": self.id,
            "correlationId": self.correlation_id,
            "createdAt": self.created_at.isoformat().replace("+00:00", "Z"),
            "updatedAt": self.updated_at.isoformat().replace("+00:00", "Z"),
            "actor": self.actor,
            "devEUI": self.dev_eui,
            "fPort": self.f_port,
            "payload": self.payload.hex().upper(),
            "confirmed": self.confirmed,
            "priority": self.priority,
            "replace": self.replace,
            "source": self.source,
            "networkServer": self.network_server,
            "topic": self.topic,
            "command": self.command,
            "deviceEntity": self.device_entity,
            "tenant": self.tenant,
            "status": self.status,
            "detail": self.detail,
            "events": list(self.events),
        }
