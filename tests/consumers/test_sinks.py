"""`EntityChange` over the three representations, and the sinks: JSON Lines, CSV, GeoJSON,
SQLite and forwarding to another webhook."""

from __future__ import annotations

import contextlib
import csv
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.consumers import (
    Consumer,
    CsvSink,
    EntityChange,
    GeoJsonSink,
    JsonLinesSink,
    SinkError,
    SqliteSink,
    WebhookSink,
)
from tests.conftest import free_port
from tests.subscriptions._support import air_quality, now_text, wait_until

NORMALIZED = air_quality(7, no2=41.5, at="2024-05-01T12:00:00Z")
CONCISE = {
    "id": NORMALIZED["id"],
    "type": "AirQualityObserved",
    "no2": {"value": 41.5, "unitCode": "GQ", "observedAt": "2024-05-01T12:00:00Z"},
    "dateObserved": "2024-05-01T12:00:00Z",
    "location": {"type": "Point", "coordinates": [13.37, 52.5]},
}
KEY_VALUES = {
    "id": NORMALIZED["id"],
    "type": "AirQualityObserved",
    "no2": 41.5,
    "dateObserved": "2024-05-01T12:00:00Z",
    "location": {"type": "Point", "coordinates": [13.37, 52.5]},
}


def change(entity: dict[str, Any], *, nid: str = "urn:ngsi-ld:Notification:1") -> EntityChange:
    moment = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
    return EntityChange(
        subscription_id="urn:ngsi-ld:Subscription:s",
        notification_id=nid,
        notified_at=moment,
        received_at=moment,
        tenant=None,
        entity=entity,
    )


@pytest.mark.parametrize(
    "entity", [NORMALIZED, CONCISE, KEY_VALUES], ids=["normalized", "concise", "keyValues"]
)
def test_a_change_reads_every_representation(entity: dict[str, Any]) -> None:
    c = change(entity)
    assert c.value("no2") == 41.5
    assert c.location == {"type": "Point", "coordinates": [13.37, 52.5]}
    assert c.observed_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert c.fingerprint is not None


def test_previous_values_of_show_changes() -> None:
    entity = {
        "id": "urn:ngsi-ld:ParkingSpot:1",
        "type": "ParkingSpot",
        "status": {"type": "Property", "value": "occupied", "previousValue": "free"},
        "modifiedAt": "2024-05-01T12:00:00Z",
    }
    c = change(entity)
    assert (c.value("status"), c.previous("status")) == ("occupied", "free")
    assert c.has_time


def test_the_fingerprint_ignores_the_notification_but_not_the_content() -> None:
    a = change(NORMALIZED, nid="urn:ngsi-ld:Notification:1")
    b = change(NORMALIZED, nid="urn:ngsi-ld:Notification:2")
    other = change(air_quality(7, no2=41.5, at="2024-05-01T12:00:01Z"))
    assert a.fingerprint == b.fingerprint != other.fingerprint
    assert change({"id": "urn:x", "type": "T", "v": 1}).fingerprint is None


def test_json_lines(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "x.jsonl")
    sink.open()
    sink.write([change(NORMALIZED), change(KEY_VALUES)])
    sink.close()
    lines = [orjson.loads(line) for line in (tmp_path / "x.jsonl").read_bytes().splitlines()]
    assert [line["entityId"] for line in lines] == [NORMALIZED["id"]] * 2
    assert lines[0]["observedAt"] == "2024-05-01T12:00:00.000000Z"


def test_csv_with_and_without_attribute_columns(tmp_path: Path) -> None:
    plain = CsvSink(tmp_path / "plain.csv")
    chosen = CsvSink(tmp_path / "chosen.csv", attributes=["no2", "dateObserved"])
    for sink in (plain, chosen):
        sink.open()
        sink.write([change(NORMALIZED)])
        sink.close()
        sink.open()  # reopening appends without a second header
        sink.write([change(CONCISE)])
        sink.close()
    rows = list(csv.DictReader((tmp_path / "chosen.csv").read_text().splitlines()))
    assert len(rows) == 2
    assert rows[0]["no2"] == "41.5"
    assert (rows[0]["longitude"], rows[0]["latitude"]) == ("13.37", "52.5")
    plain_rows = list(csv.DictReader((tmp_path / "plain.csv").read_text().splitlines()))
    assert orjson.loads(plain_rows[1]["values"])["no2"] == 41.5


def test_geojson_keeps_the_latest_state_per_entity(tmp_path: Path) -> None:
    path = tmp_path / "state.geojson"
    sink = GeoJsonSink(path, write_interval=0)
    sink.open()
    newer = air_quality(7, no2=80, at="2024-05-01T13:00:00Z")
    sink.write([change(NORMALIZED), change(newer), change(air_quality(8, no2=5, at=now_text()))])
    sink.write([change(NORMALIZED)])  # late: older than what is held
    sink.close()
    data = orjson.loads(path.read_bytes())
    assert data["type"] == "FeatureCollection"
    features = {f["id"]: f for f in data["features"]}
    assert len(features) == 2
    assert features[NORMALIZED["id"]]["properties"]["no2"] == 80
    assert features[NORMALIZED["id"]]["geometry"]["type"] == "Point"
    again = GeoJsonSink(path)
    again.open()
    assert again.features() == data


def test_sqlite(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "c.db")
    sink.open()
    sink.write([change(NORMALIZED), change(CONCISE)])
    sink.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "c.db")) as conn:
        rows = conn.execute(
            "SELECT entity_id, observed_at, entity FROM changes ORDER BY seq"
        ).fetchall()
    assert [r[0] for r in rows] == [NORMALIZED["id"]] * 2
    assert rows[0][1] == "2024-05-01T12:00:00.000000Z"
    assert orjson.loads(rows[1][2]) == CONCISE


def test_forwarding_to_another_consumer_with_retries(tmp_path: Path) -> None:
    downstream_got: list[EntityChange] = []
    downstream = Consumer("downstream")
    downstream.on_change(downstream_got.append)
    with downstream.serve() as target:
        forward = WebhookSink(target.url, headers={"X-Hop": "1"})
        forward.open()
        forward.write([change(NORMALIZED)])
        forward.write([change(NORMALIZED)])  # a retried forward: same id, dropped downstream
        forward.close()
        downstream.drain()
    assert len(downstream_got) == 1
    assert downstream.counters["duplicates"] == 1
    dead = WebhookSink(f"http://127.0.0.1:{free_port()}/n", timeout=1)
    with pytest.raises(SinkError, match="forwarding"):
        dead.write([change(NORMALIZED)])


def test_a_consumer_forwards_what_it_receives(tmp_path: Path) -> None:
    got: list[EntityChange] = []
    downstream = Consumer("downstream")
    downstream.on_change(got.append)
    with downstream.serve() as target:
        relay = Consumer("relay", sinks=[WebhookSink(target.url)], state_dir=tmp_path / "relay")
        with relay.serve() as running:
            import httpx

            body = {
                "id": "urn:ngsi-ld:Notification:x",
                "type": "Notification",
                "subscriptionId": "urn:ngsi-ld:Subscription:s",
                "notifiedAt": now_text(),
                "data": [NORMALIZED],
            }
            assert httpx.post(running.url, json=body).status_code == 200
            assert wait_until(lambda: len(got) == 1)
    assert got[0].value("no2") == 41.5
