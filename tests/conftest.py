"""Fixtures shared by the whole suite: the shared reference folder, free ports, Mosquitto."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures"]

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's `shared/` folder beside the checkout (reference data, vectors, schemas)."""
    if not SHARED.is_dir():
        pytest.fail(f"the shared reference folder is missing: {SHARED}")
    return SHARED


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_drehscheibe(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """`drehscheibe ARGS` as a subprocess of this Python, its output captured as text; `env`
    replaces the environment (default: this one, with tables 250 columns wide)."""
    return subprocess.run(
        [sys.executable, "-m", "drehscheibe", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=dict(env) if env is not None else {**os.environ, "COLUMNS": "250"},
    )


def wait_for_port(port: int, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        pytest.fail("mosquitto is not installed: run `make test`, which installs it")
    return found


@dataclass
class Mosquitto:
    """A Mosquitto broker on loopback; `stop()` and `start()` simulate an outage."""

    port: int
    config: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh Mosquitto 2 on 127.0.0.1 with a free port, anonymous access, no persistence."""
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = Mosquitto(port=port, config=config)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
