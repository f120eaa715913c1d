"""The NGSI-LD client's requests and answers, on both faces (`Client` and `AsyncClient`)."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from ngsi._client import AsyncClient, Client
from ngsi._client_base import USE_CLIENT_DEFAULT
from ngsi._core_context import CORE_CONTEXT_URL
from ngsi._entity import Entity
from ngsi._errors import (
    AlreadyExists,
    BadRequestData,
    InternalError,
    LdContextNotAvailable,
    NgsiApiError,
    NgsiTransportError,
    NonexistentTenant,
    OperationNotSupported,
    ResourceNotFound,
)
from ngsi._geoquery import parse_geoquery
from ngsi._retry import RetryPolicy
from ngsi._subscription import Subscription
from tests.ngsi.test_client_support import FakeBroker, faces, json_response, problem

CTX = "https://smartdatamodels.org/dataModel.Environment/context.jsonld"
LINK = f'<{CTX}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
ENTITY: dict[str, Any] = {
    "id": "urn:ngsi-ld:AirQualityObserved:Ulm-1",
    "type": "AirQualityObserved",
    "no2": {"type": "Property", "value": 22.5, "unitCode": "GQ"},
}

face = faces()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def created(path: str) -> httpx.Response:
    return httpx.Response(201, headers={"Location": path})


# Request shapes ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_create_sends_entity_with_link_tenant_and_json(face: Any) -> None:
    broker = FakeBroker(
        lambda r: created("/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:Ulm-1")
    )
    client = face(broker, base_url="http://broker:1026/", tenant="ulm", context=CTX)

    entity_id = await client.create(ENTITY)

    assert entity_id == "urn:ngsi-ld:AirQualityObserved:Ulm-1"
    request = broker.last
    assert request.method == "POST"
    assert str(request.url) == "http://broker:1026/ngsi-ld/v1/entities"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Link"] == LINK
    assert request.headers["NGSILD-Tenant"] == "ulm"
    assert orjson.loads(request.content) == ENTITY


@pytest.mark.anyio
async def test_without_an_id_in_the_body_the_id_comes_from_location(face: Any) -> None:
    broker = FakeBroker(lambda r: created("/ngsi-ld/v1/entities/urn:ngsi-ld:T:a%2Fb/c"))
    client = face(broker)

    assert await client.create({"type": "T"}) == "urn:ngsi-ld:T:a/b/c"

    broker.answer = lambda r: httpx.Response(201)
    with pytest.raises(InternalError, match="Location"):
        await client.create({"type": "T"})


@pytest.mark.anyio
async def test_inline_context_goes_into_the_body_as_ld_json(face: Any) -> None:
    broker = FakeBroker(lambda r: created("/ngsi-ld/v1/entities/x"))
    inline = {"no2": "https://smartdatamodels.org/dataModel.Environment/no2"}
    client = face(broker, context=inline)

    await client.create(ENTITY)

    request = broker.last
    assert request.headers["Content-Type"] == "application/ld+json"
    assert "Link" not in request.headers
    assert orjson.loads(request.content) == {**ENTITY, "@context": inline}
    assert "NGSILD-Tenant" not in request.headers


@pytest.mark.anyio
async def test_entity_with_its_own_context_is_sent_as_is_without_link(face: Any) -> None:
    broker = FakeBroker(lambda r: created("/ngsi-ld/v1/entities/x"))
    client = face(broker, context=CTX)
    entity = {**ENTITY, "@context": [CTX, CORE_CONTEXT_URL]}

    await client.create(entity)

    assert broker.last.headers["Content-Type"] == "application/ld+json"
    assert "Link" not in broker.last.headers
    assert orjson.loads(broker.last.content) == entity


@pytest.mark.anyio
async def test_a_read_cannot_carry_an_inline_context(face: Any) -> None:
    broker = FakeBroker()
    client = face(broker, context={"no2": "https://example.org/no2"})

    with pytest.raises(ValueError, match="add_context"):
        await client.retrieve("urn:ngsi-ld:X:1")
    assert broker.requests == []


@pytest.mark.anyio
async def test_entity_ids_are_quoted_as_one_path_segment(face: Any) -> None:
    broker = FakeBroker(lambda r: json_response(200, {"id": "x", "type": "T"}))
    client = face(broker)

    await client.retrieve("http://example.org/sensor/1?a#b c%")
    await client.partial_update_attr("urn:ngsi-ld:T:1", "no2/x", {"value": 3})

    paths = [request.url.raw_path.decode() for request in broker.requests]
    assert paths == [
        "/ngsi-ld/v1/entities/http:%2F%2Fexample.org%2Fsensor%2F1%3Fa%23b%20c%25",
        "/ngsi-ld/v1/entities/urn:ngsi-ld:T:1/attrs/no2%2Fx",
    ]


@pytest.mark.anyio
async def test_retrieve_sends_attrs_and_options_and_returns_a_plain_dict(face: Any) -> None:
    broker = FakeBroker(lambda r: json_response(200, ENTITY))
    client = face(broker, context=CTX)

    entity = await client.retrieve(ENTITY["id"], attrs=["no2", "pm10"], options="keyValues")

    assert entity == ENTITY
    assert type(entity) is dict
    params = broker.last.url.params
    assert params["attrs"] == "no2,pm10"
    assert params["options"] == "keyValues"
    assert broker.last.headers["Link"] == LINK


@pytest.mark.anyio
async def test_query_parameters_are_encoded_for_brokers(face: Any) -> None:
    broker = FakeBroker(lambda r: json_response(200, [ENTITY]))
    client = face(broker)

    class QTree:
        def __str__(self) -> str:
            return 'name=="Münster Platz";no2>40|pm10~="^1.*"'

    result = await client.query(
        type=["AirQualityObserved", "WeatherObserved"],
        attrs="no2",
        q=QTree(),
        geoq={"georel": "near;maxDistance==2000", "geometry": "Point", "coordinates": [9.99, 48.4]},
        limit=50,
        offset=100,
    )

    assert result == [ENTITY]
    raw = broker.last.url.raw_path.decode()
    assert "+" not in raw  # spaces as %20: libmicrohttpd (Orion-LD) does not read + as a space
    assert "%20" in raw
    params = broker.last.url.params
    assert params["type"] == "AirQualityObserved,WeatherObserved"
    assert params["q"] == 'name=="Münster Platz";no2>40|pm10~="^1.*"'
    assert params["georel"] == "near;maxDistance==2000"
    assert params["geometry"] == "Point"
    assert params["coordinates"] == "[9.99,48.4]"
    assert params["limit"] == "50"
    assert params["offset"] == "100"
    assert "count" not in params


@pytest.mark.anyio
async def test_query_limit_above_the_profile_page_size_is_refused(face: Any) -> None:
    client = face(FakeBroker(), profile="stellio")
    with pytest.raises(ValueError, match="between 1 and 100"):
        await client.query(type="T", limit=101)


@pytest.mark.anyio
async def test_per_call_overrides_replace_the_client_settings(face: Any) -> None:
    broker = FakeBroker(lambda r: json_response(200, []))
    client = face(broker, tenant="ulm", context=CTX, timeout=5.0)
    other = "https://example.org/other.jsonld"

    await client.query(type="T")
    await client.query(type="T", tenant="neu-ulm", context=other, timeout=1.5)
    await client.query(type="T", tenant=None, context=None, timeout=None)
    await client.query(type="T", tenant=USE_CLIENT_DEFAULT, context=USE_CLIENT_DEFAULT)

    first, second, third, fourth = broker.requests
    assert first.headers["NGSILD-Tenant"] == "ulm"
    assert first.extensions["timeout"]["read"] == 5.0
    assert second.headers["NGSILD-Tenant"] == "neu-ulm"
    assert second.headers["Link"].startswith(f"<{other}>")
    assert second.extensions["timeout"] == {"connect": 1.5, "read": 1.5, "write": 1.5, "pool": 1.5}
    assert "NGSILD-Tenant" not in third.headers
    assert "Link" not in third.headers
    assert third.extensions["timeout"]["read"] is None
    assert fourth.headers["NGSILD-Tenant"] == "ulm"
    assert fourth.headers["Link"] == LINK


@pytest.mark.anyio
async def test_entities_may_be_objects_with_to_dict(face: Any) -> None:
    class Observed:
        def to_dict(self) -> dict[str, Any]:
            return ENTITY

    broker = FakeBroker(lambda r: created("/ngsi-ld/v1/entities/" + ENTITY["id"]))
    client = face(broker)

    await client.create(Observed())
    await client.replace(ENTITY["id"], Observed())

    assert broker.bodies() == [ENTITY, ENTITY]
    assert broker.last.method == "PUT"
    with pytest.raises(TypeError, match="to_dict"):
        await client.create(42)


@pytest.mark.anyio
async def test_the_projects_entity_type_is_written_in_normalized_form(face: Any) -> None:
    entity = Entity.from_dict(ENTITY)
    broker = FakeBroker(lambda r: created("/ngsi-ld/v1/entities/" + ENTITY["id"]))
    client = face(broker)

    await client.create(entity)
    await client.batch_upsert([entity])

    assert broker.bodies() == [entity.to_dict(), [entity.to_dict()]]


@pytest.mark.anyio
async def test_geo_queries_are_checked_before_sending(face: Any) -> None:
    broker = FakeBroker(lambda r: json_response(200, []))
    client = face(broker)
    query = parse_geoquery(
        georel="within", geometry="Polygon", coordinates="[[[9,48],[10,48],[10,49],[9,48]]]"
    )

    await client.query(type="ParkingSpot", geoq=query)
    with pytest.raises(BadRequestData, match="near"):
        await client.query(
            type="T",
            geoq={
                "georel": "near;maxDistance==5",
                "geometry": "Polygon",
                "coordinates": [[[9, 48], [10, 48], [10, 49], [9, 48]]],
            },
        )

    assert len(broker.requests) == 1
    assert dict(broker.last.url.params) == {"type": "ParkingSpot", **query.to_params()}


@pytest.mark.anyio
async def test_client_headers_are_sent_and_user_agent_names_the_client(face: Any) -> None:
    broker = FakeBroker()
    client = face(broker, headers={"Fiware-ServicePath": "/ulm"})

    await client.delete("urn:ngsi-ld:T:1")

    assert broker.last.headers["Fiware-ServicePath"] == "/ulm"
    assert broker.last.headers["User-Agent"].startswith("drehscheibe-ngsi")
    assert broker.last.method == "DELETE"


# Attributes --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_append_and_update_attrs_report_what_was_updated(face: Any) -> None:
    partial = {
        "updated": ["no2"],
        "notUpdated": [{"attributeName": "pm10", "reason": "attribute does not exist"}],
    }
    broker = FakeBroker().scripted(httpx.Response(204), json_response(207, partial))
    client = face(broker)
    attrs = {"no2": {"type": "Property", "value": 1}, "pm10": {"type": "Property", "value": 2}}

    appended = await client.append_attrs("urn:ngsi-ld:T:1", attrs, no_overwrite=True)
    updated = await client.update_attrs("urn:ngsi-ld:T:1", attrs)

    assert appended.updated == ["no2", "pm10"]
    assert appended.ok
    assert updated.updated == ["no2"]
    assert [(n.attribute_name, n.reason) for n in updated.not_updated] == [
        ("pm10", "attribute does not exist")
    ]
    assert not updated.ok
    first, second = broker.requests
    assert (first.method, first.url.path) == ("POST", "/ngsi-ld/v1/entities/urn:ngsi-ld:T:1/attrs")
    assert first.url.params["options"] == "noOverwrite"
    assert (second.method, second.url.path) == (
        "PATCH",
        "/ngsi-ld/v1/entities/urn:ngsi-ld:T:1/attrs",
    )


@pytest.mark.anyio
async def test_delete_attr_sends_dataset_id_or_delete_all(face: Any) -> None:
    broker = FakeBroker()
    client = face(broker, context=CTX)

    await client.delete_attr("urn:ngsi-ld:T:1", "no2", dataset_id="urn:ngsi-ld:Dataset:a")
    await client.delete_attr("urn:ngsi-ld:T:1", "no2", delete_all=True)

    first, second = broker.requests
    assert first.method == "DELETE"
    assert first.url.path == "/ngsi-ld/v1/entities/urn:ngsi-ld:T:1/attrs/no2"
    assert first.url.params["datasetId"] == "urn:ngsi-ld:Dataset:a"
    assert first.headers["Link"] == LINK
    assert second.url.params["deleteAll"] == "true"
    with pytest.raises(ValueError, match="not both"):
        await client.delete_attr("urn:ngsi-ld:T:1", "no2", dataset_id="a", delete_all=True)


# Errors ------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "name", "cls"),
    [
        (404, "ResourceNotFound", ResourceNotFound),
        (409, "AlreadyExists", AlreadyExists),
        (400, "BadRequestData", BadRequestData),
        (422, "OperationNotSupported", OperationNotSupported),
        (503, "LdContextNotAvailable", LdContextNotAvailable),
        (404, "NonexistentTenant", NonexistentTenant),
    ],
)
async def test_problem_details_become_the_matching_exception(
    face: Any, status: int, name: str, cls: type[NgsiApiError]
) -> None:
    broker = FakeBroker(lambda r: problem(status, name, f"entity urn:x: {name}"))
    client = face(broker, retries=RetryPolicy.none())

    with pytest.raises(cls) as caught:
        await client.retrieve("urn:x")

    error = caught.value
    assert error.status_code == status
    assert error.problem.detail == f"entity urn:x: {name}"
    assert error.response is not None
    assert error.response.status_code == status
    assert error.request is broker.last


@pytest.mark.anyio
async def test_an_error_without_a_body_is_classified_by_status(face: Any) -> None:
    client = face(FakeBroker(lambda r: httpx.Response(409)))
    with pytest.raises(AlreadyExists):
        await client.create(ENTITY)


@pytest.mark.anyio
async def test_a_success_that_is_not_json_is_an_internal_error(face: Any) -> None:
    client = face(FakeBroker(lambda r: httpx.Response(200, content=b"<html>proxy</html>")))
    with pytest.raises(InternalError, match="not JSON"):
        await client.retrieve("urn:x")


@pytest.mark.anyio
async def test_transport_errors_never_escape_as_httpx_errors(face: Any) -> None:
    broker = FakeBroker(lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)))
    client = face(broker, retries=RetryPolicy.none())

    with pytest.raises(NgsiTransportError) as caught:
        await client.retrieve("urn:x")

    assert not isinstance(caught.value, httpx.HTTPError)  # type: ignore[unreachable]
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert caught.value.request is broker.last
    assert "GET http://localhost:1026/ngsi-ld/v1/entities/urn:x" in str(caught.value)


# Lifecycle ---------------------------------------------------------------------------------------


def test_the_constructor_does_no_io() -> None:
    broker = FakeBroker()
    Client(transport=httpx.MockTransport(broker), auth="token")
    AsyncClient(transport=httpx.MockTransport(broker), auth="token")
    assert broker.requests == []


def test_a_closed_client_refuses_to_work_and_cannot_be_reopened() -> None:
    broker = FakeBroker(lambda r: json_response(200, []))
    with Client(transport=httpx.MockTransport(broker)) as client:
        client.query(type="T")
        with pytest.raises(RuntimeError, match="already open"):
            client.__enter__()
    assert client.is_closed
    with pytest.raises(RuntimeError, match="closed"):
        client.query(type="T")
    with pytest.raises(RuntimeError, match="reopen"):
        client.__enter__()
    client.close()  # idempotent


@pytest.mark.anyio
async def test_a_closed_async_client_refuses_to_work() -> None:
    broker = FakeBroker(lambda r: json_response(200, []))
    async with AsyncClient(transport=httpx.MockTransport(broker)) as client:
        assert await client.query(type="T") == []
    with pytest.raises(RuntimeError, match="closed"):
        await client.query(type="T")
    with pytest.raises(RuntimeError, match="reopen"):
        await client.__aenter__()


def test_a_given_http_client_stays_open_and_excludes_a_transport() -> None:
    broker = FakeBroker(lambda r: json_response(200, []))
    http = httpx.Client(transport=httpx.MockTransport(broker))
    with Client(http_client=http) as client:
        client.query(type="T")
    assert not http.is_closed
    http.close()
    with pytest.raises(ValueError, match="not both"):
        Client(http_client=httpx.Client(), transport=httpx.MockTransport(broker))
    with pytest.raises(ValueError, match="http"):
        Client("localhost:1026")


def test_both_faces_have_the_same_operations_with_the_same_signatures() -> None:
    def operations(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(member)
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_") and name not in {"close", "aclose"}
        }

    sync_ops, async_ops = operations(Client), operations(AsyncClient)
    assert sync_ops.keys() == async_ops.keys()
    assert len(sync_ops) >= 30
    for name, signature in sync_ops.items():
        assert async_ops[name].parameters == signature.parameters, name
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)) == (name != "iter_entities")


# Paging and counting -----------------------------------------------------------------------------


def paged_broker(total: int, *, cap: int | None = None, count_header: bool = True) -> FakeBroker:
    store = [{"id": f"urn:ngsi-ld:T:{index:05d}", "type": "T"} for index in range(total)]

    def answer(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        limit = int(params.get("limit", "20"))
        if cap is not None:
            limit = min(limit, cap)
        offset = int(params.get("offset", "0"))
        headers = {}
        if params.get("count") == "true" and count_header:
            headers["NGSILD-Results-Count"] = str(total)
        return json_response(200, store[offset : offset + limit], headers=headers)

    return FakeBroker(answer)


@pytest.mark.anyio
async def test_iter_entities_pages_through_2500_results(face: Any) -> None:
    broker = paged_broker(2500)
    client = face(broker, context=CTX)

    found = await client.collect("iter_entities", type="T", q="no2>0")

    assert [entity["id"] for entity in found] == [f"urn:ngsi-ld:T:{i:05d}" for i in range(2500)]
    pages = [(r.url.params.get("offset", "0"), r.url.params["limit"]) for r in broker.requests]
    assert pages == [("0", "1000"), ("1000", "1000"), ("2000", "1000")]
    assert [r.url.params.get("count") for r in broker.requests] == ["true", None, None]
    assert all(r.url.params["q"] == "no2>0" and r.headers["Link"] == LINK for r in broker.requests)


@pytest.mark.anyio
async def test_query_all_uses_the_stellio_page_size(face: Any) -> None:
    broker = paged_broker(250)
    client = face(broker, profile="stellio")

    found = await client.query_all(type="T", page_size=500)

    assert len(found) == 250
    assert [r.url.params["limit"] for r in broker.requests] == ["100", "100", "100"]


@pytest.mark.anyio
async def test_paging_reads_to_the_total_when_the_broker_caps_the_page(face: Any) -> None:
    broker = paged_broker(450, cap=200)
    client = face(broker)

    found = await client.query_all(type="T")

    assert len(found) == 450
    assert [r.url.params.get("offset", "0") for r in broker.requests] == ["0", "200", "400"]


@pytest.mark.anyio
async def test_paging_without_a_total_stops_at_a_short_page(face: Any) -> None:
    broker = paged_broker(1500, count_header=False)
    client = face(broker)

    found = await client.query_all(type="T")

    assert len(found) == 1500
    assert len(broker.requests) == 2


@pytest.mark.anyio
async def test_paging_follows_a_next_link_on_the_same_origin(face: Any) -> None:
    pages = {
        None: ([{"id": "a"}, {"id": "b"}], '</ngsi-ld/v1/entities?type=T&cursor=2>; rel="next"'),
        "2": ([{"id": "c"}], '<http://elsewhere.example/steal?cursor=3>; rel="next"'),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        items, link = pages[request.url.params.get("cursor")]
        return json_response(200, items, headers={"Link": link})

    broker = FakeBroker(answer)
    client = face(broker, tenant="ulm", auth="secret-token")

    found = await client.query_all(type="T", page_size=2)

    assert [e["id"] for e in found] == ["a", "b", "c"]
    assert [str(r.url) for r in broker.requests] == [
        "http://localhost:1026/ngsi-ld/v1/entities?type=T&limit=2&count=true",
        "http://localhost:1026/ngsi-ld/v1/entities?type=T&cursor=2",
    ]
    assert broker.requests[1].headers["NGSILD-Tenant"] == "ulm"
    assert broker.requests[1].headers["Authorization"] == "Bearer secret-token"


@pytest.mark.anyio
async def test_count_asks_for_the_total_only(face: Any) -> None:
    broker = FakeBroker(lambda r: json_response(200, [], headers={"NGSILD-Results-Count": "4711"}))
    client = face(broker)

    assert await client.count(type="AirQualityObserved", q="no2>40") == 4711
    params = broker.last.url.params
    assert (params["count"], params["limit"], params["type"]) == ("true", "0", "AirQualityObserved")


@pytest.mark.anyio
async def test_count_without_the_header_is_an_error(face: Any) -> None:
    client = face(FakeBroker(lambda r: json_response(200, [])))
    with pytest.raises(InternalError, match="NGSILD-Results-Count"):
        await client.count(type="T")


# Tenants -----------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("profile", "name"),
    [
        ("orion-ld", "NonexistentTenant"),
        ("scorpio", "TenantNotFound"),
        ("embedded", "NonexistentTenant"),
    ],
)
async def test_collection_reads_of_a_fresh_tenant_are_empty(
    face: Any, profile: str, name: str
) -> None:
    broker = FakeBroker(lambda r: problem(404, name, "tenant fresh does not exist"))
    client = face(broker, tenant="fresh", profile=profile)

    assert await client.query(type="T") == []
    assert await client.query_all(type="T") == []
    assert await client.count(type="T") == 0
    assert await client.list_subscriptions() == []
    assert await client.types() == []
    assert await client.attributes() == []
    assert await client.temporal_query(type="T") == []
    with pytest.raises(NgsiApiError) as caught:
        await client.retrieve("urn:ngsi-ld:T:1")
    assert caught.value.problem.error_name == name


@pytest.mark.anyio
async def test_an_unknown_tenant_is_an_error_on_stellio(face: Any) -> None:
    client = face(FakeBroker(lambda r: problem(404, "NonexistentTenant")), profile="stellio")
    with pytest.raises(NonexistentTenant):
        await client.query(type="T")
    with pytest.raises(NonexistentTenant):
        await client.count(type="T")


@pytest.mark.anyio
async def test_a_missing_entity_is_not_read_as_a_fresh_tenant(face: Any) -> None:
    client = face(FakeBroker(lambda r: problem(404, "ResourceNotFound")))
    with pytest.raises(ResourceNotFound):
        await client.query(type="T")


# Types, attributes, temporal, contexts -----------------------------------------------------------


@pytest.mark.anyio
async def test_types_and_attributes(face: Any) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/types"):
            return json_response(
                200, {"id": "urn:x", "type": "EntityTypeList", "typeList": ["A", "B"]}
            )
        if path.endswith("/attributes"):
            return json_response(200, {"type": "AttributeList", "attributeList": ["no2"]})
        return json_response(200, {"id": path, "type": "EntityTypeInfo"})

    broker = FakeBroker(answer)
    client = face(broker, context=CTX)

    assert await client.types() == ["A", "B"]
    assert await client.attributes() == ["no2"]
    info = await client.type_info(
        "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"
    )
    assert info["type"] == "EntityTypeInfo"
    await client.attribute_info("no2")
    assert broker.requests[2].url.raw_path.decode() == (
        "/ngsi-ld/v1/types/https:%2F%2Fsmartdatamodels.org%2FdataModel.Environment%2FAirQualityObserved"
    )
    assert broker.requests[3].url.path == "/ngsi-ld/v1/attributes/no2"
    assert all(r.headers["Link"] == LINK for r in broker.requests)


@pytest.mark.anyio
async def test_temporal_requests(face: Any) -> None:
    broker = FakeBroker(
        lambda r: json_response(200, [] if r.url.path.endswith("entities") else ENTITY)
    )
    client = face(broker)
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    await client.temporal_retrieve(
        ENTITY["id"],
        timerel="between",
        time_at=start,
        end_time_at="2025-03-02T00:00:00Z",
        last_n=10,
        attrs=["no2"],
        options="temporalValues",
    )
    await client.temporal_query(type="T", timerel="after", time_at=start, limit=100)

    first, second = broker.requests
    assert first.url.path == f"/ngsi-ld/v1/temporal/entities/{ENTITY['id']}"
    assert dict(first.url.params) == {
        "timerel": "between",
        "timeAt": "2025-03-01T12:00:00.000Z",
        "endTimeAt": "2025-03-02T00:00:00Z",
        "lastN": "10",
        "attrs": "no2",
        "options": "temporalValues",
    }
    assert second.url.path == "/ngsi-ld/v1/temporal/entities"
    assert second.url.params["timerel"] == "after"
    with pytest.raises(ValueError, match="timezone"):
        await client.temporal_retrieve("urn:x", timerel="before", time_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="between"):
        await client.temporal_retrieve("urn:x", timerel="between", time_at=start)
    with pytest.raises(ValueError, match="timerel"):
        await client.temporal_retrieve("urn:x", time_at=start)


@pytest.mark.anyio
async def test_jsonld_contexts(face: Any) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, headers={"Location": "/ngsi-ld/v1/jsonldContexts/abc"})
        if request.method == "GET" and request.url.path.endswith("jsonldContexts"):
            return json_response(200, ["http://localhost:1026/ngsi-ld/v1/jsonldContexts/abc"])
        if request.method == "GET":
            return json_response(200, {"@context": {"no2": "https://example.org/no2"}})
        return httpx.Response(204)

    broker = FakeBroker(answer)
    client = face(broker, tenant="ulm", context=CTX)

    url = await client.add_context({"no2": "https://example.org/no2"})
    assert url == "http://localhost:1026/ngsi-ld/v1/jsonldContexts/abc"
    assert await client.list_contexts(details=True) == [url]
    assert (await client.retrieve_context(url))["@context"]["no2"] == "https://example.org/no2"
    await client.delete_context("https://example.org/ctx.jsonld", reload=True)

    post, listing, get, delete = broker.requests
    assert orjson.loads(post.content) == {"@context": {"no2": "https://example.org/no2"}}
    assert post.headers["Content-Type"] == "application/json"
    assert "Link" not in post.headers
    assert "NGSILD-Tenant" not in post.headers
    assert listing.url.params["details"] == "true"
    assert get.url.path == "/ngsi-ld/v1/jsonldContexts/abc"  # the local id of its own URL
    assert delete.method == "DELETE"
    assert delete.url.params["reload"] == "true"


# Subscriptions -----------------------------------------------------------------------------------

SUBSCRIPTION = {
    "id": "urn:ngsi-ld:Subscription:traffic-1",
    "type": "Subscription",
    "entities": [{"type": "TrafficFlowObserved"}],
    "watchedAttributes": ["intensity"],
    "q": "intensity>100",
    "notification": {
        "format": "normalized",
        "endpoint": {
            "uri": "http://traffic.example/notify",
            "accept": "application/json",
            "receiverInfo": [{"key": "Authorization", "value": "Bearer abc"}],
        },
        "timesSent": 12,
        "lastSuccess": "2025-03-01T12:00:00.000Z",
        "status": "ok",
    },
    "status": "active",
    "isActive": True,
    "origin": "cache",
}


@pytest.mark.anyio
async def test_subscription_operations(face: Any) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(
                201,
                headers={
                    "Location": "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:traffic-1"
                },
            )
        if request.method == "GET" and request.url.path.endswith("/subscriptions"):
            return json_response(200, [SUBSCRIPTION], headers={"NGSILD-Results-Count": "1"})
        if request.method == "GET":
            return json_response(200, SUBSCRIPTION)
        return httpx.Response(204)

    broker = FakeBroker(answer)
    client = face(broker, tenant="ulm", context=CTX)
    subscription = Subscription.from_dict(SUBSCRIPTION)

    created_id = await client.create_subscription(subscription)
    listed = await client.list_subscriptions()
    one = await client.retrieve_subscription(created_id)
    await client.update_subscription(created_id, {"isActive": False})
    await client.delete_subscription(created_id)

    assert created_id == "urn:ngsi-ld:Subscription:traffic-1"
    assert [s.id for s in listed] == [created_id]
    assert one.notification.times_sent == 12
    assert one.status == "active"
    post, listing, get, patch, delete = broker.requests
    body = orjson.loads(post.content)
    assert "status" not in body
    assert "timesSent" not in body["notification"]
    assert body["watchedAttributes"] == ["intensity"]
    assert body["origin"] == "cache"
    assert post.headers["Link"] == LINK
    assert post.headers["NGSILD-Tenant"] == "ulm"
    assert listing.url.params["limit"] == "1000"
    assert get.url.path == "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:traffic-1"
    assert (patch.method, orjson.loads(patch.content)) == ("PATCH", {"isActive": False})
    assert delete.method == "DELETE"


@pytest.mark.anyio
async def test_an_unreadable_subscription_from_the_broker_is_an_internal_error(face: Any) -> None:
    client = face(FakeBroker(lambda r: json_response(200, {"id": "urn:x", "type": "Subscription"})))
    with pytest.raises(InternalError, match="urn:x"):
        await client.retrieve_subscription("urn:x")
