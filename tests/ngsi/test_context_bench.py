"""A measurement, printed and never asserted: expand + compact of a 10-attribute entity per second.

See the figures with `.venv/bin/pytest tests/ngsi/test_context_bench.py -s`, or with
`.venv/bin/python -m tests.ngsi.test_context_bench`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ngsi._context import Context, compact_entity, expand_entity
from ngsi._context_store import ContextStore

ENVIRONMENT = "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
ATTRIBUTES = (
    "temperature",
    "relativeHumidity",
    "co2",
    "no2",
    "pm10",
    "pm25",
    "airQualityIndex",
    "dateObserved",
    "refDevice",
    "location",
)


def sample_entity() -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": "urn:ngsi-ld:AirQualityObserved:bench",
        "type": "AirQualityObserved",
    }
    for name in ATTRIBUTES:
        entity[name] = {
            "type": "Property",
            "value": 21.5,
            "unitCode": "CEL",
            "observedAt": "2024-05-01T10:00:00Z",
        }
    entity["refDevice"] = {"type": "Relationship", "object": "urn:ngsi-ld:Device:1"}
    entity["location"] = {
        "type": "GeoProperty",
        "value": {"type": "Point", "coordinates": [13, 52]},
    }
    return entity


def measure(context: Context, *, seconds: float = 0.5) -> dict[str, float]:
    entity = sample_entity()
    expanded = expand_entity(entity, context)
    if compact_entity(expanded, context) != entity:
        raise AssertionError("expand + compact must give the entity back")
    figures: dict[str, float] = {}
    steps: list[tuple[str, Callable[[], object]]] = [
        ("expand", lambda: expand_entity(entity, context)),
        ("compact", lambda: compact_entity(expanded, context)),
        ("expand+compact", lambda: compact_entity(expand_entity(entity, context), context)),
    ]
    for label, step in steps:
        count = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            for _ in range(500):
                step()
            count += 500
        figures[label] = count / elapsed
    return figures


def report(store: ContextStore) -> dict[str, float]:
    figures = measure(store.resolve(ENVIRONMENT))
    for label, per_second in figures.items():
        print(f"context {label:>15}: {per_second:>10,.0f} entities/s (10 attributes, warm Context)")
    return figures


def test_measure_expand_and_compact(shared_dir: Path) -> None:
    store = ContextStore(
        preload={ENVIRONMENT: shared_dir / "sdm/dataModel.Environment/context.jsonld"}
    )
    figures = report(store)
    assert set(figures) == {"expand", "compact", "expand+compact"}


if __name__ == "__main__":
    report(ContextStore(preload={ENVIRONMENT: SHARED / "sdm/dataModel.Environment/context.jsonld"}))
