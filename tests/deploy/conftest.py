"""Fixtures of the deployment tests: env.example, the compose file read with it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.compose_support import Compose, load_compose, read_env_file
from tests.deploy.stack import COMPOSE_FILE, ENV_EXAMPLE, deploy_environment


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    """deploy/env.example as it is in the repository."""
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def deploy_env(env_example: dict[str, str]) -> dict[str, str]:
    """env.example as an admin fills it in: every empty secret set."""
    return deploy_environment(env_example)


@pytest.fixture(scope="module")
def compose(deploy_env: dict[str, str]) -> Compose:
    """docker-compose.fiware.yml interpolated with `deploy_env`."""
    return load_compose(COMPOSE_FILE, deploy_env)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """docker-compose.fiware.yml as YAML, before interpolation."""
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document
