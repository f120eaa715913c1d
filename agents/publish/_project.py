"""The projection of one entity: from the city's full entity to what other cities may see.

`Projector(rules, key=...).project(entity)` takes an entity in normalized form (short names, as
read with its type's @context) and returns the public entity, or None when its type is not
published. What it does, in order:

1. Only the attributes the type's rule lists are kept; every other attribute, `scope` and the
   system attributes (createdAt, modifiedAt) are left out. Of a kept attribute only its core
   members are kept (type, value/object/languageMap/..., unitCode, observedAt, datasetId):
   sub-attributes, which can carry gateway or device details, never leave.
2. Device identifiers: a Relationship to a device (`refDevice`, or any object
   `urn:ngsi-ld:Device:...`) and the identifier attributes of `DEVICE_ID_ATTRIBUTES` (devEUI,
   serialNumber, macAddress...) are removed (`remove`) or replaced by a pseudonym
   (`pseudonymize`). The id of a Device entity is always pseudonymized, and so is every EUI-64
   (16 hex digits, as in a DevEUI-derived id or name) inside an entity id or a string value.
   A pseudonym is `p` + the first 20 hex digits of HMAC-SHA256(key, identifier): stable for a
   key, not reversible without it; a Device's pseudonymized id is the same wherever it appears,
   so a pseudonymized `refDevice` still leads to the public Device.
3. Coordinates: every number of every GeoJSON geometry (any geometry type, in any attribute or
   value, `bbox` included) and every latitude/longitude pair (`lat`/`latitude`,
   `lon`/`lng`/`longitude` members) is rounded to the rule's decimals.
4. Suppression: an attribute named in `suppress_below` is published only when its value is a
   number at or above the threshold (per instance); a smaller count, or a value that is not a
   number, is left out.
5. Deleted attributes a notification carries (`urn:ngsi-ld:null`) are left out.

The result is the whole public entity: the projection writes it with replace semantics, so a
suppressed or deleted attribute disappears from the public tenant as well.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from agents.publish._rules import DeviceIdentifiers, PublishRules, TypeRule

__all__ = [
    "DEVICE_ID_ATTRIBUTES",
    "DEVICE_RELATIONSHIPS",
    "Projector",
    "round_coordinates",
]

DEVICE_PREFIX: Final = "urn:ngsi-ld:Device:"
DEVICE_RELATIONSHIPS: Final = frozenset({"refDevice", "refDevices", "hasDevice", "controlledBy"})
"""Relationships that name a device whatever their object looks like."""
DEVICE_ID_ATTRIBUTES: Final = frozenset(
    {
        "devEUI",
        "devEui",
        "dev_eui",
        "deviceEUI",
        "joinEUI",
        "devAddr",
        "deviceId",
        "device_id",
        "serialNumber",
        "macAddress",
        "ipAddress",
        "imei",
        "imsi",
        "gatewayId",
        "gatewayEUI",
    }
)
"""Attributes whose value identifies a device: removed, or pseudonymized."""
_CORE_MEMBERS: Final = frozenset(
    {
        "type",
        "value",
        "object",
        "objectType",
        "languageMap",
        "vocab",
        "json",
        "valueList",
        "objectList",
        "unitCode",
        "observedAt",
        "datasetId",
        "lang",
    }
)
_NULL: Final = "urn:ngsi-ld:null"
_EUI: Final = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{16}(?![0-9A-Fa-f])")
_GEOMETRY_TYPES: Final = frozenset(
    {
        "Point",
        "LineString",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
        "GeometryCollection",
    }
)
_LATITUDE: Final = ("lat", "latitude")
_LONGITUDE: Final = ("lon", "lng", "long", "longitude")


def _round(value: Any, decimals: int) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return value
    rounded = round(float(value), decimals)
    return 0.0 if rounded == 0 else rounded


def _round_nested(value: Any, decimals: int) -> Any:
    if isinstance(value, list):
        return [_round_nested(item, decimals) for item in value]
    return _round(value, decimals)


def round_coordinates(value: Any, decimals: int) -> Any:
    """`value` with every coordinate in it rounded (see the module documentation, step 3);
    a new structure, the argument is not changed."""
    if isinstance(value, list):
        return [round_coordinates(item, decimals) for item in value]
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    geometry = value.get("type") in _GEOMETRY_TYPES
    for key, item in value.items():
        if geometry and key in ("coordinates", "bbox"):
            out[key] = _round_nested(item, decimals)
        elif key in _LATITUDE or key in _LONGITUDE:
            out[key] = (
                _round(item, decimals)
                if not isinstance(item, (dict, list))
                else (round_coordinates(item, decimals))
            )
        else:
            out[key] = round_coordinates(item, decimals)
    return out


class Projector:
    """Projects entities by `rules`; `key` is the secret of the pseudonyms (see `read_key`).
    Stateless and thread-safe."""

    def __init__(self, rules: PublishRules, *, key: bytes) -> None:
        if not key:
            raise ValueError("the pseudonym key is empty")
        self.rules = rules
        self._key = key

    # --- identifiers ----------------------------------------------------------------------

    def pseudonym(self, identifier: str) -> str:
        """The stable pseudonym of an identifier (a DevEUI is read in upper case)."""
        text = identifier.upper() if _EUI.fullmatch(identifier) else identifier
        digest = hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).hexdigest()
        return "p" + digest[:20]

    def _scrub(self, text: str) -> str:
        """`text` with every EUI-64 in it replaced by its pseudonym."""
        return _EUI.sub(lambda m: self.pseudonym(m.group(0)), text)

    def public_id(self, entity_id: str, type_name: str | None = None) -> str:
        """The id an entity gets in the public tenant: a Device's id pseudonymized whole, any
        other id with the EUIs in it pseudonymized."""
        if type_name == "Device" or entity_id.startswith(DEVICE_PREFIX):
            return DEVICE_PREFIX + self.pseudonym(entity_id)
        return self._scrub(entity_id)

    def _device_object(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.public_id(value, "Device")
        if isinstance(value, list):
            return [self._device_object(item) for item in value]
        if isinstance(value, Mapping) and "object" in value:
            return {**value, "object": self._device_object(value["object"])}
        return value

    # --- projection -----------------------------------------------------------------------

    def project(self, entity: Mapping[str, Any]) -> dict[str, Any] | None:
        """The public form of a normalized entity, or None when its type is not published
        (see the module documentation). The argument is not changed."""
        type_name = entity.get("type")
        if isinstance(type_name, list):
            type_name = next((t for t in type_name if self.rules.rule(t) is not None), None)
        if not isinstance(type_name, str):
            return None
        rule = self.rules.rule(type_name)
        entity_id = entity.get("id")
        if rule is None or not isinstance(entity_id, str):
            return None
        out: dict[str, Any] = {"id": self.public_id(entity_id, type_name), "type": type_name}
        for name in rule.attributes:
            if name not in entity:
                continue
            attribute = self._attribute(name, entity[name], rule)
            if attribute is not None:
                out[name] = attribute
        return out

    def _attribute(self, name: str, attribute: Any, rule: TypeRule) -> Any:
        instances = attribute if isinstance(attribute, list) else [attribute]
        kept = [
            found
            for found in (self._instance(name, item, rule) for item in instances)
            if found is not None
        ]
        if not kept:
            return None
        return kept if isinstance(attribute, list) else kept[0]

    def _instance(self, name: str, instance: Any, rule: TypeRule) -> dict[str, Any] | None:
        if not isinstance(instance, Mapping):
            return None
        out = {key: instance[key] for key in _CORE_MEMBERS if key in instance}
        kind = out.get("type")
        if kind is None:
            kind = out["type"] = "Relationship" if "object" in out else "Property"
        if any(out.get(member) == _NULL for member in ("value", "object")):
            return None
        mode: DeviceIdentifiers = self.rules.identifiers(rule)
        if kind in ("Relationship", "ListRelationship") and self._names_device(name, out):
            if mode == "remove":
                return None
            for member in ("object", "objectList"):
                if member in out:
                    out[member] = self._device_object(out[member])
            return out
        if name in DEVICE_ID_ATTRIBUTES:
            if mode == "remove" or not isinstance(out.get("value"), str):
                return None
            out["value"] = self.pseudonym(out["value"])
            return out
        threshold = rule.suppress_below.get(name)
        if threshold is not None:
            value = out.get("value")
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < threshold
            ):
                return None
        rounded: dict[str, Any] = round_coordinates(out, self.rules.decimals(rule))
        return {key: self._scrub_strings(item) for key, item in rounded.items()}

    @staticmethod
    def _names_device(name: str, instance: Mapping[str, Any]) -> bool:
        if name in DEVICE_RELATIONSHIPS:
            return True
        objects = instance.get("object", instance.get("objectList"))
        items = objects if isinstance(objects, list) else [objects]
        return any(
            (isinstance(item, str) and item.startswith(DEVICE_PREFIX))
            or (isinstance(item, Mapping) and str(item.get("object", "")).startswith(DEVICE_PREFIX))
            for item in items
        )

    def _scrub_strings(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._scrub(value)
        if isinstance(value, list):
            return [self._scrub_strings(item) for item in value]
        if isinstance(value, Mapping):
            return {key: self._scrub_strings(item) for key, item in value.items()}
        return value
