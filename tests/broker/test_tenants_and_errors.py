"""Tenants, error bodies, limits and the API key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.broker.conftest import RunningBroker, start_broker


def test_tenants_are_separate_and_created_by_writes(broker: RunningBroker, tmp_path: Path) -> None:
    tenant = "t" + uuid.uuid4().hex[:8]
    api = broker.api
    headers = {"NGSILD-Tenant": tenant}
    before = httpx.get(f"{api}/entities", params={"type": "T"}, headers=headers)
    assert before.status_code == 404
    assert before.json()["type"].endswith("/NonexistentTenant")
    assert httpx.get(f"{api}/entities/urn:ngsi-ld:T:1", headers=headers).status_code == 404

    created = httpx.post(
        f"{api}/entities", json={"id": "urn:ngsi-ld:T:1", "type": "T"}, headers=headers
    )
    assert created.status_code == 201
    assert created.headers["NGSILD-Tenant"] == tenant

    listed = httpx.get(f"{api}/entities", params={"type": "T"}, headers=headers)
    assert listed.status_code == 200
    assert listed.headers["NGSILD-Tenant"] == tenant
    assert [e["id"] for e in listed.json()] == ["urn:ngsi-ld:T:1"]

    legacy = httpx.get(f"{api}/entities/urn:ngsi-ld:T:1", headers={"Fiware-Service": tenant})
    assert legacy.status_code == 200
    other = httpx.get(f"{api}/entities/urn:ngsi-ld:T:1", headers={"NGSILD-Tenant": tenant + "x"})
    assert other.json()["type"].endswith("/NonexistentTenant")
    assert (broker.settings.data_dir / f"tenant-{tenant}.sqlite").is_file()


def test_bad_tenant_name_is_400(broker: RunningBroker) -> None:
    response = httpx.get(
        f"{broker.api}/entities", params={"type": "T"}, headers={"NGSILD-Tenant": "../etc"}
    )
    assert response.status_code == 400


def test_router_errors_are_problem_details(broker: RunningBroker) -> None:
    missing = httpx.get(f"{broker.api}/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/ResourceNotFound")
    wrong_method = httpx.put(f"{broker.api}/entityOperations/upsert", json=[])
    assert wrong_method.status_code == 405
    assert wrong_method.json()["status"] == 405


def test_body_over_the_limit_is_413(tmp_path: Path) -> None:
    with start_broker(tmp_path / "data", max_body_bytes=2048) as running:
        big = [{"id": f"urn:ngsi-ld:T:{i}", "type": "T"} for i in range(100)]
        response = httpx.post(f"{running.api}/entityOperations/upsert", json=big)
        assert response.status_code == 413
        assert response.json()["status"] == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
            for _ in range(10):
                yield b" " * 1000

        streamed = httpx.post(
            f"{running.api}/entities",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert streamed.status_code == 413
        small = httpx.post(f"{running.api}/entities", json={"id": "urn:ngsi-ld:T:1", "type": "T"})
        assert small.status_code == 201


@pytest.mark.parametrize("scheme", ["x-api-key", "bearer"])
def test_api_key(tmp_path: Path, scheme: str) -> None:
    with start_broker(tmp_path / "data", api_key="s3cret-key") as running:
        url = f"{running.api}/entities"
        params = {"type": "T"}
        refused = httpx.get(url, params=params)
        assert refused.status_code == 401
        assert refused.json()["status"] == 401
        wrong = httpx.get(url, params=params, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
        good = (
            {"X-API-Key": "s3cret-key"}
            if scheme == "x-api-key"
            else {"Authorization": "Bearer s3cret-key"}
        )
        assert httpx.get(url, params=params, headers=good).status_code == 200
        assert httpx.get(running.url + "/version").status_code == 200
