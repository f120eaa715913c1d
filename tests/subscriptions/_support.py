"""Helpers for the subscription and consumer tests: a broker with chosen notifier settings, the
CLI as a subprocess, consumer processes, entities to upsert. No tests live here."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from ngsi.broker import BrokerSettings, create_app
from ngsi.broker._subscriptions import create_extension
from tests._serve import serve_app
from tests.broker.conftest import SDM_CONTEXTS, sdm_url
from tests.conftest import REPO, free_port, wait_for_port

TRANSPORTATION = sdm_url("Transportation")
ENVIRONMENT = sdm_url("Environment")
PARKING = sdm_url("Parking")


@dataclass
class Broker:
    url: str
    app: Any
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def service(self) -> Any:
        return self.app.state.broker.extras["subscriptions"]


@contextlib.contextmanager
def broker_with(data_dir: Path, **subscription_options: Any) -> Iterator[Broker]:
    """The embedded broker (SDM contexts preloaded) on a free port, its notifier configured
    with `subscription_options` (`retry_delays`, `timeout`, ...)."""
    port = free_port()
    settings = BrokerSettings(data_dir=data_dir, port=port, preload_contexts=dict(SDM_CONTEXTS))
    app = create_app(settings, extensions=[create_extension(settings, **subscription_options)])
    with serve_app(app, port=port, name="broker") as served:
        yield Broker(url=served.url, app=app, server=served.server, thread=served.thread)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DREHSCHEIBE_")}
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m drehscheibe ARGS` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "drehscheibe", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
        env=env or cli_env(),
    )


@dataclass
class ConsumerProcess:
    """`drehscheibe consume run ...` in a subprocess (stdout and stderr in `log`)."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def notify_url(self) -> str:
        return self.url + "/notify"

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=5)
        response.raise_for_status()
        return response.json()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, text: str, *, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in the consumer's output:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_consumer(
    kind: str,
    *args: str,
    log: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> ConsumerProcess:
    """Start a consumer on `port` (a free one by default) and wait until it answers."""
    port = port or free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "drehscheibe",
                "consume",
                "run",
                kind,
                "--port",
                str(port),
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env or cli_env(),
        )
    running = ConsumerProcess(process=process, port=port, log=log)
    try:
        wait_for_port(port, timeout=30)
    except TimeoutError:
        running.stop()
        raise RuntimeError(f"the consumer did not start:\n{running.output()}") from None
    return running


def now_text() -> str:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}Z"


def traffic_flow(
    number: int, *, intensity: float, at: str, segment: int | None = None
) -> dict[str, Any]:
    """A TrafficFlowObserved lane entity (normalized), observed `at`."""
    seg = number if segment is None else segment
    return {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:lane-{number}",
        "type": "TrafficFlowObserved",
        "intensity": {"type": "Property", "value": intensity, "observedAt": at},
        "averageVehicleSpeed": {"type": "Property", "value": 40.0, "observedAt": at},
        "refRoadSegment": {"type": "Relationship", "object": f"urn:ngsi-ld:RoadSegment:{seg}"},
        "dateObserved": {"type": "Property", "value": at},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [round(13.40 + seg * 0.001, 6), 52.52]},
        },
    }


def air_quality(number: int, *, no2: float, at: str) -> dict[str, Any]:
    """An AirQualityObserved entity (normalized), observed `at`."""
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:station-{number}",
        "type": "AirQualityObserved",
        "no2": {"type": "Property", "value": no2, "unitCode": "GQ", "observedAt": at},
        "dateObserved": {"type": "Property", "value": at},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [round(13.30 + number * 0.01, 6), 52.50]},
        },
    }


def wait_until(condition: Any, *, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def write_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def names(subscriptions: Sequence[Any]) -> list[str]:
    return sorted(str(s.subscription_name) for s in subscriptions)
