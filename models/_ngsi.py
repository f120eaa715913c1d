"""The one place where `models` meets `ngsi`: representation conversion and the Entity type.

Models build the normalized form of their entity themselves (they know each attribute's kind,
default unit and metadata); turning it into concise, keyValues or NGSI-v2, reading any of them
back into normalized form, and making an `ngsi.Entity` all go through `ngsi` here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal

from ngsi import (
    Entity,
    Geometry,
    from_ngsiv2,
    from_normalized,
    is_geojson_geometry,
    to_ngsiv2,
    to_normalized,
)

__all__ = [
    "Entity",
    "Geometry",
    "ReadRepresentation",
    "Representation",
    "entity_to_normalized",
    "is_geojson_geometry",
    "make_entity",
    "normalized_from",
    "normalized_from_ngsiv2",
    "render",
    "render_ngsiv2",
]

Representation = Literal["normalized", "concise", "keyValues"]
ReadRepresentation = Literal["normalized", "concise", "keyValues", "auto"]


def normalized_from(
    data: Mapping[str, Any],
    *,
    representation: ReadRepresentation,
    relationships: Collection[str],
) -> dict[str, Any]:
    """The normalized form of an entity given in `representation`; bare values of the
    attributes named in `relationships` become Relationships. Raises `ngsi.BadRequestData`."""
    return to_normalized(data, representation=representation, relationships=relationships)


def normalized_from_ngsiv2(
    data: Mapping[str, Any], *, id_prefix: str | None, relationships: Collection[str]
) -> dict[str, Any]:
    """The normalized NGSI-LD form of an NGSI-v2 normalized entity; attributes named in
    `relationships` become Relationships when their value is an id or ids. Raises
    `ngsi.BadRequestData`."""
    return from_ngsiv2(data, id_prefix=id_prefix, relationships=relationships)


def render_ngsiv2(
    normalized: Mapping[str, Any],
    *,
    key_values: bool = False,
    response: bool = False,
    id_prefix: str | None = None,
    attribute_types: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A normalized NGSI-LD entity in NGSI-v2 (normalized, or keyValues)."""
    return to_ngsiv2(
        normalized,
        key_values=key_values,
        response=response,
        id_prefix=id_prefix,
        attribute_types=attribute_types,
    )


def render(normalized: Mapping[str, Any], representation: Representation) -> dict[str, Any]:
    """A normalized entity in `representation`."""
    if representation == "normalized":
        return dict(normalized)
    return from_normalized(normalized, representation)


def make_entity(normalized: Mapping[str, Any]) -> Entity:
    """An `ngsi` Entity from a normalized entity; raises `ngsi.BadRequestData` when it is not a
    valid NGSI-LD entity (an id that is not a URI, for one)."""
    return Entity.from_dict(normalized, representation="normalized")


def entity_to_normalized(entity: Entity) -> dict[str, Any]:
    """The normalized form of an `ngsi` Entity (with its `@context`, if it has one)."""
    return entity.to_dict("normalized")
