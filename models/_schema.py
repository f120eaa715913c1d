"""The JSON Schema this project publishes for each of its models (draft 2020-12, key-values).

It is generated from the pydantic classes: each attribute's plain value type (what `Measured`
wraps), with the NGSI-LD facts the key-values form cannot carry as annotations under
`x-ngsi-ld` (`{"type": "Relationship"}`, `{"type": "Property", "unitCode": "CEL"}`). The
generated files are committed in `schemas/json/` (`drehscheibe models schemas --write`), and a
test fails when they drift from the classes.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import Field, Tag, create_model

from models._base import SmartDataModel

__all__ = ["SCHEMA_ID_PREFIX", "entity_json_schema", "plain_type"]

SCHEMA_ID_PREFIX = "urn:drehscheibe:schemas:"
"""`$id` of a published schema: this prefix and the schema's name (the entity type)."""

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_ONE = ("items", "not", "if", "then", "else", "additionalProperties", "contains")


def plain_type(annotation: Any) -> Any:
    """The value type inside a field annotation `Measurable[T] | None`: `T` (with its
    constraints), or the annotation itself when it is not a `Measurable`."""
    arguments = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        inner, *metadata = arguments
        if any(isinstance(item, Tag) and item.tag == "plain" for item in metadata):
            kept = [item for item in metadata if not isinstance(item, Tag)]
            return typing.Annotated[(inner, *kept)] if kept else inner
        found = plain_type(inner)
        return found if found is not inner else annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for item in arguments:
            if item is not type(None):
                member = plain_type(item)
                if member is not item:
                    return member
    return annotation


def _tidy(node: Any) -> Any:
    """Drop titles and OpenAPI discriminators, and the `null` pydantic allows for optional
    members: an absent value is never written as `null`."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "discriminator") or (key == "default" and value is None):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _tidy(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_tidy(sub) for sub in value if sub != {"type": "null"}]
        elif key in _SCHEMA_ONE:
            out[key] = _tidy(value)
        else:
            out[key] = value
    for key in ("anyOf", "oneOf"):
        if key in out and len(out[key]) == 1:
            out.update(out.pop(key)[0])
    return out


def entity_json_schema(model: type[SmartDataModel]) -> dict[str, Any]:
    """The published key-values JSON Schema of `model`."""
    definitions: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        declared: Any = info.annotation
        if info.metadata:  # pydantic keeps a field's own Annotated metadata apart
            declared = typing.Annotated[(declared, *info.metadata)]
        default = ... if info.is_required() else None
        definitions[field_name] = (plain_type(declared), _field(default, info.alias))
    plain = create_model(
        model.__name__,
        __config__={"extra": "allow", "populate_by_name": True},
        **definitions,
    )
    generated = _tidy(plain.model_json_schema(by_alias=True, mode="validation"))
    properties: dict[str, Any] = generated["properties"]
    properties["type"] = {"type": "string", "enum": [model.type_name()]}
    for name, schema in properties.items():
        if name in ("id", "type"):
            continue
        facts: dict[str, str] = {"type": model.attribute_type(name)}
        unit = model.default_unit(name)
        if unit is not None:
            facts["unitCode"] = unit
        schema.pop("default", None)
        schema["x-ngsi-ld"] = facts
    required = [
        "id",
        "type",
        *(n for n in generated.get("required", []) if n not in ("id", "type")),
    ]
    document: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID_PREFIX + model.type_name(),
        "title": model.type_name(),
        "description": (
            f"{(model.__doc__ or '').strip().splitlines()[0]} Key-values form, as Drehscheibe "
            f"writes it; follows Smart Data Models dataModel.{model.subject} "
            f"{model.type_name()} {model.schema_version}."
        ),
        "type": "object",
        "x-ngsi-ld": {"@context": model.context_url(), "schemaVersion": model.schema_version},
        "required": required,
        "properties": properties,
    }
    if "$defs" in generated:
        document["$defs"] = generated["$defs"]
    return document


def _field(default: Any, alias: str | None) -> Any:
    return Field(default=default, alias=alias) if alias else Field(default=default)
