"""Hypothesis strategies for key-values entities, drawn from the project's published schemas.

Values are generated from what the model's published JSON Schema allows, so that a test can check
that the model accepts all of it and that the official schema accepts what the model writes.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from models import SmartDataModel, entity_json_schema

_URIS = st.sampled_from(
    ["https://example.org/a", "urn:ngsi-ld:Device:70B3D57ED0000001", "http://city.example/x?y=1"]
)
_DATETIMES = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda value: value.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if value.second % 2 else ".250Z"))
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)


def _number(schema: dict[str, Any], integer: bool) -> st.SearchStrategy[Any]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    if "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + (1 if integer else 1e-6)
    if integer:
        return st.integers(min_value=low, max_value=high)
    floats = st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    whole = st.integers(
        min_value=None if low is None else int(low) + (low > int(low)),
        max_value=None if high is None else int(high) - (high < int(high)),
    )
    return st.one_of(floats, whole)


_LONGITUDE = st.floats(-180, 180, allow_nan=False)
_LATITUDE = st.floats(-90, 90, allow_nan=False)
_POSITION = st.tuples(_LONGITUDE, _LATITUDE).map(list)


def _ring(points: list[list[float]]) -> list[list[float]]:
    return [*points, points[0]]


GEOMETRIES = st.one_of(
    _POSITION.map(lambda p: {"type": "Point", "coordinates": p}),
    st.lists(_POSITION, min_size=2, max_size=4).map(
        lambda line: {"type": "LineString", "coordinates": line}
    ),
    st.lists(_POSITION, min_size=3, max_size=4).map(
        lambda points: {"type": "Polygon", "coordinates": [_ring(points)]}
    ),
    st.lists(_POSITION, min_size=1, max_size=3).map(
        lambda points: {"type": "MultiPoint", "coordinates": points}
    ),
)


def _is_geometry(schema: dict[str, Any]) -> bool:
    branches = schema.get("oneOf", [])
    kinds = [b.get("properties", {}).get("type", {}).get("enum") for b in branches]
    return ["Point"] in kinds


def from_schema(schema: dict[str, Any], definitions: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for values valid under `schema` (the subset our published schemas use)."""
    if _is_geometry(schema):
        return GEOMETRIES
    if "$ref" in schema:
        return from_schema(definitions[schema["$ref"].rsplit("/", 1)[-1]], definitions)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(sub, definitions) for sub in schema[key]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "number":
        return _number(schema, integer=False)
    if kind == "integer":
        return _number(schema, integer=True)
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return _DATETIMES
        if fmt == "uri":
            return _URIS
        if "pattern" in schema:
            pattern = schema["pattern"]
            return st.from_regex(pattern, fullmatch=True).filter(
                lambda text: len(text) <= schema.get("maxLength", 256)
            )
        return _TEXT.filter(lambda text: len(text) >= schema.get("minLength", 0))
    if kind == "array":
        items = schema.get("items", {})
        if items.get("type") == "string" and items.get("oneOf"):
            element: st.SearchStrategy[Any] = st.ip_addresses(v=4).map(str)
        else:
            element = from_schema(items, definitions)
        return st.lists(
            element,
            min_size=schema.get("minItems", 0),
            max_size=max(3, schema.get("minItems", 0)),
            unique=bool(schema.get("uniqueItems")),
        )
    if kind == "object":
        properties = schema.get("properties", {})
        if not properties:
            return st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 9), max_size=2)
        return st.fixed_dictionaries(
            {},
            optional={
                name: from_schema(sub, definitions)
                for name, sub in properties.items()
                if sub.get("type") != "null"
            },
        )
    raise AssertionError(f"no strategy for {schema}")


@functools.cache
def entities(model: type[SmartDataModel]) -> st.SearchStrategy[dict[str, Any]]:
    """Key-values entities of `model`: the required attributes and any of the others."""
    schema = entity_json_schema(model)
    definitions = schema.get("$defs", {})
    required = {}
    optional = {}
    for name, sub in schema["properties"].items():
        if name == "type":
            continue
        strategy = from_schema(sub, definitions)
        if name in schema["required"]:
            required[name] = strategy
        else:
            optional[name] = strategy
    required["id"] = st.integers(0, 10**6).map(
        lambda n: f"urn:ngsi-ld:{model.type_name()}:test-{n}"
    )
    return st.fixed_dictionaries(required, optional=optional).map(
        lambda values: {"type": model.type_name(), **values}
    )
