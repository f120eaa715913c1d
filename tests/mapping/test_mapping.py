"""map_uplink's rules: measuring points, time sources, calibration, plausibility, refused
values, locations, the Device update, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.codecs import Measurements
from agents.lorawan import Uplink
from agents.mapping import (
    MappedUplink,
    MappingError,
    compile_profile,
    map_uplink,
)
from agents.profiles import DeviceProfile, parse_profile
from agents.registry import Calibration, RegisteredDevice
from tests.mapping._uplinks import GATEWAY_TIME, RECEIVED, gateway

DEV_EUI = "70B3D57ED0000001"

PROFILE = parse_profile(
    """\
name: test-air
codec: {name: cayennelpp}
reporting_interval: 600
time: {prefer: [payload, gateway, network-server], field: unixtime_9, format: unix}
location:
  latitude: gps_8.latitude
  longitude: gps_8.longitude
  altitude: gps_8.altitude
entities:
  - type: AirQualityObserved
    attributes:
      temperature:
        source: [temperature_1, temp]
        unit: CEL
        plausible: {min: -40, max: 60}
      relativeHumidity:
        source: relative_humidity_2
        transforms: [{scale: 0.01}, {round: 3}]
      co2:
        source: concentration_3
        unit: "59"
        plausible: {min: 250, max: 10000}
      no2:
        source: analog_in_4
        unit: GQ
        transforms: [{round: 1}]
device:
  attributes:
    batteryLevel:
      source: percentage_0
      unit: C62
      transforms: [{scale: 0.01}, {clamp: {min: 0, max: 1}}]
"""
)


def uplink(**changes: Any) -> Uplink:
    fields: dict[str, Any] = {
        "source": "tts",
        "dev_eui": DEV_EUI,
        "f_port": 1,
        "f_cnt": 7,
        "received_at": RECEIVED,
        "gateway_time": GATEWAY_TIME,
        "gateways": (gateway(-110.0, -3.0, "far"), gateway(-95.0, 9.25, "near")),
    }
    fields.update(changes)
    return Uplink(**fields)


def device(**changes: Any) -> RegisteredDevice:
    fields: dict[str, Any] = {
        "dev_eui": DEV_EUI,
        "profile": "test-air",
        "location": {"type": "Point", "coordinates": [13.405, 52.52]},
    }
    fields.update(changes)
    return RegisteredDevice(**fields)


def run(
    data: dict[str, Any],
    *,
    up: Uplink | None = None,
    dev: RegisteredDevice | None = None,
    profile: DeviceProfile = PROFILE,
    now: datetime = RECEIVED,
) -> MappedUplink:
    return map_uplink(up or uplink(), Measurements(data), dev or device(), profile, now=now)


def observation(mapped: MappedUplink) -> dict[str, Any]:
    return mapped.entities[0]


# -- measuring points and ids --------------------------------------------------------------


def test_the_measuring_point_defaults_to_the_dev_eui() -> None:
    mapped = run({"temperature_1": 20.5})
    assert observation(mapped)["id"] == f"urn:ngsi-ld:AirQualityObserved:{DEV_EUI}"
    assert mapped.entities[-1]["id"] == f"urn:ngsi-ld:Device:{DEV_EUI}"


def test_a_named_measuring_point_outlives_the_sensor() -> None:
    first = run({"temperature_1": 20.5}, dev=device(measuring_point="mitte-01"))
    swapped = run(
        {"temperature_1": 20.7},
        dev=device(dev_eui="70B3D57ED00000FF", measuring_point="mitte-01"),
    )
    assert observation(first)["id"] == observation(swapped)["id"]
    assert observation(first)["id"] == "urn:ngsi-ld:AirQualityObserved:mitte-01"
    assert observation(swapped)["refDevice"]["object"] == "urn:ngsi-ld:Device:70B3D57ED00000FF"


def test_a_full_id_as_measuring_point_and_a_named_device() -> None:
    dev = device(measuring_point="urn:ngsi-ld:AirQualityObserved:rathaus", device_id="aq-rathaus-1")
    mapped = run({"temperature_1": 20.5}, dev=dev)
    assert observation(mapped)["id"] == "urn:ngsi-ld:AirQualityObserved:rathaus"
    assert observation(mapped)["refDevice"]["object"] == "urn:ngsi-ld:Device:aq-rathaus-1"
    assert mapped.entities[-1]["id"] == "urn:ngsi-ld:Device:aq-rathaus-1"


# -- values ---------------------------------------------------------------------------------


def test_source_alternatives_and_transforms() -> None:
    mapped = run({"temp": 19.0, "relative_humidity_2": 47.5, "analog_in_4": 12.345})
    entity = observation(mapped)
    assert entity["temperature"]["value"] == 19.0
    assert entity["relativeHumidity"]["value"] == 0.475
    assert entity["no2"]["value"] == 12.3
    assert "co2" not in entity


def test_a_value_the_model_refuses_is_left_out_and_the_rest_kept() -> None:
    bad = parse_profile(
        PROFILE.model_dump_json(exclude_unset=True).replace(
            '"transforms":[{"scale":0.01},{"round":3}]', '"transforms":[]'
        )
    )
    mapped = run({"temperature_1": 20.5, "relative_humidity_2": 54.5}, profile=bad)
    entity = observation(mapped)
    assert "relativeHumidity" not in entity
    assert entity["temperature"]["value"] == 20.5
    (warning,) = mapped.warnings
    assert warning.reason == "bad-value"
    assert (warning.dev_eui, warning.entity_type, warning.attribute) == (
        DEV_EUI,
        "AirQualityObserved",
        "relativeHumidity",
    )
    assert "must be at most 1, got 54.5" in str(warning)


def test_a_value_a_transform_refuses_is_a_warning() -> None:
    mapped = run({"temperature_1": 20.5, "relative_humidity_2": "wet"})
    (warning,) = mapped.warnings
    assert warning.attribute == "relativeHumidity"
    assert "scale needs a number" in warning.message


def test_when_every_value_is_refused_the_entity_is_not_written() -> None:
    mapped = run({"relative_humidity_2": "wet"})
    assert [e["type"] for e in mapped.entities] == ["Device"]
    assert {w.reason for w in mapped.warnings} == {"bad-value"}


def test_an_implausible_reading_is_flagged_not_dropped() -> None:
    mapped = run({"temperature_1": 85.5, "concentration_3": 612})
    entity = observation(mapped)
    assert entity["temperature"]["value"] == 85.5
    assert entity["temperature"]["quality"] == {"type": "Property", "value": "implausible"}
    assert "quality" not in entity["co2"]
    (warning,) = mapped.warnings
    assert warning.reason == "implausible"
    assert "[-40, 60]" in warning.message


def test_no_measurement_of_the_profile_is_a_warning_and_the_device_still_reports() -> None:
    mapped = run({"voltage_5": 3.6})
    assert [e["type"] for e in mapped.entities] == ["Device"]
    (warning,) = mapped.warnings
    assert warning.reason == "no-measurements"
    assert "voltage_5" in warning.message
    assert "dateLastValueReported" in mapped.entities[0]


# -- calibration ----------------------------------------------------------------------------

JAN = datetime(2024, 1, 1, tzinfo=UTC)
JUN = datetime(2024, 6, 1, tzinfo=UTC)


def test_calibration_applies_within_its_validity_period() -> None:
    dev = device(
        calibration=(
            Calibration(attribute="temperature", offset=-0.4, valid_from=JAN, valid_until=JUN),
        )
    )
    inside = run({"temperature_1": 21.3}, dev=dev)
    assert observation(inside)["temperature"]["value"] == 20.9
    after = uplink(gateway_time=JUN, received_at=JUN)
    outside = run({"temperature_1": 21.3}, dev=dev, up=after, now=JUN)
    assert observation(outside)["temperature"]["value"] == 21.3
    before = JAN - timedelta(seconds=1)
    earlier = run({"temperature_1": 21.3}, dev=dev, up=uplink(gateway_time=before), now=RECEIVED)
    assert observation(earlier)["temperature"]["value"] == 21.3


def test_calibration_runs_after_the_profile_and_rounds_again() -> None:
    dev = device(calibration=(Calibration(attribute="relativeHumidity", scale=1.02),))
    mapped = run({"relative_humidity_2": 50.5}, dev=dev)
    # 0.505 (the profile's scale and round) * 1.02, rounded again to 3 decimals
    assert observation(mapped)["relativeHumidity"]["value"] == 0.515


def test_the_latest_and_most_specific_calibration_wins() -> None:
    dev = device(
        calibration=(
            Calibration(attribute="temperature", offset=-1.0, valid_from=JAN),
            Calibration(attribute="temperature", offset=-0.5, valid_from=JAN + timedelta(days=30)),
            Calibration(
                attribute="temperature", entity_type="WeatherObserved", offset=5.0, valid_from=JUN
            ),
        )
    )
    assert observation(run({"temperature_1": 20.0}, dev=dev))["temperature"]["value"] == 19.5
    pinned = device(
        calibration=(
            Calibration(attribute="temperature", offset=-1.0, valid_from=JUN - timedelta(days=1)),
            Calibration(attribute="temperature", entity_type="AirQualityObserved", offset=-2.0),
        )
    )
    assert observation(run({"temperature_1": 20.0}, dev=pinned))["temperature"]["value"] == 18.0


def test_calibration_can_make_a_reading_implausible() -> None:
    dev = device(calibration=(Calibration(attribute="co2", offset=-500),))
    mapped = run({"concentration_3": 612}, dev=dev)
    assert observation(mapped)["co2"]["value"] == 112
    assert observation(mapped)["co2"]["quality"]["value"] == "implausible"


def test_a_calibration_period_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="not after validFrom"):
        Calibration(attribute="co2", valid_from=JUN, valid_until=JAN)


# -- time -----------------------------------------------------------------------------------


def test_the_payload_timestamp_comes_first() -> None:
    payload_time = datetime(2024, 5, 1, 11, 58, tzinfo=UTC)
    mapped = run({"temperature_1": 20.5, "unixtime_9": int(payload_time.timestamp())})
    assert mapped.time_source == "payload"
    assert mapped.observed_at == payload_time
    entity = observation(mapped)
    assert entity["temperature"]["observedAt"] == "2024-05-01T11:58:00Z"
    assert entity["dateObserved"]["value"]["@value"] == "2024-05-01T11:58:00Z"
    # the radio attributes carry the receive time
    assert mapped.received_at == RECEIVED
    assert mapped.entities[-1]["rssi"]["observedAt"] == "2024-05-01T12:00:05Z"


def test_then_the_gateway_time_then_the_network_server_time() -> None:
    gateway_first = run({"temperature_1": 20.5})
    assert gateway_first.time_source == "gateway"
    assert observation(gateway_first)["temperature"]["observedAt"] == "2024-05-01T12:00:04.512Z"
    no_gateway = run({"temperature_1": 20.5}, up=uplink(gateway_time=None))
    assert no_gateway.time_source == "network-server"
    assert no_gateway.observed_at == RECEIVED


def test_the_agent_clock_is_the_last_resort_with_a_warning() -> None:
    now = datetime(2024, 5, 1, 12, 1, tzinfo=UTC)
    mapped = run({"temperature_1": 20.5}, up=uplink(gateway_time=None, received_at=None), now=now)
    assert mapped.time_source == "agent"
    assert mapped.observed_at == now
    assert [w.reason for w in mapped.warnings] == ["no-time"]


def test_a_device_clock_in_the_future_or_unset_is_skipped() -> None:
    future = int((RECEIVED + timedelta(hours=2)).timestamp())
    mapped = run({"temperature_1": 20.5, "unixtime_9": future})
    assert mapped.time_source == "gateway"
    assert [w.reason for w in mapped.warnings] == ["bad-time"]
    assert "in the future" in mapped.warnings[0].message
    unset = run({"temperature_1": 20.5, "unixtime_9": 86400})
    assert unset.time_source == "gateway"
    assert "before 2000" in unset.warnings[0].message


def test_a_profile_may_prefer_the_network_server() -> None:
    profile = parse_profile(
        PROFILE.model_dump_json(exclude_unset=True).replace(
            '"prefer":["payload","gateway","network-server"]', '"prefer":["network-server"]'
        )
    )
    mapped = run({"temperature_1": 20.5}, profile=profile)
    assert mapped.time_source == "network-server"
    assert mapped.observed_at == RECEIVED


@pytest.mark.parametrize(
    ("time_format", "value", "expected"),
    [
        ("auto", 1714564680, datetime(2024, 5, 1, 11, 58, tzinfo=UTC)),
        ("auto", 1714564680250, datetime(2024, 5, 1, 11, 58, 0, 250000, tzinfo=UTC)),
        ("unix-ms", 1714564680000, datetime(2024, 5, 1, 11, 58, tzinfo=UTC)),
        ("auto", "2024-05-01T13:58:00+02:00", datetime(2024, 5, 1, 11, 58, tzinfo=UTC)),
        ("iso8601", "2024-05-01T11:58:00Z", datetime(2024, 5, 1, 11, 58, tzinfo=UTC)),
        ("iso8601", "2024-05-01T11:58:00", None),
        ("unix", "2024-05-01T11:58:00Z", None),
        ("auto", True, None),
    ],
)
def test_payload_time_formats(time_format: str, value: Any, expected: datetime | None) -> None:
    profile = parse_profile(
        PROFILE.model_dump_json(exclude_unset=True).replace(
            '"format":"unix"', f'"format":"{time_format}"'
        )
    )
    mapped = run({"temperature_1": 20.5, "unixtime_9": value}, profile=profile)
    if expected is None:
        assert mapped.time_source == "gateway"
        assert mapped.warnings[0].reason == "bad-time"
    else:
        assert mapped.time_source == "payload"
        assert mapped.observed_at == expected
        assert mapped.observed_at.tzinfo is UTC


# -- location -------------------------------------------------------------------------------


def test_the_registered_location() -> None:
    entity = observation(run({"temperature_1": 20.5}))
    assert entity["location"] == {
        "type": "GeoProperty",
        "value": {"type": "Point", "coordinates": [13.405, 52.52]},
    }


def test_a_gps_fix_in_the_payload_wins() -> None:
    data = {
        "temperature_1": 20.5,
        "gps_8.latitude": 52.5163,
        "gps_8.longitude": 13.3777,
        "gps_8.altitude": 34.5,
    }
    entity = observation(run(data))
    assert entity["location"]["value"]["coordinates"] == [13.3777, 52.5163, 34.5]


def test_no_gps_fix_falls_back_to_the_registration() -> None:
    data = {"temperature_1": 20.5, "gps_8.latitude": 0, "gps_8.longitude": 0}
    mapped = run(data)
    assert observation(mapped)["location"]["value"]["coordinates"] == [13.405, 52.52]
    assert [w.reason for w in mapped.warnings] == ["bad-location"]


def test_no_location_at_all_is_a_warning() -> None:
    mapped = run({"temperature_1": 20.5}, dev=device(location=None))
    assert "location" not in observation(mapped)
    assert [w.reason for w in mapped.warnings] == ["no-location"]


# -- the Device ---------------------------------------------------------------------------------


def test_the_device_update_holds_only_what_the_agent_owns() -> None:
    mapped = run({"temperature_1": 20.5, "percentage_0": 104})
    device_entity = mapped.entities[-1]
    assert set(device_entity) == {
        "id",
        "type",
        "@context",
        "dateLastValueReported",
        "rssi",
        "batteryLevel",
    }
    assert device_entity["batteryLevel"]["value"] == 1
    assert device_entity["rssi"]["value"] == -95.0  # the best gateway by SNR
    assert device_entity["rssi"]["snr"]["value"] == 9.25
    assert device_entity["rssi"]["gateway"]["value"] == "near"
    assert device_entity["@context"].endswith("dataModel.Device/master/context.jsonld")


def test_without_radio_metadata_there_is_no_rssi() -> None:
    mapped = run({"temperature_1": 20.5}, up=uplink(gateways=()))
    assert "rssi" not in mapped.entities[-1]


def test_outbox_parts_split_the_context_and_time() -> None:
    payload_time = datetime(2024, 5, 1, 11, 58, tzinfo=UTC)
    mapped = run({"temperature_1": 20.5, "unixtime_9": int(payload_time.timestamp())})
    (aqo, aqo_context, aqo_at), (dev, dev_context, dev_at) = mapped.outbox_parts()
    assert "@context" not in aqo
    assert "@context" not in dev
    assert aqo_context.endswith("dataModel.Environment/master/context.jsonld")
    assert dev_context.endswith("dataModel.Device/master/context.jsonld")
    assert (aqo_at, dev_at) == (payload_time, RECEIVED)
    assert "@context" in mapped.entities[0]


def test_outbox_parts_can_hand_out_the_entities_themselves() -> None:
    payload_time = datetime(2024, 5, 1, 11, 58, 30, 250000, tzinfo=UTC)
    mapped = run({"temperature_1": 20.5, "unixtime_9": payload_time.timestamp()})
    copied = mapped.outbox_parts()
    taken = mapped.outbox_parts(take=True)
    assert taken == copied
    assert [body for body, _, _ in taken] == mapped.entities  # the same dicts, now without @context
    assert all(body is entity for (body, _, _), entity in zip(taken, mapped.entities, strict=True))
    assert mapped.observed_text == "2024-05-01T11:58:30.250Z"
    assert mapped.entities[0]["temperature"]["observedAt"] == mapped.observed_text


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"state": "decommissioned"}, "not-in-service"),
        ({"state": "inactive"}, "not-in-service"),
        ({"state": "unprovisioned", "profile": None}, "unprovisioned"),
    ],
)
def test_devices_out_of_service_are_not_mapped(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError) as caught:
        run({"temperature_1": 20.5}, dev=device(**changes))
    assert caught.value.reason == reason
    assert caught.value.dev_eui == DEV_EUI
    assert DEV_EUI in str(caught.value)


def test_a_device_in_maintenance_is_mapped() -> None:
    assert observation(run({"temperature_1": 20.5}, dev=device(state="maintenance")))


def test_a_profile_built_in_code_is_checked_when_compiled() -> None:
    bad = DeviceProfile.model_validate(
        {
            "name": "bad",
            "codec": {"name": "cayennelpp"},
            "entities": [{"type": "AirQualityObserved", "attributes": {"colour": "x_1"}}],
        }
    )
    with pytest.raises(MappingError) as caught:
        compile_profile(bad)
    assert caught.value.reason == "bad-profile"
    assert "colour" in caught.value.message


def test_a_mapping_error_pickles() -> None:
    import pickle

    error = MappingError("unprovisioned", "no profile", dev_eui=DEV_EUI, attribute="x")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.message, copy.dev_eui, copy.attribute) == (
        "unprovisioned",
        "no profile",
        DEV_EUI,
        "x",
    )


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))]
        ),
    )
)
def test_times_are_written_as_the_models_write_them(value: datetime) -> None:
    from agents.mapping._map import _utc_text
    from models import format_datetime

    assert _utc_text(value) == format_datetime(value)
