"""A handful of Düsseldorf measuring points, written through the client as the demo's start.

Real Smart Data Models entities, each with its subject's @context, upserted with
`options=update`. Until the simulated fleet and the agent run in the demo, these are the
entities a newcomer can query.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from models import AirQualityObserved, NoiseLevelObserved, OffStreetParking, SmartDataModel
from ngsi import BatchResult, Client, Point

__all__ = ["seed_city", "seed_entities"]

CITY = "Düsseldorf"


def _point(lon: float, lat: float) -> Any:
    return Point(type="Point", coordinates=[lon, lat])


def seed_entities(now: datetime | None = None) -> list[SmartDataModel]:
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    stations = [
        ("Corneliusstrasse", 6.7835, 51.2135, 48.0, 31.0, 19.0),
        ("Merowingerstrasse", 6.7769, 51.2029, 39.0, 27.0, 15.0),
        ("Dorotheenstrasse", 6.8157, 51.2268, 35.0, 24.0, 14.0),
    ]
    entities: list[SmartDataModel] = [
        AirQualityObserved(
            id=f"urn:ngsi-ld:AirQualityObserved:DUS-{name}",
            name=f"{name}, {CITY}",
            location=_point(lon, lat),
            dateObserved=now,
            no2=no2,
            pm10=pm10,
            pm25=pm25,
            temperature=7.5,
            relativeHumidity=0.81,
        )
        for name, lon, lat, no2, pm10, pm25 in stations
    ]
    entities.append(
        NoiseLevelObserved(
            id="urn:ngsi-ld:NoiseLevelObserved:DUS-Bolkerstrasse",
            name=f"Bolkerstrasse (Altstadt), {CITY}",
            location=_point(6.7736, 51.2269),
            dateObservedFrom=now - timedelta(minutes=15),
            dateObservedTo=now,
            LAeq=67.2,
            LAmax=81.5,
        )
    )
    entities.append(
        OffStreetParking(
            id="urn:ngsi-ld:OffStreetParking:DUS-Koe-Galerie",
            name=f"Kö-Galerie, {CITY}",
            location=_point(6.7803, 51.2237),
            totalSpotNumber=730,
            availableSpotNumber=212,
        )
    )
    return entities


def seed_city(client: Client, now: datetime | None = None) -> list[BatchResult]:
    """Upsert the sample entities, one batch per @context; returns the batch results."""
    by_context: dict[str, list[dict[str, Any]]] = {}
    for entity in seed_entities(now):
        by_context.setdefault(entity.context_url(), []).append(entity.to_ngsi())
    return [
        client.batch_upsert(batch, mode="update", context=url)
        for url, batch in sorted(by_context.items())
    ]
