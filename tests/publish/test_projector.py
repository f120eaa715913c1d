"""The projection of single entities: attributes, coordinates of every geometry type, device
identifiers, suppression; and the rule file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.publish import Projector, PublishRules, RulesError, load_rules, read_key

KEY = b"0123456789abcdef0123456789abcdef"
EUI = "70B3D57ED0000001"


def rules(**extra: Any) -> PublishRules:
    document: dict[str, Any] = {
        "target_tenant": "public",
        "coordinate_decimals": 3,
        "types": [
            {
                "type": "WeatherObserved",
                "attributes": ["temperature", "location", "refDevice", "area", "address"],
            },
            {
                "type": "CrowdFlowObserved",
                "attributes": ["peopleCount", "peopleCountAway", "location"],
                "suppress_below": {"peopleCount": 5, "peopleCountAway": 5},
            },
            {
                "type": "Device",
                "attributes": ["location", "devEUI", "locationHistory", "deviceState"],
                "coordinate_decimals": 2,
            },
        ],
    }
    document.update(extra)
    return PublishRules.from_mapping(document)


def weather(**attrs: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": f"urn:ngsi-ld:WeatherObserved:{EUI}",
        "type": "WeatherObserved",
        "temperature": {
            "type": "Property",
            "value": 21.5,
            "unitCode": "CEL",
            "observedAt": "2024-05-01T12:00:00Z",
            "rssi": {"type": "Property", "value": -80},
        },
        "relativeHumidity": {"type": "Property", "value": 0.5},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [6.7734567, 51.2277123]},
        },
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:{EUI}"},
        "createdAt": "2024-05-01T12:00:00Z",
    }
    entity.update(attrs)
    return entity


def test_only_listed_attributes_and_core_members_are_kept() -> None:
    public = Projector(rules(), key=KEY).project(weather())
    assert public is not None
    assert set(public) == {"id", "type", "temperature", "location"}
    assert public["temperature"] == {
        "type": "Property",
        "value": 21.5,
        "unitCode": "CEL",
        "observedAt": "2024-05-01T12:00:00Z",
    }
    assert public["location"]["value"] == {"type": "Point", "coordinates": [6.773, 51.228]}


def test_types_without_a_rule_are_not_published() -> None:
    projector = Projector(rules(), key=KEY)
    assert projector.project({"id": "urn:ngsi-ld:Parking:1", "type": "ParkingSpot"}) is None
    assert projector.project({"type": "WeatherObserved"}) is None


@pytest.mark.parametrize(
    ("geometry", "expected"),
    [
        ({"type": "Point", "coordinates": [6.77777, 51.22222]}, [6.778, 51.222]),
        (
            {"type": "LineString", "coordinates": [[6.77777, 51.22222], [6.11111, 51.99999]]},
            [[6.778, 51.222], [6.111, 52.0]],
        ),
        (
            {"type": "Polygon", "coordinates": [[[1.00049, 2.0], [3.0, 4.00051], [1.00049, 2.0]]]},
            [[[1.0, 2.0], [3.0, 4.001], [1.0, 2.0]]],
        ),
        ({"type": "MultiPoint", "coordinates": [[1.23456, 2.34567]]}, [[1.235, 2.346]]),
        (
            {"type": "MultiLineString", "coordinates": [[[1.23456, 2.0], [1.0, 2.34567]]]},
            [[[1.235, 2.0], [1.0, 2.346]]],
        ),
        (
            {
                "type": "MultiPolygon",
                "coordinates": [[[[0.12345, 0.0], [1.0, 1.0], [0.12345, 0.0]]]],
            },
            [[[[0.123, 0.0], [1.0, 1.0], [0.123, 0.0]]]],
        ),
    ],
)
def test_every_geometry_type_is_rounded(geometry: dict[str, Any], expected: Any) -> None:
    entity = weather(location={"type": "GeoProperty", "value": geometry})
    public = Projector(rules(), key=KEY).project(entity)
    assert public is not None
    assert public["location"]["value"]["coordinates"] == expected


def test_geometry_collections_bbox_and_location_like_properties_are_rounded() -> None:
    collection = {
        "type": "GeometryCollection",
        "geometries": [{"type": "Point", "coordinates": [6.77777, 51.22222]}],
        "bbox": [6.77777, 51.22222, 6.88888, 51.33333],
    }
    entity = weather(
        location={"type": "GeoProperty", "value": collection},
        area={"type": "Property", "value": {"latitude": 51.2277123, "longitude": 6.7734567}},
        address={"type": "Property", "value": {"geo": {"lat": 51.12345, "lng": 6.98765}}},
    )
    public = Projector(rules(), key=KEY).project(entity)
    assert public is not None
    assert public["location"]["value"]["geometries"][0]["coordinates"] == [6.778, 51.222]
    assert public["location"]["value"]["bbox"] == [6.778, 51.222, 6.889, 51.333]
    assert public["area"]["value"] == {"latitude": 51.228, "longitude": 6.773}
    assert public["address"]["value"] == {"geo": {"lat": 51.123, "lng": 6.988}}


def test_device_identifiers_are_removed_by_default() -> None:
    projector = Projector(rules(), key=KEY)
    public = projector.project(weather())
    assert public is not None
    assert "refDevice" not in public
    assert EUI not in str(public)
    assert re.fullmatch(r"urn:ngsi-ld:WeatherObserved:p[0-9a-f]{20}", public["id"])
    device = projector.project(
        {
            "id": f"urn:ngsi-ld:Device:{EUI}",
            "type": "Device",
            "devEUI": {"type": "Property", "value": EUI},
            "deviceState": {"type": "Property", "value": "active"},
            "locationHistory": {
                "type": "Property",
                "value": [{"longitude": 6.7734567, "latitude": 51.2277123, "validFrom": "x"}],
            },
        }
    )
    assert device is not None
    assert "devEUI" not in device
    assert device["locationHistory"]["value"] == [
        {"longitude": 6.77, "latitude": 51.23, "validFrom": "x"}
    ]
    assert EUI not in str(device)


def test_pseudonyms_are_stable_link_refdevice_to_the_device_and_depend_on_the_key() -> None:
    chosen = rules(device_identifiers="pseudonymize")
    projector = Projector(chosen, key=KEY)
    public = projector.project(weather())
    device = projector.project(
        {
            "id": f"urn:ngsi-ld:Device:{EUI}",
            "type": "Device",
            "devEUI": {"type": "Property", "value": EUI.lower()},
        }
    )
    assert public is not None
    assert device is not None
    assert public["refDevice"]["object"] == device["id"]
    assert device["devEUI"]["value"] == projector.pseudonym(EUI)
    assert EUI not in str(public) + str(device)
    assert projector.project(weather()) == public
    other = Projector(chosen, key=b"another key of sixteen+ bytes").project(weather())
    assert other is not None
    assert other["id"] != public["id"]


def test_small_people_counts_and_non_numbers_are_suppressed() -> None:
    projector = Projector(rules(), key=KEY)

    def crowd(count: Any, away: Any) -> dict[str, Any] | None:
        return projector.project(
            {
                "id": "urn:ngsi-ld:CrowdFlowObserved:altstadt",
                "type": "CrowdFlowObserved",
                "peopleCount": {"type": "Property", "value": count},
                "peopleCountAway": {"type": "Property", "value": away},
            }
        )

    assert crowd(4, 5) == {
        "id": "urn:ngsi-ld:CrowdFlowObserved:altstadt",
        "type": "CrowdFlowObserved",
        "peopleCountAway": {"type": "Property", "value": 5},
    }
    found = crowd(12, "many")
    assert found is not None
    assert found["peopleCount"]["value"] == 12
    assert "peopleCountAway" not in found
    found = crowd(True, float("nan"))
    assert found is not None
    assert set(found) == {"id", "type"}


def test_deleted_attributes_and_multi_instance_attributes() -> None:
    projector = Projector(rules(), key=KEY)
    entity = weather(
        temperature=[
            {"type": "Property", "value": 20.0, "datasetId": "urn:a"},
            {"type": "Property", "value": "urn:ngsi-ld:null", "datasetId": "urn:b"},
        ],
        location={"type": "GeoProperty", "value": "urn:ngsi-ld:null"},
    )
    public = projector.project(entity)
    assert public is not None
    assert public["temperature"] == [{"type": "Property", "value": 20.0, "datasetId": "urn:a"}]
    assert "location" not in public


finite = st.floats(min_value=-180, max_value=180, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(st.tuples(finite, finite), min_size=1, max_size=6), decimals=st.integers(0, 7)
)
def test_rounding_never_leaves_more_decimals(
    points: list[tuple[float, float]], decimals: int
) -> None:
    projector = Projector(rules(coordinate_decimals=decimals), key=KEY)
    entity = weather(
        location={
            "type": "GeoProperty",
            "value": {"type": "MultiPoint", "coordinates": [list(p) for p in points]},
        }
    )
    public = projector.project(entity)
    assert public is not None
    for point in public["location"]["value"]["coordinates"]:
        for number in point:
            assert round(number, decimals) == number


def test_rule_files_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "publish.yaml"
    path.write_text(
        "target_tenant: public\npseudonym_key_file: key\n"
        "types:\n  - type: WeatherObserved\n    attributes: [temperature]\n"
    )
    (tmp_path / "key").write_text("k" * 32 + "\n")
    loaded = load_rules(path)
    assert loaded.pseudonym_key_file == tmp_path / "key"
    assert read_key(loaded) == b"k" * 32
    path.write_text("target_tenant: public\ntypes:\n  - type: X\n    attribute: [a]\n")
    with pytest.raises(RulesError, match=r"publish\.yaml"):
        load_rules(path)
    with pytest.raises(RulesError, match="tenant of its own"):
        PublishRules.from_mapping(
            {"target_tenant": "a", "source_tenant": "a", "types": [{"type": "T", "attributes": []}]}
        )
    with pytest.raises(RulesError, match="suppress_below"):
        PublishRules.from_mapping(
            {
                "target_tenant": "a",
                "types": [{"type": "T", "attributes": ["a"], "suppress_below": {"b": 5}}],
            }
        )
    with pytest.raises(RulesError, match="DREHSCHEIBE_PUBLISH_KEY"):
        read_key(rules(), environ={})
    with pytest.raises(RulesError, match="shorter"):
        read_key(rules(), environ={"DREHSCHEIBE_PUBLISH_KEY": "short"})
