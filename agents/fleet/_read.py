"""Reading the fleet's health back from the broker: what `drehscheibe devices health` shows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.registry import DEVICE_CONTEXT
from ngsi import Client

__all__ = ["HEALTH_ATTRIBUTES", "HealthRecord", "read_health"]

HEALTH_ATTRIBUTES = (
    "devEUI",
    "name",
    "profile",
    "measuringPoint",
    "deviceState",
    "health",
    "batteryLevel",
    "dateLastValueReported",
)
"""The Device attributes `read_health` reads."""


def _value(attribute: Any) -> Any:
    if isinstance(attribute, Mapping):
        if "value" in attribute:
            value = attribute["value"]
            if isinstance(value, Mapping) and "@value" in value:
                return value["@value"]
            return value
        return None
    return attribute


def _texts(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    return (str(value),)


class HealthRecord(BaseModel):
    """One registered device as the broker has it: lifecycle, health verdict and reasons (the
    agent's last check), battery and last report. `health` is None before the first check."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    dev_eui: str = Field(alias="devEUI")
    device_id: str = Field(alias="deviceId")
    name: str | None = None
    profile: str | None = None
    measuring_point: str | None = Field(default=None, alias="measuringPoint")
    device_state: str | None = Field(default=None, alias="deviceState")
    health: str | None = None
    reasons: tuple[str, ...] = ()
    detail: tuple[str, ...] = ()
    checked_at: datetime | None = Field(default=None, alias="checkedAt")
    battery_level: float | None = Field(default=None, alias="batteryLevel")
    last_value_reported: datetime | None = Field(default=None, alias="dateLastValueReported")

    @field_validator("battery_level", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return value if isinstance(value, int | float) else None

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> HealthRecord:
        """From a normalized `Device` entity read with the Device @context."""
        health = entity.get("health")
        sub: Mapping[str, Any] = health if isinstance(health, Mapping) else {}
        return cls.model_validate(
            {
                "devEUI": _value(entity.get("devEUI")),
                "deviceId": entity.get("id"),
                "name": _value(entity.get("name")),
                "profile": _value(entity.get("profile")),
                "measuringPoint": _value(entity.get("measuringPoint")),
                "deviceState": _value(entity.get("deviceState")),
                "health": _value(health),
                "reasons": _texts(_value(sub.get("reasons"))),
                "detail": _texts(_value(sub.get("detail"))),
                "checkedAt": sub.get("observedAt"),
                "batteryLevel": _value(entity.get("batteryLevel")),
                "dateLastValueReported": _value(entity.get("dateLastValueReported")),
            }
        )


def read_health(client: Client, *, status: str | None = None) -> list[HealthRecord]:
    """Every registered device's health record (by DevEUI); `status` keeps only devices with
    that health (`ok`, `degraded`, `silent`, `unknown`; `none` for devices never checked)."""
    records: list[HealthRecord] = []
    for entity in client.iter_entities(
        type="Device", q="devEUI", attrs=list(HEALTH_ATTRIBUTES), context=DEVICE_CONTEXT
    ):
        if not isinstance(_value(entity.get("devEUI")), str):
            continue
        record = HealthRecord.from_entity(entity)
        if status is not None and (record.health or "none") != status:
            continue
        records.append(record)
    return sorted(records, key=lambda record: record.dev_eui)
