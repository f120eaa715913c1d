"""ChirpStack v4 and v3 events: uplinks (both v3 marshalers), joins, status, locations, acks."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from agents.lorawan import (
    DownlinkEvent,
    JoinEvent,
    LocationEvent,
    StatusEvent,
    Uplink,
    UplinkError,
    parse_chirpstack_v3_message,
    parse_chirpstack_v3_uplink,
    parse_chirpstack_v4_message,
    parse_chirpstack_v4_uplink,
)

APP = "0f3c6a1e-7e1b-4c59-9d43-5b5d8f2a9c10"
TOPIC = f"application/{APP}/device/a840414bf185f365/event/up"

DEVICE_INFO = {
    "tenantId": "6b8a1b5e-0000-4000-8000-000000000001",
    "tenantName": "Stadtwerke",
    "applicationId": APP,
    "applicationName": "Luftqualitaet",
    "deviceProfileId": "c1b2a3d4-0000-4000-8000-000000000002",
    "deviceProfileName": "Dragino LHT65",
    "deviceName": "lht65-marktplatz",
    "devEui": "a840414bf185f365",
    "tags": {"district": "mitte"},
}


def v4_up(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "deduplicationId": "5e1d2f0a-1111-4222-8333-944455556666",
        "time": "2024-05-02T10:15:00.123456789+00:00",
        "deviceInfo": copy.deepcopy(DEVICE_INFO),
        "devAddr": "01f2a3b4",
        "adr": True,
        "dr": 5,
        "fCnt": 77,
        "fPort": 2,
        "confirmed": True,
        "data": "y6wHnAEXAAAAAAA=",
        "object": {"TempC_SHT": 19.8, "Hum_SHT": 61.5, "BatV": 3.044},
        "rxInfo": [
            {
                "gatewayId": "0016c001f153a14c",
                "uplinkId": 16045,
                "gwTime": "2024-05-02T10:14:59.990000Z",
                "nsTime": "2024-05-02T10:15:00.050000Z",
                "rssi": -101,
                "snr": 8.2,
                "location": {"latitude": 53.55, "longitude": 9.99, "altitude": 12},
                "metadata": {"region_config_id": "eu868"},
            },
            {
                "gatewayId": "3b5a8c7d9e0f1a2b",
                "uplinkId": 2,
                "rssi": -118,
                "snr": -4,
                "location": {},
                "metadata": {
                    "gateway_lat": "53.5511",
                    "gateway_long": "9.9937",
                    "gateway_name": "quiet-paisley-hawk",
                    "network": "helium",
                },
            },
        ],
        "txInfo": {
            "frequency": 868300000,
            "modulation": {
                "lora": {"bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}
            },
        },
    }
    message.update(overrides)
    return message


def test_v4_uplink() -> None:
    uplink = parse_chirpstack_v4_uplink(v4_up(), topic=TOPIC)
    assert uplink.source == "chirpstack-v4"
    assert uplink.dev_eui == "A840414BF185F365"
    assert (uplink.device_id, uplink.application_id) == ("lht65-marktplatz", APP)
    assert uplink.tenant == "6b8a1b5e-0000-4000-8000-000000000001"
    assert (uplink.device_profile, uplink.tags) == ("Dragino LHT65", {"district": "mitte"})
    assert uplink.dev_addr == "01F2A3B4"
    assert (uplink.f_port, uplink.f_cnt, uplink.confirmed, uplink.adr) == (2, 77, True, True)
    assert uplink.payload == bytes.fromhex("CBAC079C011700000000 00".replace(" ", ""))
    assert uplink.decoded == {"TempC_SHT": 19.8, "Hum_SHT": 61.5, "BatV": 3.044}
    assert uplink.received_at == datetime(2024, 5, 2, 10, 15, 0, 123456, tzinfo=UTC)
    assert uplink.gateway_time == datetime(2024, 5, 2, 10, 14, 59, 990000, tzinfo=UTC)
    assert uplink.deduplication_id == "5e1d2f0a-1111-4222-8333-944455556666"
    assert (uplink.frequency, uplink.data_rate, uplink.spreading_factor) == (868300000, 5, 7)
    assert (uplink.bandwidth, uplink.coding_rate, uplink.modulation) == (125000, "CR_4_5", "lora")
    first, helium = uplink.gateways
    assert (first.gateway_id, first.gateway_eui) == ("0016c001f153a14c", "0016C001F153A14C")
    assert first.received_at == datetime(2024, 5, 2, 10, 15, 0, 50000, tzinfo=UTC)
    assert first.location is not None
    assert first.location.altitude == 12
    # `location: {}` is no location; the Helium bridge's string coordinates are used instead.
    assert helium.location is not None
    assert (helium.location.latitude, helium.location.longitude) == (53.5511, 9.9937)
    assert helium.time is None
    assert uplink.best_reception is first
    assert uplink.warnings == ()


def test_v4_early_release_omits_defaults() -> None:
    message = v4_up()
    for key in ("fCnt", "confirmed", "adr", "object", "data", "dr"):
        del message[key]
    uplink = parse_chirpstack_v4_uplink(message)
    assert (uplink.f_cnt, uplink.confirmed, uplink.adr) == (0, False, False)
    assert (uplink.payload, uplink.decoded, uplink.data_rate) == (b"", None, None)


def test_v4_helium_metadata_that_is_not_a_number() -> None:
    message = v4_up()
    message["rxInfo"][1]["metadata"]["gateway_lat"] = "north"
    uplink = parse_chirpstack_v4_uplink(message)
    assert uplink.gateways[1].location is None
    assert "gateway_lat" in uplink.warnings[0]


def test_v4_topic_must_agree() -> None:
    with pytest.raises(UplinkError) as caught:
        parse_chirpstack_v4_uplink(
            v4_up(), topic=f"application/{APP}/device/a840414bf185f366/event/up"
        )
    assert (caught.value.reason, caught.value.field) == ("topic-mismatch", "deviceInfo.devEui")
    with pytest.raises(UplinkError) as caught:
        parse_chirpstack_v4_uplink(
            v4_up(), topic="application/other/device/a840414bf185f365/event/up"
        )
    assert caught.value.reason == "topic-mismatch"


def test_v4_dev_eui_from_the_topic_when_the_body_has_none() -> None:
    message = v4_up()
    del message["deviceInfo"]["devEui"]
    assert parse_chirpstack_v4_uplink(message, topic=TOPIC).dev_eui == "A840414BF185F365"
    with pytest.raises(UplinkError) as caught:
        parse_chirpstack_v4_uplink(message)
    assert (caught.value.reason, caught.value.field) == ("missing-dev-eui", "deviceInfo.devEui")


def test_v4_bad_base64() -> None:
    message = v4_up(data="%%%")
    del message["object"]
    with pytest.raises(UplinkError) as caught:
        parse_chirpstack_v4_uplink(message)
    assert (caught.value.reason, caught.value.field) == ("bad-base64", "data")


def test_v4_wrong_topic_event() -> None:
    with pytest.raises(UplinkError) as caught:
        parse_chirpstack_v4_uplink(v4_up(), topic=TOPIC.replace("/up", "/join"))
    assert caught.value.reason == "unsupported-event"


def _v4_event(event: str, body: dict[str, Any]) -> Any:
    message = {"deviceInfo": copy.deepcopy(DEVICE_INFO), "time": "2024-05-02T09:00:00Z", **body}
    return parse_chirpstack_v4_message(message, topic=TOPIC.replace("/up", f"/{event}"))


def test_v4_join() -> None:
    join = _v4_event("join", {"deduplicationId": "d-1", "devAddr": "01f2a3b5"})
    assert isinstance(join, JoinEvent)
    assert (join.dev_eui, join.dev_addr, join.deduplication_id) == (
        "A840414BF185F365",
        "01F2A3B5",
        "d-1",
    )
    assert join.received_at == datetime(2024, 5, 2, 9, tzinfo=UTC)
    assert join.device_profile == "Dragino LHT65"


def test_v4_status() -> None:
    status = _v4_event("status", {"margin": 7, "batteryLevel": 87.5})
    assert isinstance(status, StatusEvent)
    assert (status.margin, status.battery_level, status.external_power) == (7, 87.5, False)
    mains = _v4_event("status", {"margin": 3, "externalPowerSource": True})
    assert isinstance(mains, StatusEvent)
    assert (mains.battery_level, mains.external_power) == (None, True)


def test_v4_location() -> None:
    event = _v4_event(
        "location",
        {"location": {"latitude": 53.5, "longitude": 10.0, "source": "GEO_RESOLVER_TDOA"}},
    )
    assert isinstance(event, LocationEvent)
    assert event.location.source == "GEO_RESOLVER_TDOA"


def test_v4_ack_and_txack() -> None:
    ack = _v4_event("ack", {"queueItemId": "q-1", "acknowledged": True, "fCntDown": 12})
    assert isinstance(ack, DownlinkEvent)
    assert (ack.kind, ack.acknowledged, ack.f_cnt, ack.queue_item_id) == ("ack", True, 12, "q-1")
    nack = _v4_event("ack", {"queueItemId": "q-2", "fCntDown": 13})
    assert isinstance(nack, DownlinkEvent)
    assert nack.acknowledged is False
    tx = _v4_event("txack", {"queueItemId": "q-3", "fCntDown": 14, "gatewayId": "0016c001f153a14c"})
    assert isinstance(tx, DownlinkEvent)
    assert (tx.kind, tx.f_cnt) == ("txack", 14)


def test_v4_log_and_integration_are_unsupported() -> None:
    for event in ("log", "integration"):
        with pytest.raises(UplinkError) as caught:
            _v4_event(event, {"level": "ERROR", "code": "UPLINK_CODEC"})
        assert caught.value.reason == "unsupported-event"


def test_v4_http_integration_names_the_event() -> None:
    uplink = parse_chirpstack_v4_message(v4_up(), event="up")
    assert isinstance(uplink, Uplink)
    with pytest.raises(UplinkError) as caught:
        parse_chirpstack_v4_message(v4_up())
    assert caught.value.reason == "missing-field"
    assert "?event=" in caught.value.message
    with pytest.raises(UplinkError) as caught:
        parse_chirpstack_v4_message(v4_up(), topic=TOPIC, event="join")
    assert caught.value.reason == "topic-mismatch"


# ChirpStack v3 ---------------------------------------------------------------------------------

V3_JSON = {
    "applicationID": "123",
    "applicationName": "temperature-sensor",
    "deviceName": "garden-sensor",
    "devEUI": "0202020202020202",
    "rxInfo": [
        {
            "gatewayID": "0303030303030303",
            "name": "rooftop-gateway",
            "time": "2016-11-25T16:24:37.295915988Z",
            "rssi": -60,
            "loRaSNR": 7,
            "location": {"latitude": 52.3740364, "longitude": 4.9144401, "altitude": 10.5},
        }
    ],
    "txInfo": {"frequency": 868100000, "dr": 5},
    "adr": False,
    "fCnt": 10,
    "fPort": 5,
    "data": "AQID",
    "object": {"temperatureSensor": {"1": 25}, "humiditySensor": {"1": 32}},
    "tags": {"key": "value"},
}


def test_v3_json_marshaler() -> None:
    uplink = parse_chirpstack_v3_uplink(
        V3_JSON, topic="application/123/device/0202020202020202/event/up"
    )
    assert uplink.source == "chirpstack-v3"
    assert (uplink.dev_eui, uplink.device_id, uplink.application_id) == (
        "0202020202020202",
        "garden-sensor",
        "123",
    )
    assert (uplink.f_port, uplink.f_cnt, uplink.payload) == (5, 10, b"\x01\x02\x03")
    assert uplink.decoded == {"temperatureSensor": {"1": 25}, "humiditySensor": {"1": 32}}
    assert (uplink.frequency, uplink.data_rate, uplink.spreading_factor) == (868100000, 5, None)
    # No network-server time in v3 events: the gateway time stands in.
    assert (
        uplink.received_at
        == uplink.gateway_time
        == datetime(2016, 11, 25, 16, 24, 37, 295915, tzinfo=UTC)
    )
    (gateway,) = uplink.gateways
    assert (gateway.gateway_id, gateway.gateway_eui, gateway.rssi, gateway.snr) == (
        "0303030303030303",
        "0303030303030303",
        -60,
        7,
    )


def test_v3_legacy_rx_topic_and_published_at() -> None:
    message = {**V3_JSON, "publishedAt": "2016-11-25T16:24:37.400Z"}
    uplink = parse_chirpstack_v3_uplink(message, topic="application/123/device/0202020202020202/rx")
    assert uplink.received_at == datetime(2016, 11, 25, 16, 24, 37, 400000, tzinfo=UTC)


def test_v3_numeric_application_id() -> None:
    message = {**V3_JSON, "applicationID": 123}
    assert parse_chirpstack_v3_uplink(message).application_id == "123"


def test_v3_protobuf_json_object_json_that_is_not_json() -> None:
    message = {
        "applicationID": "123",
        "devEUI": "AgICAgICAgI=",
        "fPort": 5,
        "data": "AQ==",
        "objectJSON": "{not json",
        "confirmedUplink": True,
        "devAddr": "AAGJRA==",
        "txInfo": {
            "frequency": 868100000,
            "modulation": "LORA",
            "loRaModulationInfo": {"bandwidth": 250, "spreadingFactor": 7, "codeRate": "4/5"},
        },
    }
    uplink = parse_chirpstack_v3_uplink(message)
    assert uplink.decoded is None
    assert uplink.warnings == ("objectJSON: not JSON, left out",)
    assert (uplink.payload, uplink.confirmed, uplink.dev_addr) == (b"\x01", True, "00018944")
    assert (uplink.bandwidth, uplink.f_cnt) == (250000, 0)


def test_v3_bad_dev_eui_and_missing() -> None:
    with pytest.raises(UplinkError) as caught:
        parse_chirpstack_v3_uplink({**V3_JSON, "devEUI": "AgICAgIC"})
    assert (caught.value.reason, caught.value.field) == ("bad-dev-eui", "devEUI")
    message = dict(V3_JSON)
    del message["devEUI"]
    with pytest.raises(UplinkError) as caught:
        parse_chirpstack_v3_uplink(message)
    assert caught.value.reason == "missing-dev-eui"


def test_v3_other_events() -> None:
    base = {"applicationID": "123", "deviceName": "garden-sensor", "devEUI": "0202020202020202"}
    topic = "application/123/device/0202020202020202/event/"
    join = parse_chirpstack_v3_message(
        {**base, "devAddr": "06a8d5b2", "rxInfo": V3_JSON["rxInfo"]}, topic=topic + "join"
    )
    assert isinstance(join, JoinEvent)
    assert (join.dev_addr, join.received_at) == (
        "06A8D5B2",
        datetime(2016, 11, 25, 16, 24, 37, 295915, tzinfo=UTC),
    )
    status = parse_chirpstack_v3_message(
        {**base, "margin": 6, "batteryLevelUnavailable": True}, topic=topic + "status"
    )
    assert isinstance(status, StatusEvent)
    assert (status.battery_level, status.battery_unavailable) == (None, True)
    location = parse_chirpstack_v3_message(
        {**base, "location": {"latitude": 52.1, "longitude": 4.2, "accuracy": 30}},
        topic=topic + "location",
    )
    assert isinstance(location, LocationEvent)
    assert location.location.accuracy == 30
    ack = parse_chirpstack_v3_message(
        {**base, "acknowledged": True, "fCnt": 3},
        topic="application/123/device/0202020202020202/ack",
    )
    assert isinstance(ack, DownlinkEvent)
    assert (ack.kind, ack.acknowledged, ack.f_cnt) == ("ack", True, 3)
    with pytest.raises(UplinkError) as caught:
        parse_chirpstack_v3_message({**base, "type": "UPLINK_CODEC"}, topic=topic + "error")
    assert caught.value.reason == "unsupported-event"


def test_not_an_object() -> None:
    with pytest.raises(UplinkError) as caught:
        parse_chirpstack_v4_uplink([1, 2])  # type: ignore[arg-type]
    assert caught.value.reason == "malformed-json"
