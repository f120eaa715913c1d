"""CayenneLPP against shared/vectors/cayennelpp.json, plus the encoder and the alias table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.codecs import (
    CAYENNE_ALIASES,
    LPP_TYPES,
    CayenneLPPCodec,
    Codec,
    CodecError,
    LppReading,
    Measurements,
    canonical_cayenne_name,
    decode_cayennelpp,
    decode_cayennelpp_values,
    encode_cayennelpp,
    encode_cayennelpp_measurements,
    flatten,
    normalize_cayenne_object,
)


@pytest.fixture(scope="module")
def vectors(shared_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((shared_dir / "vectors" / "cayennelpp.json").read_text())
    return document


def _resolution(table: dict[int, dict[str, Any]], type_byte: int, part: str | None) -> float:
    if part in ("latitude", "longitude"):
        return 0.0001
    if part == "altitude" and table[type_byte]["name"] == "gps":
        return 0.01
    resolution: float = table[type_byte]["resolution"]
    return resolution


def _close(got: object, want: object, resolution: float) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and set(got) == set(want)
    assert isinstance(got, int | float)
    assert isinstance(want, int | float)
    return abs(got - want) < resolution / 2


def test_type_table_matches_the_vectors(vectors: dict[str, Any]) -> None:
    table = {entry["type"]: entry for entry in vectors["type_table"]}
    assert set(table) == set(LPP_TYPES)
    for type_byte, entry in table.items():
        ours = LPP_TYPES[type_byte]
        assert (ours.name, ours.size, ours.signed, ours.ipso) == (
            entry["name"],
            entry["size"],
            entry["signed"],
            entry["ipso"],
        ), entry["name"]
        assert ours.resolution == entry["resolution"], entry["name"]


def test_every_vector_decodes_as_expected(vectors: dict[str, Any]) -> None:
    table = {entry["type"]: entry for entry in vectors["type_table"]}
    for vector in vectors["vectors"]:
        payload = bytes.fromhex(vector["hex"])
        readings = decode_cayennelpp(payload)
        assert len(readings) == len(vector["decoded"]), vector["hex"]
        for reading, want in zip(readings, vector["decoded"], strict=True):
            assert (reading.channel, reading.type, reading.name) == (
                want["channel"],
                want["type"],
                want["name"],
            )
            assert _close(reading.value, want["value"], _resolution(table, want["type"], None))
            if isinstance(want["value"], dict):
                for part, value in want["value"].items():
                    got = reading.value[part]  # type: ignore[index]
                    assert _close(got, value, _resolution(table, want["type"], part)), (
                        vector["hex"],
                        part,
                    )


def test_every_vector_gives_the_canonical_measurements(vectors: dict[str, Any]) -> None:
    codec = CayenneLPPCodec()
    for vector in vectors["vectors"]:
        measurements = codec.decode(bytes.fromhex(vector["hex"]), f_port=1)
        # Division by the resolution's inverse gives the shortest decimals: exact equality.
        assert measurements.data == flatten(vector["ttn_style"]), vector["hex"]
        assert measurements.warnings == ()


def test_base64_and_hex_of_the_vectors_agree(vectors: dict[str, Any]) -> None:
    import base64

    for vector in vectors["vectors"]:
        assert base64.b64decode(vector["base64"]) == bytes.fromhex(vector["hex"])


def test_error_vectors_are_rejected_with_a_reason(vectors: dict[str, Any]) -> None:
    reasons = {"unknown type": "unknown-type", "truncated": "truncated"}
    for vector in vectors["error_vectors"]:
        want = next(reason for key, reason in reasons.items() if key in vector["expect"])
        with pytest.raises(CodecError) as caught:
            CayenneLPPCodec().decode(bytes.fromhex(vector["hex"]), f_port=1)
        assert caught.value.reason == want, vector["hex"]


def test_error_messages_say_where() -> None:
    with pytest.raises(CodecError, match=r"byte 1: unknown type 0x24 \(36\) on channel 3"):
        decode_cayennelpp_values(bytes.fromhex("03240110"))
    with pytest.raises(CodecError, match="temperature on channel 5 needs 2 bytes, 1 left"):
        decode_cayennelpp_values(bytes.fromhex("0567FF"))
    with pytest.raises(CodecError, match="channel 7 has no type byte"):
        decode_cayennelpp_values(bytes.fromhex("0367011007"))


# The extended types the shared vectors do not exercise, computed from the type table.
HAND_VECTORS = [
    ("0164000003E8", {"generic_1": 1000}),
    ("0278 2A", {"percentage_2": 42}),
    ("0379FFF4", {"altitude_3": -12}),
    ("04820000 3039", {"distance_4": 12.345}),
    ("05856553F100", {"unixtime_5": 1700000000}),
    ("068E01", {"switch_6": 1}),
    ("0774FFFF", {"voltage_7": 655.35}),
    ("0875FFFF", {"current_8": 65.535}),
    ("096600 000001", {"presence_9": 0, "digital_in_0": 1}),
]


@pytest.mark.parametrize(("frame", "expected"), HAND_VECTORS)
def test_extended_types(frame: str, expected: dict[str, Any]) -> None:
    payload = bytes.fromhex(frame.replace(" ", ""))
    assert decode_cayennelpp_values(payload) == (expected, ())
    assert encode_cayennelpp_measurements(expected) == payload


def test_several_channels_of_one_type() -> None:
    frame = encode_cayennelpp([(1, "temperature", 20.5), (2, 103, -3.2), (3, "temperature", 0)])
    assert decode_cayennelpp_values(frame)[0] == {
        "temperature_1": 20.5,
        "temperature_2": -3.2,
        "temperature_3": 0.0,
    }


def test_same_channel_and_type_twice_keeps_the_last_with_a_warning() -> None:
    measurements = CayenneLPPCodec().decode(bytes.fromhex("016700C8016700D2"), f_port=1)
    assert measurements.data == {"temperature_1": 21.0}
    assert measurements.warnings == (
        "temperature_1: sent twice in one frame, the last value is kept",
    )


def test_empty_frame_has_no_values() -> None:
    assert CayenneLPPCodec().decode(b"", f_port=1) == Measurements({})


def test_measurements_read_as_a_mapping() -> None:
    codec: Codec = CayenneLPPCodec()
    measurements = codec.decode(bytes.fromhex("03670110056700FF"), f_port=8)
    assert measurements["temperature_3"] == 27.2
    assert "temperature_5" in measurements
    assert len(measurements) == 2
    assert dict(measurements) == {"temperature_3": 27.2, "temperature_5": 25.5}
    assert measurements.get("humidity") is None


def test_codec_refuses_options() -> None:
    with pytest.raises(CodecError) as caught:
        CayenneLPPCodec({"extended": False})
    assert caught.value.reason == "bad-config"
    assert "extended" in caught.value.message


# Names from other decoders -------------------------------------------------------------------


def test_tts_float32_output_normalises_to_the_codec_output(vectors: dict[str, Any]) -> None:
    found = 0
    for vector in vectors["vectors"]:
        verbatim = vector.get("tts_decoded_payload_verbatim")
        if verbatim is None:
            continue
        found += 1
        assert normalize_cayenne_object(verbatim) == flatten(vector["ttn_style"])
    assert found == 2


def test_ttn_style_objects_normalise_to_themselves(vectors: dict[str, Any]) -> None:
    for vector in vectors["vectors"]:
        assert normalize_cayenne_object(vector["ttn_style"]) == flatten(vector["ttn_style"])


def test_chirpstack_objects_keyed_by_channel() -> None:
    decoded = {
        "temperatureSensor": {"3": 27.200000762939453, "5": 25.5},
        "humiditySensor": {"2": 54},
        "barometer": {"0": 1017.5},
        "gpsLocation": {"1": {"latitude": 42.35180001, "longitude": -87.9094, "altitude": 10}},
        "digitalInput": {"4": 1},
    }
    assert normalize_cayenne_object(decoded) == {
        "temperature_3": 27.2,
        "temperature_5": 25.5,
        "relative_humidity_2": 54,
        "barometric_pressure_0": 1017.5,
        "gps_1.latitude": 42.3518,
        "gps_1.longitude": -87.9094,
        "gps_1.altitude": 10,
        "digital_in_4": 1,
    }


def test_library_names_and_bare_names() -> None:
    decoded = {
        "humidity_2": 54.0,
        "barometer_0": 1017.5,
        "time_1": 1700000000,
        "color_7": {"r": 24, "g": 239, "b": 15},
        "temperatureSensor": 25,
        "battery": 3.61,
        "rssi_1": -80,
    }
    assert normalize_cayenne_object(decoded) == {
        "relative_humidity_2": 54.0,
        "barometric_pressure_0": 1017.5,
        "unixtime_1": 1700000000,
        "colour_7.r": 24,
        "colour_7.g": 239,
        "colour_7.b": 15,
        "temperature": 25,
        "battery": 3.61,
        "rssi_1": -80,
    }


def test_alias_table_points_at_canonical_names() -> None:
    names = {lpp.name for lpp in LPP_TYPES.values()}
    assert set(CAYENNE_ALIASES.values()) <= names
    assert canonical_cayenne_name("relative_humidity") == "relative_humidity"
    assert canonical_cayenne_name("humiditySensor") == "relative_humidity"
    assert canonical_cayenne_name("co2") is None


# Encoder ------------------------------------------------------------------------------------


def test_encoder_rounds_to_the_resolution() -> None:
    # 42.3519 is one step above the C++ library's truncated 0x06765E: rounding keeps it.
    assert encode_cayennelpp([(1, "gps", (42.3519, -87.9094, 10))]).hex().upper() == (
        "018806765FF2960A0003E8"
    )
    assert encode_cayennelpp([LppReading(3, 103, "temperature", 27.2)]).hex() == "03670110"


@pytest.mark.parametrize(
    ("reading", "reason", "text"),
    [
        (
            (1, "temperature", 4000.0),
            "out-of-range",
            "temperature_1: 4000.0 is outside -3276.8..3276.7",
        ),
        ((1, "relative_humidity", -1), "out-of-range", "outside 0..127.5"),
        ((1, "temperature", "warm"), "bad-value", "expected a number"),
        ((1, "temperature", True), "bad-value", "expected a number"),
        ((1, "temperature", float("nan")), "bad-value", "expected a number"),
        ((1, "co2", 400), "bad-value", "'co2' is not a CayenneLPP type"),
        ((1, 99, 400), "bad-value", "99 is not a CayenneLPP type"),
        ((256, "temperature", 1.0), "bad-value", "channel must be 0..255"),
        ((1, "gps", {"latitude": 1.0}), "bad-value", "missing longitude, altitude"),
        ((1, "accelerometer", 1.0), "bad-value", "expected an object with x, y, z"),
    ],
)
def test_encoder_errors(reading: tuple[int, Any, Any], reason: str, text: str) -> None:
    with pytest.raises(CodecError) as caught:
        encode_cayennelpp([reading])
    assert caught.value.reason == reason
    assert text in caught.value.message


def test_encoder_refuses_names_that_are_not_cayenne() -> None:
    with pytest.raises(CodecError, match="not a CayenneLPP measurement name"):
        encode_cayennelpp_measurements({"temperature": 21.0})


def _raw_range(size: int, signed: bool) -> tuple[int, int]:
    bits = 8 * size
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


@st.composite
def readings(draw: st.DrawFn) -> tuple[int, int, bytes]:
    """A channel, a type and a raw value encoded by hand from the type table."""
    lpp = draw(st.sampled_from(sorted(LPP_TYPES.values())))
    channel = draw(st.integers(0, 255))
    parts = len(lpp.fields) or 1
    part_size = lpp.size // parts
    low, high = _raw_range(part_size, lpp.signed)
    raw = b"".join(
        draw(st.integers(low, high)).to_bytes(part_size, "big", signed=lpp.signed)
        for _ in range(parts)
    )
    return channel, lpp.type, raw


@settings(max_examples=300, deadline=None)
@given(st.lists(readings(), max_size=6))
def test_decode_then_encode_gives_the_frame_back(frame_parts: list[tuple[int, int, bytes]]) -> None:
    frame = b"".join(bytes((channel, kind)) + raw for channel, kind, raw in frame_parts)
    readings_ = decode_cayennelpp(frame)
    assert encode_cayennelpp(readings_) == frame
    values, _ = decode_cayennelpp_values(frame)
    distinct = {(channel, kind) for channel, kind, _ in frame_parts}
    if len(distinct) == len(frame_parts):
        # Without repeated channel+type the flat measurements carry the whole frame.
        assert encode_cayennelpp_measurements(values) == frame


@settings(max_examples=200, deadline=None)
@given(readings())
def test_encode_then_decode_gives_the_values_back(reading: tuple[int, int, bytes]) -> None:
    channel, kind, raw = reading
    (decoded,) = decode_cayennelpp(bytes((channel, kind)) + raw)
    again = decode_cayennelpp(encode_cayennelpp([(channel, kind, decoded.value)]))
    assert again == [decoded]
