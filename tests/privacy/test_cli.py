"""The `publish` and `erase` command groups as real subprocesses."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import yaml

from agents.delivery import DeadLetters, UplinkArchive
from ngsi import Client, NonexistentTenant
from tests.broker.conftest import RunningBroker, sdm_url
from tests.conftest import free_port
from tests.e2e.support import register, wait_for

EUI = "70B3D57ED00000D4"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def rules_file(tmp_path: Path, source: str, target: str) -> Path:
    (tmp_path / "publish.key").write_text("k" * 40)
    path = tmp_path / "publish.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "source_tenant": source,
                "target_tenant": target,
                "pseudonym_key_file": "publish.key",
                "types": [{"type": "Device", "attributes": ["location", "deviceState"]}],
            }
        )
    )
    return path


def test_publish_check_resync_and_an_invalid_rule_file(
    broker: RunningBroker, tmp_path: Path
) -> None:
    source, target = "s" + uuid.uuid4().hex[:8], "p" + uuid.uuid4().hex[:8]
    register(broker.url, EUI, tenant=source, location=(6.7734567, 51.2277123))
    rules = rules_file(tmp_path, source, target)
    module = ["-m", "drehscheibe.commands.publish"]
    checked = run(*module, "check", "-r", str(rules), "-o", "json")
    assert checked.returncode == 0, checked.stderr
    assert orjson.loads(checked.stdout)["types"][0]["coordinate_decimals"] == 3
    synced = run(*module, "resync", "-r", str(rules), "--broker", broker.url, "-o", "json")
    assert synced.returncode == 0, synced.stderr
    assert orjson.loads(synced.stdout) == {"read": 1, "written": 1, "deleted": 0, "failed": []}
    with Client(broker.url, tenant=target, profile="embedded") as client:
        [device] = client.query_all(type="Device", context=sdm_url("Device"))
    assert EUI not in device["id"]
    assert device["location"]["value"]["coordinates"] == [6.773, 51.228]
    assert set(device) == {"id", "type", "location", "deviceState"}
    rules.write_text("target_tenant: x\ntypes: []\n")
    invalid = run(*module, "check", "-r", str(rules))
    assert invalid.returncode == 6
    assert "publish.yaml" in invalid.stderr.replace("\n", "")  # rich wraps long lines


def test_erase_device_reports_per_store_and_expired_prunes(
    broker: RunningBroker, tmp_path: Path
) -> None:
    tenant = "e" + uuid.uuid4().hex[:8]
    register(broker.url, EUI, tenant=tenant)
    agent = tmp_path / "agent-data"
    agent.mkdir()
    with UplinkArchive(agent / "archive.db", retention=None) as archive:
        archive.add(source="s", payload=b"{}", received_at=datetime.now(UTC), dev_eui=EUI)
    with DeadLetters(agent / "outbox.db") as letters:
        letters.add(reason="codec-error", message="x", dev_eui=EUI)
    module = ["-m", "drehscheibe.commands.erase"]
    common = ["--broker", broker.url, "--tenant", tenant, "--data-dir", str(agent)]
    done = run(*module, "device", EUI, *common, "-o", "json")
    assert done.returncode == 0, done.stderr
    removed = orjson.loads(done.stdout)["removed"]
    assert removed["current_state"] == 1
    assert removed["history"] == 1
    assert removed["archive"] == 1
    assert removed["dead_letters"] == 1
    no_area = run(*module, "area", *common)
    assert no_area.returncode == 2
    expired = run(
        *module, "expired", "--data-dir", str(agent), "--dead-letter-days", "1", "-o", "json"
    )
    assert expired.returncode == 0, expired.stderr
    assert orjson.loads(expired.stdout) == {"archive": 0, "dead_letters": 0}


def _registered() -> set[str]:
    from drehscheibe.cli import COMMAND_GROUPS

    return {group[0] for group in COMMAND_GROUPS}


@pytest.mark.skipif(
    not {"publish", "erase"} <= _registered(), reason="publish/erase not registered in cli.py"
)
def test_the_groups_are_part_of_the_drehscheibe_command(tmp_path: Path) -> None:
    rules = rules_file(tmp_path, "a", "b")
    checked = run("-m", "drehscheibe", "publish", "check", "-r", str(rules))
    assert checked.returncode == 0, checked.stderr
    helped = run("-m", "drehscheibe", "erase", "--help")
    assert helped.returncode == 0
    assert "device" in helped.stdout


def test_publish_serve_keeps_the_public_tenant_current(
    broker: RunningBroker, tmp_path: Path
) -> None:
    source, target = "s" + uuid.uuid4().hex[:8], "p" + uuid.uuid4().hex[:8]
    rules = rules_file(tmp_path, source, target)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "drehscheibe.commands.publish",
                "serve",
                "-r",
                str(rules),
                "--broker",
                broker.url,
                "--port",
                str(port),
                "--state",
                str(tmp_path / "state"),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        with Client(broker.url, profile="embedded") as client:

            def subscribed() -> bool:
                try:
                    found = client.list_subscriptions(tenant=source)
                except NonexistentTenant:
                    return False
                return any(s.subscription_name == f"publish/{target}/Device" for s in found)

            wait_for(subscribed, timeout=90)
            register(broker.url, EUI, tenant=source, location=(6.7734567, 51.2277123))
            found = wait_for(
                lambda: client.query_all(type="Device", tenant=target, context=sdm_url("Device")),
                timeout=60,
            )
        assert found[0]["location"]["value"]["coordinates"] == [6.773, 51.228]
        assert EUI not in found[0]["id"]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0, log.read_text()
