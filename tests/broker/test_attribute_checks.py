"""The shortcut for common attribute instances accepts exactly what the full check accepts,
and stamps them the same way."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngsi._context import Context, expand_entity
from ngsi._errors import BadRequestData
from ngsi.broker._endpoints import _expand
from ngsi.broker._entities import NGSI_LD_NULL, _prepare, _prepare_simple

STAMP = "2025-02-01T10:00:00.000Z"

values = st.one_of(
    st.none(),
    st.just(NGSI_LD_NULL),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.just({"type": "Point", "coordinates": [6.78, 51.22]}),
    st.just({"type": "Point", "coordinates": [200, 51.22]}),
    st.just({"type": "LineString", "coordinates": [[6.7, 51.2], [6.8, 51.3]]}),
)
targets = st.one_of(
    st.just("urn:ngsi-ld:Device:1"),
    st.just(NGSI_LD_NULL),
    st.just("no-colon"),
    st.integers(),
    st.lists(st.just("urn:ngsi-ld:Device:1"), max_size=2),
)
times = st.one_of(st.just("2025-01-31T12:00:00Z"), st.just("yesterday"), st.integers())
odd_members = st.fixed_dictionaries(
    {},
    optional={
        "object": targets,
        "value": values,
        "datasetId": st.just("urn:ngsi-ld:Dataset:a"),
        "createdAt": st.just("2020-01-01T00:00:00Z"),
    },
)


@st.composite
def instances(draw: st.DrawFn, *, depth: int = 1) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Property", "Relationship", "GeoProperty", "Vocab", 3]))
    instance: dict[str, Any] = {"type": kind}
    if kind == "Relationship":
        instance["object"] = draw(targets)
    else:
        instance["value"] = draw(values)
    if draw(st.booleans()):
        instance["observedAt"] = draw(times)
    if draw(st.booleans()):
        instance["unitCode"] = "CEL"
    if draw(st.integers(0, 3)) == 0:
        instance.update(draw(odd_members))
    if depth and draw(st.integers(0, 2)) == 0:
        instance[draw(st.sampled_from(["snr", "gateway", "@note"]))] = draw(
            st.one_of(instances(depth=depth - 1), values)
        )
    return instance


WITHOUT_SUB_ATTRIBUTES = frozenset(
    {"type", "value", "object", "unitCode", "observedAt", "createdAt", "modifiedAt"}
)


def full_check(instance: Any) -> dict[str, Any] | str:
    try:
        return _prepare("temperature", instance, STAMP, where="entity 'x'")
    except BadRequestData as exc:
        return f"error: {exc.detail}"


@settings(max_examples=400)
@given(instances())
def test_the_shortcut_agrees_with_the_full_check(instance: dict[str, Any]) -> None:
    before = dict(instance)
    simple = _prepare_simple(instance, STAMP)
    assert instance == before  # the caller's instance is left as it was
    if simple is not None:
        assert simple == full_check(instance)
    # given up by its owner: stamped in place when it has no sub-attributes, the same result
    given = copy.deepcopy(before)
    owned = _prepare_simple(given, STAMP, owned=True)
    assert owned == simple
    if owned is None:
        assert given == before  # refused: left as it was for the full check
    elif owned.keys() <= WITHOUT_SUB_ATTRIBUTES:
        assert owned is given


@pytest.mark.parametrize(
    "instance",
    [
        {"type": "Property", "value": 21.5, "unitCode": "CEL", "observedAt": "2025-01-31T12:00Z"},
        {"type": "Relationship", "object": "urn:ngsi-ld:Device:1"},
        {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [6.78, 51.22]}},
        {"type": "Property", "value": -87, "snr": {"type": "Property", "value": 7.5}},
    ],
)
def test_the_common_instances_take_the_shortcut(instance: dict[str, Any]) -> None:
    simple = _prepare_simple(instance, STAMP)
    assert simple == full_check(instance)
    assert simple is not None
    assert simple["createdAt"] == simple["modifiedAt"] == STAMP


@pytest.mark.parametrize(
    "instance",
    [
        {"type": "Property", "value": 1, "@note": {"type": "Property", "value": 2}},
        {"type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:Dataset:a"},
        {"type": "Property", "value": 1, "createdAt": "2020-01-01T00:00:00Z"},
        {"type": "Property", "value": NGSI_LD_NULL},
        {"type": "Property", "value": 1, "snr": {"type": "Property", "value": NGSI_LD_NULL}},
        {"type": "Relationship", "object": ["urn:ngsi-ld:Device:1"]},
        {"type": "LanguageProperty", "languageMap": {"en": "x"}},
    ],
)
def test_the_rest_takes_the_full_check(instance: dict[str, Any]) -> None:
    assert _prepare_simple(instance, STAMP) is None


def test_sub_attributes_expand_as_the_general_path_does() -> None:
    context = Context.from_entries([{"@vocab": "https://example.org/"}])
    body: dict[str, Any] = {
        "id": "urn:ngsi-ld:Device:1",
        "type": "Device",
        "rssi": {
            "type": "Property",
            "value": -87,
            "snr": {"type": "Property", "value": 7.5, "unitCode": "2N"},
            "gateway": {"type": "Property", "value": "gw-1"},
        },
        "batteryLevel": {"type": "Property", "value": 0.9},
    }
    for _ in range(2):  # the second time every name is known to be good
        fast = _expand(body, context, where="entity 'urn:ngsi-ld:Device:1'")
        assert fast == expand_entity(body, context)
    assert fast["https://example.org/rssi"]["https://example.org/snr"]["value"] == 7.5
    assert body["rssi"]["snr"]["value"] == 7.5  # the body is left as it was
    assert "snr" in body["rssi"]
