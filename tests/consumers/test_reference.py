"""The three reference consumers over real HTTP: traffic state, environment alerts with
hysteresis, the planning archive."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agents.consumers import (
    AlertRule,
    Consumer,
    EntityChange,
    environment_consumer,
    planning_consumer,
    traffic_consumer,
)
from tests.subscriptions._support import air_quality, traffic_flow, wait_until


def notify(url: str, *entities: dict[str, Any]) -> None:
    body = {
        "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
        "type": "Notification",
        "subscriptionId": "urn:ngsi-ld:Subscription:s",
        "notifiedAt": "2024-05-01T12:00:00Z",
        "data": list(entities),
    }
    response = httpx.post(
        url, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text


def at(minute: int) -> str:
    return f"2024-05-01T12:{minute:02d}:00Z"


def test_traffic_state_per_road_segment_and_parking_site(tmp_path: Path) -> None:
    consumer, state = traffic_consumer(
        state_path=tmp_path / "state.json", geojson_path=tmp_path / "t.geojson"
    )
    site = "urn:ngsi-ld:OffStreetParking:garage"
    with consumer.serve() as running:
        notify(
            running.url,
            traffic_flow(1, intensity=10, at=at(1), segment=7),
            traffic_flow(2, intensity=30, at=at(1), segment=7),
            traffic_flow(3, intensity=5, at=at(1), segment=8),
        )
        notify(running.url, traffic_flow(1, intensity=20, at=at(2), segment=7))
        notify(running.url, traffic_flow(1, intensity=99, at=at(0), segment=7))  # late: ignored
        notify(
            running.url,
            {
                "id": site,
                "type": "OffStreetParking",
                "availableSpotNumber": {"type": "Property", "value": 12, "observedAt": at(3)},
                "totalSpotNumber": {"type": "Property", "value": 200},
            },
            *[
                {
                    "id": f"urn:ngsi-ld:ParkingSpot:{n}",
                    "type": "ParkingSpot",
                    "status": {
                        "type": "Property",
                        "value": "free" if n < 2 else "occupied",
                        "observedAt": at(3),
                    },
                    "refParkingSite": {"type": "Relationship", "object": site},
                }
                for n in range(5)
            ],
        )
        consumer.drain()
        served = httpx.get(running.base_url + "/state").json()
        one = httpx.get(running.base_url + "/state/road-segments/urn:ngsi-ld:RoadSegment:7").json()
        missing = httpx.get(running.base_url + "/state/parking-sites/urn:ngsi-ld:X:1")
    segments = {s["id"]: s for s in served["roadSegments"]}
    assert one == segments["urn:ngsi-ld:RoadSegment:7"]
    assert one["intensity"] == 50
    assert one["averageVehicleSpeed"] == 40.0
    assert [lane["entityId"][-6:] for lane in one["lanes"]] == ["lane-1", "lane-2"]
    assert segments["urn:ngsi-ld:RoadSegment:8"]["intensity"] == 5
    (garage,) = served["parkingSites"]
    assert garage["availableSpotNumber"] == 12
    assert garage["totalSpotNumber"] == 200
    assert garage["spots"] == {"free": 2, "occupied": 3}
    assert missing.status_code == 404
    # the state survives a restart, and the GIS file holds one feature per entity
    again, restored = traffic_consumer(state_path=tmp_path / "state.json")
    again.start()
    try:
        assert restored.snapshot() == state.snapshot()
    finally:
        again.stop()
    features = orjson.loads((tmp_path / "t.geojson").read_bytes())["features"]
    assert len(features) == 9


def test_environment_alerts_with_hysteresis_logged_and_forwarded(tmp_path: Path) -> None:
    forwarded: list[dict[str, Any]] = []
    hook = Consumer("hook")  # only its HTTP app is used, as the forward target
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def alerts_in(request: Request) -> JSONResponse:
        forwarded.extend((await request.json())["alerts"])
        return JSONResponse({})

    hook.routes.append(Route("/alerts-in", alerts_in, methods=["POST"]))
    rules = [AlertRule(type="AirQualityObserved", attribute="no2", above=200, hysteresis=20)]
    with hook.serve() as target:
        consumer, _alerts = environment_consumer(
            rules=rules, out_dir=tmp_path / "env", forward_url=target.base_url + "/alerts-in"
        )
        with consumer.serve() as running:
            for minute, value in enumerate([150, 210, 195, 205, 185, 179, 190, 230]):
                notify(running.url, air_quality(1, no2=value, at=at(minute)))
            consumer.drain()
            active = httpx.get(running.base_url + "/alerts").json()
    events = [
        (e["event"], e["value"])
        for e in orjson.loads(
            b"[" + b",".join((tmp_path / "env" / "alerts.jsonl").read_bytes().splitlines()) + b"]"
        )
    ]
    assert events == [("raised", 210.0), ("cleared", 179.0), ("raised", 230.0)]
    assert [(e["event"], e["value"]) for e in forwarded] == events
    assert [(a["attribute"], a["value"]) for a in active] == [("no2", 230.0)]
    assert len((tmp_path / "env" / "changes.jsonl").read_bytes().splitlines()) == 8
    # the active alert survives a restart: the same value does not raise it again
    consumer2, alerts2 = environment_consumer(rules=rules, out_dir=tmp_path / "env")
    with consumer2.serve() as running:
        notify(running.url, air_quality(1, no2=240, at=at(20)))
        consumer2.drain()
    assert alerts2.recent() == []
    assert len(alerts2.active()) == 1


def test_environment_threshold_from_another_attribute(tmp_path: Path) -> None:
    consumer, alerts = environment_consumer()
    gauge = {
        "id": "urn:ngsi-ld:FloodMonitoring:river",
        "type": "FloodMonitoring",
        "currentLevel": {"type": "Property", "value": 3.2, "observedAt": at(1)},
        "alertLevel": {"type": "Property", "value": 3.0},
    }
    with consumer.serve() as running:
        notify(running.url, gauge)
        consumer.drain()
    (event,) = alerts.recent()
    assert (event["attribute"], event["threshold"]) == ("currentLevel", 3.0)


def test_forwarding_failures_keep_alerts_pending(tmp_path: Path) -> None:
    from tests.conftest import free_port

    consumer, alerts = environment_consumer(
        out_dir=tmp_path / "env", forward_url=f"http://127.0.0.1:{free_port()}/down"
    )
    with consumer.serve() as running:
        notify(running.url, air_quality(1, no2=500, at=at(1)))
        consumer.drain()
        assert alerts.flush_pending() == 1
    state = orjson.loads((tmp_path / "env" / "alerts-state.json").read_bytes())
    assert len(state["pending"]) == 1


def test_planning_archive_by_time_and_area(tmp_path: Path) -> None:
    consumer, archive = planning_consumer(archive_path=tmp_path / "archive.db")
    near = traffic_flow(1, intensity=1, at=at(1), segment=1)
    far = air_quality(50, no2=1, at=at(2))  # at longitude 13.80
    with consumer.serve() as running:
        notify(running.url, near, far)
        notify(running.url, traffic_flow(1, intensity=2, at=at(3), segment=1))
        notify(
            running.url,
            {
                "id": "urn:ngsi-ld:Thing:x",
                "type": "Thing",
                "dateObserved": {"type": "Property", "value": at(4)},
            },
        )
        consumer.drain()
        by_http = httpx.get(
            running.base_url + "/changes",
            params={"from": at(0), "to": at(3), "bbox": "13.3,52.4,13.5,52.6"},
        ).json()
        bad = httpx.get(running.base_url + "/changes", params={"bbox": "1,2"})
    assert archive.count() == 4
    assert [c["entityId"] for c in by_http] == [near["id"]]
    assert [c["observedAt"] for c in archive.query(entity_id=near["id"])] == [
        "2024-05-01T12:01:00.000000Z",
        "2024-05-01T12:03:00.000000Z",
    ]
    assert len(archive.query(since=at(2))) == 3
    assert [c["entityType"] for c in archive.query(types=["AirQualityObserved"])] == [
        "AirQualityObserved"
    ]
    assert bad.status_code == 400
    with contextlib.closing(sqlite3.connect(tmp_path / "archive.db")) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM changes")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE changes SET entity_id = 'x'")


def test_a_polygon_location_is_found_by_intersection(tmp_path: Path) -> None:
    consumer, archive = planning_consumer(archive_path=tmp_path / "archive.db")
    area = {
        "id": "urn:ngsi-ld:OffStreetParking:lot",
        "type": "OffStreetParking",
        "availableSpotNumber": {"type": "Property", "value": 3, "observedAt": at(1)},
        "location": {
            "type": "GeoProperty",
            "value": {
                "type": "Polygon",
                "coordinates": [
                    [[13.0, 52.0], [13.2, 52.0], [13.2, 52.2], [13.0, 52.2], [13.0, 52.0]]
                ],
            },
        },
    }
    with consumer.serve() as running:
        notify(running.url, area)
        consumer.drain()
    assert len(archive.query(bbox=[13.1, 52.1, 13.3, 52.3])) == 1
    assert archive.query(bbox=[13.25, 52.25, 13.3, 52.3]) == []


def test_handlers_get_entity_changes(tmp_path: Path) -> None:
    seen: list[EntityChange] = []
    consumer, _ = planning_consumer(archive_path=tmp_path / "a.db")
    consumer.on_change(seen.append)
    with consumer.serve() as running:
        notify(running.url, traffic_flow(1, intensity=3, at=at(1)))
        assert wait_until(lambda: len(seen) == 1)
