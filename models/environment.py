"""Smart Data Models subject `Environment`: air quality, noise, indoor climate, water, floods.

Default units (UN/CEFACT common codes) of plain values: temperatures `CEL`, relative humidity
`P1` (the official schemas give it as a fraction, 0.54 for 54 %), gas and particle
concentrations `GQ` (µg/m³) except `co2` `59` (ppm) and `co` `GP` (mg/m³), pressure `A97`
(hPa), sound levels `2N` (dB), lengths `MTR`, areas `MTK`, volumes `MTQ`.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from models._base import SmartDataModel
from models._types import (
    DateTime,
    DateTimeText,
    Degrees,
    EntityRef,
    Fraction,
    GeoJSON,
    Measurable,
    NonNegative,
    NonNegativeInt,
    Number,
    SignedDegrees,
)

__all__ = [
    "AirQualityObserved",
    "FloodMonitoring",
    "IndoorEnvironmentObserved",
    "NoiseLevelObserved",
    "WaterObserved",
]


class _Environment(SmartDataModel):
    subject: ClassVar[str] = "Environment"


class AirQualityObserved(_Environment):
    """An observation of air quality at a place and time (`dataModel.Environment`)."""

    schema_version: ClassVar[str] = "0.1.4"
    default_units: ClassVar[dict[str, str]] = {
        "as": "GQ",
        "c6h6": "GQ",
        "cd": "GQ",
        "co": "GP",
        "co2": "59",
        "ni": "GQ",
        "no": "GQ",
        "no2": "GQ",
        "nox": "GQ",
        "o3": "GQ",
        "pm1": "GQ",
        "pm4": "GQ",
        "pm10": "GQ",
        "pm25": "GQ",
        "pb": "GQ",
        "sh2": "GQ",
        "so2": "GQ",
        "tsp": "GQ",
        "volatileOrganicCompoundsTotal": "GQ",
        "precipitation": "MMT",
        "relativeHumidity": "C62",
        "temperature": "CEL",
        "windDirection": "DD",
        "windSpeed": "MTS",
        "pressure": "A97",
        "charge": "VLT",
    }

    type: Literal["AirQualityObserved"] = "AirQualityObserved"
    dateObserved: Measurable[DateTime]
    location: Measurable[GeoJSON]
    airQualityIndex: Measurable[NonNegativeInt] | None = None
    airQualityLevel: Measurable[Annotated[str, Field(min_length=2)]] | None = None
    reliability: Measurable[Fraction] | None = None
    as_: Measurable[NonNegative] | None = Field(default=None, alias="as")
    c6h6: Measurable[NonNegative] | None = None
    cd: Measurable[NonNegative] | None = None
    co: Measurable[NonNegative] | None = None
    coLevel: Measurable[str] | None = None
    co2: Measurable[NonNegative] | None = None
    ni: Measurable[NonNegative] | None = None
    no: Measurable[NonNegative] | None = None
    no2: Measurable[NonNegative] | None = None
    nox: Measurable[NonNegative] | None = None
    o3: Measurable[NonNegative] | None = None
    pm1: Measurable[Number] | None = None
    pm4: Measurable[NonNegative] | None = None
    pm10: Measurable[NonNegative] | None = None
    pm25: Measurable[NonNegative] | None = None
    pb: Measurable[NonNegative] | None = None
    tpc: Measurable[NonNegativeInt] | None = None
    tsp: Measurable[NonNegativeInt] | None = None
    sh2: Measurable[NonNegative] | None = None
    so2: Measurable[NonNegative] | None = None
    volatileOrganicCompoundsTotal: Measurable[NonNegative] | None = None
    precipitation: Measurable[NonNegative] | None = None
    relativeHumidity: Measurable[Fraction] | None = None
    temperature: Measurable[Number] | None = None
    windDirection: Measurable[SignedDegrees] | None = None
    windSpeed: Measurable[NonNegative] | None = None
    pressure: Measurable[NonNegative] | None = None
    charge: Measurable[NonNegative] | None = None
    typeofLocation: Measurable[Literal["indoor", "outdoor"]] | None = None
    refDevice: Measurable[EntityRef] | None = None
    refPointOfInterest: Measurable[EntityRef] | None = None
    refWeatherObserved: Measurable[EntityRef] | None = None


class NoiseLevelObserved(_Environment):
    """Sound levels observed at a place over a period (`dataModel.Environment`)."""

    schema_version: ClassVar[str] = "0.2.1"
    default_units: ClassVar[dict[str, str]] = {
        "LAS": "2N",
        "LAeq": "2N",
        "LAeq_d": "2N",
        "LAmax": "2N",
    }

    type: Literal["NoiseLevelObserved"] = "NoiseLevelObserved"
    dateObservedFrom: Measurable[DateTime]
    dateObservedTo: Measurable[DateTime]
    location: Measurable[GeoJSON]
    dateObserved: Measurable[DateTimeText] | None = None
    sonometerClass: Measurable[Literal["0", "1", "2"]] | None = None
    LAS: Measurable[Number] | None = None
    LAeq: Measurable[Number] | None = None
    LAeq_d: Measurable[Number] | None = None
    LAmax: Measurable[Number] | None = None
    obstacles: Measurable[str] | None = None
    heightAverage: Measurable[str] | None = None
    distanceAverage: Measurable[str] | None = None
    refDevice: Measurable[EntityRef] | None = None
    refPointOfInterest: Measurable[EntityRef] | None = None
    refWeatherObserved: Measurable[EntityRef] | None = None


class IndoorEnvironmentObserved(_Environment):
    """Indoor climate observed in a room or building (`dataModel.Environment`)."""

    schema_version: ClassVar[str] = "0.0.1"
    default_units: ClassVar[dict[str, str]] = {
        "sensorHeight": "MTR",
        "temperature": "CEL",
        "relativeHumidity": "P1",
        "atmosphericPressure": "A97",
        "illuminance": "LUX",
        "co2": "M1",
    }

    type: Literal["IndoorEnvironmentObserved"] = "IndoorEnvironmentObserved"
    dateObserved: Measurable[DateTimeText]
    location: Measurable[GeoJSON]
    sensorPlacement: (
        Measurable[
            Literal[
                "northWall",
                "southWall",
                "eastWall",
                "westWall",
                "center",
                "floor",
                "roof",
                "ceiling",
            ]
        ]
        | None
    ) = None
    sensorHeight: Measurable[NonNegative] | None = None
    peopleCount: Measurable[NonNegative] | None = None
    temperature: Measurable[NonNegative] | None = None
    relativeHumidity: Measurable[NonNegative] | None = None
    atmosphericPressure: Measurable[NonNegative] | None = None
    illuminance: Measurable[NonNegative] | None = None
    co2: Measurable[Number] | None = None
    refDevice: Measurable[EntityRef] | None = None
    refPointOfInterest: Measurable[EntityRef] | None = None


class WaterObserved(_Environment):
    """Water flow, level, waves and floating objects observed (`dataModel.Environment`)."""

    schema_version: ClassVar[str] = "0.0.4"
    default_units: ClassVar[dict[str, str]] = {
        "flow": "MQS",
        "height": "MTR",
        "swellHeight": "MTR",
        "swellPeriod": "SEC",
        "swellDirection": "DD",
        "waveLength": "MTR",
        "measuredArea": "MTK",
        "objectArea": "P1",
        "objectHeightAverage": "MTR",
        "objectHeightMax": "MTR",
        "objectVolume": "MTQ",
        "waterLevel": "MTR",
        "waterDischarge": "MTQ",
    }

    type: Literal["WaterObserved"] = "WaterObserved"
    dateObserved: Measurable[DateTime]
    location: Measurable[GeoJSON]
    dateObservedFrom: Measurable[DateTime] | None = None
    dateObservedTo: Measurable[DateTime] | None = None
    flow: Measurable[NonNegative] | None = None
    height: Measurable[NonNegative] | None = None
    swellHeight: Measurable[NonNegative] | None = None
    swellPeriod: Measurable[NonNegative] | None = None
    swellDirection: Measurable[Degrees] | None = None
    waveLength: Measurable[NonNegative] | None = None
    measuredArea: Measurable[NonNegative] | None = None
    objectArea: Measurable[NonNegative] | None = None
    objectHeightAverage: Measurable[NonNegative] | None = None
    objectHeightMax: Measurable[NonNegative] | None = None
    objectVolume: Measurable[NonNegative] | None = None
    waterLevel: Measurable[NonNegative] | None = None
    waterDischarge: Measurable[NonNegative] | None = None
    refDevice: Measurable[EntityRef] | None = None


class FloodMonitoring(_Environment):
    """Water level of a river or channel against its alert and danger levels
    (`dataModel.Environment`)."""

    schema_version: ClassVar[str] = "0.0.1"
    default_units: ClassVar[dict[str, str]] = {
        "alertLevel": "MTR",
        "currentLevel": "MTR",
        "dangerLevel": "MTR",
        "measuredDistance": "MTR",
        "referenceLevel": "MTR",
    }

    type: Literal["FloodMonitoring"] = "FloodMonitoring"
    alertLevel: Measurable[Number] | None = None
    currentLevel: Measurable[Number] | None = None
    dangerLevel: Measurable[Number] | None = None
    measuredDistance: Measurable[Number] | None = None
    referenceLevel: Measurable[Number] | None = None
    floodLevelStatus: Measurable[str] | None = None
    stationID: Measurable[str] | None = None
    observationDateTime: Measurable[DateTime] | None = None
