"""The Things Stack and ChirpStack v4 parsers build their `Uplink` without a second validation
(`from_checked`): the result must be exactly what `Uplink.model_validate` makes of the same
values.

Each case parses a message, then validates the uplink's own values again through pydantic and
compares: equal values, the same fields set (nested models too), the same repr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from agents.lorawan import (
    GatewayReception,
    Location,
    Uplink,
    UplinkError,
    parse_chirpstack_v4_uplink,
    parse_message,
    parse_tts_uplink,
)
from agents.lorawan._checked import from_checked


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in value.model_fields_set}
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    return value


def _assert_same_as_validated(uplink: Uplink) -> None:
    validated = Uplink.model_validate(_plain(uplink))
    assert validated == uplink
    assert repr(validated) == repr(uplink)
    assert validated.model_fields_set == uplink.model_fields_set
    assert list(validated.__dict__) == list(uplink.__dict__)
    for mine, theirs in zip(uplink.gateways, validated.gateways, strict=True):
        assert type(mine) is GatewayReception
        assert mine.model_fields_set == theirs.model_fields_set
        assert list(mine.__dict__) == list(theirs.__dict__)
        if mine.location is not None:
            assert theirs.location is not None
            assert mine.location.model_fields_set == theirs.location.model_fields_set
    if uplink.device_location is not None:
        assert validated.device_location is not None
        assert uplink.device_location.model_fields_set == (
            validated.device_location.model_fields_set
        )
    with pytest.raises(ValidationError):  # still frozen
        uplink.f_cnt = 1  # type: ignore[misc]


def _vectors(shared: Path, ns: str) -> list[tuple[str | None, bytes]]:
    index = json.loads((shared / "vectors" / "uplinks" / "index.json").read_text())
    return [
        (vector["topic"], (shared / "vectors" / vector["file"]).read_bytes())
        for vector in index["uplinks"]
        if vector["expected_normalized"]["ns"] == ns
    ]


def test_the_documented_uplinks_equal_their_validated_selves(shared_dir: Path) -> None:
    tts = _vectors(shared_dir, "tts_v3")
    chirpstack = _vectors(shared_dir, "chirpstack_v4")
    assert tts
    assert chirpstack
    for topic, body in tts:
        for with_topic in (None, topic):
            _assert_same_as_validated(parse_tts_uplink(orjson.loads(body), topic=with_topic))
    for topic, body in chirpstack:
        for with_topic in (None, topic):
            uplink = parse_chirpstack_v4_uplink(orjson.loads(body), topic=with_topic)
            _assert_same_as_validated(uplink)


def test_chirpstack_gateways_with_bridge_locations_equal_their_validated_selves() -> None:
    body = {
        "deviceInfo": {"devEui": "70b3d57ed0000001", "tags": {"floor": "2"}},
        "fPort": 1,
        "data": "AQI=",
        "time": "2024-05-01T10:00:00.5+00:00",
        "rxInfo": [
            {"gatewayId": "0080000000000001", "rssi": -80, "snr": 5.5, "nsTime": "bad"},
            {
                "gatewayId": "helium-gw",
                "metadata": {"gateway_lat": "52.1", "gateway_long": "13.2", "gateway_alt": "40"},
                "gwTime": "2024-05-01T10:00:00Z",
            },
            {"gatewayId": "gw-3", "location": {"latitude": 91, "longitude": 1}},
        ],
        "txInfo": {"frequency": 868100000, "modulation": {"lora": {"spreadingFactor": 7}}},
    }
    _assert_same_as_validated(parse_chirpstack_v4_uplink(body))


def _message(**up: Any) -> dict[str, Any]:
    uplink: dict[str, Any] = {"f_port": 2, "f_cnt": 7, "frm_payload": "AQI="}
    uplink.update(up)
    return {
        "end_device_ids": {
            "device_id": "dev-1",
            "application_ids": {"application_id": "city"},
            "dev_eui": "70b3d57ed0000001",
            "dev_addr": "260b1234",
        },
        "received_at": "2024-05-01T10:00:00.123456789+02:00",
        "uplink_message": uplink,
    }


CASES: dict[str, dict[str, Any]] = {
    "minimal": _message(),
    "frame zero": {
        "end_device_ids": {"device_id": "dev-1", "dev_eui": "70B3D57ED0000001"},
        "uplink_message": {"frm_payload": ""},
    },
    "gateways with locations and odd times": _message(
        rx_metadata=[
            {
                "gateway_ids": {"gateway_id": "gw-1", "eui": "00-80-00-00-A0-00-1F-3C"},
                "time": "2024-05-01T08:00:00.5Z",
                "received_at": "not a time",
                "rssi": -101,
                "snr": "7.5",
                "location": {"latitude": 52.5, "longitude": 13.4, "source": "SOURCE_REGISTRY"},
            },
            {
                "gateway_ids": {"gateway_id": "gw-2", "eui": "bad"},
                "packet_broker": {"forwarder_gateway_eui": "0080000000000001"},
                "channel_rssi": -90.5,
                "location": {"latitude": 95, "longitude": 13},
            },
            {"gateway_ids": {"gateway_id": "gw-3"}, "location": {"latitude": 1}},
        ],
        settings={
            "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 9}},
            "coding_rate": "4/5",
            "frequency": "868300000",
            "data_rate_index": 3,
            "time": "2024-05-01T08:00:00Z",
        },
    ),
    "decoded, normalized, device location, tags": _message(
        frm_payload="not base64!",
        decoded_payload={"temperature": 21.5, "nested": {"a": [1, 2]}},
        decoded_payload_warnings=["low battery"],
        normalized_payload=[{"air": {"temperature": 21.5}}],
        locations={"user": {"latitude": 48.1, "longitude": 11.6, "altitude": 520, "accuracy": 3}},
        version_ids={"brand_id": "acme", "model_id": "t1"},
        attributes={"floor": 3, "indoor": True, "room": "B12"},
        confirmed=True,
        network_ids={"tenant_id": "ttn"},
    ),
    "fsk": _message(settings={"data_rate": {"fsk": {"bit_rate": 50000}}}),
    "lr-fhss": _message(settings={"data_rate": {"lrfhss": {"modulation_type": 0}}}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_parsed_uplinks_equal_their_validated_selves(name: str) -> None:
    body = orjson.dumps({**CASES[name], "simulated": name == "minimal"})
    event = parse_message("tts", "v3/city@tenant-1/devices/dev-1/up", body)
    assert isinstance(event, Uplink)
    _assert_same_as_validated(event)


def test_an_out_of_range_value_still_fails_with_the_field_named() -> None:
    body = orjson.dumps(_message(f_port=256))
    with pytest.raises(UplinkError) as caught:
        parse_message("tts", None, body)
    assert caught.value.field == "uplink_message.f_port"


def test_from_checked_refuses_what_the_model_does_not_have() -> None:
    with pytest.raises(ValidationError, match="extra"):
        from_checked(Location, {"latitude": 1.0, "longitude": 2.0, "height": 3.0})
    with pytest.raises(ValidationError, match="longitude"):
        from_checked(Location, {"latitude": 1.0})
    built = from_checked(Location, {"latitude": 1.0, "longitude": 2.0})
    assert built == Location(latitude=1.0, longitude=2.0)
    assert built.model_fields_set == {"latitude", "longitude"}
    uplink = from_checked(Uplink, {"source": "tts"})
    assert uplink == Uplink(source="tts")
    assert uplink.tags == {}
    assert uplink.tags is not from_checked(Uplink, {"source": "tts"}).tags  # a new one each
