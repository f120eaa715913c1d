"""Decode throughput of the codecs and the CPU cost of parsing plus decoding one uplink.

Run: `.venv/bin/python benchmarks/codecs.py [--runs 5] [--seconds 0.5]`. Each figure is the median
of several runs; each run repeats the operation for about `--seconds` of wall time. CPU figures
use the process clock, so they include everything Python does for the call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import orjson

from agents.codecs import CayenneLPPCodec, JavaScriptCodec, NetworkServerCodec, encode_cayennelpp
from agents.lorawan import Uplink, parse_message

# A typical city sensor frame: temperature, humidity, pressure, battery voltage.
FRAME = encode_cayennelpp(
    [
        (1, "temperature", 21.5),
        (2, "relative_humidity", 54.5),
        (3, "barometric_pressure", 1013.2),
        (4, "voltage", 3.61),
    ]
)
BIG_FRAME = bytes.fromhex(
    "0100FF0201640302154A0403EAB6056501F40666320767FF640868630971FE58000F06820A7329EF0B8601"
    "630231FE660C8807FD8700BEF500086A"
)

JS_CODEC = """
function decodeUplink(input) {
  var b = input.bytes;
  var raw = (b[0] << 8) | b[1];
  if (raw & 0x8000) { raw -= 0x10000; }
  return {
    data: {
      temperature: raw / 10,
      humidity: b[2] / 2,
      pressure: ((b[3] << 8) | b[4]) / 10,
      battery: ((b[5] << 8) | b[6]) / 1000
    },
    warnings: []
  };
}
"""
JS_FRAME = bytes([0x00, 0xD7, 0x6D, 0x27, 0x94, 0x0E, 0x1A])

TTS_MESSAGE = orjson.dumps(
    {
        "end_device_ids": {
            "device_id": "th-0042",
            "application_ids": {"application_id": "city-sensors"},
            "dev_eui": "70B3D57ED0001234",
            "join_eui": "0000000000000000",
            "dev_addr": "260B1234",
        },
        "correlation_ids": ["as:up:01H0000000000000000000000", "gs:uplink:01H1"],
        "received_at": "2024-05-02T10:15:00.123456789Z",
        "uplink_message": {
            "f_port": 2,
            "f_cnt": 1234,
            "frm_payload": __import__("base64").b64encode(FRAME).decode(),
            "rx_metadata": [
                {
                    "gateway_ids": {"gateway_id": "gw-rathaus", "eui": "B827EBFFFE000001"},
                    "time": "2024-05-02T10:14:59.900Z",
                    "rssi": -97,
                    "channel_rssi": -97,
                    "snr": 7.25,
                    "location": {"latitude": 48.137, "longitude": 11.575, "altitude": 520},
                },
                {
                    "gateway_ids": {"gateway_id": "gw-bahnhof", "eui": "B827EBFFFE000002"},
                    "time": "2024-05-02T10:14:59.899Z",
                    "rssi": -112,
                    "snr": -3.5,
                },
            ],
            "settings": {
                "data_rate": {
                    "lora": {"bandwidth": 125000, "spreading_factor": 9, "coding_rate": "4/5"}
                },
                "frequency": "867300000",
            },
            "received_at": "2024-05-02T10:15:00.050Z",
            "network_ids": {"net_id": "000013", "tenant_id": "ttn", "cluster_id": "eu1"},
        },
    }
)
TOPIC = "v3/city-sensors@stadt/devices/th-0042/up"


def measure(operation: Callable[[], object], *, runs: int, seconds: float) -> tuple[float, float]:
    """Median operations per second (wall) and median CPU microseconds per operation."""
    calls = 1
    while True:
        started = time.perf_counter()
        for _ in range(calls):
            operation()
        if time.perf_counter() - started > seconds / 10:
            break
        calls *= 2
    calls = max(1, int(calls * 10))
    rates: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            operation()
        wall, used = time.perf_counter() - wall0, time.process_time() - cpu0
        rates.append(calls / wall)
        cpu.append(used / calls * 1e6)
    return statistics.median(rates), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args()

    cayenne = CayenneLPPCodec()
    javascript = JavaScriptCodec(JS_CODEC, filename="bench.js")
    network = NetworkServerCodec()
    decoded_uplink = Uplink(
        source="tts",
        dev_eui="70B3D57ED0001234",
        f_port=2,
        decoded={"temperature": 21.5, "humidity": 54.5, "pressure": 1013.2, "battery": 3.61},
    )

    def parse_and_decode() -> object:
        uplink = parse_message("tts", TOPIC, TTS_MESSAGE)
        assert isinstance(uplink, Uplink)
        return cayenne.decode(uplink.payload or b"", f_port=uplink.f_port or 0, uplink=uplink)

    cases: list[tuple[str, Callable[[], object]]] = [
        ("cayennelpp, 4 values", lambda: cayenne.decode(FRAME, f_port=2)),
        ("cayennelpp, 12 values (18 measurements)", lambda: cayenne.decode(BIG_FRAME, f_port=2)),
        ("network-server, 4 values", lambda: network.decode(b"", f_port=2, uplink=decoded_uplink)),
        ("javascript decodeUplink, 4 values", lambda: javascript.decode(JS_FRAME, f_port=2)),
        (
            "parse_message (TTS uplink, 2 gateways)",
            lambda: parse_message("tts", TOPIC, TTS_MESSAGE),
        ),
        ("parse_message + cayennelpp decode", parse_and_decode),
    ]
    print(f"median of {args.runs} runs, ~{args.seconds} s each")
    print(f"{'operation':44} {'per second':>12} {'CPU µs/op':>10}")
    for label, operation in cases:
        rate, cpu = measure(operation, runs=args.runs, seconds=args.seconds)
        print(f"{label:44} {rate:12,.0f} {cpu:10.2f}")


if __name__ == "__main__":
    main()
