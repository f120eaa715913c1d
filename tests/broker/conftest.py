"""Fixtures to run the embedded broker over real HTTP on 127.0.0.1.

- `start_broker(data_dir, **settings)`: a context manager that serves `create_app` with uvicorn
  in a thread on a free port and yields a `RunningBroker` (`.url` is the base URL,
  `.api` the `/ngsi-ld/v1` URL). Settings are `BrokerSettings` fields.
- `broker` / `broker_url`: one broker per test module (fresh data folder), with the Smart Data
  Models contexts of `../shared/sdm` preloaded under their official URLs (`SDM_CONTEXTS`).
  Tests sharing it use their own entity ids or tenants.
- `start_broker_process(data_dir, *args)`: `drehscheibe broker serve` as a real subprocess
  (for restarts and `kill -9`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ngsi.broker import BrokerSettings, create_app
from tests._serve import serve_app
from tests.conftest import SHARED, free_port, wait_for_port

SDM_SUBJECTS = ("Environment", "Weather", "Device", "Parking", "Transportation")


def sdm_url(subject: str) -> str:
    """The official @context URL of a Smart Data Models subject."""
    return (
        f"https://raw.githubusercontent.com/smart-data-models/dataModel.{subject}/master/"
        "context.jsonld"
    )


SDM_CONTEXTS: dict[str, Path] = {
    sdm_url(subject): SHARED / "sdm" / f"dataModel.{subject}" / "context.jsonld"
    for subject in SDM_SUBJECTS
}


@dataclass
class RunningBroker:
    url: str
    settings: BrokerSettings
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def api(self) -> str:
        return self.url + "/ngsi-ld/v1"

    @property
    def port(self) -> int:
        return self.settings.port

    def entity(
        self, entity_id: str, *, tenant: str, context: str | None = None, **params: str
    ) -> dict[str, Any] | None:
        """GET the entity (terms compacted with `context`, expanded without), or None when
        the broker does not have it."""
        headers = {"NGSILD-Tenant": tenant}
        if context is not None:
            headers["Link"] = (
                f'<{context}>; rel="http://www.w3.org/ns/json-ld#context"; '
                'type="application/ld+json"'
            )
        response = httpx.get(
            f"{self.api}/entities/{entity_id}", params=params, headers=headers, timeout=10
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found


@contextlib.contextmanager
def start_broker(data_dir: Path, **settings: Any) -> Iterator[RunningBroker]:
    """Serve a broker on a free port of 127.0.0.1 in a thread until the block ends."""
    port = settings.pop("port", None) or free_port()
    config_settings = BrokerSettings(data_dir=data_dir, port=port, **settings)
    with serve_app(create_app(config_settings), port=port, name="broker") as served:
        yield RunningBroker(
            url=served.url, settings=config_settings, server=served.server, thread=served.thread
        )


@pytest.fixture(scope="module")
def broker_url(broker: RunningBroker) -> str:
    """Base URL of the module's broker (`http://127.0.0.1:PORT`)."""
    return broker.url


@pytest.fixture
def http(broker: RunningBroker) -> Iterator[httpx.Client]:
    """An httpx client on the module's broker `/ngsi-ld/v1`."""
    with httpx.Client(base_url=broker.api, timeout=10) as client:
        yield client


@dataclass
class BrokerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, as a power cut or the OOM killer would."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def start_broker_process(data_dir: Path, *args: str, log: Path | None = None) -> BrokerProcess:
    """`drehscheibe broker serve --data DATA_DIR --port FREE ARGS...` in a subprocess."""
    port = free_port()
    log = log or data_dir.with_name(data_dir.name + f"-{port}.log")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "drehscheibe",
                "broker",
                "serve",
                "--data",
                str(data_dir),
                "--port",
                str(port),
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = BrokerProcess(process=process, port=port, log=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            wait_for_port(port, timeout=0.2)
            return running
        except TimeoutError:
            if process.poll() is not None or time.monotonic() > deadline:
                running.stop()
                output = log.read_text(errors="replace")
                raise RuntimeError(f"the broker did not start: {output}") from None
