"""Fault paths of the client: what is retried, what is never sent twice, what is raised."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from ngsi._errors import BadRequestData, InternalError, LdContextNotAvailable, NgsiTransportError
from ngsi._retry import RetryMode, RetryPolicy, retry_after_seconds
from tests.ngsi.test_client_support import FakeBroker, entities, faces, json_response, problem

face = faces()

ENTITY = {"id": "urn:ngsi-ld:ParkingSpot:P1", "type": "ParkingSpot"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def dropped(request: httpx.Request) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(
        "Server disconnected without sending a response.", request=request
    )


def raising(error: type[httpx.TransportError], *, then: httpx.Response, times: int = 1) -> Any:
    """An answer function that raises `error` for the first `times` requests, then answers."""
    calls = {"n": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error("injected fault", request=request)
        return then

    return answer


@pytest.mark.anyio
async def test_503_with_retry_after_is_retried_then_succeeds(
    face: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broker = FakeBroker().scripted(
        httpx.Response(503, headers={"Retry-After": "1"}),
        json_response(200, ENTITY),
    )
    client = face(broker, retries=RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.02))

    with caplog.at_level(logging.WARNING, logger="ngsi.client"):
        assert await client.retrieve(ENTITY["id"]) == ENTITY

    assert len(broker.requests) == 2
    [record] = [r for r in caplog.records if "retrying" in r.getMessage()]
    message = record.getMessage()
    assert "Retry-After 1" in message
    assert "in 0.020 s" in message  # the broker's 1 s, capped by max_wait


@pytest.mark.anyio
@pytest.mark.parametrize("fault", [httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout])
async def test_a_dropped_connection_on_an_idempotent_request_is_retried(
    face: Any, fault: type[httpx.TransportError]
) -> None:
    broker = FakeBroker(raising(fault, then=json_response(200, [ENTITY]), times=2))
    client = face(broker)

    assert await client.query(type="ParkingSpot") == [ENTITY]
    assert len(broker.requests) == 3


@pytest.mark.anyio
@pytest.mark.parametrize("fault", [httpx.RemoteProtocolError, httpx.ReadTimeout, httpx.WriteError])
async def test_a_create_that_may_have_arrived_is_never_sent_twice(
    face: Any, fault: type[httpx.TransportError]
) -> None:
    broker = FakeBroker(raising(fault, then=httpx.Response(201), times=1))
    client = face(broker)

    with pytest.raises(NgsiTransportError, match=fault.__name__):
        await client.create(ENTITY)

    assert len(broker.requests) == 1


@pytest.mark.anyio
async def test_a_subscription_create_is_never_sent_twice(face: Any) -> None:
    broker = FakeBroker(lambda r: (_ for _ in ()).throw(dropped(r)))
    client = face(broker)
    subscription = {
        "type": "Subscription",
        "entities": [{"type": "ParkingSpot"}],
        "notification": {"endpoint": {"uri": "http://consumer.example/n"}},
    }

    with pytest.raises(NgsiTransportError):
        await client.create_subscription(subscription)

    assert len(broker.requests) == 1


@pytest.mark.anyio
async def test_a_create_is_retried_when_the_connection_was_never_made(face: Any) -> None:
    location = {"Location": "/ngsi-ld/v1/entities/urn:ngsi-ld:ParkingSpot:P1"}
    broker = FakeBroker(raising(httpx.ConnectError, then=httpx.Response(201, headers=location)))
    client = face(broker)

    assert await client.create(ENTITY) == ENTITY["id"]
    assert len(broker.requests) == 2


@pytest.mark.anyio
@pytest.mark.parametrize(("status", "tries"), [(503, 2), (429, 2), (502, 1), (504, 1)])
async def test_a_create_is_retried_only_on_answers_that_say_it_was_not_handled(
    face: Any, status: int, tries: int
) -> None:
    location = {"Location": "/ngsi-ld/v1/entities/x"}
    broker = FakeBroker().scripted(httpx.Response(status), httpx.Response(201, headers=location))
    client = face(broker)

    if tries == 2:
        assert await client.create(ENTITY) == ENTITY["id"]
    else:
        with pytest.raises(InternalError):
            await client.create(ENTITY)
    assert len(broker.requests) == tries


@pytest.mark.anyio
async def test_when_retries_run_out_the_last_answer_is_raised(face: Any) -> None:
    broker = FakeBroker(lambda r: problem(503, "LdContextNotAvailable", "context unreachable"))
    client = face(broker, retries=RetryPolicy(attempts=3, initial_wait=0, max_wait=0))

    with pytest.raises(LdContextNotAvailable, match="context unreachable"):
        await client.retrieve(ENTITY["id"])

    assert len(broker.requests) == 3


@pytest.mark.anyio
async def test_when_retries_run_out_on_faults_a_transport_error_is_raised(face: Any) -> None:
    broker = FakeBroker(lambda r: (_ for _ in ()).throw(dropped(r)))
    client = face(broker, retries=RetryPolicy(attempts=4, initial_wait=0, max_wait=0))

    with pytest.raises(NgsiTransportError) as caught:
        await client.delete(ENTITY["id"])

    assert len(broker.requests) == 4
    assert caught.value.request is not None


@pytest.mark.anyio
async def test_no_retries_with_the_none_policy_and_none_on_client_errors(face: Any) -> None:
    broker = FakeBroker(lambda r: httpx.Response(503))
    client = face(broker, retries=RetryPolicy.none())
    with pytest.raises(LdContextNotAvailable):
        await client.query(type="T")
    assert len(broker.requests) == 1

    broker = FakeBroker(lambda r: problem(400, "BadRequestData"))
    client = face(broker)
    with pytest.raises(BadRequestData):
        await client.query(type="T")
    assert len(broker.requests) == 1


@pytest.mark.anyio
async def test_a_batch_upsert_chunk_is_retried_on_its_own(face: Any) -> None:
    calls = {"n": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 2:
            return httpx.Response(503, headers={"Retry-After": "0"})
        if calls["n"] == 3:
            raise dropped(request)
        return httpx.Response(204)

    broker = FakeBroker(answer)
    client = face(broker)

    result = await client.batch_upsert(entities(1500))

    assert result.ok
    assert len(result.succeeded) == 1500
    sizes = [len(body) for body in broker.bodies()]
    assert sizes == [1000, 500, 500, 500]


@pytest.mark.anyio
async def test_a_batch_create_without_an_answer_is_not_resent_and_stops(face: Any) -> None:
    broker = FakeBroker(lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=r)))
    client = face(broker)

    result = await client.batch_create(entities(1500))

    assert len(broker.requests) == 1
    assert result.succeeded == []
    assert len(result.failed) == 1500
    assert {failure.status for failure in result.failed} == {None}
    assert not any(failure.permanent for failure in result.failed)
    first, last = result.failed[0], result.failed[-1]
    assert "outcome unknown" in (first.problem.detail or "")
    assert "not sent" in (last.problem.detail or "")


def test_which_outcomes_are_retried() -> None:
    policy = RetryPolicy()
    request = httpx.Request("POST", "http://broker/ngsi-ld/v1/entities")
    idem, once = RetryMode.IDEMPOTENT, RetryMode.NOT_SENT_ONLY
    for not_sent in (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
        assert policy.should_retry(not_sent("x", request=request), once)
    for error in (
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.ReadError,
        httpx.RemoteProtocolError,
    ):
        assert policy.should_retry(error("x", request=request), idem)
        assert not policy.should_retry(error("x", request=request), once)
    assert not policy.should_retry(httpx.UnsupportedProtocol("x", request=request), idem)
    assert not policy.should_retry(ValueError("x"), idem)
    assert policy.should_retry(httpx.Response(502), idem)
    assert not policy.should_retry(httpx.Response(502), once)
    assert not policy.should_retry(httpx.Response(500), idem)


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": "7"})) == 7.0
    date = httpx.Response(503, headers={"Retry-After": "Sat, 01 Mar 2025 12:00:30 GMT"})
    assert retry_after_seconds(date, now=now) == 30.0
    past = httpx.Response(503, headers={"Retry-After": "Sat, 01 Mar 2025 11:00:00 GMT"})
    assert retry_after_seconds(past, now=now) == 0.0
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": "soon"})) is None
    assert retry_after_seconds(httpx.Response(503)) is None


def test_retry_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    assert RetryPolicy.none().attempts == 1
