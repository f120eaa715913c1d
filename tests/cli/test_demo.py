"""`drehscheibe demo` as a newcomer runs it: the whole path up, entities from the simulated
fleet in the broker, the consumers' outputs written, the page listing the devices; Ctrl-C
leaves no process behind and a second run on the same folder keeps the data."""

from __future__ import annotations

import functools
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.profiles import ProfileCatalog
from agents.simulator import build_fleet
from tests.conftest import free_port, mosquitto_binary

DEVICES = 6
"""The fleet's first six sites: air quality, noise, parking, traffic, water level, people."""

PORT_OPTIONS = (
    "--port",
    "--mqtt-port",
    "--agent-port",
    "--web-port",
    "--traffic-port",
    "--environment-port",
    "--planning-port",
)


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(status.parent.name)] = int(fields[1])
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found.extend(children)
        todo.extend(children)
    return found


def _start(data: Path, ports: dict[str, int]) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "drehscheibe", "demo", "--data", str(data)]
    for option, port in ports.items():
        argv += [option, str(port)]
    argv += ["--devices", str(DEVICES), "--rate", "6"]
    # as a shell without job control starts `demo &`: Ctrl-C (SIGINT) must stop it all the same
    return subprocess.Popen(
        argv,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        preexec_fn=functools.partial(signal.signal, signal.SIGINT, signal.SIG_IGN),
    )


def _wait_for_banner(demo: subprocess.Popen[str]) -> str:
    assert demo.stderr is not None
    seen = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = demo.stderr.readline()
        if not line and demo.poll() is not None:
            break
        seen.append(line)
        if "Press Ctrl-C" in line:
            return "".join(seen)
    raise AssertionError("the demo did not come up:\n" + "".join(seen))


def _wait(predicate: Callable[[], Any], *, until: float, what: str) -> Any:
    last: Any = None
    while time.monotonic() < until:
        last = predicate()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what} not within 60 s of the banner (last {last!r})")


def _expected_entities() -> list[str]:
    catalog = ProfileCatalog()
    expected = []
    for device in build_fleet(DEVICES, seed=0).devices:
        for entity in catalog.get(device.profile).entities:
            suffix = f":{entity.id_suffix}" if entity.id_suffix else ""
            expected.append(f"urn:ngsi-ld:{entity.type}:{device.measuring_point}{suffix}")
    return expected


def _planning_rows(archive: Path) -> int:
    if not archive.is_file():
        return 0
    with sqlite3.connect(archive) as db:
        try:
            rows: int = db.execute("SELECT count(*) FROM changes").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
    return rows


def _grown(archive: Path, before: int) -> Callable[[], bool]:
    return lambda: _planning_rows(archive) > before


@pytest.mark.mqtt
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_demo_brings_the_path_up_keeps_its_data_and_stops_cleanly(tmp_path: Path) -> None:
    mosquitto_binary()
    data = tmp_path / "demo"
    ports = {option: free_port() for option in PORT_OPTIONS}
    api = f"http://127.0.0.1:{ports['--port']}/ngsi-ld/v1"
    page = f"http://127.0.0.1:{ports['--web-port']}"
    consumers = data / "consumers"
    expected = _expected_entities()
    fleet = build_fleet(DEVICES, seed=0)
    kept_rows = 0
    for run in range(2):
        demo = _start(data, ports)
        children: list[int] = []
        try:
            banner = _wait_for_banner(demo)
            until = time.monotonic() + 60
            children = _descendants(demo.pid)
            assert len(children) >= 8, "broker, Mosquitto, agent, 3 consumers, simulator, page"
            for where in (api, f"{page}/", "/metrics", str(consumers / "planning.sqlite")):
                assert where in banner
            if run == 1:
                assert _planning_rows(consumers / "planning.sqlite") >= kept_rows > 0

            def missing() -> list[str]:
                return [
                    entity_id
                    for entity_id in expected
                    if httpx.get(f"{api}/entities/{entity_id}", timeout=10).status_code != 200
                ]

            _wait(lambda: not missing(), until=until, what="the fleet's entities")

            def listed() -> set[str]:
                # Seen: the agent reported the device's uplinks (its dateLastValueReported).
                response = httpx.get(f"{page}/api/devices", timeout=10)
                if response.status_code != 200:
                    return set()
                devices = response.json()["devices"]
                if not any(d["observations"] for d in devices):
                    return set()
                return {d["devEui"] for d in devices if d.get("lastSeen")}

            _wait(
                lambda: {d.dev_eui for d in fleet.devices} <= listed(),
                until=until,
                what="the devices on the page",
            )
            _wait(
                lambda: (
                    (consumers / "traffic-state.json").is_file()
                    and "roadSegments" in (consumers / "traffic-state.json").read_text()
                ),
                until=until,
                what="the traffic consumer's state",
            )
            _wait(
                lambda: (
                    (consumers / "environment" / "changes.jsonl").is_file()
                    and (consumers / "environment" / "changes.jsonl").stat().st_size > 0
                ),
                until=until,
                what="the environment consumer's changes",
            )
            _wait(
                _grown(consumers / "planning.sqlite", kept_rows),
                until=until,
                what="new rows in the planning archive",
            )
            kept_rows = _planning_rows(consumers / "planning.sqlite")
            # New rows can come from the outbox the previous run left; wait for this run's
            # simulator to have registered its fleet too.
            _wait(
                functools.partial(_registered_after, data / "logs" / "simulator.log", run),
                until=until,
                what="the simulator's registration",
            )
        finally:
            demo.send_signal(signal.SIGINT)
            code = demo.wait(timeout=60)
            assert demo.stderr is not None
            demo.stderr.close()
        assert code == 0
        for child in children:
            assert not Path(f"/proc/{child}").exists(), f"child {child} left behind (run {run})"
    simulator_log = (data / "logs" / "simulator.log").read_text()
    assert f"already registered {DEVICES}" in simulator_log, "the second run kept the devices"


def _registered_after(log: Path, runs: int) -> bool:
    """Whether more than `runs` runs of the simulator have reported their registration."""
    if not log.is_file():
        return False
    lines = log.read_text(encoding="utf-8").splitlines()
    return sum("already registered" in line for line in lines) > runs


def test_demo_refuses_ports_in_use_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {option: free_port() for option in PORT_OPTIONS}
        ports["--mqtt-port"] = port
        demo = _start(tmp_path / "demo", ports)
        assert demo.stderr is not None
        message = demo.stderr.read()
        assert demo.wait(timeout=60) == 2
        demo.stderr.close()
    assert f"{port} (--mqtt-port)" in message
    assert not (tmp_path / "demo" / "logs").exists(), "nothing was started"
