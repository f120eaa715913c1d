"""How a fleet check reads and writes the broker: the changed verdicts of a tenant in one batch
update (not a request per device), a device whose entity is gone failing alone, unchanged
verdicts not written again, and the Device's `dateLastValueReported` counting as an uplink
(another agent instance may have received it). The embedded broker over real HTTP; the
client's transport counts requests."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from agents.fleet import FleetMonitor, FleetSettings
from agents.fleet._monitor import LOGGED_TURNS
from agents.profiles import ProfileCatalog
from agents.registry import DEVICE_CONTEXT, RegisteredDevice, Registry
from ngsi import Client
from tests.broker.conftest import RunningBroker
from tests.fleet.conftest import device_entity

UPDATE = ("POST", "/ngsi-ld/v1/entityOperations/update")


class CountingTransport(httpx.HTTPTransport):
    """Real HTTP, with the requests counted by method and path."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: Counter[tuple[str, str]] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests[(request.method, request.url.path)] += 1
        return super().handle_request(request)


def health(broker: RunningBroker, tenant: str, dev_eui: str) -> Any:
    found = device_entity(broker, tenant, dev_eui, attrs="health")
    return found.get("health") if found is not None else None


def registered(client: Client, euis: list[str]) -> Registry:
    """A registry of these devices, installed a day ago and silent since."""
    registry = Registry(client, profiles=ProfileCatalog())
    for eui in euis:
        registry.register(
            RegisteredDevice(
                dev_eui=eui,
                profile="temperature-humidity-lpp",
                location={"type": "Point", "coordinates": [6.77, 51.22]},
                date_installed=datetime.now(UTC) - timedelta(days=1),
            )
        )
    registry.resync()
    return registry


def test_changed_health_goes_in_one_batch_and_a_missing_entity_fails_alone(
    broker: RunningBroker, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    euis = [f"70B3D57ED00F05{n:02X}" for n in range(5)]
    transport = CountingTransport()
    with Client(broker.url, tenant=tenant, profile="embedded", transport=transport) as client:
        registry = registered(client, euis)
        gone = euis[-1]  # its entity is deleted behind the registry's back
        httpx.delete(
            f"{broker.api}/entities/urn:ngsi-ld:Device:{gone}",
            headers={"NGSILD-Tenant": tenant},
            timeout=10,
        ).raise_for_status()
        monitor = FleetMonitor(
            {tenant: registry}, ProfileCatalog(), settings=FleetSettings(silent_after=3)
        )

        transport.requests.clear()
        with caplog.at_level(logging.INFO, logger="agents.fleet"):
            verdicts = monitor.check()
        assert sorted(verdict.dev_eui for verdict in verdicts) == euis
        assert {verdict.status for verdict in verdicts} == {"silent"}
        assert transport.requests[UPDATE] == 1
        assert not [path for _, path in transport.requests if path.endswith("/attrs")]
        assert (monitor.counters.writes, monitor.counters.write_failures) == (4, 1)
        assert [health(broker, tenant, eui) for eui in euis[:-1]] == ["silent"] * 4
        said = [record.getMessage() for record in caplog.records]
        for eui in euis[:-1]:
            assert any(line.startswith(f"device {eui} is silent: ") for line in said)
        assert any(f"urn:ngsi-ld:Device:{gone}" in line for line in said)

        # nothing changed: only the device without an entity is tried again
        transport.requests.clear()
        monitor.check()
        assert transport.requests[UPDATE] == 1
        assert (monitor.counters.writes, monitor.counters.write_failures) == (4, 2)


def test_an_uplink_another_instance_reported_keeps_a_device_from_silence(
    broker: RunningBroker, tenant: str
) -> None:
    reported, silent = "70B3D57ED00F0510", "70B3D57ED00F0511"
    with Client(broker.url, tenant=tenant, profile="embedded") as client:
        registry = registered(client, [reported, silent])
        # what an agent instance writes with each uplink it receives
        at = (datetime.now(UTC) - timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
        httpx.post(
            f"{broker.api}/entities/urn:ngsi-ld:Device:{reported}/attrs",
            content=orjson.dumps(
                {
                    "dateLastValueReported": {
                        "type": "Property",
                        "value": {"@type": "DateTime", "@value": at},
                    },
                    "@context": DEVICE_CONTEXT,
                }
            ),
            headers={"Content-Type": "application/ld+json", "NGSILD-Tenant": tenant},
            timeout=10,
        ).raise_for_status()
        monitor = FleetMonitor({tenant: registry}, ProfileCatalog())
        verdicts = {verdict.dev_eui: verdict for verdict in monitor.check()}
    assert verdicts[reported].status == "ok"
    assert verdicts[silent].status == "silent"
    assert health(broker, tenant, reported) == "ok"


def test_many_changes_in_one_check_are_logged_as_a_summary(
    broker: RunningBroker, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    euis = [f"70B3D57ED00F06{n:02X}" for n in range(LOGGED_TURNS + 5)]
    with Client(broker.url, tenant=tenant, profile="embedded") as client:
        monitor = FleetMonitor({tenant: registered(client, euis)}, ProfileCatalog())
        with caplog.at_level(logging.INFO, logger="agents.fleet"):
            monitor.check()
    said = [record.getMessage() for record in caplog.records]
    assert said == [
        f"{len(euis)} devices changed health: {len(euis)} silent "
        f"({', '.join(euis[:5])}, ...; each at debug level)"
    ]
    assert [health(broker, tenant, eui) for eui in euis] == ["silent"] * len(euis)
