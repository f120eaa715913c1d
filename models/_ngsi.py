"""The one place where `models` meets `ngsi`: representation conversion and the Entity type.

Models build the normalized form of their entity themselves (they know each attribute's kind,
default unit and metadata); turning it into concise or keyValues, reading any representation back
into normalized form, and making an `ngsi.Entity` all go through `ngsi` here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal

from ngsi import Entity, Geometry, from_normalized, is_geojson_geometry, to_normalized

__all__ = [
    "Entity",
    "Geometry",
    "ReadRepresentation",
    "Representation",
    "entity_to_normalized",
    "is_geojson_geometry",
    "make_entity",
    "normalized_from",
    "render",
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
