"""Smart Data Models subject `Device`: sensors and their models, and raw device measurements.

A registered LoRaWAN sensor is a `Device` (`urn:ngsi-ld:Device:<DevEUI>` unless the admin names
it) related to its `DeviceModel` (`refDeviceModel`); the observations it feeds point back at it
with `refDevice`. Default units (UN/CEFACT common codes): `distance` and `depth` `MTR`;
`batteryLevel` is a fraction (1 full, 0 empty, -1 unknown), `rssi` carries its unit (dBm or mW)
as the reading's own `unit_code`.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from models._base import SmartDataModel
from models._types import (
    DateTime,
    EntityRef,
    EntityRefs,
    Flag,
    Measurable,
    Number,
    StructuredValue,
    Uri,
)

__all__ = [
    "ConfigurationParameter",
    "ControlledProperty",
    "Device",
    "DeviceCategory",
    "DeviceMeasurement",
    "DeviceModel",
    "SupportedProtocol",
]

DeviceCategory = Literal[
    "actuator",
    "beacon",
    "endgun",
    "HVAC",
    "implement",
    "irrSection",
    "irrSystem",
    "meter",
    "multimedia",
    "network",
    "sensor",
]
ControlledProperty = Literal[
    "airPollution",
    "atmosphericPressure",
    "averageVelocity",
    "batteryLife",
    "batterySupply",
    "cdom",
    "conductance",
    "conductivity",
    "depth",
    "eatingActivity",
    "electricityConsumption",
    "energy",
    "fillingLevel",
    "freeChlorine",
    "gasConsumption",
    "gateOpening",
    "heading",
    "humidity",
    "light",
    "location",
    "milking",
    "motion",
    "movementActivity",
    "noiseLevel",
    "occupancy",
    "orp",
    "pH",
    "power",
    "precipitation",
    "pressure",
    "refractiveIndex",
    "salinity",
    "smoke",
    "soilMoisture",
    "solarRadiation",
    "speed",
    "tds",
    "temperature",
    "trafficFlow",
    "tss",
    "turbidity",
    "uvLampIntensity",
    "uvOrganicLoad",
    "waterConsumption",
    "waterFlow",
    "waterLevel",
    "waterPollution",
    "weatherConditions",
    "weight",
    "windDirection",
    "windSpeed",
]
SupportedProtocol = Literal[
    "3g",
    "bluetooth",
    "bluetooth LE",
    "cat-m",
    "coap",
    "ec-gsm-iot",
    "gprs",
    "http",
    "lwm2m",
    "lora",
    "lte-m",
    "mqtt",
    "nb-iot",
    "onem2m",
    "sigfox",
    "ul20",
    "websocket",
]

MacAddress = Annotated[str, Field(pattern=r"^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$")]


def _check_ip_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None
    return value


IpAddress = Annotated[
    str,
    AfterValidator(_check_ip_address),
    WithJsonSchema({"type": "string", "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
]


def _check_battery_level(value: float) -> float:
    if value == -1 or 0 <= value <= 1:
        return value
    raise ValueError(f"must be from 0 (empty) to 1 (full), or -1 (unknown), got {value}")


BatteryLevel = Annotated[
    Number,
    AfterValidator(_check_battery_level),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "number", "minimum": 0, "maximum": 1},
                {"type": "number", "minimum": -1, "maximum": -1},
            ]
        }
    ),
]


class ConfigurationParameter(StructuredValue):
    """One parameter of a device's technical configuration."""

    parameter: str | None = None
    value: str | None = None


class _Device(SmartDataModel):
    subject: ClassVar[str] = "Device"

    category: Measurable[list[DeviceCategory]] | None = None
    deviceCategory: Measurable[list[DeviceCategory]] | None = None
    controlledProperty: Measurable[list[ControlledProperty]] | None = None
    supportedProtocol: Measurable[list[SupportedProtocol]] | None = None
    macAddress: Measurable[MacAddress] | None = None


class Device(_Device):
    """A physical device: a sensor, an actuator, a gateway (`dataModel.Device`)."""

    schema_version: ClassVar[str] = "0.0.9"
    default_units: ClassVar[dict[str, str]] = {"distance": "MTR", "depth": "MTR"}

    type: Literal["Device"] = "Device"
    controlledProperty: Measurable[list[ControlledProperty]]
    controlledAsset: Measurable[EntityRefs] | None = None
    mnc: Measurable[str] | None = None
    mcc: Measurable[str] | None = None
    ipAddress: Measurable[list[IpAddress]] | None = None
    configuration: Measurable[list[ConfigurationParameter]] | None = None
    dateInstalled: Measurable[DateTime] | None = None
    dateFirstUsed: Measurable[DateTime] | None = None
    dateManufactured: Measurable[DateTime] | None = None
    hardwareVersion: Measurable[str] | None = None
    softwareVersion: Measurable[str] | None = None
    firmwareVersion: Measurable[str] | None = None
    osVersion: Measurable[str] | None = None
    distance: Measurable[Number] | None = None
    dstAware: Measurable[Flag] | None = None
    depth: Measurable[Number] | None = None
    relativePosition: Measurable[str] | None = None
    direction: Measurable[Literal["Inlet", "Outlet", "Entry", "Exit"]] | None = None
    dateLastCalibration: Measurable[DateTime] | None = None
    serialNumber: Measurable[str] | None = None
    provider: Measurable[str] | None = None
    refDeviceModel: Measurable[EntityRef] | None = None
    batteryLevel: Measurable[BatteryLevel] | None = None
    rssi: Measurable[Number] | None = None
    deviceState: Measurable[str] | None = None
    dateLastValueReported: Measurable[DateTime] | None = None
    value: Measurable[str] | None = None
    dateObserved: Measurable[DateTime] | None = None


class DeviceModel(_Device):
    """What devices of one make and model have in common (`dataModel.Device`)."""

    schema_version: ClassVar[str] = "0.0.3"

    type: Literal["DeviceModel"] = "DeviceModel"
    category: Measurable[list[DeviceCategory]]
    controlledProperty: Measurable[list[ControlledProperty]]
    manufacturerName: Measurable[str]
    brandName: Measurable[str]
    modelName: Measurable[str]
    deviceClass: Measurable[Literal["C0", "C1", "C2"]] | None = None
    function: (
        Measurable[
            list[
                Literal[
                    "levelControl",
                    "sensing",
                    "onOff",
                    "openClose",
                    "metering",
                    "eventNotification",
                ]
            ]
        ]
        | None
    ) = None
    supportedUnits: Measurable[list[str]] | None = None
    energyLimitationClass: Measurable[Literal["E0", "E1", "E2", "E9"]] | None = None
    documentation: Measurable[Uri] | None = None
    color: Measurable[str] | None = None
    image: Measurable[Uri] | None = None
    annotations: Measurable[list[str]] | None = None


class DeviceMeasurement(SmartDataModel):
    """One raw measurement of a device, numeric or textual (`dataModel.Device`)."""

    subject: ClassVar[str] = "Device"
    schema_version: ClassVar[str] = "0.1.0"

    type: Literal["DeviceMeasurement"] = "DeviceMeasurement"
    numValue: Measurable[Number] | None = None
    textValue: Measurable[str] | None = None
    controlledProperty: Measurable[str] | None = None
    refDevice: Measurable[EntityRef] | None = None
    deviceType: Measurable[str] | None = None
    measurementType: Measurable[str] | None = None
    dateObserved: Measurable[DateTime] | None = None
    outlier: Measurable[Flag] | None = None
    unit: Measurable[str] | None = None
