"""The codec registry: built-in factories by name, configuration checks, custom codecs."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agents.codecs import (
    CayenneLPPCodec,
    CodecError,
    CodecRegistry,
    JavaScriptCodec,
    Measurements,
    NetworkServerCodec,
    create_codec,
    default_registry,
)
from agents.lorawan import Uplink

DATA = Path(__file__).parent / "data" / "codecs"


def test_built_in_codecs() -> None:
    registry = default_registry()
    assert registry.names() == ["cayennelpp", "javascript", "network-server"]
    assert isinstance(registry.create("cayennelpp"), CayenneLPPCodec)
    assert isinstance(registry.create("network-server", {"use": "normalized"}), NetworkServerCodec)
    js = registry.create("javascript", {"file": str(DATA / "ttn-v2-decoder.js")})
    assert isinstance(js, JavaScriptCodec)


def test_every_create_is_a_fresh_instance() -> None:
    registry = default_registry()
    assert registry.create("cayennelpp") is not registry.create("cayennelpp")
    assert default_registry() is not registry


def test_unknown_codec() -> None:
    with pytest.raises(CodecError) as caught:
        create_codec("lpp2")
    assert caught.value.reason == "unknown-codec"
    assert "cayennelpp, javascript, network-server" in caught.value.message


class Fixed:
    """A custom codec: every payload decodes to its length."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.label = str(config.get("label", "length"))

    def decode(
        self, payload: bytes, /, *, f_port: int, uplink: Uplink | None = None
    ) -> Measurements:
        return Measurements({self.label: len(payload)})


def test_custom_codecs_and_replacement() -> None:
    registry = CodecRegistry()
    registry.register("fixed", Fixed)
    assert registry.create("fixed", {"label": "n"}).decode(b"abc", f_port=1).data == {"n": 3}
    with pytest.raises(ValueError, match="registered already"):
        registry.register("fixed", Fixed)
    registry.register("fixed", lambda config: Fixed({"label": "m"}), replace=True)
    assert registry.create("fixed").decode(b"ab", f_port=1).data == {"m": 2}


def test_javascript_from_a_device_repository_file_relative_to_base_dir(tmp_path: Path) -> None:
    for name in ("th-sensor.yaml", "th-sensor.js"):
        shutil.copy(DATA / name, tmp_path / name)
    built = create_codec(
        "javascript", {"codec": "th-sensor.yaml", "base_dir": str(tmp_path), "output": "normalized"}
    )
    assert isinstance(built, JavaScriptCodec)
    assert built.examples_checked == 4
    assert built.decode(bytes([0, 0xD7, 0x6C]), f_port=1).data == {
        "air.temperature": 21.5,
        "air.relativeHumidity": 54,
    }


def test_javascript_example_mismatch_through_the_registry() -> None:
    with pytest.raises(CodecError) as caught:
        create_codec("javascript", {"codec": str(DATA / "th-sensor-wrong-example.yaml")})
    assert caught.value.reason == "example-mismatch"
    built = create_codec(
        "javascript",
        {"codec": str(DATA / "th-sensor-wrong-example.yaml"), "check_examples": False},
    )
    assert isinstance(built, JavaScriptCodec)


def test_javascript_limits_from_the_configuration() -> None:
    looping = create_codec(
        "javascript", {"file": str(DATA / "loop.js"), "time_limit_ms": 20, "memory_limit_mib": 4}
    )
    assert isinstance(looping, JavaScriptCodec)
    assert (looping.time_limit, looping.memory_limit) == (0.02, 4 * 2**20)
    with pytest.raises(CodecError) as caught:
        looping.decode(b"\xff", f_port=1)
    assert caught.value.reason == "timeout"


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "exactly one of 'file'"),
        ({"file": "a.js", "codec": "a.yaml"}, "exactly one of 'file'"),
        ({"codec": "a.yaml", "entry": "Decoder"}, "'entry' applies to 'file' only"),
        ({"file": "a.js", "entry": "main"}, "entry"),
        ({"file": "a.js", "time_limit_ms": 0}, "time_limit_ms"),
        ({"file": "a.js", "script": "x"}, "script"),
    ],
)
def test_javascript_bad_config(config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(CodecError) as caught:
        create_codec("javascript", config)
    assert caught.value.reason == "bad-config"
    assert fragment in caught.value.message


def test_javascript_missing_file() -> None:
    with pytest.raises(CodecError) as caught:
        create_codec("javascript", {"file": str(DATA / "absent.js")})
    assert caught.value.reason == "bad-codec-file"
    assert "absent.js" in caught.value.message
