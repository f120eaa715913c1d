"""The normalised form: what a broker adds or spells differently never shows as a change."""

from __future__ import annotations

from typing import Any

from agents.subscriptions import field_changes, mask_secrets, normalise

SENT: dict[str, Any] = {
    "type": "Subscription",
    "subscriptionName": "city/traffic/flow",
    "entities": [{"type": "TrafficFlowObserved"}, {"type": "ItemFlowObserved"}],
    "watchedAttributes": ["intensity", "occupancy"],
    "q": "intensity>=10",
    "geoQ": {"geometry": "Point", "coordinates": [13.4, 52.5], "georel": "near;maxDistance==500"},
    "throttling": 5,
    "notification": {
        "endpoint": {
            "uri": "http://x/n",
            "receiverInfo": [{"key": "B", "value": "2"}, {"key": "A", "value": "1"}],
        }
    },
}

AS_SHOWN: dict[str, Any] = {
    "id": "urn:ngsi-ld:Subscription:1",
    "type": "Subscription",
    "subscriptionName": "city/traffic/flow",
    "entities": [{"type": "ItemFlowObserved"}, {"type": "TrafficFlowObserved"}],
    "watchedAttributes": ["occupancy", "intensity"],
    "q": "intensity >= 10",
    "geoQ": {
        "geometry": "Point",
        "coordinates": "[13.4, 52.5]",
        "georel": "near;maxDistance==500.0",
        "geoproperty": "location",
    },
    "throttling": 5.0,
    "isActive": True,
    "status": "active",
    "origin": "cache",
    "createdAt": "2024-01-01T00:00:00Z",
    "notificationTrigger": ["attributeUpdated", "attributeCreated"],
    "notification": {
        "format": "normalized",
        "sysAttrs": False,
        "showChanges": False,
        "timesSent": 12,
        "lastSuccess": "2024-01-01T00:00:01Z",
        "status": "ok",
        "endpoint": {
            "uri": "http://x/n",
            "accept": "application/json",
            "receiverInfo": [{"key": "A", "value": "1"}, {"key": "B", "value": "2"}],
        },
    },
}


def test_broker_additions_and_spellings_are_not_changes() -> None:
    assert field_changes(normalise(AS_SHOWN), normalise(SENT)) == []


def test_real_differences_are_field_level_and_sorted() -> None:
    shown = dict(AS_SHOWN, q="intensity>=20", throttling=7)
    changes = field_changes(normalise(shown), normalise(SENT))
    assert [(c.path, c.old, c.new) for c in changes] == [
        ("q", "intensity>=20", "intensity>=10"),
        ("throttling", 7, 5),
    ]


def test_nested_members_are_compared_one_by_one() -> None:
    shown = {**AS_SHOWN, "notification": {**AS_SHOWN["notification"], "sysAttrs": True}}
    (change,) = field_changes(normalise(shown), normalise(SENT))
    assert (change.path, change.old, change.new, change.removes) == (
        "notification.sysAttrs",
        True,
        None,
        True,
    )


def test_is_active_is_compared_only_when_managed() -> None:
    paused = dict(AS_SHOWN, isActive=False)
    assert (
        field_changes(
            normalise(paused, compare_is_active=False), normalise(SENT, compare_is_active=False)
        )
        == []
    )
    (change,) = field_changes(normalise(paused), normalise(SENT))
    assert change.path == "isActive"


def test_a_trigger_other_than_the_default_is_a_change() -> None:
    shown = dict(AS_SHOWN, notificationTrigger=["entityCreated"])
    (change,) = field_changes(normalise(shown), normalise(SENT))
    assert change.path == "notificationTrigger"


def test_secrets_are_masked_with_a_fingerprint() -> None:
    masked = mask_secrets(SENT)
    pairs = masked["notification"]["endpoint"]["receiverInfo"]
    assert all(p["value"].startswith("•••• sha256:") for p in pairs)
    assert "1" not in [p["value"] for p in pairs]
    assert pairs[0]["value"] != pairs[1]["value"]
