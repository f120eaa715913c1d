"""Erasure of one device's and one area's data: exactly their entities leave the current state
and the history, their uplinks the archive and their dead letters the dead-letter store; the
report counts what went per store, and everything else stays."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.delivery import DeadLetters, UplinkArchive
from agents.privacy import Eraser, bbox_polygon
from ngsi import Client
from tests.broker.conftest import RunningBroker, sdm_url
from tests.e2e.support import register

A, B, C = "70B3D57ED00000A1", "70B3D57ED00000B2", "70B3D57ED00000C3"
WEATHER, ENVIRONMENT = sdm_url("Weather"), sdm_url("Environment")
BERLIN, DUESSELDORF = (13.4050, 52.5200), (6.7735, 51.2277)


def observation(
    entity_id: str, kind: str, device: str, where: tuple[float, float], value: float
) -> dict[str, Any]:
    name = "temperature" if kind == "WeatherObserved" else "co2"
    return {
        "id": entity_id,
        "type": kind,
        name: {"type": "Property", "value": value},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": list(where)}},
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:{device}"},
    }


ENTITIES = [
    (f"urn:ngsi-ld:WeatherObserved:{A}", "WeatherObserved", A, DUESSELDORF),
    ("urn:ngsi-ld:WeatherObserved:rathaus", "WeatherObserved", A, DUESSELDORF),
    ("urn:ngsi-ld:WeatherObserved:park", "WeatherObserved", B, BERLIN),
    ("urn:ngsi-ld:AirQualityObserved:mitte", "AirQualityObserved", B, DUESSELDORF),
    ("urn:ngsi-ld:AirQualityObserved:hafen", "AirQualityObserved", C, DUESSELDORF),
]


def current(client: Client) -> list[str]:
    found = [e["id"] for e in client.query_all(type="Device", context=sdm_url("Device"))]
    for kind, context in (("WeatherObserved", WEATHER), ("AirQualityObserved", ENVIRONMENT)):
        found += [e["id"] for e in client.query_all(type=kind, context=context)]
    return sorted(found)


def history(broker: RunningBroker, tenant: str) -> list[str]:
    found: list[str] = []
    for kind in ("Device", "WeatherObserved", "AirQualityObserved"):
        subject = "Environment" if kind == "AirQualityObserved" else kind.replace("Observed", "")
        answer = httpx.get(
            f"{broker.api}/temporal/entities",
            params={"type": kind, "limit": 1000, "lastN": 1},
            headers={
                "NGSILD-Tenant": tenant,
                "Link": f'<{sdm_url(subject)}>; rel="http://www.w3.org/ns/json-ld#context"',
            },
        )
        assert answer.status_code == 200, answer.text
        found += [e["id"] for e in answer.json()]
    return sorted(found)


@pytest.fixture
def city(broker: RunningBroker, tmp_path: Path) -> Iterator[tuple[Client, Path, str]]:
    """Three devices and their observations (current state and history) in a tenant of their
    own, and an agent folder with their archived uplinks and dead letters."""
    tenant = "erase" + uuid.uuid4().hex[:8]
    register(broker.url, A, tenant=tenant, location=DUESSELDORF)
    register(broker.url, B, tenant=tenant, location=BERLIN)
    register(broker.url, C, tenant=tenant, location=DUESSELDORF)
    with Client(broker.url, tenant=tenant, profile="embedded") as client:
        for value in (1.0, 2.0):
            for entity_id, kind, device, where in ENTITIES:
                context = WEATHER if kind == "WeatherObserved" else ENVIRONMENT
                client.batch_upsert(
                    [observation(entity_id, kind, device, where, value)], context=context
                )
        # an entity of A that is only in the history (its current state expired)
        gone = observation("urn:ngsi-ld:WeatherObserved:gone", "WeatherObserved", A, BERLIN, 3)
        answer = httpx.post(
            f"{broker.api}/temporal/entities",
            json={**gone, "@context": WEATHER},
            headers={"NGSILD-Tenant": tenant, "Content-Type": "application/ld+json"},
        )
        assert answer.status_code == 201, answer.text
        agent = tmp_path / "agent-data"
        agent.mkdir()
        now = datetime.now(UTC)
        with UplinkArchive(agent / "archive.db", retention=None) as archive:
            for device, count in ((A, 3), (B, 2), (C, 4)):
                for n in range(count):
                    archive.add(
                        source="tts",
                        payload=b"{}",
                        received_at=now - timedelta(minutes=n),
                        dev_eui=device,
                        f_cnt=n,
                    )
        with DeadLetters(agent / "outbox.db") as letters:
            letters.add(reason="codec-error", message="a1", dev_eui=A)
            letters.add(reason="codec-error", message="a2", dev_eui=A)
            letters.add(
                reason="rejected", message="r", entity_id="urn:ngsi-ld:WeatherObserved:rathaus"
            )
            letters.add(reason="codec-error", message="b", dev_eui=B)
            letters.add(reason="codec-error", message="c", dev_eui=C)
        yield client, agent, tenant


def test_erasing_a_device_removes_exactly_its_data(
    broker: RunningBroker, city: tuple[Client, Path, str]
) -> None:
    client, agent, tenant = city
    before_current, before_history = current(client), history(broker, tenant)
    assert "urn:ngsi-ld:WeatherObserved:gone" in before_history
    dry = Eraser(client, agent_dir=agent).erase_device(A.lower(), dry_run=True)
    assert dry.counts() == dict.fromkeys(dry.counts(), 0)
    assert current(client) == before_current

    report = Eraser(client, agent_dir=agent).erase_device(A.lower())
    mine = [
        f"urn:ngsi-ld:Device:{A}",
        f"urn:ngsi-ld:WeatherObserved:{A}",
        "urn:ngsi-ld:WeatherObserved:gone",
        "urn:ngsi-ld:WeatherObserved:rathaus",
    ]
    assert sorted(report.entities) == mine
    assert report.to_json()["removed"] == {
        "current_state": 3,
        "history": 4,
        "archive": 3,
        "dead_letters": 3,
        "outbox": 0,
        "frame_counters": 0,
    }
    assert current(client) == [i for i in before_current if i not in mine]
    assert history(broker, tenant) == [i for i in before_history if i not in mine]
    with UplinkArchive(agent / "archive.db", retention=None) as archive:
        assert archive.count(dev_eui=A) == 0
        assert archive.count() == 6
    with DeadLetters(agent / "outbox.db") as letters:
        assert sorted(letter.message for letter in letters.list()) == ["b", "c"]
    # a second erasure finds nothing left
    again = Eraser(client, agent_dir=agent).erase_device(A)
    assert again.current_state == again.history == again.archive == again.dead_letters == 0


def test_erasing_an_area_removes_what_is_located_there_and_its_devices_data(
    broker: RunningBroker, city: tuple[Client, Path, str]
) -> None:
    client, agent, tenant = city
    before_current, before_history = current(client), history(broker, tenant)
    report = Eraser(client, agent_dir=agent).erase_area(bbox_polygon(13.3, 52.4, 13.5, 52.6))
    # located in the area: B's Device, the park and the history-only entity of A; with B's
    # Device, the observations B feeds elsewhere (mitte)
    erased = [
        "urn:ngsi-ld:AirQualityObserved:mitte",
        f"urn:ngsi-ld:Device:{B}",
        "urn:ngsi-ld:WeatherObserved:gone",
        "urn:ngsi-ld:WeatherObserved:park",
    ]
    assert sorted(report.entities) == erased
    assert report.devices == [B]
    assert report.counts() == {
        "current_state": 3,
        "history": 4,
        "archive": 2,
        "dead_letters": 1,
        "outbox": 0,
        "frame_counters": 0,
    }
    assert current(client) == [i for i in before_current if i not in erased]
    assert history(broker, tenant) == [i for i in before_history if i not in erased]
    with UplinkArchive(agent / "archive.db", retention=None) as archive:
        assert archive.count() == 7
        assert archive.count(dev_eui=B) == 0


def test_areas_must_be_polygons_and_boxes_well_formed(
    city: tuple[Client, Path, str],
) -> None:
    client, _, _ = city
    with pytest.raises(ValueError, match="Polygon"):
        Eraser(client).erase_area({"type": "Point", "coordinates": [1, 2]})
    with pytest.raises(ValueError, match="west < east"):
        bbox_polygon(2, 0, 1, 1)
    with pytest.raises(ValueError):
        Eraser(client).erase_device("not-an-eui")
