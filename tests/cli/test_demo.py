"""`drehscheibe demo` as a newcomer runs it: everything up, data in the broker, a clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port


def _children_of(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(status.parent.name))
    return found


def _start(data: Path, port: int, web_port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drehscheibe",
            "demo",
            "--data",
            str(data),
            "--port",
            str(port),
            "--web-port",
            str(web_port),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def _wait_for_banner(demo: subprocess.Popen[str]) -> str:
    assert demo.stderr is not None
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = demo.stderr.readline()
        if not line and demo.poll() is not None:
            break
        seen.append(line)
        if "Press Ctrl-C" in line:
            return "".join(seen)
    raise AssertionError("the demo did not come up:\n" + "".join(seen))


def test_demo_runs_keeps_its_data_and_stops_cleanly(tmp_path: Path) -> None:
    port, web_port = free_port(), free_port()
    broker = f"http://127.0.0.1:{port}/ngsi-ld/v1"
    for run in range(2):
        demo = _start(tmp_path / "demo", port, web_port)
        try:
            banner = _wait_for_banner(demo)
            assert broker in banner
            children = _children_of(demo.pid)
            assert len(children) >= 2, "broker and page run as child processes"
            entities = httpx.get(
                f"{broker}/entities",
                params={
                    "type": "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"
                },
            ).json()
            assert len(entities) == 3
            page = httpx.get(f"http://127.0.0.1:{web_port}/")
            assert page.status_code == 200
            assert "<html" in page.text.lower()
        finally:
            demo.send_signal(signal.SIGINT)
            code = demo.wait(timeout=30)
            assert demo.stderr is not None
            demo.stderr.close()
        assert code == 0
        for child in children:
            assert not Path(f"/proc/{child}").exists(), f"child {child} left behind (run {run})"
    assert (tmp_path / "demo" / "broker").is_dir()
