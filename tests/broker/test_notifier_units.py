"""The notifier's pure parts: which triggers a change raises, how deleted attributes and previous
values appear, type selections, subscription documents and their rendering."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ngsi._context import Context
from ngsi._errors import BadRequestData
from ngsi.broker._events import EntityChange
from ngsi.broker._notifier import _ChangeRenderer, change_events
from ngsi.broker._subscriptions_model import (
    merge_fragment,
    render_subscription,
    triggers_of,
    type_groups,
    validate_subscription,
)

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NAME = "https://example.org/name"
TEMP = "https://example.org/temperature"


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **extra}


def updated(before: dict[str, Any], after: dict[str, Any], changed: set[str]) -> EntityChange:
    return EntityChange(
        tenant=None,
        kind="updated",
        entity_id="urn:ngsi-ld:Building:1",
        entity_types=("https://example.org/Building",),
        before=before,
        after=after,
        changed_attributes=frozenset(changed),
        at=AT,
    )


def building(**attrs: Any) -> dict[str, Any]:
    return {"id": "urn:ngsi-ld:Building:1", "type": "https://example.org/Building", **attrs}


def test_events_of_creation_deletion_and_updates() -> None:
    doc = building(**{NAME: prop("Tower"), TEMP: prop(20)})
    created = EntityChange(
        tenant=None,
        kind="created",
        entity_id=doc["id"],
        entity_types=(doc["type"],),
        before=None,
        after=doc,
        changed_attributes=frozenset({NAME, TEMP}),
        at=AT,
    )
    assert change_events(created) == (
        frozenset({"entityCreated"}),
        {NAME: {"attributeCreated"}, TEMP: {"attributeCreated"}},
    )
    deleted = EntityChange(
        tenant=None,
        kind="deleted",
        entity_id=doc["id"],
        entity_types=(doc["type"],),
        before=doc,
        after=None,
        changed_attributes=frozenset({NAME, TEMP}),
        at=AT,
    )
    assert change_events(deleted)[0] == frozenset({"entityDeleted"})

    extra = "https://example.org/extra"
    change = updated(
        doc,
        building(**{NAME: prop("Tour"), extra: prop(1)}),
        {NAME, TEMP, extra},
    )
    assert change_events(change)[1] == {
        NAME: {"attributeUpdated"},
        TEMP: {"attributeDeleted"},
        extra: {"attributeCreated"},
    }


def test_instances_count_by_dataset_id() -> None:
    french = "urn:ngsi-ld:Dataset:fr"
    before = building(**{NAME: [prop("Eiffel Tower"), prop("Tour Eiffel", datasetId=french)]})
    after = building(**{NAME: prop("Eiffel Tower")})
    assert change_events(updated(before, after, {NAME}))[1] == {
        NAME: {"attributeUpdated", "attributeDeleted"}
    }


def test_a_deleted_instance_shows_as_null_beside_the_others() -> None:
    french = "urn:ngsi-ld:Dataset:fr"
    before = building(**{NAME: [prop("Eiffel Tower"), prop("Tour Eiffel", datasetId=french)]})
    after = building(**{NAME: prop("Eiffel Tower")})
    doc = _ChangeRenderer(updated(before, after, {NAME}))._doc(False, frozenset({NAME}))
    assert doc[NAME] == [
        prop("Eiffel Tower"),
        {
            "type": "Property",
            "datasetId": french,
            "value": "urn:ngsi-ld:null",
            "deletedAt": "2024-05-01T12:00:00.000Z",
        },
    ]


def test_a_whole_deleted_attribute_is_one_null_with_its_previous_value() -> None:
    before = building(
        **{
            NAME: {"type": "LanguageProperty", "languageMap": {"fr": "Tour", "en": "Tower"}},
            TEMP: prop(20),
        }
    )
    after = building(**{TEMP: prop(20)})
    doc = _ChangeRenderer(updated(before, after, {NAME}))._doc(True, frozenset({NAME}))
    assert doc[NAME] == {
        "type": "LanguageProperty",
        "languageMap": {"@none": "urn:ngsi-ld:null"},
        "previousLanguageMap": {"fr": "Tour", "en": "Tower"},
        "deletedAt": "2024-05-01T12:00:00.000Z",
    }


def test_a_deleted_entity_keeps_only_what_was_asked() -> None:
    before = building(**{NAME: prop("Tower"), TEMP: prop(20)}, createdAt="x", modifiedAt="y")
    change = EntityChange(
        tenant=None,
        kind="deleted",
        entity_id=before["id"],
        entity_types=(before["type"],),
        before=before,
        after=None,
        changed_attributes=frozenset({NAME, TEMP}),
        at=AT,
    )
    renderer = _ChangeRenderer(change)
    assert set(renderer._doc(False, frozenset())) == {"id", "type", "createdAt", "modifiedAt"}
    watched = renderer._doc(False, frozenset({NAME}))
    assert watched[NAME]["value"] == "urn:ngsi-ld:null"
    assert TEMP not in watched
    everything = renderer._doc(True, frozenset())
    assert everything[TEMP]["previousValue"] == 20
    assert everything[NAME]["value"] == "urn:ngsi-ld:null"


@pytest.mark.parametrize(
    ("text", "groups"),
    [
        ("Building", [["Building"]]),
        ("(Building|Tower)", [["Building"], ["Tower"]]),
        ("A,B;C", [["A"], ["B", "C"]]),
        ("(A,B);C", [["A", "C"], ["B", "C"]]),
    ],
)
def test_type_selections(text: str, groups: list[list[str]]) -> None:
    assert type_groups({"type": text}) == groups


def context() -> Context:
    return Context.from_entries([{"Building": "https://example.org/Building", "name": NAME}])


def document(**extra: Any) -> dict[str, Any]:
    body = {
        "type": "Subscription",
        "id": "urn:ngsi-ld:Subscription:1",
        "entities": [{"type": "(Building|Tower)"}],
        "watchedAttributes": ["name"],
        "notification": {"attributes": ["name"], "endpoint": {"uri": "http://h/n"}},
        **extra,
    }
    return validate_subscription(body, context(), now=AT)


def test_documents_are_expanded_and_render_compacted() -> None:
    doc = document()
    assert doc["entities"] == [
        {
            "type": "(https://example.org/Building|https://uri.etsi.org/ngsi-ld/default-context/Tower)"
        }
    ]
    assert doc["watchedAttributes"] == [NAME]
    shown = render_subscription(
        doc, context(), status="active", notification_status={"timesSent": 2}
    )
    assert shown["entities"] == [{"type": "(Building|Tower)"}]
    assert shown["watchedAttributes"] == ["name"]
    assert shown["notification"]["attributes"] == ["name"]
    assert shown["notification"]["timesSent"] == 2
    assert shown["notificationTrigger"] == ["attributeCreated", "attributeUpdated"]


def test_triggers_unfold_entity_updated() -> None:
    assert triggers_of(document()) == frozenset({"attributeCreated", "attributeUpdated"})
    assert triggers_of(document(notificationTrigger=["entityUpdated"])) == frozenset(
        {"entityUpdated", "attributeCreated", "attributeUpdated", "attributeDeleted"}
    )


def test_merge_replaces_members_and_checks_the_result() -> None:
    merged = merge_fragment(
        document(), {"watchedAttributes": None, "timeInterval": 60}, context(), now=AT
    )
    assert "watchedAttributes" not in merged
    assert merged["timeInterval"] == 60
    with pytest.raises(BadRequestData, match="timeInterval"):
        merge_fragment(document(), {"timeInterval": 60}, context(), now=AT)
    with pytest.raises(BadRequestData, match="entities"):
        merge_fragment(document(), {"entities": None, "watchedAttributes": None}, context(), now=AT)
