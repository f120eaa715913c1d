"""Smart Data Models subject `Transportation`: traffic, crowd and item flows.

Default units (UN/CEFACT common codes) of plain values: speeds `KMH` (km/h), lengths and gap
distances `MTR`, headway times `SEC`. Counts (`intensity`, `peopleCount`) and the fraction
`occupancy` have no unit.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from models._base import SmartDataModel
from models._types import (
    DateTime,
    DateTimeText,
    EntityRef,
    Flag,
    Fraction,
    GeoJSON,
    Integer,
    Measurable,
    NonNegative,
    NonNegativeInt,
    PositiveInt,
    UriRef,
)

__all__ = ["CrowdFlowObserved", "ItemFlowObserved", "TrafficFlowObserved", "VehicleType"]

VehicleType = Literal[
    "agriculturalVehicle",
    "bicycle",
    "bus",
    "minibus",
    "car",
    "caravan",
    "tram",
    "tanker",
    "carWithCaravan",
    "carWithTrailer",
    "lorry",
    "moped",
    "motorcycle",
    "motorcycleWithSideCar",
    "motorscooter",
    "trailer",
    "van",
    "constructionOrMaintenanceVehicle",
    "trolley",
    "binTrolley",
    "sweepingMachine",
    "cleaningTrolley",
]


class _Transportation(SmartDataModel):
    subject: ClassVar[str] = "Transportation"


class TrafficFlowObserved(_Transportation):
    """Vehicles counted on a road or lane over a period (`dataModel.Transportation`)."""

    schema_version: ClassVar[str] = "0.0.1"
    default_units: ClassVar[dict[str, str]] = {
        "averageVehicleSpeed": "KMH",
        "averageVehicleLength": "MTR",
        "averageGapDistance": "MTR",
        "averageHeadwayTime": "SEC",
    }

    type: Literal["TrafficFlowObserved"] = "TrafficFlowObserved"
    dateObserved: Measurable[DateTimeText]
    dateObservedFrom: Measurable[DateTime] | None = None
    dateObservedTo: Measurable[DateTime] | None = None
    laneId: Measurable[PositiveInt] | None = None
    laneDirection: Measurable[Literal["forward", "backward"]] | None = None
    reversedLane: Measurable[Flag] | None = None
    intensity: Measurable[NonNegative] | None = None
    occupancy: Measurable[Fraction] | None = None
    averageVehicleSpeed: Measurable[NonNegative] | None = None
    averageVehicleLength: Measurable[NonNegative] | None = None
    averageGapDistance: Measurable[NonNegative] | None = None
    averageHeadwayTime: Measurable[NonNegative] | None = None
    congested: Measurable[Flag] | None = None
    vehicleType: Measurable[VehicleType] | None = None
    vehicleSubType: Measurable[str] | None = None
    refDevice: Measurable[EntityRef] | None = None
    refRoadSegment: Measurable[UriRef] | None = None


class CrowdFlowObserved(_Transportation):
    """People counted on a walkway over a period (`dataModel.Transportation`)."""

    schema_version: ClassVar[str] = "0.0.3"
    default_units: ClassVar[dict[str, str]] = {
        "averageCrowdSpeed": "KMH",
        "averageHeadwayTime": "SEC",
    }

    type: Literal["CrowdFlowObserved"] = "CrowdFlowObserved"
    dateObserved: Measurable[DateTimeText]
    dateObservedFrom: Measurable[DateTime] | None = None
    dateObservedTo: Measurable[DateTime] | None = None
    peopleCount: Measurable[NonNegativeInt] | None = None
    peopleCountTowards: Measurable[NonNegativeInt] | None = None
    peopleCountAway: Measurable[NonNegativeInt] | None = None
    occupancy: Measurable[Fraction] | None = None
    averageCrowdSpeed: Measurable[NonNegative] | None = None
    averageHeadwayTime: Measurable[NonNegative] | None = None
    congested: Measurable[Flag] | None = None
    direction: Measurable[Literal["inbound", "outbound"]] | None = None
    refDevice: Measurable[EntityRef] | None = None
    refRoadSegment: Measurable[EntityRef] | None = None


class ItemFlowObserved(_Transportation):
    """Items (people, vehicles, ships) counted on a lane over a period
    (`dataModel.Transportation`)."""

    schema_version: ClassVar[str] = "0.0.2"
    default_units: ClassVar[dict[str, str]] = {
        "averageSpeed": "KMH",
        "averageLength": "MTR",
        "averageHeadwayTime": "SEC",
        "averageGapDistance": "MTR",
        "minSpeed": "KMH",
        "maxSpeed": "KMH",
    }

    type: Literal["ItemFlowObserved"] = "ItemFlowObserved"
    dateObserved: Measurable[DateTime]
    location: Measurable[GeoJSON]
    laneId: Measurable[Integer]
    dateObservedFrom: Measurable[DateTime] | None = None
    dateObservedTo: Measurable[DateTime] | None = None
    itemType: Measurable[Literal["people", "ship", "vehicle", "yacht"]] | None = None
    itemSubType: Measurable[str] | None = None
    laneDirection: (
        Measurable[Literal["forward", "backward", "inbound", "outbound", "right", "left"]] | None
    ) = None
    reverseLane: Measurable[Flag] | None = None
    intensity: Measurable[NonNegative] | None = None
    occupancy: Measurable[Fraction] | None = None
    congested: Measurable[Flag] | None = None
    averageSpeed: Measurable[NonNegative] | None = None
    averageLength: Measurable[NonNegative] | None = None
    averageHeadwayTime: Measurable[NonNegative] | None = None
    averageGapDistance: Measurable[NonNegative] | None = None
    minSpeed: Measurable[NonNegative] | None = None
    maxSpeed: Measurable[NonNegative] | None = None
    refDevice: Measurable[EntityRef] | None = None
    refRoadSegment: Measurable[EntityRef] | None = None
