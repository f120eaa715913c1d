"""Fixtures for every test package (registered by `pytest_plugins` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.broker.conftest import SDM_CONTEXTS, RunningBroker, start_broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """One embedded broker for the test module, with the Smart Data Models contexts preloaded.
    A module that needs another broker defines its own `broker`."""
    with start_broker(
        tmp_path_factory.mktemp("broker"), preload_contexts=dict(SDM_CONTEXTS)
    ) as running:
        yield running
