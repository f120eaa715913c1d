"""The agent's command line as real subprocesses: `agent check`, `deadletters list | show |
replay | purge` and `uplinks replay`, beside a running agent."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.broker.conftest import RunningBroker, sdm_url
from tests.conftest import Mosquitto, run_drehscheibe
from tests.e2e.support import (
    agent_config,
    lpp,
    publisher,
    register,
    running_agent,
    tts_topic,
    tts_uplink,
    wait_for,
    write_config,
)
from tests.e2e.test_agent_flow import entity

pytestmark = pytest.mark.mqtt

WEATHER = sdm_url("Weather")

CUSTOM_PROFILE = """\
name: custom-th
codec: {name: cayennelpp}
controlled_property: [temperature]
entities:
  - type: WeatherObserved
    attributes:
      temperature: {source: temperature_1, unit: CEL}
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_drehscheibe(*args, timeout=120)


def test_agent_check_reports_problems_by_path(tmp_path: Path) -> None:
    good = write_config(
        tmp_path, agent_config(tmp_path, broker_url="http://127.0.0.1:1", tenant=None, webhook=True)
    )
    result = cli("agent", "check", "-c", str(good))
    assert result.returncode == 0, result.stderr
    summary = orjson.loads(result.stdout)
    assert [s["name"] for s in summary["sources"]] == ["hook"]
    assert "temperature-humidity-lpp" in summary["profiles"]
    (tmp_path / "webhook-secret").unlink()
    result = cli("agent", "check", "-c", str(good))
    assert result.returncode == 6
    assert "cannot read the secret file" in result.stderr
    document = yaml.safe_load(good.read_text())
    document["pipeline"]["batch_size"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document))
    result = cli("agent", "run", "-c", str(bad))
    assert result.returncode == 6
    assert "pipeline/batch_size" in result.stderr


def test_dead_letters_listed_shown_replayed_after_a_fix_and_purged(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    dev_eui = "70B3D57ED0000501"
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "custom-th.yaml").write_text(CUSTOM_PROFILE)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    register(
        broker.url,
        dev_eui,
        tenant=tenant,
        profile="custom-th",
        measuring_point="cli-1",
        profiles_dir=staged,
    )
    document = agent_config(
        tmp_path,
        broker_url=broker.url,
        tenant=tenant,
        mqtt_port=mosquitto.port,
        profiles={"dir": str(profiles)},
    )
    config = write_config(tmp_path, document)
    with running_agent(tmp_path, document) as agent, publisher(mosquitto.port) as pub:
        assert agent.pipeline is not None
        counters = agent.pipeline.counters
        pub.publish(tts_topic(dev_eui), b"garbage")
        pub.publish(tts_topic(dev_eui), tts_uplink(dev_eui, 1, lpp((1, "temperature", 17.5))))
        wait_for(lambda: counters.uplinks.get(("mqtt", "dead-letter")) == 2)

        listed = cli("deadletters", "list", "-c", str(config), "-o", "json")
        assert listed.returncode == 0, listed.stderr
        letters = orjson.loads(listed.stdout)
        assert sorted(letter["reason"] for letter in letters) == [
            "malformed-uplink",
            "mapping-error",
        ]
        mapping = next(letter for letter in letters if letter["reason"] == "mapping-error")
        assert "custom-th" in mapping["message"]
        table = cli("deadletters", "list", "--data-dir", str(agent.config.agent.data_dir))
        assert table.returncode == 0
        assert "mapping-error" in table.stdout

        shown = cli("deadletters", "show", str(mapping["id"]), "-c", str(config))
        assert shown.returncode == 0, shown.stderr
        detail = orjson.loads(shown.stdout)
        assert detail["payload_encoding"] == "text"
        assert orjson.loads(detail["payload"])["end_device_ids"]["dev_eui"] == dev_eui
        assert detail["detail"]["topic"] == tts_topic(dev_eui)

        # the fix: the profile the device names is installed; the letter is replayed
        (profiles / "custom-th.yaml").write_text(CUSTOM_PROFILE)
        replayed = cli(
            "deadletters", "replay", "-c", str(config), "--reason", "mapping-error", "-o", "json"
        )
        assert replayed.returncode == 0, replayed.stderr
        report = orjson.loads(replayed.stdout)
        assert report["taken"] == 1
        assert report["entities"] == 2
        found = wait_for(
            lambda: entity(broker, tenant, "urn:ngsi-ld:WeatherObserved:cli-1", WEATHER)
        )
        assert found["temperature"]["value"] == 17.5

        refused = cli("deadletters", "purge", "-c", str(config))
        assert refused.returncode == 2
        purged = cli("deadletters", "purge", "-c", str(config), "--replayed")
        assert purged.returncode == 0, purged.stderr
        assert purged.stdout.strip() == "1 dead letters deleted"
        left = orjson.loads(cli("deadletters", "list", "-c", str(config), "-o", "json").stdout)
        assert [letter["reason"] for letter in left] == ["malformed-uplink"]


def test_archived_uplinks_of_an_unknown_device_are_replayed_once_it_is_registered(
    broker: RunningBroker, mosquitto: Mosquitto, tenant: str, tmp_path: Path
) -> None:
    dev_eui = "70B3D57ED0000601"
    document = agent_config(
        tmp_path, broker_url=broker.url, tenant=tenant, mqtt_port=mosquitto.port
    )
    config = write_config(tmp_path, document)
    with running_agent(tmp_path, document) as agent, publisher(mosquitto.port) as pub:
        assert agent.pipeline is not None
        counters = agent.pipeline.counters
        for n in (1, 2):
            pub.publish(
                tts_topic(dev_eui), tts_uplink(dev_eui, n, lpp((1, "temperature", 10.0 + n)))
            )
        wait_for(lambda: counters.uplinks.get(("mqtt", "unknown-device")) == 2)
        register(broker.url, dev_eui, tenant=tenant, measuring_point="nachgeholt")
        dry = cli("uplinks", "replay", "-c", str(config), "--device", dev_eui.lower(), "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.strip() == "2 archived uplinks would be replayed"
        result = cli(
            "uplinks",
            "replay",
            "-c",
            str(config),
            "--device",
            dev_eui,
            "--since",
            "1h",
            "-o",
            "json",
        )
        assert result.returncode == 0, result.stderr
        report: dict[str, Any] = orjson.loads(result.stdout)
        assert report["uplinks"] == 2
        assert report["outcomes"] == {"accepted": 2}
        found = wait_for(
            lambda: (
                (e := entity(broker, tenant, "urn:ngsi-ld:WeatherObserved:nachgeholt", WEATHER))
                and e["temperature"]["value"] == 12.0
                and e
            )
        )
    assert found["refDevice"]["object"] == f"urn:ngsi-ld:Device:{dev_eui}"
    usage = cli("uplinks", "replay", "-c", str(config))
    assert usage.returncode == 2
