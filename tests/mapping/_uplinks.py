"""Realistic uplinks for the built-in profiles: what each kind of city sensor sends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agents.codecs import encode_cayennelpp_measurements
from agents.lorawan import GatewayReception, Uplink

RECEIVED = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
GATEWAY_TIME = datetime(2024, 5, 1, 12, 0, 4, 512000, tzinfo=UTC)

LPP_READINGS: dict[str, dict[str, Any]] = {
    "air-quality-lpp": {
        "percentage_0": 87,
        "temperature_1": 21.3,
        "relative_humidity_2": 54.5,
        "concentration_3": 612,
        "barometric_pressure_4": 1013.2,
        "analog_in_5": 12.5,
        "analog_in_6": 19.75,
    },
    "temperature-humidity-lpp": {
        "percentage_0": 64,
        "temperature_1": -3.4,
        "relative_humidity_2": 81.0,
    },
    "parking-occupancy-lpp": {"percentage_0": 92, "presence_1": 1},
    "water-level-lpp": {"percentage_0": 71, "distance_1": 1.234},
    "soil-moisture-lpp": {"percentage_0": 55, "percentage_1": 34, "temperature_2": 12.5},
    "weather-station-lpp": {
        "temperature_1": 17.8,
        "relative_humidity_2": 63.5,
        "barometric_pressure_3": 1008.4,
        "analog_in_4": 4.25,
        "direction_5": 245,
        "analog_in_6": 0.6,
        "luminosity_7": 23500,
    },
}

DECODED: dict[str, dict[str, Any]] = {
    "noise-level": {"LAeq": 58.34, "LAmax": 71.2, "LAS": 55.0, "battery": 3.61},
    "traffic-counter": {"vehicleCount": 124, "averageSpeed": 42.57, "occupancy": 12},
    "people-counter": {"count": 310, "in": 170, "out": 140},
}

NORMALIZED: list[dict[str, Any]] = [
    {
        "time": "2024-05-01T11:59:30+02:00",
        "air": {"temperature": 21.5, "relativeHumidity": 43.0, "co2": 780, "pressure": 1012.5},
        "wind": {"speed": 3.2, "direction": 220},
        "soil": {"moisture": 31.5, "temperature": 14.2},
        "water": {"leak": False},
        "battery": 3.2,
    }
]


def gateway(rssi: float = -97.0, snr: float = 7.5, name: str = "gw-rathaus") -> GatewayReception:
    return GatewayReception(gateway_id=name, rssi=rssi, snr=snr, time=GATEWAY_TIME)


def uplink_for(profile: str, dev_eui: str = "70B3D57ED0000001", **changes: Any) -> Uplink:
    """A The Things Stack uplink as the built-in profile `profile` expects it."""
    fields: dict[str, Any] = {
        "source": "tts",
        "dev_eui": dev_eui,
        "device_id": "sensor-1",
        "application_id": "city-sensors",
        "f_port": 1,
        "f_cnt": 42,
        "received_at": RECEIVED,
        "gateway_time": GATEWAY_TIME,
        "gateways": (gateway(), gateway(-110.0, -4.0, "gw-schule")),
    }
    if profile in LPP_READINGS:
        fields["payload"] = encode_cayennelpp_measurements(LPP_READINGS[profile])
    elif profile in DECODED:
        fields["payload"] = b"\x01"
        fields["decoded"] = DECODED[profile]
    elif profile == "ttn-normalized":
        fields["payload"] = b"\x01"
        fields["decoded"] = {"raw": 1}
        fields["normalized_payload"] = NORMALIZED
    else:
        raise KeyError(profile)
    fields.update(changes)
    return Uplink(**fields)
