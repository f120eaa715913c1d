"""What every codec shares: the `Codec` protocol, `Measurements`, `CodecError`, flattening.

`Measurements` is deliberately not pydantic: a codec runs once per uplink on the hot path, and a
decode of a small frame should cost microseconds. It is a frozen, slotted record holding a plain
`dict` of measurement name → scalar value plus the codec's warnings, and it reads like a mapping.

Names are flat. Nested objects are flattened with dots (`{"air": {"temperature": 21}}` becomes
`air.temperature`, which is also how The Things Network's normalized payload names its fields),
array items by their index (`readings.0`, `readings.1`). Values are JSON scalars: `bool`, `int`,
`float`, `str` or `None`. Empty objects and arrays produce nothing. A key that already contains a
dot is kept as it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from agents.lorawan import Uplink

__all__ = [
    "MAX_DEPTH",
    "Codec",
    "CodecError",
    "CodecErrorReason",
    "Measurements",
    "Value",
    "flatten",
]

Value = bool | int | float | str | None
"""One measurement value, a JSON scalar."""

MAX_DEPTH = 32
"""Deepest nesting `flatten` follows; decoded objects nested deeper are refused."""

CodecErrorReason = Literal[
    "truncated",
    "unknown-type",
    "out-of-range",
    "bad-value",
    "no-decoded-object",
    "bad-output",
    "codec-errors",
    "js-error",
    "timeout",
    "memory",
    "stack-overflow",
    "engine-crash",
    "no-entry-point",
    "syntax-error",
    "example-mismatch",
    "bad-config",
    "bad-codec-file",
    "unknown-codec",
]
"""Why a codec refused a payload (or refused to be built).

Decoding: `truncated` (the frame ends inside a value), `unknown-type` (CayenneLPP type byte),
`no-decoded-object` (the network server decoded nothing), `bad-output` (a codec returned something
that is not an object of JSON values), `codec-errors` (a JavaScript codec reported `errors`),
`js-error` (it threw), `timeout`, `memory`, `stack-overflow` (it hit a limit), `engine-crash`
(the JavaScript engine's process died in the call).
Encoding: `out-of-range`, `bad-value`.
Building: `no-entry-point`, `syntax-error`, `example-mismatch` (a Device Repository example does
not decode to its stated output), `bad-config`, `bad-codec-file`, `unknown-codec`.
"""


class CodecError(ValueError):
    """A codec failure: `reason` (a `CodecErrorReason`) for counting, `message` for people.

    `str(error)` is `"<reason>: <message>"`.
    """

    def __init__(self, reason: CodecErrorReason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: CodecErrorReason = reason
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (CodecError, (self.reason, self.message))


@dataclass(frozen=True, slots=True)
class Measurements(Mapping[str, Value]):
    """The decoded readings of one uplink: flat names → JSON scalar values, plus warnings.

    Reads as a mapping (`m["temperature_1"]`, `"co2" in m`, `dict(m)`); `data` is the dict
    itself, which callers must not mutate. `warnings` are the codec's own (a JavaScript codec's
    `warnings`, a CayenneLPP channel sent twice...): the values are still good.
    """

    data: dict[str, Value]
    warnings: tuple[str, ...] = field(default=())

    def __getitem__(self, name: str) -> Value:
        return self.data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, name: object) -> bool:
        return name in self.data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Measurements):
            return self.data == other.data and self.warnings == other.warnings
        return NotImplemented


class Codec(Protocol):
    """Turns one uplink's payload into `Measurements`.

    Contract:
    - `decode` is a function of its arguments: it keeps no state between calls that changes
      results, does no I/O, and raises `CodecError` (never anything else) for a payload it cannot
      decode. The codec stays usable after an error.
    - `payload` is the FRMPayload (`Uplink.payload`, `b""` when the uplink carried none);
      `uplink` gives codecs that need more (the network server's decoded object, the receive time)
      the whole value.
    - An instance may be shared between threads unless its class documents otherwise.
    """

    def decode(
        self, payload: bytes, /, *, f_port: int, uplink: Uplink | None = None
    ) -> Measurements: ...


def flatten(obj: Mapping[str, Any], *, prefix: str = "") -> dict[str, Value]:
    """Flatten a decoded JSON object into measurement names (see the module docstring).

    Raises `CodecError("bad-output")` for values that are not JSON (sets, bytes, objects) and
    for nesting deeper than `MAX_DEPTH`.
    """
    out: dict[str, Value] = {}
    _flatten_into(out, obj, prefix, 0)
    return out


def _flatten_into(out: dict[str, Value], obj: Mapping[str, Any], prefix: str, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise CodecError("bad-output", f"{prefix or 'the object'}: nested deeper than {MAX_DEPTH}")
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if value is None or isinstance(value, bool | int | float | str):
            out[name] = value
        elif isinstance(value, Mapping):
            _flatten_into(out, value, name + ".", depth + 1)
        elif isinstance(value, list | tuple):
            _flatten_into(
                out, {str(i): item for i, item in enumerate(value)}, name + ".", depth + 1
            )
        else:
            raise CodecError("bad-output", f"{name}: {type(value).__name__} is not a JSON value")
