"""The agent's configuration: JSON Schema first (errors name the path), environment overrides,
secrets from files or the environment, paths relative to the file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from agents.runtime import AgentConfig, ConfigError, load_config, resolve_secret
from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "agent.yaml"


def test_the_example_configuration_is_valid() -> None:
    config = load_config(EXAMPLE, environ={})
    assert [s.name for s in config.sources] == [
        "tts-city",
        "chirpstack",
        "tts-webhook",
        "chirpstack-http",
    ]
    assert config.agent.data_dir == EXAMPLE.parent / "agent-data"
    webhook = config.source("chirpstack-http").webhook
    assert webhook is not None
    assert webhook.secret is not None
    assert webhook.secret.file == EXAMPLE.parent / "secrets" / "chirpstack-webhook"


def test_the_example_names_every_setting() -> None:
    """The README promises every setting in the example, commented where it has no default."""
    schema = orjson.loads((REPO / "schemas" / "json" / "agent-config.schema.json").read_bytes())
    named = set(re.findall(r"\b([a-z_]+):", EXAMPLE.read_text()))
    missing: list[str] = []

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        for name, child in node.get("properties", {}).items():
            if name not in named:
                missing.append(f"{path}.{name}")
            walk(child, f"{path}.{name}")
        walk(node.get("items"), f"{path}[]")
        for alternative in (*node.get("oneOf", ()), *node.get("anyOf", ())):
            walk(alternative, path)

    walk(schema, "")
    assert missing == []


def test_every_violation_is_reported_with_its_path() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["sources"][0]["mqtt"]["port"] = 70000
    data["sources"][1]["mqtt"]["password"] = "in-the-file"
    data["pipeline"]["batch"] = 3
    del data["sources"][3]["webhook"]
    with pytest.raises(ConfigError) as caught:
        AgentConfig.from_mapping(data, environ={}, origin="agent.yaml")
    problems = caught.value.problems
    assert "sources/0/mqtt/port: 70000 is greater than the maximum of 65535" in problems
    assert any(p.startswith("sources/1/mqtt:") and "'password'" in p for p in problems)
    assert any(p.startswith("pipeline:") and "'batch'" in p for p in problems)
    assert any(p.startswith("sources/3/webhook:") for p in problems)
    assert str(caught.value).startswith("agent.yaml: invalid agent configuration:")


def test_yaml_errors_name_the_line(tmp_path: Path) -> None:
    file = tmp_path / "agent.yaml"
    file.write_text("agent:\n  name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: not valid YAML"):
        load_config(file, environ={})


def test_duplicate_source_names_are_refused() -> None:
    source = {
        "name": "a",
        "network_server": "tts",
        "transport": "webhook",
        "webhook": {"path": "/w/a"},
    }
    with pytest.raises(ConfigError, match="two sources are named 'a'"):
        AgentConfig.from_mapping(
            {"sources": [source, {**source, "webhook": {"path": "/b"}}]}, environ={}
        )


def test_environment_overrides_win_over_the_file(tmp_path: Path) -> None:
    environ = {
        "DREHSCHEIBE_BROKER_URL": "http://broker.internal:1026",
        "DREHSCHEIBE_BROKER_TOKEN": "tok",
        "DREHSCHEIBE_AGENT_NAME": "agent-2",
        "DREHSCHEIBE_HTTP_PORT": "9100",
        "DREHSCHEIBE_LOG_FORMAT": "JSON",
        "DREHSCHEIBE_SOURCE_TTS_CITY_PASSWORD": "api-key",
        "DREHSCHEIBE_SOURCE_CHIRPSTACK_HTTP_SECRET": "s3cret",
    }
    config = load_config(EXAMPLE, environ=environ)
    assert config.broker.url == "http://broker.internal:1026"
    assert resolve_secret(config.broker.token, what="broker token") == "tok"
    assert config.agent.name == "agent-2"
    assert config.http.port == 9100
    assert config.logging.format == "json"
    mqtt = config.source("tts-city").mqtt
    assert mqtt is not None
    assert resolve_secret(mqtt.password, what="x") == "api-key"
    webhook = config.source("chirpstack-http").webhook
    assert webhook is not None
    assert resolve_secret(webhook.secret, what="x") == "s3cret"


def test_an_invalid_override_is_reported_like_a_file_error() -> None:
    with pytest.raises(ConfigError, match="http/port"):
        load_config(EXAMPLE, environ={"DREHSCHEIBE_HTTP_PORT": "many"})


def test_secrets_come_from_files_and_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secret").write_text("from-file\n")
    file = tmp_path / "agent.yaml"
    file.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "hook",
                        "network_server": "chirpstack-v4",
                        "transport": "webhook",
                        "webhook": {"path": "/hook", "secret_file": "secret"},
                    },
                    {
                        "name": "mq",
                        "network_server": "chirpstack-v4",
                        "transport": "mqtt",
                        "mqtt": {"host": "localhost", "password_env": "MQ_PASSWORD"},
                    },
                ]
            }
        )
    )
    config = load_config(file, environ={})
    webhook = config.source("hook").webhook
    assert webhook is not None
    assert resolve_secret(webhook.secret, what="hook") == "from-file"
    mqtt = config.source("mq").mqtt
    assert mqtt is not None
    with pytest.raises(ConfigError, match="MQ_PASSWORD is not set"):
        resolve_secret(mqtt.password, what="source mq password")
    monkeypatch.setenv("MQ_PASSWORD", "pw")
    assert resolve_secret(mqtt.password, what="source mq password") == "pw"
    (tmp_path / "secret").unlink()
    with pytest.raises(ConfigError, match="cannot read the secret file"):
        resolve_secret(webhook.secret, what="hook")


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    file = tmp_path / "agent.yaml"
    file.write_text("")
    config = load_config(file, environ={})
    assert config.sources == ()
    assert config.broker.url == "http://127.0.0.1:1026"
    assert config.agent.data_dir == tmp_path / "agent-data"


def test_the_fleet_settings_are_read_and_their_key_file_is_found_beside_the_config(
    tmp_path: Path,
) -> None:
    (tmp_path / "storage.key").write_text("NNSXS.storage\n")
    file = tmp_path / "agent.yaml"
    file.write_text(
        yaml.safe_dump(
            {
                "fleet": {
                    "interval": 30,
                    "silent_after": 3,
                    "backfill": [
                        {
                            "source": "tts",
                            "url": "https://eu1.cloud.thethings.network",
                            "api_key_file": "storage.key",
                        }
                    ],
                }
            }
        )
    )
    config = load_config(file, environ={})
    assert config.fleet.interval == 30
    assert config.fleet.silent_after == 3
    (backfill,) = config.fleet.backfill
    assert backfill.api_key_file == tmp_path / "storage.key"
    assert backfill.api_key() == "NNSXS.storage"
