"""Broker profiles: named limits and habits, and the client obeying them."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest

from ngsi._profiles import PROFILES, BrokerProfile, get_profile
from tests.ngsi.test_client_support import FakeBroker, entities, faces, json_response

face = faces()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_profiles_by_name() -> None:
    assert set(PROFILES) == {"orion-ld", "scorpio", "stellio", "embedded"}
    orion = get_profile("orion-ld")
    assert (orion.max_page_size, orion.max_batch_entities, orion.max_batch_bytes) == (
        1000,
        1000,
        1024 * 1024,
    )
    assert get_profile("Stellio").max_page_size == 100
    assert not get_profile("stellio").empty_on_unknown_tenant
    assert "TenantNotFound" in get_profile("scorpio").unknown_tenant_errors
    assert get_profile(orion) is orion


def test_an_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="embedded, orion-ld, scorpio, stellio"):
        get_profile("fiware")
    with pytest.raises(ValueError, match="positive"):
        BrokerProfile(name="broken", max_page_size=0)


@pytest.mark.anyio
async def test_a_custom_profile_sets_the_batch_size(face: Any) -> None:
    profile = dataclasses.replace(get_profile("orion-ld"), name="small", max_batch_entities=7)
    broker = FakeBroker(lambda r: httpx.Response(204))
    client = face(broker, profile=profile)

    result = await client.batch_upsert(entities(20))

    assert result.ok
    assert [len(body) for body in broker.bodies()] == [7, 7, 6]


@pytest.mark.anyio
async def test_the_profile_caps_the_page_size_of_listings(face: Any) -> None:
    broker = FakeBroker(lambda r: json_response(200, []))
    client = face(broker, profile="stellio")

    await client.list_subscriptions()
    await client.query_all(type="T")

    assert [r.url.params["limit"] for r in broker.requests] == ["100", "100"]
