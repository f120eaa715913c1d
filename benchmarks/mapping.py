"""CPU cost of mapping per uplink, for every built-in profile.

Run: `python -m benchmarks.mapping`. Prints, per profile: the codec's decode,
`map_uplink` (observation entities and the Device update), and for comparison what validating
every entity of every uplink would cost (models classes and official schemas), which the agent
does once per profile instead (`validate_profile_shapes`). CPU time (process_time), best of 5.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from agents.mapping import MappingConfig, map_uplink, validate_mapped, validate_profile_shapes
from agents.profiles import ProfileCatalog
from agents.registry import Calibration, RegisteredDevice
from schemas import SdmSchemas
from tests.mapping._uplinks import RECEIVED, uplink_for

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


def cpu_us(work: Callable[[], object], runs: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(runs):
            work()
        best = min(best, (time.process_time() - start) / runs * 1e6)
    return best


def measure(catalog: ProfileCatalog, name: str, sdm: SdmSchemas) -> tuple[float, float, int, float]:
    profile = catalog.get(name)
    codec = catalog.codec(name)
    uplink = uplink_for(name)
    device = RegisteredDevice(
        dev_eui="70B3D57ED0000001",
        profile=name,
        measuring_point="mitte-01",
        location={"type": "Point", "coordinates": [13.405, 52.52]},
        calibration=(Calibration(attribute="temperature", offset=-0.2),),
    )
    config = MappingConfig(data_provider="Stadt Musterstadt", source="https://lora.example")
    payload = uplink.payload or b""
    measurements = codec.decode(payload, f_port=1, uplink=uplink)
    mapped = map_uplink(uplink, measurements, device, profile, now=RECEIVED, config=config)
    validate_profile_shapes(profile, sdm=sdm)
    decode = cpu_us(lambda: codec.decode(payload, f_port=1, uplink=uplink), 3000)
    cost = cpu_us(
        lambda: map_uplink(uplink, measurements, device, profile, now=RECEIVED, config=config),
        3000,
    )
    validate = cpu_us(lambda: validate_mapped(mapped, sdm=sdm), 50)
    return decode, cost, len(mapped.entities), validate


def main() -> None:
    catalog = ProfileCatalog()
    sdm = SdmSchemas(SHARED / "sdm")
    print(f"{'profile':26} {'decode':>8} {'map':>8} {'entities':>8} {'validate/uplink':>16}")
    total = 0.0
    for name in catalog.names():
        decode, cost, entities, validate = measure(catalog, name, sdm)
        total += cost
        print(f"{name:26} {decode:7.1f}µs {cost:7.1f}µs {entities:8d} {validate:14.0f}µs")
    print(f"mean map_uplink: {total / len(catalog.names()):.1f} µs CPU per uplink")


if __name__ == "__main__":
    main()
