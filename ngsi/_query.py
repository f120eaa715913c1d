"""The NGSI-LD query language (`q`): a typed tree, a parser, a canonical printer and a builder.

The language is the one of ETSI GS CIM 009, clause 4.9. This module accepts:

    Query      = Or
    Or         = And *("|" And)                   ; ";" (AND) binds tighter than "|" (OR)
    And        = Primary *(";" Primary)
    Primary    = "(" Query ")"                     ; nesting is limited to MAX_NESTING levels
               / "!" Path                          ; the attribute does not exist
               / Path                              ; the attribute exists
               / Path ("==" / "!=") (Value / Range / ValueList / URI)
               / Path ("<" / "<=" / ">" / ">=") ComparableValue
               / Path ("~=" / "!~=") RegExp
    Path       = Name *("." Name) ["[" Key *("." Key) "]"]
    Name       = term / prefix ":" term / full IRI (https://...)
    ComparableValue = number / "quoted string" / dateTime / date / time   (only strings quoted)
    Value      = ComparableValue / true / false
    Range      = ComparableValue ".." ComparableValue
    ValueList  = Value 1*("," Value)
    RegExp     = "quoted" / unquoted up to a top-level ";", "|" or ")"

Extras over the letter of the grammar, all unambiguous: whitespace between tokens, nested
parentheses, `!attr`, `a[b][c]` as a spelling of `a[b.c]`, URIs inside value lists, and regular
expressions in quotes (needed when they contain a top-level `;`, `|` or `)`).

Strings follow JSON (RFC 8259) escapes; an unknown escape such as `\\d` is kept as written. In a
quoted regular expression only `\\"` and `\\\\` are escapes, everything else stays as written, so
`"\\d+"` is the expression `\\d+`. Expressions are Python `re` syntax, matched with `search`.

The tree, stable and shared with the broker (which evaluates it with `ngsi._qeval`):

    QExpr
    ├── Comparison(path: AttrPath, op: Op, value: Literal | Range | ValueList | Pattern)
    ├── Exists(path: AttrPath)
    ├── NotExists(path: AttrPath)
    ├── And(terms: tuple[QExpr, ...])      at least two terms, never an And among them
    └── Or(terms: tuple[QExpr, ...])       at least two terms, never an Or among them

    AttrPath(attr, sub, keys)   `temperature.observedAt` -> ("temperature", ("observedAt",), ())
                                `address[city]`          -> ("address", (), ("city",))
    Literal(value, kind)        kind says how the value was written (ValueKind)
    Range(lo, hi)               both Literals of the same comparable kind, bounds included
    ValueList(values)           two or more Literals
    Pattern(regex)              a regular expression, compiled once (`.compiled`)

Every node is a frozen, hashable dataclass; equal trees compare equal. Attribute names are kept
as written (short terms); `map_attributes` rewrites them, for example to expand terms to IRIs
with an @context before evaluation.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TypeAlias

from ngsi._errors import BadRequestData, InvalidRequest

__all__ = [
    "MAX_NESTING",
    "MAX_Q_LENGTH",
    "MAX_REGEX_LENGTH",
    "And",
    "AttrPath",
    "Comparison",
    "Exists",
    "InvalidQuery",
    "Literal",
    "LiteralValue",
    "NotExists",
    "Op",
    "Or",
    "Pattern",
    "Q",
    "QExpr",
    "QValue",
    "Range",
    "ValueKind",
    "ValueList",
    "format_q",
    "parse_q",
]

MAX_Q_LENGTH = 16_384
"""Longest `q` text `parse_q` accepts by default, in characters."""

MAX_NESTING = 32
"""Deepest parenthesis nesting `parse_q` accepts; trees are limited to one level more."""

MAX_REGEX_LENGTH = 1_024
"""Longest regular expression a `Pattern` accepts, in characters."""


class InvalidQuery(BadRequestData, InvalidRequest):
    """A `q` or geo-query that does not parse or does not make sense.

    On the wire it is BadRequestData, the error NGSI-LD prescribes for a query or geo-query that
    is not valid (and what the ETSI conformance suite checks); it is also an InvalidRequest, so
    `except InvalidRequest` catches it as well. The detail names the field, the position and
    what was expected.
    """


class Op(StrEnum):
    """A comparison operator, valued by its spelling in `q`."""

    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    MATCHES = "~="
    NOT_MATCHES = "!~="


ORDERING_OPS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})
EQUALITY_OPS = frozenset({Op.EQ, Op.NE})
PATTERN_OPS = frozenset({Op.MATCHES, Op.NOT_MATCHES})


class ValueKind(StrEnum):
    """How a literal was written, which decides how it compares with a target value."""

    NUMBER = "number"
    STRING = "string"
    BOOLEAN = "boolean"
    DATETIME = "dateTime"
    DATE = "date"
    TIME = "time"
    URI = "uri"


COMPARABLE_KINDS = frozenset(
    {ValueKind.NUMBER, ValueKind.STRING, ValueKind.DATETIME, ValueKind.DATE, ValueKind.TIME}
)

LiteralValue: TypeAlias = int | float | str | bool | datetime | date | time
"""The Python value inside a `Literal` (a URI is a `str` with kind URI)."""


# --------------------------------------------------------------------------------------------
# lexical helpers shared by the parser, the printer and the validators

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-]*:")
_SHORT_NAME = re.compile(r"[\w\-]+")
_KEY = re.compile(r"[^.\[\]\s]+")
_IRI_PUNCTUATION = frozenset("-_~:/?#@$&'*+%")
_VALUE_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_URI_STOP = frozenset(';|(),"')
_URI_VALUE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s;|(),\"]+")
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[\w\-.:]+")
_JSON_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_WHITESPACE = frozenset(" \t\r\n")
_MAX_NUMBER_LENGTH = 400
_INT_LIMIT = 10**_MAX_NUMBER_LENGTH
_SPLIT_OFFSET = re.compile(r"\d{2}(?::?\d{2})?(?![\d:])")
_TIME_BEFORE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?$")
_VALUE_FORMS = "a number, a quoted string, true, false, a dateTime, date or time, or a URI"


def _is_iri_char(text: str, i: int) -> bool:
    c = text[i]
    if c.isalnum():
        return True
    if c == "~":
        return not text.startswith("=", i + 1)
    return c in _IRI_PUNCTUATION


def _scan_name(text: str, pos: int) -> int:
    """End of the attribute name starting at `pos` (== pos when there is none).

    A short term runs over word characters and `-`. A name that starts with `scheme:` is an IRI
    (compact `ngsi-ld:observedAt` or full `https://example.org/ns/temperature`); a dot belongs to
    it while a `/` or `#` follows further on in the same name (`uri.etsi.org/`,
    `dataModel.Environment/`), so `https://example.org/ns/temperature.observedAt` is the IRI and
    the sub-attribute `observedAt`. A dot followed by `scheme:` always starts a new name.
    """
    scheme = _SCHEME.match(text, pos)
    if scheme is None:
        short = _SHORT_NAME.match(text, pos)
        return pos if short is None else short.end()
    n = len(text)
    i = scheme.end()
    slash_ahead = -1  # a '/' or '#' known to follow in this name: dots before it belong
    while i < n:
        c = text[i]
        if c == "." and i > slash_ahead:
            j = i
            while j < n and (text[j] == "." or _is_iri_char(text, j)):
                if text[j] == "." and _SCHEME.match(text, j + 1):
                    break
                if text[j] in "/#":
                    slash_ahead = j
                    break
                j += 1
            if slash_ahead < i:
                break
        elif c != "." and not _is_iri_char(text, i):
            break
        i += 1
    if i == scheme.end():
        return pos  # a bare "prefix:" names nothing
    return i


def _is_printable_name(name: str) -> bool:
    return bool(name) and _scan_name(name, 0) == len(name)


def _quote_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _quote_regex(regex: str) -> str:
    return '"' + regex.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _scan_unquoted_regex(text: str, pos: int) -> int:
    """End of an unquoted regular expression: the first `;` or `|` outside parentheses and
    character classes, or a `)` that closes nothing."""
    n = len(text)
    i = pos
    depth = 0
    in_class = False
    class_start = 0
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]" and i > class_start:
                in_class = False
        elif c == "[":
            in_class = True
            class_start = i + 1
            if text.startswith("^", class_start):
                class_start += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                break
            depth -= 1
        elif c in ";|" and depth == 0:
            break
        i += 1
    return min(i, n)


def _format_offset(value: datetime | time, text: str) -> str:
    if value.utcoffset() == timedelta(0) and text.endswith("+00:00"):
        return text[: -len("+00:00")] + "Z"
    return text


def _names(what: str, names: object) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise TypeError(f"{what} names must be a tuple of strings, got {names!r}")
    result = tuple(names)
    for name in result:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what} names must be non-empty strings, got {name!r}")
    return result


def _whole_minute_offset(offset: timedelta | None) -> bool:
    return offset is None or (offset.microseconds == 0 and offset.seconds % 60 == 0)


# --------------------------------------------------------------------------------------------
# the tree


@dataclass(frozen=True, slots=True)
class AttrPath:
    """Where a query term looks in an entity.

    `attr` is the attribute (Property or Relationship) name, `sub` the chain of sub-attribute
    names below it (including the members `observedAt`, `unitCode`, `datasetId`, `createdAt`,
    `modifiedAt`), `keys` the member names inside the target's JSON value (`address[city]`,
    `name[en]` for a LanguageProperty, `*` for any member). Names are kept as written.
    """

    attr: str
    sub: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.attr, str) or not self.attr:
            raise ValueError(
                f"an attribute path needs a non-empty attribute name, got {self.attr!r}"
            )
        object.__setattr__(self, "sub", _names("sub-attribute", self.sub))
        object.__setattr__(self, "keys", _names("key", self.keys))

    @classmethod
    def parse(cls, text: str) -> AttrPath:
        """The path written in `q` syntax (`temperature.observedAt`, `address[city]`).

        Raises InvalidQuery naming the position of the first problem.
        """
        parser = _Parser(text, what="attribute path", max_length=MAX_Q_LENGTH)
        path = parser.path()
        parser.skip_ws()
        if not parser.at_end():
            raise parser.error(f"unexpected {parser.peek_text()} after the attribute path")
        return path

    def map_attributes(self, fn: Callable[[str], str]) -> AttrPath:
        """The same path with `fn` applied to the attribute and every sub-attribute name (keys
        inside JSON values are left as they are)."""
        return AttrPath(fn(self.attr), tuple(fn(s) for s in self.sub), self.keys)

    @property
    def names(self) -> tuple[str, ...]:
        """The attribute name followed by the sub-attribute names."""
        return (self.attr, *self.sub)

    def __str__(self) -> str:
        return _format_path(self)


@dataclass(frozen=True, slots=True)
class Literal:
    """One value as written in `q`: `20`, `"Mercedes"`, `true`, `2024-01-01T00:00:00Z`,
    `2024-01-01`, `12:00:00`, `urn:ngsi-ld:Building:1`.

    `kind` is part of the value: `Literal(1, NUMBER)` and `Literal(True, BOOLEAN)` differ, and a
    URI compares like a string but is written without quotes. Use `Literal.of(x)` to infer the
    kind from a Python value. Floats are finite, integers under 400 digits, time zone
    offsets whole minutes.
    """

    value: LiteralValue
    kind: ValueKind

    def __post_init__(self) -> None:
        kind = ValueKind(self.kind)
        object.__setattr__(self, "kind", kind)
        value = self.value
        ok: bool
        if kind is ValueKind.NUMBER:
            if type(value) is int:
                ok = -_INT_LIMIT < value < _INT_LIMIT
            else:
                ok = type(value) is float and math.isfinite(value)
        elif kind is ValueKind.STRING:
            ok = isinstance(value, str)
        elif kind is ValueKind.BOOLEAN:
            ok = type(value) is bool
        elif kind is ValueKind.DATETIME:
            ok = isinstance(value, datetime) and _whole_minute_offset(value.utcoffset())
        elif kind is ValueKind.DATE:
            ok = type(value) is date
        elif kind is ValueKind.TIME:
            ok = isinstance(value, time) and _whole_minute_offset(value.utcoffset())
        else:
            ok = isinstance(value, str) and _URI_VALUE.fullmatch(value) is not None
        if not ok:
            raise ValueError(f"{value!r} is not a valid {kind.value} literal")

    @classmethod
    def of(cls, value: LiteralValue | Literal) -> Literal:
        """The literal for a Python value: bool, int, float, str (a quoted string), datetime,
        date or time. Use `Literal.uri(text)` for an unquoted URI."""
        if isinstance(value, Literal):
            return value
        kind: ValueKind
        if isinstance(value, bool):
            kind = ValueKind.BOOLEAN
        elif isinstance(value, int | float):
            kind = ValueKind.NUMBER
        elif isinstance(value, str):
            kind = ValueKind.STRING
        elif isinstance(value, datetime):
            kind = ValueKind.DATETIME
        elif isinstance(value, date):
            kind = ValueKind.DATE
        elif isinstance(value, time):
            kind = ValueKind.TIME
        else:
            raise TypeError(f"cannot use a {type(value).__name__} as a q value: {value!r}")
        return cls(value, kind)

    @classmethod
    def uri(cls, text: str) -> Literal:
        """A URI written without quotes (`urn:ngsi-ld:Building:1`)."""
        return cls(text, ValueKind.URI)

    @property
    def comparable(self) -> bool:
        """True when the kind has an order (numbers, strings, dateTimes, dates, times)."""
        return self.kind in COMPARABLE_KINDS

    def __str__(self) -> str:
        return _format_literal(self)


@dataclass(frozen=True, slots=True)
class Range:
    """`lo..hi` with `==` (inside, bounds included) or `!=` (outside)."""

    lo: Literal
    hi: Literal

    def __post_init__(self) -> None:
        for bound in (self.lo, self.hi):
            if not isinstance(bound, Literal):
                raise TypeError(f"range bounds must be Literals, got {bound!r}")
            if not bound.comparable:
                raise ValueError(
                    "a range takes numbers, strings, dateTimes, dates or times, "
                    f"not {bound.kind.value} {bound}"
                )
        if self.lo.kind is not self.hi.kind:
            raise ValueError(
                f"both bounds of a range must be of the same kind, got {self.lo.kind.value} "
                f"{self.lo} and {self.hi.kind.value} {self.hi}"
            )

    def __str__(self) -> str:
        return f"{_format_literal(self.lo)}..{_format_literal(self.hi)}"


@dataclass(frozen=True, slots=True)
class ValueList:
    """`a,b,c` with `==` (any of them) or `!=` (none of them)."""

    values: tuple[Literal, ...]

    def __post_init__(self) -> None:
        values = tuple(self.values)
        object.__setattr__(self, "values", values)
        if len(values) < 2:
            raise ValueError(f"a value list needs at least two values, got {len(values)}")
        for value in values:
            if not isinstance(value, Literal):
                raise TypeError(f"value list members must be Literals, got {value!r}")

    def __str__(self) -> str:
        return ",".join(_format_literal(v) for v in self.values)


@dataclass(frozen=True, slots=True)
class Pattern:
    """A regular expression for `~=` / `!~=`, in Python `re` syntax, matched with `search`.

    `compiled` is compiled once, at construction, which also validates it.
    """

    regex: str
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.regex, str) or not self.regex:
            raise ValueError("a regular expression must be a non-empty string")
        if len(self.regex) > MAX_REGEX_LENGTH:
            raise ValueError(
                f"regular expression longer than {MAX_REGEX_LENGTH} characters ({len(self.regex)})"
            )
        try:
            compiled = re.compile(self.regex)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {self.regex!r} ({exc.msg})") from None
        except RecursionError:
            raise ValueError("regular expression nested too deeply") from None
        object.__setattr__(self, "compiled", compiled)

    def __str__(self) -> str:
        return _format_regex(self.regex)


QValue: TypeAlias = Literal | Range | ValueList | Pattern
"""What a Comparison compares with."""


class QExpr:
    """A `q` expression: Comparison, Exists, NotExists, And or Or.

    Combine with `&` (AND) and `|` (OR); `str(expr)` is the canonical text (`format_q`).
    """

    __slots__ = ()

    def __and__(self, other: QExpr) -> And:
        if not isinstance(other, QExpr):
            return NotImplemented
        return And((self, other))

    def __or__(self, other: QExpr) -> Or:
        if not isinstance(other, QExpr):
            return NotImplemented
        return Or((self, other))

    def map_attributes(self, fn: Callable[[str], str]) -> QExpr:
        """The same tree with `fn` applied to every attribute and sub-attribute name."""
        raise NotImplementedError

    def paths(self) -> Iterator[AttrPath]:
        """Every attribute path in the tree, left to right."""
        raise NotImplementedError

    def attribute_names(self) -> frozenset[str]:
        """The top-level attribute names the expression looks at."""
        return frozenset(p.attr for p in self.paths())

    @property
    def depth(self) -> int:
        """0 for a single term, 1 + the deepest term for And / Or."""
        return 0

    def __str__(self) -> str:
        try:
            return format_q(self)
        except ValueError:
            return repr(self)


@dataclass(frozen=True, slots=True)
class Comparison(QExpr):
    """`path op value`. The operator decides the values it takes: `==` and `!=` take any
    Literal, a Range or a ValueList; `<`, `<=`, `>`, `>=` a comparable Literal; `~=` and `!~=`
    a Pattern."""

    path: AttrPath
    op: Op
    value: QValue

    def __post_init__(self) -> None:
        op = Op(self.op)
        object.__setattr__(self, "op", op)
        if not isinstance(self.path, AttrPath):
            raise TypeError(f"a comparison needs an AttrPath, got {self.path!r}")
        value = self.value
        if op in PATTERN_OPS:
            if not isinstance(value, Pattern):
                raise ValueError(f"'{op}' takes a regular expression, got {value!r}")
        elif isinstance(value, Pattern):
            raise ValueError(f"a regular expression needs '~=' or '!~=', not '{op}'")
        elif isinstance(value, Range | ValueList):
            if op not in EQUALITY_OPS:
                what = "a range (..)" if isinstance(value, Range) else "a value list (,)"
                raise ValueError(f"{what} is only allowed with '==' or '!=', not '{op}'")
        elif isinstance(value, Literal):
            if op in ORDERING_OPS and not value.comparable:
                raise ValueError(
                    f"'{op}' compares numbers, strings, dateTimes, dates or times, not "
                    f"{value.kind.value} {_format_literal(value)}"
                )
        else:
            raise TypeError(
                f"a comparison value must be a Literal, Range, ValueList or Pattern, got {value!r}"
            )

    def map_attributes(self, fn: Callable[[str], str]) -> Comparison:
        return Comparison(self.path.map_attributes(fn), self.op, self.value)

    def paths(self) -> Iterator[AttrPath]:
        yield self.path


@dataclass(frozen=True, slots=True)
class Exists(QExpr):
    """The entity has the target element of `path` (`q=temperature`)."""

    path: AttrPath

    def __post_init__(self) -> None:
        if not isinstance(self.path, AttrPath):
            raise TypeError(f"Exists needs an AttrPath, got {self.path!r}")

    def map_attributes(self, fn: Callable[[str], str]) -> Exists:
        return Exists(self.path.map_attributes(fn))

    def paths(self) -> Iterator[AttrPath]:
        yield self.path


@dataclass(frozen=True, slots=True)
class NotExists(QExpr):
    """The entity lacks the target element of `path` (`q=!temperature`)."""

    path: AttrPath

    def __post_init__(self) -> None:
        if not isinstance(self.path, AttrPath):
            raise TypeError(f"NotExists needs an AttrPath, got {self.path!r}")

    def map_attributes(self, fn: Callable[[str], str]) -> NotExists:
        return NotExists(self.path.map_attributes(fn))

    def paths(self) -> Iterator[AttrPath]:
        yield self.path


def _flatten(cls: type[And | Or], terms: Iterable[QExpr]) -> tuple[QExpr, ...]:
    flat: list[QExpr] = []
    for term in terms:
        if isinstance(term, cls):
            flat.extend(term.terms)
        elif isinstance(term, QExpr):
            flat.append(term)
        else:
            raise TypeError(f"{cls.__name__} terms must be q expressions, got {term!r}")
    if len(flat) < 2:
        raise ValueError(f"{cls.__name__} needs at least two terms, got {len(flat)}")
    return tuple(flat)


def _check_depth(terms: tuple[QExpr, ...]) -> int:
    depth = 1 + max(t.depth for t in terms)
    if depth > MAX_NESTING + 1:
        raise ValueError(f"expression nested deeper than {MAX_NESTING + 1} levels")
    return depth


@dataclass(frozen=True, slots=True)
class And(QExpr):
    """All terms hold (`;`). Nested Ands are flattened at construction."""

    terms: tuple[QExpr, ...]
    _depth: int = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        terms = _flatten(And, self.terms)
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "_depth", _check_depth(terms))

    @property
    def depth(self) -> int:
        return self._depth

    def map_attributes(self, fn: Callable[[str], str]) -> And:
        return And(tuple(t.map_attributes(fn) for t in self.terms))

    def paths(self) -> Iterator[AttrPath]:
        for term in self.terms:
            yield from term.paths()


@dataclass(frozen=True, slots=True)
class Or(QExpr):
    """At least one term holds (`|`). Nested Ors are flattened at construction."""

    terms: tuple[QExpr, ...]
    _depth: int = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        terms = _flatten(Or, self.terms)
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "_depth", _check_depth(terms))

    @property
    def depth(self) -> int:
        return self._depth

    def map_attributes(self, fn: Callable[[str], str]) -> Or:
        return Or(tuple(t.map_attributes(fn) for t in self.terms))

    def paths(self) -> Iterator[AttrPath]:
        for term in self.terms:
            yield from term.paths()


# --------------------------------------------------------------------------------------------
# printer


def _format_path(path: AttrPath) -> str:
    for name in path.names:
        if not _is_printable_name(name):
            raise ValueError(f"attribute name {name!r} cannot be written in q")
    text = ".".join(path.names)
    if path.keys:
        for key in path.keys:
            if _KEY.fullmatch(key) is None:
                raise ValueError(f"key {key!r} cannot be written in q")
        text += "[" + ".".join(path.keys) + "]"
    return text


def _format_literal(lit: Literal) -> str:
    value = lit.value
    kind = lit.kind
    if kind is ValueKind.STRING:
        assert isinstance(value, str)
        return _quote_string(value)
    if kind is ValueKind.BOOLEAN:
        return "true" if value else "false"
    if kind is ValueKind.NUMBER:
        return repr(value)
    if kind is ValueKind.DATETIME or kind is ValueKind.TIME:
        assert isinstance(value, datetime | time)
        return _format_offset(value, value.isoformat())
    if kind is ValueKind.DATE:
        assert isinstance(value, date)
        return value.isoformat()
    assert isinstance(value, str)
    return value


def _format_regex(regex: str) -> str:
    unquoted_ok = (
        not regex.startswith('"')
        and regex == regex.strip()
        and _scan_unquoted_regex(regex, 0) == len(regex)
    )
    return regex if unquoted_ok else _quote_regex(regex)


def _format_value(value: QValue) -> str:
    if isinstance(value, Literal):
        return _format_literal(value)
    return str(value)


def _format(expr: QExpr, *, nested: bool) -> str:
    if isinstance(expr, Comparison):
        return f"{_format_path(expr.path)}{expr.op.value}{_format_value(expr.value)}"
    if isinstance(expr, Exists):
        return _format_path(expr.path)
    if isinstance(expr, NotExists):
        return "!" + _format_path(expr.path)
    if isinstance(expr, And | Or):
        sep = ";" if isinstance(expr, And) else "|"
        text = sep.join(_format(t, nested=True) for t in expr.terms)
        return f"({text})" if nested else text
    raise TypeError(f"not a q expression: {expr!r}")


def format_q(expr: QExpr) -> str:
    """The canonical `q` text of `expr`: no whitespace, every nested And / Or in parentheses,
    strings in JSON quotes, regular expressions unquoted unless they need quotes.

    `parse_q(format_q(e)) == e` for every tree. Raises ValueError for a tree holding a name that
    the grammar cannot spell (an IRI whose last segment contains a dot, a key with a dot).
    """
    return _format(expr, nested=False)


# --------------------------------------------------------------------------------------------
# parser


class _Parser:
    """Recursive descent over one `q` text; positions in messages are 1-based."""

    __slots__ = ("max_nesting", "n", "pos", "text", "what")

    def __init__(self, text: str, *, what: str, max_length: int, max_nesting: int = MAX_NESTING):
        if not isinstance(text, str):
            raise InvalidQuery(f"{what}: expected a string, got {type(text).__name__}")
        if len(text) > max_length:
            raise InvalidQuery(
                f"{what}: longer than {max_length} characters ({len(text)}); "
                "split the query or use fewer values"
            )
        self.text = text
        self.n = len(text)
        self.pos = 0
        self.what = what
        self.max_nesting = max_nesting

    # -- plumbing

    def error(
        self, message: str, pos: int | None = None, *, detail: str | None = None
    ) -> InvalidQuery:
        """`<what>: <message> at position <n>[: <detail>]`, n 1-based."""
        where = self.pos if pos is None else pos
        text = f"{self.what}: {message} at position {where + 1}"
        return InvalidQuery(f"{text}: {detail}" if detail else text)

    def at_end(self) -> bool:
        return self.pos >= self.n

    def peek_text(self) -> str:
        if self.pos >= self.n:
            return "end of query"
        word = _WORD.match(self.text, self.pos)
        shown = word.group() if word else self.text[self.pos]
        if len(shown) > 24:
            shown = shown[:24] + "..."
        return repr(shown)

    def offset_hint(self) -> str:
        """A hint when a time zone offset lost its '+' to URL decoding (`...T10:00:00 02:00`)."""
        pos, text = self.pos, self.text
        if (
            0 < pos < self.n
            and text[pos - 1] == " "
            and _SPLIT_OFFSET.match(text, pos)
            and _TIME_BEFORE.search(text[: pos - 1].rstrip())
        ):
            return "; a '+' in a time zone offset must be sent as %2B in a URL"
        return ""

    def skip_ws(self) -> None:
        text, n, pos = self.text, self.n, self.pos
        while pos < n and text[pos] in _WHITESPACE:
            pos += 1
        self.pos = pos

    # -- expressions

    def query(self) -> QExpr:
        self.skip_ws()
        if self.at_end():
            raise self.error("empty query: expected an attribute path or '('")
        expr = self.disjunction(0)
        self.skip_ws()
        if not self.at_end():
            if self.text[self.pos] == ")":
                raise self.error("unexpected ')' that closes no '('")
            raise self.error(
                f"unexpected {self.peek_text()}",
                detail="expected ';', '|' or the end of the query" + self.offset_hint(),
            )
        return expr

    def disjunction(self, depth: int) -> QExpr:
        start = self.pos
        terms = [self.conjunction(depth)]
        while True:
            self.skip_ws()
            if self.pos < self.n and self.text[self.pos] == "|":
                self.pos += 1
                terms.append(self.conjunction(depth))
            else:
                break
        return terms[0] if len(terms) == 1 else self.build(Or, terms, start)

    def conjunction(self, depth: int) -> QExpr:
        start = self.pos
        terms = [self.primary(depth)]
        while True:
            self.skip_ws()
            if self.pos < self.n and self.text[self.pos] == ";":
                self.pos += 1
                terms.append(self.primary(depth))
            else:
                break
        return terms[0] if len(terms) == 1 else self.build(And, terms, start)

    def build(self, cls: type[And | Or], terms: list[QExpr], start: int) -> QExpr:
        try:
            return cls(tuple(terms))
        except ValueError as exc:
            raise self.error(str(exc), start) from None

    def primary(self, depth: int) -> QExpr:
        self.skip_ws()
        if self.at_end():
            previous = self.text[: self.pos].rstrip()
            after = f" after '{previous[-1]}'" if previous else ""
            raise self.error(f"expected an attribute path or '('{after}")
        c = self.text[self.pos]
        if c == "(":
            opened = self.pos
            if depth >= self.max_nesting:
                raise self.error(f"parentheses nested deeper than {self.max_nesting} levels")
            self.pos += 1
            expr = self.disjunction(depth + 1)
            self.skip_ws()
            if self.at_end() or self.text[self.pos] != ")":
                raise self.error(
                    "expected ')'",
                    detail=f"the '(' at position {opened + 1} is not closed, found "
                    f"{self.peek_text()}{self.offset_hint()}",
                )
            self.pos += 1
            return expr
        if c == "!" and not self.text.startswith(("!=", "!~="), self.pos):
            bang = self.pos
            self.pos += 1
            if self.pos < self.n and self.text[self.pos] == "(":
                raise self.error("'!' applies to an attribute path only, not to '('")
            path = self.path()
            self.skip_ws()
            if self.operator() is not None:
                raise self.error(
                    "'!' (the attribute does not exist) takes no comparison",
                    bang,
                    detail=f"write '!{path}' alone, or compare with '!=' or '!~='",
                )
            return NotExists(path)
        path = self.path()
        self.skip_ws()
        op_pos = self.pos
        op = self.operator()
        if op is None:
            if self.pos < self.n and self.text[self.pos] not in ";|)":
                if self.text[self.pos] == "=":
                    raise self.error("'=' is not an operator: use '=='")
                raise self.error(
                    f"unexpected {self.peek_text()} after the attribute path '{path}'",
                    detail="expected an operator (==, !=, <, <=, >, >=, ~=, !~=), ';', '|' or ')'",
                )
            return Exists(path)
        self.skip_ws()
        value_pos = self.pos
        value: QValue = self.regex(op) if op in PATTERN_OPS else self.comparison_value(op)
        try:
            return Comparison(path, op, value)
        except ValueError as exc:
            raise self.error(str(exc), value_pos if value_pos > op_pos else op_pos) from None

    def operator(self) -> Op | None:
        text, pos = self.text, self.pos
        for spelling in ("!~=", "==", "!=", "~=", ">=", "<=", ">", "<"):
            if text.startswith(spelling, pos):
                self.pos = pos + len(spelling)
                return Op(spelling)
        return None

    # -- paths

    def path(self) -> AttrPath:
        text = self.text
        start = self.pos
        end = _scan_name(text, start)
        if end == start:
            raise self.error("expected an attribute path", detail=f"found {self.peek_text()}")
        attr = text[start:end]
        sub: list[str] = []
        pos = end
        while pos < self.n and text[pos] == ".":
            end = _scan_name(text, pos + 1)
            if end == pos + 1:
                self.pos = pos + 1
                raise self.error(
                    "expected a sub-attribute name after '.'", detail=f"found {self.peek_text()}"
                )
            sub.append(text[pos + 1 : end])
            pos = end
        keys: list[str] = []
        while pos < self.n and text[pos] == "[":
            close = text.find("]", pos + 1)
            if close < 0:
                raise self.error("expected ']' to close '['", pos)
            inner = text[pos + 1 : close]
            for part in inner.split("."):
                if _KEY.fullmatch(part) is None:
                    raise self.error(
                        "expected member names separated by '.' inside '[...]'",
                        pos + 1,
                        detail=f"found {inner!r}",
                    )
                keys.append(part)
            pos = close + 1
        if pos < self.n and text[pos] == "{":
            raise self.error("linked-entity paths (attr{...}) are not supported", pos)
        self.pos = pos
        return AttrPath(attr, tuple(sub), tuple(keys))

    # -- values

    def regex(self, op: Op) -> Pattern:
        text = self.text
        start = self.pos
        if self.pos < self.n and text[self.pos] == '"':
            regex = self.quoted(regex=True)
        else:
            end = _scan_unquoted_regex(text, start)
            regex = text[start:end].rstrip()
            self.pos = end
        if not regex:
            raise self.error(f"expected a regular expression after '{op}'", start)
        try:
            return Pattern(regex)
        except ValueError as exc:
            raise self.error(str(exc), start) from None

    def comparison_value(self, op: Op) -> Literal | Range | ValueList:
        first_pos = self.pos
        first = self.literal(op)
        self.skip_ws()
        if self.text.startswith("..", self.pos):
            if op not in EQUALITY_OPS:
                raise self.error(
                    "a range (..) is only allowed with '==' or '!='", detail=f"not with '{op}'"
                )
            self.pos += 2
            self.skip_ws()
            second = self.literal(Op.EQ, after="..")
            try:
                return Range(first, second)
            except ValueError as exc:
                raise self.error(str(exc), first_pos) from None
        if self.pos < self.n and self.text[self.pos] == ",":
            if op not in EQUALITY_OPS:
                raise self.error(
                    "a value list (,) is only allowed with '==' or '!='", detail=f"not with '{op}'"
                )
            values = [first]
            while self.pos < self.n and self.text[self.pos] == ",":
                self.pos += 1
                self.skip_ws()
                values.append(self.literal(Op.EQ, after=","))
                self.skip_ws()
            return ValueList(tuple(values))
        return first

    def literal(self, op: Op, *, after: str | None = None) -> Literal:
        text = self.text
        pos = self.pos
        shown_after = after or op.value
        if pos >= self.n or text[pos] in ";|),":
            raise self.error(f"expected a value after '{shown_after}'", detail=_VALUE_FORMS)
        lit: Literal
        if text[pos] == '"':
            lit = Literal(self.quoted(regex=False), ValueKind.STRING)
        elif (m := _DATETIME.match(text, pos)) and self.ends_value(m.end()):
            lit = self.temporal(m.group(), ValueKind.DATETIME, pos)
            self.pos = m.end()
        elif (m := _DATE.match(text, pos)) and self.ends_value(m.end()):
            lit = self.temporal(m.group(), ValueKind.DATE, pos)
            self.pos = m.end()
        elif (m := _TIME.match(text, pos)) and self.ends_value(m.end()):
            lit = self.temporal(m.group(), ValueKind.TIME, pos)
            self.pos = m.end()
        elif (m := _NUMBER.match(text, pos)) and self.ends_value(m.end()):
            token = m.group()
            if len(token) > _MAX_NUMBER_LENGTH:
                raise self.error(f"number {token[:12]}... is too long", pos)
            number: int | float = float(token) if any(c in token for c in ".eE") else int(token)
            if isinstance(number, float) and number in (float("inf"), float("-inf")):
                raise self.error(f"number {token} is out of range", pos)
            lit = Literal(number, ValueKind.NUMBER)
            self.pos = m.end()
        elif _VALUE_SCHEME.match(text, pos):
            end = pos
            while end < self.n and text[end] not in _URI_STOP and text[end] not in _WHITESPACE:
                end += 1
            token = text[pos:end]
            if _URI_VALUE.fullmatch(token) is None:
                raise self.error("expected a URI", pos, detail=f"found {token!r}")
            lit = Literal(token, ValueKind.URI)
            self.pos = end
        elif text.startswith(("true", "false"), pos):
            word = "true" if text.startswith("true", pos) else "false"
            if not self.ends_value(pos + len(word)):
                raise self.bad_value(shown_after, pos)
            lit = Literal(word == "true", ValueKind.BOOLEAN)
            self.pos = pos + len(word)
        else:
            raise self.bad_value(shown_after, pos)
        if op in ORDERING_OPS and not lit.comparable:
            raise self.error(
                f"'{op}' compares numbers, strings, dateTimes, dates or times",
                pos,
                detail=f"got {lit.kind.value} {_format_literal(lit)}",
            )
        return lit

    def bad_value(self, after: str, pos: int) -> InvalidQuery:
        self.pos = pos
        found = self.peek_text()
        word = _WORD.match(self.text, pos)
        hint = ""
        if word and word.group()[:1].isalpha():
            hint = f'; strings are written in double quotes ("{word.group()}")'
        return self.error(
            f"expected a value after '{after}'",
            pos,
            detail=f"found {found}{hint or ' (' + _VALUE_FORMS + ')'}",
        )

    def ends_value(self, end: int) -> bool:
        text = self.text
        if end >= self.n:
            return True
        c = text[end]
        return c in ";|),\t\r\n " or text.startswith("..", end)

    def temporal(self, token: str, kind: ValueKind, pos: int) -> Literal:
        try:
            value: datetime | date | time
            if kind is ValueKind.DATETIME:
                value = datetime.fromisoformat(token)
            elif kind is ValueKind.DATE:
                value = date.fromisoformat(token)
            else:
                value = time.fromisoformat(token)
            return Literal(value, kind)
        except ValueError:
            raise self.error(f"invalid {kind.value} {token!r}", pos) from None

    def quoted(self, *, regex: bool) -> str:
        text = self.text
        opened = self.pos
        i = opened + 1
        out: list[str] = []
        n = self.n
        while True:
            stop = i
            while stop < n and text[stop] != '"' and text[stop] != "\\":
                stop += 1
            out.append(text[i:stop])
            if stop >= n:
                raise self.error("unterminated string: expected a closing '\"'", opened)
            if text[stop] == '"':
                self.pos = stop + 1
                return "".join(out)
            if stop + 1 >= n:
                raise self.error("unterminated string: expected a closing '\"'", opened)
            escaped = text[stop + 1]
            if regex:
                out.append(escaped if escaped in '"\\' else "\\" + escaped)
                i = stop + 2
            elif escaped == "u":
                i = self.unicode_escape(stop, out)
            elif escaped in _JSON_ESCAPES:
                out.append(_JSON_ESCAPES[escaped])
                i = stop + 2
            else:
                out.append("\\" + escaped)
                i = stop + 2

    def unicode_escape(self, at: int, out: list[str]) -> int:
        text = self.text
        digits = text[at + 2 : at + 6]
        if len(digits) != 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise self.error("expected four hex digits after '\\u'", at)
        code = int(digits, 16)
        end = at + 6
        if 0xD800 <= code <= 0xDBFF and text.startswith("\\u", end):
            low_digits = text[end + 2 : end + 6]
            if len(low_digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in low_digits):
                low = int(low_digits, 16)
                if 0xDC00 <= low <= 0xDFFF:
                    out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                    return end + 6
        out.append(chr(code))
        return end


def parse_q(text: str, *, max_length: int = MAX_Q_LENGTH, max_nesting: int = MAX_NESTING) -> QExpr:
    """Parse an NGSI-LD `q` text (already URL-decoded) into a tree.

    Raises InvalidQuery (a BadRequestData on the wire, also an InvalidRequest) whose detail
    names the 1-based position and what was expected, for example
    `q: expected a value after '>=' at position 14`. Texts longer than `max_length` and
    parentheses nested deeper than `max_nesting` are refused before any recursion can run deep.
    """
    return _Parser(text, what="q", max_length=max_length, max_nesting=max_nesting).query()


# --------------------------------------------------------------------------------------------
# builder


_Scalar: TypeAlias = LiteralValue | Literal


class Q:
    """Build `q` trees from Python: the same trees `parse_q` makes.

        Q("temperature") > 20                      temperature>20
        Q("brandName").eq("Mercedes")              brandName=="Mercedes"
        Q("temperature").between(10, 20)           temperature==10..20
        Q("color").one_of("red", "blue")           color=="red","blue"
        Q("name").matches("^Park")                 name~=^Park
        Q("temperature.observedAt") >= datetime(2024, 1, 1, tzinfo=UTC)
        Q("address[city]").eq("Berlin")
        Q("refDevice").eq(Literal.uri("urn:ngsi-ld:Device:1"))
        (Q("a") > 1) & Q("b").exists() | Q("c").missing()

    Python values become Literals with `Literal.of` (a `str` is a quoted string). `==` and `!=`
    between Q objects keep their ordinary meaning: use `eq` / `ne`.
    """

    __slots__ = ("path",)

    path: AttrPath

    def __init__(self, path: str | AttrPath) -> None:
        self.path = path if isinstance(path, AttrPath) else AttrPath.parse(path)

    def __repr__(self) -> str:
        return f"Q({str(self.path)!r})"

    def sub(self, name: str) -> Q:
        """The sub-attribute `name` of this path (`Q("temperature").sub("observedAt")`)."""
        return Q(AttrPath(self.path.attr, (*self.path.sub, name), self.path.keys))

    def key(self, *names: str) -> Q:
        """Members inside the JSON value (`Q("address").key("city")` is `address[city]`)."""
        return Q(AttrPath(self.path.attr, self.path.sub, (*self.path.keys, *names)))

    def _cmp(self, op: Op, value: QValue) -> Comparison:
        return Comparison(self.path, op, value)

    def eq(self, value: _Scalar) -> Comparison:
        return self._cmp(Op.EQ, Literal.of(value))

    def ne(self, value: _Scalar) -> Comparison:
        return self._cmp(Op.NE, Literal.of(value))

    def lt(self, value: _Scalar) -> Comparison:
        return self._cmp(Op.LT, Literal.of(value))

    def le(self, value: _Scalar) -> Comparison:
        return self._cmp(Op.LE, Literal.of(value))

    def gt(self, value: _Scalar) -> Comparison:
        return self._cmp(Op.GT, Literal.of(value))

    def ge(self, value: _Scalar) -> Comparison:
        return self._cmp(Op.GE, Literal.of(value))

    __lt__ = lt
    __le__ = le
    __gt__ = gt
    __ge__ = ge

    def between(self, lo: _Scalar, hi: _Scalar) -> Comparison:
        """`lo <= value <= hi` (`attr==lo..hi`)."""
        return self._cmp(Op.EQ, Range(Literal.of(lo), Literal.of(hi)))

    def not_between(self, lo: _Scalar, hi: _Scalar) -> Comparison:
        """Outside `lo..hi` (`attr!=lo..hi`)."""
        return self._cmp(Op.NE, Range(Literal.of(lo), Literal.of(hi)))

    def one_of(self, *values: _Scalar | Iterable[_Scalar]) -> Comparison:
        """Equal to any of the values (`attr==a,b,c`); one value gives a plain `==`. Takes the
        values as arguments or as one list."""
        return self._list(Op.EQ, values)

    def none_of(self, *values: _Scalar | Iterable[_Scalar]) -> Comparison:
        """Equal to none of the values (`attr!=a,b,c`)."""
        return self._list(Op.NE, values)

    def _list(self, op: Op, values: tuple[_Scalar | Iterable[_Scalar], ...]) -> Comparison:
        items: list[_Scalar]
        if len(values) == 1 and isinstance(values[0], list | tuple | set | frozenset):
            items = list(values[0])
        else:
            items = list(values)  # type: ignore[arg-type]
        if not items:
            raise ValueError(f"{op.value} needs at least one value")
        literals = tuple(Literal.of(v) for v in items)
        if len(literals) == 1:
            return self._cmp(op, literals[0])
        return self._cmp(op, ValueList(literals))

    def matches(self, regex: str) -> Comparison:
        """The string value matches the regular expression (`re.search`), `attr~=regex`."""
        return self._cmp(Op.MATCHES, Pattern(regex))

    def not_matches(self, regex: str) -> Comparison:
        """The string value does not match the regular expression, `attr!~=regex`."""
        return self._cmp(Op.NOT_MATCHES, Pattern(regex))

    def exists(self) -> Exists:
        """The entity has this attribute (`q=attr`)."""
        return Exists(self.path)

    def missing(self) -> NotExists:
        """The entity does not have this attribute (`q=!attr`)."""
        return NotExists(self.path)
