"""Downlink encoders: CayenneLPP, Device Repository `encodeDownlink` in QuickJS, hex; and the
commands a profile declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.codecs import decode_cayennelpp_values
from agents.downlink import (
    CayenneLPPEncoder,
    DownlinkError,
    HexEncoder,
    JavaScriptEncoder,
    command_downlink,
    command_names,
    command_status_attributes,
    load_device_repository_encoder,
    profile_downlink,
)
from agents.profiles import ProfileCatalog, load_profile

CODECS = Path(__file__).parent / "codecs"


def test_cayennelpp_one_value_and_measurements() -> None:
    one = CayenneLPPEncoder(channel=1, type="generic").encode(600)
    assert one.payload == bytes.fromhex("0164" + "00000258")
    both = CayenneLPPEncoder().encode({"digital_out_1": 1, "analog_out_2": 3.3})
    assert decode_cayennelpp_values(both.payload)[0] == {"digital_out_1": 1, "analog_out_2": 3.3}
    with pytest.raises(DownlinkError, match="measurement names"):
        CayenneLPPEncoder().encode(5)
    with pytest.raises(DownlinkError, match="outside"):
        CayenneLPPEncoder(channel=1, type="digital_out").encode(300)


def test_hex() -> None:
    assert HexEncoder().encode("01 02ff").payload == b"\x01\x02\xff"
    with pytest.raises(DownlinkError, match="not hex"):
        HexEncoder().encode("zz")


def test_device_repository_encoder_checks_its_examples() -> None:
    encoder = load_device_repository_encoder(CODECS / "valve.yaml")
    encoded = encoder.encode({"setReportingInterval": 600})
    assert (encoded.payload, encoded.f_port) == (bytes([1, 2, 88]), 20)
    with pytest.raises(DownlinkError, match=r"60\.\.65535"):
        encoder.encode({"setReportingInterval": 5})
    with pytest.raises(DownlinkError, match=r"example 1 .*bytes expected \[2, 0\], got \[2, 1\]"):
        load_device_repository_encoder(CODECS / "valve-wrong.yaml")


def test_javascript_limits_and_refusals() -> None:
    with pytest.raises(DownlinkError, match="encodeDownlink"):
        JavaScriptEncoder("function decodeUplink(i) { return {data: {}}; }")
    endless = JavaScriptEncoder("function encodeDownlink(i) { for (;;) {} }", time_limit=0.05)
    with pytest.raises(DownlinkError, match="timed out"):
        endless.encode({})
    bad = JavaScriptEncoder("function encodeDownlink(i) { return {bytes: [1, 256]}; }")
    with pytest.raises(DownlinkError, match=r"0\.\.255"):
        bad.encode({})
    uses_buffer = JavaScriptEncoder(
        "function encodeDownlink(i) { return {bytes: Array.from(Buffer.from(i.data.hex, 'hex'))}; }"
    )
    assert uses_buffer.encode({"hex": "0a0b"}).payload == b"\x0a\x0b"


def test_builtin_profile_command() -> None:
    profile = ProfileCatalog(None).get("temperature-humidity-lpp")
    downlink = command_downlink(profile, "setReportingInterval", 600, dev_eui="0004A30B001C0530")
    assert (downlink.f_port, downlink.confirmed) == (10, True)
    assert downlink.payload == bytes.fromhex("016400000258")
    with pytest.raises(DownlinkError, match="declares no command 'reboot'"):
        command_downlink(profile, "reboot", 1, dev_eui="0004A30B001C0530")
    assert "setReportingInterval" in command_names(
        ProfileCatalog(None).get(name) for name in ProfileCatalog(None).names()
    )


def test_javascript_profile_commands() -> None:
    profile = load_profile(CODECS / "valve-profile.yaml")
    interval = command_downlink(profile, "setReportingInterval", 900, dev_eui="0004A30B001C0530")
    # a value that is not an object reaches encodeDownlink as {"<command>": value}
    assert (interval.payload, interval.f_port, interval.confirmed) == (b"\x01\x03\x84", 20, True)
    valve = command_downlink(profile, "openValve", "0201", dev_eui="0004A30B001C0530")
    assert (valve.payload, valve.f_port) == (b"\x02\x01", 21)
    with pytest.raises(DownlinkError, match="setReportingInterval of device"):
        command_downlink(profile, "setReportingInterval", 1, dev_eui="0004A30B001C0530")
    direct = profile_downlink(profile, {"valve": "closed"}, dev_eui="0004A30B001C0530")
    assert (direct.payload, direct.f_port) == (b"\x02\x00", 21)


def test_status_attributes() -> None:
    attrs = command_status_attributes("setReportingInterval", "FAILED", detail="no such device")
    assert attrs["setReportingInterval_status"]["value"] == "FAILED"
    assert attrs["setReportingInterval_status"]["observedAt"].endswith("Z")
    assert attrs["setReportingInterval_info"]["value"] == {"detail": "no such device"}


def test_a_command_cannot_be_a_device_attribute() -> None:
    from pydantic import ValidationError

    from agents.profiles._model import DownlinkSpec

    with pytest.raises(ValidationError, match="deviceState would be an attribute"):
        DownlinkSpec.model_validate({"commands": {"deviceState": {"f_port": 1}}})
    with pytest.raises(ValidationError, match="pattern"):
        DownlinkSpec.model_validate({"commands": {"reboot_status": {"f_port": 1}}})
