"""Entity resources over real HTTP: create, retrieve, replace, delete, attribute operations."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from ngsi import ERROR_TYPE_BASE


def new_id(kind: str = "Thing") -> str:
    return f"urn:ngsi-ld:{kind}:{uuid.uuid4().hex[:12]}"


def thing(entity_id: str, **attrs: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": entity_id, "type": "Thing"}
    entity.update(attrs)
    return entity


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **extra}


def create(http: httpx.Client, entity: dict[str, Any], **kwargs: Any) -> httpx.Response:
    response = http.post("/entities", json=entity, **kwargs)
    assert response.status_code == 201, response.text
    return response


def problem_type(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == response.status_code
    assert body.get("title")
    return str(body["type"]).removeprefix(ERROR_TYPE_BASE)


def test_create_answers_201_with_location_and_retrieve_gives_it_back(http: httpx.Client) -> None:
    entity_id = new_id()
    entity = thing(
        entity_id,
        temperature=prop(21.5, unitCode="CEL", observedAt="2025-01-31T12:00:00Z"),
        refDevice={"type": "Relationship", "object": "urn:ngsi-ld:Device:1"},
        location={"type": "GeoProperty", "value": {"type": "Point", "coordinates": [13.4, 52.5]}},
    )
    response = create(http, entity)
    assert response.headers["location"] == f"/ngsi-ld/v1/entities/{entity_id}"
    assert response.content == b""

    got = http.get(f"/entities/{entity_id}")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/json"
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in got.headers["link"]
    assert got.json() == entity


def test_duplicate_create_is_409_already_exists(http: httpx.Client) -> None:
    entity = thing(new_id())
    create(http, entity)
    again = http.post("/entities", json=entity)
    assert again.status_code == 409
    assert problem_type(again) == "AlreadyExists"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"id": "not a uri", "type": "Thing"}, "BadRequestData"),
        ({"type": "Thing"}, "BadRequestData"),
        ({"id": "urn:ngsi-ld:Thing:x"}, "BadRequestData"),
        (
            {"id": "urn:ngsi-ld:Thing:x", "type": "Thing", "t": {"type": "Property"}},
            "BadRequestData",
        ),
        (
            {
                "id": "urn:ngsi-ld:Thing:x",
                "type": "Thing",
                "r": {"type": "Relationship", "object": 3},
            },
            "BadRequestData",
        ),
        (
            {
                "id": "urn:ngsi-ld:Thing:x",
                "type": "Thing",
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [500, 1]},
                },
            },
            "BadRequestData",
        ),
        ({"id": "urn:ngsi-ld:Thing:x", "type": "Thing", "bad name": 1}, "BadRequestData"),
        ([], "InvalidRequest"),
    ],
)
def test_invalid_entities_are_400_with_the_right_type(
    http: httpx.Client, body: Any, error: str
) -> None:
    response = http.post("/entities", json=body)
    assert response.status_code == 400, response.text
    assert problem_type(response) == error


def test_bad_json_is_400_invalid_request(http: httpx.Client) -> None:
    response = http.post(
        "/entities", content=b'{"id": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert problem_type(response) == "InvalidRequest"


def test_unknown_entity_is_404_resource_not_found(http: httpx.Client) -> None:
    response = http.get(f"/entities/{new_id()}")
    assert response.status_code == 404
    assert problem_type(response) == "ResourceNotFound"
    assert http.delete(f"/entities/{new_id()}").status_code == 404


def test_concise_input_is_stored_normalized(http: httpx.Client) -> None:
    entity_id = new_id()
    create(http, {"id": entity_id, "type": "Thing", "speed": 3, "name": {"value": "x"}})
    assert http.get(f"/entities/{entity_id}").json() == thing(
        entity_id, speed=prop(3), name=prop("x")
    )


def test_representations_and_sys_attrs(http: httpx.Client) -> None:
    entity_id = new_id()
    create(http, thing(entity_id, speed=prop(3), level=prop(2, unitCode="MTR")))
    key_values = http.get(f"/entities/{entity_id}", params={"options": "keyValues"}).json()
    assert key_values == {"id": entity_id, "type": "Thing", "speed": 3, "level": 2}
    concise = http.get(f"/entities/{entity_id}", params={"format": "concise"}).json()
    assert concise == {
        "id": entity_id,
        "type": "Thing",
        "speed": 3,
        "level": {"value": 2, "unitCode": "MTR"},
    }
    with_sys = http.get(f"/entities/{entity_id}", params={"options": "sysAttrs"}).json()
    assert with_sys["createdAt"].endswith("Z")
    assert with_sys["speed"]["createdAt"] == with_sys["createdAt"]
    assert with_sys["speed"]["modifiedAt"] == with_sys["modifiedAt"]
    picked = http.get(f"/entities/{entity_id}", params={"attrs": "speed"}).json()
    assert picked == {"id": entity_id, "type": "Thing", "speed": prop(3)}
    missing = http.get(f"/entities/{entity_id}", params={"attrs": "nothing"})
    assert missing.status_code == 404


def test_ids_with_slashes_travel_percent_encoded(http: httpx.Client) -> None:
    entity_id = f"http://example.org/sensor/{uuid.uuid4().hex[:8]}/a%20b"
    response = create(http, {"id": entity_id, "type": "Thing"})
    location = response.headers["location"]
    assert http.get(location.removeprefix("/ngsi-ld/v1")).json()["id"] == entity_id
    encoded = quote(entity_id, safe="")
    assert http.get(f"/entities/{encoded}").json()["id"] == entity_id
    assert http.delete(f"/entities/{encoded}").status_code == 204
    assert http.get(f"/entities/{encoded}").status_code == 404


def test_replace_entity_keeps_created_at(http: httpx.Client) -> None:
    entity_id = new_id()
    create(http, thing(entity_id, a=prop(1), b=prop(2)))
    before = http.get(f"/entities/{entity_id}", params={"options": "sysAttrs"}).json()
    response = http.put(f"/entities/{entity_id}", json=thing(entity_id, c=prop(3)))
    assert response.status_code == 204, response.text
    after = http.get(f"/entities/{entity_id}", params={"options": "sysAttrs"}).json()
    assert set(after) - {"createdAt", "modifiedAt"} == {"id", "type", "c"}
    assert after["createdAt"] == before["createdAt"]
    assert http.put(f"/entities/{new_id()}", json={"type": "Thing"}).status_code == 404


def test_append_update_partial_update_and_delete_attributes(http: httpx.Client) -> None:
    entity_id = new_id()
    create(http, thing(entity_id, a=prop(1)))
    url = f"/entities/{entity_id}/attrs"

    assert http.post(url, json={"b": prop(2)}).status_code == 204
    kept = http.post(url, params={"options": "noOverwrite"}, json={"a": prop(9), "c": prop(3)})
    assert kept.status_code == 207
    assert kept.json()["updated"] == ["c"]
    assert kept.json()["notUpdated"][0]["attributeName"] == "a"

    updated = http.patch(url, json={"a": prop(10), "zzz": prop(0)})
    assert updated.status_code == 207
    assert updated.json()["notUpdated"][0]["attributeName"] == "zzz"

    partial = http.patch(f"{url}/b", json={"value": 20, "unitCode": "MTR"})
    assert partial.status_code == 204
    assert http.patch(f"{url}/nope", json={"value": 1}).status_code == 404

    assert http.delete(f"{url}/c").status_code == 204
    missing = http.delete(f"{url}/c")
    assert missing.status_code == 404
    assert problem_type(missing) == "ResourceNotFound"

    entity = http.get(f"/entities/{entity_id}").json()
    assert entity == thing(entity_id, a=prop(10), b=prop(20, unitCode="MTR"))


def test_multi_attributes_with_dataset_ids(http: httpx.Client) -> None:
    entity_id = new_id()
    create(
        http,
        thing(
            entity_id,
            temperature=[
                prop(20),
                prop(21, datasetId="urn:ngsi-ld:Dataset:raw"),
            ],
        ),
    )
    url = f"/entities/{entity_id}/attrs"
    assert (
        http.post(
            url, json={"temperature": prop(22, datasetId="urn:ngsi-ld:Dataset:b")}
        ).status_code
        == 204
    )
    assert (
        http.patch(
            f"{url}/temperature", json={"value": 25, "datasetId": "urn:ngsi-ld:Dataset:raw"}
        ).status_code
        == 204
    )
    assert (
        http.delete(f"{url}/temperature", params={"datasetId": "urn:ngsi-ld:Dataset:b"}).status_code
        == 204
    )
    assert (
        http.delete(
            f"{url}/temperature", params={"datasetId": "urn:ngsi-ld:Dataset:zz"}
        ).status_code
        == 404
    )
    temperature = http.get(f"/entities/{entity_id}").json()["temperature"]
    assert temperature == [prop(20), prop(25, datasetId="urn:ngsi-ld:Dataset:raw")]
    key_values = http.get(f"/entities/{entity_id}", params={"options": "keyValues"}).json()
    assert key_values["temperature"] == [20, 25]
    assert http.delete(f"{url}/temperature", params={"deleteAll": "true"}).status_code == 204
    assert "temperature" not in http.get(f"/entities/{entity_id}").json()


def test_language_property_with_lang(http: httpx.Client) -> None:
    entity_id = new_id()
    create(
        http,
        thing(
            entity_id,
            street={
                "type": "LanguageProperty",
                "languageMap": {"de": "Hauptstraße", "en": "Main Street"},
            },
        ),
    )
    got = http.get(f"/entities/{entity_id}", params={"lang": "fr,en;q=0.8"}).json()
    assert got["street"] == {"type": "Property", "value": "Main Street", "lang": "en"}


def test_version_answers_without_tenant(broker_url: str) -> None:
    for path in ("/version", "/ngsi-ld/ex/v1/version"):
        response = httpx.get(broker_url + path)
        assert response.status_code == 200
        assert response.json()["broker"] == "drehscheibe-ngsi-ld"


def test_merge_entity_and_ngsi_ld_null(http: httpx.Client) -> None:
    entity_id = new_id()
    create(http, thing(entity_id, a=prop(1, unitCode="MTR"), b=prop(2), c=prop(3)))
    merged = http.patch(
        f"/entities/{entity_id}",
        json={"a": {"type": "Property", "value": 10}, "b": prop("urn:ngsi-ld:null"), "d": prop(4)},
    )
    assert merged.status_code == 204, merged.text
    assert http.get(f"/entities/{entity_id}").json() == thing(
        entity_id, a=prop(10, unitCode="MTR"), c=prop(3), d=prop(4)
    )
    assert http.patch(f"/entities/{new_id()}", json={"a": prop(1)}).status_code == 404
    deleted = http.patch(f"/entities/{entity_id}/attrs/c", json={"value": "urn:ngsi-ld:null"})
    assert deleted.status_code == 204
    assert "c" not in http.get(f"/entities/{entity_id}").json()


def test_replace_attribute_and_sub_attribute_partial_update(http: httpx.Client) -> None:
    entity_id = new_id()
    create(
        http,
        thing(
            entity_id,
            a=prop(1, unitCode="MTR", source=prop("gps")),
            r={"type": "Relationship", "object": "urn:ngsi-ld:T:1"},
        ),
    )
    url = f"/entities/{entity_id}/attrs"
    assert http.put(f"{url}/a", json=prop(5)).status_code == 204
    assert http.put(f"{url}/zzz", json=prop(5)).status_code == 404
    assert http.patch(f"{url}/r", json={"by": prop("me")}).status_code == 204
    assert http.get(f"/entities/{entity_id}").json() == thing(
        entity_id,
        a=prop(5),
        r={"type": "Relationship", "object": "urn:ngsi-ld:T:1", "by": prop("me")},
    )


def test_scope_append_update_and_delete(http: httpx.Client) -> None:
    entity_id = new_id()
    create(http, {"id": entity_id, "type": "Thing", "scope": "/Berlin"})
    url = f"/entities/{entity_id}/attrs"
    assert (
        http.post(url, params={"options": "noOverwrite"}, json={"scope": "/Hamburg"}).status_code
        == 204
    )
    assert http.get(f"/entities/{entity_id}").json()["scope"] == ["/Berlin", "/Hamburg"]
    assert http.patch(url, json={"scope": "/Munich"}).status_code == 204
    assert http.get(f"/entities/{entity_id}").json()["scope"] == "/Munich"
    assert http.delete(f"{url}/scope").status_code == 204
    assert "scope" not in http.get(f"/entities/{entity_id}").json()


def test_missing_entity_id_in_path_is_400(http: httpx.Client) -> None:
    assert http.post("/entities//attrs", json={"a": prop(1)}).status_code == 400
    assert http.put("/entities", json={"type": "Thing"}).status_code == 400
