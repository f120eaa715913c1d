"""Batch operations: chunking to the broker's limits and every broker's 207 body."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngsi._batch import BatchFailure, batch_outcome, parse_batch_body, plan_chunks
from ngsi._client_base import RawEntity
from ngsi._core_context import CORE_CONTEXT_URL
from ngsi._errors import ERROR_TYPE_BASE, ProblemDetails
from ngsi._profiles import get_profile
from tests.ngsi.test_client_support import FakeBroker, entities, faces, ids_of, json_response

face = faces()

CTX = "https://smartdatamodels.org/dataModel.Parking/context.jsonld"
BAD = ERROR_TYPE_BASE + "BadRequestData"
DETAIL = "attribute 'no2' must be a number"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# Chunking ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_upsert_chunks_by_count_and_says_options_update(face: Any) -> None:
    broker = FakeBroker(lambda r: httpx.Response(204))
    client = face(broker, context=CTX, tenant="ulm")
    batch = entities(2500)

    result = await client.batch_upsert(batch)

    assert result.ok
    assert result.succeeded == ids_of(batch)
    assert [len(body) for body in broker.bodies()] == [1000, 1000, 500]
    for request in broker.requests:
        assert request.url.path == "/ngsi-ld/v1/entityOperations/upsert"
        assert request.url.params["options"] == "update"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Link"].startswith(f"<{CTX}>")
        assert request.headers["NGSILD-Tenant"] == "ulm"
    assert [e for body in broker.bodies() for e in body] == batch


@pytest.mark.anyio
async def test_upsert_replace_mode_sends_no_option_and_a_bad_mode_is_refused(face: Any) -> None:
    broker = FakeBroker(lambda r: httpx.Response(204))
    client = face(broker)

    await client.batch_upsert(entities(2), mode="replace")

    assert "options" not in broker.last.url.params
    with pytest.raises(ValueError, match="'update' or 'replace'"):
        await client.batch_upsert(entities(2), mode="merge")


def byte_limited(face: Any, limit: int) -> tuple[FakeBroker, Any]:
    """A broker answering 204 and a client whose profile sends at most `limit` bytes a request."""
    profile = dataclasses.replace(get_profile("orion-ld"), max_batch_bytes=limit)
    broker = FakeBroker(lambda r: httpx.Response(204))
    return broker, face(broker, profile=profile)


def larger_than(limit: int, entity_type: str) -> dict[str, Any]:
    """An entity that does not fit in a request of `limit` bytes on its own."""
    return {
        "id": f"urn:ngsi-ld:{entity_type}:huge",
        "type": entity_type,
        "blob": {"type": "Property", "value": "x" * limit},
    }


@pytest.mark.anyio
async def test_chunks_respect_the_byte_limit_and_a_huge_entity_fails_alone(face: Any) -> None:
    limit = 4096
    broker, client = byte_limited(face, limit)
    batch = entities(40, pad=300)
    huge = larger_than(limit, "AirQualityObserved")
    batch.insert(7, huge)

    result = await client.batch_upsert(batch)

    assert len(broker.requests) > 1
    assert all(len(request.content) <= limit for request in broker.requests)
    sent = [entity["id"] for body in broker.bodies() for entity in body]
    assert sent == [e["id"] for e in batch if e is not huge]
    assert result.succeeded == sent
    [failure] = result.failed
    assert failure.entity_id == huge["id"]
    assert failure.status == 413
    assert failure.permanent
    assert "not sent" in (failure.problem.detail or "")
    assert str(limit) in (failure.problem.detail or "")


@pytest.mark.anyio
async def test_an_entity_without_an_id_fails_alone(face: Any) -> None:
    broker = FakeBroker(lambda r: httpx.Response(204))
    client = face(broker)

    result = await client.batch_upsert([*entities(2), {"type": "AirQualityObserved"}])

    assert len(result.succeeded) == 2
    [failure] = result.failed
    assert (failure.entity_id, failure.status) == ("", 400)
    assert "#2" in (failure.problem.detail or "")


@pytest.mark.anyio
async def test_batch_update_delete_and_create_requests(face: Any) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/create"):
            return json_response(201, [e["id"] for e in orjson.loads(request.content)])
        return httpx.Response(204)

    broker = FakeBroker(answer)
    client = face(broker)
    batch = entities(3)

    created = await client.batch_create(batch)
    updated = await client.batch_update(batch, no_overwrite=True)
    deleted = await client.batch_delete(ids_of(batch))

    assert created.succeeded == updated.succeeded == deleted.succeeded == ids_of(batch)
    create, update, delete = broker.requests
    assert create.url.path == "/ngsi-ld/v1/entityOperations/create"
    assert "options" not in create.url.params
    assert update.url.params["options"] == "noOverwrite"
    assert orjson.loads(delete.content) == ids_of(batch)
    assert delete.headers["Content-Type"] == "application/json"


@pytest.mark.anyio
async def test_inline_and_own_contexts_in_a_batch(face: Any) -> None:
    broker = FakeBroker(lambda r: httpx.Response(204))
    inline = {"no2": "https://smartdatamodels.org/dataModel.Environment/no2"}
    client = face(broker, context=inline)

    await client.batch_upsert(entities(2))
    mixed = [entities(1)[0], {**entities(2)[1], "@context": CTX}]
    await client.batch_upsert(mixed, context=None)

    first, second = broker.requests
    assert first.headers["Content-Type"] == "application/ld+json"
    assert "Link" not in first.headers
    assert [e["@context"] for e in orjson.loads(first.content)] == [inline, inline]
    assert [e["@context"] for e in orjson.loads(second.content)] == [CORE_CONTEXT_URL, CTX]


# Pre-serialised entities --------------------------------------------------------------------------


def raw(entity: dict[str, Any], *, spaced: bool = False) -> RawEntity:
    text = orjson.dumps(entity, option=orjson.OPT_INDENT_2 if spaced else None)
    return RawEntity(entity["id"], (b" \n" + text + b"\n ") if spaced else text)


@pytest.mark.anyio
async def test_raw_entities_go_into_the_request_as_they_are(face: Any) -> None:
    broker = FakeBroker(lambda r: httpx.Response(204))
    client = face(broker, context=CTX, tenant="ulm")
    batch = entities(5)
    mixed: list[Any] = [
        raw(batch[0]),
        batch[1],
        raw(batch[2], spaced=True),
        raw(batch[3]),
        batch[4],
    ]

    result = await client.batch_upsert(mixed)

    assert result.succeeded == ids_of(batch)
    request = broker.last
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Link"].startswith(f"<{CTX}>")
    assert request.url.params["options"] == "update"
    assert orjson.loads(request.content) == batch
    assert orjson.dumps(batch[0]) in request.content  # the bytes themselves, not re-encoded


@pytest.mark.anyio
async def test_raw_entities_are_chunked_and_refused_like_the_others(face: Any) -> None:
    limit = 4096
    broker, client = byte_limited(face, limit)
    batch = entities(30, pad=300)
    huge = larger_than(limit, "T")
    mixed: list[Any] = [raw(entity) for entity in batch]
    mixed[3:3] = [
        raw(huge),
        RawEntity("urn:ngsi-ld:T:list", b"[1, 2]"),
        RawEntity("", b'{"type": "T"}'),
        RawEntity("urn:ngsi-ld:T:text", "{}"),  # type: ignore[arg-type]
    ]

    result = await client.batch_upsert(mixed)

    assert len(broker.requests) > 1
    assert all(len(request.content) <= limit for request in broker.requests)
    assert [e for body in broker.bodies() for e in body] == batch
    assert result.succeeded == ids_of(batch)
    refused = {f.entity_id: (f.status, f.problem.detail or "") for f in result.failed}
    assert refused["urn:ngsi-ld:T:huge"][0] == 413
    assert refused["urn:ngsi-ld:T:list"] == (
        400,
        "entity 'urn:ngsi-ld:T:list': its JSON is not an object",
    )
    assert refused[""] == (400, "entity #5 of the batch has no 'id'")
    assert "not bytes" in refused["urn:ngsi-ld:T:text"][1]


@pytest.mark.anyio
async def test_raw_entities_get_the_inline_context_when_the_batch_needs_one(face: Any) -> None:
    broker = FakeBroker(lambda r: httpx.Response(204))
    inline = {"no2": "https://smartdatamodels.org/dataModel.Environment/no2"}
    client = face(broker, context=inline)
    batch = entities(2)

    await client.batch_upsert([raw(batch[0]), raw(batch[1], spaced=True)])
    await client.batch_upsert([raw(batch[0]), {**batch[1], "@context": CTX}], context=None)

    first, second = broker.requests
    assert first.headers["Content-Type"] == "application/ld+json"
    assert "Link" not in first.headers
    assert orjson.loads(first.content) == [{**e, "@context": inline} for e in batch]
    assert [e["@context"] for e in orjson.loads(second.content)] == [CORE_CONTEXT_URL, CTX]
    assert [e["id"] for e in orjson.loads(second.content)] == ids_of(batch)


def test_raw_entities_compare_by_id_and_bytes() -> None:
    assert RawEntity("a", b"{}") == RawEntity("a", b"{}")
    assert RawEntity("a", b"{}") != RawEntity("b", b"{}")
    assert "2 bytes" in repr(RawEntity("a", b"{}"))


# 207 bodies of each broker ------------------------------------------------------------------------

SENT = ["urn:ngsi-ld:T:A", "urn:ngsi-ld:T:B", "urn:ngsi-ld:T:C"]
PROBLEM = {"type": BAD, "title": "Bad Request Data", "detail": DETAIL, "status": 400}

MULTI_STATUS_BODIES: dict[str, tuple[str, Any]] = {
    "orion-ld": (
        "orion-ld",
        {
            "success": ["urn:ngsi-ld:T:A", "urn:ngsi-ld:T:C"],
            "errors": [{"entityId": "urn:ngsi-ld:T:B", "error": PROBLEM}],
        },
    ),
    "embedded": (
        "embedded",
        {
            "success": ["urn:ngsi-ld:T:A", "urn:ngsi-ld:T:C"],
            "errors": [{"entityId": "urn:ngsi-ld:T:B", "error": PROBLEM}],
        },
    ),
    "scorpio 5": (
        "scorpio",
        {
            "success": ["urn:ngsi-ld:T:A", "urn:ngsi-ld:T:C"],
            "errors": [{"id": "urn:ngsi-ld:T:B", "type": "Upsert", "ProblemDetails": PROBLEM}],
        },
    ),
    "scorpio 4": (
        "scorpio",
        [
            {"success": [{"attributes": []}], "id": "urn:ngsi-ld:T:A", "type": "Upsert"},
            {
                "failure": [
                    {
                        "type": BAD,
                        "title": "Bad Request Data.",
                        "detail": {"message": DETAIL},
                        "errorCode": 400,
                    }
                ],
                "id": "urn:ngsi-ld:T:B",
                "type": "Upsert",
            },
            {"success": [{"attributes": []}], "id": "urn:ngsi-ld:T:C", "type": "Upsert"},
        ],
    ),
    "stellio": (
        "stellio",
        {
            "success": ["urn:ngsi-ld:T:A", "urn:ngsi-ld:T:C"],
            "errors": [
                {
                    "entityId": "urn:ngsi-ld:T:B",
                    "error": {
                        "type": BAD,
                        "title": "Bad request",
                        "status": 400,
                        "detail": DETAIL,
                        "instance": None,
                    },
                }
            ],
        },
    ),
    "stellio before ProblemDetail": (
        "stellio",
        {
            "success": ["urn:ngsi-ld:T:A", "urn:ngsi-ld:T:C"],
            "errors": [{"entityId": "urn:ngsi-ld:T:B", "error": [DETAIL]}],
        },
    ),
    "problem members on the entry": (
        "orion-ld",
        {
            "success": [{"entityId": "urn:ngsi-ld:T:A"}, {"entityId": "urn:ngsi-ld:T:C"}],
            "errors": [{"entityId": "urn:ngsi-ld:T:B", **PROBLEM}],
        },
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(MULTI_STATUS_BODIES))
async def test_every_brokers_207_gives_the_same_result(face: Any, case: str) -> None:
    profile, body = MULTI_STATUS_BODIES[case]
    client = face(FakeBroker(lambda r: json_response(207, body)), profile=profile)

    result = await client.batch_upsert([{"id": i, "type": "T"} for i in SENT])

    assert result.succeeded == ["urn:ngsi-ld:T:A", "urn:ngsi-ld:T:C"]
    [failure] = result.failed
    assert failure.entity_id == "urn:ngsi-ld:T:B"
    assert failure.status == 400
    assert failure.problem.error_name == "BadRequestData"
    assert failure.problem.detail == DETAIL
    assert failure.permanent


@pytest.mark.parametrize(
    "body",
    [
        None,
        "oops",
        17,
        {"unexpected": True},
        {"success": "A"},
        {"errors": [1, None, {"x": 1}]},
        [None, 3],
    ],
)
def test_unknown_207_shapes_never_crash_and_confirm_nothing(body: Any) -> None:
    result = batch_outcome(207, body, SENT)

    assert result.succeeded == []
    assert result.failed_ids == SENT
    for failure in result.failed:
        assert failure.status == 207
        assert failure.problem.error_name == "InternalError"
        assert not failure.permanent
        assert "neither as done nor as failed" in (failure.problem.detail or "")


def test_an_entity_the_207_does_not_mention_is_not_counted_as_done() -> None:
    body = {
        "success": ["urn:ngsi-ld:T:A"],
        "errors": [{"entityId": "urn:ngsi-ld:T:X", "error": PROBLEM}],
    }

    result = batch_outcome(207, body, SENT)

    assert result.succeeded == ["urn:ngsi-ld:T:A"]
    assert result.failed_ids == ["urn:ngsi-ld:T:B", "urn:ngsi-ld:T:C", "urn:ngsi-ld:T:X"]
    assert result.failed[0].problem.title == "Outcome unknown"


def test_201_and_204_confirm_every_entity_sent() -> None:
    assert batch_outcome(201, ["urn:ngsi-ld:T:B"], SENT).succeeded == SENT
    assert batch_outcome(204, None, [*SENT, SENT[0]]).succeeded == SENT


def test_odd_problem_members_are_normalised() -> None:
    body = {
        "errors": [
            {"entityId": "a", "error": {"type": 409, "title": "Already exists.", "detail": "a"}},
            {"entityId": "b", "error": {"type": "AlreadyExists", "detail": ["x", "y"]}},
            {"entityId": "c", "error": {"type": BAD, "status": "422", "detail": {"k": 1}}},
            {"entityId": "d", "error": "plain text"},
        ]
    }

    failures = {f.entity_id: f for f in parse_batch_body(body, 207).errors}

    assert (failures["a"].status, failures["a"].problem.error_name) == (409, "AlreadyExists")
    assert (failures["b"].status, failures["b"].problem.detail) == (409, "x; y")
    assert (failures["c"].status, failures["c"].problem.detail) == (422, '{"k":1}')
    assert (failures["d"].status, failures["d"].problem.detail) == (400, "plain text")


# Whole-chunk failures ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_chunk_rejected_as_a_whole_fails_and_the_next_chunks_still_go(face: Any) -> None:
    calls = {"n": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(413, content=b"Payload Too Large")
        if calls["n"] == 2:
            return json_response(400, {"type": BAD, "title": "Bad", "detail": "invalid JSON"})
        return httpx.Response(204)

    broker = FakeBroker(answer)
    client = face(broker)
    batch = entities(2500)

    result = await client.batch_upsert(batch)

    assert len(broker.requests) == 3
    assert result.succeeded == ids_of(batch)[2000:]
    assert result.failed_ids == ids_of(batch)[:2000]
    assert {f.status for f in result.failed[:1000]} == {413}
    assert {f.status for f in result.failed[1000:]} == {400}
    assert result.failed[1500].problem.detail == "invalid JSON"


@pytest.mark.anyio
async def test_scorpios_all_failed_answer_names_each_entity(face: Any) -> None:
    body = {
        "errors": [
            {
                "id": "urn:ngsi-ld:T:A",
                "type": "Create",
                "ProblemDetails": {
                    **PROBLEM,
                    "status": 409,
                    "type": ERROR_TYPE_BASE + "AlreadyExists",
                },
            },
            {"id": "urn:ngsi-ld:T:B", "type": "Create", "ProblemDetails": PROBLEM},
        ]
    }
    client = face(FakeBroker(lambda r: json_response(400, body)), profile="scorpio")

    result = await client.batch_create([{"id": i, "type": "T"} for i in SENT])

    assert result.succeeded == []
    statuses = {f.entity_id: (f.status, f.problem.error_name) for f in result.failed}
    assert statuses == {
        "urn:ngsi-ld:T:A": (409, "AlreadyExists"),
        "urn:ngsi-ld:T:B": (400, "BadRequestData"),
        "urn:ngsi-ld:T:C": (400, "BadRequestData"),
    }


@pytest.mark.anyio
async def test_an_unauthorised_chunk_is_not_a_permanent_failure(face: Any) -> None:
    client = face(FakeBroker(lambda r: httpx.Response(401)))

    result = await client.batch_upsert(entities(2))

    assert [f.status for f in result.failed] == [401, 401]
    assert not any(f.permanent for f in result.failed)


def test_permanence_of_failures() -> None:
    problem = ProblemDetails(type=BAD)
    assert BatchFailure(entity_id="a", problem=problem, status=400).permanent
    assert BatchFailure(entity_id="a", problem=problem, status=404).permanent
    for status in (None, 207, 401, 403, 408, 429, 500, 503):
        assert not BatchFailure(entity_id="a", problem=problem, status=status).permanent


# plan_chunks -------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=120), max_size=60),
    max_entities=st.integers(min_value=1, max_value=10),
    max_bytes=st.integers(min_value=3, max_value=300),
)
def test_plan_chunks_keeps_order_and_limits(
    sizes: list[int], max_entities: int, max_bytes: int
) -> None:
    items = [
        (f"e{index}", b'"' + b"x" * (size - 1) + b'"' if size > 1 else b"0")
        for index, size in enumerate(sizes)
    ]

    chunks, too_large = plan_chunks(items, max_entities=max_entities, max_bytes=max_bytes)

    planned = [entity_id for chunk in chunks for entity_id in chunk.ids]
    refused = {entity_id for entity_id, _ in too_large}
    assert planned == [entity_id for entity_id, _ in items if entity_id not in refused]
    assert all(len(part) + 2 > max_bytes for entity_id, part in items if entity_id in refused)
    for chunk in chunks:
        assert 1 <= len(chunk.ids) <= max_entities
        assert len(chunk.body) == chunk.size <= max_bytes
        assert len(orjson.loads(chunk.body)) == len(chunk.ids)
