"""The network-server codec and the flattening rules it shares with the others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.codecs import (
    MAX_DEPTH,
    CayenneLPPCodec,
    CodecError,
    NetworkServerCodec,
    flatten,
)
from agents.lorawan import Uplink, parse_chirpstack_v3_uplink, parse_tts_uplink


def _uplink(**fields: Any) -> Uplink:
    return Uplink(source="tts", dev_eui="70B3D57ED0001234", f_port=1, **fields)


def test_flatten_rules() -> None:
    assert flatten(
        {
            "temperature": 21.5,
            "ok": True,
            "label": "north",
            "missing": None,
            "air": {"co2": 612, "pm": {"pm25": 3.1}},
            "readings": [1, {"x": 2}],
            "empty": {},
            "nothing": [],
            "dotted.key": 1,
        }
    ) == {
        "temperature": 21.5,
        "ok": True,
        "label": "north",
        "missing": None,
        "air.co2": 612,
        "air.pm.pm25": 3.1,
        "readings.0": 1,
        "readings.1.x": 2,
        "dotted.key": 1,
    }


def test_flatten_refuses_what_is_not_json() -> None:
    with pytest.raises(CodecError) as caught:
        flatten({"when": {1, 2}})
    assert (caught.value.reason, caught.value.message) == (
        "bad-output",
        "when: set is not a JSON value",
    )
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(MAX_DEPTH + 1):
        cursor["a"] = {}
        cursor = cursor["a"]
    cursor["value"] = 1
    with pytest.raises(CodecError, match=f"nested deeper than {MAX_DEPTH}"):
        flatten(deep)


def test_decoded_object_is_flattened_with_its_warnings() -> None:
    uplink = _uplink(
        decoded={"temperature": 21.5, "battery": {"voltage": 3.6}},
        decoded_warnings=("low battery",),
    )
    measurements = NetworkServerCodec().decode(b"", f_port=1, uplink=uplink)
    assert measurements.data == {"temperature": 21.5, "battery.voltage": 3.6}
    assert measurements.warnings == ("low battery",)


def test_tts_data_formats_vector(shared_dir: Path) -> None:
    message = json.loads(
        (shared_dir / "vectors" / "uplinks" / "tts_docs_data_formats_uplink.fixed.json").read_text()
    )
    uplink = parse_tts_uplink(message)
    measurements = NetworkServerCodec().decode(uplink.payload or b"", f_port=0, uplink=uplink)
    assert measurements.data == {"temperature": 1.0, "luminosity": 0.64}


def test_chirpstack_v3_object_json_vector(shared_dir: Path) -> None:
    message = json.loads(
        (shared_dir / "vectors" / "uplinks" / "cs3_docs_event_up_protobufjson.json").read_text()
    )
    uplink = parse_chirpstack_v3_uplink(message)
    measurements = NetworkServerCodec().decode(b"", f_port=5, uplink=uplink)
    assert measurements.data == {"temperatureSensor": 25, "humiditySensor": 32}


def test_cayennelpp_dialect_equals_decoding_the_bytes(shared_dir: Path) -> None:
    vectors = json.loads((shared_dir / "vectors" / "cayennelpp.json").read_text())
    codec = NetworkServerCodec({"dialect": "cayennelpp"})
    local = CayenneLPPCodec()
    for vector in vectors["vectors"]:
        decoded = vector.get("tts_decoded_payload_verbatim") or vector["ttn_style"]
        payload = bytes.fromhex(vector["hex"])
        uplink = _uplink(payload=payload, decoded=decoded)
        assert codec.decode(payload, f_port=1, uplink=uplink) == local.decode(payload, f_port=1)


def test_normalized_payload() -> None:
    one = _uplink(normalized_payload=[{"air": {"temperature": 21.5, "relativeHumidity": 54}}])
    codec = NetworkServerCodec({"use": "normalized"})
    assert codec.decode(b"", f_port=1, uplink=one).data == {
        "air.temperature": 21.5,
        "air.relativeHumidity": 54,
    }
    two = _uplink(normalized_payload=[{"air": {"temperature": 21.5}}, {"air": {"temperature": 22}}])
    assert codec.decode(b"", f_port=1, uplink=two).data == {
        "0.air.temperature": 21.5,
        "1.air.temperature": 22,
    }


def test_nothing_decoded() -> None:
    with pytest.raises(CodecError) as caught:
        NetworkServerCodec().decode(b"\x01", f_port=1, uplink=_uplink())
    assert caught.value.reason == "no-decoded-object"
    assert "70B3D57ED0001234" in caught.value.message
    with pytest.raises(CodecError) as caught:
        NetworkServerCodec({"use": "normalized"}).decode(b"", f_port=1, uplink=_uplink())
    assert caught.value.reason == "no-decoded-object"
    with pytest.raises(CodecError) as caught:
        NetworkServerCodec().decode(b"", f_port=1)
    assert caught.value.reason == "no-decoded-object"


@pytest.mark.parametrize("config", [{"use": "object"}, {"dialect": "lpp"}, {"flatten": False}])
def test_bad_config(config: dict[str, Any]) -> None:
    with pytest.raises(CodecError) as caught:
        NetworkServerCodec(config)
    assert caught.value.reason == "bad-config"
    assert next(iter(config)) in caught.value.message
