"""NGSI-v2 notification formats (Orion-LD's `x-ngsiv2-*`, for QuantumLeap and other v2 tools)
over real HTTP to a real receiver, and through a real Mosquitto."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ngsi import from_ngsiv2
from tests.broker.test_notif_support import (
    API,
    Receiver,
    RunningBroker,
    mqtt_subscriber,
    receiver,
    running_broker,
)
from tests.conftest import Mosquitto

CITY = "https://example.org/city#"
CONTEXT = {
    "Station": f"{CITY}WeatherStation",
    "temperature": f"{CITY}airTemperature",
    "accuracy": f"{CITY}accuracy",
    "refDevice": {"@id": f"{CITY}refDevice", "@type": "@id"},
    "name": f"{CITY}name",
}
OBSERVED = "2024-05-01T12:00:00.000Z"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    with running_broker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


def station(number: str, temperature: float = 21.5) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:WeatherStation:{number}",
        "type": "Station",
        "temperature": {
            "type": "Property",
            "value": temperature,
            "unitCode": "CEL",
            "observedAt": OBSERVED,
            "accuracy": {"type": "Property", "value": 0.2},
        },
        "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:d1"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [6.78, 51.2]},
        },
        "name": {"type": "Property", "value": f"Station {number}"},
        "@context": [CONTEXT],
    }


def create(broker: RunningBroker, entity: dict[str, Any]) -> None:
    response = broker.client.post(
        f"{API}/entities", json=entity, headers={"Content-Type": "application/ld+json"}
    )
    assert response.status_code == 201, response.text


def subscribe(broker: RunningBroker, entity_id: str, uri: str, **notification: Any) -> str:
    body = {
        "type": "Subscription",
        "entities": [{"type": "Station", "id": entity_id}],
        "notification": {"endpoint": {"uri": uri}, **notification},
        "@context": [CONTEXT],
    }
    response = broker.client.post(
        f"{API}/subscriptions", json=body, headers={"Content-Type": "application/ld+json"}
    )
    assert response.status_code == 201, response.text
    return str(response.headers["location"].rsplit("/", 1)[-1])


def patch_temperature(broker: RunningBroker, entity_id: str, value: float) -> None:
    response = broker.client.patch(
        f"{API}/entities/{entity_id}/attrs",
        json={
            "temperature": {
                "type": "Property",
                "value": value,
                "unitCode": "CEL",
                "observedAt": OBSERVED,
            },
            "@context": [CONTEXT],
        },
        headers={"Content-Type": "application/ld+json"},
    )
    assert response.status_code == 204, response.text


def fresh_station(broker: RunningBroker) -> str:
    number = uuid.uuid4().hex[:8]
    create(broker, station(number))
    return f"urn:ngsi-ld:WeatherStation:{number}"


def test_x_ngsiv2_normalized_writes_v2_attributes_with_expanded_names(
    broker: RunningBroker, rx: Receiver
) -> None:
    entity_id = fresh_station(broker)
    sid = subscribe(broker, entity_id, rx.url, format="x-ngsiv2-normalized")
    patch_temperature(broker, entity_id, 22.5)
    (got,) = rx.wait(1)
    assert got.headers["content-type"] == "application/json"
    assert got.headers["ngsiv2-attrsformat"] == "normalized"
    assert "link" not in got.headers
    assert set(got.body) == {"subscriptionId", "data"}
    assert got.body["subscriptionId"] == sid
    (entity,) = got.body["data"]
    assert entity["id"] == entity_id
    assert entity["type"] == f"{CITY}WeatherStation"
    assert entity[f"{CITY}airTemperature"] == {
        "type": "Number",
        "value": 22.5,
        "metadata": {
            "unitCode": {"type": "Text", "value": "CEL"},
            "observedAt": {"type": "DateTime", "value": OBSERVED},
        },
    }
    assert entity[f"{CITY}refDevice"] == {
        "type": "Relationship",
        "value": "urn:ngsi-ld:Device:d1",
        "metadata": {},
    }
    assert entity["https://uri.etsi.org/ngsi-ld/location"] == {
        "type": "geo:json",
        "value": {"type": "Point", "coordinates": [6.78, 51.2]},
        "metadata": {},
    }
    assert entity[f"{CITY}name"]["type"] == "Text"


@pytest.mark.parametrize("chosen", ["x-ngsiv2-normalized-compacted", "x-ngsiv2"])
def test_compacted_formats_use_the_subscription_context(
    broker: RunningBroker, rx: Receiver, chosen: str
) -> None:
    entity_id = fresh_station(broker)
    subscribe(broker, entity_id, rx.url, format=chosen)
    patch_temperature(broker, entity_id, 23.0)
    (got,) = rx.wait(1)
    assert got.headers["ngsiv2-attrsformat"] == "normalized"
    (entity,) = got.body["data"]
    assert entity["type"] == "Station"
    assert set(entity) == {"id", "type", "temperature", "refDevice", "location", "name"}
    assert entity["temperature"]["type"] == "Number"
    assert entity["temperature"]["value"] == 23.0
    assert entity["location"]["type"] == "geo:json"
    # What a v2 consumer received reads back into the NGSI-LD attributes it came from.
    back = from_ngsiv2(entity)
    assert back["refDevice"] == {"type": "Relationship", "object": "urn:ngsi-ld:Device:d1"}
    assert back["temperature"] == {
        "type": "Property",
        "value": 23.0,
        "unitCode": "CEL",
        "observedAt": OBSERVED,
    }


@pytest.mark.parametrize(
    ("chosen", "temperature", "kind"),
    [
        ("x-ngsiv2-keyValues", f"{CITY}airTemperature", f"{CITY}WeatherStation"),
        ("x-ngsiv2-keyValues-compacted", "temperature", "Station"),
    ],
)
def test_key_values_formats(
    broker: RunningBroker, rx: Receiver, chosen: str, temperature: str, kind: str
) -> None:
    entity_id = fresh_station(broker)
    sid = subscribe(broker, entity_id, rx.url, format=chosen, attributes=["temperature"])
    patch_temperature(broker, entity_id, 24.0)
    (got,) = rx.wait(1)
    assert got.headers["ngsiv2-attrsformat"] == "keyValues"
    assert got.body == {
        "subscriptionId": sid,
        "data": [{"id": entity_id, "type": kind, temperature: 24.0}],
    }


def test_the_format_reads_back_as_given(broker: RunningBroker, rx: Receiver) -> None:
    entity_id = fresh_station(broker)
    sid = subscribe(broker, entity_id, rx.url, format="x-ngsiv2")
    shown = broker.client.get(f"{API}/subscriptions/{sid}").json()
    assert shown["notification"]["format"] == "x-ngsiv2"


def test_show_changes_becomes_previous_value_metadata(broker: RunningBroker, rx: Receiver) -> None:
    entity_id = fresh_station(broker)
    subscribe(broker, entity_id, rx.url, format="x-ngsiv2-normalized-compacted", showChanges=True)
    patch_temperature(broker, entity_id, 25.0)
    (got,) = rx.wait(1)
    metadata = got.body["data"][0]["temperature"]["metadata"]
    assert metadata["previousValue"] == {"type": "Number", "value": 21.5}


def test_show_changes_is_refused_with_a_key_values_format(broker: RunningBroker) -> None:
    body = {
        "type": "Subscription",
        "entities": [{"type": "Station"}],
        "notification": {
            "format": "x-ngsiv2-keyValues",
            "showChanges": True,
            "endpoint": {"uri": "http://127.0.0.1:9/n"},
        },
    }
    response = broker.client.post(f"{API}/subscriptions", json=body)
    assert response.status_code == 400
    assert "x-ngsiv2-keyValues" in response.json()["detail"]


def test_unknown_format_is_refused_naming_the_v2_ones(broker: RunningBroker) -> None:
    body = {
        "type": "Subscription",
        "entities": [{"type": "Station"}],
        "notification": {"format": "x-ngsiv2-values", "endpoint": {"uri": "http://127.0.0.1:9/n"}},
    }
    response = broker.client.post(f"{API}/subscriptions", json=body)
    assert response.status_code == 400
    assert "x-ngsiv2-normalized" in response.json()["detail"]


def test_deletion_and_several_types_in_v2(broker: RunningBroker, rx: Receiver) -> None:
    kind = f"Meter{uuid.uuid4().hex[:6]}"
    entity_id = f"urn:ngsi-ld:{kind}:1"
    broker.create_entity(
        {"id": entity_id, "type": [kind, "Asset"], "flow": {"type": "Property", "value": 1}}
    )
    broker.subscribe(
        {
            "entities": [{"type": kind}],
            "notificationTrigger": ["attributeUpdated", "entityDeleted"],
            "notification": {"format": "x-ngsiv2", "endpoint": {"uri": rx.url}},
        }
    )
    broker.patch_attrs(entity_id, {"flow": {"type": "Property", "value": 2}})
    (updated,) = rx.wait(1)
    assert updated.body["data"] == [
        {"id": entity_id, "type": kind, "flow": {"type": "Number", "value": 2, "metadata": {}}}
    ]
    assert broker.client.delete(f"{API}/entities/{entity_id}").status_code == 204
    (deleted,) = rx.wait(1)
    assert deleted.body["data"] == [{"id": entity_id, "type": kind}]


def test_receiver_info_and_tenant_headers_stay(tmp_path: Path) -> None:
    with running_broker(tmp_path) as broker, receiver() as rx:
        kind = "Bin"
        broker.create_entity(
            {"id": "urn:ngsi-ld:Bin:1", "type": kind, "fill": {"type": "Property", "value": 0.1}},
            tenant="waste",
        )
        broker.subscribe(
            {
                "entities": [{"type": kind}],
                "notification": {
                    "format": "x-ngsiv2-normalized",
                    "endpoint": {
                        "uri": rx.url,
                        "accept": "application/ld+json",
                        "receiverInfo": [{"key": "Fiware-ServicePath", "value": "/waste"}],
                    },
                },
            },
            tenant="waste",
        )
        broker.patch_attrs(
            "urn:ngsi-ld:Bin:1",
            {"fill": {"type": "Property", "value": 0.4}},
            headers={"NGSILD-Tenant": "waste"},
        )
        (got,) = rx.wait(1)
    # An NGSI-v2 body is JSON whatever `accept` says: it has no @context to carry.
    assert got.headers["content-type"] == "application/json"
    assert got.headers["ngsild-tenant"] == "waste"
    assert got.headers["fiware-servicepath"] == "/waste"
    assert "@context" not in got.body["data"][0]


@pytest.mark.mqtt
def test_mqtt_endpoints_get_the_v2_body_and_header(tmp_path: Path, mosquitto: Mosquitto) -> None:
    topic = f"qa/{uuid.uuid4().hex[:6]}"
    with (
        running_broker(tmp_path, timeout=8.0) as broker,
        mqtt_subscriber(mosquitto.host, mosquitto.port, topic) as subscriber,
    ):
        broker.create_entity(
            {"id": "urn:ngsi-ld:Bin:m1", "type": "Bin", "fill": {"type": "Property", "value": 0}}
        )
        sid = broker.subscribe(
            {
                "entities": [{"type": "Bin"}],
                "notification": {
                    "format": "x-ngsiv2-keyValues-compacted",
                    "endpoint": {"uri": f"mqtt://{mosquitto.host}:{mosquitto.port}/{topic}"},
                },
            }
        )
        broker.patch_attrs("urn:ngsi-ld:Bin:m1", {"fill": {"type": "Property", "value": 0.7}})
        _, message, _ = subscriber.wait()
    assert message["metadata"]["Ngsiv2-AttrsFormat"] == "keyValues"
    assert message["metadata"]["Content-Type"] == "application/json"
    assert message["body"] == {
        "subscriptionId": sid,
        "data": [{"id": "urn:ngsi-ld:Bin:m1", "type": "Bin", "fill": 0.7}],
    }


def test_sub_attributes_become_metadata_on_creation(broker: RunningBroker, rx: Receiver) -> None:
    number = uuid.uuid4().hex[:8]
    entity_id = f"urn:ngsi-ld:WeatherStation:{number}"
    subscribe(broker, entity_id, rx.url, format="x-ngsiv2-normalized", attributes=["temperature"])
    create(broker, station(number))
    (got,) = rx.wait(1)
    (entity,) = got.body["data"]
    assert entity[f"{CITY}airTemperature"]["metadata"] == {
        "unitCode": {"type": "Text", "value": "CEL"},
        "observedAt": {"type": "DateTime", "value": OBSERVED},
        f"{CITY}accuracy": {"type": "Number", "value": 0.2},
    }
