"""Benchmark of notification latency: the embedded broker in its own process, 10 subscriptions,
1,000 entity updates per second, latency measured at an HTTP receiver.

    .venv/bin/python benchmarks/notifications.py [--runs 3] [--seconds 5] [--rate 1000]
                                                 [--subscriptions 10] [--batch 50]

Set-up of one run: a fresh broker (`drehscheibe broker serve` on a free loopback port), 100
sensor entities, `--subscriptions` subscriptions that each select every sensor (keyValues, each
to its own receiver path, so each is its own endpoint), a receiver in a separate process. The
load generator updates the sensors at `--rate` updates per second, as batch upserts
(`entityOperations/upsert?options=update`) of `--batch` entities, the way the agents write
(`--batch 1` sends one `PATCH /entities/{id}/attrs` per update instead). Every update carries
the `time.monotonic()` of its request; the receiver subtracts it from its own clock on arrival
(CLOCK_MONOTONIC is one clock for all processes of the machine). The first second is warm-up.

The broker runs with its default extensions, so the temporal history records every update too.
`--direct` starts it with `ngsi.broker.serve` instead of the CLI (same settings).

Printed per run and as the median of the runs: notification latency p50/p99/max (from the
start of the update request to the arrival of the notification), updates/s achieved,
notified entities received/expected, notification requests, broker CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
ENTITY_TYPE = "BenchSensor"
ENTITIES = 100
API = "/ngsi-ld/v1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def broker_process(data: Path, *, direct: bool) -> Iterator[tuple[int, int]]:
    """The broker as a subprocess: (port, pid)."""
    port = free_port()
    if direct:
        code = (
            "import sys; from pathlib import Path; from ngsi.broker import BrokerSettings, serve; "
            "serve(BrokerSettings(data_dir=Path(sys.argv[1]), port=int(sys.argv[2])))"
        )
        args = [sys.executable, "-c", code, str(data), str(port)]
    else:
        args = [sys.executable, "-m", "drehscheibe", "broker", "serve"]
        args += ["--data", str(data), "--port", str(port)]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    error = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"the broker did not start:\n{error}") from None
                time.sleep(0.05)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)


# --- receiver (its own process) -----------------------------------------------------------


def receiver_main(port: int, pipe: Pipe) -> None:
    """Accept notifications on 127.0.0.1:`port`; on "stop", send back what was measured."""
    latencies: list[tuple[float, float]] = []
    posts = [0]
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                now = time.monotonic()
                posts[0] += 1
                for entity in orjson.loads(body).get("data", ()):
                    sent = entity.get("sentAt")
                    if isinstance(sent, float):
                        latencies.append((sent, now - sent))
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writers.discard(writer)
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=256)
        pipe.send("ready")
        loop = asyncio.get_running_loop()
        while not await loop.run_in_executor(None, pipe.poll, 0.2):
            pass
        pipe.recv()
        server.close()
        for writer in list(writers):
            writer.close()
        await asyncio.sleep(0.1)
        pipe.send((posts[0], latencies))

    asyncio.run(main())


# --- load generator -----------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection to the broker."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        answer = await self.reader.readuntil(b"\r\n\r\n")
        status = int(answer[9:12])
        length = 0
        for line in answer.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        data = await self.reader.readexactly(length) if length else b""
        return status, data

    def close(self) -> None:
        self.writer.close()


def sensor(i: int, sent: float) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:{ENTITY_TYPE}:{i}",
        "type": ENTITY_TYPE,
        "sentAt": {"type": "Property", "value": sent},
        "value": {"type": "Property", "value": i % 97},
    }


async def set_up(port: int, receiver_port: int, subscriptions: int) -> None:
    connection = await Connection.open(port)
    try:
        now = time.monotonic()
        body = orjson.dumps([sensor(i, now) for i in range(ENTITIES)])
        status, data = await connection.request("POST", f"{API}/entityOperations/create", body)
        if status != 201:
            raise RuntimeError(f"creating the sensors answered {status}: {data[:300]!r}")
        for n in range(subscriptions):
            subscription = {
                "type": "Subscription",
                "entities": [{"type": ENTITY_TYPE}],
                "notification": {
                    "format": "keyValues",
                    "endpoint": {"uri": f"http://127.0.0.1:{receiver_port}/consumer-{n}"},
                },
            }
            status, data = await connection.request(
                "POST", f"{API}/subscriptions", orjson.dumps(subscription)
            )
            if status != 201:
                raise RuntimeError(f"creating a subscription answered {status}: {data[:300]!r}")
    finally:
        connection.close()


async def load(port: int, *, rate: int, seconds: float, batch: int) -> tuple[int, float]:
    """Send `rate` updates per second for `seconds`; returns (updates sent, seconds taken)."""
    requests_per_second = rate / batch
    interval = 1.0 / requests_per_second
    total_requests = int(seconds * requests_per_second)
    connections = [await Connection.open(port) for _ in range(8)]
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for connection in connections:
        free.put_nowait(connection)
    sent = 0
    cursor = 0
    pending: set[asyncio.Task[None]] = set()

    async def one(connection: Connection, method: str, path: str, body: bytes) -> None:
        try:
            status, data = await connection.request(method, path, body)
            if status not in (201, 204):
                raise RuntimeError(f"{method} {path} answered {status}: {data[:200]!r}")
        finally:
            free.put_nowait(connection)

    started = time.monotonic()
    for n in range(total_requests):
        due = started + n * interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        connection = await free.get()
        now = time.monotonic()
        if batch == 1:
            i = cursor % ENTITIES
            body = orjson.dumps({"sentAt": {"type": "Property", "value": now}})
            task = asyncio.create_task(
                one(
                    connection, "PATCH", f"{API}/entities/urn:ngsi-ld:{ENTITY_TYPE}:{i}/attrs", body
                )
            )
        else:
            entities = [sensor((cursor + k) % ENTITIES, now) for k in range(batch)]
            task = asyncio.create_task(
                one(
                    connection,
                    "POST",
                    f"{API}/entityOperations/upsert?options=update",
                    orjson.dumps(entities),
                )
            )
        pending.add(task)
        task.add_done_callback(pending.discard)
        cursor += batch
        sent += batch
    await asyncio.gather(*pending)
    elapsed = time.monotonic() - started
    for connection in connections:
        connection.close()
    return sent, elapsed


# --- one run ------------------------------------------------------------------------------


@dataclass
class RunResult:
    p50_ms: float
    p99_ms: float
    max_ms: float
    rate: float
    received: int
    expected: int
    posts: int
    broker_cpu: float


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def one_run(args: argparse.Namespace) -> RunResult:
    receiver_port = free_port()
    parent, child = multiprocessing.Pipe()
    receiver = multiprocessing.Process(
        target=receiver_main, args=(receiver_port, child), daemon=True
    )
    receiver.start()
    if parent.recv() != "ready":
        raise RuntimeError("the receiver did not start")
    try:
        with (
            tempfile.TemporaryDirectory() as data,
            broker_process(Path(data), direct=args.direct) as (port, pid),
        ):
            asyncio.run(set_up(port, receiver_port, args.subscriptions))
            asyncio.run(load(port, rate=args.rate, seconds=1.0, batch=args.batch))
            time.sleep(0.5)
            cpu_before = cpu_seconds(pid)
            measure_from = time.monotonic()
            sent, elapsed = asyncio.run(
                load(port, rate=args.rate, seconds=args.seconds, batch=args.batch)
            )
            cpu = cpu_seconds(pid) - cpu_before
            time.sleep(args.drain)
            parent.send("stop")
            posts, latencies = parent.recv()
    finally:
        receiver.join(timeout=10)
        if receiver.is_alive():
            receiver.kill()
    measured = [latency for sent_at, latency in latencies if sent_at >= measure_from]
    if not measured:
        raise RuntimeError("no notification arrived")
    return RunResult(
        p50_ms=percentile(measured, 0.50) * 1000,
        p99_ms=percentile(measured, 0.99) * 1000,
        max_ms=max(measured) * 1000,
        rate=sent / elapsed,
        received=len(measured),
        expected=sent * args.subscriptions,
        posts=posts,
        broker_cpu=cpu / elapsed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=1000, help="entity updates per second")
    parser.add_argument("--subscriptions", type=int, default=10)
    parser.add_argument("--batch", type=int, default=50, help="entities per upsert (1: PATCH)")
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait at the end")
    parser.add_argument(
        "--direct",
        action="store_true",
        help="start the broker with ngsi.broker.serve instead of the drehscheibe CLI",
    )
    args = parser.parse_args()
    results: list[RunResult] = []
    print(
        f"{args.subscriptions} subscriptions × {args.rate} updates/s for {args.seconds:g} s "
        f"({'PATCH per update' if args.batch == 1 else f'upserts of {args.batch}'}), "
        f"{args.runs} runs"
    )
    for run in range(1, args.runs + 1):
        result = one_run(args)
        results.append(result)
        print(
            f"run {run}: p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms  "
            f"max {result.max_ms:7.1f} ms  {result.rate:7.0f} updates/s  "
            f"notified {result.received}/{result.expected}  requests {result.posts}  "
            f"broker CPU {result.broker_cpu:.0%}"
        )

    def median(name: str) -> float:
        return float(statistics.median(getattr(r, name) for r in results))

    print(
        f"median: p50 {median('p50_ms'):.1f} ms  p99 {median('p99_ms'):.1f} ms  "
        f"max {median('max_ms'):.1f} ms  {median('rate'):.0f} updates/s  "
        f"notified {median('received'):.0f}/{median('expected'):.0f}  "
        f"broker CPU {median('broker_cpu'):.0%}"
    )


if __name__ == "__main__":
    main()
