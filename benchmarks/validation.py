"""How fast normalized NGSI-LD entities are validated against the official schema, offline.

    python -m benchmarks.validation [--schemas DIR] [--entities 10000] [--runs 7]

Builds `--entities` AirQualityObserved readings with the model (every reading a different
station, time and set of values), writes them normalized, then validates all of them with one
shared `SdmSchemas` (compiled validators reused) `--runs` times, and prints the median rate in
entities per second. The schema directory is `--schemas`, else `$DREHSCHEIBE_SDM_SCHEMAS`, else
the `shared/sdm` folder beside the checkout, else the user data folder.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from models import AirQualityObserved, Measured
from schemas import ENV_SDM_SCHEMAS, SdmSchemas, default_sdm_dir

_SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "sdm"


def _schema_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    if os.environ.get(ENV_SDM_SCHEMAS):
        return default_sdm_dir()
    if _SHARED.is_dir():
        return _SHARED.resolve()
    return default_sdm_dir()


def readings(count: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """`count` normalized AirQualityObserved entities as the agents write them."""
    rng = random.Random(seed)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    entities = []
    for index in range(count):
        observed = start + timedelta(minutes=index)
        reading = AirQualityObserved.model_validate(
            {
                "id": f"urn:ngsi-ld:AirQualityObserved:station-{index}",
                "dateObserved": observed,
                "location": {
                    "type": "Point",
                    "coordinates": [13.0 + rng.random(), 52.3 + rng.random() / 2],
                },
                "temperature": Measured(value=round(rng.uniform(-10, 35), 1), observed_at=observed),
                "relativeHumidity": round(rng.random(), 2),
                "co2": Measured(value=rng.randint(400, 2000), observed_at=observed),
                "no2": round(rng.uniform(0, 80), 1),
                "pm10": round(rng.uniform(0, 60), 1),
                "pm25": round(rng.uniform(0, 40), 1),
                "typeofLocation": "outdoor",
                "refDevice": f"urn:ngsi-ld:Device:{index:016X}",
                "name": f"Station {index}",
            }
        )
        entities.append(reading.to_ngsi("normalized"))
    return entities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--schemas", help="Directory of official Smart Data Models schemas.")
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    options = parser.parse_args()

    schemas = SdmSchemas(_schema_dir(options.schemas))
    entities = readings(options.entities)
    started = time.perf_counter()
    schemas.validator("AirQualityObserved")
    compiled_ms = (time.perf_counter() - started) * 1000

    rates = []
    for _ in range(options.runs):
        started = time.perf_counter()
        invalid = sum(1 for entity in entities if schemas.violations(entity))
        elapsed = time.perf_counter() - started
        if invalid:
            raise SystemExit(f"{invalid} entities unexpectedly invalid")
        rates.append(len(entities) / elapsed)

    print(f"schemas: {schemas.root}")
    print(f"compile AirQualityObserved validator: {compiled_ms:.0f} ms (once)")
    print(
        f"validate {len(entities)} normalized AirQualityObserved entities, {options.runs} runs: "
        f"median {statistics.median(rates):,.0f} entities/s "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f})"
    )


if __name__ == "__main__":
    main()
