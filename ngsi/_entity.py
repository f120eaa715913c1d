"""NGSI-LD entities and attributes as pydantic models.

    Entity
    ├── id, type, scope, createdAt, modifiedAt, deletedAt, context (`@context` on the wire)
    └── attributes: name → Attribute | [Attribute, ...]   (several instances: a multi-attribute)

    Attribute (told apart by `type`)
    ├── Property          value: any JSON            unitCode
    ├── GeoProperty       value: a GeoJSON Geometry  (location, observationSpace, operationSpace)
    ├── Relationship      object: URI | [URI, ...]   objectType
    ├── LanguageProperty  languageMap: {lang: str | [str, ...]}
    ├── JsonProperty      value (`json` on the wire): any JSON, never interpreted
    ├── VocabProperty     vocab: term | [term, ...]
    └── ListProperty      valueList: [any JSON, ...]
    common members: observedAt, datasetId, instanceId, createdAt, modifiedAt, deletedAt, and
    sub-attributes (`attributes`: name → Attribute; on the wire, any other member)

Times are aware datetimes in UTC, written `2024-05-01T12:00:00Z` (`.123Z` with milliseconds).
A multi-attribute's instances have distinct `datasetId`s; at most one (the default instance) has
none.

`Entity.from_dict` reads any representation (see `ngsi._representations` for the rules) and
raises `BadRequestData` naming the entity, the attribute and the problem; `Entity.to_dict`
writes any representation. `model_validate` / `model_dump` use the normalized wire form.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from ngsi._errors import BadRequestData
from ngsi._geometry import Geometry
from ngsi._ids import (
    ATTRIBUTE_MEMBERS,
    attribute_name_problem,
    type_name_problem,
    uri_problem,
)
from ngsi._representations import (
    VALUE_MEMBERS,
    InputRepresentation,
    Representation,
    concise_attribute,
    from_normalized,
    key_values_attribute,
    to_normalized,
)
from ngsi._time import format_datetime, parse_datetime

__all__ = [
    "Attribute",
    "AttributeValue",
    "Entity",
    "GeoProperty",
    "JsonProperty",
    "LanguageProperty",
    "ListProperty",
    "Property",
    "Relationship",
    "VocabProperty",
    "parse_attribute",
]


# -- field types --------------------------------------------------------------------------------


def _utc(value: Any) -> datetime:
    return parse_datetime(value, what="date-time")


def _uri(value: str) -> str:
    problem = uri_problem(value)
    if problem is not None:
        raise ValueError(f"{value!r} is not an absolute URI: {problem}")
    return value


UtcDateTime = Annotated[datetime, BeforeValidator(_utc)]
"""An aware datetime, converted to UTC; ISO 8601 strings are accepted."""

Uri = Annotated[str, AfterValidator(_uri)]
"""An absolute URI (see `ngsi._ids`)."""


def _json_problem(value: Any, where: str) -> str | None:
    """Why `value` is not plain JSON (dict with string keys, list, str, int, finite float, bool,
    None), or None. Tuples, sets, datetimes and other objects are refused so that what is stored
    is exactly what is sent."""
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value}, which JSON cannot carry"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a non-string key {key!r}"
            problem = _json_problem(item, f"{where}.{key}")
            if problem is not None:
                return problem
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _json_problem(item, f"{where}[{index}]")
            if problem is not None:
                return problem
        return None
    hint = " (format dates with ngsi.format_datetime)" if isinstance(value, datetime) else ""
    return f"{where} is a {type(value).__name__}, which is not a JSON value{hint}"


def _check_json(value: Any, where: str) -> Any:
    problem = _json_problem(value, where)
    if problem is not None:
        raise ValueError(problem)
    return value


def _names(value: str | list[str], what: str) -> str | list[str]:
    items = [value] if isinstance(value, str) else value
    if not items:
        raise ValueError(f"{what} must not be an empty list")
    for item in items:
        problem = type_name_problem(item)
        if problem is not None:
            raise ValueError(problem.replace("type name", what, 1))
    if len(set(items)) != len(items):
        raise ValueError(f"{what} lists a name twice: {items}")
    return value


# -- attributes ---------------------------------------------------------------------------------


def _is_wire_attribute(value: Any) -> bool:
    """Whether a member literally named `attributes` is a sub-attribute on the wire rather than
    the Python-side mapping (a mapping of names never has a `type` key: that name is reserved)."""
    return isinstance(value, list) or (isinstance(value, Mapping) and "type" in value)


def _split_members(
    data: dict[str, Any], known: frozenset[str], owner: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split wire members into model fields and attributes (sub-attributes for an attribute)."""
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        if key == "attributes" and _is_wire_attribute(value):
            extra[key] = value
        elif key in known:
            fields[key] = value
        elif owner != "Entity" and key in ATTRIBUTE_MEMBERS:
            holder = {"unitCode": "a Property"}.get(key) or next(
                (f"a {kind}" for kind, member in VALUE_MEMBERS.items() if member == key),
                "another kind of attribute",
            )
            raise ValueError(f"{key!r} does not belong in a {owner}; it is a member of {holder}")
        else:
            extra[key] = value
    if extra:
        mapping = fields.get("attributes")
        merged = dict(mapping) if isinstance(mapping, Mapping) else {}
        for key, value in extra.items():
            if key in merged:
                raise ValueError(f"attribute {key!r} is given twice")
            merged[key] = value
        fields["attributes"] = merged
    return fields, extra


class _AttributeBase(BaseModel):
    """Members shared by every kind of attribute."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    observedAt: UtcDateTime | None = None
    datasetId: Uri | None = None
    instanceId: Uri | None = None
    createdAt: UtcDateTime | None = None
    modifiedAt: UtcDateTime | None = None
    deletedAt: UtcDateTime | None = None
    attributes: dict[str, Attribute] = Field(default_factory=dict)
    """Sub-attributes (properties of properties, relationships of properties, ...)."""

    @model_validator(mode="before")
    @classmethod
    def _gather_sub_attributes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = _known_members(cls)
        if all(key in known and key != "attributes" for key in data):
            return data
        fields, _ = _split_members(data, known, cls.__name__)
        return fields

    @field_validator("attributes")
    @classmethod
    def _check_sub_attribute_names(cls, value: dict[str, Attribute]) -> dict[str, Attribute]:
        for name in value:
            problem = attribute_name_problem(name, sub_attribute=True)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_serializer(mode="plain")
    def _serialize(self) -> dict[str, Any]:
        return self.normalized(sys_attrs=True)

    def _main(self) -> Any:
        raise NotImplementedError  # pragma: no cover

    def normalized(self, *, sys_attrs: bool = False) -> dict[str, Any]:
        """The normalized wire form of this attribute."""
        kind: str = getattr(self, "type")  # noqa: B009 - each subclass declares its literal
        out: dict[str, Any] = {"type": kind, VALUE_MEMBERS[kind]: self._main()}
        self._add_members(out)
        if self.observedAt is not None:
            out["observedAt"] = format_datetime(self.observedAt)
        if self.datasetId is not None:
            out["datasetId"] = self.datasetId
        if self.instanceId is not None:
            out["instanceId"] = self.instanceId
        if sys_attrs:
            for key in ("createdAt", "modifiedAt", "deletedAt"):
                stamp = getattr(self, key)
                if stamp is not None:
                    out[key] = format_datetime(stamp)
        for name, sub in self.attributes.items():
            out[name] = sub.normalized(sys_attrs=sys_attrs)
        return out

    def _add_members(self, out: dict[str, Any]) -> None:
        """Add the members particular to one kind of attribute."""

    def to_dict(
        self, representation: Representation = "normalized", *, sys_attrs: bool = False
    ) -> Any:
        """This attribute in the given representation (keyValues: the bare value)."""
        normalized = self.normalized(sys_attrs=sys_attrs)
        if representation == "normalized":
            return normalized
        if representation == "concise":
            return concise_attribute(normalized, sys_attrs=sys_attrs)
        if representation == "keyValues":
            return key_values_attribute(normalized)
        raise ValueError(f"unknown representation {representation!r}")


_KNOWN_MEMBERS: dict[type[BaseModel], frozenset[str]] = {}


def _known_members(cls: type[BaseModel]) -> frozenset[str]:
    """Field names and aliases of an attribute class: its wire members other than sub-attributes."""
    known = _KNOWN_MEMBERS.get(cls)
    if known is None:
        names = set(cls.model_fields)
        names.update(field.alias for field in cls.model_fields.values() if field.alias)
        known = _KNOWN_MEMBERS[cls] = frozenset(names)
    return known


class Property(_AttributeBase):
    """A value: a number, a string, a boolean, an array or an object (any JSON)."""

    type: Literal["Property"] = "Property"
    value: Any
    unitCode: str | None = None
    """UN/CEFACT common code of the unit (`CEL` for degree Celsius, `P1` for percent)."""

    @field_validator("value")
    @classmethod
    def _check_value(cls, value: Any) -> Any:
        return _check_json(value, "value")

    @field_validator("unitCode")
    @classmethod
    def _check_unit_code(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(char.isspace() for char in value)):
            raise ValueError(f"unitCode {value!r} must be a non-empty code without spaces")
        return value

    def _main(self) -> Any:
        return self.value

    def _add_members(self, out: dict[str, Any]) -> None:
        if self.unitCode is not None:
            out["unitCode"] = self.unitCode


class GeoProperty(_AttributeBase):
    """A GeoJSON geometry (`location`, `observationSpace`, `operationSpace` are GeoProperties)."""

    type: Literal["GeoProperty"] = "GeoProperty"
    value: Geometry

    def _main(self) -> Any:
        return self.value.to_dict()


class Relationship(_AttributeBase):
    """A link to one entity (`object`: its id) or to several (a list of ids)."""

    type: Literal["Relationship"] = "Relationship"
    object: str | list[str]
    objectType: str | list[str] | None = None
    """The type(s) of the target entity, when known (NGSI-LD 1.8)."""

    @field_validator("object")
    @classmethod
    def _check_object(cls, value: str | list[str]) -> str | list[str]:
        items = [value] if isinstance(value, str) else value
        if not items:
            raise ValueError("object must be a URI or a non-empty list of URIs")
        for item in items:
            problem = uri_problem(item)
            if problem is not None:
                raise ValueError(f"{item!r} is not an absolute URI: {problem}")
        return value

    @field_validator("objectType")
    @classmethod
    def _check_object_type(cls, value: str | list[str] | None) -> str | list[str] | None:
        return None if value is None else _names(value, "objectType")

    def _main(self) -> Any:
        return self.object if isinstance(self.object, str) else list(self.object)

    def _add_members(self, out: dict[str, Any]) -> None:
        if self.objectType is not None:
            out["objectType"] = (
                self.objectType if isinstance(self.objectType, str) else list(self.objectType)
            )


class LanguageProperty(_AttributeBase):
    """Text in several languages: `{"de": "Rathaus", "en": "town hall"}`."""

    type: Literal["LanguageProperty"] = "LanguageProperty"
    languageMap: dict[str, str | list[str]]

    @field_validator("languageMap")
    @classmethod
    def _check_language_map(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        if not value:
            raise ValueError("languageMap must name at least one language")
        for tag in value:
            if not tag or any(char.isspace() for char in tag):
                raise ValueError(f"languageMap key {tag!r} is not a language tag such as 'de'")
        return value

    def _main(self) -> Any:
        return {
            tag: text if isinstance(text, str) else list(text)
            for tag, text in self.languageMap.items()
        }


class JsonProperty(_AttributeBase):
    """A JSON value stored and returned as is, never read as JSON-LD (`json` on the wire)."""

    type: Literal["JsonProperty"] = "JsonProperty"
    value: Any = Field(alias="json")

    @field_validator("value")
    @classmethod
    def _check_value(cls, value: Any) -> Any:
        return _check_json(value, "json")

    def _main(self) -> Any:
        return self.value


class VocabProperty(_AttributeBase):
    """A term (or terms) of a vocabulary, expanded by the @context like a type name."""

    type: Literal["VocabProperty"] = "VocabProperty"
    vocab: str | list[str]

    @field_validator("vocab")
    @classmethod
    def _check_vocab(cls, value: str | list[str]) -> str | list[str]:
        return _names(value, "vocab")

    def _main(self) -> Any:
        return self.vocab if isinstance(self.vocab, str) else list(self.vocab)


class ListProperty(_AttributeBase):
    """An ordered list of values."""

    type: Literal["ListProperty"] = "ListProperty"
    valueList: list[Any]

    @field_validator("valueList")
    @classmethod
    def _check_value_list(cls, value: list[Any]) -> list[Any]:
        return _check_json(value, "valueList")  # type: ignore[no-any-return]

    def _main(self) -> Any:
        return self.valueList


Attribute = Annotated[
    Property
    | GeoProperty
    | Relationship
    | LanguageProperty
    | JsonProperty
    | VocabProperty
    | ListProperty,
    Field(discriminator="type"),
]
"""One attribute instance of any kind, told apart by `type`."""


def _one_or_many(value: Any) -> str:
    return "many" if isinstance(value, list) else "one"


AttributeValue = Annotated[
    Annotated[Attribute, Tag("one")] | Annotated[list[Attribute], Tag("many")],
    Discriminator(_one_or_many),
]
"""What an entity attribute name maps to: one instance, or a multi-attribute's instances."""

for _model in (
    _AttributeBase,
    Property,
    GeoProperty,
    Relationship,
    LanguageProperty,
    JsonProperty,
    VocabProperty,
    ListProperty,
):
    _model.model_rebuild()


def _check_instances(name: str, instances: list[Attribute]) -> None:
    if not instances:
        raise ValueError(f"attribute {name!r} is an empty list of instances")
    seen: set[str | None] = set()
    for instance in instances:
        dataset = instance.datasetId
        if dataset in seen:
            if dataset is None:
                raise ValueError(
                    f"attribute {name!r} has more than one instance without datasetId "
                    "(only one default instance is allowed)"
                )
            raise ValueError(f"attribute {name!r} has two instances with datasetId {dataset!r}")
        seen.add(dataset)


# -- entity -------------------------------------------------------------------------------------


_ENTITY_FIELDS = frozenset(
    {"id", "type", "scope", "createdAt", "modifiedAt", "deletedAt", "attributes", "context"}
)


class Entity(BaseModel):
    """An NGSI-LD entity. Build it with keywords (`Entity(id=..., type=..., attributes={...})`;
    attribute names given as extra keywords, `location=GeoProperty(...)`, also land in
    `attributes`) or read it with `Entity.from_dict`."""

    model_config = ConfigDict(extra="forbid")

    id: str
    type: str | list[str]
    scope: str | list[str] | None = None
    createdAt: UtcDateTime | None = None
    modifiedAt: UtcDateTime | None = None
    deletedAt: UtcDateTime | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    context: str | list[Any] | dict[str, Any] | None = None
    """The entity's `@context`, if it came with one; written back as `@context`."""

    if TYPE_CHECKING:
        # What the type checker sees: attributes may also be given as keywords.
        def __init__(
            self,
            *,
            id: str,
            type: str | list[str],
            scope: str | list[str] | None = None,
            createdAt: datetime | str | None = None,
            modifiedAt: datetime | str | None = None,
            deletedAt: datetime | str | None = None,
            attributes: Mapping[str, Attribute | list[Attribute]] | None = None,
            context: str | list[Any] | dict[str, Any] | None = None,
            **more_attributes: Attribute | list[Attribute],
        ) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _gather_attributes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "@context" in data:
            data = dict(data)
            if "context" in data:
                raise ValueError("give either 'context' or '@context', not both")
            data["context"] = data.pop("@context")
        if all(key in _ENTITY_FIELDS and key != "attributes" for key in data):
            return data
        fields, _ = _split_members(data, _ENTITY_FIELDS, "Entity")
        return fields

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        problem = uri_problem(value)
        if problem is not None:
            raise ValueError(f"{value!r} is not an absolute URI: {problem}")
        return value

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str | list[str]) -> str | list[str]:
        return _names(value, "entity type")

    @field_validator("scope")
    @classmethod
    def _check_scope(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is None:
            return None
        for scope in [value] if isinstance(value, str) else value:
            if not scope.startswith("/") or any(char.isspace() for char in scope):
                raise ValueError(f"scope {scope!r} must be a path such as '/Berlin/Mitte'")
        return value

    @field_validator("attributes")
    @classmethod
    def _check_attributes(
        cls, value: dict[str, Attribute | list[Attribute]]
    ) -> dict[str, Attribute | list[Attribute]]:
        for name, attribute in value.items():
            problem = attribute_name_problem(name)
            if problem is not None:
                raise ValueError(problem)
            if isinstance(attribute, list):
                _check_instances(name, attribute)
        return value

    @model_serializer(mode="plain")
    def _serialize(self) -> dict[str, Any]:
        return self.normalized(sys_attrs=True)

    # -- reading and writing

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        representation: InputRepresentation = "auto",
        relationships: Collection[str] = frozenset(),
        infer_relationships: bool = False,
    ) -> Self:
        """Read an entity in any representation.

        With "auto" each attribute is recognised by its shape; keyValues cannot tell a
        Relationship from a string Property, so name them in `relationships` or let
        `infer_relationships=True` take `ref[A-Z]...` names holding URIs as Relationships.
        Raises BadRequestData naming the entity, the attribute and the problem.
        """
        normalized = to_normalized(
            data,
            representation=representation,
            relationships=relationships,
            infer_relationships=infer_relationships,
        )
        try:
            return cls.model_validate(normalized)
        except ValidationError as error:
            raise BadRequestData(describe_validation_error(error, normalized)) from error

    def normalized(self, *, sys_attrs: bool = False) -> dict[str, Any]:
        """The normalized wire form."""
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type if isinstance(self.type, str) else list(self.type),
        }
        if self.scope is not None:
            out["scope"] = self.scope if isinstance(self.scope, str) else list(self.scope)
        if sys_attrs:
            for key in ("createdAt", "modifiedAt", "deletedAt"):
                stamp = getattr(self, key)
                if stamp is not None:
                    out[key] = format_datetime(stamp)
        for name, attribute in self.attributes.items():
            if isinstance(attribute, list):
                out[name] = [item.normalized(sys_attrs=sys_attrs) for item in attribute]
            else:
                out[name] = attribute.normalized(sys_attrs=sys_attrs)
        if self.context is not None:
            out["@context"] = self.context
        return out

    def to_dict(
        self, representation: Representation = "normalized", *, sys_attrs: bool = False
    ) -> dict[str, Any]:
        """The entity in the given representation; `sys_attrs` includes createdAt/modifiedAt."""
        normalized = self.normalized(sys_attrs=sys_attrs)
        if representation == "normalized":
            return normalized
        return from_normalized(normalized, representation, sys_attrs=sys_attrs)

    # -- access

    def attribute(self, name: str, *, dataset_id: str | None = None) -> Attribute | None:
        """The instance of attribute `name` with this datasetId (None: the default instance)."""
        found = self.attributes.get(name)
        if found is None:
            return None
        for instance in found if isinstance(found, list) else [found]:
            if instance.datasetId == dataset_id:
                return instance
        return None

    def _geo(self, name: str) -> GeoProperty | None:
        found = self.attribute(name)
        return found if isinstance(found, GeoProperty) else None

    @property
    def location(self) -> GeoProperty | None:
        """The default instance of `location`, if it is a GeoProperty."""
        return self._geo("location")

    @property
    def observationSpace(self) -> GeoProperty | None:
        """The default instance of `observationSpace`, if it is a GeoProperty."""
        return self._geo("observationSpace")

    @property
    def operationSpace(self) -> GeoProperty | None:
        """The default instance of `operationSpace`, if it is a GeoProperty."""
        return self._geo("operationSpace")

    @property
    def types(self) -> list[str]:
        """The entity type(s) as a list."""
        return [self.type] if isinstance(self.type, str) else list(self.type)


def parse_attribute(
    data: Any, *, name: str = "attribute", representation: InputRepresentation = "auto"
) -> Attribute | list[Attribute]:
    """Read one attribute (or a list of instances) given in any representation; raise
    BadRequestData naming `name` and the problem."""
    normalized = to_normalized({name: data}, representation=representation)
    try:
        holder = _AttributeHolder.model_validate({"attributes": normalized})
    except ValidationError as error:
        raise BadRequestData(describe_validation_error(error, {})) from error
    return holder.attributes[name]


class _AttributeHolder(BaseModel):
    attributes: dict[str, AttributeValue]

    @field_validator("attributes")
    @classmethod
    def _check_attributes(
        cls, value: dict[str, Attribute | list[Attribute]]
    ) -> dict[str, Attribute | list[Attribute]]:
        for name, attribute in value.items():
            if isinstance(attribute, list):
                _check_instances(name, attribute)
        return value


def describe_validation_error(error: ValidationError, data: Mapping[str, Any]) -> str:
    """A readable detail from a pydantic error on an entity or attribute: where (entity id,
    attribute, instance, kind of attribute, member) and what is wrong, for up to five problems."""
    entity_id = data.get("id")
    if isinstance(entity_id, str):
        prefix = f"entity {entity_id!r}: "
    else:
        prefix = "entity: " if "type" in data else ""
    parts: list[str] = []
    errors = error.errors(include_url=False)
    for item in errors[:5]:
        where = _describe_location([part for part in item["loc"] if part not in ("one", "many")])
        message = str(item["msg"]).removeprefix("Value error, ")
        if where and message.startswith(where[-1]):
            where.pop()
        place = " ".join(where)
        if item["type"] == "missing":
            parts.append(f"{place} is missing")
        elif item["type"] == "extra_forbidden":
            parts.append(f"{place} is not allowed here")
        else:
            parts.append(f"{place}: {message}" if place else message)
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more problems")
    return prefix + "; ".join(parts)


def _describe_location(loc: list[int | str]) -> list[str]:
    where: list[str] = []
    level = 0
    index = 0
    while index < len(loc):
        part = loc[index]
        if part == "attributes":
            if index + 1 < len(loc):
                noun = "attribute" if level == 0 else "sub-attribute"
                where.append(f"{noun} {loc[index + 1]!r}")
                level += 1
                index += 2
                if index < len(loc) and isinstance(loc[index], int):
                    where.append(f"instance {loc[index]}")
                    index += 1
                if index < len(loc) and loc[index] in VALUE_MEMBERS:
                    where.append(f"({loc[index]})")
                    index += 1
            else:
                index += 1
            continue
        where.append(str(part))
        index += 1
    return where
