"""Payload codecs: bytes and network-server objects to measurements.

A codec turns one uplink into `Measurements`: flat names (`temperature_3`, `air.temperature`)
to JSON scalar values, plus warnings. Built-in codecs, by registry name:

- `cayennelpp`: CayenneLPP frames, original and extended types (`CayenneLPPCodec`);
- `network-server`: the object the network server decoded itself (`NetworkServerCodec`);
- `javascript`: TTN Device Repository, TTN v2 and ChirpStack codec scripts run in QuickJS with
  time and memory limits in an engine process of their own (`JavaScriptCodec`,
  `load_device_repository_codec`); the sandbox itself (`JavaScriptSandbox`) serves the downlink
  encoders as well.

Failures are `CodecError(reason, message)`. `default_registry()` builds codecs from profile
configuration blocks.
"""

from agents.codecs._base import (
    MAX_DEPTH,
    Codec,
    CodecError,
    CodecErrorReason,
    Measurements,
    Value,
    flatten,
)
from agents.codecs._cayennelpp import (
    CAYENNE_ALIASES,
    LPP_TYPES,
    CayenneLPPCodec,
    LppReading,
    LppType,
    canonical_cayenne_name,
    decode_cayennelpp,
    decode_cayennelpp_values,
    encode_cayennelpp,
    encode_cayennelpp_measurements,
    normalize_cayenne_object,
)
from agents.codecs._javascript import (
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_STACK_LIMIT,
    DEFAULT_TIME_LIMIT,
    DeviceRepositoryExample,
    EntryPoint,
    ExampleInput,
    JavaScriptCodec,
    JavaScriptSandbox,
    load_device_repository_codec,
)
from agents.codecs._js_host import JavaScriptError
from agents.codecs._js_prelude import BUFFER_SHIM
from agents.codecs._network_server import NetworkServerCodec, NetworkServerConfig
from agents.codecs._registry import (
    CodecFactory,
    CodecRegistry,
    JavaScriptConfig,
    create_codec,
    default_registry,
    javascript_codec,
)

__all__ = [
    "BUFFER_SHIM",
    "CAYENNE_ALIASES",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_STACK_LIMIT",
    "DEFAULT_TIME_LIMIT",
    "LPP_TYPES",
    "MAX_DEPTH",
    "CayenneLPPCodec",
    "Codec",
    "CodecError",
    "CodecErrorReason",
    "CodecFactory",
    "CodecRegistry",
    "DeviceRepositoryExample",
    "EntryPoint",
    "ExampleInput",
    "JavaScriptCodec",
    "JavaScriptConfig",
    "JavaScriptError",
    "JavaScriptSandbox",
    "LppReading",
    "LppType",
    "Measurements",
    "NetworkServerCodec",
    "NetworkServerConfig",
    "Value",
    "canonical_cayenne_name",
    "create_codec",
    "decode_cayennelpp",
    "decode_cayennelpp_values",
    "default_registry",
    "encode_cayennelpp",
    "encode_cayennelpp_measurements",
    "flatten",
    "javascript_codec",
    "load_device_repository_codec",
    "normalize_cayenne_object",
]
