"""The value model: readings that follow the city's day, deterministic, decodable."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agents.codecs import JavaScriptCodec, decode_cayennelpp_values
from agents.simulator import (
    CODECS_DIR,
    NS_DECODED_PROFILES,
    Fleet,
    FleetDevice,
    build_fleet,
    decode_device_payload,
    reading_for,
)

BERLIN = ZoneInfo("Europe/Berlin")
# A Tuesday and the following Saturday and Sunday in June 2024 (local time).
TUESDAY = datetime(2024, 6, 11, tzinfo=BERLIN)
SATURDAY = datetime(2024, 6, 15, tzinfo=BERLIN)
SUNDAY = datetime(2024, 6, 16, tzinfo=BERLIN)


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return build_fleet(49 * 4, seed=11)


def _devices(fleet: Fleet, profile: str) -> list[FleetDevice]:
    return [d for d in fleet.devices if d.profile == profile]


def _values(fleet: Fleet, profile: str, at: datetime, name: str) -> list[float]:
    found = []
    for device in _devices(fleet, profile):
        for f_cnt in range(5):
            reading = reading_for(device, at, f_cnt=f_cnt, seed=fleet.seed, timezone=fleet.timezone)
            found.append(float(reading.values[name]))
    return found


def _lpp(fleet: Fleet, profile: str, at: datetime, name: str) -> list[float]:
    found = []
    for device in _devices(fleet, profile):
        for f_cnt in range(5):
            payload = reading_for(
                device, at, f_cnt=f_cnt, seed=fleet.seed, timezone=fleet.timezone
            ).payload
            value = decode_cayennelpp_values(payload)[0][name]
            assert isinstance(value, int | float)
            found.append(float(value))
    return found


def _mean(values: list[float]) -> float:
    return statistics.fmean(values)


def test_traffic_peaks_at_the_rush_hours_on_weekdays(fleet: Fleet) -> None:
    def count(at: datetime) -> float:
        return _mean(_values(fleet, "traffic-counter", at, "vehicleCount"))

    night = count(TUESDAY.replace(hour=3))
    morning = count(TUESDAY.replace(hour=8))
    noon = count(TUESDAY.replace(hour=13))
    evening = count(TUESDAY.replace(hour=17, minute=15))
    assert morning > 4 * night
    assert evening > 3 * night
    assert morning > noon
    assert evening > noon
    assert count(SUNDAY.replace(hour=8)) < morning / 3
    # Congestion slows the traffic down at the peak.
    speed = _values(fleet, "traffic-counter", TUESDAY.replace(hour=8), "averageSpeed")
    free = _values(fleet, "traffic-counter", TUESDAY.replace(hour=3), "averageSpeed")
    assert _mean(speed) < _mean(free) - 5


def test_road_side_particles_follow_the_traffic(fleet: Fleet) -> None:
    rush = _lpp(fleet, "air-quality-lpp", TUESDAY.replace(hour=8), "analog_in_6")
    night = _lpp(fleet, "air-quality-lpp", TUESDAY.replace(hour=2), "analog_in_6")
    assert _mean(rush) > _mean(night) + 10
    pm25 = _lpp(fleet, "air-quality-lpp", TUESDAY.replace(hour=8), "analog_in_5")
    assert _mean(pm25) < _mean(rush)


def test_the_altstadt_is_loudest_on_saturday_night(fleet: Fleet) -> None:
    def laeq(at: datetime) -> float:
        return _mean(_values(fleet, "noise-level", at, "LAeq"))

    saturday_night = laeq(SATURDAY.replace(hour=23, minute=30))
    tuesday_afternoon = laeq(TUESDAY.replace(hour=15))
    early_morning = laeq(TUESDAY.replace(hour=5, minute=30))
    assert saturday_night > tuesday_afternoon + 8
    assert tuesday_afternoon > early_morning + 3
    # Friday night goes on after midnight (Saturday, 1 a.m.).
    assert laeq(SATURDAY.replace(hour=1)) > laeq(TUESDAY.replace(hour=13)) + 5


def test_parking_fills_with_the_shops(fleet: Fleet) -> None:
    def occupancy(at: datetime) -> float:
        return _mean(_lpp(fleet, "parking-occupancy-lpp", at, "presence_1"))

    assert occupancy(SATURDAY.replace(hour=14)) > 0.75
    assert occupancy(TUESDAY.replace(hour=15)) > 0.6
    assert occupancy(TUESDAY.replace(hour=3)) < 0.2
    assert occupancy(SUNDAY.replace(hour=14)) < 0.35


def test_the_rhine_drifts_slowly(fleet: Fleet) -> None:
    device = next(d for d in fleet.devices if d.site == "Pegel Düsseldorf (Rhein)")

    def level(at: datetime) -> float:
        payload = reading_for(device, at, f_cnt=1, seed=fleet.seed, timezone=fleet.timezone)
        value = decode_cayennelpp_values(payload.payload)[0]["distance_1"]
        assert isinstance(value, float)
        return value

    start = TUESDAY.replace(hour=12)
    hourly = [level(start + timedelta(hours=h)) for h in range(6)]
    assert max(hourly) - min(hourly) < 0.15
    weekly = [level(start + timedelta(days=7 * w)) for w in range(8)]
    assert max(weekly) - min(weekly) > 0.5
    assert all(0.5 < value < 8.0 for value in weekly)


def test_weather_has_days_and_nights(fleet: Fleet) -> None:
    noon = _lpp(fleet, "weather-station-lpp", TUESDAY.replace(hour=14), "temperature_1")
    dawn = _lpp(fleet, "weather-station-lpp", TUESDAY.replace(hour=4), "temperature_1")
    assert _mean(noon) > _mean(dawn) + 3
    light = _lpp(fleet, "weather-station-lpp", TUESDAY.replace(hour=13), "luminosity_7")
    dark = _lpp(fleet, "weather-station-lpp", TUESDAY.replace(hour=1), "luminosity_7")
    assert _mean(light) > 10_000
    assert _mean(dark) == 0
    january = _lpp(
        fleet, "weather-station-lpp", datetime(2024, 1, 16, 14, tzinfo=UTC), "temperature_1"
    )
    assert _mean(january) < _mean(noon) - 8


def test_readings_are_deterministic_and_vary_per_uplink(fleet: Fleet) -> None:
    device = fleet.devices[0]
    at = TUESDAY.replace(hour=9)
    first = reading_for(device, at, f_cnt=7, seed=1, timezone=fleet.timezone)
    assert first == reading_for(device, at, f_cnt=7, seed=1, timezone=fleet.timezone)
    assert (
        first.payload != reading_for(device, at, f_cnt=8, seed=1, timezone=fleet.timezone).payload
    )
    assert (
        first.payload != reading_for(device, at, f_cnt=7, seed=2, timezone=fleet.timezone).payload
    )


@pytest.mark.parametrize("profile", sorted(NS_DECODED_PROFILES))
def test_the_javascript_formatters_decode_the_device_bytes_as_the_network_server_object(
    fleet: Fleet, profile: str
) -> None:
    codec = JavaScriptCodec.from_file(CODECS_DIR / f"{profile}.js")
    for hour in (3, 8, 13, 23):
        for device in _devices(fleet, profile):
            reading = reading_for(
                device, TUESDAY.replace(hour=hour), f_cnt=hour, seed=1, timezone=fleet.timezone
            )
            assert reading.decoded is not None
            assert dict(codec.decode(reading.payload, f_port=reading.f_port)) == reading.decoded
            assert decode_device_payload(profile, reading.payload) == reading.decoded
    assert decode_device_payload(profile, b"\x01") is None


def test_an_unknown_profile_is_refused_with_the_supported_ones(fleet: Fleet) -> None:
    device = fleet.devices[0].model_copy(update={"profile": "my-own-profile"})
    with pytest.raises(KeyError, match="no value model for profile 'my-own-profile'"):
        reading_for(device, TUESDAY, f_cnt=0, seed=0, timezone="Europe/Berlin")


def test_payload_times_never_go_backwards_for_a_device(fleet: Fleet) -> None:
    device = _devices(fleet, "air-quality-lpp")[0]
    start = TUESDAY.replace(hour=9)
    stamps: list[int] = []
    for step in range(30):
        at = start + timedelta(seconds=0.4 * step)
        payload = reading_for(device, at, f_cnt=step, seed=1, timezone=fleet.timezone).payload
        stamp = decode_cayennelpp_values(payload)[0]["unixtime_9"]
        assert isinstance(stamp, int)
        stamps.append(stamp)
    assert stamps == sorted(stamps)
    assert 1 <= start.timestamp() - stamps[0] <= 20
