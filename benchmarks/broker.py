"""Benchmark of the embedded NGSI-LD broker, run as its own process (`drehscheibe broker serve`).

    .venv/bin/python benchmarks/broker.py [--runs 5] [--query-entities 100000] [--command CMD]

Scenarios (each run several times; the median is printed):

1. batch upsert: 1000-entity batches of an AirQualityObserved-like entity with 8 attributes,
   `options=update`, with the Smart Data Models Environment @context in a Link header; then
   what the LoRaWAN agent sends: requests of 250 WeatherObserved + Device pairs (the Device's
   rssi with snr and gateway sub-attributes), each entity with its own @context inline, for
   10,000 devices (the broker serves those Smart Data Models contexts offline);
2. PATCH /entities/{id}/attrs of one attribute;
3. GET /entities/{id}, with p50/p99 latency;
4. query by type + q over `--query-entities` entities (`limit=100`, and with `count=true`).

Each figure comes twice: per second of wall time (what a client sees), and per CPU-second of
the broker process. The broker's CPU of a run is counted from its start until the broker is
idle again, so that work a run leaves behind (the history written in the background) is
charged to it. Machines that are shared or loaded give noisy wall figures; the CPU figures
vary less.

The load generator is a small asyncio HTTP/1.1 client over keep-alive connections, in this
process, with the requests encoded beforehand: it costs far less CPU than the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT_URL = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "context.jsonld"
)
ENVIRONMENT_FILE = ROOT.parent / "shared" / "sdm" / "dataModel.Environment" / "context.jsonld"
LINK = (
    f'<{ENVIRONMENT_URL}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


T = TypeVar("T")


class BrokerCpu:
    """CPU seconds the broker process spends between `start()` and `stop()`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._start = 0.0

    def start(self) -> None:
        self._start = cpu_seconds(self.pid)

    def stop(self) -> float:
        return cpu_seconds(self.pid) - self._start

    async def measure(self, work: Awaitable[T]) -> tuple[T, float]:
        """`work`'s result and the broker CPU seconds it took, from a settled broker to a
        settled broker (what the broker finishes after answering counts too)."""
        await self.settle()
        self.start()
        result = await work
        await self.settle()
        return result, self.stop()

    async def settle(self, *, quiet: float = 0.3, timeout: float = 30.0) -> None:
        """Wait until the broker used (almost) no CPU for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        last = cpu_seconds(self.pid)
        while time.monotonic() < deadline:
            await asyncio.sleep(quiet)
            now = cpu_seconds(self.pid)
            if now - last < quiet * 0.05:
                return
            last = now


@contextlib.contextmanager
def broker_process(
    data: Path, *, with_context: bool, command: str | None = None
) -> Iterator[tuple[int, int]]:
    """The broker in its own process, on a free port: `drehscheibe broker serve`, or `command`
    (a shell-style command line with `{port}`, `{data}` and `{preload}` in it, e.g. to compare
    another checkout or a server variant)."""
    port = free_port()
    preload = f"{ENVIRONMENT_URL}={ENVIRONMENT_FILE}"
    if command is not None:
        args = [part.format(port=port, data=data, preload=preload) for part in shlex.split(command)]
    else:
        args = [
            sys.executable,
            "-m",
            "drehscheibe",
            "broker",
            "serve",
            "--data",
            str(data),
            "--port",
            str(port),
        ]
        if with_context:
            args += ["--preload-context", preload]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "broker did not start: "
                        + (process.stderr.read() if process.stderr else b"").decode()
                    ) from None
                time.sleep(0.05)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)


def encode_request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    """One HTTP/1.1 request as bytes (keep-alive)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PATCH", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive HTTP/1.1 connection; `request` sends encoded bytes, returns (status,
    body). Responses must carry Content-Length (the broker's always do)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, encoded: bytes) -> tuple[int, bytes]:
        self.writer.write(encoded)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        start = head.lower().find(b"\r\ncontent-length:")
        length = 0
        if start >= 0:
            end = head.index(b"\r\n", start + 2)
            length = int(head[start + 17 : end])
        data = await self.reader.readexactly(length) if length else b""
        return status, data

    def close(self) -> None:
        self.writer.close()


def air_quality(i: int) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:bench-{i}",
        "type": "AirQualityObserved",
        "dateObserved": {"type": "Property", "value": "2025-01-31T12:00:00Z"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [13.3 + (i % 100) / 1000, 52.5]},
        },
        "temperature": {
            "type": "Property",
            "value": 12.5 + i % 7,
            "unitCode": "CEL",
            "observedAt": "2025-01-31T12:00:00Z",
        },
        "relativeHumidity": {
            "type": "Property",
            "value": 0.61,
            "unitCode": "P1",
            "observedAt": "2025-01-31T12:00:00Z",
        },
        "NO2": {
            "type": "Property",
            "value": i % 80,
            "unitCode": "GQ",
            "observedAt": "2025-01-31T12:00:00Z",
        },
        "pm10": {"type": "Property", "value": 21, "unitCode": "GQ"},
        "pm25": {"type": "Property", "value": 9, "unitCode": "GQ"},
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:eui-{i:016x}"},
    }


JSON_HEADERS = {"Content-Type": "application/json", "Link": LINK}


WEATHER_URL = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/master/context.jsonld"
)
DEVICE_URL = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/context.jsonld"
)


def agent_pair(device: int, second: int) -> list[dict[str, Any]]:
    """The two entities the agent upserts for one uplink: the observation and the Device."""
    at = f"2026-01-31T12:{second // 60 % 60:02d}:{second % 60:02d}Z"
    device_id = f"urn:ngsi-ld:Device:{device:016x}"
    return [
        {
            "id": f"urn:ngsi-ld:WeatherObserved:{device:016x}",
            "type": "WeatherObserved",
            "dateObserved": {"type": "Property", "value": {"@type": "DateTime", "@value": at}},
            "location": {
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [6.77 + device % 100 / 1000, 51.22]},
            },
            "refDevice": {"type": "Relationship", "object": device_id},
            "temperature": {"type": "Property", "value": 21.5, "observedAt": at, "unitCode": "CEL"},
            "relativeHumidity": {
                "type": "Property",
                "value": 0.55,
                "observedAt": at,
                "unitCode": "C62",
            },
            "@context": WEATHER_URL,
        },
        {
            "id": device_id,
            "type": "Device",
            "dateLastValueReported": {
                "type": "Property",
                "value": {"@type": "DateTime", "@value": at},
            },
            "rssi": {
                "type": "Property",
                "value": -90.0,
                "unitCode": "DBM",
                "observedAt": at,
                "snr": {"type": "Property", "value": 8.0, "unitCode": "2N"},
                "gateway": {"type": "Property", "value": "gw-1"},
            },
            "batteryLevel": {"type": "Property", "value": 1.0, "observedAt": at, "unitCode": "C62"},
            "@context": DEVICE_URL,
        },
    ]


async def upsert(
    port: int, batches: list[bytes], concurrency: int, headers: dict[str, str] | None = None
) -> float:
    """Seconds to send all batches over `concurrency` connections."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for item in batches:
        queue.put_nowait(
            encode_request(
                "POST",
                "/ngsi-ld/v1/entityOperations/upsert?options=update",
                item,
                headers or JSON_HEADERS,
            )
        )

    async def worker() -> None:
        connection = await Connection.open(port)
        try:
            while not queue.empty():
                status, data = await connection.request(queue.get_nowait())
                if status not in (201, 204):
                    raise RuntimeError(f"upsert answered {status}: {data[:300]!r}")
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def many(
    port: int, requests: list[tuple[str, str, bytes]], concurrency: int, expect: int
) -> tuple[float, list[float]]:
    """(seconds, per-request latencies) for requests spread over `concurrency` connections."""
    latencies: list[float] = []
    encoded = [encode_request(method, path, body, JSON_HEADERS) for method, path, body in requests]
    chunks = [encoded[i::concurrency] for i in range(concurrency)]

    async def worker(items: list[bytes]) -> None:
        connection = await Connection.open(port)
        try:
            for item in items:
                t0 = time.perf_counter()
                status, data = await connection.request(item)
                latencies.append(time.perf_counter() - t0)
                if status != expect:
                    first_line = item.split(b"\r\n", 1)[0].decode()
                    raise RuntimeError(f"{first_line} answered {status}: {data[:300]!r}")
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in chunks))
    return time.perf_counter() - started, latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(label: str, unit: str, counts: list[int], walls: list[float], cpus: list[float]) -> str:
    rates = [n / w for n, w in zip(counts, walls, strict=True)]
    per_cpu = [n / c for n, c in zip(counts, cpus, strict=True) if c > 0]
    text = (
        f"{label}: median {statistics.median(rates):,.0f} {unit}/s wall"
        f" ({', '.join(f'{r:,.0f}' for r in rates)})"
    )
    if per_cpu:
        median = statistics.median(per_cpu)
        text += (
            f"; {median:,.0f} {unit} per broker CPU-second"
            f" ({', '.join(f'{r:,.0f}' for r in per_cpu)}; {1e6 / median:,.0f} µs each)"
        )
    return text


async def run(args: argparse.Namespace) -> None:
    with_context = ENVIRONMENT_FILE.is_file()
    with (
        tempfile.TemporaryDirectory() as folder,
        broker_process(Path(folder) / "data", with_context=with_context, command=args.command) as (
            port,
            pid,
        ),
    ):
        cpu = BrokerCpu(pid)
        context = "Environment (preloaded)" if with_context else "core"
        print(f"broker pid {pid} on port {port}; @context: {context}; {os.cpu_count()} CPUs")
        batch_size = 1000
        per_run = args.batches * batch_size
        batches = [
            orjson.dumps([air_quality(b * batch_size + i) for i in range(batch_size)])
            for b in range(args.batches)
        ]

        # Run 0 creates the entities, the later runs update them (an agent's steady state).
        walls, cpus = [], []
        for _ in range(args.runs + 1):
            wall, used = await cpu.measure(upsert(port, batches, args.concurrency_batches))
            walls.append(wall)
            cpus.append(used)
        print(
            report(
                "batch upsert, creating (1000/batch, 8 attrs, options=update)",
                "entities",
                [per_run],
                walls[:1],
                cpus[:1],
            )
        )
        print(
            report(
                "batch upsert, updating (1000/batch, 8 attrs, options=update)",
                "entities",
                [per_run] * args.runs,
                walls[1:],
                cpus[1:],
            )
        )
        existing = per_run

        devices, per_request = 10_000, 250
        walls, cpus = [], []
        for run_index in range(args.runs + 1):  # run 0 creates the entities
            agent_batches = [
                orjson.dumps(
                    [e for d in range(start, start + per_request) for e in agent_pair(d, run_index)]
                )
                for start in range(0, devices, per_request)
            ]
            wall, used = await cpu.measure(
                upsert(
                    port,
                    agent_batches,
                    args.concurrency_batches,
                    {"Content-Type": "application/ld+json"},
                )
            )
            walls.append(wall)
            cpus.append(used)
        print(
            report(
                "batch upsert, agent-shaped (250 WeatherObserved + Device pairs/request)",
                "entities",
                [2 * devices] * args.runs,
                walls[1:],
                cpus[1:],
            )
        )

        walls, cpus = [], []
        for run_index in range(args.runs):
            requests = [
                (
                    "PATCH",
                    "/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:bench-"
                    f"{(run_index * args.requests + i) % existing}/attrs",
                    orjson.dumps(
                        {
                            "NO2": {
                                "type": "Property",
                                "value": i % 90,
                                "observedAt": "2025-01-31T12:05:00Z",
                            }
                        }
                    ),
                )
                for i in range(args.requests)
            ]
            (seconds, _), used = await cpu.measure(many(port, requests, args.concurrency, 204))
            walls.append(seconds)
            cpus.append(used)
        print(report("PATCH /attrs", "requests", [args.requests] * args.runs, walls, cpus))

        walls, cpus = [], []
        all_latencies: list[float] = []
        for run_index in range(args.runs):
            requests = [
                (
                    "GET",
                    "/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:bench-"
                    f"{(run_index * 7919 + i * 31) % existing}",
                    b"",
                )
                for i in range(args.requests)
            ]
            (seconds, latencies), used = await cpu.measure(
                many(port, requests, args.concurrency, 200)
            )
            walls.append(seconds)
            cpus.append(used)
            all_latencies.extend(latencies)
        print(
            report("GET by id", "requests", [args.requests] * args.runs, walls, cpus)
            + f"; p50 {percentile(all_latencies, 0.5) * 1000:.2f} ms,"
            f" p99 {percentile(all_latencies, 0.99) * 1000:.2f} ms"
            f" at concurrency {args.concurrency}"
        )

        if args.query_entities > existing:
            missing = args.query_entities - existing
            more = [
                orjson.dumps(
                    [
                        air_quality(existing + b * batch_size + i)
                        for i in range(min(batch_size, missing - b * batch_size))
                    ]
                )
                for b in range((missing + batch_size - 1) // batch_size)
            ]
            await upsert(port, more, args.concurrency_batches)
        total = max(existing, args.query_entities)
        await cpu.settle(timeout=120)
        connection = await Connection.open(port)
        try:
            for label, query in (
                ("type + q, limit=100", "type=AirQualityObserved&q=NO2%3E75&limit=100"),
                ("type + q, count=true", "type=AirQualityObserved&q=NO2%3E75&limit=100&count=true"),
                ("type, offset=50000", "type=AirQualityObserved&limit=100&offset=50000"),
                ("type, count only", "type=AirQualityObserved&limit=0&count=true"),
            ):
                timings, cpus = [], []
                request = encode_request("GET", f"/ngsi-ld/v1/entities?{query}", b"", JSON_HEADERS)
                for _ in range(args.runs):
                    cpu.start()
                    t0 = time.perf_counter()
                    status, data = await connection.request(request)
                    timings.append(time.perf_counter() - t0)
                    cpus.append(cpu.stop())
                    if status != 200:
                        raise RuntimeError(f"query answered {status}: {data[:300]!r}")
                print(
                    f"query over {total:,} entities ({label}): median "
                    f"{statistics.median(timings) * 1000:,.0f} ms wall,"
                    f" {statistics.median(cpus) * 1000:,.0f} ms broker CPU,"
                    f" {len(orjson.loads(data))} returned"
                )
        finally:
            connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=10, help="1000-entity batches per run")
    parser.add_argument("--requests", type=int, default=4000, help="requests per run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--concurrency-batches", type=int, default=2)
    parser.add_argument("--query-entities", type=int, default=100_000)
    parser.add_argument(
        "--command",
        help="start the broker with this command line instead ({port}, {data}, {preload})",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
