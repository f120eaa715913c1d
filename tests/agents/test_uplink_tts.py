"""The Things Stack v3 messages: uplinks in every delivery form, joins, locations, downlinks."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from agents.lorawan import (
    DownlinkEvent,
    JoinEvent,
    LocationEvent,
    Uplink,
    UplinkError,
    parse_tts_downlink_event,
    parse_tts_join,
    parse_tts_location,
    parse_tts_message,
    parse_tts_uplink,
    tts_event_of,
)

TOPIC = "v3/city-sensors@stadt/devices/th-0042/up"


def uplink_message(**overrides: Any) -> dict[str, Any]:
    """A full The Things Stack uplink as MQTT and webhooks deliver it."""
    message: dict[str, Any] = {
        "end_device_ids": {
            "device_id": "th-0042",
            "application_ids": {"application_id": "city-sensors"},
            "dev_eui": "70b3d57ed0001234",
            "join_eui": "0000000000000000",
            "dev_addr": "260b1234",
        },
        "correlation_ids": ["as:up:01H0000000000000000000000", "gs:uplink:01H1"],
        "received_at": "2024-05-02T10:15:00.123456789Z",
        "uplink_message": {
            "session_key_id": "AYdmtE7Q3a0=",
            "f_port": 2,
            "f_cnt": 1234,
            "frm_payload": "AWcA1wJobA==",
            "decoded_payload": {"temperature_1": 21.5, "relative_humidity_2": 54},
            "decoded_payload_warnings": ["clock drift"],
            "normalized_payload": [{"air": {"temperature": 21.5, "relativeHumidity": 54}}],
            "rx_metadata": [
                {
                    "gateway_ids": {"gateway_id": "gw-rathaus", "eui": "b827ebfffe000001"},
                    "time": "2024-05-02T10:14:59.900Z",
                    "rssi": -97,
                    "channel_rssi": -97,
                    "snr": 7.25,
                    "location": {"latitude": 48.137, "longitude": 11.575, "altitude": 520},
                    "received_at": "2024-05-02T10:14:59.950Z",
                },
                {
                    "gateway_ids": {"gateway_id": "gw-bahnhof", "eui": "B827EBFFFE000002"},
                    "time": "2024-05-02T10:14:59.899Z",
                    "channel_rssi": -112,
                    "snr": -3.5,
                },
            ],
            "settings": {
                "data_rate": {
                    "lora": {"bandwidth": 125000, "spreading_factor": 9, "coding_rate": "4/5"}
                },
                "frequency": "867300000",
                "time": "2024-05-02T10:14:59.899Z",
            },
            "received_at": "2024-05-02T10:15:00.050Z",
            "confirmed": True,
            "locations": {
                "user": {"latitude": 48.1371, "longitude": 11.5754, "source": "SOURCE_REGISTRY"}
            },
            "version_ids": {"brand_id": "acme", "model_id": "th-1", "band_id": "EU_863_870"},
            "network_ids": {"net_id": "000013", "tenant_id": "ttn", "cluster_id": "eu1"},
        },
        "simulated": True,
    }
    message.update(overrides)
    return message


def test_full_uplink() -> None:
    uplink = parse_tts_uplink(uplink_message(), topic=TOPIC)
    assert uplink.source == "tts"
    assert uplink.dev_eui == "70B3D57ED0001234"
    assert uplink.join_eui == "0000000000000000"
    assert uplink.dev_addr == "260B1234"
    assert (uplink.device_id, uplink.application_id, uplink.tenant) == (
        "th-0042",
        "city-sensors",
        "stadt",
    )
    assert (uplink.f_port, uplink.f_cnt) == (2, 1234)
    assert uplink.payload == bytes.fromhex("016700D702686C")
    assert uplink.confirmed is True
    assert uplink.simulated is True
    assert uplink.decoded == {"temperature_1": 21.5, "relative_humidity_2": 54}
    assert uplink.decoded_warnings == ("clock drift",)
    assert uplink.normalized_payload == [{"air": {"temperature": 21.5, "relativeHumidity": 54}}]
    assert uplink.received_at == datetime(2024, 5, 2, 10, 15, 0, 123456, tzinfo=UTC)
    assert uplink.gateway_time == datetime(2024, 5, 2, 10, 14, 59, 899000, tzinfo=UTC)
    assert (uplink.frequency, uplink.spreading_factor, uplink.bandwidth) == (867300000, 9, 125000)
    assert uplink.coding_rate == "4/5"
    assert uplink.modulation == "lora"
    assert uplink.version_ids == {"brand_id": "acme", "model_id": "th-1", "band_id": "EU_863_870"}
    assert uplink.correlation_ids == ("as:up:01H0000000000000000000000", "gs:uplink:01H1")
    assert uplink.device_location is not None
    assert (uplink.device_location.latitude, uplink.device_location.source) == (
        48.1371,
        "SOURCE_REGISTRY",
    )
    first, second = uplink.gateways
    assert (first.gateway_id, first.gateway_eui, first.rssi, first.snr) == (
        "gw-rathaus",
        "B827EBFFFE000001",
        -97,
        7.25,
    )
    assert first.location is not None
    assert first.location.altitude == 520
    assert first.received_at == datetime(2024, 5, 2, 10, 14, 59, 950000, tzinfo=UTC)
    # Without `rssi` the channel RSSI stands in.
    assert (second.rssi, second.channel_rssi, second.location) == (-112, -112, None)
    assert uplink.best_reception is first
    assert uplink.warnings == ()


def test_tenant_falls_back_to_network_ids_without_topic() -> None:
    assert parse_tts_uplink(uplink_message()).tenant == "ttn"


def test_receive_time_choices() -> None:
    uplink = parse_tts_uplink(uplink_message())
    assert uplink.time() == uplink.gateway_time
    assert uplink.time(prefer=["network-server", "gateway"]) == uplink.received_at
    message = uplink_message()
    del message["received_at"], message["uplink_message"]["received_at"]
    for gateway in message["uplink_message"]["rx_metadata"]:
        gateway.pop("time")
    without_gateway_times = parse_tts_uplink(message)
    # settings.time is the gateway time when rx_metadata has none.
    assert without_gateway_times.gateway_time == datetime(
        2024, 5, 2, 10, 14, 59, 899000, tzinfo=UTC
    )
    assert without_gateway_times.time(prefer=["network-server"]) is None
    del message["uplink_message"]["settings"]["time"]
    assert parse_tts_uplink(message).time() is None


def test_uplink_message_received_at_when_top_level_missing() -> None:
    message = uplink_message()
    del message["received_at"]
    assert parse_tts_uplink(message).received_at == datetime(
        2024, 5, 2, 10, 15, 0, 50000, tzinfo=UTC
    )


def test_zero_values_are_omitted_by_the_server() -> None:
    message = uplink_message()
    up = message["uplink_message"]
    for key in ("f_cnt", "confirmed", "frm_payload", "decoded_payload"):
        del up[key]
    del message["simulated"]
    uplink = parse_tts_uplink(message)
    assert uplink.f_cnt == 0
    assert uplink.confirmed is False
    assert uplink.simulated is False
    assert uplink.payload == b""
    assert uplink.decoded is None


def test_older_coding_rate_place() -> None:
    message = uplink_message()
    settings = message["uplink_message"]["settings"]
    del settings["data_rate"]["lora"]["coding_rate"]
    settings["coding_rate"] = "4/6"
    assert parse_tts_uplink(message).coding_rate == "4/6"


def test_fsk_uplink() -> None:
    message = uplink_message()
    message["uplink_message"]["settings"]["data_rate"] = {"fsk": {"bit_rate": 50000}}
    uplink = parse_tts_uplink(message)
    assert (uplink.modulation, uplink.bit_rate, uplink.spreading_factor) == ("fsk", 50000, None)


def test_field_masked_webhook_takes_the_device_from_path_variables() -> None:
    message = {"uplink_message": copy.deepcopy(uplink_message()["uplink_message"])}
    uplink = parse_tts_uplink(
        message,
        path_vars={
            "appID": "city-sensors",
            "devID": "th-0042",
            "devEUI": "70-B3-D5-7E-D0-00-12-34",
        },
    )
    assert (uplink.application_id, uplink.device_id, uplink.dev_eui) == (
        "city-sensors",
        "th-0042",
        "70B3D57ED0001234",
    )
    without = parse_tts_uplink(message)
    assert (without.dev_eui, without.device_id, without.application_id) == (None, None, None)


def test_path_variables_must_agree_with_the_body() -> None:
    with pytest.raises(UplinkError) as caught:
        parse_tts_uplink(uplink_message(), path_vars={"devEUI": "70B3D57ED0009999"})
    assert caught.value.reason == "topic-mismatch"
    assert caught.value.field == "end_device_ids.dev_eui"
    assert "70B3D57ED0001234" in str(caught.value)
    assert "70B3D57ED0009999" in str(caught.value)


def test_topic_must_agree_with_the_body() -> None:
    with pytest.raises(UplinkError) as caught:
        parse_tts_uplink(uplink_message(), topic="v3/city-sensors/devices/other-device/up")
    assert caught.value.reason == "topic-mismatch"
    assert caught.value.field == "end_device_ids.device_id"
    with pytest.raises(UplinkError) as caught:
        parse_tts_uplink(uplink_message(), topic="v3/other-app/devices/th-0042/up")
    assert caught.value.reason == "topic-mismatch"


def test_topic_event_must_agree_with_the_body() -> None:
    with pytest.raises(UplinkError) as caught:
        parse_tts_uplink(uplink_message(), topic="v3/city-sensors/devices/th-0042/join")
    assert caught.value.reason == "topic-mismatch"
    assert "'join'" in caught.value.message


def test_a_body_with_two_messages_is_refused_naming_both() -> None:
    message = uplink_message()
    message["join_accept"] = {"session_key_id": "AYdmtE7Q3a0=", "received_at": "2024-05-02T10:14Z"}
    with pytest.raises(UplinkError) as caught:
        parse_tts_message(message)
    assert caught.value.reason == "malformed-message"
    assert "uplink_message, join_accept" in caught.value.message


def test_console_export_envelope() -> None:
    envelope = {
        "name": "as.up.data.forward",
        "time": "2024-05-02T10:15:00.130Z",
        "identifiers": [{"device_ids": {"device_id": "th-0042"}}],
        "data": {"@type": "type.googleapis.com/ttn.lorawan.v3.ApplicationUp", **uplink_message()},
        "correlation_ids": ["as:up:01H0000000000000000000000"],
        "unique_id": "01H0000000000000000000000X",
    }
    assert parse_tts_uplink(envelope) == parse_tts_uplink(uplink_message())
    assert tts_event_of(envelope) == "up"


def test_envelope_of_another_kind_is_unsupported() -> None:
    envelope = {"name": "gs.gateway.connect", "data": {"gateway_ids": {"gateway_id": "gw"}}}
    with pytest.raises(UplinkError) as caught:
        parse_tts_message(envelope)
    assert caught.value.reason == "unsupported-event"
    assert "gs.gateway.connect" in caught.value.message


def test_bad_base64_without_decoded_payload_is_refused() -> None:
    message = uplink_message()
    up = message["uplink_message"]
    up["frm_payload"] = "not base64!"
    del up["decoded_payload"], up["normalized_payload"]
    with pytest.raises(UplinkError) as caught:
        parse_tts_uplink(message)
    assert caught.value.reason == "bad-base64"
    assert caught.value.field == "uplink_message.frm_payload"


def test_bad_base64_keeps_the_decoded_payload_with_a_warning() -> None:
    message = uplink_message()
    message["uplink_message"]["frm_payload"] = "###"
    uplink = parse_tts_uplink(message)
    assert uplink.payload is None
    assert uplink.decoded == {"temperature_1": 21.5, "relative_humidity_2": 54}
    assert len(uplink.warnings) == 1
    assert "frm_payload" in uplink.warnings[0]


def test_bad_dev_eui() -> None:
    message = uplink_message()
    message["end_device_ids"]["dev_eui"] = "70B3D57ED00012"
    with pytest.raises(UplinkError) as caught:
        parse_tts_uplink(message)
    assert caught.value.reason == "bad-dev-eui"
    assert caught.value.field == "end_device_ids.dev_eui"


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("uplink_message", "f_port"), "two", "uplink_message.f_port"),
        (("uplink_message", "f_port"), 256, "uplink_message.f_port"),
        (("uplink_message", "f_cnt"), -1, "uplink_message.f_cnt"),
        (("uplink_message", "rx_metadata"), {"rssi": 1}, "uplink_message.rx_metadata"),
        (("uplink_message", "settings"), [], "uplink_message.settings"),
        (("uplink_message", "decoded_payload"), [1, 2], "uplink_message.decoded_payload"),
        (("end_device_ids", "device_id"), 42, "end_device_ids.device_id"),
        (("correlation_ids",), [1], "correlation_ids[0]"),
    ],
)
def test_wrong_types_name_the_field(path: tuple[str, ...], value: Any, field: str) -> None:
    message = uplink_message()
    target = message
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(UplinkError) as caught:
        parse_tts_uplink(message)
    assert caught.value.reason == "malformed-message"
    assert caught.value.field == field
    assert field in str(caught.value)


def test_gateway_rssi_type_error_names_the_gateway() -> None:
    message = uplink_message()
    message["uplink_message"]["rx_metadata"][1]["snr"] = "good"
    with pytest.raises(UplinkError) as caught:
        parse_tts_uplink(message)
    assert caught.value.field == "uplink_message.rx_metadata[1].snr"


def test_unparsable_times_are_dropped_with_a_warning() -> None:
    message = uplink_message()
    message["uplink_message"]["rx_metadata"][0]["time"] = "yesterday"
    uplink = parse_tts_uplink(message)
    assert uplink.gateways[0].time is None
    assert uplink.warnings == (
        "uplink_message.rx_metadata[0].time: "
        "not an RFC 3339 time (the string 'yesterday'), left out",
    )


def test_bad_gateway_eui_is_dropped_with_a_warning() -> None:
    message = uplink_message()
    message["uplink_message"]["rx_metadata"][0]["gateway_ids"]["eui"] = "zz"
    uplink = parse_tts_uplink(message)
    assert uplink.gateways[0].gateway_eui is None
    assert "gateway_ids.eui" in uplink.warnings[0]


def test_packet_broker_gateway_eui() -> None:
    message = uplink_message()
    message["uplink_message"]["rx_metadata"] = [
        {
            "gateway_ids": {"gateway_id": "packetbroker"},
            "packet_broker": {
                "forwarder_net_id": "000013",
                "forwarder_gateway_eui": "AA555A0000000101",
            },
            "rssi": -120,
            "snr": -10,
        }
    ]
    (gateway,) = parse_tts_uplink(message).gateways
    assert (gateway.gateway_id, gateway.gateway_eui) == ("packetbroker", "AA555A0000000101")


def test_gateway_location_without_coordinates_is_no_location() -> None:
    message = uplink_message()
    message["uplink_message"]["rx_metadata"][0]["location"] = {"altitude": 12}
    assert parse_tts_uplink(message).gateways[0].location is None


def test_not_an_uplink() -> None:
    with pytest.raises(UplinkError) as caught:
        parse_tts_uplink({"end_device_ids": {"device_id": "x"}, "join_accept": {}})
    assert caught.value.reason == "unsupported-event"
    with pytest.raises(UplinkError) as caught:
        parse_tts_uplink({"end_device_ids": {"device_id": "x"}})
    assert caught.value.reason == "missing-field"
    with pytest.raises(UplinkError) as caught:
        parse_tts_uplink({"end_device_ids": {"device_id": "x"}}, topic="v3/app/devices/x/up")
    assert (caught.value.reason, caught.value.field) == ("missing-field", "uplink_message")


def test_several_messages_in_one_body() -> None:
    with pytest.raises(UplinkError) as caught:
        parse_tts_message({"uplink_message": {}, "join_accept": {}})
    assert caught.value.reason == "malformed-message"


def test_uplink_is_frozen_and_round_trips_through_json() -> None:
    uplink = parse_tts_uplink(uplink_message(), topic=TOPIC)
    with pytest.raises(ValueError, match="frozen"):
        uplink.f_cnt = 1  # type: ignore[misc]
    assert Uplink.model_validate_json(uplink.model_dump_json()) == uplink


JOIN: dict[str, Any] = {
    "end_device_ids": {
        "device_id": "th-0042",
        "application_ids": {"application_id": "city-sensors"},
        "dev_eui": "70B3D57ED0001234",
        "join_eui": "70B3D57ED0000000",
        "dev_addr": "260B5678",
    },
    "correlation_ids": ["as:up:01HJOIN"],
    "received_at": "2024-05-02T09:00:00.5Z",
    "join_accept": {"session_key_id": "AYdmtE7Q3a0=", "received_at": "2024-05-02T09:00:00.4Z"},
}


def test_join() -> None:
    join = parse_tts_join(JOIN, topic="v3/city-sensors@stadt/devices/th-0042/join")
    assert join == JoinEvent(
        source="tts",
        dev_eui="70B3D57ED0001234",
        device_id="th-0042",
        application_id="city-sensors",
        tenant="stadt",
        join_eui="70B3D57ED0000000",
        dev_addr="260B5678",
        received_at=datetime(2024, 5, 2, 9, 0, 0, 500000, tzinfo=UTC),
        correlation_ids=("as:up:01HJOIN",),
    )
    assert parse_tts_message(JOIN) == parse_tts_join(JOIN)


LOCATION: dict[str, Any] = {
    "end_device_ids": {
        "device_id": "tracker-7",
        "application_ids": {"application_id": "fleet"},
        "dev_eui": "70B3D57ED0007777",
    },
    "correlation_ids": ["as:loc:01H"],
    "received_at": "2024-05-02T11:00:00Z",
    "location_solved": {
        "service": "lora-cloud-device-management-v1-gnss",
        "location": {
            "latitude": 52.52,
            "longitude": 13.405,
            "altitude": 34,
            "accuracy": 12,
            "source": "SOURCE_GPS",
        },
    },
}


def test_location_solved() -> None:
    event = parse_tts_location(LOCATION, topic="v3/fleet/devices/tracker-7/location/solved")
    assert isinstance(event, LocationEvent)
    assert event.service == "lora-cloud-device-management-v1-gnss"
    assert (event.location.latitude, event.location.longitude) == (52.52, 13.405)
    assert (event.location.accuracy, event.location.source) == (12, "SOURCE_GPS")
    assert event.received_at == datetime(2024, 5, 2, 11, tzinfo=UTC)
    assert event.tenant is None


def test_location_solved_without_coordinates() -> None:
    message = copy.deepcopy(LOCATION)
    message["location_solved"]["location"] = {"accuracy": 5}
    with pytest.raises(UplinkError) as caught:
        parse_tts_location(message)
    assert (caught.value.reason, caught.value.field) == (
        "missing-field",
        "location_solved.location",
    )


def _downlink(key: str, inner: dict[str, Any]) -> dict[str, Any]:
    return {
        "end_device_ids": {
            "device_id": "valve-1",
            "application_ids": {"application_id": "water"},
            "dev_eui": "70B3D57ED0000101",
        },
        "correlation_ids": ["as:downlink:01H"],
        "received_at": "2024-05-02T12:00:00Z",
        key: inner,
    }


DOWNLINK: dict[str, Any] = {
    "f_port": 15,
    "f_cnt": 8,
    "frm_payload": "vu8=",
    "confirmed": True,
    "priority": "NORMAL",
}


@pytest.mark.parametrize(
    ("kind", "key", "acknowledged"),
    [
        ("queued", "downlink_queued", None),
        ("sent", "downlink_sent", None),
        ("ack", "downlink_ack", True),
        ("nack", "downlink_nack", False),
    ],
)
def test_downlink_events(kind: str, key: str, acknowledged: bool | None) -> None:
    topic = f"v3/water/devices/valve-1/down/{kind}"
    event = parse_tts_downlink_event(_downlink(key, DOWNLINK), topic=topic)
    assert isinstance(event, DownlinkEvent)
    assert (event.kind, event.f_port, event.f_cnt, event.payload) == (kind, 15, 8, b"\xbe\xef")
    assert (event.confirmed, event.acknowledged) == (True, acknowledged)
    assert event.dev_eui == "70B3D57ED0000101"


def test_downlink_failed_says_why() -> None:
    failed = {
        "downlink": DOWNLINK,
        "error": {
            "namespace": "pkg/networkserver",
            "name": "f_cnt_too_low",
            "message_format": "FCnt too low",
        },
    }
    event = parse_tts_message(_downlink("downlink_failed", failed))
    assert isinstance(event, DownlinkEvent)
    assert event.kind == "failed"
    assert event.error == "pkg/networkserver:f_cnt_too_low: FCnt too low"
    assert event.f_port == 15


def test_service_data_is_unsupported() -> None:
    message = _downlink("service_data", {"service": "lora-cloud", "data": {}})
    with pytest.raises(UplinkError) as caught:
        parse_tts_message(message, topic="v3/water/devices/valve-1/service/data")
    assert caught.value.reason == "unsupported-event"


def test_message_without_device_is_refused_by_the_message_parser() -> None:
    with pytest.raises(UplinkError) as caught:
        parse_tts_message({"uplink_message": {"f_port": 1, "frm_payload": "AQ=="}})
    assert caught.value.reason == "missing-device"
    uplink = parse_tts_message(
        {"uplink_message": {"f_port": 1, "frm_payload": "AQ=="}},
        path_vars={"devEUI": "0102030405060708"},
    )
    assert isinstance(uplink, Uplink)
    assert uplink.dev_eui == "0102030405060708"


def test_caller_event_must_agree() -> None:
    with pytest.raises(UplinkError) as caught:
        parse_tts_message(uplink_message(), event="join")
    assert caught.value.reason == "topic-mismatch"
