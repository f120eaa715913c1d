"""Every official Smart Data Models example is read into its model and written back unchanged.

The upstream folders hold, per type: `example.json` (keyValues), `example.jsonld` (keyValues with
an `@context`), `example-normalized.jsonld` (NGSI-LD normalized) and `example-normalized.json`,
which is NGSI **v2** normalized (`"type": "Number"`, `metadata`), not NGSI-LD: the NGSI-LD reader
refuses it, the NGSI-v2 reader (`from_ngsiv2`) reads it and `to_ngsiv2` writes it back. Where an
upstream example breaks its own schema or NGSI, the defect is named below and asserted (by the
official schema and by the model), then corrected, and the corrected example must round-trip.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from models import AirQualityObserved, Measured, ModelError, Representation, default_registry
from ngsi._ngsiv2 import from_ngsiv2
from schemas import SdmSchemas

SHARED_SDM = Path(__file__).resolve().parents[2] / ".." / "shared" / "sdm"

Fix = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Defect:
    """What is wrong with an upstream example, and how to correct it."""

    schema: frozenset[tuple[str, str]]
    """(attribute, JSON Schema keyword) the official schema reports."""
    model: frozenset[str]
    """Attributes the model refuses."""
    fix: Fix = field(repr=False)


def _set_value(name: str, value: Any) -> Fix:
    def fix(data: dict[str, Any]) -> None:
        if isinstance(data[name], dict) and "value" in data[name]:
            data[name]["value"] = value
        else:
            data[name] = value

    return fix


def _all(*fixes: Fix) -> Fix:
    def fix(data: dict[str, Any]) -> None:
        for one in fixes:
            one(data)

    return fix


def _retype(name: str, kind: str) -> Fix:
    def fix(data: dict[str, Any]) -> None:
        attribute = data[name]
        value = attribute.pop("object", attribute.pop("value", None))
        attribute.pop("format", None)
        attribute["type"] = kind
        attribute["object" if kind == "Relationship" else "value"] = value

    return fix


def _set_v2(name: str, v2_type: str, value: Any) -> Fix:
    def fix(data: dict[str, Any]) -> None:
        data[name] = {**data[name], "type": v2_type, "value": value}

    return fix


_UTC_AQO = _set_value("dateObserved", "2016-03-15T11:00:00Z")

DEFECTS: dict[tuple[str, str], Defect] = {
    # naive dateObserved (date-time needs an offset), tsp 73.3 where an integer is required
    ("AirQualityObserved", "example.json"): Defect(
        schema=frozenset({("dateObserved", "format"), ("tsp", "type")}),
        model=frozenset({"dateObserved", "tsp"}),
        fix=_all(_UTC_AQO, _set_value("tsp", 73)),
    ),
    ("AirQualityObserved", "example.jsonld"): Defect(
        schema=frozenset({("dateObserved", "format")}),
        model=frozenset({"dateObserved"}),
        fix=_UTC_AQO,
    ),
    # ... and a windDirection of 186 where the schema allows -180..180
    ("AirQualityObserved", "example-normalized.jsonld"): Defect(
        schema=frozenset(
            {("dateObserved", "format"), ("windDirection", "maximum"), ("tsp", "type")}
        ),
        model=frozenset({"dateObserved", "windDirection", "tsp"}),
        fix=_all(_UTC_AQO, _set_value("tsp", 73), _set_value("windDirection", 176)),
    ),
    # ... and in NGSI v2: precipitation a Boolean where the schema wants a number
    ("AirQualityObserved", "example-normalized.json"): Defect(
        schema=frozenset({("dateObserved", "format"), ("tsp", "type"), ("precipitation", "type")}),
        model=frozenset({"dateObserved", "tsp", "precipitation"}),
        fix=_all(_UTC_AQO, _set_value("tsp", 73), _set_v2("precipitation", "Number", 0)),
    ),
    # location written as a Property (NGSI-LD: a GeoProperty), refDevice as a Property
    ("DeviceMeasurement", "example-normalized.jsonld"): Defect(
        schema=frozenset(),
        model=frozenset({"location", "refDevice"}),
        fix=_all(_retype("location", "GeoProperty"), _retype("refDevice", "Relationship")),
    ),
    # attributes of type "string" (not an NGSI-LD attribute type) hold three values
    ("FloodMonitoring", "example-normalized.jsonld"): Defect(
        schema=frozenset(
            {("floodLevelStatus", "type"), ("stationID", "type"), ("observationDateTime", "type")}
        ),
        model=frozenset({"floodLevelStatus"}),
        fix=_all(
            _retype("floodLevelStatus", "Property"),
            _retype("stationID", "Property"),
            _retype("observationDateTime", "Property"),
        ),
    ),
    # dateObserved written as a Relationship
    ("WaterObserved", "example-normalized.jsonld"): Defect(
        schema=frozenset(),
        model=frozenset({"dateObserved"}),
        fix=_retype("dateObserved", "Property"),
    ),
    # itemType "yatching" is not in the enumeration (people, ship, vehicle, yacht)
    ("ItemFlowObserved", "example-normalized.jsonld"): Defect(
        schema=frozenset({("itemType", "enum")}),
        model=frozenset({"itemType"}),
        fix=_set_value("itemType", "yacht"),
    ),
}

NGSI_LD_EXAMPLES = ("example.json", "example.jsonld", "example-normalized.jsonld")


def _examples(names: tuple[str, ...]) -> list[Any]:
    found = []
    for schema in sorted(SHARED_SDM.glob("*/*/schema.json")):
        for name in names:
            path = schema.parent / "examples" / name
            found.append(pytest.param(path, id=f"{schema.parent.name}/{name}"))
    return found


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _exactly(data: Any) -> str:
    """JSON text with sorted keys: equal only when values and their JSON types are equal."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def test_every_registered_type_has_upstream_examples() -> None:
    types = {path.parent.name for path in SHARED_SDM.glob("*/*/schema.json")}
    assert types == set(default_registry.types())
    assert {type_name for type_name, _ in DEFECTS} <= types


@pytest.mark.parametrize("path", _examples(NGSI_LD_EXAMPLES))
def test_official_example_round_trips(path: Path, sdm: SdmSchemas) -> None:
    data = _load(path)
    model = default_registry.model(data["type"])
    defect = DEFECTS.get((data["type"], path.name))
    found = {(v.attribute, v.rule) for v in sdm.violations(data)}
    if defect is not None:
        assert found == defect.schema, "the upstream defect changed; update DEFECTS"
        with pytest.raises(ModelError) as refused:
            model.from_ngsi(data)
        named = {name for name, _ in refused.value.problems if name} or {
            name for name in defect.model if repr(name) in str(refused.value)
        }
        assert named == defect.model, str(refused.value)
        data = copy.deepcopy(data)
        defect.fix(data)
        assert not sdm.violations(data)
    else:
        assert found == set(), "the upstream example breaks its schema; name it in DEFECTS"

    entity = model.from_ngsi(data)
    representation: Representation = "normalized" if "normalized" in path.name else "keyValues"
    written = entity.to_ngsi(representation, default_units=False, with_context="@context" in data)
    assert _exactly(written) == _exactly(data)


@pytest.mark.parametrize("path", _examples(("example-normalized.jsonld",)))
def test_official_normalized_example_survives_concise_and_key_values(path: Path) -> None:
    data = _load(path)
    defect = DEFECTS.get((data["type"], path.name))
    if defect is not None:
        data = copy.deepcopy(data)
        defect.fix(data)
    data.pop("@context", None)
    model = default_registry.model(data["type"])
    entity = model.from_ngsi(data)

    concise = entity.to_ngsi("concise", default_units=False)
    assert _exactly(model.from_ngsi(concise).to_ngsi(default_units=False)) == _exactly(data)

    key_values = entity.to_ngsi("keyValues")
    again = model.from_ngsi(key_values, representation="keyValues")
    assert _exactly(again.to_ngsi("keyValues")) == _exactly(key_values)
    for name in model.relationship_names() & set(data):
        assert again.to_ngsi()[name]["type"] == "Relationship"


@pytest.mark.parametrize("path", _examples(("example-normalized.json",)))
def test_ngsi_v2_examples_are_refused_with_a_clear_reason(path: Path) -> None:
    data = _load(path)
    assert any(
        isinstance(value, dict) and value.get("type") not in (None, "Property", "Relationship")
        for value in data.values()
    ), "expected an NGSI v2 normalized example"
    with pytest.raises(ModelError, match="NGSI v2 attributes are not NGSI-LD") as refused:
        default_registry.from_ngsi(data)
    assert refused.value.entity_id == data["id"]


@pytest.mark.parametrize("path", _examples(("example-normalized.json",)))
def test_official_ngsiv2_example_round_trips(path: Path, sdm: SdmSchemas) -> None:
    data = _load(path)
    model = default_registry.model(data["type"])
    defect = DEFECTS.get((data["type"], path.name))
    found = {(v.attribute, v.rule) for v in sdm.violations(from_ngsiv2(data))}
    if defect is not None:
        assert found == defect.schema, "the upstream defect changed; update DEFECTS"
        with pytest.raises(ModelError) as refused:
            model.from_ngsiv2(data)
        assert {name for name, _ in refused.value.problems} == defect.model, str(refused.value)
        data = copy.deepcopy(data)
        defect.fix(data)
        assert not sdm.violations(from_ngsiv2(data))
    else:
        assert found == set(), "the upstream example breaks its schema; name it in DEFECTS"

    entity = model.from_ngsiv2(data)
    assert _exactly(entity.to_ngsiv2(default_units=False)) == _exactly(data)

    # the model holds NGSI-LD: its Relationships are Relationships, whatever the v2 type said
    normalized = entity.to_ngsi(default_units=False)
    for name in model.relationship_names() & set(data):
        assert normalized[name]["type"] == "Relationship"
    # and an NGSI-LD id (`urn:ngsi-ld:<type>:<v2 id>`) is taken off again on the way back
    prefix = f"urn:ngsi-ld:{data['type']}:"
    prefixed = model.from_ngsiv2(data, id_prefix=prefix)
    assert prefixed.id == prefix + data["id"]
    written = prefixed.to_ngsiv2(default_units=False, id_prefix=prefix)
    assert _exactly(written) == _exactly(data)


def test_a_model_made_here_is_written_to_ngsiv2_and_read_back() -> None:
    aqo = AirQualityObserved(
        id="urn:ngsi-ld:AirQualityObserved:berlin-mitte",
        dateObserved="2024-05-01T12:00:00Z",
        location={"type": "Point", "coordinates": [13.4, 52.52]},
        temperature=21.3,
        co2=Measured(value=612, observed_at="2024-05-01T11:59:30Z"),
        refDevice="urn:ngsi-ld:Device:70B3D57ED0000001",
    )
    v2 = aqo.to_ngsiv2()
    assert v2 == {
        "id": "urn:ngsi-ld:AirQualityObserved:berlin-mitte",
        "type": "AirQualityObserved",
        "dateObserved": {"type": "DateTime", "value": "2024-05-01T12:00:00Z"},
        "location": {"type": "geo:json", "value": {"type": "Point", "coordinates": [13.4, 52.52]}},
        "temperature": {
            "type": "Number",
            "value": 21.3,
            "metadata": {"unitCode": {"value": "CEL"}},
        },
        "co2": {
            "type": "Number",
            "value": 612,
            "metadata": {
                "observedAt": {"type": "DateTime", "value": "2024-05-01T11:59:30Z"},
                "unitCode": {"value": "59"},
            },
        },
        "refDevice": {"type": "Relationship", "value": "urn:ngsi-ld:Device:70B3D57ED0000001"},
    }
    assert aqo.to_ngsiv2(key_values=True)["dateObserved"] == "2024-05-01T12:00:00Z"
    assert aqo.to_ngsiv2(response=True)["refDevice"]["metadata"] == {}
    again = AirQualityObserved.from_ngsiv2(v2)
    assert again.to_ngsi() == aqo.to_ngsi()
    with pytest.raises(ModelError, match="expected 'AirQualityObserved'"):
        AirQualityObserved.from_ngsiv2({**v2, "type": "WeatherObserved"})
    with pytest.raises(ModelError, match="'temperature' is not an NGSI-v2 attribute"):
        AirQualityObserved.from_ngsiv2({**v2, "temperature": 21.3})
