"""The three NGSI-LD representations of an entity, converted on plain dicts.

These functions are the hot path of the broker and the client: no pydantic, no copies of values,
no regular expressions compiled per call. They change the *shape* of an entity only; they do not
validate ids, names, dates or geometries (the pydantic `Entity` does, on top of these functions,
and on valid input both paths give equal results). The returned dicts are new, but attribute
values (the payload of `value`, `object`, ...) are shared with the input: do not mutate them.

Normalized: every attribute is an object with its `type`
    `{"temperature": {"type": "Property", "value": 21.3, "unitCode": "CEL"}}`
Concise: `type` is dropped wherever the remaining members tell it
    Property `21.3` (bare, when nothing else is attached) or `{"value": 21.3, "unitCode": "CEL"}`;
    GeoProperty: the bare GeoJSON geometry or `{"value": {geometry}, ...}`;
    Relationship `{"object": "urn:..."}`; LanguageProperty `{"languageMap": {...}}`;
    JsonProperty `{"json": ...}`; VocabProperty `{"vocab": ...}`;
    ListProperty `{"valueList": [...]}`.
    A Property whose value would be read back as something else (a GeoJSON geometry, an object
    with a `value`/`object`/... member or with an attribute `type`) keeps its `type`.
    Multi-attribute instances are never bare, so that a list of them cannot be mistaken for an
    array value.
keyValues: bare values (Relationship: its object id or ids; LanguageProperty: its languageMap;
    a multi-attribute: the list of its instances' values). Metadata is lost.

How input is read (`representation="auto"`, also used for "concise", which is a superset of
normalized), per attribute and per sub-attribute:

1. an object whose `type` is an attribute type (Property, GeoProperty, Relationship,
   LanguageProperty, JsonProperty, VocabProperty, ListProperty) is normalized;
2. an object without `type` with one of `value`, `object`, `languageMap`, `json`, `vocab`,
   `valueList` is concise (`value` holding a GeoJSON geometry makes a GeoProperty); an object
   with such a member *and* some other `type` (`"Number"`, `"geo:json"`: NGSI v2) is refused,
   because guessing would store a wrong entity;
3. a non-empty array whose items are all attributes by rules 1-2 is a multi-attribute;
4. anything else is a bare (keyValues) value: see below.

A bare value becomes a Relationship when its attribute is named in `relationships` (it must then
be a string or a list of strings), or, with `infer_relationships=True`, when the name is `ref`
followed by an upper-case letter (`refDevice`) and the value is a URI or a non-empty list of URIs;
a GeoJSON geometry becomes a GeoProperty; anything else a Property. The relationship hints apply to
entity attributes, not to sub-attributes. With `representation="keyValues"` every attribute is a
bare value, whatever its shape; with `representation="normalized"` everything must be rule 1.

Entity members (`id`, `type`, `scope`, `@context`, `createdAt`, `modifiedAt`, `deletedAt`) pass
through unchanged; `id` and `type` are not required, so attribute fragments (the bodies of
`PATCH /entities/{id}/attrs`) convert too. `sys_attrs=False` drops `createdAt`, `modifiedAt` and
`deletedAt` at every level.

Malformed input raises `BadRequestData` naming the entity, the attribute and the problem.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal

from ngsi._errors import BadRequestData
from ngsi._geometry import is_geojson_geometry
from ngsi._ids import ATTRIBUTE_MEMBERS, ENTITY_MEMBERS, SYSTEM_ATTRIBUTES, is_valid_uri

__all__ = [
    "ATTRIBUTE_TYPES",
    "VALUE_MEMBERS",
    "InputRepresentation",
    "Representation",
    "concise_attribute",
    "from_normalized",
    "is_bare_value",
    "key_values_attribute",
    "to_concise",
    "to_key_values",
    "to_normalized",
]

Representation = Literal["normalized", "concise", "keyValues"]
InputRepresentation = Literal["normalized", "concise", "keyValues", "auto"]

VALUE_MEMBERS: Mapping[str, str] = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "JsonProperty": "json",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
}
"""The member holding each attribute type's value."""

ATTRIBUTE_TYPES = frozenset(VALUE_MEMBERS)

_CONCISE_TYPES = {
    "value": "Property",
    "object": "Relationship",
    "languageMap": "LanguageProperty",
    "json": "JsonProperty",
    "vocab": "VocabProperty",
    "valueList": "ListProperty",
}
_VALUE_KEYS = frozenset(_CONCISE_TYPES)
_INPUTS = frozenset({"normalized", "concise", "keyValues", "auto"})
_NO_NAMES: frozenset[str] = frozenset()


def _where(entity: Mapping[str, Any], name: str, parent: str | None) -> str:
    entity_id = entity.get("id")
    prefix = f"entity {entity_id!r}: " if isinstance(entity_id, str) else ""
    if parent is None:
        return f"{prefix}attribute {name!r}"
    return f"{prefix}sub-attribute {name!r} of {parent!r}"


def _kind_of(value: object) -> str:
    if isinstance(value, dict):
        return "an object with members " + ", ".join(repr(key) for key in list(value)[:6])
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"


def _is_attribute_shaped(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    kind = value.get("type")
    if kind.__class__ is str and kind in ATTRIBUTE_TYPES:
        return True
    return not _VALUE_KEYS.isdisjoint(value)


def is_bare_value(value: object) -> bool:
    """Whether `value`, written bare in concise or keyValues, is read back as a plain Property
    value by the `auto` rules (not as an attribute, a multi-attribute or a GeoJSON geometry)."""
    if isinstance(value, dict):
        return not _is_attribute_shaped(value) and not is_geojson_geometry(value)
    if isinstance(value, list) and value:
        return not all(_is_attribute_shaped(item) for item in value)
    return True


# -- reading ------------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("entity", "infer", "mode", "relationships", "sys_attrs")

    def __init__(
        self,
        entity: Mapping[str, Any],
        mode: str,
        relationships: Collection[str],
        infer: bool,
        sys_attrs: bool,
    ) -> None:
        self.entity = entity
        self.mode = mode
        self.relationships = relationships
        self.infer = infer
        self.sys_attrs = sys_attrs

    def attribute(self, raw: Any, name: str, parent: str | None) -> Any:
        """Read one entity attribute (parent None) or sub-attribute in auto/concise mode."""
        if isinstance(raw, dict):
            kind = raw.get("type")
            if kind.__class__ is str and kind in ATTRIBUTE_TYPES:
                return self.typed(raw, kind, name, parent)
            if not _VALUE_KEYS.isdisjoint(raw):
                return self.concise(raw, name, parent)
        elif isinstance(raw, list) and raw and all(_is_attribute_shaped(item) for item in raw):
            if parent is not None:
                raise BadRequestData(
                    f"{_where(self.entity, name, parent)}: a sub-attribute cannot have several "
                    "instances"
                )
            return [self.attribute(item, name, None) for item in raw]
        return self.bare(raw, name, parent)

    def normalized(self, raw: Any, name: str, parent: str | None) -> Any:
        """Read one attribute that must be in normalized form."""
        if isinstance(raw, dict):
            kind = raw.get("type")
            if kind.__class__ is str and kind in ATTRIBUTE_TYPES:
                return self.typed(raw, kind, name, parent)
        elif isinstance(raw, list) and raw and parent is None:
            return [self.normalized(item, name, None) for item in raw]
        if isinstance(raw, dict) and "type" in raw:
            got = f"its type {raw['type']!r} is not an NGSI-LD attribute type"
        else:
            got = f"got {_kind_of(raw)}"
        raise BadRequestData(
            f"{_where(self.entity, name, parent)} is not in normalized form: {got} (expected "
            f"an object whose 'type' is one of {', '.join(sorted(ATTRIBUTE_TYPES))})"
        )

    def typed(self, raw: dict[str, Any], kind: str, name: str, parent: str | None) -> Any:
        own = VALUE_MEMBERS[kind]
        if own not in raw:
            raise BadRequestData(f"{_where(self.entity, name, parent)}: a {kind} needs {own!r}")
        return self.members(raw, {}, own, kind, name, parent)

    def concise(self, raw: dict[str, Any], name: str, parent: str | None) -> Any:
        where = _where(self.entity, name, parent)
        if "type" in raw:
            raise BadRequestData(
                f"{where}: type {raw['type']!r} is not an NGSI-LD attribute type (one of "
                f"{', '.join(sorted(ATTRIBUTE_TYPES))}); NGSI v2 attributes are not NGSI-LD, and "
                "a plain object value must be read with representation='keyValues'"
            )
        found = [key for key in raw if key in _VALUE_KEYS]
        if len(found) > 1:
            raise BadRequestData(
                f"{where} has both {found[0]!r} and {found[1]!r}; an attribute holds one of them"
            )
        own = found[0]
        kind = _CONCISE_TYPES[own]
        if own == "value" and is_geojson_geometry(raw["value"]):
            kind = "GeoProperty"
        return self.members(raw, {"type": kind}, own, kind, name, parent)

    def members(
        self,
        raw: dict[str, Any],
        out: dict[str, Any],
        own: str,
        kind: str,
        name: str,
        parent: str | None,
    ) -> dict[str, Any]:
        sys_attrs = self.sys_attrs
        for key, value in raw.items():
            if key in ATTRIBUTE_MEMBERS:
                if key in _VALUE_KEYS and key != own:
                    raise BadRequestData(
                        f"{_where(self.entity, name, parent)}: {key!r} does not belong in a "
                        f"{kind}, whose value is in {own!r}"
                    )
                if sys_attrs or key not in SYSTEM_ATTRIBUTES:
                    out[key] = value
            elif self.mode == "normalized":
                out[key] = self.normalized(value, key, name)
            else:
                out[key] = self.attribute(value, key, name)
        return out

    def bare(self, raw: Any, name: str, parent: str | None) -> dict[str, Any]:
        if parent is None:
            if name in self.relationships:
                if _is_object_ids(raw):
                    return {"type": "Relationship", "object": raw}
                raise BadRequestData(
                    f"{_where(self.entity, name, parent)} is declared a Relationship, but its "
                    f"value is {_kind_of(raw)}, not a URI or a list of URIs"
                )
            if self.infer and _is_reference_name(name) and _is_uris(raw):
                return {"type": "Relationship", "object": raw}
        if is_geojson_geometry(raw):
            return {"type": "GeoProperty", "value": raw}
        return {"type": "Property", "value": raw}


def _is_reference_name(name: str) -> bool:
    return len(name) > 3 and name.startswith("ref") and "A" <= name[3] <= "Z"


def _is_object_ids(value: object) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(item, str) for item in value)


def _is_uris(value: object) -> bool:
    if isinstance(value, str):
        return is_valid_uri(value)
    return isinstance(value, list) and bool(value) and all(is_valid_uri(item) for item in value)


def to_normalized(
    data: Mapping[str, Any],
    *,
    representation: InputRepresentation = "auto",
    relationships: Collection[str] = _NO_NAMES,
    infer_relationships: bool = False,
    sys_attrs: bool = True,
) -> dict[str, Any]:
    """The normalized form of an entity (or attribute fragment) given in any representation.

    See the module docstring for how each attribute is recognised. Normalized input comes back
    equal (`to_normalized(n) == n`).
    """
    if not isinstance(data, Mapping):
        raise BadRequestData(f"an entity must be a JSON object, got {_kind_of(data)}")
    if representation not in _INPUTS:
        raise ValueError(
            f"representation must be one of {', '.join(sorted(_INPUTS))}, got {representation!r}"
        )
    if relationships and not isinstance(relationships, frozenset | set | dict):
        relationships = frozenset(relationships)
    reader = _Reader(data, representation, relationships, infer_relationships, sys_attrs)
    out: dict[str, Any] = {}
    for name, raw in data.items():
        if name in ENTITY_MEMBERS:
            if sys_attrs or name not in SYSTEM_ATTRIBUTES:
                out[name] = raw
        elif representation == "keyValues":
            out[name] = reader.bare(raw, name, None)
        elif representation == "normalized":
            out[name] = reader.normalized(raw, name, None)
        else:
            out[name] = reader.attribute(raw, name, None)
    return out


# -- writing ------------------------------------------------------------------------------------


def _attribute_kind(
    attribute: Any, entity: Mapping[str, Any], name: str, parent: str | None
) -> str:
    if isinstance(attribute, dict):
        kind = attribute.get("type")
        if kind.__class__ is str and kind in ATTRIBUTE_TYPES:
            own = VALUE_MEMBERS[kind]
            if own in attribute:
                return str(kind)
            raise BadRequestData(f"{_where(entity, name, parent)}: a {kind} needs {own!r}")
    raise BadRequestData(
        f"{_where(entity, name, parent)} is not in normalized form (convert it with "
        f"to_normalized first): got {_kind_of(attribute)}"
    )


def _concise(
    attribute: Any,
    entity: Mapping[str, Any],
    name: str,
    parent: str | None,
    sys_attrs: bool,
    bare_ok: bool,
) -> Any:
    kind = _attribute_kind(attribute, entity, name, parent)
    own = VALUE_MEMBERS[kind]
    main = attribute[own]
    rest: dict[str, Any] = {}
    for key, value in attribute.items():
        if key == "type" or key == own:
            continue
        if key in ATTRIBUTE_MEMBERS:
            if sys_attrs or key not in SYSTEM_ATTRIBUTES:
                rest[key] = value
        else:
            rest[key] = _concise(value, entity, key, name, sys_attrs, True)
    if kind == "Property":
        if is_geojson_geometry(main):
            return {"type": "Property", "value": main, **rest}
        if bare_ok and not rest and is_bare_value(main):
            return main
    elif kind == "GeoProperty":
        if not is_geojson_geometry(main):
            return {"type": "GeoProperty", "value": main, **rest}
        if bare_ok and not rest:
            return main
    return {own: main, **rest}


def concise_attribute(
    attribute: Mapping[str, Any] | list[Any], *, name: str = "attribute", sys_attrs: bool = True
) -> Any:
    """The concise form of one normalized attribute (or a list of instances)."""
    return to_concise({name: attribute}, sys_attrs=sys_attrs)[name]


def key_values_attribute(
    attribute: Mapping[str, Any] | list[Any], *, name: str = "attribute"
) -> Any:
    """The keyValues form (the bare value) of one normalized attribute (or list of instances)."""
    return to_key_values({name: attribute})[name]


def to_concise(normalized: Mapping[str, Any], *, sys_attrs: bool = True) -> dict[str, Any]:
    """The concise form of a normalized entity (or attribute fragment); loss-free:
    `to_normalized(to_concise(n)) == n`."""
    out: dict[str, Any] = {}
    for name, attribute in normalized.items():
        if name in ENTITY_MEMBERS:
            if sys_attrs or name not in SYSTEM_ATTRIBUTES:
                out[name] = attribute
        elif isinstance(attribute, list):
            out[name] = [
                _concise(item, normalized, name, None, sys_attrs, False) for item in attribute
            ]
        else:
            out[name] = _concise(attribute, normalized, name, None, sys_attrs, True)
    return out


def to_key_values(normalized: Mapping[str, Any], *, sys_attrs: bool = True) -> dict[str, Any]:
    """The keyValues form of a normalized entity (or attribute fragment): bare values, no
    metadata; a multi-attribute becomes the list of its instances' values."""
    out: dict[str, Any] = {}
    for name, attribute in normalized.items():
        if name in ENTITY_MEMBERS:
            if sys_attrs or name not in SYSTEM_ATTRIBUTES:
                out[name] = attribute
        elif isinstance(attribute, list):
            out[name] = [
                item[VALUE_MEMBERS[_attribute_kind(item, normalized, name, None)]]
                for item in attribute
            ]
        else:
            out[name] = attribute[VALUE_MEMBERS[_attribute_kind(attribute, normalized, name, None)]]
    return out


def from_normalized(
    normalized: Mapping[str, Any], representation: Representation, *, sys_attrs: bool = True
) -> dict[str, Any]:
    """A normalized entity in the given representation (a copy for "normalized")."""
    if representation == "concise":
        return to_concise(normalized, sys_attrs=sys_attrs)
    if representation == "keyValues":
        return to_key_values(normalized, sys_attrs=sys_attrs)
    if representation == "normalized":
        return to_normalized(normalized, representation="normalized", sys_attrs=sys_attrs)
    raise ValueError(
        f"representation must be normalized, concise or keyValues, got {representation!r}"
    )
