"""Fixtures for the Smart Data Models tests: the official files, and a machine without network."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from schemas import SdmSchemas


@pytest.fixture(scope="session")
def sdm_dir(shared_dir: Path) -> Path:
    """The official schemas, examples and contexts (laid out like the upstream repositories)."""
    return shared_dir / "sdm"


@pytest.fixture(scope="session")
def sdm(sdm_dir: Path) -> SdmSchemas:
    """One compiled-schema cache for the whole session, as an agent would keep it."""
    return SdmSchemas(sdm_dir)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every attempt to open a connection or resolve a name fails (and is recorded)."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("network access is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts
