"""A measurement, printed and never asserted: outbox put + lease + accept, items per second.

The agent's load: 5,000 uplinks/s, each giving an observation entity and, every other uplink,
a Device entity (1.5 entities per uplink), put in group commits of `UPLINKS_PER_COMMIT`
uplinks with their frame-counter verdicts; the sender leases 500 and accepts them.

See the figures with `.venv/bin/pytest tests/agents/test_outbox_bench.py -s`, or with
`.venv/bin/python -m tests.agents.test_outbox_bench`.
"""

from __future__ import annotations

import gc
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agents.delivery import Outbox, OutboxItem

UPLINKS = 20_000
UPLINKS_PER_COMMIT = 100
DEVICES = 10_000
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
ENVIRONMENT = "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"
DEVICE = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/context.jsonld"
)


def items_of(uplink: int) -> tuple[str, int, datetime, list[OutboxItem]]:
    device = uplink % DEVICES
    dev_eui = f"{device:016X}"
    f_cnt = uplink // DEVICES
    at = T0 + timedelta(seconds=uplink)
    stamp = at.isoformat().replace("+00:00", "Z")
    observation: dict[str, Any] = {
        "id": f"urn:ngsi-ld:AirQualityObserved:point-{device}",
        "type": "AirQualityObserved",
        "temperature": {"type": "Property", "value": 21.5, "unitCode": "CEL", "observedAt": stamp},
        "relativeHumidity": {"type": "Property", "value": 0.43, "observedAt": stamp},
        "co2": {"type": "Property", "value": 612, "unitCode": "59", "observedAt": stamp},
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:{dev_eui}"},
    }
    items = [
        OutboxItem(
            observation,
            tenant="city",
            context=ENVIRONMENT,
            dev_eui=dev_eui,
            f_cnt=f_cnt,
            observed_at=at,
        )
    ]
    if uplink % 2 == 0:
        device_entity: dict[str, Any] = {
            "id": f"urn:ngsi-ld:Device:{dev_eui}",
            "type": "Device",
            "batteryLevel": {"type": "Property", "value": 0.87, "observedAt": stamp},
            "rssi": {"type": "Property", "value": -97, "observedAt": stamp},
            "dateLastValueReported": {"type": "Property", "value": stamp},
        }
        items.append(
            OutboxItem(
                device_entity,
                tenant="city",
                context=DEVICE,
                dev_eui=dev_eui,
                f_cnt=f_cnt,
                observed_at=at,
            )
        )
    return dev_eui, f_cnt, at, items


def measure(folder: Path, *, synchronous: str = "normal", count: int = UPLINKS) -> dict[str, float]:
    uplinks = [items_of(n) for n in range(count)]
    entities = sum(len(items) for *_, items in uplinks)
    # The prepared uplinks stand for the agent's input, not its garbage: keep them out of the
    # collector's way so that it measures the outbox.
    gc.collect()
    gc.freeze()
    with Outbox(folder / f"bench-{synchronous}.db", synchronous=synchronous) as outbox:  # type: ignore[arg-type]
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, count, UPLINKS_PER_COMMIT):
            group = uplinks[start : start + UPLINKS_PER_COMMIT]
            verdicts = [
                outbox.frames.check(dev_eui, f_cnt, received_at=at)
                for dev_eui, f_cnt, at, _ in group
            ]
            outbox.put_many([item for *_, items in group for item in items], frames=verdicts)
        put_wall, put_cpu = time.perf_counter() - wall, time.process_time() - cpu

        wall, cpu = time.perf_counter(), time.process_time()
        drained = 0
        while True:
            with outbox.lease(500) as tx:
                if not tx:
                    break
                tx.accept([item.id for item in tx.items])
                drained += len(tx)
        drain_wall, drain_cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert drained == entities
    gc.unfreeze()
    return {
        "entities": entities,
        "put_per_s": entities / put_wall,
        "uplinks": count,
        "put_cpu_us_per_uplink": put_cpu / count * 1e6,
        "drain_per_s": entities / drain_wall,
        "drain_cpu_us_per_entity": drain_cpu / entities * 1e6,
        "total_per_s": entities / (put_wall + drain_wall),
        "total_cpu_us_per_uplink": (put_cpu + drain_cpu) / count * 1e6,
    }


def report(figures: dict[str, float], synchronous: str) -> str:
    return (
        f"outbox (synchronous={synchronous}, {UPLINKS_PER_COMMIT} uplinks per commit, "
        f"{figures['entities']:.0f} entities from {figures['uplinks']:.0f} uplinks):\n"
        f"  put_many + frame check: {figures['put_per_s']:,.0f} entities/s, "
        f"{figures['put_cpu_us_per_uplink']:.1f} µs CPU per uplink\n"
        f"  lease(500) + accept:    {figures['drain_per_s']:,.0f} entities/s, "
        f"{figures['drain_cpu_us_per_entity']:.1f} µs CPU per entity\n"
        f"  put + lease + accept:   {figures['total_per_s']:,.0f} entities/s, "
        f"{figures['total_cpu_us_per_uplink']:.1f} µs CPU per uplink"
    )


def test_outbox_throughput(tmp_path: Path) -> None:
    # A shorter run in the suite; `python -m` runs the full one.
    for synchronous in ("normal", "full"):
        figures = measure(tmp_path, synchronous=synchronous, count=4_000)
        print("\n" + report(figures, synchronous))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        for synchronous in ("normal", "full"):
            print(report(measure(Path(folder), synchronous=synchronous), synchronous))
