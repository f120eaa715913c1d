"""Downlink encoders: data (a JSON value) to payload bytes, the inverse of the codecs.

* `CayenneLPPEncoder`: flat measurement names as the CayenneLPP decoder writes them
  (`{"digital_out_1": 1, "analog_out_2": 3.3}`), or, configured with a `channel` and a `type`,
  one value sent as that type on that channel (`600` → `01 64 00 00 02 58` for `generic` on 1).
* `JavaScriptEncoder`: a TTN Device Repository `encodeDownlink(input)` with
  `input = {data, fPort?}` returning `{bytes, fPort?, warnings?, errors?}`, run in QuickJS with
  the decoders' sandbox (`JavaScriptSandbox`: the same `Buffer` shim, time, memory and stack
  limits, source errors reported alike; one context per thread).
  `load_device_repository_encoder` reads a codec YAML's `downlinkEncoder` section and checks its
  examples (`input.data` → `output.bytes` / `fPort`) at load time.
* `HexEncoder`: the data is the payload as hex text.

Every encoder returns an `EncodedPayload` (bytes, the fPort the encoder chose or None, warnings)
and raises `DownlinkError` saying what in the data was wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import yaml

from agents.codecs import (
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_STACK_LIMIT,
    DEFAULT_TIME_LIMIT,
    CodecError,
    JavaScriptError,
    JavaScriptSandbox,
    encode_cayennelpp,
    encode_cayennelpp_measurements,
)
from agents.downlink._model import DownlinkError
from agents.profiles import DeviceProfile, DownlinkEncoderSpec

__all__ = [
    "CayenneLPPEncoder",
    "DownlinkEncoder",
    "EncodedPayload",
    "HexEncoder",
    "JavaScriptEncoder",
    "encoder_for",
    "load_device_repository_encoder",
]

_RUNNER = r"""
function __drehscheibe_encode(inputJson) {
  var result = encodeDownlink(JSON.parse(inputJson));
  return JSON.stringify(result === undefined ? null : result);
}
"""


@dataclass(frozen=True, slots=True)
class EncodedPayload:
    """What an encoder made: the payload, the fPort it chose (None: the caller's), warnings."""

    payload: bytes
    f_port: int | None = None
    warnings: tuple[str, ...] = ()


class DownlinkEncoder(Protocol):
    """Turns downlink data into bytes; `f_port` is the port asked for (None: the encoder's)."""

    def encode(self, data: Any, *, f_port: int | None = None) -> EncodedPayload: ...


class HexEncoder:
    """The data is the payload itself, as hex text (spaces allowed)."""

    def encode(self, data: Any, *, f_port: int | None = None) -> EncodedPayload:
        if not isinstance(data, str):
            raise DownlinkError(f"the hex encoder needs hex text, got {type(data).__name__}")
        try:
            return EncodedPayload(bytes.fromhex(data.replace(" ", "")), f_port)
        except ValueError:
            raise DownlinkError(f"{data!r:.60} is not hex text") from None


class CayenneLPPEncoder:
    """CayenneLPP (see the module docstring); `channel` and `type` name the one value sent
    when the data is not a mapping of measurement names."""

    def __init__(self, *, channel: int | None = None, type: str | int | None = None) -> None:
        self.channel = channel
        self.type = type

    def encode(self, data: Any, *, f_port: int | None = None) -> EncodedPayload:
        try:
            if self.channel is not None and self.type is not None:
                return EncodedPayload(encode_cayennelpp([(self.channel, self.type, data)]), f_port)
            if not isinstance(data, Mapping):
                raise DownlinkError(
                    "CayenneLPP data is an object of measurement names (<type>_<channel>), "
                    f"got {type(data).__name__}"
                )
            return EncodedPayload(encode_cayennelpp_measurements(data), f_port)
        except CodecError as error:
            raise DownlinkError(f"CayenneLPP: {error}") from None


class JavaScriptEncoder:
    """A Device Repository `encodeDownlink` in QuickJS (see the module docstring). The source
    is evaluated once here: a syntax error or a missing `encodeDownlink` fails construction."""

    def __init__(
        self,
        source: str,
        *,
        filename: str = "<encoder>",
        time_limit: float = DEFAULT_TIME_LIMIT,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        stack_limit: int = DEFAULT_STACK_LIMIT,
    ) -> None:
        self.source = source
        self.filename = filename
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self.stack_limit = stack_limit
        self._sandbox = JavaScriptSandbox(
            source,
            filename=filename,
            runner=_RUNNER,
            function="__drehscheibe_encode",
            time_limit=time_limit,
            memory_limit=memory_limit,
            stack_limit=stack_limit,
        )
        if not self._defines("encodeDownlink"):
            raise DownlinkError(f"{filename}: defines no function encodeDownlink")

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> JavaScriptEncoder:
        file = Path(path)
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DownlinkError(f"{file}: cannot read: {error}") from None
        return cls(source, filename=str(file), **options)

    def _defines(self, name: str) -> bool:
        """Whether the source defines `name`; a source that does not evaluate raises
        `DownlinkError` with the sandbox's message."""
        try:
            return self._sandbox.defines(name)
        except CodecError as error:
            raise DownlinkError(error.message) from None

    def run(self, data: Any, *, f_port: int | None = None) -> dict[str, Any]:
        """Call `encodeDownlink({data, fPort?})` and return its raw result (an object)."""
        message: dict[str, Any] = {"data": data}
        if f_port is not None:
            message["fPort"] = f_port
        try:
            text = self._sandbox.call(orjson.dumps(message).decode())
        except JavaScriptError as error:
            first = _first_line(error)
            if error.reason == "memory":
                first = f"out of memory ({first})"
            if error.reason == "timeout":
                first = f"timed out (limit {self.time_limit * 1000:g} ms)"
            raise DownlinkError(f"{self.filename}: encodeDownlink: {first}") from None
        except CodecError as error:
            raise DownlinkError(error.message) from None
        result = orjson.loads(text)
        if not isinstance(result, dict):
            raise DownlinkError(f"{self.filename}: encodeDownlink returned no object")
        return result

    def encode(self, data: Any, *, f_port: int | None = None) -> EncodedPayload:
        result = self.run(data, f_port=f_port)
        errors = _strings(result.get("errors"))
        if errors:
            raise DownlinkError(f"{self.filename}: {'; '.join(errors)}")
        raw = result.get("bytes")
        if not isinstance(raw, list) or not all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in raw
        ):
            raise DownlinkError(
                f"{self.filename}: encodeDownlink returned no bytes (a list of 0..255)"
            )
        port = result.get("fPort")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise DownlinkError(f"{self.filename}: encodeDownlink returned fPort {port!r}")
        return EncodedPayload(
            bytes(raw), port if port is not None else f_port, _strings(result.get("warnings"))
        )


def _first_line(error: Exception) -> str:
    return str(error).partition("\n")[0] or type(error).__name__


def _strings(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    return tuple(i if isinstance(i, str) else orjson.dumps(i).decode() for i in items)


def load_device_repository_encoder(
    path: str | Path, *, check_examples: bool = True
) -> JavaScriptEncoder:
    """The `downlinkEncoder` of a Device Repository codec YAML (`fileName` resolved next to
    it). With `check_examples`, each example's `input.data` must encode to its `output`
    (`bytes`, `fPort`, `errors`) exactly, else `DownlinkError` lists the differences."""
    file = Path(path)
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise DownlinkError(f"{file}: cannot read: {error}") from None
    section = document.get("downlinkEncoder") if isinstance(document, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("fileName"), str):
        raise DownlinkError(f"{file}: no downlinkEncoder section with a fileName")
    encoder = JavaScriptEncoder.from_file(file.parent / section["fileName"])
    if not check_examples:
        return encoder
    failures: list[str] = []
    examples = section.get("examples") or []
    for number, example in enumerate(examples, start=1):
        label = f"example {number}" + (
            f" ({example.get('description')!r})" if example.get("description") else ""
        )
        data = (example.get("input") or {}).get("data")
        expected = example.get("output") or {}
        try:
            got = encoder.run(data)
        except DownlinkError as error:
            failures.append(f"{label}: {error}")
            continue
        for key in ("bytes", "fPort", "errors", "warnings"):
            want = expected.get(key)
            have = got.get(key)
            if key in ("errors", "warnings"):
                want, have = want or [], have or []
            if key == "fPort" and want is None:
                continue
            if want != have:
                failures.append(f"{label}: {key} expected {want!r}, got {have!r}")
    if failures:
        raise DownlinkError(
            f"{file}: {len(failures)} differences in the downlinkEncoder examples: "
            + " | ".join(failures)
        )
    return encoder


def encoder_for(spec: DownlinkEncoderSpec, profile: DeviceProfile | None = None) -> DownlinkEncoder:
    """The encoder a profile's `downlink.encoder` (or a command's) names. Relative paths resolve
    next to the profile; a `javascript` encoder without `file` or `codec` uses the profile's own
    JavaScript codec (a script defining `encodeDownlink`, or a codec YAML with a
    `downlinkEncoder`)."""
    if spec.name == "hex":
        return HexEncoder()
    if spec.name == "cayennelpp":
        return CayenneLPPEncoder(channel=spec.channel, type=spec.type)
    base = profile.base_dir if profile is not None else None

    def resolve(text: str) -> Path:
        path = Path(text)
        return path if path.is_absolute() or base is None else base / path

    if spec.file is not None:
        return JavaScriptEncoder.from_file(resolve(spec.file))
    if spec.codec is not None:
        return load_device_repository_encoder(resolve(spec.codec))
    config = profile.codec.config if profile is not None else {}
    if profile is not None and profile.codec.name == "javascript":
        if isinstance(config.get("file"), str):
            return JavaScriptEncoder.from_file(resolve(config["file"]))
        if isinstance(config.get("codec"), str):
            return load_device_repository_encoder(resolve(config["codec"]))
    raise DownlinkError(
        "a javascript encoder needs file or codec (or a profile whose codec is JavaScript)"
    )
