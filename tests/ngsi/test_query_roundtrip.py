"""Property tests: every tree prints to text that parses back to the same tree, the printed text
is canonical, and no input makes the parser fail with anything but InvalidRequest."""

from __future__ import annotations

import re
from datetime import UTC, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngsi._errors import InvalidRequest
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
    format_q,
    parse_q,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- names -----------------------------------------------------------------------------------

short_names = st.one_of(
    st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True),
    st.text(st.characters(categories=("Lu", "Ll", "Nd")), min_size=1, max_size=6),
)
compact_names = st.builds(
    lambda prefix, term: f"{prefix}:{term}",
    st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True),
    st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True),
)
full_iris = st.builds(
    lambda scheme, host, segments, last, hash_: (
        f"{scheme}://{host}/" + "".join(s + "/" for s in segments) + ("ns#" if hash_ else "") + last
    ),
    st.sampled_from(["http", "https"]),
    st.sampled_from(["example.org", "uri.etsi.org", "smartdatamodels.org", "localhost:8080"]),
    st.lists(st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,10}[A-Za-z0-9]", fullmatch=True), max_size=3),
    st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,10}", fullmatch=True),
    st.booleans(),
)
names = st.one_of(short_names, short_names, compact_names, full_iris)
keys = st.one_of(
    st.from_regex(r"[A-Za-z0-9_]{1,6}", fullmatch=True),
    st.just("*"),
    st.text(
        st.characters(exclude_characters=".[]", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
        min_size=1,
        max_size=5,
    ),
)
paths = st.builds(
    AttrPath,
    names,
    st.lists(names, max_size=2).map(tuple),
    st.lists(keys, max_size=3).map(tuple),
)

# --- values ----------------------------------------------------------------------------------

zones = st.one_of(
    st.none(),
    st.sampled_from(
        [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
    ),
)
numbers = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)).map(
    lambda v: Literal(v, ValueKind.NUMBER)
)
strings = st.text(max_size=12).map(lambda v: Literal(v, ValueKind.STRING))
booleans = st.booleans().map(lambda v: Literal(v, ValueKind.BOOLEAN))
datetimes = st.datetimes(timezones=zones).map(lambda v: Literal(v, ValueKind.DATETIME))
dates = st.dates().map(lambda v: Literal(v, ValueKind.DATE))
times = st.times(timezones=zones).map(lambda v: Literal(v, ValueKind.TIME))
uris = st.from_regex(r"(urn|https?|mailto):[A-Za-z0-9:/._~?#@!$&'*+=%-]{1,20}", fullmatch=True).map(
    Literal.uri
)
comparable = {
    ValueKind.NUMBER: numbers,
    ValueKind.STRING: strings,
    ValueKind.DATETIME: datetimes,
    ValueKind.DATE: dates,
    ValueKind.TIME: times,
}
comparable_literals = st.one_of(*comparable.values())
any_literals = st.one_of(comparable_literals, booleans, uris)
ranges = st.sampled_from(list(comparable)).flatmap(
    lambda kind: st.builds(Range, comparable[kind], comparable[kind])
)
value_lists = st.lists(any_literals, min_size=2, max_size=4).map(lambda vs: ValueList(tuple(vs)))
regexes = st.one_of(
    st.sampled_from(
        [
            "^Merc",
            "(?i)mercedes",
            "(a|b)c",
            "a|b",
            "x;y",
            "[;|)]",
            "[]]x",
            "a\\)b",
            '"quoted"',
            'in"side',
            "back\\\\slash",
            "\\d+\\.\\d*$",
            " padded ",
        ]
    ),
    st.text(min_size=1, max_size=15).map(re.escape),
).map(Pattern)

comparisons = st.one_of(
    st.builds(Comparison, paths, st.sampled_from([Op.EQ, Op.NE]), any_literals),
    st.builds(Comparison, paths, st.sampled_from([Op.EQ, Op.NE]), ranges),
    st.builds(Comparison, paths, st.sampled_from([Op.EQ, Op.NE]), value_lists),
    st.builds(
        Comparison, paths, st.sampled_from([Op.LT, Op.LE, Op.GT, Op.GE]), comparable_literals
    ),
    st.builds(Comparison, paths, st.sampled_from([Op.MATCHES, Op.NOT_MATCHES]), regexes),
)
leaves = st.one_of(comparisons, comparisons, st.builds(Exists, paths), st.builds(NotExists, paths))
trees: st.SearchStrategy[QExpr] = st.recursive(
    leaves,
    lambda children: st.lists(children, min_size=2, max_size=3).flatmap(
        lambda terms: st.sampled_from([And(tuple(terms)), Or(tuple(terms))])
    ),
    max_leaves=10,
)


@SETTINGS
@given(trees)
def test_every_tree_prints_to_text_that_parses_back_to_it(tree: QExpr) -> None:
    text = format_q(tree)
    again = parse_q(text, max_length=100_000)
    assert again == tree, text
    assert format_q(again) == text
    assert str(tree) == text


@SETTINGS
@given(paths)
def test_every_path_round_trips(path: AttrPath) -> None:
    assert AttrPath.parse(str(path)) == path


CORPUS = [
    "temperature",
    "!temperature",
    "temperature==20",
    "temperature!=20",
    "temperature>20.5",
    "temperature>=-3",
    "temperature<1e3",
    "temperature<=0.001",
    'brandName!="Mercedes"',
    'name=="with \\"quotes\\" and \\\\ backslash"',
    'name=="unicode é ü 中文 \\u00e9"',
    "isParked==urn:ngsi-ld:OffStreetParking:Downtown1",
    'isParked=="urn:ngsi-ld:OffStreetParking:Downtown1"',
    "refDevice==urn:ngsi-ld:Device:a,urn:ngsi-ld:Device:b",
    'speed>50;brandName!="Mercedes"',
    '((speed>50|rpm>3000);brandName=="Mercedes")',
    "(temperature>=20;temperature<=25)|capacity<=10",
    "temperature.observedAt>=2017-12-24T12:00:00Z",
    "temperature.observedAt>=2017-12-24T12:00:00.123+01:00",
    "dateObserved==2024-01-01..2024-12-31",
    "openingTime<08:30:00",
    'address[city]=="Berlin"',
    "sensor.rawdata[airquality.particulate]==40",
    'color=="black","red"',
    'color[en]=="red"',
    'color[*]!="red"',
    "temperature==10..20",
    "temperature!=10..20",
    'category=="a".."m"',
    "isActive==true",
    "isActive!=false",
    "name~=^Merc",
    "name~=(?i)merc(edes|ury)",
    'name~="a|b"',
    'name!~="\\d+"',
    "a;b;c|d;e",
    "a|(b|(c;(d|e)))",
    " a > 1 ; ( b == 2 | c ) ",
    "https://smartdatamodels.org/dataModel.Environment/temperature>20",
    "https://smartdatamodels.org/dataModel.Environment/temperature.observedAt>2024-01-01T00:00:00Z",
    'schema:name=="x";ngsi-ld:location',
    "items[list.0.id]==7",
]


@pytest.mark.parametrize("text", CORPUS)
def test_corpus_text_tree_text_tree(text: str) -> None:
    tree = parse_q(text)
    printed = format_q(tree)
    assert parse_q(printed) == tree
    assert format_q(parse_q(printed)) == printed


TOKENS = [
    "a",
    "b.c",
    "x[y]",
    "[k.l]",
    "!",
    "(",
    ")",
    ";",
    "|",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "~=",
    "!~=",
    "=",
    "1",
    "-2.5",
    "3e4",
    "..",
    ",",
    '"s"',
    '"',
    "\\",
    "true",
    "false",
    "urn:x:1",
    "https://e.org/p",
    "2024-01-01",
    "T12:00:00Z",
    "12:00",
    " ",
    "{",
    "*",
    "[",
    "]",
    ".",
    "é",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=14).map("".join))
@pytest.mark.filterwarnings("ignore::FutureWarning")  # re warns about some odd sets
def test_any_text_parses_or_raises_invalid_request(text: str) -> None:
    try:
        tree = parse_q(text)
    except InvalidRequest as exc:
        detail = exc.detail or ""
    else:
        assert parse_q(format_q(tree)) == tree
        return
    assert detail.startswith("q: ")
    assert " at position " in detail
