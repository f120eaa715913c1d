"""Fixtures for the page: the embedded broker with the Smart Data Models contexts, the page's app
served by uvicorn on a free port, and city entities written through `ngsi.Client`.

- `broker` (tests/fixtures.py): one embedded broker per test module; tests keep apart by
  tenant (`tenant`).
- `start_web(**settings)`: serves `create_app(WebSettings(...))` in a thread on a free port.
- `write_device(...)`, `write_air_quality(...)`: a Device and its AirQualityObserved (with
  `refDevice` and `location`), each written with its own subject @context, as the agent does.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn

from drehscheibe.web import WebSettings, create_app
from models import model_info
from ngsi import Client
from tests._serve import serve_app
from tests.conftest import free_port

DEVICE_CONTEXT = model_info("Device").context_url
ENVIRONMENT_CONTEXT = model_info("AirQualityObserved").context_url


@dataclass
class RunningWeb:
    url: str
    settings: WebSettings
    server: uvicorn.Server
    thread: threading.Thread


@contextlib.contextmanager
def start_web(**settings: Any) -> Iterator[RunningWeb]:
    """Serve the page on a free port of 127.0.0.1 in a thread until the block ends."""
    port = free_port()
    web_settings = WebSettings(port=port, **settings)
    with serve_app(create_app(web_settings), port=port, name="page") as served:
        yield RunningWeb(
            url=served.url, settings=web_settings, server=served.server, thread=served.thread
        )


@pytest.fixture
def tenant(request: pytest.FixtureRequest) -> str:
    """A tenant of this test alone (named after it)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name)[-50:].strip("-") or "test"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _typed(moment: datetime) -> dict[str, str]:
    return {"@type": "DateTime", "@value": iso(moment)}


def write_device(
    client: Client,
    dev_eui: str,
    *,
    name: str,
    location: tuple[float, float] | None,
    last_seen: datetime | None,
    battery: float | None = 0.87,
    rssi: int | None = -97,
) -> str:
    """Upsert a registered Device with what the agent writes of it; returns its id."""
    entity: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Device:{dev_eui}",
        "type": "Device",
        "devEUI": {"type": "Property", "value": dev_eui},
        "name": {"type": "Property", "value": name},
        "deviceState": {"type": "Property", "value": "active"},
        "controlledProperty": {"type": "Property", "value": ["airPollution", "temperature"]},
        "supportedProtocol": {"type": "Property", "value": ["lora"]},
    }
    if location is not None:
        entity["location"] = {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": list(location)},
        }
    if last_seen is not None:
        entity["dateLastValueReported"] = {"type": "Property", "value": _typed(last_seen)}
    if battery is not None:
        entity["batteryLevel"] = {"type": "Property", "value": battery}
    if rssi is not None:
        entity["rssi"] = {"type": "Property", "value": rssi, "unitCode": "DBM"}
    result = client.batch_upsert([entity], mode="update", context=DEVICE_CONTEXT)
    assert result.ok, result
    return str(entity["id"])


def write_air_quality(
    client: Client,
    dev_eui: str,
    *,
    observed_at: datetime,
    no2: float,
    temperature: float,
    location: tuple[float, float] | None = None,
    point: str | None = None,
) -> str:
    """Upsert the AirQualityObserved a device feeds (one uplink's worth); returns its id."""
    when = iso(observed_at)
    entity: dict[str, Any] = {
        "id": f"urn:ngsi-ld:AirQualityObserved:{point or dev_eui}",
        "type": "AirQualityObserved",
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:{dev_eui}"},
        "dateObserved": {"type": "Property", "value": _typed(observed_at)},
        "no2": {"type": "Property", "value": no2, "unitCode": "GQ", "observedAt": when},
        "temperature": {
            "type": "Property",
            "value": temperature,
            "unitCode": "CEL",
            "observedAt": when,
        },
    }
    if location is not None:
        entity["location"] = {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": list(location)},
        }
    result = client.batch_upsert([entity], mode="update", context=ENVIRONMENT_CONTEXT)
    assert result.ok, result
    return str(entity["id"])
