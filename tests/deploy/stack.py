"""What the deployment tests share: where the files are, the env file as an admin fills it in,
and how to find the stack's services (Orion-LD, Mosquitto, the agent, the consumers) in the
interpolated compose file.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from tests.deploy.compose_support import Compose, Service

__all__ = [
    "COMPOSE_FILE",
    "COMPOSE_SETTINGS",
    "ENV_EXAMPLE",
    "ORION_IMAGE",
    "REPO",
    "SECRETISH",
    "SECRET_REFERENCE",
    "agent_service",
    "deploy_environment",
    "filled_secret",
    "mosquitto_conf",
    "mosquitto_service",
    "mounted",
    "one",
    "orion_service",
    "subscriptions_service",
    "url_port",
]

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.fiware.yml"
ENV_EXAMPLE = REPO / "deploy" / "env.example"
ORION_IMAGE = "quay.io/fiware/orion-ld:1.12.0"
SECRETISH = re.compile(r"PASSWORD|PASSWD|PWD|SECRET|TOKEN|KEY", re.IGNORECASE)
# Read by Compose itself from the env file, not by the compose file.
COMPOSE_SETTINGS = {"COMPOSE_FILE", "COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME"}
SECRET_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?\?[^}]*)|:-)?\}")


def filled_secret(name: str) -> str:
    return f"test-{name.lower().replace('_', '-')}-0123456789"


def deploy_environment(env_example: dict[str, str]) -> dict[str, str]:
    """env.example as an admin fills it in: every empty secret set."""
    return {
        name: (filled_secret(name) if SECRETISH.search(name) and not value else value)
        for name, value in env_example.items()
    }


def one(services: list[Service], what: str) -> Service:
    assert len(services) == 1, (
        f"expected one service that {what}, found {[s.name for s in services]}"
    )
    return services[0]


def agent_service(compose: Compose) -> Service:
    return one(compose.running("agent", "run"), "runs `drehscheibe agent run`")


def subscriptions_service(compose: Compose) -> Service:
    return one(compose.running("subscriptions", "apply"), "runs `subscriptions apply`")


def orion_service(compose: Compose) -> Service:
    return one([s for s in compose.services.values() if s.image == ORION_IMAGE], "is Orion-LD")


def mosquitto_service(compose: Compose) -> Service:
    return one(
        [s for s in compose.services.values() if (s.image or "").startswith("eclipse-mosquitto:")],
        "is Mosquitto",
    )


def mounted(compose: Compose, service: Service, container_path: str) -> Path:
    """The repository file or folder bind-mounted at `container_path` in `service`."""
    path = service.host_path(container_path, compose.root)
    assert path is not None, f"{service.name}: {container_path} is not bind-mounted from the repo"
    assert path.exists(), (
        f"{service.name}: {container_path} is mounted from {path}, which is missing"
    )
    return path


def url_port(url: str, default: int) -> int:
    return urlsplit(url).port or default


def mosquitto_conf(compose: Compose) -> tuple[Path, dict[str, list[str]]]:
    """The Mosquitto configuration file the service mounts, and its directives."""
    service = mosquitto_service(compose)
    found = re.search(r"mosquitto -c (\S+)", " ".join(service.argv()))
    assert found, f"{service.name}: the command must start mosquitto with -c CONFIG"
    path = mounted(compose, service, found.group(1))
    directives: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            directives.setdefault(words[0], []).append(" ".join(words[1:]))
    return path, directives
