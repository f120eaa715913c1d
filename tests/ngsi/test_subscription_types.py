"""Subscription and Notification types: the wire form Orion-LD speaks, both ways."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from ngsi._geoquery import parse_geoquery
from ngsi._subscription import Endpoint, Notification, Subscription, SubscriptionGeoQuery

FROM_BROKER: dict[str, Any] = {
    "id": "urn:ngsi-ld:Subscription:env-1",
    "type": "Subscription",
    "subscriptionName": "air quality to the environment office",
    "description": "NO2 above the limit",
    "entities": [
        {"type": "AirQualityObserved", "idPattern": "urn:ngsi-ld:AirQualityObserved:Ulm-.*"}
    ],
    "watchedAttributes": ["no2"],
    "q": "no2>40",
    "geoQ": {"geometry": "Point", "coordinates": [9.99, 48.4], "georel": "near;maxDistance==5000"},
    "isActive": True,
    "expiresAt": "2030-01-01T00:00:00.000Z",
    "throttling": 60,
    "lang": "de",
    "jsonldContext": "https://smartdatamodels.org/dataModel.Environment/context.jsonld",
    "notification": {
        "attributes": ["no2", "location"],
        "format": "keyValues",
        "sysAttrs": False,
        "showChanges": True,
        "endpoint": {
            "uri": "mqtt://mosquitto:1883/city/air",
            "accept": "application/json",
            "receiverInfo": [{"key": "X-Office", "value": "environment"}],
            "notifierInfo": [
                {"key": "MQTT-Version", "value": "mqtt5.0"},
                {"key": "MQTT-QoS", "value": "1"},
            ],
        },
        "status": "ok",
        "timesSent": 41,
        "timesFailed": 1,
        "lastNotification": "2025-03-01T12:00:00.000Z",
        "lastSuccess": "2025-03-01T12:00:00.000Z",
        "lastFailure": "2025-02-01T08:00:00.000Z",
        "consecutiveErrors": 0,
    },
    "status": "active",
    "createdAt": "2025-01-01T00:00:00.000Z",
    "origin": "cache",
}


def test_a_subscription_from_the_broker_keeps_every_member() -> None:
    subscription = Subscription.from_dict(FROM_BROKER)

    assert subscription.subscription_name == "air quality to the environment office"
    assert subscription.entities is not None
    assert subscription.entities[0].id_pattern == "urn:ngsi-ld:AirQualityObserved:Ulm-.*"
    assert subscription.geo_q == SubscriptionGeoQuery(
        geometry="Point", coordinates=[9.99, 48.4], georel="near;maxDistance==5000"
    )
    assert subscription.geo_q.to_geo_query() == parse_geoquery(FROM_BROKER["geoQ"])
    endpoint = subscription.notification.endpoint
    assert endpoint.notifier_info is not None
    assert [(p.key, p.value) for p in endpoint.notifier_info] == [
        ("MQTT-Version", "mqtt5.0"),
        ("MQTT-QoS", "1"),
    ]
    assert subscription.notification.times_sent == 41
    assert subscription.notification.last_success == datetime(2025, 3, 1, 12, tzinfo=UTC)
    assert subscription.status == "active"
    assert subscription.expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert subscription.to_dict(include_read_only=True)["origin"] == "cache"
    assert subscription.to_dict(include_read_only=True)["notification"]["consecutiveErrors"] == 0


def test_to_dict_leaves_out_what_the_broker_sets() -> None:
    body = Subscription.from_dict(FROM_BROKER).to_dict()

    assert "status" not in body
    assert "createdAt" not in body
    notification = body["notification"]
    for member in (
        "status",
        "timesSent",
        "timesFailed",
        "lastNotification",
        "lastSuccess",
        "lastFailure",
    ):
        assert member not in notification
    assert notification["endpoint"]["receiverInfo"] == [{"key": "X-Office", "value": "environment"}]
    assert body["subscriptionName"] == FROM_BROKER["subscriptionName"]
    assert body["expiresAt"] == "2030-01-01T00:00:00Z"
    assert body["watchedAttributes"] == ["no2"]
    assert "context" not in body
    assert "@context" not in body


def test_snake_case_construction_and_a_q_tree() -> None:
    class QTree:
        def __str__(self) -> str:
            return "intensity>100;occupancy<0.5"

    subscription = Subscription(
        entities=[{"type": "TrafficFlowObserved"}],
        q=QTree(),
        notification={"endpoint": Endpoint(uri="http://traffic.example/notify")},
        context="https://example.org/ctx.jsonld",
    )

    body = subscription.to_dict()
    assert body["q"] == "intensity>100;occupancy<0.5"
    assert body["@context"] == "https://example.org/ctx.jsonld"
    assert body == {
        "type": "Subscription",
        "entities": [{"type": "TrafficFlowObserved"}],
        "q": "intensity>100;occupancy<0.5",
        "notification": {"endpoint": {"uri": "http://traffic.example/notify"}},
        "@context": "https://example.org/ctx.jsonld",
    }


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({}, "needs `entities` or `watchedAttributes`"),
        ({"watchedAttributes": ["no2"], "timeInterval": 60}, "takes no `watchedAttributes`"),
        (
            {"entities": [{"type": "T"}], "timeInterval": 60, "throttling": 5},
            "takes no `throttling`",
        ),
        ({"entities": [{"type": "T"}], "throttling": 0}, "greater than 0"),
        (
            {
                "entities": [{"type": "T"}],
                "geoQ": {
                    "geometry": "Polygon",
                    "coordinates": [1, 2],
                    "georel": "near;maxDistance==10",
                },
            },
            "near",
        ),
    ],
)
def test_inconsistent_subscriptions_are_refused(members: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Subscription.from_dict({"notification": {"endpoint": {"uri": "http://x"}}, **members})


def test_a_subscription_needs_an_endpoint_uri() -> None:
    with pytest.raises(ValidationError, match="uri"):
        Subscription.from_dict({"entities": [{"type": "T"}], "notification": {"endpoint": {}}})


def test_a_notification_from_the_broker() -> None:
    notification = Notification.from_dict(
        {
            "id": "urn:ngsi-ld:Notification:1",
            "type": "Notification",
            "subscriptionId": "urn:ngsi-ld:Subscription:env-1",
            "notifiedAt": "2025-03-01T12:00:00.123Z",
            "data": [{"id": "urn:ngsi-ld:AirQualityObserved:Ulm-1", "type": "AirQualityObserved"}],
            "triggerReason": "entityUpdated",
        }
    )

    assert notification.subscription_id == "urn:ngsi-ld:Subscription:env-1"
    assert notification.notified_at == datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert notification.data[0]["id"] == "urn:ngsi-ld:AirQualityObserved:Ulm-1"
    body = notification.to_dict()
    assert body["triggerReason"] == "entityUpdated"
    assert body["subscriptionId"] == "urn:ngsi-ld:Subscription:env-1"
    with pytest.raises(ValidationError, match="subscriptionId"):
        Notification.from_dict({"id": "x", "notifiedAt": "2025-03-01T12:00:00Z"})


def test_a_geo_query_object_is_accepted_as_geo_q() -> None:
    query = parse_geoquery(
        georel="within", geometry="Polygon", coordinates=[[[9, 48], [10, 48], [10, 49], [9, 48]]]
    )

    subscription = Subscription(
        entities=[{"type": "ParkingSpot"}],
        geo_q=query,
        notification={"endpoint": {"uri": "http://x"}},
    )

    assert subscription.to_dict()["geoQ"] == query.to_object()
