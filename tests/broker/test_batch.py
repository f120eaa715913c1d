"""Batch entity operations: create, upsert (replace by default!), update, delete; 201/204/207."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.broker.test_entities import prop


def ids(n: int, kind: str = "Batch") -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"urn:ngsi-ld:{kind}:{run}-{i}" for i in range(n)]


def entity(entity_id: str, **attrs: Any) -> dict[str, Any]:
    return {"id": entity_id, "type": "Batch", **attrs}


def test_batch_create_201_then_207_for_duplicates_and_bad_ones(http: httpx.Client) -> None:
    a, b, c = ids(3)
    first = http.post("/entityOperations/create", json=[entity(a), entity(b)])
    assert first.status_code == 201
    assert first.json() == [a, b]
    second = http.post(
        "/entityOperations/create",
        json=[entity(a), entity(c), {"id": "no uri", "type": "Batch"}],
    )
    assert second.status_code == 207
    body = second.json()
    assert body["success"] == [c]
    errors = {e["entityId"]: e["error"] for e in body["errors"]}
    assert errors[a]["type"].endswith("/AlreadyExists")
    assert errors[a]["status"] == 409
    assert errors["no uri"]["type"].endswith("/BadRequestData")


def test_upsert_replaces_whole_entities_by_default(http: httpx.Client) -> None:
    (a,) = ids(1)
    created = http.post(
        "/entityOperations/upsert", json=[entity(a, owner=prop("admin"), temperature=prop(1))]
    )
    assert created.status_code == 201
    assert created.json() == [a]
    replaced = http.post("/entityOperations/upsert", json=[entity(a, temperature=prop(2))])
    assert replaced.status_code == 204
    assert http.get(f"/entities/{a}").json() == entity(a, temperature=prop(2))


def test_upsert_with_options_update_merges(http: httpx.Client) -> None:
    a, b = ids(2)
    http.post(
        "/entityOperations/upsert", json=[entity(a, owner=prop("admin"), temperature=prop(1))]
    )
    response = http.post(
        "/entityOperations/upsert",
        params={"options": "update"},
        json=[entity(a, temperature=prop(2)), entity(b, temperature=prop(5))],
    )
    assert response.status_code == 201
    assert response.json() == [b]
    assert http.get(f"/entities/{a}").json() == entity(a, owner=prop("admin"), temperature=prop(2))
    again = http.post(
        "/entityOperations/upsert", params={"options": "update"}, json=[entity(b, x=prop(1))]
    )
    assert again.status_code == 204


def test_upsert_keeps_the_batch_going_past_a_bad_entity(http: httpx.Client) -> None:
    a, b = ids(2)
    response = http.post(
        "/entityOperations/upsert",
        params={"options": "update"},
        json=[entity(a), entity(b, bad={"type": "Property"})],
    )
    assert response.status_code == 207
    assert response.json()["success"] == [a]
    assert response.json()["errors"][0]["entityId"] == b
    assert http.get(f"/entities/{b}").status_code == 404


def test_batch_update_needs_existing_entities_and_honours_no_overwrite(
    http: httpx.Client,
) -> None:
    a, missing = ids(2)
    http.post("/entityOperations/create", json=[entity(a, v=prop(1))])
    response = http.post(
        "/entityOperations/update", json=[entity(a, v=prop(2)), entity(missing, v=prop(1))]
    )
    assert response.status_code == 207
    assert response.json()["success"] == [a]
    assert response.json()["errors"][0]["error"]["status"] == 404
    kept = http.post(
        "/entityOperations/update",
        params={"options": "noOverwrite"},
        json=[entity(a, v=prop(3), w=prop(4))],
    )
    assert kept.status_code == 207
    assert "v" in kept.json()["errors"][0]["error"]["detail"]
    assert http.get(f"/entities/{a}").json() == entity(a, v=prop(2), w=prop(4))


def test_batch_delete(http: httpx.Client) -> None:
    a, b, missing = ids(3)
    http.post("/entityOperations/create", json=[entity(a), entity(b)])
    assert http.post("/entityOperations/delete", json=[a]).status_code == 204
    mixed = http.post("/entityOperations/delete", json=[b, missing])
    assert mixed.status_code == 207
    assert mixed.json()["success"] == [b]
    assert mixed.json()["errors"][0]["entityId"] == missing


def test_batch_body_must_be_a_non_empty_array(http: httpx.Client) -> None:
    bodies: list[object] = [{"id": "urn:a:b"}, []]
    for body in bodies:
        response = http.post("/entityOperations/upsert", json=body)
        assert response.status_code == 400


def test_a_batch_item_without_an_id_is_named_by_null_and_its_position(
    http: httpx.Client,
) -> None:
    (a,) = ids(1)
    response = http.post(
        "/entityOperations/upsert",
        params={"options": "update"},
        json=[entity(a), {"type": "Batch"}, ["not", "an", "entity"]],
    )
    assert response.status_code == 207
    body = response.json()
    assert body["success"] == [a]
    errors = body["errors"]
    assert [e["entityId"] for e in errors] == ["urn:ngsi-ld:null", "urn:ngsi-ld:null"]
    assert "position 1" in errors[0]["error"]["detail"]
    assert "'id'" in errors[0]["error"]["detail"]
    assert "position 2" in errors[1]["error"]["detail"]
    deleted = http.post("/entityOperations/delete", json=[a, 7])
    assert deleted.status_code == 207
    assert deleted.json()["errors"][0]["entityId"] == "urn:ngsi-ld:null"
    assert "position 1" in deleted.json()["errors"][0]["error"]["detail"]


def test_a_reserved_or_bad_attribute_name_is_refused_in_a_batch_as_alone(
    http: httpx.Client,
) -> None:
    a, b, c = ids(3)
    bad_names = [
        {**entity(b), "@type": "Other"},
        {**entity(c), "bad name": prop(1)},
    ]
    for _ in range(2):  # the second time the good names are known already
        response = http.post(
            "/entityOperations/upsert",
            params={"options": "update"},
            json=[entity(a, temperature=prop(1)), *bad_names],
        )
        assert response.status_code == 207
        errors = {e["entityId"]: e["error"] for e in response.json()["errors"]}
        assert set(errors) == {b, c}
        assert "'@type'" in errors[b]["detail"]
        assert "'bad name'" in errors[c]["detail"]


def test_an_entity_twice_in_one_merging_batch(http: httpx.Client) -> None:
    (a,) = ids(1)
    http.post("/entityOperations/upsert", json=[entity(a, temperature=prop(1))])
    created = http.get(f"/entities/{a}", params={"options": "sysAttrs"}).json()
    response = http.post(
        "/entityOperations/upsert",
        params={"options": "update"},
        json=[
            entity(a, temperature=prop(2), humidity=prop(40)),
            entity(a, temperature=prop(3)),
        ],
    )
    assert response.status_code == 204
    found = http.get(f"/entities/{a}", params={"options": "sysAttrs"}).json()
    assert (found["temperature"]["value"], found["humidity"]["value"]) == (3, 40)
    # each instance keeps when its attribute was created
    assert found["temperature"]["createdAt"] == created["temperature"]["createdAt"]
    assert found["humidity"]["createdAt"] == found["humidity"]["modifiedAt"]
    assert found["createdAt"] == created["createdAt"]
