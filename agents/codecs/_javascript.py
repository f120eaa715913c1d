"""JavaScript payload codecs (TTN Device Repository, TTN v2, ChirpStack), run in QuickJS.

Entry points, found in this order unless the configuration names one:

- `decodeUplink(input)` with `input = {bytes, fPort, recvTime, variables}` returning
  `{data, warnings?, errors?}` (The Things Stack and the Device Repository; ChirpStack v4 uses the
  same name with `variables`);
- `Decoder(bytes, port)` returning the decoded object (The Things Network v2);
- `Decode(fPort, bytes, variables)` returning the decoded object (ChirpStack v3).

`normalizeUplink({data})`, when the codec defines it, turns decoded data into the Device
Repository's normalized payload (`air.temperature`, ...); the codec uses it with
`output="normalized"`.

Limits. Every call runs under a time limit (an endless loop stops there with
`CodecError("timeout")`), a memory limit (`"memory"`) and a stack limit (`"stack-overflow"`); the
codec stays usable for the next call. After a limit was hit the thread's context is rebuilt, so
state a codec keeps in globals cannot wedge it. Codecs run in an engine process of their own
(`_js_host`): an engine that dies fails that one call with `"engine-crash"`, never the agent.

Threads. A QuickJS runtime must only ever be used by the thread that made it. A `JavaScriptCodec`
therefore keeps one context per thread (made on that thread's first call, the codec source
evaluated once per thread, in that thread's engine process): an instance may be shared freely
between threads, calls never share a context, and each thread pays the context's memory once.
Codecs written for ChirpStack get a small `Buffer` (see `_js_prelude`). `JavaScriptSandbox`
builds and keeps these contexts; the downlink encoders (`encodeDownlink`) use it too.

Device Repository codec files (`vendor/<vendor>/<codec>.yaml`) are loaded with
`load_device_repository_codec`: every example under `uplinkDecoder.examples` is decoded at load
time and must equal its stated `output` (and `normalizedOutput`) exactly, else the codec is
refused with the differences.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.codecs._base import CodecError, CodecErrorReason, Measurements, Value, flatten
from agents.codecs._js_host import JavaScriptError, ask, new_key
from agents.codecs._js_prelude import BUFFER_SHIM, RUNNER

if TYPE_CHECKING:
    from agents.lorawan import Uplink

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_STACK_LIMIT",
    "DEFAULT_TIME_LIMIT",
    "DeviceRepositoryExample",
    "EntryPoint",
    "ExampleInput",
    "JavaScriptCodec",
    "JavaScriptSandbox",
    "load_device_repository_codec",
]

EntryPoint = Literal["decodeUplink", "Decoder", "Decode"]
_ENTRY_POINTS: tuple[EntryPoint, ...] = ("decodeUplink", "Decoder", "Decode")

DEFAULT_TIME_LIMIT = 0.1
"""Seconds one decode may run (The Things Stack allows its formatters about as much)."""
DEFAULT_MEMORY_LIMIT = 16 * 1024 * 1024
"""Bytes one context may allocate, codec source included."""
DEFAULT_STACK_LIMIT = 512 * 1024
"""Bytes of native stack JavaScript may use before a `stack-overflow`."""

_MAX_DIFFERENCES = 10


class JavaScriptSandbox:
    """A source in sandboxed QuickJS contexts, one context per thread, outside the agent's
    process (`_js_host`: each thread has its own engine process).

    A thread's context is made on its first call: the memory, stack and time limits are set,
    the `Buffer` shim is evaluated, then `source`, then `runner` (JavaScript defining the
    function Python calls, named `function`). A source that fails to evaluate raises
    `CodecError` naming `filename`: `syntax-error`, `js-error`, or the limit it hit (`timeout`,
    `memory`, `stack-overflow`). A context that hits a limit in a call is dropped and the next
    call gets a fresh one. The limits are used as given (callers check them).
    """

    def __init__(
        self,
        source: str,
        *,
        filename: str = "<codec>",
        runner: str = RUNNER,
        function: str = "__drehscheibe_run",
        time_limit: float = DEFAULT_TIME_LIMIT,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        stack_limit: int = DEFAULT_STACK_LIMIT,
    ) -> None:
        self.source = source
        self.filename = filename
        self.runner_source = runner
        self.function = function
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self.stack_limit = stack_limit
        self._key = new_key()
        self._load = {
            "op": "load",
            "key": self._key,
            "sources": [BUFFER_SHIM, source, runner],
            "function": function,
            "time_limit": time_limit,
            "memory_limit": memory_limit,
            "stack_limit": stack_limit,
        }

    def defines(self, name: str) -> bool:
        """Whether `name` is a function in this thread's context; an engine that fails to
        answer raises `CodecError` with its reason, as a source that fails to load does."""
        try:
            return bool(self._ask({"op": "defines", "key": self._key, "name": name}))
        except JavaScriptError as error:
            raise CodecError(
                _limit(error.reason), f"{self.filename}: {_first_lines(error, self.filename)}"
            ) from None

    def call(self, *args: str | int | bool) -> Any:
        """Call the runner's function in this thread's context; its result as a JSON value.

        Raises `JavaScriptError` with the reason (`timeout`, `memory`, `stack-overflow`,
        `js-error`, `engine-crash`) and the engine's message."""
        return self._ask({"op": "call", "key": self._key, "args": list(args)})

    def _ask(self, request: dict[str, Any]) -> Any:
        try:
            return ask(self._load, request, wait=self.time_limit)
        except JavaScriptError as error:
            if not error.loading:
                raise
            if error.reason == "js-error":
                text = _first_lines(error, self.filename)
                kind: Literal["syntax-error", "js-error"] = (
                    "syntax-error" if text.startswith("SyntaxError") else "js-error"
                )
                raise CodecError(kind, f"{self.filename}: {text}") from None
            raise CodecError(
                _limit(error.reason),
                f"{self.filename}: while loading: {_first_lines(error, self.filename)}",
            ) from None


class JavaScriptCodec:
    """A JavaScript codec (see the module docstring for entry points, limits and threads).

    `source` is the codec's JavaScript; `filename` names it in messages. `entry` forces an entry
    point instead of finding one. `output="normalized"` returns `normalizeUplink`'s result
    instead of `decodeUplink`'s data. `variables` are passed to ChirpStack codecs. The source is
    evaluated once here, so syntax errors, a missing entry point and a top-level endless loop
    fail construction with `CodecError`.
    """

    name = "javascript"

    def __init__(
        self,
        source: str,
        *,
        filename: str = "<codec>",
        entry: EntryPoint | None = None,
        output: Literal["decoded", "normalized"] = "decoded",
        variables: Mapping[str, str] | None = None,
        time_limit: float = DEFAULT_TIME_LIMIT,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        stack_limit: int = DEFAULT_STACK_LIMIT,
    ) -> None:
        if not (0 < time_limit <= 60):
            raise CodecError("bad-config", f"{filename}: time limit must be in (0, 60] s")
        if memory_limit < 1024 * 1024:
            raise CodecError("bad-config", f"{filename}: memory limit must be at least 1 MiB")
        self.source = source
        self.filename = filename
        self.output = output
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self.stack_limit = stack_limit
        self._variables: dict[str, str] = dict(variables or {})
        self._sandbox = JavaScriptSandbox(
            source,
            filename=filename,
            time_limit=time_limit,
            memory_limit=memory_limit,
            stack_limit=stack_limit,
        )
        self.examples_checked = 0
        """How many Device Repository examples were checked when the codec was loaded."""
        self.entry: EntryPoint = entry or self._find_entry()
        if not self._sandbox.defines(self.entry):
            raise CodecError("no-entry-point", f"{filename}: defines no function {self.entry}")
        self.has_normalizer = self._sandbox.defines("normalizeUplink")
        if output == "normalized" and not self.has_normalizer:
            raise CodecError(
                "no-entry-point",
                f"{filename}: output 'normalized' needs a normalizeUplink function",
            )

    def __repr__(self) -> str:
        return (
            f"JavaScriptCodec(filename={self.filename!r}, entry={self.entry!r}, "
            f"output={self.output!r})"
        )

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> JavaScriptCodec:
        """Read a codec file (UTF-8) and build the codec; `options` as for the constructor."""
        file = Path(path)
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CodecError("bad-codec-file", f"{file}: cannot read: {error}") from None
        return cls(source, filename=str(file), **options)

    # contexts --------------------------------------------------------------------------------

    def _find_entry(self) -> EntryPoint:
        for entry in _ENTRY_POINTS:
            if self._sandbox.defines(entry):
                return entry
        raise CodecError(
            "no-entry-point",
            f"{self.filename}: defines none of {', '.join(_ENTRY_POINTS)}",
        )

    # calls -----------------------------------------------------------------------------------

    def run(
        self,
        payload: bytes | Sequence[int],
        *,
        f_port: int,
        recv_time: datetime | str | None = None,
        normalize: bool = False,
    ) -> dict[str, Any]:
        """Call the codec and return its raw result: `{"decoded": {...}, "normalized": ...}`.

        `decoded` is the entry point's result in the `{data, warnings, errors}` shape (`Decoder`
        and `Decode` results are wrapped as `data`); `normalized` is present when `normalize` is
        set and the codec decoded without errors. Codec-reported errors are returned, not raised;
        exceptions, limits and non-JSON output raise `CodecError`.
        """
        message: dict[str, Any] = {"bytes": list(payload), "fPort": f_port}
        if recv_time is not None:
            message["recvTime"] = (
                recv_time.isoformat() if isinstance(recv_time, datetime) else recv_time
            )
        if self._variables:
            message["variables"] = self._variables
        try:
            text = self._sandbox.call(self.entry, orjson.dumps(message).decode(), normalize)
        except JavaScriptError as error:
            reason = _limit(error.reason)
            limit = {
                "timeout": f" (limit {self.time_limit * 1000:g} ms)",
                "memory": f" (limit {self.memory_limit // 1024} KiB)",
            }.get(reason, "")
            text = _first_lines(error, self.filename)
            if reason == "memory" and text == "null":
                text = "out of memory (the engine threw null: no room left for its error)"
            raise CodecError(reason, f"{self.filename}: {text}{limit}") from None
        result: Any = orjson.loads(text)
        return result  # type: ignore[no-any-return]

    def decode(
        self, payload: bytes, /, *, f_port: int, uplink: Uplink | None = None
    ) -> Measurements:
        """Decode one payload into flat measurements (the codec's `data`, or normalized data).

        The receive time given to `decodeUplink` is `uplink.received_at` when known (else the
        current time, as the network servers do). Raises
        `CodecError`: `codec-errors` when the codec reports errors, `bad-output` when it returns
        no object, `js-error`, `timeout`, `memory`, `stack-overflow`.
        """
        normalized = self.output == "normalized"
        recv_time = uplink.received_at if uplink is not None else None
        result = self.run(payload, f_port=f_port, recv_time=recv_time, normalize=normalized)
        decoded = self._checked(result.get("decoded"), self.entry)
        warnings = _strings(decoded.get("warnings"))
        if normalized:
            norm = self._checked(result.get("normalized"), "normalizeUplink")
            warnings += _strings(norm.get("warnings"))
            return Measurements(_flatten_normalized(norm.get("data"), self.filename), warnings)
        data = decoded.get("data")
        if not isinstance(data, dict):
            raise CodecError(
                "bad-output",
                f"{self.filename}: {self.entry} returned {_js_kind(data)} as data, not an object",
            )
        return Measurements(flatten(data), warnings)

    def _checked(self, result: object, function: str) -> dict[str, Any]:
        if not isinstance(result, dict):
            raise CodecError(
                "bad-output", f"{self.filename}: {function} returned {_js_kind(result)}"
            )
        errors = _strings(result.get("errors"))
        if errors:
            raise CodecError("codec-errors", f"{self.filename}: {'; '.join(errors)}")
        return result

    # examples --------------------------------------------------------------------------------

    def check_example(self, example: DeviceRepositoryExample) -> list[str]:
        """Decode one Device Repository example; the differences from its outputs (or `[]`).

        `output` is compared by exact deep equality: `data` (unless the example expects only
        errors), `errors` and `warnings` (absent equals empty). Numbers compare by value (JSON
        has one number type); booleans are not numbers. `normalizedOutput` is compared the
        same way when the codec has `normalizeUplink`.
        """
        wants_normalized = example.normalized_output is not None and self.has_normalizer
        try:
            result = self.run(
                example.input.payload,
                f_port=example.input.f_port,
                recv_time=example.input.recv_time,
                normalize=wants_normalized,
            )
        except CodecError as error:
            return [f"the codec failed: {error}"]
        differences: list[str] = []
        if example.output is not None:
            differences += _compare_output(example.output, result.get("decoded"), "")
        if wants_normalized and example.normalized_output is not None:
            differences += _compare_output(
                example.normalized_output, result.get("normalized"), "normalizedOutput."
            )
        return differences


_LIMITS: dict[str, CodecErrorReason] = {
    "timeout": "timeout",
    "memory": "memory",
    "stack-overflow": "stack-overflow",
    "engine-crash": "engine-crash",
}


def _limit(reason: str) -> CodecErrorReason:
    """The codec error for an engine failure: the limit it hit, a crash, or `js-error`."""
    return _LIMITS.get(reason, "js-error")


def _first_lines(error: Exception, filename: str, count: int = 3) -> str:
    """The exception and its first stack frames on one line, in the codec's own terms."""
    name = Path(filename).name
    lines = [
        line.strip().replace("<input>", name)
        for line in str(error).splitlines()
        if line.strip() and "__drehscheibe_run" not in line
    ]
    return " | ".join(lines[:count]) or type(error).__name__


def _js_kind(value: object) -> str:
    if value is None:
        return "nothing (undefined or null)"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"{type(value).__name__} {value!r:.40}"


def _strings(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(
            item if isinstance(item, str) else orjson.dumps(item).decode() for item in value
        )
    return (value if isinstance(value, str) else orjson.dumps(value).decode(),)


def _flatten_normalized(data: object, filename: str) -> dict[str, Value]:
    """Normalized data: one measurement object flattens as it is; several get index prefixes."""
    if isinstance(data, dict):
        return flatten(data)
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        if len(data) == 1:
            return flatten(data[0])
        return flatten({str(index): item for index, item in enumerate(data)})
    raise CodecError(
        "bad-output",
        f"{filename}: normalizeUplink returned {_js_kind(data)} as data, "
        "not an object or an array of objects",
    )


# deep equality --------------------------------------------------------------------------------


def _same_scalar(expected: object, got: object) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    if isinstance(expected, int | float) and isinstance(got, int | float):
        if isinstance(expected, float) and isinstance(got, float):
            return expected == got or (math.isnan(expected) and math.isnan(got))
        return expected == got
    return type(expected) is type(got) and expected == got


def _diff(expected: object, got: object, path: str, out: list[str]) -> None:
    if len(out) >= _MAX_DIFFERENCES:
        return
    where = path or "(top level)"
    if isinstance(expected, dict) and isinstance(got, dict):
        for key, value in expected.items():
            child = f"{path}.{key}" if path else str(key)
            if key not in got:
                out.append(f"{child}: expected {_show(value)}, missing")
            else:
                _diff(value, got[key], child, out)
        for key, value in got.items():
            if key not in expected:
                child = f"{path}.{key}" if path else str(key)
                out.append(f"{child}: not expected, got {_show(value)}")
        return
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            out.append(f"{where}: expected {len(expected)} items, got {len(got)}")
        for index, (want, have) in enumerate(zip(expected, got, strict=False)):
            _diff(want, have, f"{path}[{index}]", out)
        return
    if isinstance(expected, dict | list) or isinstance(got, dict | list):
        out.append(f"{where}: expected {_show(expected)}, got {_show(got)}")
        return
    if not _same_scalar(expected, got):
        out.append(f"{where}: expected {_show(expected)}, got {_show(got)}")


def _show(value: object) -> str:
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _compare_output(expected: Mapping[str, Any], got: object, prefix: str) -> list[str]:
    if not isinstance(got, dict):
        return [f"{prefix or 'output'}: expected an object, the codec returned {_js_kind(got)}"]
    differences: list[str] = []
    want_errors = expected.get("errors") or []
    if "data" in expected or not want_errors:
        _diff(expected.get("data"), got.get("data"), f"{prefix}data", differences)
    _diff(want_errors, got.get("errors") or [], f"{prefix}errors", differences)
    _diff(
        expected.get("warnings") or [], got.get("warnings") or [], f"{prefix}warnings", differences
    )
    return differences


# Device Repository files ----------------------------------------------------------------------


class ExampleInput(BaseModel):
    """`input` of a Device Repository example."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    f_port: int = Field(alias="fPort", ge=0, le=255)
    payload: list[Annotated[int, Field(ge=0, le=255)]] = Field(default_factory=list, alias="bytes")
    recv_time: str | None = Field(default=None, alias="recvTime")


class DeviceRepositoryExample(BaseModel):
    """One `uplinkDecoder.examples[]` entry: what decoding `input` must give."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    description: str = ""
    type: str | None = None
    input: ExampleInput
    output: dict[str, Any] | None = None
    normalized_output: dict[str, Any] | None = Field(default=None, alias="normalizedOutput")


class _UplinkDecoder(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    file_name: str = Field(alias="fileName", min_length=1)
    examples: list[DeviceRepositoryExample] = Field(default_factory=list)


def load_device_repository_codec(
    path: str | Path,
    *,
    output: Literal["decoded", "normalized"] = "decoded",
    variables: Mapping[str, str] | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    check_examples: bool = True,
) -> JavaScriptCodec:
    """Load a codec YAML in the TTN Device Repository format and the script it names.

    `uplinkDecoder.fileName` is resolved next to the YAML file. With `check_examples` (the
    default) every example is decoded now and compared with its stated output; any difference
    refuses the codec with `CodecError("example-mismatch")`, listing each failing example by
    number and description with the key, the expected and the actual value.
    """
    file = Path(path)
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise CodecError("bad-codec-file", f"{file}: cannot read: {error}") from None
    except yaml.YAMLError as error:
        raise CodecError("bad-codec-file", f"{file}: not YAML: {error}") from None
    section = document.get("uplinkDecoder") if isinstance(document, dict) else None
    if not isinstance(section, dict):
        raise CodecError("bad-codec-file", f"{file}: no uplinkDecoder section")
    try:
        decoder = _UplinkDecoder.model_validate(section)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise CodecError(
            "bad-codec-file", f"{file}: uplinkDecoder.{where}: {first['msg']}"
        ) from None
    codec = JavaScriptCodec.from_file(
        file.parent / decoder.file_name,
        output=output,
        variables=variables,
        time_limit=time_limit,
        memory_limit=memory_limit,
    )
    if check_examples:
        failures: list[str] = []
        for number, example in enumerate(decoder.examples, start=1):
            differences = codec.check_example(example)
            if differences:
                label = f"example {number}" + (
                    f" ({example.description!r})" if example.description else ""
                )
                failures.append(f"{label}: " + "; ".join(differences))
        if failures:
            raise CodecError(
                "example-mismatch",
                f"{file}: {len(failures)} of {len(decoder.examples)} examples do not decode "
                "to their stated output: " + " | ".join(failures),
            )
    codec.examples_checked = len(decoder.examples) if check_examples else 0
    return codec
