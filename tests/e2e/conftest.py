"""Fixtures of the end-to-end tests: a tenant of its own for each test (the module's embedded
broker is the `broker` of tests/fixtures.py)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def tenant() -> str:
    """A tenant of its own for each test (the module shares one broker)."""
    return "e2e" + uuid.uuid4().hex[:10]
