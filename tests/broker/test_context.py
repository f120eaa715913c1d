"""@context handling: preloaded Smart Data Models contexts, Link header, inline @context,
Accept negotiation, unavailable contexts, hosted contexts (`/jsonldContexts`)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from ngsi._context_http import format_link_header
from ngsi._core_context import CORE_CONTEXT_URL
from tests.broker.conftest import sdm_url, start_broker
from tests.broker.test_entities import prop

ENVIRONMENT = sdm_url("Environment")
WEATHER = sdm_url("Weather")
SDM = "https://smartdatamodels.org/"


def air_quality(entity_id: str) -> dict[str, Any]:
    return {
        "id": entity_id,
        "type": "AirQualityObserved",
        "temperature": prop(12.5, unitCode="CEL"),
        "NO2": prop(22),
        "dateObserved": prop("2025-01-31T12:00:00Z"),
    }


def link(url: str) -> dict[str, str]:
    return {"Link": format_link_header(url)}


def test_environment_terms_are_stored_expanded_and_read_back_compacted(
    http: httpx.Client,
) -> None:
    entity_id = f"urn:ngsi-ld:AirQualityObserved:{uuid.uuid4().hex[:8]}"
    response = http.post("/entities", json=air_quality(entity_id), headers=link(ENVIRONMENT))
    assert response.status_code == 201, response.text

    expanded = http.get(f"/entities/{entity_id}").json()
    assert expanded["type"] == f"{SDM}dataModel.Environment/AirQualityObserved"
    assert expanded[f"{SDM}dataModel.Environment/temperature"] == prop(12.5, unitCode="CEL")
    assert f"{SDM}dateObserved" in expanded

    compacted = http.get(f"/entities/{entity_id}", headers=link(ENVIRONMENT))
    assert compacted.json() == air_quality(entity_id)
    assert compacted.headers["link"] == format_link_header(ENVIRONMENT)

    # The same term means another IRI in another subject: nothing matches there.
    weather = http.get(f"/entities/{entity_id}", headers=link(WEATHER)).json()
    assert "temperature" not in weather
    assert f"{SDM}dataModel.Environment/temperature" in weather

    queried = http.get(
        "/entities",
        params={"type": "AirQualityObserved", "q": "temperature>12", "id": entity_id},
        headers=link(ENVIRONMENT),
    )
    assert [e["id"] for e in queried.json()] == [entity_id]


def test_inline_context_with_ld_json_and_ld_json_responses(http: httpx.Client) -> None:
    entity_id = f"urn:ngsi-ld:Thing:{uuid.uuid4().hex[:8]}"
    body = {
        "id": entity_id,
        "type": "Thing",
        "speed": prop(3),
        "@context": [{"speed": "https://example.org/vocab#speed"}, CORE_CONTEXT_URL],
    }
    response = http.post("/entities", json=body, headers={"Content-Type": "application/ld+json"})
    assert response.status_code == 201, response.text
    plain = http.get(f"/entities/{entity_id}").json()
    assert "https://example.org/vocab#speed" in plain

    ld = http.get(f"/entities/{entity_id}", headers={"Accept": "application/ld+json"})
    assert ld.headers["content-type"] == "application/ld+json"
    assert ld.json()["@context"] == CORE_CONTEXT_URL
    assert "link" not in ld.headers


@pytest.mark.parametrize(
    ("headers", "content", "status"),
    [
        ({"Content-Type": "text/plain"}, b"{}", 415),
        ({"Content-Type": "application/xml"}, b"<x/>", 415),
        ({}, b'{"id": "urn:a:b", "type": "T"}', 415),
        (
            {"Content-Type": "application/ld+json"},
            b'{"id": "urn:a:b", "type": "T"}',
            400,
        ),
        (
            {"Content-Type": "application/json"},
            b'{"id": "urn:a:b", "type": "T", "@context": "https://example.org/c.jsonld"}',
            400,
        ),
    ],
)
def test_content_type_rules(
    http: httpx.Client, headers: dict[str, str], content: bytes, status: int
) -> None:
    response = http.post("/entities", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["status"] == status


def test_unacceptable_accept_is_406(http: httpx.Client) -> None:
    response = http.get("/entities", params={"type": "T"}, headers={"Accept": "application/xml"})
    assert response.status_code == 406
    assert response.json()["status"] == 406
    ok = http.get("/entities", params={"type": "T"}, headers={"Accept": "text/html, */*;q=0.1"})
    assert ok.status_code == 200
    geo = http.get("/types", headers={"Accept": "application/geo+json"})
    assert geo.status_code == 406


def test_unknown_remote_context_is_503_fast(http: httpx.Client) -> None:
    started = time.monotonic()
    response = http.get(
        "/entities",
        params={"type": "T"},
        headers=link("http://127.0.0.1:9/not-there/context.jsonld"),
    )
    assert response.status_code == 503
    assert response.json()["type"].endswith("/LdContextNotAvailable")
    assert time.monotonic() - started < 5


def test_hosted_contexts_are_served_used_and_kept(tmp_path: Path) -> None:
    document = {"@context": {"level": "https://example.org/vocab#level"}}
    with start_broker(tmp_path / "data") as running:
        api = running.api
        created = httpx.post(f"{api}/jsonldContexts", json=document)
        assert created.status_code == 201
        location = created.headers["location"]
        url = running.url + location
        assert httpx.get(running.url + location).json() == document
        assert httpx.get(f"{api}/jsonldContexts").json() == [url]
        entity = {"id": "urn:ngsi-ld:T:1", "type": "T", "level": prop(1)}
        assert httpx.post(f"{api}/entities", json=entity, headers=link(url)).status_code == 201
        assert (
            "https://example.org/vocab#level" in httpx.get(f"{api}/entities/urn:ngsi-ld:T:1").json()
        )
        port = running.port
    with start_broker(tmp_path / "data", port=port) as running:
        got = httpx.get(f"{running.api}/entities/urn:ngsi-ld:T:1", headers=link(url)).json()
        assert got["level"] == prop(1)
        assert httpx.delete(running.url + location).status_code == 204
        assert httpx.get(running.url + location).status_code == 404
        assert httpx.get(f"{running.api}/jsonldContexts").json() == []


def test_preloaded_context_folder(tmp_path: Path) -> None:
    folder = tmp_path / "contexts"
    folder.mkdir()
    (folder / "mine.jsonld").write_text('{"@context": {"depth": "https://example.org/v#depth"}}')
    (folder / "contexts.json").write_text('{"https://example.org/mine.jsonld": "mine.jsonld"}')
    with start_broker(tmp_path / "data", contexts_dir=folder) as running:
        entity = {"id": "urn:ngsi-ld:T:2", "type": "T", "depth": prop(2)}
        headers = link("https://example.org/mine.jsonld")
        assert (
            httpx.post(f"{running.api}/entities", json=entity, headers=headers).status_code == 201
        )
        stored = httpx.get(f"{running.api}/entities/urn:ngsi-ld:T:2").json()
        assert "https://example.org/v#depth" in stored
