"""`SmartDataModel`: the base of every Smart Data Models entity class, and its NGSI-LD forms.

A model is a pydantic class whose fields are the attributes of one Smart Data Models entity
type, named exactly as the official schema names them (`dateObserved`, `refDevice`, `LAeq_d`;
only Python keywords get a trailing underscore, with the official name as alias: `as_` ↔ `as`).
Field types, enumerations and bounds follow the official schema; each field holds a plain value
or a `Measured` one (see `models._types`).

How a field becomes NGSI-LD:

- a field whose type is a `GeoJSON` geometry is a GeoProperty; one whose type is an `EntityRef`
  (or a list of them) is a Relationship, whose `object` is the id (or ids); everything else is a
  Property;
- `observedAt`, `unitCode` and `datasetId` come from `Measured`; a Property listed in the class's
  `default_units` without its own unit gets the default `unitCode` in normalized and concise
  output (`to_ngsi(..., default_units=False)` leaves it out);
- a date-time Property is written as a JSON-LD typed value `{"@type": "DateTime", "@value": ...}`
  in normalized and concise output (what brokers need to compare times in `q`), and as a plain
  string in keyValues.

Reading (`from_ngsi`) accepts normalized, concise or keyValues (detected), checks every known
attribute is of its kind (a `dateObserved` sent as a Relationship is refused), and remembers how
the input spelled what NGSI-LD leaves open (typed or plain date-times, the `@context` it came
with), so that an entity that is read and written back in the same representation is unchanged.
Attributes the model does not declare are kept as they came (as plain values or `Measured`, with
their kind) and written back; system members (`createdAt`, `modifiedAt`) are dropped.

NGSI-v2 (`from_ngsiv2`, `to_ngsiv2`) goes through the NGSI-LD normalized form by the rules of
`ngsi.to_ngsiv2` and `ngsi.from_ngsiv2`; the model's Relationships are read as Relationships
whatever their v2 type (the Smart Data Models' v2 examples write `refDevice` as `Text`). The v2
type of an attribute that the NGSI-LD form does not give back (such a `Text` reference, a custom
type) is remembered with the model, not in its NGSI-LD entity, so that an entity read from
NGSI-v2 is written back to NGSI-v2 unchanged.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

import ngsi
from models._ngsi import (
    ReadRepresentation,
    Representation,
    entity_to_normalized,
    is_geojson_geometry,
    make_entity,
    normalized_from,
    normalized_from_ngsiv2,
    render,
    render_ngsiv2,
)
from models._types import (
    Address,
    AttributeKind,
    DateTime,
    EntityId,
    GeoJSON,
    Measurable,
    Measured,
    Uri,
)

__all__ = [
    "SUBJECT_CONTEXT_URL",
    "AttributeType",
    "ModelError",
    "SmartDataModel",
]

AttributeType = Literal["Property", "GeoProperty", "Relationship"]

SUBJECT_CONTEXT_URL = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.{subject}/master/context.jsonld"
)
"""The @context of a Smart Data Models subject (`Environment`, `Weather`, ...)."""

_VALUE_MEMBER = {"Property": "value", "GeoProperty": "value", "Relationship": "object"}
_METADATA = {"observedAt": "observed_at", "unitCode": "unit_code", "datasetId": "dataset_id"}
_DROPPED_MEMBERS = frozenset({"createdAt", "modifiedAt", "deletedAt"})
_NGSI_LD_ATTRIBUTE_TYPES = frozenset(
    {
        "Property",
        "GeoProperty",
        "Relationship",
        "LanguageProperty",
        "JsonProperty",
        "VocabProperty",
        "ListProperty",
        "ListRelationship",
    }
)


class ModelError(ValueError):
    """An entity could not be read into (or written from) a model.

    `problems` lists `(attribute, what is wrong)` pairs; the message names the entity id and
    type and every problem.
    """

    def __init__(
        self,
        problems: list[tuple[str, str]],
        *,
        entity_id: object = None,
        entity_type: object = None,
    ) -> None:
        self.problems = problems
        self.entity_id = entity_id
        self.entity_type = entity_type
        where = f"{entity_type or 'entity'} {entity_id!r}" if entity_id is not None else "entity"
        detail = "; ".join(f"{name}: {what}" if name else what for name, what in problems)
        super().__init__(f"{where}: {detail}")


def _kind_in(annotation: Any) -> AttributeType | None:
    """The attribute kind marked anywhere inside a field annotation."""
    if isinstance(annotation, AttributeKind):
        return annotation.kind
    arguments = annotation if isinstance(annotation, tuple) else typing.get_args(annotation)
    for argument in arguments:
        found = _kind_in(argument)
        if found is not None:
            return found
    for metadata in getattr(annotation, "__metadata__", ()):
        if isinstance(metadata, AttributeKind):
            return metadata.kind
    return None


def _is_typed_datetime(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 2
        and value.get("@type") == "DateTime"
        and isinstance(value.get("@value"), str)
    )


def _guess_kind(name: str, value: Any) -> AttributeType:
    plain = value.value if isinstance(value, Measured) else value
    if is_geojson_geometry(plain):
        return "GeoProperty"
    if len(name) > 3 and name.startswith("ref") and name[3].isupper():
        ids = plain if isinstance(plain, list) else [plain]
        if ids and all(isinstance(item, str) and ":" in item for item in ids):
            return "Relationship"
    return "Property"


class SmartDataModel(BaseModel):
    """Base of the Smart Data Models entity classes: `id`, `type` and the attributes every
    model shares (GSMA commons and location commons).

    Subclasses set `subject` (the Smart Data Models subject, `Environment`), `schema_version`
    (the `$schemaVersion` of the official schema they follow) and `default_units` (attribute →
    UN/CEFACT unit code of a plain value), and narrow `type` to their type name.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, validate_assignment=True)

    subject: ClassVar[str] = ""
    schema_version: ClassVar[str] = ""
    default_units: ClassVar[Mapping[str, str]] = {}
    _attribute_kinds: ClassVar[dict[str, AttributeType]] = {}
    _field_names: ClassVar[dict[str, str]] = {}

    id: EntityId
    type: str

    name: Measurable[str] | None = None
    alternateName: Measurable[str] | None = None
    description: Measurable[str] | None = None
    dataProvider: Measurable[str] | None = None
    source: Measurable[str] | None = None
    dateCreated: Measurable[DateTime] | None = None
    dateModified: Measurable[DateTime] | None = None
    seeAlso: Measurable[Annotated[list[Uri], Field(min_length=1)] | Uri] | None = None
    owner: Measurable[list[EntityId]] | None = None

    location: Measurable[GeoJSON] | None = None
    address: Measurable[Address] | None = None
    areaServed: Measurable[str] | None = None

    _typed_dates: dict[str, bool] = PrivateAttr(default_factory=dict)
    _extra_kinds: dict[str, AttributeType] = PrivateAttr(default_factory=dict)
    _ngsiv2_types: dict[str, str] = PrivateAttr(default_factory=dict)
    _context: Any = PrivateAttr(default=None)
    _scope: Any = PrivateAttr(default=None)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        kinds: dict[str, AttributeType] = {}
        names: dict[str, str] = {}
        for field_name, info in cls.model_fields.items():
            wire = info.alias or field_name
            names[wire] = field_name
            if wire in ("id", "type"):
                continue
            # pydantic keeps the field's own Annotated metadata apart from its annotation
            kinds[wire] = _kind_in(info.annotation) or _kind_in(tuple(info.metadata)) or "Property"
        cls._attribute_kinds = kinds
        cls._field_names = names
        unknown = set(cls.default_units) - set(kinds)
        if unknown:
            raise TypeError(f"{cls.__name__}.default_units names unknown attributes {unknown}")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # the attributes the entity has, not the dozens it could have
        return ((name, value) for name, value in super().__repr_args__() if value is not None)

    # -- describing the model

    @classmethod
    def type_name(cls) -> str:
        """The NGSI-LD entity type (`AirQualityObserved`)."""
        default = cls.model_fields["type"].default
        return default if isinstance(default, str) else cls.__name__

    @classmethod
    def context_url(cls) -> str:
        """The subject's @context URL, the only context this type is written and read with."""
        return SUBJECT_CONTEXT_URL.format(subject=cls.subject)

    @classmethod
    def attribute_names(cls) -> list[str]:
        """The attributes the model declares (official names), in declaration order."""
        return list(cls._attribute_kinds)

    @classmethod
    def attribute_type(cls, name: str) -> AttributeType:
        """Property, GeoProperty or Relationship; `KeyError` for an undeclared attribute."""
        return cls._attribute_kinds[name]

    @classmethod
    def relationship_names(cls) -> frozenset[str]:
        """The declared attributes that are Relationships (`refDevice`, ...)."""
        return frozenset(n for n, k in cls._attribute_kinds.items() if k == "Relationship")

    @classmethod
    def default_unit(cls, name: str) -> str | None:
        """The UN/CEFACT code a plain value of attribute `name` is in, if it has a unit."""
        return cls.default_units.get(name)

    # -- values

    def _raw(self, name: str) -> Any:
        field_name = self._field_names.get(name)
        if field_name is not None:
            return getattr(self, field_name)
        return (self.__pydantic_extra__ or {}).get(name)

    def value_of(self, name: str) -> Any:
        """The plain value of attribute `name` (official name), whether it is held plain or as
        `Measured`; None when absent."""
        raw = self._raw(name)
        return raw.value if isinstance(raw, Measured) else raw

    def measurement(self, name: str) -> Measured[Any] | None:
        """Attribute `name` as a `Measured`, with the model's default unit filled in when the
        value does not state one; None when absent."""
        raw = self._raw(name)
        if raw is None:
            return None
        if not isinstance(raw, Measured):
            raw = Measured[Any](value=raw)
        if raw.unit_code is None and name in self.default_units:
            raw = raw.model_copy(update={"unit_code": self.default_units[name]})
        return raw

    def extra_attributes(self) -> dict[str, Any]:
        """The attributes this entity has that the model does not declare."""
        return dict(self.__pydantic_extra__ or {})

    # -- writing

    def to_ngsi(
        self,
        representation: Representation = "normalized",
        *,
        default_units: bool = True,
        with_context: bool = False,
    ) -> dict[str, Any]:
        """The entity as NGSI-LD JSON in `representation` (normalized, concise or keyValues).

        `default_units`: state the default `unitCode` of plain values (normalized and concise).
        `with_context`: add an `@context` member (the one the entity was read with, else the
        subject's context URL), for `application/ld+json` bodies.
        """
        normalized = self._normalized(
            default_units=default_units, key_values=representation == "keyValues"
        )
        out = render(normalized, representation)
        if with_context:
            out["@context"] = self._context if self._context is not None else [self.context_url()]
        return out

    def _normalized(self, *, default_units: bool, key_values: bool) -> dict[str, Any]:
        dumped = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        out: dict[str, Any] = {"id": dumped.pop("id"), "type": dumped.pop("type")}
        if self._scope is not None:
            out["scope"] = self._scope
        for name, data in dumped.items():
            raw = self._raw(name)
            kind = self._attribute_kinds.get(name) or self._extra_kinds.get(name)
            if kind is None:
                kind = _guess_kind(name, raw)
            out[name] = self._attribute(name, kind, raw, data, default_units, key_values)
        return out

    def _attribute(
        self,
        name: str,
        kind: AttributeType,
        raw: Any,
        data: Any,
        default_units: bool,
        key_values: bool,
    ) -> dict[str, Any]:
        measured = isinstance(raw, Measured)
        plain = raw.value if measured else raw
        value = data.get("value") if measured else data
        if (
            kind == "Property"
            and not key_values
            and isinstance(value, str)
            and self._typed_dates.get(name, isinstance(plain, datetime))
        ):
            value = {"@type": "DateTime", "@value": value}
        attribute: dict[str, Any] = {"type": kind, _VALUE_MEMBER[kind]: value}
        if measured:
            for member, field in _METADATA.items():
                if data.get(field) is not None:
                    attribute[member] = data[field]
            attribute.update(data.get("extra") or {})
        if (
            default_units
            and kind == "Property"
            and "unitCode" not in attribute
            and name in self.default_units
        ):
            attribute["unitCode"] = self.default_units[name]
        return attribute

    def to_entity(self) -> Any:
        """The entity as an `ngsi` Entity (normalized)."""
        return make_entity(self.to_ngsi("normalized"))

    def to_ngsiv2(
        self,
        *,
        key_values: bool = False,
        default_units: bool = True,
        response: bool = False,
        id_prefix: str | None = None,
    ) -> dict[str, Any]:
        """The entity as NGSI-v2 JSON (normalized, or keyValues), by the rules of
        `ngsi.to_ngsiv2`, with the v2 types remembered from `from_ngsiv2`.

        `default_units`: state the default `unitCode` of plain values (as metadata).
        `response`: the form a v2 server sends (`metadata` on every attribute, typed metadata)
        instead of the request form. `id_prefix`: taken off the front of the id (the inverse of
        `from_ngsiv2(..., id_prefix=...)`).
        """
        return render_ngsiv2(
            self._normalized(default_units=default_units, key_values=False),
            key_values=key_values,
            response=response,
            id_prefix=id_prefix,
            attribute_types=self._ngsiv2_types,
        )

    # -- reading

    @classmethod
    def from_ngsi(
        cls, data: Mapping[str, Any], *, representation: ReadRepresentation = "auto"
    ) -> Self:
        """Read an entity of this type from NGSI-LD JSON in any representation.

        `auto` tells normalized and concise (attributes with `type`, `value` or `object`) from
        keyValues; say `keyValues` explicitly when a keyValues structured value may itself hold
        a `value` member. Raises `ModelError` naming the entity and every bad attribute.
        """
        if not isinstance(data, Mapping):
            raise ModelError([("", f"an entity must be a JSON object, got {type(data).__name__}")])
        entity_id, entity_type = data.get("id"), data.get("type")
        if entity_type != cls.type_name():
            raise ModelError(
                [("type", f"expected {cls.type_name()!r}, got {entity_type!r}")],
                entity_id=entity_id,
                entity_type=entity_type,
            )
        if representation == "auto":
            representation = _detect(data)
        try:
            normalized = normalized_from(
                data, representation=representation, relationships=cls.relationship_names()
            )
        except ngsi.NgsiApiError as exc:
            detail = exc.detail or str(exc)
            raise ModelError([("", detail)], entity_id=entity_id, entity_type=entity_type) from None
        # keyValues cannot tell the kind of an undeclared attribute: it is guessed when written
        return cls._from_normalized(normalized, known_kinds=representation != "keyValues")

    @classmethod
    def from_ngsiv2(cls, data: Mapping[str, Any], *, id_prefix: str | None = None) -> Self:
        """Read an entity of this type from NGSI-v2 normalized JSON (`example-normalized.json`).

        The model's Relationships are read as Relationships when their value is an id or a list
        of ids, whatever their v2 type. `id_prefix` is put in front of the v2 id
        (`urn:ngsi-ld:AirQualityObserved:`); without it the id is kept as it is. Raises
        `ModelError` naming the entity and every bad attribute.
        """
        if not isinstance(data, Mapping):
            raise ModelError([("", f"an entity must be a JSON object, got {type(data).__name__}")])
        entity_id, entity_type = data.get("id"), data.get("type")
        if entity_type != cls.type_name():
            raise ModelError(
                [("type", f"expected {cls.type_name()!r}, got {entity_type!r}")],
                entity_id=entity_id,
                entity_type=entity_type,
            )
        try:
            normalized = normalized_from_ngsiv2(
                data, id_prefix=id_prefix, relationships=cls.relationship_names()
            )
            inferred = render_ngsiv2(normalized)
        except ngsi.NgsiApiError as exc:
            detail = exc.detail or str(exc)
            raise ModelError([("", detail)], entity_id=entity_id, entity_type=entity_type) from None
        model = cls._from_normalized(normalized, known_kinds=True)
        model._ngsiv2_types = {
            name: attribute["type"]
            for name, attribute in data.items()
            if name in inferred
            and isinstance(attribute, Mapping)
            and isinstance(attribute.get("type"), str)
            and attribute["type"] != inferred[name]["type"]
        }
        return model

    @classmethod
    def from_entity(cls, entity: Any) -> Self:
        """Read an `ngsi` Entity of this type."""
        return cls.from_ngsi(entity_to_normalized(entity), representation="normalized")

    @classmethod
    def _from_normalized(cls, normalized: Mapping[str, Any], *, known_kinds: bool) -> Self:
        entity_id, entity_type = normalized.get("id"), normalized.get("type")
        fields: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        typed_dates: dict[str, bool] = {}
        extra_kinds: dict[str, AttributeType] = {}
        context = scope = None
        for name, attribute in normalized.items():
            if name in ("id", "type"):
                fields[name] = attribute
                continue
            if name == "@context":
                context = attribute
                continue
            if name == "scope":
                scope = attribute
                continue
            if name in _DROPPED_MEMBERS:
                continue
            if isinstance(attribute, list):
                problems.append(
                    (name, "has several instances (datasetId); models hold one per attribute")
                )
                continue
            kind = attribute["type"]
            expected = cls._attribute_kinds.get(name)
            if kind not in _VALUE_MEMBER:
                problems.append((name, f"a {kind} is not supported by Smart Data Models classes"))
                continue
            if expected is not None and kind != expected:
                problems.append((name, f"must be a {expected}, got a {kind}"))
                continue
            value = attribute[_VALUE_MEMBER[kind]]
            if _is_typed_datetime(value):
                value = value["@value"]
                typed_dates[name] = True
            elif isinstance(value, str):
                typed_dates[name] = False
            metadata = {
                field: attribute[member]
                for member, field in _METADATA.items()
                if member in attribute
            }
            extra = {
                key: item
                for key, item in attribute.items()
                if key not in _METADATA
                and key not in ("type", _VALUE_MEMBER[kind])
                and key not in _DROPPED_MEMBERS
            }
            if metadata or extra:
                value = Measured[Any](value=value, extra=extra, **metadata)
            field_name = cls._field_names.get(name)
            if field_name is None:
                if known_kinds:
                    extra_kinds[name] = kind
                fields[name] = value
            else:
                fields[field_name] = value
        if problems:
            raise ModelError(problems, entity_id=entity_id, entity_type=entity_type)
        try:
            model = cls.model_validate(fields)
        except ValidationError as exc:
            raise ModelError(
                _pydantic_problems(exc, cls), entity_id=entity_id, entity_type=entity_type
            ) from None
        model._typed_dates = {
            name: typed
            for name, typed in typed_dates.items()
            if typed != isinstance(_inner(model._raw(name)), datetime)
        }
        model._extra_kinds = extra_kinds
        model._context = context
        model._scope = scope
        return model


def _inner(raw: Any) -> Any:
    return raw.value if isinstance(raw, Measured) else raw


def _detect(data: Mapping[str, Any]) -> ReadRepresentation:
    """`auto` (normalized or concise) when some attribute is written as an attribute object (an
    NGSI-LD `type`, or a `value` / `object` member), else `keyValues`. Objects with a `value` and
    another `type` (NGSI v2) go to `auto` too, which refuses them with a clear message."""
    for name, raw in data.items():
        if name in ("id", "type", "@context", "scope"):
            continue
        if isinstance(raw, dict):
            kind = raw.get("type")
            if isinstance(kind, str) and kind in _NGSI_LD_ATTRIBUTE_TYPES:
                return "auto"
            if "value" in raw or "object" in raw:
                return "auto"
        elif (
            isinstance(raw, list)
            and raw
            and all(
                isinstance(item, dict) and item.get("type") in _NGSI_LD_ATTRIBUTE_TYPES
                for item in raw
            )
        ):
            return "auto"
    return "keyValues"


def _pydantic_problems(exc: ValidationError, model: type[SmartDataModel]) -> list[tuple[str, str]]:
    wire = {field: name for name, field in model._field_names.items()}
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        steps: list[str] = []
        previous = None
        for step in (str(item) for item in error["loc"]):
            # Measurable's branch tags, and the `value` of a Measured, say nothing to a reader
            if step in ("plain", "measured") or (previous == "measured" and step == "value"):
                previous = step
                continue
            steps.append(wire.get(step, step) if not steps else step)
            previous = step
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] not in ("missing", "extra_forbidden", "value_error"):
            message += f" (got {error['input']!r})"[:200]
        problems.append(("/".join(steps), message))
    return problems
