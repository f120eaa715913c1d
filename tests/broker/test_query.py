"""Entity queries: type, id, idPattern, attrs, q, geoQ, scopeQ, paging, count, types, attributes.

Each test works in its own tenant, so that results are exact.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.broker.conftest import RunningBroker
from tests.broker.test_entities import prop


@pytest.fixture
def tenant_http(broker: RunningBroker) -> Iterator[httpx.Client]:
    tenant = "q" + uuid.uuid4().hex[:10]
    with httpx.Client(base_url=broker.api, headers={"NGSILD-Tenant": tenant}, timeout=10) as client:
        yield client


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def seed(http: httpx.Client) -> None:
    entities = [
        {
            "id": "urn:ngsi-ld:Sensor:1",
            "type": "Sensor",
            "temperature": prop(18.0),
            "status": prop("ok"),
            "location": point(13.4050, 52.5200),
            "scope": "/Berlin/Mitte",
        },
        {
            "id": "urn:ngsi-ld:Sensor:2",
            "type": "Sensor",
            "temperature": prop(25.5),
            "status": prop("ok"),
            "location": point(13.4060, 52.5205),
            "scope": "/Berlin/Pankow",
        },
        {
            "id": "urn:ngsi-ld:Sensor:3",
            "type": "Sensor",
            "temperature": prop(31.0),
            "status": prop("broken"),
            "location": point(11.5820, 48.1351),
            "scope": "/Munich",
        },
        {
            "id": "urn:ngsi-ld:Station:1",
            "type": ["Station", "Sensor"],
            "humidity": prop(40),
            "location": point(13.40, 52.52),
        },
        {"id": "urn:ngsi-ld:Parking:1", "type": "Parking", "free": prop(3)},
    ]
    response = http.post("/entityOperations/create", json=entities)
    assert response.status_code == 201, response.text


def found(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()]


def test_query_by_type_id_and_pattern_in_insertion_order(tenant_http: httpx.Client) -> None:
    seed(tenant_http)
    get = tenant_http.get
    assert found(get("/entities", params={"type": "Sensor"})) == [
        "urn:ngsi-ld:Sensor:1",
        "urn:ngsi-ld:Sensor:2",
        "urn:ngsi-ld:Sensor:3",
        "urn:ngsi-ld:Station:1",
    ]
    assert found(get("/entities", params={"type": "Station,Parking"})) == [
        "urn:ngsi-ld:Station:1",
        "urn:ngsi-ld:Parking:1",
    ]
    assert found(get("/entities", params={"type": "Station;Sensor"})) == ["urn:ngsi-ld:Station:1"]
    assert found(
        get(
            "/entities",
            params={"type": "Sensor", "id": "urn:ngsi-ld:Sensor:3,urn:ngsi-ld:Sensor:1"},
        )
    ) == ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:3"]
    assert found(get("/entities", params={"type": "Sensor", "idPattern": "Sensor:[23]$"})) == [
        "urn:ngsi-ld:Sensor:2",
        "urn:ngsi-ld:Sensor:3",
    ]
    assert found(get("/entities", params={"attrs": "humidity,free"})) == [
        "urn:ngsi-ld:Station:1",
        "urn:ngsi-ld:Parking:1",
    ]


def test_q_filters(tenant_http: httpx.Client) -> None:
    seed(tenant_http)

    def q(expr: str) -> list[str]:
        return found(tenant_http.get("/entities", params={"type": "Sensor", "q": expr}))

    assert q("temperature>20") == ["urn:ngsi-ld:Sensor:2", "urn:ngsi-ld:Sensor:3"]
    assert q('status=="ok";temperature<20') == ["urn:ngsi-ld:Sensor:1"]
    assert q("temperature==18.0..26") == ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2"]
    assert q("humidity") == ["urn:ngsi-ld:Station:1"]
    bad = tenant_http.get("/entities", params={"type": "Sensor", "q": "temperature>>"})
    assert bad.status_code == 400


def test_geo_queries(tenant_http: httpx.Client) -> None:
    seed(tenant_http)

    def geo(**params: str) -> list[str]:
        return found(tenant_http.get("/entities", params={"type": "Sensor", **params}))

    # Sensor:2 is about 87 m from the point, Station:1 about 340 m, Sensor:3 in Munich.
    near = geo(georel="near;maxDistance==100", geometry="Point", coordinates="[13.405,52.52]")
    assert near == ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2"]
    wider = geo(georel="near;maxDistance==400", geometry="Point", coordinates="[13.405,52.52]")
    assert wider == ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2", "urn:ngsi-ld:Station:1"]
    far = geo(georel="near;minDistance==1000", geometry="Point", coordinates="[13.405,52.52]")
    assert far == ["urn:ngsi-ld:Sensor:3"]
    berlin = "[[[13.0,52.3],[13.8,52.3],[13.8,52.7],[13.0,52.7],[13.0,52.3]]]"
    assert geo(georel="within", geometry="Polygon", coordinates=berlin) == [
        "urn:ngsi-ld:Sensor:1",
        "urn:ngsi-ld:Sensor:2",
        "urn:ngsi-ld:Station:1",
    ]
    assert geo(georel="disjoint", geometry="Polygon", coordinates=berlin) == [
        "urn:ngsi-ld:Sensor:3"
    ]
    bad = tenant_http.get(
        "/entities",
        params={"type": "Sensor", "georel": "near", "geometry": "Point", "coordinates": "[13,52]"},
    )
    assert bad.status_code == 400


def test_scope_query(tenant_http: httpx.Client) -> None:
    seed(tenant_http)
    params = {"type": "Sensor", "scopeQ": "/Berlin/#"}
    assert found(tenant_http.get("/entities", params=params)) == [
        "urn:ngsi-ld:Sensor:1",
        "urn:ngsi-ld:Sensor:2",
    ]


def test_paging_and_count(tenant_http: httpx.Client) -> None:
    seed(tenant_http)
    page = tenant_http.get(
        "/entities", params={"type": "Sensor", "limit": 2, "offset": 1, "count": "true"}
    )
    assert found(page) == ["urn:ngsi-ld:Sensor:2", "urn:ngsi-ld:Sensor:3"]
    assert page.headers["NGSILD-Results-Count"] == "4"
    filtered = tenant_http.get(
        "/entities", params={"type": "Sensor", "q": "temperature>0", "limit": 1, "count": "true"}
    )
    assert found(filtered) == ["urn:ngsi-ld:Sensor:1"]
    assert filtered.headers["NGSILD-Results-Count"] == "3"
    only_count = tenant_http.get(
        "/entities", params={"type": "Sensor", "limit": 0, "count": "true"}
    )
    assert only_count.json() == []
    assert only_count.headers["NGSILD-Results-Count"] == "4"


@pytest.mark.parametrize(
    "params",
    [
        {"type": "Sensor", "limit": "1001"},
        {"type": "Sensor", "limit": "0"},
        {"type": "Sensor", "limit": "x"},
        {"type": "Sensor", "offset": "-1"},
        {},
        {"id": "urn:ngsi-ld:Sensor:1"},
        {"type": "Sensor", "idPattern": "("},
        {"type": "Sensor", "options": "wrong"},
        {"attrs": "id"},
    ],
)
def test_bad_queries_are_400(tenant_http: httpx.Client, params: dict[str, str]) -> None:
    seed(tenant_http)
    response = tenant_http.get("/entities", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["type"].endswith("/BadRequestData")


def test_post_query(tenant_http: httpx.Client) -> None:
    seed(tenant_http)
    response = tenant_http.post(
        "/entityOperations/query",
        json={
            "type": "Query",
            "entities": [{"type": "Sensor"}],
            "q": "temperature>20",
            "attrs": ["temperature"],
        },
    )
    assert found(response) == ["urn:ngsi-ld:Sensor:2", "urn:ngsi-ld:Sensor:3"]
    assert set(response.json()[0]) == {"id", "type", "scope", "temperature"}


def test_geojson_feature_collection(tenant_http: httpx.Client) -> None:
    seed(tenant_http)
    response = tenant_http.get(
        "/entities",
        params={"type": "Parking,Station", "options": "keyValues"},
        headers={"Accept": "application/geo+json"},
    )
    assert response.headers["content-type"] == "application/geo+json"
    body = response.json()
    assert body["type"] == "FeatureCollection"
    station, parking = body["features"]
    assert station["geometry"] == {"type": "Point", "coordinates": [13.4, 52.52]}
    assert parking["geometry"] is None
    assert parking["properties"] == {"type": "Parking", "free": 3}


def test_types_and_attributes(tenant_http: httpx.Client) -> None:
    seed(tenant_http)
    types = tenant_http.get("/types").json()
    assert types["type"] == "EntityTypeList"
    assert types["typeList"] == ["Parking", "Sensor", "Station"]
    sensor = tenant_http.get("/types/Sensor").json()
    assert sensor["entityCount"] == 4
    names = {d["attributeName"] for d in sensor["attributeDetails"]}
    assert names == {"temperature", "status", "location", "humidity"}
    assert tenant_http.get("/types/Nothing").status_code == 404
    attributes = tenant_http.get("/attributes").json()
    assert attributes["attributeList"] == ["free", "humidity", "location", "status", "temperature"]
    temperature = tenant_http.get("/attributes/temperature").json()
    assert temperature["attributeCount"] == 3
    assert temperature["typeNames"] == ["Sensor"]
    assert temperature["attributeTypes"] == ["Property"]
    details = tenant_http.get("/attributes", params={"details": "true"}).json()
    assert {d["attributeName"] for d in details} == set(attributes["attributeList"])
