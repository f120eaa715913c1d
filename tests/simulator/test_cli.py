"""`drehscheibe simulate ...` as real subprocesses: dry runs, the fleet file, frame counters
across restarts, registration through `drehscheibe devices` against the embedded broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agents.lorawan import Uplink, UplinkError, parse_message
from agents.registry import DEVICE_CONTEXT
from agents.simulator import build_fleet, load_fleet, register_fleet
from tests.broker.conftest import SDM_CONTEXTS, RunningBroker, start_broker
from tests.conftest import Mosquitto

LINK = f'<{DEVICE_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def simulate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drehscheibe", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def test_dry_run_once_prints_one_uplink_per_device_as_json_lines() -> None:
    records = lines(simulate("run", "--once", "-n", "9", "--seed", "2", "--dry-run"))
    assert len(records) == 9
    fleet = build_fleet(9, seed=2)
    assert {r["dev_eui"] for r in records} == {d.dev_eui for d in fleet.devices}
    for record in records:
        uplink = parse_message("tts", record["topic"], orjson.dumps(record["payload"]))
        assert isinstance(uplink, Uplink)
        assert uplink.f_cnt == 0
        assert "f_cnt" not in record["payload"]["uplink_message"]


def test_dry_run_chirpstack_with_corrupt_frames() -> None:
    records = lines(
        simulate(
            "run",
            "-n",
            "5",
            "--count",
            "60",
            "--dry-run",
            "--network-server",
            "chirpstack-v4",
            "--corrupt",
            "0.5",
            "--corruption",
            "truncated-json",
            "--corruption",
            "bad-base64",
        )
    )
    assert len(records) == 60
    broken = [r for r in records if "corruption" in r]
    assert 15 < len(broken) < 45
    for record in records:
        payload = record["payload"]
        body = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
        if "corruption" in record:
            with pytest.raises(UplinkError) as caught:
                parse_message("chirpstack-v4", record["topic"], body)
            expected = {"truncated-json": "malformed-json", "bad-base64": "bad-base64"}
            assert caught.value.reason == expected[record["corruption"]]
        else:
            assert isinstance(parse_message("chirpstack-v4", record["topic"], body), Uplink)


def test_frame_counters_continue_after_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    first = lines(simulate("run", "--once", "-n", "4", "--dry-run", "--state", str(state)))
    again = lines(simulate("run", "--once", "-n", "4", "--dry-run", "--state", str(state)))
    assert {r["f_cnt"] for r in first} == {0}
    assert {r["f_cnt"] for r in again} == {1}
    assert all(r["payload"]["uplink_message"]["f_cnt"] == 1 for r in again)


@pytest.mark.mqtt
def test_a_published_run_keeps_its_frame_counters_in_the_working_folder(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    result = simulate(
        "run", "--once", "-n", "3", "--seed", "7", "--rate", "50", "--mqtt-port",
        str(mosquitto.port), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sent 3 uplinks in 3 messages" in " ".join(result.stderr.split())
    saved = orjson.loads((tmp_path / "simulator-state.json").read_bytes())["f_cnt"]
    assert saved == {device.dev_eui: 1 for device in build_fleet(3, seed=7).devices}


def test_the_fleet_command_writes_a_file_the_run_reads(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    result = simulate("fleet", "-n", "14", "--seed", "3", "--kind", "noise", "--kind", "parking",
                      "--write", str(path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    fleet = load_fleet(path)
    assert {d.kind for d in fleet.devices} == {"noise", "parking"}
    shown = simulate("fleet", "--fleet", str(path), "--output", "json")
    assert orjson.loads(shown.stdout)["devices"][0]["dev_eui"] == fleet.devices[0].dev_eui
    records = lines(simulate("run", "--fleet", str(path), "--once", "--dry-run"))
    assert sorted(r["dev_eui"] for r in records) == sorted(d.dev_eui for d in fleet.devices)


def test_bad_options_exit_with_usage_or_invalid() -> None:
    unknown = simulate("fleet", "--city", "atlantis")
    assert unknown.returncode == 6
    assert "unknown city 'atlantis'" in unknown.stderr
    corruption = simulate("run", "--corrupt", "0.1", "--corruption", "x", "--dry-run")
    assert corruption.returncode == 6
    assert "unknown corruption(s) x" in corruption.stderr


def _device(broker: RunningBroker, dev_eui: str) -> dict[str, Any] | None:
    response = httpx.get(
        f"{broker.api}/entities/urn:ngsi-ld:Device:{dev_eui}", headers={"Link": LINK}, timeout=10
    )
    if response.status_code == 404:
        return None
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def test_register_creates_the_devices_through_the_cli_and_is_idempotent(tmp_path: Path) -> None:
    with start_broker(tmp_path / "broker", preload_contexts=dict(SDM_CONTEXTS)) as broker:
        result = simulate("register", "-n", "12", "--seed", "4", "--broker", broker.url,
                          "--output", "json")  # fmt: skip
        assert result.returncode == 0, result.stderr
        report = orjson.loads(result.stdout)
        fleet = build_fleet(12, seed=4)
        assert sorted(report["registered"]) == sorted(d.dev_eui for d in fleet.devices)
        assert report["skipped"] == []
        assert report["failed"] == []
        for device in fleet.devices:
            stored = _device(broker, device.dev_eui)
            assert stored is not None
            assert stored["profile"]["value"] == device.profile
            assert stored["measuringPoint"]["value"] == device.measuring_point
            assert stored["location"]["value"]["coordinates"] == list(device.location)

        again = simulate("register", "-n", "14", "--seed", "4", "--broker", broker.url,
                         "--output", "json")  # fmt: skip
        assert again.returncode == 0, again.stderr
        second = orjson.loads(again.stdout)
        assert sorted(second["skipped"]) == sorted(d.dev_eui for d in fleet.devices)
        assert len(second["registered"]) == 2

        # The library path is the same CLI, and finds everything registered now.
        report_again = register_fleet(build_fleet(14, seed=4), broker=broker.url)
        assert report_again.registered == []
        assert len(report_again.skipped) == 14


def test_register_reports_an_unreachable_broker(tmp_path: Path) -> None:
    result = simulate("register", "-n", "2", "--broker", "http://127.0.0.1:1")
    assert result.returncode == 3, result.stderr
    assert "devices list failed" in result.stderr
