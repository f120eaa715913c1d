"""Fixtures of the end-to-end tests: one embedded broker per module (with the Smart Data
Models contexts) and a tenant of its own for each test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.broker.conftest import SDM_CONTEXTS, RunningBroker, start_broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    with start_broker(
        tmp_path_factory.mktemp("broker"), preload_contexts=dict(SDM_CONTEXTS)
    ) as running:
        yield running


@pytest.fixture
def tenant() -> str:
    """A tenant of its own for each test (the module shares one broker)."""
    return "e2e" + uuid.uuid4().hex[:10]
