"""Fixtures for the lifecycle and fleet-health tests: a tenant per test (the module's embedded
broker is the `broker` of tests/fixtures.py), the CLI as a real subprocess."""

from __future__ import annotations

import subprocess
import uuid
from typing import Any

import pytest

from agents.registry import DEVICE_CONTEXT
from tests.broker.conftest import RunningBroker
from tests.conftest import run_drehscheibe


@pytest.fixture
def tenant() -> str:
    """A tenant of its own for each test (the module shares one broker)."""
    return "fleet" + uuid.uuid4().hex[:10]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`drehscheibe ARGS` as a subprocess."""
    return run_drehscheibe(*args, env=env)


def devices(
    broker: RunningBroker, tenant: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`drehscheibe devices ARGS --broker URL --tenant TENANT`; fails the test on an error."""
    result = cli("devices", *args, "--broker", broker.url, "--tenant", tenant, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def device_entity(
    broker: RunningBroker, tenant: str, dev_eui: str, **params: str
) -> dict[str, Any] | None:
    """The Device entity of `dev_eui` in keyValues (with further query `params`), or None."""
    return broker.entity(
        f"urn:ngsi-ld:Device:{dev_eui}",
        tenant=tenant,
        context=DEVICE_CONTEXT,
        options="keyValues",
        **params,
    )
