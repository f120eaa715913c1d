"""The registry remembers a device's first uplink in memory and in its cache file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agents.registry import RegisteredDevice, Registry

FIRST = datetime(2026, 3, 1, 7, 15, tzinfo=UTC)


def device(dev_eui: str) -> RegisteredDevice:
    return RegisteredDevice(dev_eui=dev_eui, profile="temperature-humidity-lpp")


def test_first_use_is_kept_in_memory_and_in_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "registry.db"
    registry = Registry(cache_path=cache)
    devices = [device(f"70B3D57ED00F05{n:02X}") for n in range(3)]
    registry.apply_notification({"data": [d.to_entity() for d in devices]})
    table = registry._devices
    by_id = dict(registry._by_id)
    before = [registry.get(d.dev_eui) for d in devices]

    registry.mark_first_used(devices[1].dev_eui, FIRST)
    registry.mark_first_used(devices[1].dev_eui, datetime(2026, 3, 2, tzinfo=UTC))  # kept
    registry.mark_first_used("70B3D57ED00F05FF", FIRST)  # unknown: nothing

    found = registry.get(devices[1].dev_eui)
    assert found is not None
    assert found.date_first_used == FIRST
    assert before[1] is not None
    assert found == before[1].model_copy(update={"date_first_used": FIRST})
    assert [d.date_first_used for d in registry.list()] == [None, FIRST, None]
    assert registry._devices is table  # updated in place, not copied
    assert registry._by_id == by_id
    assert len(registry) == 3
    registry.close()

    reopened = Registry(cache_path=cache)
    try:
        again = reopened.get(devices[1].dev_eui)
        assert again is not None
        assert again.date_first_used == FIRST
        assert reopened.get(devices[0].dev_eui) == before[0]
        assert again == found
    finally:
        reopened.close()
