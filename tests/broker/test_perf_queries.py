"""Queries answered from the type index alone (paging, counting) give what a scan would: each
entity once, in insertion order, also when it has several of the types asked for."""

from __future__ import annotations

from typing import Any

import httpx

from tests.broker.test_entities import prop
from tests.broker.test_query import found, tenant_http  # noqa: F401 (the fixture)


def seed_many(http: httpx.Client) -> list[str]:
    """30 entities: Bus, Tram, both (every third), inserted in that order; their ids."""
    kinds: list[str | list[str]] = ["Bus", "Tram", ["Tram", "Bus"]]
    entities: list[dict[str, Any]] = [
        {"id": f"urn:ngsi-ld:Vehicle:{n}", "type": kinds[n % 3], "speed": prop(n)}
        for n in range(30)
    ]
    response = http.post("/entityOperations/create", json=entities)
    assert response.status_code == 201, response.text
    return [str(e["id"]) for e in entities]


def test_pages_over_several_types_list_each_entity_once(tenant_http: httpx.Client) -> None:  # noqa: F811
    ids = seed_many(tenant_http)
    pages: list[str] = []
    for offset in range(0, 40, 7):
        page = tenant_http.get(
            "/entities", params={"type": "Bus,Tram", "limit": 7, "offset": offset, "count": "true"}
        )
        assert page.headers["NGSILD-Results-Count"] == "30"
        pages.extend(found(page))
    assert pages == ids
    buses = tenant_http.get(
        "/entities", params={"type": "Bus", "limit": 100, "offset": 5, "count": "true"}
    )
    assert found(buses) == [i for n, i in enumerate(ids) if n % 3 != 1][5:]
    assert buses.headers["NGSILD-Results-Count"] == "20"
    both = tenant_http.get("/entities", params={"type": "Bus;Tram", "limit": 3, "count": "true"})
    assert found(both) == [ids[2], ids[5], ids[8]]
    assert both.headers["NGSILD-Results-Count"] == "10"
    counted = tenant_http.get("/entities", params={"type": "Tram", "limit": 0, "count": "true"})
    assert counted.headers["NGSILD-Results-Count"] == "20"
    nothing = tenant_http.get("/entities", params={"type": "Boat", "count": "true"})
    assert found(nothing) == []
    assert nothing.headers["NGSILD-Results-Count"] == "0"
    beyond = tenant_http.get("/entities", params={"type": "Bus", "offset": 1000})
    assert found(beyond) == []


def test_types_and_attributes_come_from_the_documents(tenant_http: httpx.Client) -> None:  # noqa: F811
    seed_many(tenant_http)
    bare = {"id": "urn:ngsi-ld:Boat:1", "type": "Boat"}
    assert tenant_http.post("/entities", json=bare).status_code == 201
    details = tenant_http.get("/types", params={"details": "true"}).json()
    by_name = {d["typeName"]: d["attributeNames"] for d in details}
    assert by_name == {"Boat": [], "Bus": ["speed"], "Tram": ["speed"]}
    boat = tenant_http.get("/types/Boat").json()
    assert boat["entityCount"] == 1
    assert boat["attributeDetails"] == []
    speed = tenant_http.get("/attributes/speed").json()
    assert speed["attributeCount"] == 30
    assert speed["typeNames"] == ["Bus", "Tram"]
