"""Benchmark of listing subscriptions: `drehscheibe subscriptions list` on 1,000 subscriptions of
the embedded broker.

    .venv/bin/python benchmarks/subscriptions_list.py [--subscriptions 1000] [--runs 5]

Set-up: a fresh broker (`drehscheibe broker serve` on a free loopback port) holding
`--subscriptions` subscriptions (owned names, one endpoint each, as a consumers file makes
them). Measured, median and max of `--runs`:

- the library call `Client.list_subscriptions()` (pages of up to 1,000 through all of them, each
  subscription parsed into `ngsi.Subscription`);
- the whole command `drehscheibe subscriptions list` as a user runs it, table and `--output
  json`, including the start of the Python process;
- the CPU time (user + system) of each command, which a loaded machine hardly changes;
- for comparison, the start of the process alone (`drehscheibe --version`) and the root help
  (`drehscheibe --help`, which lists every group without importing their modules).
"""

from __future__ import annotations

import argparse
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


CPU: dict[str, list[float]] = {}
"""CPU seconds (user + system) of each timed subprocess, by command: on a loaded machine the
wall time grows with the load, the CPU time hardly."""


def timed(command: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    CPU.setdefault(" ".join(command), []).append(cpu)
    return elapsed


def summary(label: str, seconds: list[float], command: list[str] | None = None) -> str:
    line = (
        f"{label:<44} median {statistics.median(seconds) * 1000:7.1f} ms   "
        f"max {max(seconds) * 1000:7.1f} ms"
    )
    if command is not None:
        line += f"   CPU median {statistics.median(CPU[' '.join(command)]) * 1000:7.1f} ms"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from ngsi import Client

    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="bench-subscriptions-"))
    broker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drehscheibe",
            "broker",
            "serve",
            "--data",
            str(data),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}"
        with Client(url, timeout=30) as client:
            started = time.perf_counter()
            for number in range(args.subscriptions):
                client.create_subscription(
                    {
                        "type": "Subscription",
                        "subscriptionName": f"bench/consumer-{number % 50}/sub-{number}",
                        "entities": [{"type": "BenchSensor"}],
                        "watchedAttributes": ["temperature"],
                        "q": f"temperature>{number % 40}",
                        "notification": {
                            "endpoint": {"uri": f"http://127.0.0.1:9/notify/{number}"},
                            "attributes": ["temperature"],
                        },
                    }
                )
            made = time.perf_counter() - started
            print(
                f"{args.subscriptions} subscriptions created in {made:.1f} s "
                f"({args.subscriptions / made:.0f}/s)"
            )
            library: list[float] = []
            for _ in range(args.runs):
                started = time.perf_counter()
                found = client.list_subscriptions()
                library.append(time.perf_counter() - started)
                assert len(found) == args.subscriptions, len(found)
        base = [sys.executable, "-m", "drehscheibe"]
        listing = [*base, "subscriptions", "list", "--broker", url]
        table = [timed(listing) for _ in range(args.runs)]
        as_json = [timed([*listing, "--output", "json"]) for _ in range(args.runs)]
        start_only = [timed([*base, "--version"]) for _ in range(args.runs)]
        root_help = [timed([*base, "--help"]) for _ in range(args.runs)]
        print(summary("Client.list_subscriptions()", library))
        print(summary("drehscheibe subscriptions list (table)", table, listing))
        print(
            summary(
                "drehscheibe subscriptions list --output json",
                as_json,
                [*listing, "--output", "json"],
            )
        )
        print(
            summary("drehscheibe --version (process start only)", start_only, [*base, "--version"])
        )
        print(summary("drehscheibe --help", root_help, [*base, "--help"]))
        print(
            "list without the process start (table):".ljust(44)
            + f" median {(statistics.median(table) - statistics.median(start_only)) * 1000:7.1f} ms"
        )
    finally:
        broker.terminate()
        broker.wait(timeout=20)


if __name__ == "__main__":
    main()
