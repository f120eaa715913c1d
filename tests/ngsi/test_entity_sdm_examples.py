"""The official Smart Data Models examples read and write back unchanged.

Upstream ships four examples per model: `example-normalized.jsonld` and `example.jsonld` are
NGSI-LD (normalized and keyValues); `example-normalized.json` and `example.json` are NGSI v2
(attribute types such as "Number" and "geo:json", `metadata`, ids that are not URIs). Three of
the NGSI-LD examples break NGSI-LD itself; those are pinned below with the error a broker answers,
so that a fixed upstream example shows up here as a failing test to update.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ngsi._entity import Entity
from ngsi._errors import BadRequestData
from ngsi._ids import is_valid_uri
from ngsi._representations import to_concise, to_key_values, to_normalized

SDM = Path(__file__).resolve().parents[2] / ".." / "shared" / "sdm"


def _examples(name: str) -> list[Path]:
    return sorted(SDM.glob(f"*/*/examples/{name}"))


def _model(path: Path) -> str:
    return path.parents[1].name


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


# model → (what is wrong upstream, the text our error must contain)
NORMALIZED_DEFECTS = {
    "FloodMonitoring": (
        'attributes typed "string" (a JSON Schema type, not an NGSI-LD attribute type)',
        "attribute 'floodLevelStatus' is not in normalized form: its type 'string'",
    ),
    "WaterObserved": (
        "dateObserved is a Relationship whose object is a timestamp, not a URI",
        "attribute 'dateObserved' (Relationship) object: '2020-03-17T08:45:00.209Z' is not an "
        "absolute URI",
    ),
    "WeatherForecast": (
        "the id has no URI scheme",
        "id: 'Spain-WeatherForecast-46005_2016-12-01T18:00:00_2016-12-02T00:00:00' is not an "
        "absolute URI",
    ),
}
KEY_VALUES_DEFECTS = {"WeatherForecast": "is not an absolute URI"}


def test_the_examples_are_there() -> None:
    assert len(_examples("example-normalized.jsonld")) == 16
    assert len(_examples("example.jsonld")) == 16


@pytest.mark.parametrize("path", _examples("example-normalized.jsonld"), ids=_model)
def test_normalized_examples_write_back_equal(path: Path) -> None:
    data = _load(path)
    defect = NORMALIZED_DEFECTS.get(_model(path))
    if defect is not None:
        with pytest.raises(BadRequestData) as caught:
            Entity.from_dict(data, representation="normalized")
        assert defect[1] in (caught.value.detail or "")
        return
    entity = Entity.from_dict(data, representation="normalized")
    assert entity.to_dict("normalized") == data
    assert Entity.from_dict(data) == entity  # "auto" reads it the same way
    # the dict functions agree with the models, and concise is loss-free
    assert to_normalized(data) == data
    assert entity.to_dict("concise") == to_concise(data)
    assert entity.to_dict("keyValues") == to_key_values(data)
    assert to_normalized(to_concise(data)) == data
    assert Entity.from_dict(to_concise(data)) == entity


@pytest.mark.parametrize("path", _examples("example.jsonld"), ids=_model)
def test_key_values_examples_write_back_equal(path: Path) -> None:
    data = _load(path)
    defect = KEY_VALUES_DEFECTS.get(_model(path))
    if defect is not None:
        with pytest.raises(BadRequestData, match=defect):
            Entity.from_dict(data, representation="keyValues")
        return
    entity = Entity.from_dict(data, representation="keyValues")
    assert entity.to_dict("keyValues") == data
    assert to_key_values(to_normalized(data, representation="keyValues")) == data
    # keyValues with relationships inferred from ref* names holding URIs
    inferred = Entity.from_dict(data, representation="keyValues", infer_relationships=True)
    assert inferred.to_dict("keyValues") == data
    for name, value in data.items():
        if name.startswith("ref") and isinstance(value, str):
            assert inferred.to_dict()[name] == {"type": "Relationship", "object": value}


def test_inferred_relationships_in_air_quality_observed() -> None:
    path = SDM / "dataModel.Environment" / "AirQualityObserved" / "examples" / "example.jsonld"
    entity = Entity.from_dict(_load(path), representation="keyValues", infer_relationships=True)
    assert entity.to_dict()["refPointOfInterest"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:PointOfInterest:28079004-Pza.deEspanya",
    }
    assert entity.to_dict()["location"]["type"] == "GeoProperty"


@pytest.mark.parametrize("path", _examples("example-normalized.json"), ids=_model)
def test_ngsi_v2_normalized_examples_are_refused_with_a_hint(path: Path) -> None:
    with pytest.raises(BadRequestData) as caught:
        Entity.from_dict(_load(path))
    detail = caught.value.detail or ""
    assert "is not an NGSI-LD attribute type" in detail
    assert "NGSI v2 attributes are not NGSI-LD" in detail


@pytest.mark.parametrize("path", _examples("example.json"), ids=_model)
def test_ngsi_v2_key_values_examples_parse_when_their_id_is_a_uri(path: Path) -> None:
    data = _load(path)
    if not is_valid_uri(data["id"]):
        with pytest.raises(BadRequestData) as caught:
            Entity.from_dict(data, representation="keyValues")
        assert f"id: {data['id']!r} is not an absolute URI" in (caught.value.detail or "")
        return
    assert Entity.from_dict(data, representation="keyValues").to_dict("keyValues") == data
