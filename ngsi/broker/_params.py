"""Query parameters of entity requests, parsed and checked, names expanded with the context.

`EntityQueryParams.from_query(params, context, ...)` reads `type`, `id`, `idPattern`, `attrs`,
`q`, the geo-query members, `limit`, `offset`, `count`, `options`/`format`, `pick`, `omit`; it
raises `BadRequestData` (400) naming the parameter for anything malformed. The same parser reads
the body of `POST /entityOperations/query`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ngsi._context import Context
from ngsi._errors import BadRequestData
from ngsi._ids import attribute_name_problem, uri_problem
from ngsi._query import MAX_NESTING
from ngsi.broker._render import EntityFormat

__all__ = [
    "EntityQueryParams",
    "parse_bool",
    "parse_options",
    "parse_type_expression",
    "split_list",
]

_FORMATS: dict[str, EntityFormat] = {
    "keyValues": "keyValues",
    "concise": "concise",
    "normalized": "normalized",
    "simplified": "keyValues",
}
_KNOWN_OPTIONS = frozenset(
    {
        "keyValues",
        "concise",
        "normalized",
        "simplified",
        "sysAttrs",
        "noOverwrite",
        "update",
        "replace",
        "append",
        "temporalValues",
        "aggregatedValues",
        "audit",
        "splitEntities",
    }
)


def split_list(text: str | None) -> list[str]:
    """A comma-separated parameter as a list, blanks dropped."""
    if not text:
        return []
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_bool(value: str | None, *, name: str) -> bool:
    if value is None or value == "":
        return False
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise BadRequestData(f"parameter {name!r} must be true or false, got {value!r}")


def parse_options(params: Mapping[str, str]) -> tuple[EntityFormat, bool, set[str]]:
    """(format, sysAttrs, all options) from `options=` and `format=`."""
    options = set(split_list(params.get("options")))
    unknown = options - _KNOWN_OPTIONS
    if unknown:
        raise BadRequestData(
            f"parameter 'options' has unknown value(s) {', '.join(sorted(unknown))}; expected "
            "keyValues, concise, normalized or sysAttrs"
        )
    formats = {_FORMATS[o] for o in options if o in _FORMATS}
    explicit = params.get("format")
    if explicit is not None:
        if explicit not in _FORMATS:
            raise BadRequestData(
                f"parameter 'format' must be normalized, concise or keyValues, got {explicit!r}"
            )
        formats = {_FORMATS[explicit]}
    if len(formats) > 1:
        raise BadRequestData("parameter 'options' names more than one representation")
    fmt: EntityFormat = formats.pop() if formats else "normalized"
    return fmt, "sysAttrs" in options, options


_TYPE_TOKEN = re.compile(r"\s*([(),;|]|[^(),;|\s]+)")


def parse_type_expression(text: str, expand: Callable[[str], str]) -> list[list[str]]:
    """A type selector as a disjunction of conjunctions of expanded types.

    `A,B` and `A|B` are "A or B", `A;B` is "A and B", parentheses group:
    `(A;B)|C` → `[[A, B], [C]]`.
    """
    tokens = [m.group(1) for m in _TYPE_TOKEN.finditer(text) if m.group(1).strip()]
    position = 0
    depth = 0

    def fail(reason: str) -> BadRequestData:
        return BadRequestData(f"parameter 'type' {text!r}: {reason}")

    def disjunction() -> list[list[str]]:
        nonlocal position
        result = conjunction()
        while position < len(tokens) and tokens[position] in (",", "|"):
            position += 1
            result = result + conjunction()
        return result

    def conjunction() -> list[list[str]]:
        nonlocal position
        result = factor()
        while position < len(tokens) and tokens[position] == ";":
            position += 1
            right = factor()
            result = [a + b for a in result for b in right]
        return result

    def factor() -> list[list[str]]:
        nonlocal position, depth
        if position >= len(tokens):
            raise fail("a type name is missing")
        token = tokens[position]
        position += 1
        if token == "(":
            depth += 1
            if depth > MAX_NESTING:
                raise BadRequestData(
                    f"parameter 'type': parentheses nested deeper than {MAX_NESTING} levels"
                )
            inner = disjunction()
            if position >= len(tokens) or tokens[position] != ")":
                raise fail("a ')' is missing")
            position += 1
            depth -= 1
            return inner
        if token in "),;|":
            raise fail(f"unexpected {token!r}")
        if any(c in token for c in "<>\"'=") or not token:
            raise fail(f"{token!r} is not a valid type name")
        return [[expand(token)]]

    groups = disjunction()
    if position != len(tokens):
        raise fail(f"unexpected {tokens[position]!r}")
    unique: list[list[str]] = []
    for group in groups:
        deduped = list(dict.fromkeys(group))
        if deduped not in unique:
            unique.append(deduped)
    return unique


def _int(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestData(f"parameter {name!r} must be an integer, got {raw!r}") from None
    if value < 0:
        raise BadRequestData(f"parameter {name!r} must not be negative, got {value}")
    return value


@dataclass(kw_only=True)
class EntityQueryParams:
    """A parsed entity query (GET /entities or POST /entityOperations/query)."""

    types: list[list[str]] | None
    ids: list[str] | None
    id_pattern: str | None
    attrs: list[str] | None
    q: str | None
    geo: dict[str, Any] | None
    limit: int
    offset: int
    count: bool
    format: EntityFormat
    sys_attrs: bool
    pick: list[str] | None
    omit: list[str] | None
    scope_q: str | None = None
    lang: str | None = None

    @classmethod
    def from_query(
        cls,
        params: Mapping[str, str],
        context: Context,
        *,
        default_limit: int,
        max_limit: int,
        require_filter: bool = True,
    ) -> EntityQueryParams:
        expand = context.expand_term
        type_text = params.get("type")
        types = parse_type_expression(type_text, expand) if type_text else None
        ids = split_list(params.get("id")) or None
        for entity_id in ids or ():
            problem = uri_problem(entity_id)
            if problem:
                raise BadRequestData(f"parameter 'id': {problem}")
        id_pattern = params.get("idPattern") or None
        if id_pattern is not None:
            try:
                re.compile(id_pattern)
            except re.error as exc:
                raise BadRequestData(
                    f"parameter 'idPattern' {id_pattern!r} is not a regular expression: {exc}"
                ) from None
            except RecursionError:
                raise BadRequestData("parameter 'idPattern': nested too deeply") from None
        attr_names = split_list(params.get("attrs"))
        for name in attr_names:
            problem = attribute_name_problem(name)
            if problem:
                raise BadRequestData(f"parameter 'attrs': {problem}")
        attrs = [expand(a) for a in attr_names] or None
        q = params.get("q") or None
        geo: dict[str, Any] | None = None
        if any(params.get(k) for k in ("georel", "geometry", "coordinates")):
            geo = {
                "georel": params.get("georel"),
                "geometry": params.get("geometry"),
                "coordinates": params.get("coordinates"),
                "geoproperty": params.get("geoproperty") or "location",
            }
        scope_q = params.get("scopeQ") or None
        local = parse_bool(params.get("local"), name="local")
        if require_filter and not (types or attrs or q or geo or scope_q or local):
            raise BadRequestData(
                "a query needs at least one of type, attrs, q, a geo-query (georel, geometry, "
                "coordinates), scopeQ or local=true; id and idPattern only narrow those"
            )
        limit = _int(params, "limit", default_limit)
        offset = _int(params, "offset", 0)
        count = parse_bool(params.get("count"), name="count")
        if limit > max_limit:
            raise BadRequestData(
                f"parameter 'limit' is {limit}; the largest page is {max_limit} entities"
            )
        if limit == 0 and not count:
            raise BadRequestData("parameter 'limit' can be 0 only together with count=true")
        fmt, sys_attrs, _ = parse_options(params)
        pick = split_list(params.get("pick")) or None
        omit = split_list(params.get("omit")) or None
        return cls(
            types=types,
            ids=ids,
            id_pattern=id_pattern,
            attrs=attrs,
            q=q,
            geo=geo,
            limit=limit,
            offset=offset,
            count=count,
            format=fmt,
            sys_attrs=sys_attrs,
            pick=pick,
            omit=omit,
            scope_q=scope_q,
            lang=params.get("lang") or None,
        )

    @classmethod
    def from_body(
        cls,
        body: Mapping[str, Any],
        params: Mapping[str, str],
        context: Context,
        *,
        default_limit: int,
        max_limit: int,
    ) -> EntityQueryParams:
        """POST /entityOperations/query: a Query body plus limit/offset/count/options."""
        if body.get("type") != "Query":
            raise BadRequestData('the query body needs "type": "Query"')
        merged: dict[str, str] = dict(params)
        selectors = body.get("entities")
        types: list[list[str]] | None = None
        ids: list[str] = []
        patterns: list[str] = []
        if selectors is not None:
            if not isinstance(selectors, list):
                raise BadRequestData("'entities' must be a list of entity selectors")
            types = []
            for selector in selectors:
                if not isinstance(selector, Mapping):
                    raise BadRequestData("each entity selector must be a JSON object")
                if isinstance(selector.get("type"), str):
                    types.extend(parse_type_expression(selector["type"], context.expand_term))
                if isinstance(selector.get("id"), str):
                    ids.append(selector["id"])
                if isinstance(selector.get("idPattern"), str):
                    patterns.append(selector["idPattern"])
        attrs = body.get("attrs")
        if isinstance(attrs, list):
            merged["attrs"] = ",".join(str(a) for a in attrs)
        if isinstance(body.get("q"), str):
            merged["q"] = body["q"]
        if isinstance(body.get("scopeQ"), str):
            merged["scopeQ"] = body["scopeQ"]
        if isinstance(body.get("lang"), str):
            merged["lang"] = body["lang"]
        geo = body.get("geoQ")
        if isinstance(geo, Mapping):
            merged["georel"] = str(geo.get("georel", ""))
            merged["geometry"] = str(geo.get("geometry", ""))
            coordinates = geo.get("coordinates")
            merged["coordinates"] = (
                coordinates if isinstance(coordinates, str) else _json_text(coordinates)
            )
            if geo.get("geoproperty"):
                merged["geoproperty"] = str(geo["geoproperty"])
        if ids:
            merged["id"] = ",".join(ids)
        if patterns:
            merged["idPattern"] = "|".join(f"(?:{p})" for p in patterns)
        parsed = cls.from_query(
            merged,
            context,
            default_limit=default_limit,
            max_limit=max_limit,
            require_filter=False,
        )
        if types:
            parsed.types = types
        if not (parsed.types or parsed.attrs or parsed.q or parsed.geo or parsed.scope_q):
            raise BadRequestData("a query needs at least one of entities, attrs, q, geoQ or scopeQ")
        return parsed


def _json_text(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


def expand_all(names: Sequence[str], context: Context) -> list[str]:
    return [context.expand_term(n) for n in names]
