"""The value types Smart Data Models attributes are made of, and `Measured` for per-attribute
NGSI-LD metadata.

How a field carries metadata (the decision, in one place): every attribute field of a model is
`Measurable[T]`, i.e. **either a plain value `T` or a `Measured[T]`** holding the value with its
own `observedAt`, `unitCode`, `datasetId` and any other members (sub-attributes). Plain values are
what most code writes and reads (`aqo.temperature == 21.3`); `Measured` is there when a reading
has its own time or unit (`Measured(value=21.3, observed_at=t, unit_code="CEL")`). A model's
`value_of(name)` and `measurement(name)` give either view of any field, whichever form it holds.
A plain value means "in the model's default unit, at no particular time"; when the entity is
written normalized or concise, the model's default unit code is stated (see
`SmartDataModel.default_units`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Strict,
    Tag,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)

import ngsi
from models._ngsi import Geometry

__all__ = [
    "GEO_PROPERTY",
    "RELATIONSHIP",
    "Address",
    "AttributeKind",
    "DateTime",
    "DateTimeText",
    "Degrees",
    "EntityId",
    "EntityRef",
    "EntityRefs",
    "Flag",
    "Fraction",
    "GeoJSON",
    "Integer",
    "Measurable",
    "Measured",
    "NonEmptyUniqueList",
    "NonNegative",
    "NonNegativeInt",
    "Number",
    "Positive",
    "PositiveInt",
    "SignedDegrees",
    "StructuredValue",
    "TextRef",
    "UniqueList",
    "Uri",
    "UriRef",
    "format_datetime",
]

T = TypeVar("T")


@dataclass(frozen=True)
class AttributeKind:
    """Marks a value type as written as an NGSI-LD Relationship or GeoProperty (fields without
    a mark are Properties)."""

    kind: Literal["Relationship", "GeoProperty"]


RELATIONSHIP = AttributeKind("Relationship")
GEO_PROPERTY = AttributeKind("GeoProperty")

# -- identifiers ------------------------------------------------------------------------------

_SDM_ID_CHARACTER = r"[\w\-.{}$+*\[\]`|~^@!,:\\]"
_SDM_ID = re.compile(_SDM_ID_CHARACTER + "{1,256}")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+")


def _check_entity_id(value: str) -> str:
    if _SDM_ID.fullmatch(value) or _URI.fullmatch(value):
        return value
    raise ValueError(
        f"{value!r} is not an entity id: expected a URI such as 'urn:ngsi-ld:Device:0004a30b' "
        "or 1 to 256 letters, digits and -._:@!,~ characters"
    )


def _check_uri(value: str) -> str:
    if _URI.fullmatch(value):
        return value
    raise ValueError(f"{value!r} is not an absolute URI (such as 'https://example.org/x')")


EntityId = Annotated[
    str,
    AfterValidator(_check_entity_id),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 256,
                    "pattern": f"^{_SDM_ID_CHARACTER}+$",
                },
                {"type": "string", "format": "uri"},
            ]
        }
    ),
]
"""An entity identifier as Smart Data Models allow it: a URI or a plain token."""

EntityRef = Annotated[EntityId, RELATIONSHIP]
"""The id of another entity, written as an NGSI-LD Relationship (`refDevice`, ...)."""

TextRef = Annotated[str, RELATIONSHIP]
"""A Relationship that the official schema types as any string."""

EntityRefs = Annotated[list[EntityRef], Field(min_length=1)]
"""Ids of other entities, written as one Relationship; NGSI-LD needs at least one."""

Uri = Annotated[
    str, AfterValidator(_check_uri), WithJsonSchema({"type": "string", "format": "uri"})
]
"""An absolute URI (JSON Schema format `uri`)."""

UriRef = Annotated[Uri, RELATIONSHIP]
"""A Relationship whose object the official schema requires to be a URI."""


def _check_unique(value: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in value:
        if item in seen:
            raise ValueError(f"{item!r} is listed twice; the items must be unique")
        seen.append(item)
    return value


_UNIQUE = AfterValidator(_check_unique)
_UNIQUE_ITEMS = Field(json_schema_extra={"uniqueItems": True})

UniqueList = Annotated[list[T], _UNIQUE, _UNIQUE_ITEMS]
"""A list without repeated items (JSON Schema `uniqueItems`)."""
NonEmptyUniqueList = Annotated[list[T], Field(min_length=1), _UNIQUE, _UNIQUE_ITEMS]
"""A list of at least one item, without repeated items."""

# -- numbers ----------------------------------------------------------------------------------


def _finite_number(value: object) -> int | float:
    # an int stays an int, so that a value is written back with the JSON type it was read with
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return value


def _bounded(
    *, ge: float | None = None, le: float | None = None, gt: float | None = None
) -> AfterValidator:
    def check(value: float) -> float:
        if ge is not None and value < ge:
            raise ValueError(f"must be at least {ge}, got {value}")
        if gt is not None and value <= gt:
            raise ValueError(f"must be more than {gt}, got {value}")
        if le is not None and value > le:
            raise ValueError(f"must be at most {le}, got {value}")
        return value

    return AfterValidator(check)


def _int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


Number = Annotated[int | float, PlainValidator(_finite_number), WithJsonSchema({"type": "number"})]
"""A finite JSON number (integers are kept as integers); booleans and strings are refused."""
NonNegative = Annotated[
    int | float,
    PlainValidator(_finite_number),
    _bounded(ge=0),
    WithJsonSchema({"type": "number", "minimum": 0}),
]
Positive = Annotated[
    int | float,
    PlainValidator(_finite_number),
    _bounded(gt=0),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0}),
]
Fraction = Annotated[
    int | float,
    PlainValidator(_finite_number),
    _bounded(ge=0, le=1),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1}),
]
"""A number from 0 to 1 (Smart Data Models' relative values, `P1`)."""
Degrees = Annotated[
    int | float,
    PlainValidator(_finite_number),
    _bounded(ge=0, le=360),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 360}),
]
"""A direction in degrees from 0 to 360."""
SignedDegrees = Annotated[
    int | float,
    PlainValidator(_finite_number),
    _bounded(ge=-180, le=180),
    WithJsonSchema({"type": "number", "minimum": -180, "maximum": 180}),
]
"""A direction in degrees from -180 to 180."""
Integer = Annotated[int, PlainValidator(_int), WithJsonSchema({"type": "integer"})]
"""A JSON integer (`3.0` is read as 3); booleans and strings are refused."""
NonNegativeInt = Annotated[
    int, PlainValidator(_int), _bounded(ge=0), WithJsonSchema({"type": "integer", "minimum": 0})
]
PositiveInt = Annotated[
    int, PlainValidator(_int), _bounded(ge=1), WithJsonSchema({"type": "integer", "minimum": 1})
]
Flag = Annotated[bool, Strict()]
"""A JSON boolean (no `"yes"`, no `1`)."""

# -- time -------------------------------------------------------------------------------------


class _ReadDateTime(datetime):
    """A datetime that remembers the text it was read from, so that it is written back
    unchanged (`2016-11-30T07:00:00.00Z` stays that, not `2016-11-30T07:00:00Z`)."""

    text: str

    def __repr__(self) -> str:
        return repr(datetime.fromtimestamp(self.timestamp(), self.tzinfo))


def format_datetime(value: datetime) -> str:
    """ISO 8601 as NGSI-LD writes it: UTC with a `Z`; milliseconds or microseconds only when
    the time has them. A datetime read from text is written as that text."""
    text = getattr(value, "text", None)
    if isinstance(text, str):
        return text
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value.isoformat()} has no timezone; NGSI-LD times are UTC instants")
    return ngsi.format_datetime(value)


def _keep_text(value: Any, handler: ValidatorFunctionWrapHandler) -> datetime:
    parsed: datetime = handler(value)
    if isinstance(value, str):
        kept = _ReadDateTime(
            parsed.year,
            parsed.month,
            parsed.day,
            parsed.hour,
            parsed.minute,
            parsed.second,
            parsed.microsecond,
            tzinfo=parsed.tzinfo,
            fold=parsed.fold,
        )
        kept.text = value
        return kept
    return parsed


DateTime = Annotated[
    AwareDatetime,
    WrapValidator(_keep_text),
    PlainSerializer(format_datetime, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An instant (RFC 3339 `date-time` with an offset); naive times are refused, because guessing
their zone is how readings end up an hour off."""


def _datetime_as_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    return value


DateTimeText = Annotated[str, BeforeValidator(_datetime_as_text)]
"""A date-time or an ISO 8601 interval kept as text (`2016-12-07T11:10:00Z/2016-12-07T11:15:00Z`),
for the attributes the official schemas type as plain strings; a datetime is formatted."""

# -- geometry and structured values -----------------------------------------------------------


def _geometry_schema(kind: str, coordinates: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {
            "type": {"type": "string", "enum": [kind]},
            "coordinates": coordinates,
            "bbox": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
        },
    }


_POSITION = {
    "type": "array",
    "minItems": 2,
    "maxItems": 3,
    "prefixItems": [
        {"type": "number", "minimum": -180, "maximum": 180},
        {"type": "number", "minimum": -90, "maximum": 90},
    ],
    "items": {"type": "number"},
}
_POSITIONS = {"type": "array", "minItems": 1, "items": _POSITION}
_LINE = {"type": "array", "minItems": 2, "items": _POSITION}
_RINGS = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "array", "minItems": 4, "items": _POSITION},
}
_GEOJSON_SCHEMA = {
    "oneOf": [
        _geometry_schema("Point", _POSITION),
        _geometry_schema("LineString", _LINE),
        _geometry_schema("Polygon", _RINGS),
        _geometry_schema("MultiPoint", _POSITIONS),
        _geometry_schema("MultiLineString", {"type": "array", "minItems": 1, "items": _LINE}),
        _geometry_schema("MultiPolygon", {"type": "array", "minItems": 1, "items": _RINGS}),
    ]
}

GeoJSON = Annotated[Geometry, GEO_PROPERTY, WithJsonSchema(_GEOJSON_SCHEMA)]
"""A GeoJSON geometry (positions in WGS 84, longitude first; polygon rings closed), written as an
NGSI-LD GeoProperty."""


class StructuredValue(BaseModel):
    """Base of the small structured values inside attributes: declared members are checked,
    any other member is kept as it came."""

    model_config = ConfigDict(extra="allow")


class Address(StructuredValue):
    """A postal address (schema.org `PostalAddress`); other members are kept as they are."""

    streetAddress: str | None = None
    addressLocality: str | None = None
    addressRegion: str | None = None
    addressCountry: str | None = None
    postalCode: str | None = None
    postOfficeBoxNumber: str | None = None
    streetNr: str | None = None
    district: str | None = None


# -- metadata ---------------------------------------------------------------------------------


class Measured(BaseModel, Generic[T]):
    """An attribute value with its own NGSI-LD metadata.

    `observed_at` (when it was measured), `unit_code` (UN/CEFACT common code, overriding the
    model's default), `dataset_id` (which source, for attributes with several instances) and
    `extra`: every other member as read, in normalized form (sub-attributes such as
    `{"parkingPermit": {"type": "Property", "value": "yes"}}`, system members such as
    `modifiedAt`). Works for Properties, GeoProperties and Relationships alike (`value` is the
    Relationship's object).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: T
    observed_at: DateTime | None = None
    unit_code: str | None = Field(default=None, min_length=1)
    dataset_id: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    def __repr_name__(self) -> str:
        return "Measured"


_MEASURED_FIELDS = frozenset({"value", "observed_at", "unit_code", "dataset_id", "extra"})


def _measured_tag(value: Any) -> str:
    if isinstance(value, Measured):
        return "measured"
    if isinstance(value, dict) and "value" in value and _MEASURED_FIELDS.issuperset(value):
        return "measured"
    return "plain"


def _revalidate(measured_class: type[Measured[Any]]) -> Any:
    def convert(value: Any) -> Any:
        if isinstance(value, Measured) and type(value) is not measured_class:
            return {name: getattr(value, name) for name in Measured.model_fields}
        return value

    return convert


class _MeasurableForm:
    """`Measurable[T]`: the union of `T` and `Measured[T]`. A `Measured` instance, or a dict with
    `value` and nothing but `Measured`'s field names (what `model_dump` writes), is a `Measured`;
    anything else is a plain value, so structured values never turn into metadata by accident."""

    def __getitem__(self, item: Any) -> Any:
        measured_class = Measured[item]
        return Annotated[
            Union[  # noqa: UP007 - built at run time
                Annotated[item, Tag("plain")],
                Annotated[
                    measured_class, BeforeValidator(_revalidate(measured_class)), Tag("measured")
                ],
            ],
            Discriminator(_measured_tag),
        ]


if TYPE_CHECKING:
    Measurable = Union[T, Measured[T]]  # noqa: UP007 - a generic alias needs Union
else:
    Measurable = _MeasurableForm()
"""A plain value or a `Measured` one (see the module documentation)."""
