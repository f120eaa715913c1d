"""The demo's layout and generated configurations, all under one data folder.

`DemoLayout(data)` names every file the demo writes (configurations in `config/`, logs in
`logs/`, each component's state in its own folder); `write_mosquitto_config`,
`write_agent_config` and `write_consumers_file` write the configurations for the ports of one
run. They are written again at every start (the ports may change); the data stays.
"""

from __future__ import annotations

import os
import pwd
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

__all__ = [
    "ENVIRONMENT_SECRET_ENV",
    "SECRET_HEADER",
    "DemoLayout",
    "DemoPorts",
    "environment_secret",
    "write_agent_config",
    "write_consumers_file",
    "write_mosquitto_config",
]

ENVIRONMENT_SECRET_ENV = "DREHSCHEIBE_ENVIRONMENT_SECRET"
SECRET_HEADER = "X-Drehscheibe-Secret"
"""receiverInfo header carrying the environment consumer's shared secret."""

SIMULATOR_APPLICATION = "city-sensors"
SIMULATOR_NS_TENANT = "ttn"
"""The simulated fleet's The Things Stack application and tenant (the simulator's defaults)."""


@dataclass(frozen=True)
class DemoPorts:
    """TCP ports on 127.0.0.1 of one demo run."""

    broker: int = 1026
    mqtt: int = 1883
    agent: int = 8080
    web: int = 8090
    traffic: int = 8091
    environment: int = 8092
    planning: int = 8093


@dataclass(frozen=True)
class DemoLayout:
    """Where the demo keeps everything, below `data` (made absolute)."""

    data: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", self.data.resolve())

    @property
    def config(self) -> Path:
        return self.data / "config"

    @property
    def logs(self) -> Path:
        return self.data / "logs"

    @property
    def contexts(self) -> Path:
        return self.data / "contexts"

    @property
    def broker(self) -> Path:
        return self.data / "broker"

    @property
    def mosquitto(self) -> Path:
        return self.data / "mosquitto"

    @property
    def agent(self) -> Path:
        return self.data / "agent"

    @property
    def consumers(self) -> Path:
        return self.data / "consumers"

    @property
    def traffic_out(self) -> Path:
        return self.consumers / "traffic-state.json"

    @property
    def environment_out(self) -> Path:
        return self.consumers / "environment"

    @property
    def planning_out(self) -> Path:
        return self.consumers / "planning.sqlite"

    @property
    def simulator_state(self) -> Path:
        return self.data / "simulator-state.json"

    @property
    def secret_file(self) -> Path:
        return self.data / "secrets" / "environment-secret"


def environment_secret(layout: DemoLayout) -> str:
    """The environment consumer's shared secret: `$DREHSCHEIBE_ENVIRONMENT_SECRET` when set,
    else one made at the first run and kept in the data folder (mode 0600)."""
    given = os.environ.get(ENVIRONMENT_SECRET_ENV)
    if given:
        return given
    path = layout.secret_file
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.write_text(value + "\n", encoding="utf-8")
    return value


def write_mosquitto_config(layout: DemoLayout, ports: DemoPorts) -> Path:
    """Mosquitto on 127.0.0.1 only, anonymous, persistent in the data folder (queued QoS 1
    messages survive a restart); it keeps running as the current user."""
    layout.config.mkdir(parents=True, exist_ok=True)
    layout.mosquitto.mkdir(parents=True, exist_ok=True)
    path = layout.config / "mosquitto.conf"
    path.write_text(
        "# Written by `drehscheibe demo` at every start.\n"
        f"listener {ports.mqtt} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {layout.mosquitto}/\n"
        "autosave_interval 30\n"
        f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
        "log_dest stdout\n",
        encoding="utf-8",
    )
    return path


def agent_config(layout: DemoLayout, ports: DemoPorts) -> dict[str, Any]:
    """The agent's configuration: the simulator's TTS topics on the demo's Mosquitto, the
    embedded broker, outbox and archive under the data folder."""
    return {
        "agent": {"name": "demo-agent", "data_dir": str(layout.agent)},
        "broker": {
            "url": f"http://127.0.0.1:{ports.broker}",
            "profile": "embedded",
            "retry_max": 5,
        },
        "http": {"host": "127.0.0.1", "port": ports.agent},
        "sources": [
            {
                "name": "simulator",
                "network_server": "tts",
                "transport": "mqtt",
                "mqtt": {
                    "host": "127.0.0.1",
                    "port": ports.mqtt,
                    "qos": 1,
                    "application": SIMULATOR_APPLICATION,
                    "ns_tenant": SIMULATOR_NS_TENANT,
                },
            }
        ],
        "pipeline": {"batch_wait": 0.05},
        "logging": {"level": "info", "format": "text"},
    }


def write_agent_config(layout: DemoLayout, ports: DemoPorts) -> Path:
    layout.config.mkdir(parents=True, exist_ok=True)
    path = layout.config / "agent.yaml"
    text = yaml.safe_dump(agent_config(layout, ports), sort_keys=False)
    path.write_text("# Written by `drehscheibe demo` at every start.\n" + text, encoding="utf-8")
    return path


def _uri(endpoint: Any) -> str:
    return str(endpoint["uri"] if isinstance(endpoint, dict) else endpoint)


def _with_uri(endpoint: Any, uri: str) -> Any:
    if isinstance(endpoint, dict):
        return {**endpoint, "uri": uri}
    return uri


def write_consumers_file(
    template: Path, layout: DemoLayout, ports: DemoPorts
) -> tuple[Path, str | None]:
    """A copy of the consumers file `template` whose endpoints reach the demo's consumers.

    Consumers are matched by `kind` (else name): traffic and environment over HTTP on their
    ports, planning over MQTT on the demo's Mosquitto when the template has it there (else HTTP).
    The environment endpoint carries the shared secret as `${DREHSCHEIBE_ENVIRONMENT_SECRET}`.
    Returns the file and the planning consumer's MQTT URL (None: it is notified over HTTP).
    Raises ValueError naming a consumer the demo does not run.
    """
    document = yaml.safe_load(template.read_text(encoding="utf-8"))
    http_ports = {
        "traffic": ports.traffic,
        "environment": ports.environment,
        "planning": ports.planning,
    }
    planning_mqtt: str | None = None
    for consumer in document.get("consumers", []):
        kind = consumer.get("kind") or consumer.get("name")
        if kind not in http_ports:
            raise ValueError(
                f"{template}: consumer {consumer.get('name')!r} is of kind {kind!r}; the demo "
                "runs the traffic, environment and planning consumers only"
            )
        endpoint = consumer["endpoint"]
        parts = urlsplit(_uri(endpoint))
        if kind == "planning" and parts.scheme.startswith("mqtt"):
            planning_mqtt = urlunsplit(("mqtt", f"127.0.0.1:{ports.mqtt}", parts.path, "", ""))
            consumer["endpoint"] = _with_uri(endpoint, planning_mqtt)
            continue
        uri = f"http://127.0.0.1:{http_ports[kind]}/notify"
        endpoint = _with_uri(endpoint, uri)
        if kind == "environment":
            if not isinstance(endpoint, dict):
                endpoint = {"uri": uri}
            given = endpoint.get("receiverInfo") or {}
            if isinstance(given, list):
                given = {pair["key"]: pair["value"] for pair in given}
            info = dict(given)
            info[SECRET_HEADER] = f"${{{ENVIRONMENT_SECRET_ENV}}}"
            endpoint["receiverInfo"] = info
        consumer["endpoint"] = endpoint
    layout.config.mkdir(parents=True, exist_ok=True)
    path = layout.config / "consumers.yaml"
    path.write_text(
        f"# Written by `drehscheibe demo` from {template} at every start.\n"
        + yaml.safe_dump(document, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return path, planning_mqtt
