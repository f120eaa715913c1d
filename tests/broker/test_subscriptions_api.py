"""Subscriptions over real HTTP: create, list, retrieve, update, delete, validation, restart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.broker.test_notif_support import API, CORE, RunningBroker, receiver, running_broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    with running_broker(tmp_path_factory.mktemp("broker")) as running:
        yield running


def unique_type() -> str:
    return f"T{uuid.uuid4().hex[:10]}"


def post(broker: RunningBroker, body: Any, **headers: str) -> Any:
    headers.setdefault("Content-Type", "application/json")
    return broker.client.post(f"{API}/subscriptions", json=body, headers=headers)


def minimal(**extra: Any) -> dict[str, Any]:
    return {
        "type": "Subscription",
        "entities": [{"type": "Sensor"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}},
        **extra,
    }


def test_create_returns_201_with_location_and_generated_id(broker: RunningBroker) -> None:
    response = post(broker, minimal())
    assert response.status_code == 201
    location = response.headers["location"]
    assert location.startswith(f"{API}/subscriptions/urn:ngsi-ld:Subscription:")
    fetched = broker.client.get(location)
    assert fetched.status_code == 200
    body = fetched.json()
    assert body["id"] == location.rsplit("/", 1)[-1]
    assert body["type"] == "Subscription"
    assert body["status"] == "active"
    assert body["notificationTrigger"] == ["attributeCreated", "attributeUpdated"]
    assert "isActive" not in body  # nothing added that the subscriber did not send


def test_create_with_given_id_then_duplicate_is_409(broker: RunningBroker) -> None:
    sid = f"urn:ngsi-ld:Subscription:{uuid.uuid4()}"
    assert post(broker, minimal(id=sid)).status_code == 201
    again = post(broker, minimal(id=sid))
    assert again.status_code == 409
    assert again.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists"


@pytest.mark.parametrize(
    ("body", "member"),
    [
        ({"type": "Subscription", "notification": {"endpoint": {"uri": "http://h/n"}}}, "entities"),
        (minimal(type="Registration"), "type"),
        (minimal(id="not a uri"), "id"),
        (minimal(id=""), "id"),
        (minimal(timeInterval=10, watchedAttributes=["a"]), "timeInterval"),
        (minimal(timeInterval=10, throttling=5), "timeInterval"),
        (minimal(throttling=0), "throttling"),
        (minimal(throttling=-3), "throttling"),
        (minimal(expiresAt="2001-01-01T00:00:00Z"), "expiresAt"),
        (minimal(expiresAt="tomorrow"), "expiresAt"),
        (minimal(q="temperature>>3"), "q"),
        (minimal(isActive="yes"), "isActive"),
        (
            minimal(notification={"endpoint": {"uri": "ftp://h/n"}}),
            "notification.endpoint.uri",
        ),
        (
            minimal(notification={"endpoint": {"uri": "http://h/n", "accept": "text/csv"}}),
            "notification.endpoint.accept",
        ),
        (
            minimal(notification={"format": "flat", "endpoint": {"uri": "http://h/n"}}),
            "notification.format",
        ),
        (
            minimal(
                notification={
                    "format": "keyValues",
                    "showChanges": True,
                    "endpoint": {"uri": "http://h/n"},
                }
            ),
            "notification.showChanges",
        ),
        (minimal(notification={"format": "keyValues"}), "notification.endpoint"),
        (
            minimal(
                notification={
                    "endpoint": {
                        "uri": "mqtt://h:1883/t",
                        "notifierInfo": [{"key": "MQTT-QoS", "value": "3"}],
                    }
                }
            ),
            "notification.endpoint.uri",
        ),
        (minimal(notificationTrigger=["entityExploded"]), "notificationTrigger"),
        (minimal(entities=[{"id": "urn:a:b"}]), "entities[0].type"),
        (minimal(entities=[{"type": "A", "idPattern": "("}]), "entities[0].idPattern"),
        (minimal(entities=[{"type": "(A|"}]), "entities[0].type"),
        (
            minimal(geoQ={"geometry": "Point", "coordinates": [13.4, 52.5], "georel": "nearby"}),
            "geoQ.georel",
        ),
        (minimal(colour="blue"), "colour"),
    ],
)
def test_invalid_subscriptions_are_400_naming_the_member(
    broker: RunningBroker, body: dict[str, Any], member: str
) -> None:
    response = post(broker, body)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    assert member in problem["detail"]


def test_invalid_json_is_invalid_request(broker: RunningBroker) -> None:
    response = broker.client.post(
        f"{API}/subscriptions",
        content=b'{"type": "Subscription",,}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["type"].endswith("/InvalidRequest")


def test_unsupported_members_are_refused(broker: RunningBroker) -> None:
    response = post(broker, minimal(scopeQ="/Berlin"))
    assert response.status_code == 422
    assert "scopeQ" in response.json()["detail"]


def test_names_are_expanded_with_the_request_context_and_compacted_on_read(
    broker: RunningBroker,
) -> None:
    context = {
        "@context": [
            {
                "Room": "https://example.org/vocab#Room",
                "temp": "https://example.org/vocab#temperature",
            },
            CORE,
        ]
    }
    body = {
        "type": "Subscription",
        "entities": [{"type": "Room"}],
        "watchedAttributes": ["temp"],
        "q": "temp>20",
        "notification": {"attributes": ["temp"], "endpoint": {"uri": "http://127.0.0.1:9/n"}},
        **context,
    }
    response = post(broker, body, **{"Content-Type": "application/ld+json"})
    assert response.status_code == 201, response.text
    location = response.headers["location"]

    plain = broker.client.get(location).json()
    assert plain["entities"] == [{"type": "https://example.org/vocab#Room"}]
    assert plain["watchedAttributes"] == ["https://example.org/vocab#temperature"]
    assert plain["notification"]["attributes"] == ["https://example.org/vocab#temperature"]
    assert plain["q"] == "temp>20"

    as_ld = broker.client.post(f"{API}/jsonldContexts", json=context)
    assert as_ld.status_code == 201, as_ld.text
    context_url = as_ld.headers["location"]
    if context_url.startswith("/"):
        context_url = broker.url + context_url
    link = (
        f'<{context_url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    )
    compact = broker.client.get(location, headers={"Link": link, "Accept": "application/ld+json"})
    assert compact.status_code == 200, compact.text
    body = compact.json()
    assert body["entities"] == [{"type": "Room"}]
    assert body["watchedAttributes"] == ["temp"]
    assert body["@context"] == context_url
    assert compact.headers["content-type"] == "application/ld+json"


def test_list_pages_with_limit_offset_count_and_links(tmp_path: Path) -> None:
    with running_broker(tmp_path) as broker:
        ids = [post(broker, minimal()).headers["location"].rsplit("/", 1)[-1] for _ in range(3)]
        everything = broker.client.get(f"{API}/subscriptions", params={"count": "true"})
        assert [s["id"] for s in everything.json()] == ids
        assert everything.headers["ngsild-results-count"] == "3"

        middle = broker.client.get(f"{API}/subscriptions", params={"limit": 1, "offset": 1})
        assert [s["id"] for s in middle.json()] == ids[1:2]
        links = middle.headers["link"]
        assert '</ngsi-ld/v1/subscriptions?limit=1&offset=0>;rel="prev"' in links
        assert '</ngsi-ld/v1/subscriptions?limit=1&offset=2>;rel="next"' in links

        assert broker.client.get(f"{API}/subscriptions", params={"limit": 1001}).status_code == 400
        assert broker.client.get(f"{API}/subscriptions", params={"limit": 0}).status_code == 400
        only_count = broker.client.get(f"{API}/subscriptions", params={"limit": 0, "count": "true"})
        assert only_count.json() == []
        assert only_count.headers["ngsild-results-count"] == "3"


def test_tenants_are_separate(broker: RunningBroker) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    created = post(broker, minimal(), **{"NGSILD-Tenant": tenant})
    assert created.status_code == 201
    assert created.headers["ngsild-tenant"] == tenant
    location = created.headers["location"]
    assert broker.client.get(location).status_code == 404
    fetched = broker.client.get(location, headers={"NGSILD-Tenant": tenant})
    assert fetched.status_code == 200
    assert (
        broker.client.get(f"{API}/subscriptions", headers={"NGSILD-Tenant": "nobody"}).status_code
        == 404
    )


def test_retrieve_errors(broker: RunningBroker) -> None:
    missing = broker.client.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:missing")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/ResourceNotFound")
    invalid = broker.client.get(f"{API}/subscriptions/InvalidUri")
    assert invalid.status_code == 400
    assert invalid.json()["type"].endswith("/BadRequestData")
    assert broker.client.delete(f"{API}/subscriptions/").status_code == 405


def test_sys_attrs_show_created_and_modified(broker: RunningBroker) -> None:
    location = post(broker, minimal()).headers["location"]
    body = broker.client.get(location, params={"options": "sysAttrs"}).json()
    assert body["createdAt"].endswith("Z")
    assert body["modifiedAt"] == body["createdAt"]
    assert "createdAt" not in broker.client.get(location).json()


def test_patch_replaces_members_and_keeps_the_rest(broker: RunningBroker) -> None:
    location = post(broker, minimal(description="before", q="a>1")).headers["location"]
    patch = broker.client.patch(
        location,
        json={"description": "after", "q": None, "watchedAttributes": ["a"], "throttling": 5},
        headers={"Content-Type": "application/json"},
    )
    assert patch.status_code == 204, patch.text
    body = broker.client.get(location, params={"options": "sysAttrs"}).json()
    assert body["description"] == "after"
    assert "q" not in body
    assert body["watchedAttributes"] == ["a"]
    assert body["throttling"] == 5
    assert body["entities"] == [{"type": "Sensor"}]
    assert body["modifiedAt"] >= body["createdAt"]


@pytest.mark.parametrize(
    "fragment",
    [
        {"notification": {"format": "keyValues"}},
        {"notification": {"format": "keyValues", "endpoint": None}},
        {"notification": None},
        {"type": "Registration"},
        {"expiresAt": "2000-01-01T00:00:00Z"},
        {"id": "urn:ngsi-ld:Subscription:other"},
        {"throttling": 10, "timeInterval": 5},
    ],
)
def test_invalid_patches_are_400(broker: RunningBroker, fragment: dict[str, Any]) -> None:
    location = post(broker, minimal()).headers["location"]
    response = broker.client.patch(
        location, json=fragment, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["type"].endswith("/BadRequestData")


def test_status_follows_is_active_and_expires_at(broker: RunningBroker) -> None:
    location = post(broker, minimal()).headers["location"]
    json = {"Content-Type": "application/json"}
    assert broker.client.patch(location, json={"isActive": False}, headers=json).status_code == 204
    assert broker.client.get(location).json()["status"] == "paused"
    assert broker.client.patch(location, json={"isActive": True}, headers=json).status_code == 204
    assert broker.client.get(location).json()["status"] == "active"

    soon = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert broker.client.patch(location, json={"expiresAt": soon}, headers=json).status_code == 204
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while broker.client.get(location).json()["status"] != "expired":
        assert datetime.now(UTC) < deadline, "the subscription never expired"
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert broker.client.patch(location, json={"expiresAt": later}, headers=json).status_code == 204
    assert broker.client.get(location).json()["status"] == "active"


def test_delete_then_gone(broker: RunningBroker) -> None:
    location = post(broker, minimal()).headers["location"]
    assert broker.client.delete(location).status_code == 204
    assert broker.client.get(location).status_code == 404
    assert broker.client.delete(location).status_code == 404


def test_allow_list_restricts_notification_hosts(tmp_path: Path) -> None:
    with running_broker(tmp_path, allow_hosts=["127.0.0.1", "*.city.example"]) as broker:
        assert post(broker, minimal()).status_code == 201
        ok = minimal(notification={"endpoint": {"uri": "https://hub.city.example/n"}})
        assert post(broker, ok).status_code == 201
        refused = post(broker, minimal(notification={"endpoint": {"uri": "http://evil.example/n"}}))
        assert refused.status_code == 400
        assert "evil.example" in refused.json()["detail"]


def test_subscriptions_and_counters_survive_a_restart(tmp_path: Path) -> None:
    kind = unique_type()
    with receiver() as rx:
        with running_broker(tmp_path) as broker:
            broker.create_entity(
                {"id": "urn:ngsi-ld:Sensor:r1", "type": kind, "v": {"type": "Property", "value": 1}}
            )
            sid = broker.subscribe(
                {
                    "entities": [{"type": kind}],
                    "description": "kept",
                    "notification": {"endpoint": {"uri": rx.url}},
                }
            )
            tenant_sid = broker.subscribe(
                {"entities": [{"type": kind}], "notification": {"endpoint": {"uri": rx.url}}},
                tenant="elsewhere",
            )
            broker.patch_attrs("urn:ngsi-ld:Sensor:r1", {"v": {"type": "Property", "value": 2}})
            rx.wait(1)
            body = broker.client.get(f"{API}/subscriptions/{sid}").json()
            assert body["notification"]["timesSent"] == 1
        with running_broker(tmp_path) as broker:
            body = broker.client.get(f"{API}/subscriptions/{sid}").json()
            assert body["description"] == "kept"
            assert body["notification"]["timesSent"] == 1
            assert body["notification"]["status"] == "ok"
            other = broker.client.get(
                f"{API}/subscriptions/{tenant_sid}", headers={"NGSILD-Tenant": "elsewhere"}
            )
            assert other.status_code == 200
            broker.patch_attrs("urn:ngsi-ld:Sensor:r1", {"v": {"type": "Property", "value": 3}})
            (notification,) = rx.wait(1)
            assert notification.body["subscriptionId"] == sid
            assert notification.body["data"][0]["v"]["value"] == 3
