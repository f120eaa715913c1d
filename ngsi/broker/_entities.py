"""Entity operations on the expanded, normalized form: validation, system attributes, merges.

Everything here is pure: functions take the stored document (a dict, owned by the caller) and
the request's fragment, both already expanded (attribute names and types are IRIs, the members
of an attribute keep their core names: `type`, `value`, `object`, `observedAt`, `datasetId`...),
and return new documents plus what changed. Storage and HTTP are the caller's business.

An attribute with a single instance is stored as an object; one with several instances
(distinguished by `datasetId`, at most one without) as a list of objects, as in the normalized
representation.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ngsi._errors import BadRequestData, ResourceNotFound

__all__ = [
    "ATTRIBUTE_TYPES",
    "ENTITY_MEMBERS",
    "NGSI_LD_NULL",
    "SYSTEM_MEMBERS",
    "AttributeOutcome",
    "append_attributes",
    "attribute_names",
    "delete_attribute",
    "entity_types",
    "format_time",
    "instances",
    "merge_attributes",
    "merge_entity",
    "new_entity",
    "partial_update_attribute",
    "prepare_fragment",
    "replace_attribute",
    "replace_entity",
    "update_attributes",
    "validate_fragment",
]

ATTRIBUTE_TYPES = frozenset(
    {
        "Property",
        "Relationship",
        "GeoProperty",
        "LanguageProperty",
        "VocabProperty",
        "ListProperty",
        "ListRelationship",
        "JsonProperty",
    }
)
ENTITY_MEMBERS = frozenset({"id", "type", "scope", "createdAt", "modifiedAt", "deletedAt"})
"""Members of an entity that are not attributes."""
SYSTEM_MEMBERS = frozenset({"createdAt", "modifiedAt", "deletedAt"})
_ATTRIBUTE_MEMBERS = frozenset(
    {
        "type",
        "value",
        "object",
        "objectList",
        "objectType",
        "languageMap",
        "vocab",
        "valueList",
        "json",
        "observedAt",
        "unitCode",
        "datasetId",
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "lang",
        "instanceId",
    }
)
_REQUIRED_MEMBER = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
    "JsonProperty": "json",
}


_LAST_FORMATTED: tuple[datetime, str] | None = None


def format_time(moment: datetime) -> str:
    """UTC time as NGSI-LD system attributes carry it: `2025-01-31T12:00:00.123Z`."""
    global _LAST_FORMATTED
    last = _LAST_FORMATTED
    if last is not None and last[0] == moment:
        return last[1]
    if moment.year >= 1000:
        text = moment.isoformat(timespec="milliseconds")[:23] + "Z"
    else:
        text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    _LAST_FORMATTED = (moment, text)
    return text


def entity_types(doc: Mapping[str, Any]) -> tuple[str, ...]:
    """The entity's expanded types, in order."""
    value = doc.get("type")
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def attribute_names(doc: Mapping[str, Any]) -> list[str]:
    """The entity's expanded attribute names."""
    return [k for k in doc if k not in ENTITY_MEMBERS and not k.startswith("@")]


def instances(attribute: Any) -> list[dict[str, Any]]:
    """The instances of a stored attribute (one object or a list of them)."""
    if isinstance(attribute, list):
        return attribute
    return [attribute]


def _pack(items: list[dict[str, Any]]) -> dict[str, Any] | list[dict[str, Any]]:
    return items[0] if len(items) == 1 else items


# --- validation and system attributes ----------------------------------------------------------


NGSI_LD_NULL = "urn:ngsi-ld:null"
"""The value that deletes an attribute instance in an update (NGSI-LD Null)."""
_DELETE = "@delete"


def _is_null(instance: Mapping[str, Any]) -> bool:
    if NGSI_LD_NULL not in instance.values() and "languageMap" not in instance:
        return False
    for member in ("value", "object", "vocab", "json", "valueList", "objectList"):
        if instance.get(member) == NGSI_LD_NULL:
            return True
    language_map = instance.get("languageMap")
    return language_map.__class__ is dict and language_map.get("@none") == NGSI_LD_NULL


def _prepare(name: str, instance: Any, stamp: str, *, where: str) -> dict[str, Any]:
    """A checked copy of one attribute instance, its sub-attributes too, stamped with
    createdAt = modifiedAt = `stamp` (system members sent by the client are dropped).

    An instance whose value is NGSI-LD Null (`urn:ngsi-ld:null`) comes back as a deletion
    marker `{"@delete": True, "datasetId": ...}`.
    """
    if instance.__class__ is not dict:
        raise BadRequestData(f"{where}: attribute {name!r} must be a JSON object, got {instance!r}")
    if _is_null(instance):
        marker: dict[str, Any] = {_DELETE: True}
        if instance.get("datasetId") is not None:
            marker["datasetId"] = instance["datasetId"]
        return marker
    kind = instance.get("type")
    required = _REQUIRED_MEMBER.get(kind) if kind.__class__ is str else None
    if required is None:
        raise BadRequestData(
            f"{where}: attribute {name!r} has type {kind!r}; expected one of "
            + ", ".join(sorted(ATTRIBUTE_TYPES))
        )
    out: dict[str, Any]
    if instance.keys() <= _ATTRIBUTE_MEMBERS:
        out = dict(instance)
        if "createdAt" in out or "modifiedAt" in out or "deletedAt" in out:
            for member in SYSTEM_MEMBERS:
                out.pop(member, None)
    else:
        out = {}
        for member, value in instance.items():
            if member in _ATTRIBUTE_MEMBERS:
                if member not in SYSTEM_MEMBERS:
                    out[member] = value
            elif member[:1] == "@":
                out[member] = value
            else:
                inner = f"{where}, attribute {name!r}"
                if value.__class__ is list:
                    out[member] = [_prepare(member, item, stamp, where=inner) for item in value]
                else:
                    out[member] = _prepare(member, value, stamp, where=inner)
    main = out.get(required)
    if main is None:
        raise BadRequestData(f"{where}: {kind} {name!r} needs a non-null {required!r}")
    if kind == "Relationship":
        targets = main if main.__class__ is list else [main]
        if not targets or not all(t.__class__ is str and ":" in t for t in targets):
            raise BadRequestData(
                f"{where}: Relationship {name!r} needs an 'object' that is a URI, got {main!r}"
            )
    elif kind == "GeoProperty":
        _check_geometry(name, main, where=where)
    elif kind == "LanguageProperty" and main.__class__ is not dict:
        raise BadRequestData(f"{where}: LanguageProperty {name!r} needs a languageMap object")
    observed = out.get("observedAt")
    if observed is not None and not _is_datetime(observed):
        raise BadRequestData(
            f"{where}: attribute {name!r} has observedAt {observed!r}; expected an ISO 8601 "
            "date-time such as 2025-01-31T12:00:00Z"
        )
    dataset = out.get("datasetId")
    if dataset is not None and not (dataset.__class__ is str and ":" in dataset):
        raise BadRequestData(
            f"{where}: attribute {name!r} has datasetId {dataset!r}; expected a URI"
        )
    out["createdAt"] = stamp
    out["modifiedAt"] = stamp
    return out


_SIMPLE_MEMBERS = {
    "Property": frozenset({"type", "value", "unitCode", "observedAt"}),
    "Relationship": frozenset({"type", "object", "observedAt"}),
    "GeoProperty": frozenset({"type", "value", "observedAt"}),
}


def _prepare_simple(instance: Any, stamp: str, *, owned: bool = False) -> dict[str, Any] | None:
    """`_prepare` of the common instance (a Property, a Relationship to one URI or a Point
    GeoProperty, without datasetId or system members, not NGSI-LD Null, its sub-attributes
    common instances too), or None when the instance needs the full check (which also words
    the error). `owned`: the caller gives the instance up, so it is stamped in place when it
    has no sub-attributes (else copied, as always)."""
    if instance.__class__ is not dict:
        return None
    kind = instance.get("type")
    members = _SIMPLE_MEMBERS.get(kind) if kind.__class__ is str else None
    if members is None:
        return None
    subs: dict[str, dict[str, Any]] | None = None
    if not instance.keys() <= members:
        subs = {}
        for member, value in instance.items():
            if member in members:
                continue
            if member in _ATTRIBUTE_MEMBERS or member[:1] == "@":
                return None
            sub = _prepare_simple(value, stamp)
            if sub is None:
                return None
            subs[member] = sub
    if kind == "Relationship":
        target = instance.get("object")
        if target.__class__ is not str or ":" not in target or target == NGSI_LD_NULL:
            return None
    else:
        value = instance.get("value")
        if value is None or value == NGSI_LD_NULL:
            return None
        if kind == "GeoProperty" and not _is_plain_point(value):
            return None
    observed = instance.get("observedAt")
    if (
        observed is not None
        and (observed.__class__ is not str or observed not in _GOOD_TIMES)
        and not _is_datetime(observed)
    ):
        return None
    if subs:
        out = instance.copy()
        out.update(subs)
    else:
        out = instance if owned else instance.copy()
    out["createdAt"] = stamp
    out["modifiedAt"] = stamp
    return out


def _is_plain_point(value: Any) -> bool:
    """Whether `value` is exactly `{"type": "Point", "coordinates": [lon, lat(, alt)]}` with
    finite numbers in range: the common geometry, valid without the full GeoJSON check."""
    if value.__class__ is not dict or len(value) != 2 or value.get("type") != "Point":
        return False
    position = value.get("coordinates")
    if position.__class__ is not list or not 2 <= len(position) <= 3:
        return False
    for number in position:
        if number.__class__ is not float and number.__class__ is not int:
            return False
    longitude, latitude = position[0], position[1]
    return (
        -180 <= longitude <= 180
        and -90 <= latitude <= 90
        and (len(position) == 2 or math.isfinite(position[2]))
    )


def _check_geometry(name: str, value: Any, *, where: str) -> None:
    if _is_plain_point(value):
        return
    from ngsi._geometry import parse_geometry

    try:
        parse_geometry(value)
    except BadRequestData as exc:
        raise BadRequestData(f"{where}: GeoProperty {name!r}: {exc.detail}") from None
    except (ValueError, TypeError) as exc:
        raise BadRequestData(f"{where}: GeoProperty {name!r}: {exc}") from None


_GOOD_TIMES: set[str] = set()


def _is_datetime(value: Any) -> bool:
    if value.__class__ is not str:
        return False
    if value in _GOOD_TIMES:
        return True
    if len(value) < 11 or "T" not in value:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    if len(_GOOD_TIMES) > 10_000:
        _GOOD_TIMES.clear()
    _GOOD_TIMES.add(value)
    return True


def prepare_fragment(
    fragment: Mapping[str, Any], *, stamp: str, where: str, owned: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Check every attribute of an expanded fragment; its stamped instances per attribute name.

    A fragment is an entity body or an attribute map, expanded; entity members (`id`, `type`,
    system attributes) are skipped. Several instances of one attribute need distinct datasetIds.
    `owned`: the caller gives the fragment up (a request's own parsed body, used for nothing
    else), so common instances are stamped in place instead of copied.
    """
    result: dict[str, list[dict[str, Any]]] = {}
    for name, value in fragment.items():
        if name in ENTITY_MEMBERS or name[:1] == "@":
            continue
        if value.__class__ is not list:
            simple = _prepare_simple(value, stamp, owned=owned)
            result[name] = [simple or _prepare(name, value, stamp, where=where)]
            continue
        if not value:
            raise BadRequestData(f"{where}: attribute {name!r} is an empty list")
        checked = [_prepare(name, item, stamp, where=where) for item in value]
        datasets = [item.get("datasetId") for item in checked]
        if len(set(datasets)) != len(datasets):
            raise BadRequestData(
                f"{where}: attribute {name!r} has two instances with the same datasetId"
            )
        result[name] = checked
    return result


def validate_fragment(
    fragment: Mapping[str, Any], *, where: str
) -> dict[str, list[dict[str, Any]]]:
    """`prepare_fragment` for checking only (the stamps are placeholders)."""
    return prepare_fragment(fragment, stamp="", where=where)


def _types_value(types: Any, *, where: str) -> str | list[str]:
    if isinstance(types, str) and types:
        return types
    if isinstance(types, list) and types and all(isinstance(t, str) and t for t in types):
        unique = list(dict.fromkeys(types))
        return unique[0] if len(unique) == 1 else unique
    raise BadRequestData(f"{where}: 'type' must be a non-empty string or list of strings")


# --- operations -------------------------------------------------------------------------------


def new_entity(body: Mapping[str, Any], *, now: datetime, owned: bool = False) -> dict[str, Any]:
    """A validated, stamped document for a new entity from an expanded entity body (`owned`:
    the caller gives the body up, see `prepare_fragment`)."""
    entity_id = body.get("id")
    where = f"entity {entity_id!r}"
    if "type" not in body:
        raise BadRequestData(f"{where}: 'type' is missing")
    stamp = format_time(now)
    doc: dict[str, Any] = {"id": entity_id, "type": _types_value(body["type"], where=where)}
    if "scope" in body:
        doc["scope"] = body["scope"]
    for name, items in prepare_fragment(body, stamp=stamp, where=where, owned=owned).items():
        kept = [item for item in items if _DELETE not in item]
        if kept:
            doc[name] = kept[0] if len(kept) == 1 else kept
    doc["createdAt"] = stamp
    doc["modifiedAt"] = stamp
    return doc


def replace_entity(
    current: Mapping[str, Any], body: Mapping[str, Any], *, now: datetime
) -> tuple[dict[str, Any], set[str]]:
    """The entity replaced whole by `body` (createdAt kept); and the attributes touched."""
    doc = new_entity(body, now=now)
    created = current.get("createdAt")
    if isinstance(created, str):
        doc["createdAt"] = created
    changed = set(attribute_names(current)) | set(attribute_names(doc))
    return doc, changed


@dataclass(kw_only=True)
class AttributeOutcome:
    """What an attribute operation did: attributes written and those left alone, with why."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)


def _write_instances(
    doc: dict[str, Any], name: str, items: list[dict[str, Any]], *, overwrite: bool
) -> bool:
    """Put stamped `items` into attribute `name`, replacing the instances with the same
    datasetId (keeping their createdAt); False if skipped because of `overwrite=False`."""
    current = doc.get(name)
    if len(items) == 1:
        item = items[0]
        if _DELETE not in item:
            if current is None:
                doc[name] = item
                return True
            if current.__class__ is dict and current.get("datasetId") == item.get("datasetId"):
                if not overwrite:
                    return False
                created = current.get("createdAt")
                if created is not None:
                    item["createdAt"] = created
                doc[name] = item
                return True
    elif current is None and not any(_DELETE in i for i in items):
        doc[name] = items
        return True
    existing = instances(current) if current is not None else []
    if not overwrite:
        present = {e.get("datasetId") for e in existing}
        if any(i.get("datasetId") in present for i in items):
            return False
    by_dataset = {e.get("datasetId"): e for e in existing}
    for item in items:
        dataset = item.get("datasetId")
        if _DELETE in item:
            by_dataset.pop(dataset, None)
            continue
        old = by_dataset.get(dataset)
        if old is not None and old.get("createdAt") is not None:
            item["createdAt"] = old["createdAt"]
        by_dataset[dataset] = item
    if by_dataset:
        doc[name] = _pack(list(by_dataset.values()))
    else:
        doc.pop(name, None)
    return True


def append_attributes(
    current: Mapping[str, Any],
    fragment: Mapping[str, Any],
    *,
    now: datetime,
    overwrite: bool = True,
    where: str,
    owned: bool = False,
) -> tuple[dict[str, Any], AttributeOutcome]:
    """Append (POST .../attrs): add new attributes, overwrite existing ones unless told not to
    (`owned`: see `prepare_fragment`)."""
    stamp = format_time(now)
    checked = prepare_fragment(fragment, stamp=stamp, where=where, owned=owned)
    doc = dict(current)
    outcome = AttributeOutcome()
    for name, items in checked.items():
        if _write_instances(doc, name, items, overwrite=overwrite):
            outcome.updated.append(name)
        else:
            outcome.not_updated.append((name, "attribute exists and options=noOverwrite"))
    if "scope" in fragment:
        _rescope(doc, fragment["scope"], replace=overwrite, where=where)
        outcome.updated.append("scope")
    _retype(doc, fragment, where=where)
    if outcome.updated:
        doc["modifiedAt"] = stamp
    return doc, outcome


def update_attributes(
    current: Mapping[str, Any], fragment: Mapping[str, Any], *, now: datetime, where: str
) -> tuple[dict[str, Any], AttributeOutcome]:
    """Update (PATCH .../attrs): replace existing attribute instances; skip unknown ones."""
    stamp = format_time(now)
    checked = prepare_fragment(fragment, stamp=stamp, where=where)
    doc = dict(current)
    outcome = AttributeOutcome()
    for name, items in checked.items():
        existing = instances(doc[name]) if name in doc else []
        present = {e.get("datasetId") for e in existing}
        missing = [i.get("datasetId") for i in items if i.get("datasetId") not in present]
        if missing:
            reason = "attribute does not exist"
            if existing:
                reason = f"attribute has no instance with datasetId {missing[0]!r}"
            outcome.not_updated.append((name, reason))
            continue
        _write_instances(doc, name, items, overwrite=True)
        outcome.updated.append(name)
    if "scope" in fragment:
        if "scope" in doc:
            _rescope(doc, fragment["scope"], replace=True, where=where)
            outcome.updated.append("scope")
        else:
            outcome.not_updated.append(("scope", "the entity has no scope"))
    if "type" in fragment:
        _retype(doc, fragment, where=where)
        outcome.updated.append("type")
    if outcome.updated:
        doc["modifiedAt"] = stamp
    return doc, outcome


def _scopes(value: Any, *, where: str) -> list[str]:
    items = value if value.__class__ is list else [value]
    if not items or not all(i.__class__ is str and i.startswith("/") for i in items):
        raise BadRequestData(f"{where}: scope must be a string or list of strings like /a/b")
    return list(items)


def _rescope(doc: dict[str, Any], value: Any, *, replace: bool, where: str) -> None:
    new = _scopes(value, where=where)
    if not replace and "scope" in doc:
        new = list(dict.fromkeys(_scopes(doc["scope"], where=where) + new))
    doc["scope"] = new[0] if len(new) == 1 else new


def merge_entity(
    current: Mapping[str, Any],
    body: Mapping[str, Any],
    *,
    now: datetime,
    overwrite: bool = True,
    owned: bool = False,
) -> tuple[dict[str, Any], set[str]]:
    """Merge an entity body into the stored entity (upsert/update with options=update).

    Each attribute in the body replaces the stored instance with the same datasetId (all
    others stay); `overwrite=False` keeps existing attributes (options=noOverwrite); `owned`:
    see `prepare_fragment`.
    """
    where = f"entity {current.get('id')!r}"
    doc, outcome = append_attributes(
        current, body, now=now, overwrite=overwrite, where=where, owned=owned
    )
    return doc, set(outcome.updated)


def _retype(doc: dict[str, Any], fragment: Mapping[str, Any], *, where: str) -> None:
    if "type" not in fragment:
        return
    if fragment["type"] == doc.get("type") and doc["type"].__class__ is str:
        return
    old = list(entity_types(doc))
    new = _types_value(fragment["type"], where=where)
    merged = list(dict.fromkeys(old + ([new] if isinstance(new, str) else new)))
    doc["type"] = merged[0] if len(merged) == 1 else merged


def partial_update_attribute(
    current: Mapping[str, Any],
    name: str,
    fragment: Mapping[str, Any],
    *,
    now: datetime,
    where: str,
) -> dict[str, Any]:
    """Partial attribute update (PATCH .../attrs/{attr}): merge members into one instance.

    The instance is the one with the fragment's `datasetId` (the default instance without it).
    Raises ResourceNotFound when the entity has no such attribute instance.
    """
    if not isinstance(fragment, Mapping) or not fragment:
        raise BadRequestData(f"{where}: the attribute fragment must be a non-empty JSON object")
    if name not in current:
        raise ResourceNotFound(f"{where} has no attribute {name!r}")
    dataset = fragment.get("datasetId")
    existing = instances(current[name])
    target = next((e for e in existing if e.get("datasetId") == dataset), None)
    if target is None:
        raise ResourceNotFound(
            f"{where}: attribute {name!r} has no instance with datasetId {dataset!r}"
        )
    if _is_null(fragment):
        kept = [e for e in existing if e is not target]
        doc = dict(current)
        if kept:
            doc[name] = _pack(kept)
        else:
            del doc[name]
        doc["modifiedAt"] = format_time(now)
        return doc
    merged = copy.deepcopy(target)
    for member, value in fragment.items():
        if member in SYSTEM_MEMBERS:
            continue
        merged[member] = value
    if merged.get("type") == "Property" and "object" in fragment and "value" not in fragment:
        raise BadRequestData(
            f"{where}: attribute {name!r} is a Property: send 'value', not 'object'"
        )
    if "type" in fragment and fragment["type"] != target.get("type"):
        raise BadRequestData(
            f"{where}: attribute {name!r} is a {target.get('type')}; a partial update cannot "
            f"change it to {fragment['type']!r}"
        )
    stamp = format_time(now)
    stamped = _prepare(name, merged, stamp, where=where)
    if target.get("createdAt") is not None:
        stamped["createdAt"] = target["createdAt"]
    doc = dict(current)
    doc[name] = _pack([stamped if e is target else e for e in existing])
    doc["modifiedAt"] = stamp
    return doc


def delete_attribute(
    current: Mapping[str, Any],
    name: str,
    *,
    now: datetime,
    dataset_id: str | None = None,
    delete_all: bool = False,
    where: str,
) -> dict[str, Any]:
    """Remove an attribute instance (the default one, the `dataset_id` one, or all of them);
    `scope` removes the entity's scope."""
    if name not in current:
        raise ResourceNotFound(f"{where} has no attribute {name!r}")
    doc = dict(current)
    if delete_all or name == "scope":
        del doc[name]
    else:
        existing = instances(current[name])
        kept = [e for e in existing if e.get("datasetId") != dataset_id]
        if len(kept) == len(existing):
            raise ResourceNotFound(
                f"{where}: attribute {name!r} has no instance with datasetId {dataset_id!r}"
            )
        if kept:
            doc[name] = _pack(kept)
        else:
            del doc[name]
    doc["modifiedAt"] = format_time(now)
    return doc


def touched(names: Iterable[str]) -> frozenset[str]:
    return frozenset(names)


def merge_attributes(
    current: Mapping[str, Any], fragment: Mapping[str, Any], *, now: datetime, where: str
) -> tuple[dict[str, Any], set[str]]:
    """Merge Entity (PATCH /entities/{id}): attributes in the fragment are merged member by
    member into the stored instance with the same datasetId (others kept), added when new,
    deleted when NGSI-LD Null; types are added; a scope replaces the stored one."""
    stamp = format_time(now)
    checked = prepare_fragment(fragment, stamp=stamp, where=where)
    doc = dict(current)
    changed: set[str] = set()
    for name, items in checked.items():
        existing = {e.get("datasetId"): e for e in instances(doc[name])} if name in doc else {}
        for item in items:
            dataset = item.get("datasetId")
            old = existing.get(dataset)
            if _DELETE in item:
                existing.pop(dataset, None)
            elif old is None or old.get("type") != item.get("type"):
                existing[dataset] = item
            else:
                merged = dict(old)
                merged.update((k, v) for k, v in item.items() if k != "createdAt")
                existing[dataset] = merged
        if existing:
            doc[name] = _pack(list(existing.values()))
        else:
            doc.pop(name, None)
        changed.add(name)
    if "scope" in fragment:
        _rescope(doc, fragment["scope"], replace=True, where=where)
    _retype(doc, fragment, where=where)
    doc["modifiedAt"] = stamp
    return doc, changed


def replace_attribute(
    current: Mapping[str, Any],
    name: str,
    fragment: Mapping[str, Any],
    *,
    now: datetime,
    where: str,
) -> dict[str, Any]:
    """Replace Attribute (PUT /entities/{id}/attrs/{attr}): the instance with the fragment's
    datasetId is replaced whole; ResourceNotFound when the entity has no such attribute."""
    if name not in current:
        raise ResourceNotFound(f"{where} has no attribute {name!r}")
    stamp = format_time(now)
    item = _prepare(name, dict(fragment), stamp, where=where)
    doc = dict(current)
    _write_instances(doc, name, [item], overwrite=True)
    doc["modifiedAt"] = stamp
    return doc
