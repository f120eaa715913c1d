"""Evaluating `q` trees against one NGSI-LD entity (normalized representation).

`compile_q(expr)` turns a tree into a plain function `entity -> bool` built from closures, with
literals normalised and regular expressions compiled once; it is cached per tree, so calling
`compile_q` again for an equal tree is cheap. `matches_q(expr, entity)` is the one-shot form.
Attribute names are looked up exactly as they are in the tree: expand them first
(`expr.map_attributes(...)`) when the entity is stored with expanded names.

Semantics (ETSI GS CIM 009, clause 4.9), for a term on `attr.sub1.sub2[key1.key2]`:

- The target element is the attribute `attr` of the entity, then each named sub-attribute in
  turn. Several instances (a list, with `datasetId`) are all targets: the term holds when it
  holds for any of them. The last name may also be a plain member of the attribute
  (`observedAt`, `unitCode`, `datasetId`, `createdAt`, `modifiedAt`, ...); the core members
  are found under their short name or their expanded IRI either way.
- The target value is the Property's `value` (`{"@type": ..., "@value": v}` counts as `v`), the
  Relationship's `object`, the values of a LanguageProperty's `languageMap` (or the one language
  named by the first key: `name[en]`), a ListProperty's `valueList`, a JsonProperty's `json`, a
  VocabProperty's `vocab`, a ListRelationship's objects. Keys then walk into JSON objects
  (`*` is any member, a number indexes an array). Nothing there: the element does not exist.
- A target value that is an array stands for its elements.
- A missing target matches nothing, not even `!=` or `!~=`; only `!attr` holds.
- Values compare only with values of the same type: numbers with numbers, strings (and URIs)
  with strings (by code point, no collation), booleans with booleans. A dateTime literal
  compares with strings that are ISO 8601 date-times, as instants (a value without an offset
  counts as UTC); dates and times likewise. A target of another type never equals the
  literal, so `!=` holds for it.
- `==` holds when any element equals the literal, is one of the list values, or lies in the range
  (bounds included); `!=` holds when none does, across all instances.
- `<`, `<=`, `>`, `>=` hold when any element of the same type compares so. They and the
  pattern operators never match a Relationship.
- `~=` holds when any string element matches the expression (`re.search`); `!~=` when the target
  has elements, all strings, and none matches.

Geometry (`geoQ`) is evaluated by the broker with the parsed `GeoQuery`.

Regular expressions run on Python's `re`, which has no time limit; `Pattern` caps their length
(MAX_REGEX_LENGTH), but an expression such as `(a+)+$` can still be slow on long strings.

The matchers run per entity per subscription per change: they use plain loops rather than
`any()` over generators, which costs a frame per call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import Any, Final, TypeAlias

from ngsi._query import (
    And,
    AttrPath,
    Comparison,
    Exists,
    Literal,
    NotExists,
    Op,
    Or,
    Pattern,
    QExpr,
    Range,
    ValueKind,
    ValueList,
)

__all__ = ["Matcher", "compile_q", "matches_q"]

Matcher: TypeAlias = Callable[[Mapping[str, Any]], bool]
"""A compiled `q`: takes a normalized entity, says whether it matches."""

_Candidates: TypeAlias = list[Any] | None
_Resolver: TypeAlias = Callable[[Mapping[str, Any]], _Candidates]


class _Absent:
    __slots__ = ()


_ABSENT: Final = _Absent()
_NO: Final = _Absent()

_CORE = "https://uri.etsi.org/ngsi-ld/"
_CORE_MEMBERS = (
    "observedAt",
    "createdAt",
    "modifiedAt",
    "deletedAt",
    "unitCode",
    "datasetId",
    "instanceId",
    "lang",
)
_ALIASES: Final[dict[str, str]] = {
    **{name: _CORE + name for name in _CORE_MEMBERS},
    **{_CORE + name: name for name in _CORE_MEMBERS},
}

_PROPERTY, _RELATIONSHIP, _LANGUAGE = 0, 1, 2
_ATTRIBUTE_MEMBERS: Final[dict[str, int]] = {
    "value": _PROPERTY,
    "object": _RELATIONSHIP,
    "languageMap": _LANGUAGE,
    "valueList": _PROPERTY,
    "json": _PROPERTY,
    "vocab": _PROPERTY,
    "objectList": _RELATIONSHIP,
}
_MEMBER_BY_TYPE: Final[dict[str, str]] = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "ListProperty": "valueList",
    "JsonProperty": "json",
    "VocabProperty": "vocab",
    "ListRelationship": "objectList",
}
_MEMBER_BY_TYPE.update({_CORE + t: m for t, m in list(_MEMBER_BY_TYPE.items())})


# --------------------------------------------------------------------------------------------
# finding the target values


def _member(node: Mapping[str, Any], name: str) -> Any:
    value = node.get(name, _ABSENT)
    if value is _ABSENT:
        alias = _ALIASES.get(name)
        if alias is not None:
            value = node.get(alias, _ABSENT)
    return value


def _is_attribute(node: Any) -> bool:
    if not isinstance(node, Mapping):
        return False
    kind = node.get("type")
    if isinstance(kind, str) and kind in _MEMBER_BY_TYPE:
        return True
    return any(member in node for member in _ATTRIBUTE_MEMBERS)


def _instances(node: Any) -> list[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        return [node] if _is_attribute(node) else []
    if isinstance(node, list):
        return [i for i in node if _is_attribute(i)]
    return []


def _target(instance: Mapping[str, Any]) -> tuple[Any, int]:
    """The seed target value of one attribute instance and what kind of attribute holds it."""
    kind = instance.get("type")
    member = _MEMBER_BY_TYPE.get(kind) if isinstance(kind, str) else None
    if member is None or member not in instance:
        for name in _ATTRIBUTE_MEMBERS:
            if name in instance:
                member = name
                break
        else:
            return _ABSENT, _PROPERTY
    value = instance[member]
    if member == "objectList" and isinstance(value, list):
        value = [o.get("object") if isinstance(o, Mapping) else o for o in value]
    return value, _ATTRIBUTE_MEMBERS[member]


def _walk(nodes: list[Any], keys: tuple[str, ...]) -> list[Any]:
    for key in keys:
        following: list[Any] = []
        for node in nodes:
            if isinstance(node, Mapping):
                if key == "*":
                    following.extend(node.values())
                elif key in node:
                    following.append(node[key])
            elif isinstance(node, list):
                if key == "*":
                    following.extend(node)
                elif key.isascii() and key.isdigit():
                    index = int(key) if len(key) < 10 else len(node)
                    if index < len(node):
                        following.append(node[index])
                else:
                    following.extend(i[key] for i in node if isinstance(i, Mapping) and key in i)
        nodes = following
        if not nodes:
            break
    return nodes


def _add_flat(out: list[Any], value: Any) -> None:
    if isinstance(value, list):
        for item in value:
            out.append(_unwrap(item))
    else:
        out.append(_unwrap(value))


def _unwrap(value: Any) -> Any:
    if isinstance(value, Mapping) and "@value" in value:
        return value["@value"]
    return value


def _resolver(path: AttrPath, *, relationships: bool) -> _Resolver:
    """A function entity -> candidate values, or None when the target element does not exist.

    With `relationships=False` the targets held by Relationships are left out (for operators
    that never match them)."""
    attr, sub, keys = path.attr, path.sub, path.keys

    if not sub and not keys:

        def simple(entity: Mapping[str, Any]) -> _Candidates:
            node = entity.get(attr)
            if node is None:
                return None
            instances = [node] if type(node) is dict else _instances(node)
            out: list[Any] = []
            found = False
            for instance in instances:
                value, kind = _target(instance)
                if value is _ABSENT or (kind == _RELATIONSHIP and not relationships):
                    continue
                found = True
                if kind == _LANGUAGE and isinstance(value, Mapping):
                    for text in value.values():
                        _add_flat(out, text)
                else:
                    _add_flat(out, value)
            return out if found else None

        return simple

    def general(entity: Mapping[str, Any]) -> _Candidates:
        node = entity.get(attr)
        if node is None:
            return None
        instances = _instances(node)
        raws: list[Any] = []
        last = len(sub) - 1
        for step, name in enumerate(sub):
            following: list[Mapping[str, Any]] = []
            for instance in instances:
                member = _member(instance, name)
                if member is _ABSENT:
                    continue
                found_instances = _instances(member)
                if found_instances:
                    following.extend(found_instances)
                elif step == last:
                    raws.append(member)
            instances = following
        out: list[Any] = []
        found = False
        for instance in instances:
            value, kind = _target(instance)
            if value is _ABSENT or (kind == _RELATIONSHIP and not relationships):
                continue
            if kind == _LANGUAGE and isinstance(value, Mapping) and not keys:
                nodes = list(value.values())
            else:
                nodes = _walk([value], keys) if keys else [value]
            if nodes:
                found = True
                for item in nodes:
                    _add_flat(out, item)
        if raws:
            nodes = _walk(raws, keys) if keys else raws
            if nodes:
                found = True
                for item in nodes:
                    _add_flat(out, item)
        return out if found else None

    return general


# --------------------------------------------------------------------------------------------
# coercing target values to the literal's type

_Coerce: TypeAlias = Callable[[Any], Any]

_MAX_TEMPORAL_TEXT = 40  # longer strings are no ISO 8601 date-time; never parsed nor cached
_DATETIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T")
_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_TEXT = re.compile(r"\d{2}:\d{2}")


def _instant(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _time_of_day(value: time) -> int:
    """Microseconds since midnight UTC (a time without an offset counts as UTC)."""
    micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
    offset = value.utcoffset()
    if offset is not None:
        micros -= (offset.days * 86_400 + offset.seconds) * 1_000_000 + offset.microseconds
    return micros % 86_400_000_000


@lru_cache(maxsize=8192)
def _parse_instant(text: str) -> Any:
    if _DATETIME_TEXT.match(text) is None:
        return _NO
    try:
        return _instant(datetime.fromisoformat(text))
    except ValueError:
        return _NO


@lru_cache(maxsize=4096)
def _parse_date(text: str) -> Any:
    if _DATE_TEXT.fullmatch(text) is None:
        return _NO
    try:
        return date.fromisoformat(text)
    except ValueError:
        return _NO


@lru_cache(maxsize=4096)
def _parse_time(text: str) -> Any:
    if _TIME_TEXT.match(text) is None:
        return _NO
    try:
        return _time_of_day(time.fromisoformat(text))
    except ValueError:
        return _NO


def _as_number(value: Any) -> Any:
    kind = type(value)
    return value if kind is int or kind is float else _NO


def _as_string(value: Any) -> Any:
    return value if isinstance(value, str) else _NO


def _as_boolean(value: Any) -> Any:
    return value if type(value) is bool else _NO


def _as_instant(value: Any) -> Any:
    if isinstance(value, str):
        return _parse_instant(value) if len(value) <= _MAX_TEMPORAL_TEXT else _NO
    if isinstance(value, datetime):
        return _instant(value)
    return _NO


def _as_date(value: Any) -> Any:
    if isinstance(value, str):
        return _parse_date(value) if len(value) == 10 else _NO
    if type(value) is date:
        return value
    return _NO


def _as_time(value: Any) -> Any:
    if isinstance(value, str):
        return _parse_time(value) if len(value) <= _MAX_TEMPORAL_TEXT else _NO
    if isinstance(value, time):
        return _time_of_day(value)
    return _NO


_COERCE: Final[dict[ValueKind, _Coerce]] = {
    ValueKind.NUMBER: _as_number,
    ValueKind.STRING: _as_string,
    ValueKind.URI: _as_string,
    ValueKind.BOOLEAN: _as_boolean,
    ValueKind.DATETIME: _as_instant,
    ValueKind.DATE: _as_date,
    ValueKind.TIME: _as_time,
}


def _normalised(lit: Literal) -> Any:
    """The literal's value in the form its coercer produces for targets."""
    value = lit.value
    if lit.kind is ValueKind.DATETIME:
        assert isinstance(value, datetime)
        return _instant(value)
    if lit.kind is ValueKind.TIME:
        assert isinstance(value, time)
        return _time_of_day(value)
    return value


_Test: TypeAlias = Callable[[Any], bool]


def _equality_test(value: Literal | Range | ValueList) -> _Test:
    if isinstance(value, Literal):
        coerce = _COERCE[value.kind]
        expected = _normalised(value)

        def equals(candidate: Any) -> bool:
            return bool(coerce(candidate) == expected)

        if value.kind is ValueKind.STRING or value.kind is ValueKind.URI:
            text = expected

            def equals_text(candidate: Any) -> bool:
                return candidate == text and isinstance(candidate, str)

            return equals_text
        return equals
    if isinstance(value, Range):
        coerce = _COERCE[value.lo.kind]
        lo, hi = _normalised(value.lo), _normalised(value.hi)

        def within(candidate: Any) -> bool:
            key = coerce(candidate)
            if key is _NO:
                return False
            try:
                return bool(lo <= key <= hi)
            except TypeError:
                return False

        return within
    groups: dict[ValueKind, set[Any]] = {}
    for lit in value.values:
        groups.setdefault(_coerce_group(lit.kind), set()).add(_normalised(lit))
    checks = tuple((_COERCE[kind], frozenset(values)) for kind, values in groups.items())

    def one_of(candidate: Any) -> bool:
        for coerce, allowed in checks:
            key = coerce(candidate)
            if key is not _NO and key in allowed:
                return True
        return False

    return one_of


def _coerce_group(kind: ValueKind) -> ValueKind:
    return ValueKind.STRING if kind is ValueKind.URI else kind


def _ordering_test(op: Op, lit: Literal) -> _Test:
    coerce = _COERCE[lit.kind]
    bound = _normalised(lit)

    def gt(c: Any) -> bool:
        return bool(c > bound)

    def ge(c: Any) -> bool:
        return bool(c >= bound)

    def lt(c: Any) -> bool:
        return bool(c < bound)

    def le(c: Any) -> bool:
        return bool(c <= bound)

    relation = {Op.GT: gt, Op.GE: ge, Op.LT: lt, Op.LE: le}[op]

    def ordered(candidate: Any) -> bool:
        key = coerce(candidate)
        if key is _NO:
            return False
        try:
            return relation(key)
        except TypeError:
            return False

    return ordered


# --------------------------------------------------------------------------------------------
# compiling the tree


def _compile_comparison(expr: Comparison) -> Matcher:
    op = expr.op
    value = expr.value
    if isinstance(value, Pattern):
        resolve = _resolver(expr.path, relationships=False)
        search = value.compiled.search
        if op is Op.MATCHES:

            def matches(entity: Mapping[str, Any]) -> bool:
                candidates = resolve(entity)
                if not candidates:
                    return False
                for c in candidates:  # noqa: SIM110
                    if isinstance(c, str) and search(c) is not None:
                        return True
                return False

            return matches

        def does_not_match(entity: Mapping[str, Any]) -> bool:
            candidates = resolve(entity)
            if not candidates:
                return False
            for c in candidates:  # noqa: SIM110
                if not isinstance(c, str) or search(c) is not None:
                    return False
            return True

        return does_not_match

    if op is Op.EQ or op is Op.NE:
        resolve = _resolver(expr.path, relationships=True)
        test = _equality_test(value)
        if op is Op.EQ:

            def equal(entity: Mapping[str, Any]) -> bool:
                candidates = resolve(entity)
                if not candidates:
                    return False
                for c in candidates:  # noqa: SIM110
                    if test(c):
                        return True
                return False

            return equal

        def unequal(entity: Mapping[str, Any]) -> bool:
            candidates = resolve(entity)
            if candidates is None:
                return False
            for c in candidates:  # noqa: SIM110
                if test(c):
                    return False
            return True

        return unequal

    assert isinstance(value, Literal)
    resolve = _resolver(expr.path, relationships=False)
    ordered = _ordering_test(op, value)

    def compare(entity: Mapping[str, Any]) -> bool:
        candidates = resolve(entity)
        if not candidates:
            return False
        for c in candidates:  # noqa: SIM110
            if ordered(c):
                return True
        return False

    return compare


def _compile(expr: QExpr) -> Matcher:
    if isinstance(expr, Comparison):
        return _compile_comparison(expr)
    if isinstance(expr, Exists):
        exists_resolve = _resolver(expr.path, relationships=True)

        def exists(entity: Mapping[str, Any]) -> bool:
            return exists_resolve(entity) is not None

        return exists
    if isinstance(expr, NotExists):
        missing_resolve = _resolver(expr.path, relationships=True)

        def missing(entity: Mapping[str, Any]) -> bool:
            return missing_resolve(entity) is None

        return missing
    if isinstance(expr, And):
        parts = tuple(_compile(t) for t in expr.terms)
        if len(parts) == 2:
            first, second = parts

            def both(entity: Mapping[str, Any]) -> bool:
                return first(entity) and second(entity)

            return both

        def all_of(entity: Mapping[str, Any]) -> bool:
            for part in parts:  # noqa: SIM110
                if not part(entity):
                    return False
            return True

        return all_of
    if isinstance(expr, Or):
        alternatives = tuple(_compile(t) for t in expr.terms)

        def any_of(entity: Mapping[str, Any]) -> bool:
            for alternative in alternatives:  # noqa: SIM110
                if alternative(entity):
                    return True
            return False

        return any_of
    raise TypeError(f"not a q expression: {expr!r}")


_compile_cached = lru_cache(maxsize=1024)(_compile)


def compile_q(expr: QExpr) -> Matcher:
    """A function that tells whether a normalized entity matches `expr`.

    The function is pure and thread-safe; it never raises for odd entity content (a value of an
    unexpected type simply does not match). Compiled functions are cached per (equal) tree.
    """
    if not isinstance(expr, QExpr):
        raise TypeError(f"compile_q takes a q expression (parse_q / Q), got {expr!r}")
    return _compile_cached(expr)


def matches_q(expr: QExpr, entity: Mapping[str, Any]) -> bool:
    """Whether the normalized `entity` matches `expr` (see the module docstring)."""
    return compile_q(expr)(entity)
