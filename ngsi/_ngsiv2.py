"""NGSI-v2 entities ↔ NGSI-LD normalized entities, on plain dicts.

NGSI-v2 (the older FIWARE API, still spoken by QuantumLeap, Cygnus, IoT agents and many city
datasets) writes every attribute as `{"type": <v2 type>, "value": ..., "metadata": {...}}`, where
the type is a free label with a few special ones (`DateTime`, `geo:json`; `Text`, `Number`,
`Boolean`, `StructuredValue` and `None` are the defaults for a value's JSON type), and metadata
are `{"type", "value"}` pairs with no metadata of their own. Ids are any string.

Writing (`to_ngsiv2`, an NGSI-LD normalized entity with compacted names in, v2 out):

| NGSI-LD                                        | NGSI-v2 `type`, `value`                    |
|------------------------------------------------|--------------------------------------------|
| Property, value `{"@type": "DateTime", ...}`   | `DateTime`, the `@value` string            |
| Property, value a string / number / boolean    | `Text` / `Number` / `Boolean`              |
| Property, value an object or array             | `StructuredValue`                          |
| Property, value null                           | `None`                                     |
| GeoProperty                                    | `geo:json`, the geometry                   |
| Relationship                                   | `Relationship`, the object (id or ids)     |
| LanguageProperty, JsonProperty, VocabProperty, | its own type name, its `languageMap`,      |
| ListProperty, ListRelationship                 | `json`, `vocab`, `valueList`, `objectList` |

Sub-attributes become `metadata` entries typed by the same table (their own sub-attributes are
dropped: v2 metadata have none); `observedAt` becomes `{"type": "DateTime", "value": t}`;
`unitCode` and `datasetId` become `{"value": code}` (type left out: NGSI-v2 reads a metadata
without type as `Text`; this is how the Smart Data Models' v2 examples write `unitCode`);
`previousValue` (in notifications with `showChanges`) becomes Orion's builtin `previousValue`
metadata. System members (`createdAt`, `modifiedAt`, `deletedAt`, `instanceId`), `scope` and
`@context` are left out. An attribute with several instances (`datasetId`) is written as its
default instance (the one without `datasetId`), else its first: v2 has one value per attribute.
`attribute_types` names the v2 type of attributes where the table above would not give back the
one wanted (a reference sent as `Text`, a custom type such as `PostalAddress`).

The default output is the *request* form of NGSI-v2 (what is POSTed to a v2 broker and what the
Smart Data Models publish as `example-normalized.json`): `metadata` only when there is some.
`response=True` gives the form a v2 server sends in responses and notifications: every attribute
has `metadata` (`{}` when empty) and every metadata a `type` (`unitCode` then is `Text`).

Reading (`from_ngsiv2`, v2 in, NGSI-LD normalized out) inverts the table: `Relationship` →
Relationship (its value the `object`); `geo:json` → GeoProperty; `geo:point` (`"lat, lon"`) →
a GeoProperty Point (the other simple-location types are refused); `DateTime` with a string value
→ a Property whose value is `{"@type": "DateTime", "@value": ...}`; any other type (or none) → a
Property with the value as it is. The NGSI-LD type names Orion-LD writes (see below) are read as
those kinds. Attributes named in `relationships` are Relationships whatever their v2 type when
their value is a string or a list of strings (the Smart Data Models' v2 examples write
`refDevice` as `Text`). `metadata.observedAt`, `metadata.unitCode` and `metadata.datasetId`
become those members; every other metadata (`timestamp`, `dateObserved`, ...) a sub-attribute by
the same rules. `id_prefix` is put in front of the id (NGSI-LD ids are URIs; the convention is
`urn:ngsi-ld:<type>:`), and `to_ngsiv2(..., id_prefix=...)` takes it off again.

Round trip: for a v2 entity whose types are those of the table and whose empty metadata are left
out (every official Smart Data Models `example-normalized.json`),
`to_ngsiv2(from_ngsiv2(x, id_prefix=p), id_prefix=p) == x`, without any extra member in the
NGSI-LD entity. What the table cannot tell (a `Text` attribute read as a Relationship, a custom
type, a missing type) is given back with `attribute_types`.

How this compares with Orion-LD. Checked in Orion-LD's source (FIWARE/context.Orion-LD, 2024-10):
the format names in `src/lib/orionld/types/OrionldRenderFormat.cpp`, the cross-API notification
in `src/lib/orionld/notifications/notificationSend.cpp` (`orionldEntityToNgsiV2`,
`notificationTreeForNgsiV2`) and in the older path `src/lib/orionld/legacyDriver/
kjTreeFromNotification.cpp` with `kjTreeFromContextAttribute.cpp`, and the expected payloads in
`test/functionalTest/cases/0000_ngsild/ngsild_*ngsiv2*.test`; the NGSI-v2 rules in the v2
specification kept in the same repository (`doc/apiary/v2/fiware-ngsiv2-reference.apib`:
"Partial Representations", "Special Attribute Types", "Simple Location Format").

- Same as Orion-LD: the notification body `{"subscriptionId": ..., "data": [...]}` (no `id`,
  `type` or `notifiedAt`), sent as `application/json` with the header
  `Ngsiv2-AttrsFormat: normalized` (or `keyValues`); the entity `id` unchanged; sub-attributes
  moved into `metadata` as `{"type", "value"}` with a Relationship's `object` renamed `value`;
  `metadata: {}` on every attribute in notifications (`response=True`); keyValues as the bare
  values. Orion-LD's `x-ngsiv2-normalized` and `x-ngsiv2-keyValues` write *expanded* names (full
  IRIs for the entity type and attribute names); `x-ngsiv2-normalized-compacted` (alias
  `x-ngsiv2`) and `x-ngsiv2-keyValues-compacted` write the names compacted with the
  subscription's @context. These functions keep the names they are given: pass a compacted
  entity for the compacted formats, an expanded one for the others.
- Different from Orion-LD: Orion-LD keeps the NGSI-LD attribute types (`Property`,
  `GeoProperty`; `Relationship` is the same in both) where these functions write the v2 types of
  the table, which are what v2 consumers type their columns by (QuantumLeap: `Number`, `Text`,
  `DateTime`, `geo:json`, ...) and what the Smart Data Models' v2 examples use; Orion-LD writes
  `observedAt` and `unitCode` as bare strings (inside `metadata` in its default path, beside
  `value` in its experimental one), which are not NGSI-v2 metadata, where these functions write
  them as metadata objects; Orion-LD's default path also keeps a Relationship's value in
  `object`. `from_ngsiv2` reads all of these Orion-LD spellings too.

Like the representation functions, these change the shape only: they do not validate ids, names,
dates or geometries. Malformed input raises `BadRequestData` naming the entity, the attribute and
what was expected.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from ngsi._errors import BadRequestData
from ngsi._ids import ATTRIBUTE_MEMBERS, ENTITY_MEMBERS

__all__ = [
    "from_ngsiv2",
    "ngsiv2_notification",
    "to_ngsiv2",
]

_VALUE_MEMBERS: Mapping[str, str] = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "JsonProperty": "json",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}
"""The member holding each NGSI-LD attribute type's value."""

_KEPT_TYPES = frozenset(_VALUE_MEMBERS) - {"Property", "GeoProperty", "Relationship"}
"""NGSI-LD attribute types without an NGSI-v2 counterpart: written under their own name."""

_PLAIN_MEMBERS = ("unitCode", "datasetId")
"""NGSI-LD string members written as metadata without a type."""

_V2_ATTRIBUTE_KEYS = frozenset({"type", "value", "metadata", "object", "observedAt"})
_V2_ATTRIBUTE_KEYS |= frozenset(_PLAIN_MEMBERS)
_V2_METADATA_KEYS = frozenset({"type", "value", "object"})
_SIMPLE_LOCATIONS = frozenset({"geo:line", "geo:box", "geo:polygon"})
_NO_NAMES: frozenset[str] = frozenset()


def _where(
    entity: Mapping[str, Any], name: str, parent: str | None = None, *, inner: str = "metadata"
) -> str:
    entity_id = entity.get("id")
    prefix = f"entity {entity_id!r}: " if isinstance(entity_id, str) else ""
    if parent is None:
        return f"{prefix}attribute {name!r}"
    return f"{prefix}{inner} {name!r} of attribute {parent!r}"


def _kind_of(value: object) -> str:
    if isinstance(value, dict):
        return "an object with members " + ", ".join(repr(key) for key in list(value)[:6])
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"


def _is_typed_datetime(value: object) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 2
        and value.get("@type") == "DateTime"
        and isinstance(value.get("@value"), str)
    )


def _default_type(value: object) -> str:
    """The NGSI-v2 type of a value by its JSON type (the v2 specification's defaults)."""
    if isinstance(value, str):
        return "Text"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int | float):
        return "Number"
    if value is None:
        return "None"
    return "StructuredValue"


# -- writing ------------------------------------------------------------------------------------


def _ld_kind(attribute: Any, entity: Mapping[str, Any], name: str, parent: str | None) -> str:
    if isinstance(attribute, dict):
        kind = attribute.get("type")
        if kind.__class__ is str and kind in _VALUE_MEMBERS:
            if _VALUE_MEMBERS[kind] in attribute:
                return str(kind)
            raise BadRequestData(
                f"{_where(entity, name, parent, inner='sub-attribute')}: a {kind} needs "
                f"{_VALUE_MEMBERS[kind]!r}"
            )
    what = "sub-attribute" if parent is not None else "attribute"
    raise BadRequestData(
        f"{_where(entity, name, parent, inner='sub-attribute')} is not a normalized NGSI-LD "
        f"{what}: got "
        f"{_kind_of(attribute)} (expected an object whose 'type' is one of "
        f"{', '.join(sorted(_VALUE_MEMBERS))})"
    )


def _v2_value(attribute: Mapping[str, Any], kind: str) -> tuple[str, Any]:
    """The NGSI-v2 type and value of a normalized NGSI-LD attribute of `kind`."""
    value = attribute[_VALUE_MEMBERS[kind]]
    if kind == "Property":
        if _is_typed_datetime(value):
            return "DateTime", value["@value"]
        return _default_type(value), value
    if kind == "GeoProperty":
        return "geo:json", value
    if kind == "Relationship":
        return "Relationship", value
    return kind, value


def _instance(attribute: Any, entity: Mapping[str, Any], name: str) -> Any:
    """The instance of a multi-attribute that NGSI-v2 gets: the default one, else the first."""
    if not isinstance(attribute, list):
        return attribute
    if not attribute:
        raise BadRequestData(f"{_where(entity, name)} is an empty list of instances")
    for item in attribute:
        if isinstance(item, dict) and "datasetId" not in item:
            return item
    return attribute[0]


class _Writer:
    __slots__ = ("entity", "response")

    def __init__(self, entity: Mapping[str, Any], response: bool) -> None:
        self.entity = entity
        self.response = response

    def plain(self, value: Any) -> dict[str, Any]:
        if self.response:
            return {"type": _default_type(value), "value": value}
        return {"value": value}

    def attribute(self, raw: Any, name: str, v2_type: str | None) -> dict[str, Any]:
        attribute = _instance(raw, self.entity, name)
        kind = _ld_kind(attribute, self.entity, name, None)
        inferred, value = _v2_value(attribute, kind)
        out: dict[str, Any] = {"type": v2_type or inferred, "value": value}
        own = _VALUE_MEMBERS[kind]
        metadata: dict[str, Any] = {}
        for key, member in attribute.items():
            if key == "type" or key == own:
                continue
            if key == "observedAt":
                metadata[key] = {"type": "DateTime", "value": member}
            elif key in _PLAIN_MEMBERS:
                metadata[key] = self.plain(member)
            elif key == "previousValue":
                metadata[key] = {"type": out["type"], "value": member}
            elif key not in ATTRIBUTE_MEMBERS:
                metadata[key] = self.metadata(member, key, name)
        if metadata or self.response:
            out["metadata"] = metadata
        return out

    def metadata(self, raw: Any, name: str, parent: str) -> dict[str, Any]:
        kind = _ld_kind(raw, self.entity, name, parent)
        v2_type, value = _v2_value(raw, kind)
        return {"type": v2_type, "value": value}


def _entity_type(entity: Mapping[str, Any]) -> Any:
    entity_type = entity.get("type")
    if isinstance(entity_type, list):
        if len(entity_type) == 1:
            return entity_type[0]
        raise BadRequestData(
            f"entity {entity.get('id')!r} has the types {entity_type}; an NGSI-v2 entity has one"
        )
    return entity_type


def to_ngsiv2(
    entity: Mapping[str, Any],
    *,
    key_values: bool = False,
    response: bool = False,
    id_prefix: str | None = None,
    attribute_types: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The NGSI-v2 form of a normalized NGSI-LD entity (see the module documentation).

    `key_values`: bare values (`options=keyValues`), no types or metadata. `response`: the form a
    v2 server sends (every attribute with `metadata`, every metadata with a `type`) instead of
    the request form. `id_prefix`: taken off the front of the id when the id starts with it (the
    inverse of `from_ngsiv2(..., id_prefix=...)`). `attribute_types`: the v2 type of the named
    attributes, instead of the one the value's kind and JSON type give. Raises `BadRequestData`
    for an attribute that is not in normalized form, or an entity with several types.
    """
    if not isinstance(entity, Mapping):
        raise BadRequestData(f"an entity must be a JSON object, got {_kind_of(entity)}")
    overrides = attribute_types or {}
    writer = _Writer(entity, response)
    out: dict[str, Any] = {}
    if "id" in entity:
        entity_id = entity["id"]
        if id_prefix and isinstance(entity_id, str) and entity_id.startswith(id_prefix):
            entity_id = entity_id[len(id_prefix) :]
        out["id"] = entity_id
    if "type" in entity:
        out["type"] = _entity_type(entity)
    for name, raw in entity.items():
        if name in ENTITY_MEMBERS:
            continue
        if key_values:
            attribute = _instance(raw, entity, name)
            out[name] = _v2_value(attribute, _ld_kind(attribute, entity, name, None))[1]
        else:
            out[name] = writer.attribute(raw, name, overrides.get(name))
    return out


def ngsiv2_notification(
    subscription_id: str, entities: Iterable[Mapping[str, Any]], *, key_values: bool = False
) -> dict[str, Any]:
    """An NGSI-v2 notification body for NGSI-LD entities, as Orion-LD sends for its
    `x-ngsiv2-*` formats: `{"subscriptionId": ..., "data": [...]}` with each entity in the
    response form of `to_ngsiv2` (or keyValues). Send it as `application/json` with the header
    `Ngsiv2-AttrsFormat: normalized` (`keyValues` with `key_values=True`)."""
    return {
        "subscriptionId": subscription_id,
        "data": [to_ngsiv2(entity, key_values=key_values, response=True) for entity in entities],
    }


# -- reading ------------------------------------------------------------------------------------


def _is_object_ids(value: object) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(item, str) for item in value)


def _geo_point(value: object, where: str) -> dict[str, Any]:
    """A `geo:point` value (`"latitude, longitude"`) as a GeoJSON Point."""
    parts = value.split(",") if isinstance(value, str) else []
    try:
        latitude, longitude = (float(part) for part in parts)
    except ValueError:
        raise BadRequestData(
            f"{where}: a geo:point value is 'latitude, longitude', got {_kind_of(value)}"
        ) from None
    return {"type": "Point", "coordinates": [longitude, latitude]}


class _Reader:
    __slots__ = ("entity", "relationships")

    def __init__(self, entity: Mapping[str, Any], relationships: Collection[str]) -> None:
        self.entity = entity
        self.relationships = relationships

    def kind_and_value(
        self, raw: Mapping[str, Any], name: str, parent: str | None
    ) -> tuple[str, Any]:
        """The NGSI-LD kind and value of a v2 attribute or metadata object."""
        where = _where(self.entity, name, parent)
        v2_type = raw.get("type")
        if v2_type is not None and not isinstance(v2_type, str):
            raise BadRequestData(f"{where}: 'type' must be a string, got {_kind_of(v2_type)}")
        if "object" in raw:
            if v2_type != "Relationship" or "value" in raw:
                raise BadRequestData(
                    f"{where}: 'object' belongs only in a Relationship without 'value'"
                )
            value = raw["object"]
        else:
            value = raw.get("value")
        if v2_type == "DateTime" and isinstance(value, str):
            return "Property", {"@type": "DateTime", "@value": value}
        if v2_type in ("geo:json", "GeoProperty"):
            return "GeoProperty", value
        if v2_type == "geo:point":
            return "GeoProperty", _geo_point(value, where)
        if v2_type in _SIMPLE_LOCATIONS:
            raise BadRequestData(
                f"{where}: {v2_type} locations are not read; send the geometry as geo:json"
            )
        if v2_type == "Relationship" or (
            parent is None and name in self.relationships and _is_object_ids(value)
        ):
            if not _is_object_ids(value):
                raise BadRequestData(
                    f"{where} is a Relationship, but its value is {_kind_of(value)}, not an "
                    "entity id or a list of them"
                )
            return "Relationship", value
        if v2_type in _KEPT_TYPES:
            return v2_type, value
        return "Property", value

    def attribute(self, raw: Any, name: str) -> dict[str, Any]:
        where = _where(self.entity, name)
        if not isinstance(raw, dict):
            raise BadRequestData(
                f"{where} is not an NGSI-v2 attribute: got {_kind_of(raw)} (expected an object "
                "with 'type' and 'value'; keyValues entities carry no types to read)"
            )
        unknown = [key for key in raw if key not in _V2_ATTRIBUTE_KEYS]
        if unknown:
            raise BadRequestData(
                f"{where} has {unknown[0]!r}; an NGSI-v2 attribute has 'type', 'value' and "
                "'metadata'"
            )
        kind, value = self.kind_and_value(raw, name, None)
        out: dict[str, Any] = {"type": kind, _VALUE_MEMBERS[kind]: value}
        # Orion-LD's experimental path leaves these beside the value
        for key in ("observedAt", *_PLAIN_MEMBERS):
            if key in raw:
                out[key] = self.member(raw[key], key, name)
        metadata = raw.get("metadata")
        if metadata is None:
            return out
        if not isinstance(metadata, dict):
            raise BadRequestData(f"{where}: 'metadata' must be an object, got {_kind_of(metadata)}")
        for key, item in metadata.items():
            if key == "observedAt" or key in _PLAIN_MEMBERS:
                out[key] = self.member(item, key, name)
            elif key == "previousValue":
                out[key] = item.get("value") if isinstance(item, dict) else item
            elif key in ATTRIBUTE_MEMBERS:
                raise BadRequestData(
                    f"{_where(self.entity, key, name)} is named like a member of every NGSI-LD "
                    "attribute and cannot be a sub-attribute"
                )
            else:
                out[key] = self.metadata(item, key, name)
        return out

    def member(self, raw: Any, name: str, parent: str) -> str:
        """`observedAt`, `unitCode` or `datasetId`: a metadata object or a bare string."""
        value = raw.get("value") if isinstance(raw, dict) else raw
        if not isinstance(value, str):
            raise BadRequestData(
                f"{_where(self.entity, name, parent)} must be a string, got {_kind_of(value)}"
            )
        return value

    def metadata(self, raw: Any, name: str, parent: str) -> dict[str, Any]:
        where = _where(self.entity, name, parent)
        if not isinstance(raw, dict) or not set(raw) <= _V2_METADATA_KEYS:
            raise BadRequestData(
                f"{where} is not an NGSI-v2 metadata: got {_kind_of(raw)} (expected an object "
                "with 'type' and 'value')"
            )
        kind, value = self.kind_and_value(raw, name, parent)
        return {"type": kind, _VALUE_MEMBERS[kind]: value}


def from_ngsiv2(
    entity: Mapping[str, Any],
    *,
    id_prefix: str | None = None,
    relationships: Collection[str] = _NO_NAMES,
) -> dict[str, Any]:
    """The normalized NGSI-LD form of an NGSI-v2 normalized entity (see the module
    documentation).

    `id_prefix`: put in front of the id (`urn:ngsi-ld:AirQualityObserved:`), for v2 ids that are
    not URIs. `relationships`: attributes read as Relationships when their value is a string or
    a list of strings, whatever their v2 type. Raises `BadRequestData` naming the attribute when
    the input is not NGSI-v2 normalized (a bare keyValues value, a metadata without `value`
    object, a member NGSI-LD reserves).
    """
    if not isinstance(entity, Mapping):
        raise BadRequestData(f"an entity must be a JSON object, got {_kind_of(entity)}")
    if relationships and not isinstance(relationships, frozenset | set | dict):
        relationships = frozenset(relationships)
    reader = _Reader(entity, relationships)
    out: dict[str, Any] = {}
    for name, raw in entity.items():
        if name == "id":
            if not isinstance(raw, str):
                raise BadRequestData(f"an entity id must be a string, got {_kind_of(raw)}")
            out["id"] = f"{id_prefix}{raw}" if id_prefix else raw
        elif name == "type":
            out["type"] = raw
        elif name in ENTITY_MEMBERS:
            raise BadRequestData(
                f"{_where(entity, name)} is named like a member of every NGSI-LD entity"
            )
        else:
            out[name] = reader.attribute(raw, name)
    return out
