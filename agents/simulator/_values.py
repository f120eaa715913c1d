"""What the simulated sensors measure, and the bytes they send.

Values follow the city's day in its own time zone, with per-device character and per-uplink
noise, all reproducible from the fleet's seed:

- traffic (counters, and the road-side air quality that follows it): morning and evening rush
  hours on weekdays, a broad midday hump on Saturdays, quiet Sundays and nights;
- noise in the Altstadt: loudest late in the evening and after midnight, most on Friday and
  Saturday nights;
- parking spots: occupied by shopping hours (Monday to Saturday, 10 to 20 h), spot by spot in
  15-minute slots;
- pedestrians: shopping hours, and evenings on the promenade;
- temperature, humidity, pressure, light, wind and rain: a seasonal mean, a daily cycle and
  weather fronts passing every few days, shared by all stations (plus each site's heat island);
- water levels: the Rhine drifting slowly over weeks, creeks rising after rain;
- batteries: draining slowly with every uplink.

Payloads are what each profile's codec reads: CayenneLPP on the channels the built-in profiles
name (fPort 1), or, for the profiles whose payload the network server decodes, the device's own
bytes (fPort 2) together with the object the network server's payload formatter makes of them.
Those formats are (big-endian; the JavaScript decoders are in `agents/simulator/codecs/`):

- `noise-level`: LAeq, LAmax, LAS as unsigned 16-bit dB(A) × 10 (6 bytes);
- `traffic-counter`: vehicle count (u16), average speed km/h × 10 (u16), occupancy % (u8);
- `people-counter`: people in (u16), people out (u16); the decoder adds `peopleCount`.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents.codecs import encode_cayennelpp_measurements
from agents.simulator._fleet import FleetDevice

__all__ = [
    "CODECS_DIR",
    "LPP_PORT",
    "NS_DECODED_PROFILES",
    "SPECIFIC_PORT",
    "SUPPORTED_PROFILES",
    "Reading",
    "decode_device_payload",
    "local_zone",
    "nightlife_index",
    "reading_for",
    "shopping_index",
    "traffic_index",
]

LPP_PORT = 1
"""fPort of the CayenneLPP devices."""
SPECIFIC_PORT = 2
"""fPort of the devices with their own payload format."""

CODECS_DIR = Path(__file__).with_name("codecs")
"""JavaScript decoders (`decodeUplink`) of the device-specific payloads, by profile name."""

_TAU = 2 * math.pi


@dataclass(frozen=True, slots=True)
class Reading:
    """One uplink's worth of a device: the FRMPayload on `f_port`, the network server's decoded
    object when its payload formatter decodes this device (None otherwise), and `values`, the
    physical quantities before encoding (for people and debugging)."""

    f_port: int
    payload: bytes
    decoded: dict[str, Any] | None
    values: dict[str, float | int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Moment:
    """The time of a reading as the value model needs it."""

    at: datetime
    hour: float
    weekday: int
    day_of_year: int
    days: float


def local_zone(name: str) -> tzinfo:
    """The time zone `name`, or UTC when the system has no zone data for it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _moment(at: datetime, zone: tzinfo) -> _Moment:
    local = at.astimezone(zone)
    return _Moment(
        at=at,
        hour=local.hour + local.minute / 60 + local.second / 3600,
        weekday=local.weekday(),
        day_of_year=local.timetuple().tm_yday,
        days=at.timestamp() / 86400.0,
    )


def _bump(x: float, mu: float, sigma: float) -> float:
    return math.exp(-0.5 * ((x - mu) / sigma) ** 2)


def _circular(hour: float, mu: float, sigma: float) -> float:
    distance = (hour - mu + 12.0) % 24.0 - 12.0
    return math.exp(-0.5 * (distance / sigma) ** 2)


def _clamp(value: float, lo: float, hi: float) -> float:
    return lo if value < lo else hi if value > hi else value


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# City-wide curves ----------------------------------------------------------------------------


def traffic_index(hour: float, weekday: int) -> float:
    """Traffic relative to a weekday's morning peak (0..1)."""
    if weekday < 5:
        value = (
            0.07
            + 0.93 * _bump(hour, 7.9, 1.0)
            + 0.80 * _bump(hour, 17.2, 1.6)
            + 0.45 * _bump(hour, 12.5, 2.6)
        )
    elif weekday == 5:
        value = 0.07 + 0.62 * _bump(hour, 13.5, 3.4)
    else:
        value = 0.05 + 0.40 * _bump(hour, 15.0, 3.4)
    if hour < 4.5:
        value *= 0.6
    return _clamp(value, 0.0, 1.0)


def shopping_index(hour: float, weekday: int) -> float:
    """How busy the shops are (0..1): Monday to Saturday 10 to 20 h, Saturdays most."""
    if weekday == 6:
        return 0.12 * _bump(hour, 15.0, 3.0)
    open_hours = _sigmoid((hour - 9.6) * 3.0) * _sigmoid((20.3 - hour) * 3.0)
    value = open_hours * (0.6 + 0.4 * _bump(hour, 15.0, 2.6))
    return _clamp(value * (1.12 if weekday == 5 else 1.0), 0.0, 1.0)


def nightlife_index(hour: float, weekday: int) -> float:
    """Night-life activity (0..1): late evening to the small hours, Friday and Saturday most."""
    night_of = weekday if hour >= 12 else (weekday - 1) % 7
    strength = {4: 1.0, 5: 1.0, 3: 0.65, 6: 0.4}.get(night_of, 0.35)
    return strength * _circular(hour, 23.6, 2.4)


def _air_temperature(moment: _Moment) -> float:
    season = math.cos(_TAU * (moment.day_of_year - 20) / 365.25)
    mean = 11.0 - 8.0 * season
    amplitude = 3.5 + 2.0 * (1 - season) / 2
    front = 2.5 * math.sin(_TAU * moment.days / 6.3 + 1.0)
    return mean + amplitude * math.sin(_TAU * (moment.hour - 9.0) / 24.0) + front


def _temperature_mean(moment: _Moment) -> float:
    return 11.0 - 8.0 * math.cos(_TAU * (moment.day_of_year - 20) / 365.25)


def _humidity(moment: _Moment, temperature: float) -> float:
    return _clamp(76.0 - 2.4 * (temperature - _temperature_mean(moment)), 28.0, 98.0)


def _pressure(moment: _Moment) -> float:
    return (
        1014.0
        + 7.0 * math.sin(_TAU * moment.days / 5.1)
        + 3.0 * math.sin(_TAU * moment.days / 1.7 + 0.5)
    )


def _rain(moment: _Moment, seed: int) -> float:
    """Millimetres in the last 10 minutes, city-wide: showers in about one 3-hour block of 8."""
    block = int(moment.days * 8)
    rng = random.Random(f"{seed}:rain:{block}")
    if rng.random() > 0.13:
        return 0.0
    return round(rng.uniform(0.1, 2.4), 2)


def _daylight(moment: _Moment) -> float:
    """Illuminance in lux under a clear-ish sky."""
    day_length = 12.2 + 4.3 * math.sin(_TAU * (moment.day_of_year - 80) / 365.25)
    noon = 13.5 if 87 <= moment.day_of_year <= 300 else 12.5
    sunrise = noon - day_length / 2
    if not sunrise < moment.hour < sunrise + day_length:
        return 0.0
    height = math.sin(math.pi * (moment.hour - sunrise) / day_length)
    summer = 0.55 + 0.45 * math.sin(_TAU * (moment.day_of_year - 80) / 365.25)
    return 90000.0 * height * summer


def _rhine_level(moment: _Moment, base: float) -> float:
    return (
        base
        + 1.4 * math.sin(_TAU * moment.days / 47.0)
        + 0.6 * math.sin(_TAU * moment.days / 11.3 + 1.3)
        + 0.04 * math.sin(_TAU * moment.hour / 24.0)
    )


# Per-device character ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Character:
    battery: float
    bias: float
    scale: float
    delay: int
    """Seconds between measuring and sending (the payload timestamp is this much older)."""


def _character(device: FleetDevice, seed: int) -> _Character:
    digest = hashlib.blake2b(f"{seed}|{device.dev_eui}|character".encode(), digest_size=16).digest()
    a, b, c, d = (int.from_bytes(digest[i : i + 4]) / 2**32 for i in (0, 4, 8, 12))
    return _Character(
        battery=72.0 + 28.0 * a, bias=b - 0.5, scale=0.85 + 0.3 * c, delay=2 + int(18 * d)
    )


def _battery(character: _Character, f_cnt: int) -> int:
    return int(_clamp(character.battery - f_cnt / 2500.0, 3.0, 100.0))


# Profiles ------------------------------------------------------------------------------------

_Generator = Callable[[FleetDevice, _Moment, random.Random, _Character, int, int], Reading]


def _lpp(values: dict[str, float | int]) -> Reading:
    return Reading(LPP_PORT, encode_cayennelpp_measurements(values), None, values)


def _air_quality(
    device: FleetDevice, moment: _Moment, rng: random.Random, ch: _Character, f_cnt: int, seed: int
) -> Reading:
    level = device.params.get("level", 1.0) * ch.scale
    traffic = traffic_index(moment.hour, moment.weekday)
    # Inversions in the small hours keep some of the evening's particles near the ground.
    stagnant = 0.3 * _circular(moment.hour, 5.0, 2.5)
    pm10 = 11.0 + level * (24.0 * traffic + 9.0 * stagnant) + rng.gauss(0.0, 2.0)
    pm25 = 0.58 * pm10 + rng.gauss(0.0, 1.0)
    co2 = 415.0 + level * 70.0 * traffic + rng.gauss(0.0, 6.0)
    temperature = _air_temperature(moment) + 0.6 * level + rng.gauss(0.0, 0.2)
    # Measured a little before sending; never later than the device's previous reading.
    unix = int(moment.at.timestamp()) - ch.delay
    return _lpp(
        {
            "percentage_0": _battery(ch, f_cnt),
            "temperature_1": round(temperature, 1),
            "relative_humidity_2": round(_humidity(moment, temperature) * 2) / 2,
            "concentration_3": round(_clamp(co2, 380.0, 2000.0)),
            "barometric_pressure_4": round(_pressure(moment) + rng.gauss(0.0, 0.3), 1),
            "analog_in_5": round(_clamp(pm25, 1.0, 300.0), 2),
            "analog_in_6": round(_clamp(pm10, 2.0, 320.0), 2),
            "unixtime_9": unix,
        }
    )


def _temperature_humidity(
    device: FleetDevice, moment: _Moment, rng: random.Random, ch: _Character, f_cnt: int, seed: int
) -> Reading:
    heat = device.params.get("heat", 0.5)
    # The heat island shows most in the evening, when the stone gives back the day's warmth.
    temperature = (
        _air_temperature(moment)
        + heat * (0.6 + 0.8 * _circular(moment.hour, 21.0, 3.0))
        + ch.bias * 0.4
        + rng.gauss(0.0, 0.15)
    )
    return _lpp(
        {
            "percentage_0": _battery(ch, f_cnt),
            "temperature_1": round(temperature, 1),
            "relative_humidity_2": round(_humidity(moment, temperature) * 2) / 2,
        }
    )


def _weather(
    device: FleetDevice, moment: _Moment, rng: random.Random, ch: _Character, f_cnt: int, seed: int
) -> Reading:
    exposure = device.params.get("exposure", 1.0)
    temperature = _air_temperature(moment) + ch.bias * 0.5 + rng.gauss(0.0, 0.15)
    rain = _rain(moment, seed)
    wind = exposure * (
        3.0 + 2.0 * math.sin(_TAU * moment.days / 4.3) + 1.2 * _bump(moment.hour, 14, 4)
    ) + rng.gauss(0.0, 0.6)
    direction = (230.0 + 45.0 * math.sin(_TAU * moment.days / 5.7) + rng.gauss(0.0, 15.0)) % 360
    light = _daylight(moment) * (0.35 if rain else 0.8 + 0.2 * rng.random())
    humidity = _humidity(moment, temperature) + (12.0 if rain else 0.0)
    return _lpp(
        {
            "temperature_1": round(temperature, 1),
            "relative_humidity_2": round(_clamp(humidity, 20.0, 100.0) * 2) / 2,
            "barometric_pressure_3": round(_pressure(moment) + rng.gauss(0.0, 0.2), 1),
            "analog_in_4": round(_clamp(wind, 0.0, 40.0), 2),
            "direction_5": round(direction) % 360,
            "analog_in_6": round(rain * (0.7 + 0.6 * rng.random()), 2) if rain else 0.0,
            "luminosity_7": round(_clamp(light, 0.0, 65535.0)),
        }
    )


def _soil(
    device: FleetDevice, moment: _Moment, rng: random.Random, ch: _Character, f_cnt: int, seed: int
) -> Reading:
    base = device.params.get("base", 28.0)
    # Wet spells every few weeks, the afternoon's drying, and the last rain soaking in.
    wetness = 6.0 * math.sin(_TAU * moment.days / 19.0) - 1.5 * _bump(moment.hour, 16.0, 3.0)
    rained = sum(_rain(_shift(moment, -hours / 24.0), seed) for hours in (0, 3, 6, 9))
    moisture = base + wetness + 2.0 * rained + 2.0 * ch.bias + rng.gauss(0.0, 0.4)
    soil_temperature = (
        _temperature_mean(moment)
        + 1.2 * math.sin(_TAU * (moment.hour - 12.0) / 24.0)
        + rng.gauss(0.0, 0.1)
    )
    return _lpp(
        {
            "percentage_0": _battery(ch, f_cnt),
            "percentage_1": round(_clamp(moisture, 3.0, 60.0)),
            "temperature_2": round(soil_temperature, 1),
        }
    )


def _shift(moment: _Moment, days: float) -> _Moment:
    return _Moment(
        at=moment.at,
        hour=moment.hour,
        weekday=moment.weekday,
        day_of_year=moment.day_of_year,
        days=moment.days + days,
    )


def _water_level(
    device: FleetDevice, moment: _Moment, rng: random.Random, ch: _Character, f_cnt: int, seed: int
) -> Reading:
    base = device.params.get("base", 3.0)
    if device.params.get("creek"):
        rained = sum(_rain(_shift(moment, -hours / 24.0), seed) for hours in (0, 3, 6))
        level = base + 0.06 * math.sin(_TAU * moment.days / 13.0) + 0.08 * rained
        level += rng.gauss(0.0, 0.004)
    else:
        level = _rhine_level(moment, base) + rng.gauss(0.0, 0.006)
    return _lpp(
        {
            "percentage_0": _battery(ch, f_cnt),
            "distance_1": round(_clamp(level, 0.05, 14.0), 3),
        }
    )


def _parking(
    device: FleetDevice, moment: _Moment, rng: random.Random, ch: _Character, f_cnt: int, seed: int
) -> Reading:
    level = device.params.get("level", 1.0)
    probability = _clamp(0.06 + 0.9 * level * shopping_index(moment.hour, moment.weekday), 0, 0.97)
    slot = int(moment.days * 96)
    occupied = random.Random(f"{seed}:{device.dev_eui}:slot:{slot}").random() < probability
    return _lpp({"percentage_0": _battery(ch, f_cnt), "presence_1": int(occupied)})


def _noise(
    device: FleetDevice, moment: _Moment, rng: random.Random, ch: _Character, f_cnt: int, seed: int
) -> Reading:
    base = device.params.get("base", 55.0) + 2.0 * ch.bias
    nightlife = device.params.get("nightlife", 1.0) * nightlife_index(moment.hour, moment.weekday)
    day = 4.0 * shopping_index(moment.hour, moment.weekday) + 3.0 * traffic_index(
        moment.hour, moment.weekday
    )
    quiet = -6.0 * _circular(moment.hour, 5.5, 1.5)
    laeq = _clamp(base + 17.0 * nightlife + day + quiet + rng.gauss(0.0, 1.2), 30.0, 110.0)
    lamax = laeq + 9.0 + 3.0 * nightlife + abs(rng.gauss(0.0, 4.0))
    las = laeq - 1.0 - 2.0 * rng.random()
    payload = struct.pack(
        ">HHH", round(laeq * 10), round(min(lamax, 130.0) * 10), round(max(las, 25.0) * 10)
    )
    return Reading(
        SPECIFIC_PORT,
        payload,
        decode_device_payload("noise-level", payload),
        {"LAeq": laeq, "LAmax": lamax, "LAS": las},
    )


def _traffic(
    device: FleetDevice, moment: _Moment, rng: random.Random, ch: _Character, f_cnt: int, seed: int
) -> Reading:
    capacity = device.params.get("capacity", 250.0) * ch.scale
    free_speed = device.params.get("free_speed", 50.0)
    index = traffic_index(moment.hour, moment.weekday)
    expected = capacity * index
    count = max(0, round(expected + rng.gauss(0.0, math.sqrt(expected + 1.0))))
    congestion = index**3
    speed = _clamp(free_speed * (1.0 - 0.5 * congestion) + rng.gauss(0.0, 2.5), 3.0, 130.0)
    occupancy = round(_clamp(2.0 + 48.0 * index**1.6 + rng.gauss(0.0, 2.0), 0.0, 100.0))
    payload = struct.pack(">HHB", min(count, 0xFFFF), round(speed * 10), occupancy)
    return Reading(
        SPECIFIC_PORT,
        payload,
        decode_device_payload("traffic-counter", payload),
        {"vehicleCount": count, "averageSpeed": speed, "occupancy": occupancy},
    )


def _people(
    device: FleetDevice, moment: _Moment, rng: random.Random, ch: _Character, f_cnt: int, seed: int
) -> Reading:
    capacity = device.params.get("capacity", 1000.0) * ch.scale
    busy = shopping_index(moment.hour, moment.weekday)
    if device.params.get("evening"):
        busy = max(busy * 0.7, 0.8 * _circular(moment.hour, 19.5, 2.5))
    expected = capacity * busy + 8.0
    total = max(0, round(expected + rng.gauss(0.0, math.sqrt(expected))))
    share = _clamp(0.5 + 0.15 * math.sin(_TAU * (moment.hour - 12.0) / 24.0), 0.1, 0.9)
    towards = round(total * share)
    payload = struct.pack(">HH", min(towards, 0xFFFF), min(total - towards, 0xFFFF))
    return Reading(
        SPECIFIC_PORT,
        payload,
        decode_device_payload("people-counter", payload),
        {"in": towards, "out": total - towards},
    )


_GENERATORS: dict[str, _Generator] = {
    "air-quality-lpp": _air_quality,
    "temperature-humidity-lpp": _temperature_humidity,
    "weather-station-lpp": _weather,
    "soil-moisture-lpp": _soil,
    "water-level-lpp": _water_level,
    "parking-occupancy-lpp": _parking,
    "noise-level": _noise,
    "traffic-counter": _traffic,
    "people-counter": _people,
}

SUPPORTED_PROFILES: tuple[str, ...] = tuple(_GENERATORS)
"""The device profiles the simulator can generate uplinks for."""

NS_DECODED_PROFILES: frozenset[str] = frozenset(
    {"noise-level", "traffic-counter", "people-counter"}
)
"""Profiles whose payload the network server decodes (`decoded_payload` / `object`)."""


def decode_device_payload(profile: str, payload: bytes) -> dict[str, Any] | None:
    """What the network server's payload formatter makes of a device-specific payload (the
    Python twin of `CODECS_DIR/<profile>.js`); None for a payload it cannot decode, as the
    network server then sends no decoded object."""
    try:
        if profile == "noise-level":
            laeq, lamax, las = struct.unpack(">HHH", payload)
            return {"LAeq": laeq / 10, "LAmax": lamax / 10, "LAS": las / 10}
        if profile == "traffic-counter":
            count, speed, occupancy = struct.unpack(">HHB", payload)
            return {"vehicleCount": count, "averageSpeed": speed / 10, "occupancy": occupancy}
        if profile == "people-counter":
            towards, away = struct.unpack(">HH", payload)
            return {"peopleCount": towards + away, "in": towards, "out": away}
    except struct.error:
        return None
    return None


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    return local_zone(name)


def reading_for(
    device: FleetDevice, at: datetime, *, f_cnt: int, seed: int, timezone: str
) -> Reading:
    """The reading `device` sends with frame counter `f_cnt` at `at` (aware).

    A function of its arguments: the same device, time, counter and seed give the same bytes.
    Raises `KeyError` naming the supported profiles for a profile the simulator cannot
    generate.
    """
    generator = _GENERATORS.get(device.profile)
    if generator is None:
        raise KeyError(
            f"device {device.device_id}: the simulator has no value model for profile "
            f"{device.profile!r}; supported: {', '.join(SUPPORTED_PROFILES)}"
        )
    rng = random.Random(f"{seed}:{device.dev_eui}:{f_cnt}")
    character = _character(device, seed)
    return generator(device, _moment(at, _zone(timezone)), rng, character, f_cnt, seed)
