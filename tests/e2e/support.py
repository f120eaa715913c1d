"""Helpers for the agent's end-to-end tests: uplinks in the network servers' formats, device
registration, a running agent (in-process or as a real subprocess), waiting."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from agents.codecs import encode_cayennelpp
from agents.registry import DeviceState, RegisteredDevice, Registry
from agents.runtime import Agent, AgentConfig
from ngsi import Client
from tests.conftest import free_port, wait_for_port

SECRET = "e2e-webhook-secret"


def wait_for(predicate: Callable[[], Any], *, timeout: float = 45.0, every: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; return its value or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s (last value {last!r})")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def lpp(*readings: tuple[int, str, Any]) -> bytes:
    return encode_cayennelpp(list(readings))


def tts_uplink(
    dev_eui: str,
    f_cnt: int,
    frame: bytes,
    *,
    at: datetime | None = None,
    device_id: str | None = None,
    app: str = "city",
    f_port: int = 1,
    simulated: bool = False,
    rssi: float = -80.0,
    snr: float = 7.5,
) -> bytes:
    """A The Things Stack v3 uplink message as MQTT and webhooks carry it."""
    at = at or datetime.now(UTC)
    body: dict[str, Any] = {
        "end_device_ids": {
            "device_id": device_id or f"dev-{dev_eui.lower()}",
            "application_ids": {"application_id": app},
            "dev_eui": dev_eui,
        },
        "received_at": iso(at),
        "uplink_message": {
            "f_port": f_port,
            "f_cnt": f_cnt,
            "frm_payload": base64.b64encode(frame).decode(),
            "rx_metadata": [
                {
                    "gateway_ids": {"gateway_id": "gw-rathaus", "eui": "0242020000247803"},
                    "time": iso(at),
                    "rssi": rssi,
                    "snr": snr,
                }
            ],
            "settings": {
                "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}},
                "frequency": "868100000",
            },
            "received_at": iso(at),
        },
    }
    if simulated:
        body["simulated"] = True
    return orjson.dumps(body)


def tts_topic(dev_eui: str, *, app: str = "city", tenant: str | None = None) -> str:
    owner = f"{app}@{tenant}" if tenant else app
    return f"v3/{owner}/devices/dev-{dev_eui.lower()}/up"


def chirpstack_uplink(
    dev_eui: str, f_cnt: int, frame: bytes, *, at: datetime | None = None, app: str = "a1b2"
) -> bytes:
    """A ChirpStack v4 `up` event."""
    at = at or datetime.now(UTC)
    return orjson.dumps(
        {
            "deduplicationId": f"dedup-{dev_eui}-{f_cnt}",
            "time": iso(at),
            "deviceInfo": {
                "tenantId": "t1",
                "tenantName": "city",
                "applicationId": app,
                "applicationName": "sensors",
                "deviceProfileName": "lpp",
                "deviceName": f"cs-{dev_eui.lower()}",
                "devEui": dev_eui.lower(),
            },
            "devAddr": "01020304",
            "fCnt": f_cnt,
            "fPort": 1,
            "data": base64.b64encode(frame).decode(),
            "rxInfo": [
                {"gatewayId": "0016c001ff10a235", "rssi": -90, "snr": 5.5, "gwTime": iso(at)}
            ],
            "txInfo": {
                "frequency": 868300000,
                "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 9}},
            },
        }
    )


def chirpstack_topic(dev_eui: str, *, app: str = "a1b2") -> str:
    return f"application/{app}/device/{dev_eui.lower()}/event/up"


class Publisher:
    """A paho client that publishes with QoS 1 and waits for each PUBACK."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"e2e-pub-{free_port()}")
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@contextlib.contextmanager
def publisher(port: int) -> Iterator[Publisher]:
    running = Publisher(port)
    try:
        yield running
    finally:
        running.close()


def register(
    broker_url: str,
    dev_eui: str,
    *,
    tenant: str | None,
    profile: str = "temperature-humidity-lpp",
    measuring_point: str | None = None,
    device_id: str | None = None,
    location: tuple[float, float] = (13.4050, 52.5200),
    state: DeviceState = "active",
    profiles_dir: Path | None = None,
    installed: datetime | None = None,
) -> RegisteredDevice:
    """Register a device in the broker, as `drehscheibe devices register` does."""
    from agents.profiles import ProfileCatalog

    with Client(broker_url, tenant=tenant, profile="embedded") as client:
        registry = Registry(client, profiles=ProfileCatalog(profiles_dir))
        return registry.register(
            RegisteredDevice(
                dev_eui=dev_eui,
                device_id=device_id or "",
                profile=profile,
                measuring_point=measuring_point,
                location={"type": "Point", "coordinates": list(location)},
                state=state,
                date_installed=installed,
            )
        )


def agent_config(
    tmp_path: Path,
    *,
    broker_url: str,
    tenant: str | None,
    mqtt_port: int | None = None,
    network_server: str = "tts",
    webhook: bool = False,
    http_port: int = 0,
    **sections: Any,
) -> dict[str, Any]:
    """An agent configuration (as the YAML document) for one MQTT and/or one webhook source."""
    sources: list[dict[str, Any]] = []
    if mqtt_port is not None:
        sources.append(
            {
                "name": "mqtt",
                "network_server": network_server,
                "transport": "mqtt",
                "tenant": tenant,
                "mqtt": {
                    "host": "127.0.0.1",
                    "port": mqtt_port,
                    "qos": 1,
                    "reconnect_max": 1,
                    "events": ["up", "join", "location"],
                },
            }
        )
    if webhook:
        (tmp_path / "webhook-secret").write_text(SECRET + "\n")
        sources.append(
            {
                "name": "hook",
                "network_server": network_server,
                "transport": "webhook",
                "tenant": tenant,
                "webhook": {
                    "path": "/webhooks/uplinks",
                    "secret_header": "X-Webhook-Secret",
                    "secret_file": "webhook-secret",
                },
            }
        )
    document: dict[str, Any] = {
        "agent": {"name": f"agent-{free_port()}", "data_dir": "agent-data"},
        "broker": {
            "url": broker_url,
            "tenant": tenant,
            "profile": "embedded",
            "retry_initial": 0.2,
            "retry_max": 1.0,
            "timeout": 5,
        },
        "http": {"host": "127.0.0.1", "port": http_port},
        "sources": sources,
        "pipeline": {"batch_wait": 0.005},
        "registry": {"resync_interval": 3600},
        "logging": {"level": "info"},
    }
    for name, value in sections.items():
        document.setdefault(name, {}).update(value)
    return document


def write_config(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@contextlib.contextmanager
def running_agent(tmp_path: Path, document: dict[str, Any]) -> Iterator[Agent]:
    """An agent in this process (its threads), stopped at the end of the block."""
    config = AgentConfig.from_mapping(document, base_dir=tmp_path, environ={})
    agent = Agent(config, drain_timeout=2.0)
    agent.start()
    try:
        wait_for(lambda: agent.readiness().checks["sources"]["ok"], timeout=30)
        yield agent
    finally:
        agent.stop()


@dataclass
class AgentProcess:
    """`drehscheibe agent run -c CONFIG` as a real subprocess."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_agent_process(
    tmp_path: Path, document: dict[str, Any], *, name: str = "agent"
) -> AgentProcess:
    port = free_port()
    document = {**document, "http": {**document.get("http", {}), "port": port}}
    config = write_config(tmp_path, document)
    log = tmp_path / f"{name}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "drehscheibe", "agent", "run", "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    running = AgentProcess(process=process, port=port, log=log)
    try:
        wait_for_port(port, timeout=30)
    except TimeoutError:
        running.stop()
        raise RuntimeError(f"the agent did not start: {running.output()}") from None
    return running


def metrics(url: str) -> dict[str, float]:
    """The agent's /metrics as {'name{labels}': value}."""
    text = httpx.get(url + "/metrics", timeout=10).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found
