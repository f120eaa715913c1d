"""The compose file's own commands and configuration, run on this machine.

No Docker: the Mosquitto service's configuration file runs in the real Mosquitto 2 (its
password file made by the service's own `mosquitto_passwd` step), the consumer services run
their compose command lines as `drehscheibe` subprocesses (host names, ports and volumes mapped
to loopback and tmp_path), the compose health checks run against them, and the one-shot
`subscriptions` service applies its file to an embedded broker. What is mapped is only what a
container would get from Docker: addresses, ports and mounted folders.
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.broker.conftest import SDM_CONTEXTS, start_broker
from tests.conftest import free_port, mosquitto_binary, wait_for_port
from tests.deploy.compose_support import Compose, Service, shell_expand
from tests.deploy.stack import mosquitto_conf, mosquitto_service, subscriptions_service
from tests.subscriptions._support import air_quality, now_text

pytestmark = pytest.mark.mqtt


@dataclass
class StackMosquitto:
    """The stack's Mosquitto on loopback: its configuration, its user."""

    port: int
    username: str
    password: str
    process: subprocess.Popen[bytes]
    service: str


def connect(broker: StackMosquitto, credentials: tuple[str, str] | None) -> ReasonCode:
    """Log in, return the broker's CONNACK reason code."""
    answers: list[ReasonCode] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    if credentials is not None:
        client.username_pw_set(*credentials)
    client.on_connect = lambda c, u, flags, reason, props: answers.append(reason)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        deadline = time.monotonic() + 10
        while not answers and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.disconnect()
        client.loop_stop()
    assert answers, "no CONNACK from Mosquitto"
    return answers[0]


def map_container_paths(text: str, root: Path) -> str:
    """Absolute container paths in `text` as paths under `root` (programs stay as they are)."""

    def replace(found: re.Match[str]) -> str:
        path = found.group(1)
        return path if path.startswith(("/usr/", "/bin/")) else str(root / path.lstrip("/"))

    return re.sub(r"(?<![\w.:/-])(/[\w./-]+)", replace, text)


@pytest.fixture
def stack_mosquitto(compose: Compose, tmp_path: Path) -> Iterator[StackMosquitto]:
    service = mosquitto_service(compose)
    conf_path, _ = mosquitto_conf(compose)
    root = tmp_path / "mosquitto-root"
    root.mkdir()
    env = {**os.environ, **service.environment}
    # The service's start script up to `exec mosquitto`: folders, umask, the password file.
    followed = []
    for statement in (s.strip() for s in " ".join(service.argv()).split(";")):
        program = statement.split()[0] if statement else ""
        if program in {"mkdir", "umask", "mosquitto_passwd"}:
            followed.append(map_container_paths(statement, root))
        else:
            assert program in {"", "set", "chown", "exec"}, f"not followed: {statement}"
    subprocess.run(["/bin/sh", "-c", "; ".join(followed)], env=env, check=True, timeout=30)
    port = free_port()
    lines = []
    for line in conf_path.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["listener"]:
            line = f"listener {port} 127.0.0.1"
        elif words[:1] in (["password_file"], ["persistence_location"]):
            line = map_container_paths(line, root)
            Path(line.split()[1]).parent.mkdir(parents=True, exist_ok=True)
        lines.append(line)
    lines.append(f"user {getpass.getuser()}")
    config = tmp_path / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    log = (tmp_path / "mosquitto.log").open("wb")
    process = subprocess.Popen([mosquitto_binary(), "-c", str(config)], stdout=log, stderr=log)
    try:
        wait_for_port(port)
        yield StackMosquitto(
            port=port,
            username=service.environment["MQTT_USERNAME"],
            password=service.environment["MQTT_PASSWORD"],
            process=process,
            service=service.name,
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_mosquitto_takes_the_stack_user_and_nobody_else(stack_mosquitto: StackMosquitto) -> None:
    good = (stack_mosquitto.username, stack_mosquitto.password)
    assert not connect(stack_mosquitto, good).is_failure
    assert connect(stack_mosquitto, None).is_failure
    assert connect(stack_mosquitto, (stack_mosquitto.username, "wrong")).is_failure


# --- the consumers ---------------------------------------------------------------------------


@dataclass
class LocalService:
    """A compose service's command line running here as a subprocess."""

    service: Service
    argv: list[str]
    ports: dict[int, int]
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def port(self) -> int:
        (port,) = self.ports.values()
        return port

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def localize(
    service: Service, root: Path, mqtt_port: int, mqtt_host: str
) -> tuple[list[str], dict[int, int]]:
    """The service's arguments as they run here: loopback, free ports, folders under `root`."""
    volumes = [m.target.rstrip("/") for m in service.mounts() if m.kind == "volume"]
    ports: dict[int, int] = {}
    args: list[str] = []
    for arg in service.argv():
        arg = shell_expand(arg, service.environment)
        name, sep, value = arg.partition("=")
        if not name.startswith("--"):
            args.append(arg)
            continue
        assert sep, f"{service.name}: write {name}=VALUE in the compose file (one word each)"
        if name == "--host":
            value = "127.0.0.1"
        elif name == "--port":
            ports[int(value)] = ports.get(int(value)) or free_port()
            value = str(ports[int(value)])
        elif name == "--mqtt":
            url = urlsplit(value)
            assert url.hostname == mqtt_host, f"{service.name}: --mqtt goes to {url.hostname}"
            credentials = value.split("//", 1)[1].rsplit("@", 1)[0]
            value = urlunsplit(url._replace(netloc=f"{credentials}@127.0.0.1:{mqtt_port}"))
        for volume in volumes:
            if value.startswith(volume + "/"):
                value = str(root / service.name) + value[len(volume) :]
        args.append(f"{name}={value}")
    return args, ports


def start_local(
    service: Service, tmp_path: Path, *, mqtt_port: int, mqtt_host: str
) -> LocalService:
    argv, ports = localize(service, tmp_path / "volumes", mqtt_port, mqtt_host)
    (tmp_path / "volumes" / service.name).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **service.environment, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / f"{service.name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "drehscheibe", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    return LocalService(service, argv, ports, process, log, env)


def health_check_passes(running: LocalService) -> bool:
    """The service's compose health check, with its port mapped, run once."""
    test = running.service.spec["healthcheck"]["test"]
    assert test[0] == "CMD", f"{running.service.name}: health check in exec form"
    command = [sys.executable if word == "python" else word for word in test[1:]]
    for inside, outside in running.ports.items():
        command = [w.replace(f"127.0.0.1:{inside}/", f"127.0.0.1:{outside}/") for w in command]
    result = subprocess.run(command, capture_output=True, timeout=30, check=False)
    return result.returncode == 0


def wait_healthy(running: LocalService, *, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise AssertionError(f"{running.service.name} exited:\n{running.output()}")
        if health_check_passes(running):
            return
        time.sleep(0.3)
    raise AssertionError(f"{running.service.name} never healthy:\n{running.output()}")


def stop(running: LocalService) -> None:
    if running.process.poll() is None:
        running.process.terminate()
        try:
            running.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait(timeout=10)


def envelope(entity: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
        "type": "Notification",
        "subscriptionId": "urn:ngsi-ld:Subscription:compose-test",
        "notifiedAt": now_text(),
        "data": [entity],
    }


def publish(broker: StackMosquitto, topic: str, payload: dict[str, Any]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"p-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(broker.username, broker.password)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.publish(topic, orjson.dumps(payload), qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.slow
def test_the_consumers_run_as_the_compose_file_starts_them(
    compose: Compose, stack_mosquitto: StackMosquitto, tmp_path: Path
) -> None:
    services = compose.running("consume", "run")
    assert services
    running = [
        start_local(s, tmp_path, mqtt_port=stack_mosquitto.port, mqtt_host=stack_mosquitto.service)
        for s in services
    ]
    try:
        for consumer in running:
            wait_healthy(consumer)
        entity = air_quality(7, no2=21.0, at=now_text())
        for consumer in running:
            name = consumer.service.name
            header = consumer.service.option("--secret-header")
            mqtt_url = consumer.service.option("--mqtt")
            base = f"http://127.0.0.1:{consumer.port()}"
            if header is not None:
                secret = consumer.env[consumer.service.option("--secret-env") or ""]
                refused = httpx.post(f"{base}/notify", json=envelope(entity), timeout=10)
                assert refused.status_code == 401, name
                taken = httpx.post(
                    f"{base}/notify", json=envelope(entity), headers={header: secret}, timeout=10
                )
                assert taken.status_code == 200, (name, taken.text)
            if mqtt_url is not None:
                topic = urlsplit(shell_expand(mqtt_url, consumer.service.environment)).path
                message = {
                    "metadata": {"Content-Type": "application/json"},
                    "body": envelope(entity),
                }
                publish(stack_mosquitto, topic.lstrip("/"), message)

                def archived(url: str = f"{base}/changes") -> bool:
                    found = httpx.get(url, params={"id": entity["id"]}, timeout=10)
                    return found.status_code == 200 and len(found.json()) >= 1

                deadline = time.monotonic() + 20
                while not archived() and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert archived(), f"{name}: nothing archived from MQTT\n{consumer.output()}"
    finally:
        for consumer in running:
            stop(consumer)


# --- the one-shot subscriptions service ------------------------------------------------------


def run_subscriptions(compose: Compose, broker_url: str, tmp_path: Path, *extra: str) -> str:
    service = subscriptions_service(compose)
    argv = service.argv()
    argv[argv.index("--broker") + 1] = broker_url
    container_path = argv[argv.index("-f") + 1]
    local = service.host_path(container_path, compose.root)
    assert local is not None
    argv[argv.index("-f") + 1] = str(local)
    result = subprocess.run(
        [sys.executable, "-m", "drehscheibe", *argv, *extra],
        env={**os.environ, **service.environment, "COLUMNS": "200"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.fixture
def broker_url(tmp_path: Path) -> Iterator[str]:
    with start_broker(tmp_path / "broker", preload_contexts=dict(SDM_CONTEXTS)) as broker:
        yield broker.url


@pytest.mark.slow
def test_the_subscriptions_service_applies_its_file_once(
    compose: Compose, broker_url: str, tmp_path: Path
) -> None:
    first = run_subscriptions(compose, broker_url, tmp_path)
    created = re.search(r"(\d+) to create", first)
    assert created
    assert int(created.group(1)) > 0
    again = run_subscriptions(compose, broker_url, tmp_path)
    assert "0 to create, 0 to update, 0 to recreate, 0 to delete" in again


@pytest.mark.slow
def test_the_subscriptions_service_does_not_log_the_mqtt_password(
    compose: Compose, broker_url: str, tmp_path: Path
) -> None:
    output = run_subscriptions(compose, broker_url, tmp_path, "--dry-run")
    password = mosquitto_service(compose).environment["MQTT_PASSWORD"]
    assert password not in output


@pytest.mark.slow
def test_the_planning_consumer_does_not_log_the_mqtt_password(
    compose: Compose, stack_mosquitto: StackMosquitto, tmp_path: Path
) -> None:
    (planning,) = [s for s in compose.running("consume", "run") if s.option("--mqtt")]
    running = start_local(
        planning, tmp_path, mqtt_port=stack_mosquitto.port, mqtt_host=stack_mosquitto.service
    )
    try:
        wait_healthy(running)
    finally:
        stop(running)
    assert stack_mosquitto.password not in running.output()
