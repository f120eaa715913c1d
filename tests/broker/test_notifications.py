"""Notifications over real HTTP: matching rules, payloads, triggers, throttling, periodic
notifications, status counters, retries and isolation of dead endpoints."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.broker.test_notif_support import (
    API,
    CORE,
    Receiver,
    RunningBroker,
    receiver,
    running_broker,
    silent_port,
)

LINK_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    with running_broker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


@pytest.fixture
def kind() -> str:
    """An entity type no other test uses (the module shares one broker)."""
    return f"Sensor{uuid.uuid4().hex[:8]}"


def sensor(kind: str, number: int = 1, **attrs: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": f"urn:ngsi-ld:{kind}:{number}", "type": kind}
    entity["temperature"] = {"type": "Property", "value": 20}
    for name, value in attrs.items():
        entity[name] = value
    return entity


def subscription(kind: str, rx: Receiver, **extra: Any) -> dict[str, Any]:
    notification = extra.pop("notification", {})
    notification.setdefault("endpoint", {}).setdefault("uri", rx.url)
    return {"entities": [{"type": kind}], "notification": notification, **extra}


def set_temperature(broker: RunningBroker, kind: str, value: Any, number: int = 1) -> None:
    broker.patch_attrs(
        f"urn:ngsi-ld:{kind}:{number}", {"temperature": {"type": "Property", "value": value}}
    )


def test_an_update_notifies_with_the_whole_entity(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    broker.create_entity(sensor(kind, humidity={"type": "Property", "value": 40}))
    sid = broker.subscribe(subscription(kind, rx))
    set_temperature(broker, kind, 21.5)
    (got,) = rx.wait(1)
    body = got.body
    assert body["id"].startswith("urn:ngsi-ld:Notification:")
    assert body["type"] == "Notification"
    assert body["subscriptionId"] == sid
    assert datetime.fromisoformat(body["notifiedAt"].replace("Z", "+00:00")).tzinfo is not None
    assert body["data"] == [
        {
            "id": f"urn:ngsi-ld:{kind}:1",
            "type": kind,
            "temperature": {"type": "Property", "value": 21.5},
            "humidity": {"type": "Property", "value": 40},
        }
    ]
    assert got.headers["content-type"] == "application/json"
    assert got.headers["link"] == f"<{CORE}>; {LINK_REL}"
    assert "ngsild-tenant" not in got.headers
    rx.none_within(0.3)


def test_receiver_info_and_tenant_become_headers(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    tenant = f"city{uuid.uuid4().hex[:6]}"
    broker.create_entity(sensor(kind), tenant=tenant)
    info = [{"key": "X-Auth-Token", "value": "s3cret"}, {"key": "X-Source", "value": "hub"}]
    broker.subscribe(
        subscription(kind, rx, notification={"endpoint": {"receiverInfo": info}}), tenant=tenant
    )
    broker.patch_attrs(
        f"urn:ngsi-ld:{kind}:1",
        {"temperature": {"type": "Property", "value": 1}},
        headers={"NGSILD-Tenant": tenant},
    )
    (got,) = rx.wait(1)
    assert got.headers["x-auth-token"] == "s3cret"
    assert got.headers["x-source"] == "hub"
    assert got.headers["ngsild-tenant"] == tenant


def test_json_ld_endpoints_get_the_context_in_each_entity(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    broker.create_entity(sensor(kind))
    broker.subscribe(
        subscription(kind, rx, notification={"endpoint": {"accept": "application/ld+json"}})
    )
    set_temperature(broker, kind, 3)
    (got,) = rx.wait(1)
    assert got.headers["content-type"] == "application/ld+json"
    assert "link" not in got.headers
    assert got.body["data"][0]["@context"] == CORE


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("keyValues", {"temperature": 7, "unit": "C"}),
        ("concise", {"temperature": 7, "unit": "C"}),
        (
            "normalized",
            {
                "temperature": {"type": "Property", "value": 7},
                "unit": {"type": "Property", "value": "C"},
            },
        ),
    ],
)
def test_formats(
    broker: RunningBroker, rx: Receiver, kind: str, fmt: str, expected: dict[str, Any]
) -> None:
    broker.create_entity(sensor(kind, unit={"type": "Property", "value": "C"}))
    broker.subscribe(subscription(kind, rx, notification={"format": fmt}))
    set_temperature(broker, kind, 7)
    (got,) = rx.wait(1)
    entity = got.body["data"][0]
    assert {k: v for k, v in entity.items() if k not in ("id", "type")} == expected


def test_attributes_projection_and_sys_attrs(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    broker.create_entity(sensor(kind, unit={"type": "Property", "value": "C"}))
    broker.subscribe(
        subscription(kind, rx, notification={"attributes": ["unit"], "sysAttrs": True})
    )
    set_temperature(broker, kind, 8)
    (got,) = rx.wait(1)
    entity = got.body["data"][0]
    assert set(entity) == {"id", "type", "unit", "createdAt", "modifiedAt"}
    assert set(entity["unit"]) == {"type", "value", "createdAt", "modifiedAt"}


def test_notifications_use_the_subscription_context(broker: RunningBroker, rx: Receiver) -> None:
    context = {
        "Meter": "https://example.org/city#WaterMeter",
        "flow": "https://example.org/city#flowRate",
    }
    broker.create_entity(
        {
            "id": "urn:ngsi-ld:WaterMeter:ctx1",
            "type": "https://example.org/city#WaterMeter",
            "https://example.org/city#flowRate": {"type": "Property", "value": 1},
        }
    )
    response = broker.client.post(
        f"{API}/subscriptions",
        json={
            "type": "Subscription",
            "entities": [{"type": "Meter"}],
            "watchedAttributes": ["flow"],
            "notification": {"endpoint": {"uri": rx.url, "accept": "application/ld+json"}},
            "@context": [context],
        },
        headers={"Content-Type": "application/ld+json"},
    )
    assert response.status_code == 201, response.text
    broker.patch_attrs(
        "urn:ngsi-ld:WaterMeter:ctx1",
        {"https://example.org/city#flowRate": {"type": "Property", "value": 2}},
    )
    (got,) = rx.wait(1)
    entity = got.body["data"][0]
    assert entity["type"] == "Meter"
    assert entity["flow"] == {"type": "Property", "value": 2}
    assert entity["@context"] == context


def test_type_id_and_id_pattern_select_entities(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    other = f"Other{uuid.uuid4().hex[:6]}"
    for number in (1, 2, 30):
        broker.create_entity(sensor(kind, number))
    broker.create_entity(sensor(other, 1))
    broker.subscribe(
        {
            "entities": [
                {"type": kind, "id": f"urn:ngsi-ld:{kind}:1"},
                {"type": kind, "idPattern": f"urn:ngsi-ld:{kind}:3.*"},
            ],
            "notification": {"endpoint": {"uri": rx.url}, "format": "keyValues"},
        }
    )
    for number in (1, 2, 30):
        set_temperature(broker, kind, number, number=number)
    set_temperature(broker, other, 5)
    got = rx.wait_entities(2)
    assert sorted(entity["id"] for entity in got) == [
        f"urn:ngsi-ld:{kind}:1",
        f"urn:ngsi-ld:{kind}:30",
    ]
    rx.none_within(0.3)


def test_type_selection_expression(broker: RunningBroker, rx: Receiver, kind: str) -> None:
    tower = f"Tower{uuid.uuid4().hex[:6]}"
    broker.subscribe(
        {
            "entities": [{"type": f"({kind}|{tower})"}],
            "notificationTrigger": ["entityCreated"],
            "notification": {"endpoint": {"uri": rx.url}},
        }
    )
    broker.create_entity(sensor(tower))
    broker.create_entity(sensor(f"Unrelated{uuid.uuid4().hex[:6]}"))
    (got,) = rx.wait(1)
    assert got.body["data"][0]["type"] == tower
    rx.none_within(0.3)


def test_watched_attributes(broker: RunningBroker, rx: Receiver, kind: str) -> None:
    broker.create_entity(sensor(kind, battery={"type": "Property", "value": 90}))
    broker.subscribe(subscription(kind, rx, watchedAttributes=["battery"]))
    set_temperature(broker, kind, 30)
    rx.none_within(0.4)
    broker.patch_attrs(f"urn:ngsi-ld:{kind}:1", {"battery": {"type": "Property", "value": 80}})
    (got,) = rx.wait(1)
    assert got.body["data"][0]["battery"]["value"] == 80


def test_subscription_by_watched_attributes_only(broker: RunningBroker, rx: Receiver) -> None:
    name = f"level{uuid.uuid4().hex[:6]}"
    broker.subscribe({"watchedAttributes": [name], "notification": {"endpoint": {"uri": rx.url}}})
    kind = f"Any{uuid.uuid4().hex[:6]}"
    broker.create_entity(
        {"id": f"urn:ngsi-ld:{kind}:1", "type": kind, name: {"type": "Property", "value": 1}}
    )
    (got,) = rx.wait(1)
    assert got.body["data"][0][name]["value"] == 1


def test_q_holds_on_the_new_state(broker: RunningBroker, rx: Receiver, kind: str) -> None:
    broker.create_entity(sensor(kind, name={"type": "Property", "value": "Eiffel Tower"}))
    broker.subscribe(subscription(kind, rx, q='temperature>25;name=="Eiffel%20Tower"'))
    set_temperature(broker, kind, 24)
    rx.none_within(0.4)
    set_temperature(broker, kind, 26)
    (got,) = rx.wait(1)
    assert got.body["data"][0]["temperature"]["value"] == 26


def test_geoq_near_notifies_only_inside_the_radius(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    # Alexanderplatz; one sensor 300 m away, one about 1.3 km away.
    here = [13.4132, 52.5219]
    broker.create_entity(
        sensor(
            kind,
            1,
            location={
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [13.4176, 52.5219]},
            },
        )
    )
    broker.create_entity(
        sensor(
            kind,
            2,
            location={
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [13.4132, 52.5336]},
            },
        )
    )
    broker.subscribe(
        subscription(
            kind,
            rx,
            geoQ={"geometry": "Point", "coordinates": here, "georel": "near;maxDistance==1000"},
        )
    )
    set_temperature(broker, kind, 1, number=2)
    set_temperature(broker, kind, 1, number=1)
    (got,) = rx.wait(1)
    assert got.body["data"][0]["id"] == f"urn:ngsi-ld:{kind}:1"
    rx.none_within(0.3)


def test_paused_and_expired_subscriptions_stay_silent(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    broker.create_entity(sensor(kind))
    sid = broker.subscribe(subscription(kind, rx, isActive=False))
    set_temperature(broker, kind, 2)
    rx.none_within(0.4)
    expires = datetime.now(UTC) + timedelta(milliseconds=1500)
    soon = expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch = broker.client.patch(
        f"{API}/subscriptions/{sid}",
        json={"isActive": True, "expiresAt": soon},
        headers={"Content-Type": "application/json"},
    )
    assert patch.status_code == 204
    set_temperature(broker, kind, 3)
    rx.wait(1)
    time.sleep(max((expires - datetime.now(UTC)).total_seconds(), 0) + 0.1)
    set_temperature(broker, kind, 4)
    rx.none_within(0.4)


def test_entity_creation_notifies_default_subscriptions(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    broker.subscribe(subscription(kind, rx))
    broker.create_entity(sensor(kind))
    (got,) = rx.wait(1)
    assert got.body["data"][0]["temperature"]["value"] == 20


def test_entity_created_trigger_ignores_updates(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    broker.subscribe(subscription(kind, rx, notificationTrigger=["entityCreated"]))
    broker.create_entity(sensor(kind))
    rx.wait(1)
    set_temperature(broker, kind, 9)
    rx.none_within(0.4)


def test_entity_deletion_notifies_id_type_and_deleted_at(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    broker.create_entity(sensor(kind))
    broker.subscribe(
        subscription(
            kind, rx, notificationTrigger=["entityDeleted"], notification={"format": "keyValues"}
        )
    )
    assert broker.client.delete(f"{API}/entities/urn:ngsi-ld:{kind}:1").status_code == 204
    (got,) = rx.wait(1)
    (entity,) = got.body["data"]
    assert set(entity) == {"id", "type", "deletedAt"}
    assert entity["id"] == f"urn:ngsi-ld:{kind}:1"
    assert entity["type"] == kind


def test_attribute_deletion_notifies_a_null_value(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    broker.create_entity(sensor(kind, name={"type": "Property", "value": "gauge"}))
    broker.subscribe(
        subscription(kind, rx, watchedAttributes=["name"], notificationTrigger=["attributeDeleted"])
    )
    set_temperature(broker, kind, 5)
    assert (
        broker.client.delete(f"{API}/entities/urn:ngsi-ld:{kind}:1/attrs/temperature").status_code
        == 204
    )
    rx.none_within(0.4)
    assert (
        broker.client.delete(f"{API}/entities/urn:ngsi-ld:{kind}:1/attrs/name").status_code == 204
    )
    (got,) = rx.wait(1)
    entity = got.body["data"][0]
    assert entity["name"] == {"type": "Property", "value": "urn:ngsi-ld:null"}
    assert "temperature" not in entity


def test_show_changes_adds_previous_values(broker: RunningBroker, rx: Receiver, kind: str) -> None:
    broker.subscribe(
        subscription(
            kind,
            rx,
            notificationTrigger=["entityCreated", "attributeUpdated"],
            notification={"showChanges": True},
        )
    )
    broker.create_entity(
        sensor(kind, near={"type": "Relationship", "object": "urn:ngsi-ld:Place:1"})
    )
    (created,) = rx.wait(1)
    assert "previousValue" not in str(created.body)
    broker.patch_attrs(
        f"urn:ngsi-ld:{kind}:1",
        {
            "temperature": {"type": "Property", "value": 25},
            "near": {"type": "Relationship", "object": "urn:ngsi-ld:Place:2"},
        },
    )
    (updated,) = rx.wait(1)
    entity = updated.body["data"][0]
    assert entity["temperature"] == {"type": "Property", "value": 25, "previousValue": 20}
    assert entity["near"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:Place:2",
        "previousObject": "urn:ngsi-ld:Place:1",
    }


def test_throttling_drops_notifications_inside_the_window(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    broker.create_entity(sensor(kind))
    broker.subscribe(subscription(kind, rx, throttling=1))
    for value in range(5):
        set_temperature(broker, kind, value)
    (first,) = rx.wait(1)
    assert first.body["data"][0]["temperature"]["value"] == 0
    rx.none_within(0.5)
    time.sleep(0.6)
    set_temperature(broker, kind, 99)
    (second,) = rx.wait(1)
    assert second.body["data"][0]["temperature"]["value"] == 99


def test_periodic_notifications_carry_all_matching_entities(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    broker.create_entity(sensor(kind, 1))
    broker.create_entity(sensor(kind, 2, temperature={"type": "Property", "value": 30}))
    broker.subscribe(subscription(kind, rx, timeInterval=1, q="temperature>25"))
    rx.none_within(0.7)
    first, second = rx.wait(2, timeout=4)
    for got in (first, second):
        assert [e["id"] for e in got.body["data"]] == [f"urn:ngsi-ld:{kind}:2"]
    assert 0.5 < second.at - first.at < 2.5


def test_status_counters_after_success_and_failure(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    broker.create_entity(sensor(kind))
    sid = broker.subscribe(subscription(kind, rx))
    set_temperature(broker, kind, 1)
    rx.wait(1)
    ok = broker.client.get(f"{API}/subscriptions/{sid}").json()["notification"]
    assert ok["status"] == "ok"
    assert ok["timesSent"] == 1
    assert ok["lastSuccess"] == ok["lastNotification"]
    assert "lastFailure" not in ok

    rx.status = 500
    set_temperature(broker, kind, 2)
    rx.wait(3)  # the first attempt and the two retries of the test broker
    deadline = time.monotonic() + 3
    while True:
        failed = broker.client.get(f"{API}/subscriptions/{sid}").json()["notification"]
        if failed.get("status") == "failed" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert failed["status"] == "failed"
    assert failed["timesSent"] == 2
    assert failed["timesFailed"] == 1
    assert failed["lastFailure"] >= failed["lastSuccess"]
    rx.none_within(0.3)


def test_a_failed_attempt_shows_at_once_and_a_successful_retry_clears_it(
    tmp_path_factory: pytest.TempPathFactory, rx: Receiver, kind: str
) -> None:
    with running_broker(tmp_path_factory.mktemp("slow"), retry_delays=(1.5,)) as slow:
        slow.create_entity(sensor(kind))
        sid = slow.subscribe(subscription(kind, rx))
        rx.status = 503
        set_temperature(slow, kind, 1)
        rx.wait(1)
        deadline = time.monotonic() + 1
        while True:
            retrying = slow.client.get(f"{API}/subscriptions/{sid}").json()["notification"]
            if retrying.get("status") == "failed" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert retrying["status"] == "failed"
        assert "lastFailure" in retrying
        assert retrying.get("timesSent", 0) == 0
        assert "timesFailed" not in retrying
        rx.status = 200
        (delivered,) = rx.wait(1, timeout=4)
        assert delivered.body["data"][0]["temperature"]["value"] == 1
        deadline = time.monotonic() + 2
        while True:
            done = slow.client.get(f"{API}/subscriptions/{sid}").json()["notification"]
            if done.get("status") == "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert done["status"] == "ok"
        assert done["timesSent"] == 1
        assert "timesFailed" not in done
        assert done["lastSuccess"] > done["lastFailure"]


def test_client_errors_are_not_retried(broker: RunningBroker, rx: Receiver, kind: str) -> None:
    broker.create_entity(sensor(kind))
    broker.subscribe(subscription(kind, rx))
    rx.status = 404
    set_temperature(broker, kind, 1)
    rx.wait(1)
    rx.none_within(0.4)


def test_a_deleted_subscription_stops_notifying(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    broker.create_entity(sensor(kind))
    sid = broker.subscribe(subscription(kind, rx))
    assert broker.client.delete(f"{API}/subscriptions/{sid}").status_code == 204
    set_temperature(broker, kind, 1)
    rx.none_within(0.4)


def test_backlog_is_batched_per_subscription_without_losing_changes(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    broker.create_entity(sensor(kind))
    broker.subscribe(subscription(kind, rx, notification={"format": "keyValues"}))
    rx.delay = 0.3
    for value in range(20):
        set_temperature(broker, kind, value)
    seen: list[int] = []
    while len(seen) < 20:
        (got,) = rx.wait(1, timeout=10)
        seen.extend(entity["temperature"] for entity in got.body["data"])
    assert seen == list(range(20))
    assert len(rx.got) < 20


def test_dead_endpoints_never_delay_a_healthy_one(tmp_path: Any) -> None:
    kind = "Meter"
    with (
        silent_port() as hanging,
        receiver() as healthy,
        running_broker(tmp_path, timeout=5.0, retry_delays=(5.0,)) as broker,
    ):
        broker.create_entity(sensor(kind))
        refused_port = hanging + 1 if hanging < 65000 else hanging - 1
        for uri in (
            f"http://127.0.0.1:{hanging}/n",
            f"http://127.0.0.1:{refused_port}/n",
            healthy.url,
        ):
            broker.subscribe(
                {"entities": [{"type": kind}], "notification": {"endpoint": {"uri": uri}}}
            )
        started = time.monotonic()
        for value in range(10):
            set_temperature(broker, kind, value)
        writes = time.monotonic() - started
        values: list[int] = []
        while len(values) < 10:
            for got in healthy.wait(1, timeout=3):
                values.extend(e["temperature"]["value"] for e in got.body["data"])
        assert values == list(range(10))
        # Everything arrived long before the hanging endpoint's first attempt could time out.
        assert time.monotonic() - started < 4.0
        assert writes < 4.0


def test_changes_committed_before_a_subscription_never_notify_it(
    broker: RunningBroker, rx: Receiver, kind: str
) -> None:
    entities = [sensor(kind, number) for number in range(200)]
    created = broker.client.post(f"{API}/entityOperations/create", json=entities)
    assert created.status_code == 201, created.text
    broker.subscribe(subscription(kind, rx))
    set_temperature(broker, kind, 77, number=5)
    (got,) = rx.wait(1)
    assert got.body["data"][0]["id"] == f"urn:ngsi-ld:{kind}:5"
    rx.none_within(0.5)


def test_json_notifications_link_the_one_user_context(broker: RunningBroker, rx: Receiver) -> None:
    hosted = broker.client.post(
        f"{API}/jsonldContexts",
        json={
            "@context": {
                "Pump": "https://example.org/water#Pump",
                "rate": "https://example.org/water#rate",
            }
        },
    )
    assert hosted.status_code == 201, hosted.text
    url = broker.url + hosted.headers["location"]
    broker.create_entity(
        {
            "id": "urn:ngsi-ld:Pump:link1",
            "type": "https://example.org/water#Pump",
            "https://example.org/water#rate": {"type": "Property", "value": 1},
        }
    )
    response = broker.client.post(
        f"{API}/subscriptions",
        json={
            "type": "Subscription",
            "entities": [{"type": "Pump"}],
            "notification": {"endpoint": {"uri": rx.url}},
            "@context": [url, CORE],
        },
        headers={"Content-Type": "application/ld+json"},
    )
    assert response.status_code == 201, response.text
    broker.patch_attrs(
        "urn:ngsi-ld:Pump:link1",
        {"https://example.org/water#rate": {"type": "Property", "value": 2}},
    )
    (got,) = rx.wait(1)
    assert got.headers["link"] == f"<{url}>; {LINK_REL}"
    assert got.body["data"][0]["rate"]["value"] == 2
    assert got.body["data"][0]["type"] == "Pump"


def test_cooldown_after_a_failure(broker: RunningBroker, rx: Receiver, kind: str) -> None:
    broker.create_entity(sensor(kind))
    broker.subscribe(subscription(kind, rx, notification={"endpoint": {"cooldown": 1000}}))
    rx.status = 400
    set_temperature(broker, kind, 1)
    rx.wait(1)
    rx.status = 200
    time.sleep(0.2)
    set_temperature(broker, kind, 2)
    rx.none_within(0.5)
    time.sleep(0.5)
    set_temperature(broker, kind, 3)
    (got,) = rx.wait(1)
    assert got.body["data"][0]["temperature"]["value"] == 3
