"""Smart Data Models subject `Weather`: observed weather and forecasts.

Default units (UN/CEFACT common codes) of plain values: temperatures `CEL`, relative humidity
`P1` (a fraction, 0.85 for 85 %), atmospheric pressure `A97` (hPa), wind speed `MTS` (m/s), wind
direction `DD` (degrees), precipitation `MMT` (mm, that is l/m²), irradiance `D54` (W/m²),
illuminance `LUX`, stream gauge and snow height `CMT` (cm).
"""

from __future__ import annotations

from typing import ClassVar, Literal

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
    Number,
    StructuredValue,
    TextRef,
)

__all__ = ["AirConditions", "TimeSeriesAggregation", "WeatherForecast", "WeatherObserved"]

Visibility = Literal["veryPoor", "poor", "moderate", "good", "veryGood", "excellent"]

_WEATHER_UNITS = {
    "temperature": "CEL",
    "feelsLikeTemperature": "CEL",
    "relativeHumidity": "C62",
    "atmosphericPressure": "A97",
    "illuminance": "LUX",
    "windSpeed": "MTS",
    "gustSpeed": "MTS",
    "windDirection": "DD",
}


class AirConditions(StructuredValue):
    """Temperatures and humidity of a forecast's day maximum or minimum."""

    temperature: Number | None = None
    feelLikesTemperature: Number | None = None
    relativeHumidity: Fraction | None = None


class TimeSeriesAggregation(StructuredValue):
    """Instant, minimum, maximum and average of a value over a period."""

    instValue: Number | None = None
    minOverTime: Number | None = None
    maxOverTime: Number | None = None
    averageValue: Number | None = None


class _Weather(SmartDataModel):
    """The attributes observations and forecasts share (`Weather-Commons`)."""

    subject: ClassVar[str] = "Weather"

    weatherType: Measurable[str] | None = None
    visibility: Measurable[Visibility | NonNegative] | None = None
    windDirection: Measurable[Degrees] | None = None
    windSpeed: Measurable[NonNegative] | None = None
    gustSpeed: Measurable[Number] | None = None
    atmosphericPressure: Measurable[NonNegative] | None = None
    illuminance: Measurable[NonNegative] | None = None
    temperature: Measurable[Number] | None = None
    feelsLikeTemperature: Measurable[Number] | None = None
    relativeHumidity: Measurable[Fraction] | None = None
    refPointOfInterest: Measurable[TextRef] | None = None


class WeatherObserved(_Weather):
    """Weather conditions observed at a place and time (`dataModel.Weather`)."""

    schema_version: ClassVar[str] = "0.3.4"
    default_units: ClassVar[dict[str, str]] = {
        **_WEATHER_UNITS,
        "precipitation": "MMT",
        "solarRadiation": "D54",
        "directIrradiation": "D54",
        "diffuseIrradiation": "D54",
        "dewPoint": "CEL",
        "streamGauge": "CMT",
        "snowHeight": "CMT",
        "airTemperatureForecast": "CEL",
        "precipitationForecast": "MMT",
        "relativeHumidityForecast": "C62",
    }

    type: Literal["WeatherObserved"] = "WeatherObserved"
    dateObserved: Measurable[DateTime]
    location: Measurable[GeoJSON]
    precipitation: Measurable[NonNegative] | None = None
    solarRadiation: Measurable[NonNegative] | None = None
    directIrradiation: Measurable[NonNegative] | None = None
    diffuseIrradiation: Measurable[NonNegative] | None = None
    pressureTendency: Measurable[Literal["falling", "raising", "steady"] | Number] | None = None
    dewPoint: Measurable[Number] | None = None
    streamGauge: Measurable[NonNegative] | None = None
    snowHeight: Measurable[NonNegative] | None = None
    uVIndexMax: Measurable[NonNegative] | None = None
    aqiMajorPollutant: Measurable[str] | None = None
    aqiMajorPollutantForecast: Measurable[str] | None = None
    airTemperatureForecast: Measurable[Number] | None = None
    precipitationForecast: Measurable[Number] | None = None
    airQualityIndex: Measurable[Number] | None = None
    relativeHumidityForecast: Measurable[Number] | None = None
    airQualityIndexForecast: Measurable[Number] | None = None
    airTemperatureTSA: Measurable[TimeSeriesAggregation] | None = None
    refDevice: Measurable[EntityRef] | None = None


class WeatherForecast(_Weather):
    """A weather forecast for a place and period (`dataModel.Weather`)."""

    schema_version: ClassVar[str] = "0.0.3"
    default_units: ClassVar[dict[str, str]] = {**_WEATHER_UNITS, "precipitation": "MMT"}

    type: Literal["WeatherForecast"] = "WeatherForecast"
    dateIssued: Measurable[DateTime]
    dateRetrieved: Measurable[DateTime] | None = None
    validity: Measurable[DateTimeText] | None = None
    validFrom: Measurable[DateTime] | None = None
    validTo: Measurable[DateTime] | None = None
    dayMaximum: Measurable[AirConditions] | None = None
    dayMinimum: Measurable[AirConditions] | None = None
    uVIndexMax: Measurable[NonNegative] | None = None
    precipitation: Measurable[NonNegative] | None = None
    precipitationProbability: Measurable[NonNegative] | None = None
