"""From stored documents to response bodies: projection, system attributes, compaction, format.

`EntityView` holds what a request asked for (format, sysAttrs, attrs/pick/omit, the context);
`EntityView.render(doc)` turns one stored document (expanded, with system attributes) into the
representation to send. `feature(...)` builds GeoJSON features for `application/geo+json`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ngsi._context import Context, compact_entity
from ngsi._representations import to_concise, to_key_values
from ngsi.broker._entities import ENTITY_MEMBERS, SYSTEM_MEMBERS

__all__ = ["EntityFormat", "EntityView"]

EntityFormat = Literal["normalized", "concise", "keyValues"]

_CORE_MEMBERS = frozenset(
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


def _strip_system(value: Any) -> Any:
    if isinstance(value, list):
        return [_strip_system(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, member in value.items():
        if key in SYSTEM_MEMBERS:
            continue
        if key in _CORE_MEMBERS:
            out[key] = member
        else:
            out[key] = _strip_system(member)
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class EntityView:
    """How to present entities for one request.

    `attrs` keeps only those expanded attribute names (None: all); `omit` drops expanded names;
    `pick`/`omit` may also name `id` and `type`.
    """

    context: Context
    format: EntityFormat = "normalized"
    sys_attrs: bool = False
    attrs: frozenset[str] | None = None
    pick: frozenset[str] | None = None
    omit: frozenset[str] | None = None
    lang: str | None = None

    def project(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The document reduced to what is asked (still expanded)."""
        attrs, pick, omit = self.attrs, self.pick, self.omit
        sys_attrs = self.sys_attrs
        out: dict[str, Any] = {}
        for key, value in doc.items():
            if key in ENTITY_MEMBERS:
                if key in SYSTEM_MEMBERS and not sys_attrs:
                    continue
                if key in ("id", "type"):
                    if pick is not None and key not in pick:
                        continue
                    if omit is not None and key in omit:
                        continue
                out[key] = value
                continue
            if attrs is not None and key not in attrs:
                continue
            if pick is not None and key not in pick:
                continue
            if omit is not None and key in omit:
                continue
            out[key] = value if sys_attrs else _strip_system(value)
        return out

    def render(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The entity as the response shows it (compacted with the request's context)."""
        projected = self.project(doc)
        if self.lang is not None:
            projected = _pick_language(projected, _language_ranges(self.lang))
        compacted = compact_entity(projected, self.context)
        if self.format == "normalized":
            return compacted
        if self.format == "keyValues":
            return to_key_values(compacted)
        return to_concise(compacted)

    def feature(self, doc: Mapping[str, Any], geoproperty: str) -> dict[str, Any]:
        """A GeoJSON Feature for the entity; `geoproperty` is the expanded name of the geometry."""
        rendered = self.render(doc)
        properties = {k: v for k, v in rendered.items() if k != "id"}
        geometry: Any = None
        value = doc.get(geoproperty)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, dict):
            geometry = value.get("value")
        return {
            "id": rendered.get("id", doc.get("id")),
            "type": "Feature",
            "geometry": geometry,
            "properties": properties,
        }


def _language_ranges(text: str) -> list[str]:
    """Language ranges of a `lang` parameter, best first (`fr-CH,fr;q=0.9,*;q=0.5`)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(text.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(ranked)]


def _choose(language_map: Mapping[str, Any], ranges: list[str]) -> tuple[str, Any] | None:
    if not language_map:
        return None
    lowered = {k.lower(): k for k in language_map}
    for wanted in ranges:
        if wanted == "*":
            first = next(iter(language_map))
            return first, language_map[first]
        key = lowered.get(wanted.lower())
        if key is not None:
            return key, language_map[key]
        primary = wanted.lower().split("-", 1)[0]
        for lower, original in lowered.items():
            if lower.split("-", 1)[0] == primary:
                return original, language_map[original]
    if "@none" in language_map:
        return "@none", language_map["@none"]
    first = next(iter(language_map))
    return first, language_map[first]


def _pick_language(entity: dict[str, Any], ranges: list[str]) -> dict[str, Any]:
    """LanguageProperties reduced to one language: a Property with `value` and `lang`."""
    out: dict[str, Any] = {}
    for key, value in entity.items():
        if key in ENTITY_MEMBERS:
            out[key] = value
            continue
        items = value if isinstance(value, list) else [value]
        converted = []
        for item in items:
            if isinstance(item, dict) and item.get("type") == "LanguageProperty":
                chosen = _choose(item.get("languageMap") or {}, ranges)
                rest = {k: v for k, v in item.items() if k not in ("type", "languageMap")}
                if chosen is None:
                    converted.append(item)
                    continue
                tag, text = chosen
                prop: dict[str, Any] = {"type": "Property", "value": text}
                if tag != "@none":
                    prop["lang"] = tag
                prop.update(rest)
                converted.append(prop)
            else:
                converted.append(item)
        out[key] = converted if isinstance(value, list) else converted[0]
    return out
