"""JavaScript codecs in QuickJS: entry points, limits, threads, Device Repository files."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agents.codecs import (
    CodecError,
    DeviceRepositoryExample,
    JavaScriptCodec,
    JavaScriptError,
    JavaScriptSandbox,
    _js_host,
    load_device_repository_codec,
)
from agents.lorawan import Uplink

DATA = Path(__file__).parent / "data" / "codecs"


def codec(name: str, **options: Any) -> JavaScriptCodec:
    return JavaScriptCodec.from_file(DATA / name, **options)


# Device Repository files ----------------------------------------------------------------------


def test_device_repository_codec_checks_its_examples() -> None:
    loaded = load_device_repository_codec(DATA / "th-sensor.yaml")
    assert loaded.examples_checked == 4
    assert (loaded.entry, loaded.has_normalizer) == ("decodeUplink", True)
    measurements = loaded.decode(bytes([0x00, 0xD7, 0x6C]), f_port=1)
    assert measurements.data == {"temperature": 21.5, "humidity": 54}
    assert measurements.warnings == ()


def test_normalized_output() -> None:
    loaded = load_device_repository_codec(DATA / "th-sensor.yaml", output="normalized")
    assert loaded.decode(bytes([0xFF, 0xD7, 0x64]), f_port=1).data == {
        "air.temperature": -4.1,
        "air.relativeHumidity": 50,
    }


def test_a_wrong_example_refuses_the_codec_and_shows_the_difference() -> None:
    with pytest.raises(CodecError) as caught:
        load_device_repository_codec(DATA / "th-sensor-wrong-example.yaml")
    error = caught.value
    assert error.reason == "example-mismatch"
    assert "1 of 2 examples" in error.message
    assert "example 2 ('Wrong temperature and a key the codec does not write')" in error.message
    assert "data.temperature: expected 22.5, got 21.5" in error.message
    assert "data.dewPoint: expected 12, missing" in error.message
    assert "example 1" not in error.message


def test_examples_can_be_skipped() -> None:
    loaded = load_device_repository_codec(
        DATA / "th-sensor-wrong-example.yaml", check_examples=False
    )
    assert loaded.examples_checked == 0


def _example(
    output: Mapping[str, Any], *, f_port: int = 1, data: list[int] | None = None
) -> DeviceRepositoryExample:
    return DeviceRepositoryExample.model_validate(
        {
            "description": "probe",
            "input": {"fPort": f_port, "bytes": data or [0x00, 0xD7, 0xD0]},
            "output": output,
        }
    )


def test_example_equality_is_exact() -> None:
    th = codec("th-sensor.js")
    good = {"data": {"temperature": 21.5, "humidity": 104.0}, "warnings": ["humidity above 100 %"]}
    assert th.check_example(_example(good)) == []
    assert th.check_example(_example({**good, "warnings": []})) == [
        "warnings: expected 0 items, got 1"
    ]
    as_bool = {"data": {"temperature": 21.5, "humidity": True}, "warnings": good["warnings"]}
    assert th.check_example(_example(as_bool)) == ["data.humidity: expected true, got 104"]
    extra = {"data": {"temperature": 21.5}, "warnings": good["warnings"]}
    assert th.check_example(_example(extra)) == ["data.humidity: not expected, got 104"]
    errors = {"errors": ["unknown fPort 3"]}
    assert th.check_example(_example(errors, f_port=3)) == []
    assert th.check_example(_example({"errors": ["other"]}, f_port=3)) == [
        'errors[0]: expected "other", got "unknown fPort 3"'
    ]


def test_example_recv_time_reaches_the_codec() -> None:
    v4 = codec("chirpstack-v4.js")
    example = DeviceRepositoryExample.model_validate(
        {
            "input": {"fPort": 1, "bytes": [1, 0, 4], "recvTime": "2024-05-02T10:15:00Z"},
            "output": {
                "data": {
                    "level": 1,
                    "ratio": 1,
                    "base64": "AQAE",
                    "seenAt": "2024-05-02T10:15:00.000Z",
                }
            },
        }
    )
    assert v4.check_example(example) == []


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("downlinkEncoder: {}\n", "no uplinkDecoder section"),
        ("uplinkDecoder: {examples: []}\n", "uplinkDecoder.fileName: Field required"),
        (
            "uplinkDecoder:\n  fileName: th-sensor.js\n  examples:\n"
            "    - input: {fPort: 1, bytes: [300]}\n",
            "uplinkDecoder.examples.0.input.bytes.0",
        ),
        ("uplinkDecoder: [\n", "not YAML"),
        ("uplinkDecoder: {fileName: missing.js}\n", "missing.js: cannot read"),
    ],
)
def test_bad_codec_files(tmp_path: Path, content: str, fragment: str) -> None:
    (tmp_path / "th-sensor.js").write_text((DATA / "th-sensor.js").read_text())
    file = tmp_path / "codec.yaml"
    file.write_text(content)
    with pytest.raises(CodecError) as caught:
        load_device_repository_codec(file)
    assert caught.value.reason == "bad-codec-file"
    assert fragment in caught.value.message


def test_missing_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(CodecError) as caught:
        load_device_repository_codec(tmp_path / "nope.yaml")
    assert caught.value.reason == "bad-codec-file"


# Entry points ---------------------------------------------------------------------------------


def test_ttn_v2_decoder() -> None:
    v2 = codec("ttn-v2-decoder.js")
    assert v2.entry == "Decoder"
    assert v2.decode(bytes([0x01, 0x02, 0x01]), f_port=3).data == {
        "distance": 258,
        "port": 3,
        "open": True,
    }


def test_chirpstack_v3_decode_with_buffer_and_variables() -> None:
    v3 = codec("chirpstack-v3.js", variables={"unit": "kelvin"})
    assert v3.entry == "Decode"
    payload = bytes([0x08, 0x35, 0xA0, 0x86, 0x01, 0x00])
    assert v3.decode(payload, f_port=2).data == {
        "temperature": 21.01,
        "pressure": 1000.0,
        "hex": "0835a0860100",
        "unit": "kelvin",
    }
    assert codec("chirpstack-v3.js").decode(payload, f_port=2)["unit"] == "celsius"


def test_chirpstack_v4_decode_uplink_sees_the_receive_time() -> None:
    v4 = codec("chirpstack-v4.js", variables={"site": "north"})
    uplink = Uplink(
        source="chirpstack-v4",
        dev_eui="0101010101010101",
        received_at=datetime(2024, 5, 2, 10, 15, 0, 123000, tzinfo=UTC),
    )
    measurements = v4.decode(bytes([0x10, 0x27, 0xFC]), f_port=1, uplink=uplink)
    assert measurements.data == {
        "level": 10000,
        "ratio": -1,
        "base64": "ECf8",
        "site": "north",
        "seenAt": "2024-05-02T10:15:00.123Z",
    }


def test_entry_can_be_forced() -> None:
    source = (
        "function decodeUplink(input) { return {data: {via: 'decodeUplink'}}; }\n"
        "function Decoder(bytes, port) { return {via: 'Decoder'}; }\n"
    )
    assert JavaScriptCodec(source).decode(b"", f_port=1)["via"] == "decodeUplink"
    assert JavaScriptCodec(source, entry="Decoder").decode(b"", f_port=1)["via"] == "Decoder"
    with pytest.raises(CodecError) as caught:
        JavaScriptCodec(source, entry="Decode")
    assert caught.value.reason == "no-entry-point"


def test_buffer_shim() -> None:
    source = """
    function decodeUplink(input) {
      var b = Buffer.from("00ff7fc0", "hex");
      var text = Buffer.from("Grüße", "utf8");
      var joined = Buffer.concat([Buffer.from([1, 2]), Buffer.alloc(2, 9)]);
      return {data: {
        bytes: b.length, u8: b.readUInt8(1), i8: b.readInt8(1), u16le: b.readUint16LE(0),
        f32: Buffer.from("41a80000", "hex").readFloatBE(0),
        f64: Buffer.from("000000000000f03f", "hex").readDoubleLE(0),
        i32: Buffer.from("fffffffe", "hex").readInt32BE(0),
        utf8: text.toString("utf8"), utf8Bytes: text.length,
        b64: Buffer.from("SGFsbG8=", "base64").toString(), hex: joined.toString("hex"),
        isBuffer: Buffer.isBuffer(joined), sliced: b.slice(1, 3).toString("hex"),
        index: b[3]
      }};
    }"""
    assert JavaScriptCodec(source).decode(b"", f_port=1).data == {
        "bytes": 4,
        "u8": 255,
        "i8": -1,
        "u16le": 0xFF00,
        "f32": 21.0,
        "f64": 1.0,
        "i32": -2,
        "utf8": "Grüße",
        "utf8Bytes": 7,
        "b64": "Hallo",
        "hex": "01020909",
        "isBuffer": True,
        "sliced": "ff7f",
        "index": 0xC0,
    }


# Failures and limits --------------------------------------------------------------------------


def test_codec_errors() -> None:
    with pytest.raises(CodecError) as caught:
        codec("th-sensor.js").decode(b"\x01", f_port=1)
    assert caught.value.reason == "codec-errors"
    assert "fPort 1 needs 3 bytes, got 1" in caught.value.message


def test_codec_warnings_are_kept() -> None:
    measurements = codec("th-sensor.js").decode(bytes([0, 0xD7, 0xD0]), f_port=1)
    assert measurements.warnings == ("humidity above 100 %",)


def test_endless_loop_stops_at_the_time_limit_and_the_codec_stays_usable() -> None:
    looping = codec("loop.js", time_limit=0.05)
    started = time.monotonic()
    with pytest.raises(CodecError) as caught:
        looping.decode(b"\xff", f_port=1)
    assert time.monotonic() - started < 2
    assert caught.value.reason == "timeout"
    assert "loop.js" in caught.value.message
    assert "limit 50 ms" in caught.value.message
    for counter in (1, 2, 3):
        assert looping.decode(bytes([counter]), f_port=1)["counter"] == counter


def test_a_throwing_codec() -> None:
    throwing = codec("throwing.js")
    with pytest.raises(CodecError) as caught:
        throwing.decode(b"\x02\x05", f_port=1)
    assert caught.value.reason == "js-error"
    assert "Error: unsupported frame version 2" in caught.value.message
    assert "throwing.js" in caught.value.message
    assert "__drehscheibe" not in caught.value.message
    assert throwing.decode(b"\x01\x05", f_port=1)["level"] == 5


def test_memory_and_stack_limits() -> None:
    greedy = codec("greedy.js", memory_limit=8 * 1024 * 1024)
    with pytest.raises(CodecError) as caught:
        greedy.decode(b"\x01", f_port=9)
    assert caught.value.reason == "memory"
    with pytest.raises(CodecError) as caught:
        greedy.decode(b"\x01", f_port=8)
    assert caught.value.reason == "stack-overflow"
    assert greedy.decode(b"\x07", f_port=1)["value"] == 7


def test_a_leaking_codec_gets_a_fresh_context_after_running_out_of_memory() -> None:
    leaking = codec("stateful.js", memory_limit=8 * 1024 * 1024)
    seen: list[object] = []
    for _ in range(8):
        try:
            seen.append(leaking.decode(b"\x01", f_port=1)["calls"])
        except CodecError as error:
            seen.append(error.reason)
    assert "memory" in seen
    first_failure = seen.index("memory")
    assert seen[:first_failure] == list(range(1, first_failure + 1))
    assert seen[first_failure + 1] == 1


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("function decodeUplink(input) { return 42; }", "bad-output"),
        ("function decodeUplink(input) { return {data: [1, 2]}; }", "bad-output"),
        ("function decodeUplink(input) { return {warnings: ['no data']}; }", "bad-output"),
        ("function decodeUplink(input) { var a = {}; a.self = a; return {data: a}; }", "js-error"),
        ("function decodeUplink(input) { return {errors: 'one error'}; }", "codec-errors"),
    ],
)
def test_bad_results(source: str, reason: str) -> None:
    with pytest.raises(CodecError) as caught:
        JavaScriptCodec(source).decode(b"", f_port=1)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("function decodeUplink(input) {", "syntax-error"),
        ("var x = 1;", "no-entry-point"),
        ("while (true) {}", "timeout"),
        ("throw new Error('broken at load');", "js-error"),
    ],
)
def test_codecs_refused_at_construction(source: str, reason: str) -> None:
    with pytest.raises(CodecError) as caught:
        JavaScriptCodec(source, filename="probe.js", time_limit=0.05)
    assert caught.value.reason == reason
    assert "probe.js" in caught.value.message


def test_normalized_output_needs_normalize_uplink() -> None:
    with pytest.raises(CodecError) as caught:
        codec("throwing.js", output="normalized")
    assert caught.value.reason == "no-entry-point"
    assert "normalizeUplink" in caught.value.message


def test_normalized_list_gets_index_prefixes() -> None:
    measurements = codec("normalized-list.js", output="normalized").decode(
        bytes([215, 220]), f_port=1
    )
    assert measurements.data == {"0.air.temperature": 21.5, "1.air.temperature": 22}
    assert measurements.warnings == ("two readings",)


def test_bad_limits() -> None:
    with pytest.raises(CodecError) as caught:
        JavaScriptCodec("function Decoder(b, p) { return {}; }", time_limit=0)
    assert caught.value.reason == "bad-config"
    with pytest.raises(CodecError) as caught:
        JavaScriptCodec("function Decoder(b, p) { return {}; }", memory_limit=1000)
    assert caught.value.reason == "bad-config"


# Threads --------------------------------------------------------------------------------------


def test_each_thread_gets_its_own_context() -> None:
    counting = JavaScriptCodec(
        "var calls = 0;\nfunction decodeUplink(input) { calls++; return {data: {calls: calls}}; }"
    )
    assert counting.decode(b"", f_port=1)["calls"] == 1
    results: dict[int, list[object]] = {}
    barrier = threading.Barrier(4)

    def work(number: int) -> None:
        barrier.wait()
        results[number] = [counting.decode(b"", f_port=1)["calls"] for _ in range(50)]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {n: list(range(1, 51)) for n in range(4)}
    # The constructing thread's context went on counting on its own.
    assert counting.decode(b"", f_port=1)["calls"] == 2


def test_a_limit_hit_discards_the_context_and_a_thrown_null_is_not_memory() -> None:
    sandbox = JavaScriptSandbox(
        "var calls = 0;"
        "function f(kind) { calls += 1;"
        " if (kind === 'null') { throw null; }"
        " if (kind === 'spin') { while (true) {} }"
        " return calls; }",
        runner="",
        function="f",
        time_limit=0.05,
    )
    assert sandbox.call("count") == 1
    with pytest.raises(JavaScriptError) as thrown:
        sandbox.call("null")
    assert thrown.value.reason == "js-error"  # memory far from its limit
    assert sandbox.call("count") == 3  # the same context goes on
    with pytest.raises(JavaScriptError) as spun:
        sandbox.call("spin")
    assert spun.value.reason == "timeout"
    assert sandbox.call("count") == 1  # a fresh context after a limit was hit


def test_a_null_from_a_source_that_never_throws_null_is_memory() -> None:
    # Out of memory while making its error, the engine throws null, and what ran out is often
    # freed by the time anyone looks: only a source that says `throw null` throws it itself.
    sandbox = JavaScriptSandbox(
        "var calls = 0;"
        "function f(kind) { calls += 1; var nothing = null;"
        " if (kind === 'null') { throw nothing; } return calls; }",
        runner="",
        function="f",
    )
    assert sandbox.call("count") == 1
    engine = engine_pids()
    with pytest.raises(JavaScriptError) as thrown:
        sandbox.call("null")
    assert thrown.value.reason == "memory"
    assert sandbox.call("count") == 1  # a fresh context counts anew
    assert engine_pids() != engine  # in a fresh engine


def engine_pids() -> set[int]:
    """The engine processes this test process started (see agents.codecs._js_host)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"_js_engine.py" in command and fields[0] != "Z":
            pids.add(int(stat.parent.name))
    return pids


def test_running_out_of_memory_again_and_again_never_takes_the_caller_down() -> None:
    greedy = codec("greedy.js", memory_limit=8 * 1024 * 1024)
    engines: set[int] = set()
    for _ in range(10):
        with pytest.raises(CodecError) as caught:
            greedy.decode(b"\x01", f_port=9)
        assert caught.value.reason == "memory"
        assert greedy.decode(b"\x07", f_port=1)["value"] == 7
        engines |= engine_pids()
    assert len(engines) == 10  # each memory error ended its engine; the next call got a new one


def test_an_engine_that_will_not_start_refuses_the_codec_with_a_codec_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dies = tmp_path / "dies.py"
    dies.write_text("import os\nos._exit(3)\n")
    monkeypatch.setattr(_js_host, "_ENGINE", str(dies))
    caught: list[CodecError] = []

    def build() -> None:  # a thread of its own: a new engine, started from `dies`
        try:
            JavaScriptCodec("function decodeUplink(input) { return {data: {}}; }")
        except CodecError as error:
            caught.append(error)

    thread = threading.Thread(target=build)
    thread.start()
    thread.join(timeout=30)
    assert [error.reason for error in caught] == ["engine-crash"]
    assert "exit status 3" in caught[0].message


def test_an_engine_that_dies_fails_its_call_and_the_next_call_gets_a_new_one() -> None:
    spinning = JavaScriptCodec(
        "function decodeUplink(input) {"
        " if (input.fPort === 2) { while (true) {} } return {data: {port: input.fPort}}; }",
        time_limit=30,
    )
    assert spinning.decode(b"", f_port=1)["port"] == 1
    engines = engine_pids()

    def kill() -> None:
        for pid in engines:
            os.kill(pid, signal.SIGKILL)

    killer = threading.Timer(0.3, kill)
    killer.start()
    started = time.monotonic()
    with pytest.raises(CodecError) as caught:
        spinning.decode(b"", f_port=2)
    killer.join()
    assert caught.value.reason == "engine-crash"
    assert "signal 9" in caught.value.message
    assert time.monotonic() - started < 10
    assert spinning.decode(b"", f_port=1)["port"] == 1
    assert engine_pids() - engines
