"""Temporal history over real HTTP: every change recorded, timerel, lastN, attrs, q,
temporalValues, deletion, tenants; retention on the history itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ngsi.broker._events import EntityChange
from ngsi.broker._temporal import History, TemporalQuery
from tests.broker.test_notif_support import API, RunningBroker, running_broker

TEMPORAL = f"{API}/temporal/entities"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    with running_broker(tmp_path_factory.mktemp("broker"), temporal={}) as running:
        yield running


def reading(value: float, hour: int) -> dict[str, Any]:
    return {
        "type": "Property",
        "value": value,
        "unitCode": "CEL",
        "observedAt": f"2024-05-01T{hour:02d}:00:00Z",
    }


@pytest.fixture
def station(broker: RunningBroker) -> str:
    """A weather station with four temperature readings (10, 11, 12, 13 o'clock)."""
    kind = f"Station{uuid.uuid4().hex[:8]}"
    entity_id = f"urn:ngsi-ld:{kind}:1"
    broker.create_entity(
        {
            "id": entity_id,
            "type": kind,
            "temperature": reading(10.0, 10),
            "name": {"type": "Property", "value": "Tempelhof"},
        }
    )
    for value, hour in ((11.0, 11), (12.5, 12), (13.0, 13)):
        broker.patch_attrs(entity_id, {"temperature": reading(value, hour)})
    return entity_id


def temperatures(body: dict[str, Any]) -> list[float]:
    return [instance["value"] for instance in body["temperature"]]


def test_every_change_is_recorded(broker: RunningBroker, station: str) -> None:
    response = broker.client.get(f"{TEMPORAL}/{station}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == station
    assert temperatures(body) == [10.0, 11.0, 12.5, 13.0]
    first = body["temperature"][0]
    assert first["instanceId"].startswith("urn:ngsi-ld:attribute:instance:")
    assert first["observedAt"] == "2024-05-01T10:00:00Z"
    assert first["unitCode"] == "CEL"
    assert "createdAt" not in first
    assert [i["value"] for i in body["name"]] == ["Tempelhof"]
    ids = {i["instanceId"] for i in body["temperature"]}
    assert len(ids) == 4


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"timerel": "before", "timeAt": "2024-05-01T11:30:00Z"}, [10.0, 11.0]),
        ({"timerel": "after", "timeAt": "2024-05-01T11:30:00Z"}, [12.5, 13.0]),
        (
            {
                "timerel": "between",
                "timeAt": "2024-05-01T11:00:00Z",
                "endTimeAt": "2024-05-01T13:00:00Z",
            },
            [11.0, 12.5],
        ),
        ({"lastN": "2"}, [12.5, 13.0]),
        ({"timerel": "before", "timeAt": "2024-05-01T12:30:00Z", "lastN": "1"}, [12.5]),
    ],
)
def test_time_windows_and_last_n(
    broker: RunningBroker, station: str, params: dict[str, str], expected: list[float]
) -> None:
    body = broker.client.get(
        f"{TEMPORAL}/{station}", params={"attrs": "temperature", **params}
    ).json()
    assert temperatures(body) == expected
    assert "name" not in body


def test_temporal_values_are_pairs_of_value_and_time(broker: RunningBroker, station: str) -> None:
    body = broker.client.get(
        f"{TEMPORAL}/{station}", params={"options": "temporalValues", "lastN": "2"}
    ).json()
    assert body["temperature"] == {
        "type": "Property",
        "values": [[12.5, "2024-05-01T12:00:00Z"], [13.0, "2024-05-01T13:00:00Z"]],
    }


def test_sys_attrs_show_when_each_instance_was_written(broker: RunningBroker, station: str) -> None:
    body = broker.client.get(f"{TEMPORAL}/{station}", params={"options": "sysAttrs"}).json()
    assert all("modifiedAt" in instance for instance in body["temperature"])


def test_query_by_type_time_and_q(broker: RunningBroker) -> None:
    kind = f"Gauge{uuid.uuid4().hex[:8]}"
    for number, level in ((1, 3.0), (2, 7.0)):
        broker.create_entity(
            {"id": f"urn:ngsi-ld:{kind}:{number}", "type": kind, "level": reading(level, 9)}
        )
    broker.patch_attrs(f"urn:ngsi-ld:{kind}:2", {"level": reading(8.0, 10)})
    response = broker.client.get(
        TEMPORAL,
        params={
            "type": kind,
            "timerel": "after",
            "timeAt": "2024-05-01T08:00:00Z",
            "count": "true",
        },
    )
    assert response.status_code == 200, response.text
    assert [e["id"] for e in response.json()] == [f"urn:ngsi-ld:{kind}:1", f"urn:ngsi-ld:{kind}:2"]
    assert response.headers["ngsild-results-count"] == "2"

    high = broker.client.get(TEMPORAL, params={"type": kind, "q": "level>7.5"}).json()
    assert [e["id"] for e in high] == [f"urn:ngsi-ld:{kind}:2"]
    assert [i["value"] for i in high[0]["level"]] == [7.0, 8.0]

    late = broker.client.get(
        TEMPORAL, params={"type": kind, "timerel": "after", "timeAt": "2024-05-01T09:30:00Z"}
    ).json()
    assert [e["id"] for e in late] == [f"urn:ngsi-ld:{kind}:2"]


def test_query_needs_a_selection_and_valid_times(broker: RunningBroker) -> None:
    assert broker.client.get(TEMPORAL).status_code == 400
    bad = broker.client.get(
        TEMPORAL, params={"type": "X", "timerel": "during", "timeAt": "2024-01-01T00:00:00Z"}
    )
    assert bad.status_code == 400
    assert "timerel" in bad.json()["detail"]
    missing = broker.client.get(
        TEMPORAL, params={"type": "X", "timerel": "between", "timeAt": "2024-01-01T00:00:00Z"}
    )
    assert "endTimeAt" in missing.json()["detail"]
    assert broker.client.get(TEMPORAL, params={"type": "X", "lastN": "0"}).status_code == 400


def test_only_written_instances_of_a_multi_attribute_are_recorded(broker: RunningBroker) -> None:
    kind = f"Counter{uuid.uuid4().hex[:8]}"
    entity_id = f"urn:ngsi-ld:{kind}:1"
    broker.create_entity(
        {
            "id": entity_id,
            "type": kind,
            "count": [
                {"type": "Property", "value": 1},
                {"type": "Property", "value": 100, "datasetId": "urn:ngsi-ld:Dataset:total"},
            ],
        }
    )
    broker.patch_attrs(entity_id, {"count": {"type": "Property", "value": 2}})
    body = broker.client.get(f"{TEMPORAL}/{entity_id}").json()
    assert sorted(i["value"] for i in body["count"]) == [1, 2, 100]


def test_deleting_the_entity_deletes_its_history(broker: RunningBroker, station: str) -> None:
    assert broker.client.delete(f"{API}/entities/{station}").status_code == 204
    assert broker.client.get(f"{TEMPORAL}/{station}").status_code == 404


def test_delete_temporal_entity(broker: RunningBroker, station: str) -> None:
    assert broker.client.delete(f"{TEMPORAL}/{station}").status_code == 204
    assert broker.client.get(f"{TEMPORAL}/{station}").status_code == 404
    assert broker.client.delete(f"{TEMPORAL}/{station}").status_code == 404
    assert broker.client.get(f"{TEMPORAL}/not-a-uri").status_code == 400


def test_tenants_have_separate_histories(broker: RunningBroker) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    broker.create_entity(
        {"id": "urn:ngsi-ld:Meter:t1", "type": "Meter", "v": reading(1, 1)}, tenant=tenant
    )
    assert broker.client.get(f"{TEMPORAL}/urn:ngsi-ld:Meter:t1").status_code == 404
    found = broker.client.get(f"{TEMPORAL}/urn:ngsi-ld:Meter:t1", headers={"NGSILD-Tenant": tenant})
    assert found.status_code == 200
    assert found.headers["ngsild-tenant"] == tenant


def change(entity_id: str, kind: str, observed: datetime, value: float) -> EntityChange:
    stamp = observed.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    doc = {
        "id": entity_id,
        "type": kind,
        "https://example.org/level": {
            "type": "Property",
            "value": value,
            "observedAt": stamp,
            "modifiedAt": stamp,
        },
        "modifiedAt": stamp,
    }
    return EntityChange(
        tenant=None,
        kind="updated",
        entity_id=entity_id,
        entity_types=(kind,),
        before=doc,
        after=doc,
        changed_attributes=frozenset({"https://example.org/level"}),
        at=observed,
    )


def test_retention_removes_old_instances_per_type(tmp_path: Path) -> None:
    history = History(
        tmp_path,
        retention=timedelta(days=30),
        retention_by_type={"https://example.org/Short": timedelta(days=1)},
    )
    history.start()
    try:
        now = datetime(2024, 6, 1, tzinfo=UTC)
        for days_ago in (40, 10, 2, 0):
            observed = now - timedelta(days=days_ago)
            history.entity_changed(
                change("urn:ngsi-ld:Long:1", "https://example.org/Long", observed, days_ago)
            )
            history.entity_changed(
                change("urn:ngsi-ld:Short:1", "https://example.org/Short", observed, days_ago)
            )
        history.caught_up()
        assert history.purge(now=now) == 1 + 3
        everything = TemporalQuery(limit=10)
        found = {e["id"]: e for e in history.query(None, everything)[0]}
        assert [i["value"] for i in found["urn:ngsi-ld:Long:1"]["https://example.org/level"]] == [
            10,
            2,
            0,
        ]
        assert [i["value"] for i in found["urn:ngsi-ld:Short:1"]["https://example.org/level"]] == [
            0
        ]
    finally:
        history.stop()


def test_an_instance_written_in_the_same_millisecond_before_is_not_recorded_again(
    tmp_path: Path,
) -> None:
    # Created and patched within one millisecond: every instance carries the same modifiedAt.
    at = datetime(2024, 6, 1, tzinfo=UTC)
    stamp = "2024-06-01T00:00:00.000Z"
    name = "https://example.org/count"
    total = {"type": "Property", "value": 100, "datasetId": "urn:ngsi-ld:Dataset:total"}
    total |= {"modifiedAt": stamp}
    before = {
        "id": "urn:ngsi-ld:Counter:1",
        "type": "https://example.org/Counter",
        name: [{"type": "Property", "value": 1, "modifiedAt": stamp}, total],
        "modifiedAt": stamp,
    }
    after = before | {name: [{"type": "Property", "value": 2, "modifiedAt": stamp}, dict(total)]}
    history = History(tmp_path)
    history.start()
    try:
        for kind, old, new in (("created", None, before), ("updated", before, after)):
            history.entity_changed(
                EntityChange(
                    tenant=None,
                    kind=kind,  # type: ignore[arg-type]
                    entity_id="urn:ngsi-ld:Counter:1",
                    entity_types=("https://example.org/Counter",),
                    before=old,
                    after=new,
                    changed_attributes=frozenset({name}),
                    at=at,
                )
            )
        history.caught_up()
        found = history.query(None, TemporalQuery(limit=10))[0]
        assert sorted(i["value"] for i in found[0][name]) == [1, 2, 100]
    finally:
        history.stop()


def test_a_full_queue_drops_changes_without_blocking(tmp_path: Path) -> None:
    history = History(tmp_path, queue_limit=2)
    now = datetime(2024, 6, 1, tzinfo=UTC)
    for n in range(5):
        history.entity_changed(change("urn:ngsi-ld:Q:1", "https://example.org/Q", now, n))
    assert history.dropped == 3


def test_temporal_entities_can_be_provided_directly(broker: RunningBroker) -> None:
    kind = f"Vehicle{uuid.uuid4().hex[:8]}"
    entity_id = f"urn:ngsi-ld:{kind}:1"
    body = {
        "id": entity_id,
        "type": kind,
        "speed": [reading(120, 12), reading(80, 13)],
        "street": [
            {
                "type": "LanguageProperty",
                "languageMap": {"fr": "Rue"},
                "observedAt": "2024-05-01T12:00:00Z",
            }
        ],
    }
    created = broker.client.post(TEMPORAL, json=body, headers={"Content-Type": "application/json"})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{TEMPORAL}/{entity_id}"
    more = {"id": entity_id, "type": kind, "speed": [reading(90, 14)]}
    again = broker.client.post(TEMPORAL, json=more, headers={"Content-Type": "application/json"})
    assert again.status_code == 204
    body = broker.client.get(f"{TEMPORAL}/{entity_id}", params={"options": "temporalValues"}).json()
    assert body["speed"]["values"] == [
        [120, "2024-05-01T12:00:00Z"],
        [80, "2024-05-01T13:00:00Z"],
        [90, "2024-05-01T14:00:00Z"],
    ]
    assert body["street"] == {
        "type": "LanguageProperty",
        "languageMaps": [[{"languageMap": {"fr": "Rue"}}, "2024-05-01T12:00:00Z"]],
    }
    assert broker.client.get(f"{API}/entities/{entity_id}").status_code == 404
    missing = broker.client.get(f"{TEMPORAL}/{entity_id}", params={"attrs": "weight"})
    assert missing.status_code == 404
    bad = broker.client.post(
        TEMPORAL,
        json={"id": entity_id, "type": kind, "speed": [{"type": "Property"}]},
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 400


def test_post_query_and_geo_query(broker: RunningBroker) -> None:
    kind = f"Bike{uuid.uuid4().hex[:8]}"
    for number, longitude in ((1, 13.40), (2, 13.90)):
        broker.create_entity(
            {
                "id": f"urn:ngsi-ld:{kind}:{number}",
                "type": kind,
                "speed": reading(10 * number, 10),
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [longitude, 52.52]},
                },
            }
        )
    near = broker.client.get(
        TEMPORAL,
        params={
            "type": kind,
            "attrs": "speed",
            "georel": "near;maxDistance==2000",
            "geometry": "Point",
            "coordinates": "[13.41, 52.52]",
        },
    ).json()
    assert [e["id"] for e in near] == [f"urn:ngsi-ld:{kind}:1"]
    query = {
        "type": "Query",
        "entities": [{"type": kind}],
        "attrs": ["speed"],
        "temporalQ": {"timerel": "after", "timeAt": "2024-05-01T09:00:00Z"},
        "q": "speed>15",
    }
    response = broker.client.post(
        f"{API}/temporal/entityOperations/query",
        json=query,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    found = response.json()
    assert [e["id"] for e in found] == [f"urn:ngsi-ld:{kind}:2"]
    assert [i["value"] for i in found[0]["speed"]] == [20]
    assert "location" not in found[0]
