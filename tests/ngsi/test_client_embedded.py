"""The client against the embedded broker over real HTTP on 127.0.0.1, on both faces.

Each test works in its own tenant, so the module shares one broker.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ngsi._client import AsyncClient, Client
from ngsi._errors import AlreadyExists, NgsiApiError, ResourceNotFound
from ngsi._subscription import Subscription
from tests.broker.conftest import SDM_CONTEXTS, RunningBroker, sdm_url, start_broker
from tests.ngsi.test_client_support import FAST_RETRIES, Face, ids_of

ENVIRONMENT = sdm_url("Environment")
_tenants = itertools.count()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    with start_broker(
        tmp_path_factory.mktemp("client-broker"), preload_contexts=dict(SDM_CONTEXTS)
    ) as running:
        yield running


@pytest.fixture(params=["sync", "async"])
async def face(
    request: pytest.FixtureRequest, embedded: RunningBroker, anyio_backend: str
) -> AsyncIterator[Face]:
    cls: type[Client] | type[AsyncClient] = AsyncClient if request.param == "async" else Client
    client = cls(
        embedded.url,
        tenant=f"client{next(_tenants)}",
        context=ENVIRONMENT,
        profile="embedded",
        timeout=10.0,
        retries=FAST_RETRIES,
    )
    face = Face(client)
    yield face
    await face.close()


def observed(index: int, **attrs: Any) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:Ulm-{index}",
        "type": "AirQualityObserved",
        "no2": {"type": "Property", "value": 20 + index, "unitCode": "GQ"},
        **attrs,
    }


@pytest.mark.anyio
async def test_a_fresh_tenant_reads_as_empty(face: Face) -> None:
    assert await face.query(type="AirQualityObserved") == []
    assert await face.count(type="AirQualityObserved") == 0
    assert await face.list_subscriptions() == []
    assert await face.types() == []
    with pytest.raises(NgsiApiError) as caught:
        await face.retrieve("urn:ngsi-ld:AirQualityObserved:none")
    assert caught.value.status_code == 404


@pytest.mark.anyio
async def test_the_life_of_an_entity(face: Face) -> None:
    entity = observed(1)
    assert await face.create(entity) == entity["id"]
    with pytest.raises(AlreadyExists):
        await face.create(entity)

    await face.append_attrs(entity["id"], {"pm10": {"type": "Property", "value": 12}})
    result = await face.update_attrs(
        entity["id"],
        {"no2": {"type": "Property", "value": 99}, "nope": {"type": "Property", "value": 1}},
    )
    assert result.updated == ["no2"]
    assert [n.attribute_name for n in result.not_updated] == ["nope"]
    await face.partial_update_attr(entity["id"], "pm10", {"value": 13})
    assert (await face.retrieve(entity["id"], options="keyValues")) == {
        "id": entity["id"],
        "type": "AirQualityObserved",
        "no2": 99,
        "pm10": 13,
    }
    await face.delete_attr(entity["id"], "pm10")
    await face.replace(entity["id"], observed(1, temperature={"type": "Property", "value": 4.5}))
    assert set(await face.retrieve(entity["id"])) == {"id", "type", "no2", "temperature"}
    await face.delete(entity["id"])
    with pytest.raises(ResourceNotFound):
        await face.retrieve(entity["id"])


@pytest.mark.anyio
async def test_batches_paging_and_counting_at_scale(face: Face) -> None:
    batch = [observed(index) for index in range(2500)]

    upserted = await face.batch_upsert(batch)

    assert upserted.ok
    assert upserted.succeeded == ids_of(batch)
    assert await face.count(type="AirQualityObserved") == 2500
    assert await face.count(type="AirQualityObserved", q="no2>2000") == 519
    walked = await face.collect("iter_entities", type="AirQualityObserved", page_size=700)
    assert sorted(ids_of(walked)) == sorted(ids_of(batch))
    first_page = await face.query(type="AirQualityObserved", limit=10)
    assert len(first_page) == 10

    created = await face.batch_create([observed(0), observed(9000)])
    assert created.succeeded == [observed(9000)["id"]]
    [failure] = created.failed
    assert (failure.entity_id, failure.status, failure.problem.error_name) == (
        observed(0)["id"],
        409,
        "AlreadyExists",
    )

    deleted = await face.batch_delete([observed(9000)["id"], "urn:ngsi-ld:AirQualityObserved:none"])
    assert deleted.succeeded == [observed(9000)["id"]]
    assert deleted.failed_ids == ["urn:ngsi-ld:AirQualityObserved:none"]


@pytest.mark.anyio
async def test_upsert_update_keeps_what_others_wrote_and_replace_does_not(face: Face) -> None:
    await face.create(observed(1, name={"type": "Property", "value": "set by an admin"}))

    await face.batch_upsert([observed(1)])
    assert "name" in await face.retrieve(observed(1)["id"])

    await face.batch_upsert([observed(1)], mode="replace")
    assert "name" not in await face.retrieve(observed(1)["id"])


@pytest.mark.anyio
async def test_subscriptions_and_contexts(face: Face) -> None:
    subscription = Subscription(
        subscription_name="no2 to the environment office",
        entities=[{"type": "AirQualityObserved"}],
        watched_attributes=["no2"],
        q="no2>40",
        notification={
            "endpoint": {"uri": "http://127.0.0.1:9/notify", "accept": "application/json"}
        },
    )

    subscription_id = await face.create_subscription(subscription)
    [listed] = await face.list_subscriptions()
    assert listed.id == subscription_id
    assert listed.watched_attributes == ["no2"]
    await face.update_subscription(subscription_id, {"q": "no2>50"})
    assert (await face.retrieve_subscription(subscription_id)).q == "no2>50"
    await face.delete_subscription(subscription_id)
    assert await face.list_subscriptions() == []

    url = await face.add_context({"pollutant": "https://example.org/city/pollutant"})
    assert url in await face.list_contexts()
    assert (await face.retrieve_context(url))["@context"][
        "pollutant"
    ] == "https://example.org/city/pollutant"
    await face.delete_context(url)
    assert url not in await face.list_contexts()


@pytest.mark.anyio
async def test_ids_with_slashes_and_types_as_iris(face: Face) -> None:
    entity = {"id": "urn:ngsi-ld:AirQualityObserved:Ulm/Nord-1", "type": "AirQualityObserved"}

    assert await face.create(entity) == entity["id"]
    assert (await face.retrieve(entity["id"]))["id"] == entity["id"]
    types = await face.types()
    assert types == ["AirQualityObserved"]
    info = await face.type_info("AirQualityObserved")
    assert info["entityCount"] == 1
