"""Fuzz: the broker's query parsers (`q`, `scopeQ`, the type expression, `geoQ` and the whole
query-parameter set of `GET /entities`) and what they compile to take mutated and random text
without crashing: they build a filter or raise an NGSI-LD error (`NgsiApiError`: BadRequestData,
InvalidQuery...), which the broker answers as a 4xx; anything else would be a 500."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ngsi import Context, NgsiApiError, compile_q, format_q, parse_geoquery, parse_q
from ngsi.broker._endpoints import _selection
from ngsi.broker._geo import geo_filter_from_params
from ngsi.broker._params import EntityQueryParams, parse_type_expression
from ngsi.broker._scope import compile_scope_q
from tests.fuzz._support import FUZZ, json_values

CORE = Context.core()
Q_SEEDS = [
    "temperature>20",
    'brandName=="Mercedes"',
    "speed==10..20",
    'color=="red","blue"',
    "name~=^Park",
    "name~=(?i)park.*",
    '(a>1|b<2);c!="x"',
    "temperature.observedAt>2024-01-01T00:00:00Z",
    'address[streetAddress]=="Main Street"',
    "address[geo.lat]>=51.2",
    "!refDevice",
    "refDevice",
    'refDevice=="urn:ngsi-ld:Device:70B3D57ED0000001"',
    "dateObserved>=2024-05-01",
    "time<12:00:00Z",
    "a.b.c==true",
    "https://smartdatamodels.org/dataModel.Weather/temperature>5",
    "count==-1.5e3",
    'tags=="a","b";tags!="c"',
]
TYPE_SEEDS = ["A", "A,B", "A|B", "(A;B)|C", "Building;(Parking|Garage)"]
SCOPE_SEEDS = ["/Madrid", "/Madrid/#", "/a/b;/c", "(/a|/b);/c/+", "/#"]
GEO_SEEDS: list[tuple[str, str, str]] = [
    ("near;maxDistance==2000", "Point", "[8.68,50.11]"),
    ("near;minDistance==10;maxDistance==20", "Point", "[8.68, 50.11]"),
    ("within", "Polygon", "[[[0,0],[0,10],[10,10],[10,0],[0,0]]]"),
    ("intersects", "LineString", "[[1,1],[2,2]]"),
    ("contains", "MultiPoint", "[[1,1],[2,2]]"),
    ("disjoint", "MultiPolygon", "[[[[0,0],[0,1],[1,1],[0,0]]]]"),
    ("overlaps", "MultiLineString", "[[[1,1],[2,2]],[[3,3],[4,4]]]"),
    ("equals", "Point", "[-180,90]"),
]
CHARACTERS = list("()[]{};|,!=<>~.\"'\\%:/#+ a1Zé-Te")
SPECIAL = [*CHARACTERS, "..", "==", "!=", ">=", "<=", "~=", "!~="]
TEXT = st.text(alphabet=st.sampled_from(CHARACTERS), max_size=30)


@st.composite
def mutated_text(draw: st.DrawFn, seeds: list[str]) -> str:
    """A seed with random edits: inserts (of special characters and tokens), deletions, slices
    repeated, or wrapped in deep parentheses."""
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["insert", "delete", "repeat", "join", "wrap"]))
        at = draw(st.integers(0, len(text)))
        if action == "insert":
            text = text[:at] + draw(st.sampled_from(SPECIAL) | TEXT) + text[at:]
        elif action == "delete":
            end = draw(st.integers(at, min(len(text), at + 5)))
            text = text[:at] + text[end:]
        elif action == "repeat":
            text = text[:at] * draw(st.integers(1, 3)) + text[at:]
        elif action == "join":
            text = text + draw(st.sampled_from([";", "|", ","])) + draw(st.sampled_from(seeds))
        else:
            depth = draw(st.sampled_from([1, 2, 30, 200, 2000]))
            text = "(" * depth + text + ")" * draw(st.sampled_from([0, depth]))
    return text


def _docs() -> list[dict[str, Any]]:
    def name(term: str) -> str:
        return CORE.expand_term(term)

    base = {
        "id": "urn:ngsi-ld:Thing:1",
        "type": [name("Thing")],
        "createdAt": "2024-05-01T12:00:00.000Z",
        "modifiedAt": "2024-05-01T12:00:00.000Z",
    }
    values: list[Any] = [
        21.5,
        -3,
        "Park Garage",
        True,
        None,
        "2024-05-01T12:00:00Z",
        "12:00:00Z",
        "urn:ngsi-ld:null",
        {"streetAddress": "Main Street", "geo": {"lat": 51.2}},
        ["a", "b", 3],
        [],
        {},
    ]
    docs = []
    for number, value in enumerate(values):
        doc: dict[str, Any] = {**base, "id": f"urn:ngsi-ld:Thing:{number}"}
        for term in ("temperature", "brandName", "speed", "name", "a", "address", "tags"):
            doc[name(term)] = {
                "type": "Property",
                "value": value,
                "observedAt": "2024-05-01T12:00:00Z",
            }
        doc[name("refDevice")] = {
            "type": "Relationship",
            "object": "urn:ngsi-ld:Device:70B3D57ED0000001",
        }
        doc[name("location")] = {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [8.68, 50.11 + number]},
        }
        doc["scope"] = ["/Madrid/Centro", "/a/b"][number % 2]
        docs.append(doc)
    return docs


DOCS = _docs()


def evaluate(build: Callable[[], Callable[[Mapping[str, Any]], bool] | None]) -> None:
    """Build a predicate and run it over the sample documents: a 4xx-error is fine. Python's
    `re` warns (FutureWarning) about patterns such as `[[a-`, which a later Python may read
    differently; a warning is not a crash (the suite turns warnings into errors)."""
    with contextlib.suppress(NgsiApiError), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        predicate = build()
        if predicate is not None:
            for doc in DOCS:
                predicate(doc)


def _q_predicate(text: str) -> Callable[[Mapping[str, Any]], bool]:
    tree = parse_q(text).map_attributes(CORE.expand_term)
    # a tree that parses prints as text that parses to the same tree
    assert parse_q(format_q(parse_q(text))) == parse_q(text)
    return compile_q(tree)


@FUZZ
@given(text=mutated_text(Q_SEEDS))
def test_q_mutations(text: str) -> None:
    evaluate(lambda: _q_predicate(text))


@FUZZ
@given(text=st.text(max_size=60))
def test_q_random_text(text: str) -> None:
    evaluate(lambda: _q_predicate(text))


@FUZZ
@given(types=mutated_text(TYPE_SEEDS), scope=mutated_text(SCOPE_SEEDS))
def test_type_and_scope_expressions(types: str, scope: str) -> None:
    with contextlib.suppress(NgsiApiError):
        parse_type_expression(types, CORE.expand_term)
    evaluate(lambda: compile_scope_q(scope))


def _geo_parts(draw: Callable[..., Any]) -> tuple[Any, Any, Any]:
    georel, geometry, seed = draw(st.sampled_from(GEO_SEEDS))
    coordinates: Any = seed
    if draw(st.booleans()):
        georel = draw(mutated_text([georel]))
    if draw(st.booleans()):
        geometry = draw(st.sampled_from(["Point", "Polygon", "LineString", "Box", "", "point"]))
    choice = draw(st.integers(0, 3))
    if choice == 1:
        coordinates = draw(mutated_text([seed]))
    elif choice == 2:
        coordinates = draw(json_values)
    elif choice == 3:
        coordinates = draw(
            st.recursive(
                st.floats(allow_nan=True, allow_infinity=True) | st.integers(-1000, 1000),
                lambda inner: st.lists(inner, max_size=5),
                max_leaves=20,
            )
        )
    return georel, geometry, coordinates


@FUZZ
@given(data=st.data())
def test_geo_queries(data: st.DataObject) -> None:
    georel, geometry, coordinates = _geo_parts(data.draw)
    with contextlib.suppress(NgsiApiError):
        parse_geoquery(georel=georel, geometry=geometry, coordinates=coordinates)
    with contextlib.suppress(NgsiApiError):
        parse_geoquery({"georel": georel, "geometry": geometry, "coordinates": coordinates})
    evaluate(
        lambda: geo_filter_from_params(
            georel=georel,
            geometry=geometry,
            coordinates=coordinates,
            geoproperty=CORE.expand_term("location"),
        ).predicate()
    )


PARAMETERS = [
    "type",
    "id",
    "idPattern",
    "attrs",
    "q",
    "georel",
    "geometry",
    "coordinates",
    "geoproperty",
    "scopeQ",
    "limit",
    "offset",
    "count",
    "options",
    "pick",
    "omit",
    "local",
    "lang",
]


def _parameter(draw: Callable[..., Any], name: str) -> str:
    seeds = {
        "type": TYPE_SEEDS,
        "q": Q_SEEDS,
        "scopeQ": SCOPE_SEEDS,
        "georel": [g for g, _, _ in GEO_SEEDS],
        "geometry": [g for _, g, _ in GEO_SEEDS],
        "coordinates": [c for _, _, c in GEO_SEEDS],
        "id": ["urn:ngsi-ld:Thing:1", "urn:ngsi-ld:Thing:1,urn:ngsi-ld:Thing:2", "x"],
        "idPattern": ["urn:ngsi-ld:Thing:.*", "(", "[a-"],
        "limit": ["0", "20", "1001", "-1", "1e3", "x"],
        "offset": ["0", "5", "-3"],
        "count": ["true", "false", "yes"],
        "options": ["keyValues", "sysAttrs,concise", "normalized,keyValues", "bogus"],
        "local": ["true", "1"],
    }.get(name, ["temperature", "a,b", "@id", ""])
    found: str = draw(mutated_text(seeds))
    return found


@FUZZ
@given(data=st.data(), names=st.sets(st.sampled_from(PARAMETERS), max_size=6))
def test_entity_query_parameters(data: st.DataObject, names: set[str]) -> None:
    params = {name: _parameter(data.draw, name) for name in names}

    def build() -> Callable[[Mapping[str, Any]], bool] | None:
        query = EntityQueryParams.from_query(params, CORE, default_limit=20, max_limit=1000)
        return _selection(query, CORE).predicate

    evaluate(build)


def test_the_seeds_are_valid() -> None:
    for text in Q_SEEDS:
        _q_predicate(text)
    for types in TYPE_SEEDS:
        parse_type_expression(types, CORE.expand_term)
    for scope in SCOPE_SEEDS:
        compile_scope_q(scope)
    for georel, geometry, coordinates in GEO_SEEDS:
        parse_geoquery(georel=georel, geometry=geometry, coordinates=coordinates)
