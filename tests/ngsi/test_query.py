"""The `q` parser, printer and builder: trees for the spec's examples, canonical text, errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest

from ngsi._errors import BadRequestData, InvalidRequest
from ngsi._query import (
    MAX_NESTING,
    And,
    AttrPath,
    Comparison,
    Exists,
    InvalidQuery,
    Literal,
    NotExists,
    Op,
    Or,
    Pattern,
    Q,
    Range,
    ValueKind,
    ValueList,
    format_q,
    parse_q,
)


def p(text: str) -> AttrPath:
    return AttrPath.parse(text)


def num(value: float) -> Literal:
    return Literal(value, ValueKind.NUMBER)


def text(value: str) -> Literal:
    return Literal(value, ValueKind.STRING)


# --- the examples of ETSI GS CIM 009 clause 4.9 ----------------------------------------------


@pytest.mark.parametrize(
    ("q", "tree"),
    [
        ("temperature", Exists(AttrPath("temperature"))),
        ("temperature==20", Comparison(AttrPath("temperature"), Op.EQ, num(20))),
        ('brandName!="Mercedes"', Comparison(AttrPath("brandName"), Op.NE, text("Mercedes"))),
        (
            'isParked=="urn:ngsi-ld:OffStreetParking:Downtown1"',
            Comparison(AttrPath("isParked"), Op.EQ, text("urn:ngsi-ld:OffStreetParking:Downtown1")),
        ),
        (
            'speed>50;brandName!="Mercedes"',
            And(
                (
                    Comparison(AttrPath("speed"), Op.GT, num(50)),
                    Comparison(AttrPath("brandName"), Op.NE, text("Mercedes")),
                )
            ),
        ),
        ("isMonitoredBy", Exists(AttrPath("isMonitoredBy"))),
        (
            '((speed>50|rpm>3000);brandName=="Mercedes")',
            And(
                (
                    Or(
                        (
                            Comparison(AttrPath("speed"), Op.GT, num(50)),
                            Comparison(AttrPath("rpm"), Op.GT, num(3000)),
                        )
                    ),
                    Comparison(AttrPath("brandName"), Op.EQ, text("Mercedes")),
                )
            ),
        ),
        (
            "(temperature>=20;temperature<=25)|capacity<=10",
            Or(
                (
                    And(
                        (
                            Comparison(AttrPath("temperature"), Op.GE, num(20)),
                            Comparison(AttrPath("temperature"), Op.LE, num(25)),
                        )
                    ),
                    Comparison(AttrPath("capacity"), Op.LE, num(10)),
                )
            ),
        ),
        (
            "temperature.observedAt>=2017-12-24T12:00:00Z",
            Comparison(
                AttrPath("temperature", ("observedAt",)),
                Op.GE,
                Literal(datetime(2017, 12, 24, 12, tzinfo=UTC), ValueKind.DATETIME),
            ),
        ),
        (
            'address[city]=="Berlin"',
            Comparison(AttrPath("address", (), ("city",)), Op.EQ, text("Berlin")),
        ),
        (
            "sensor.rawdata[airquality.particulate]==40",
            Comparison(
                AttrPath("sensor", ("rawdata",), ("airquality", "particulate")), Op.EQ, num(40)
            ),
        ),
        (
            'color=="black","red"',
            Comparison(AttrPath("color"), Op.EQ, ValueList((text("black"), text("red")))),
        ),
        (
            "temperature==10..20",
            Comparison(AttrPath("temperature"), Op.EQ, Range(num(10), num(20))),
        ),
        ('color[en]=="red"', Comparison(AttrPath("color", (), ("en",)), Op.EQ, text("red"))),
        ('color[*]!="red"', Comparison(AttrPath("color", (), ("*",)), Op.NE, text("red"))),
    ],
)
def test_spec_examples_parse_to_the_expected_tree(q: str, tree: object) -> None:
    assert parse_q(q) == tree
    assert parse_q(format_q(parse_q(q))) == tree


def test_and_binds_tighter_than_or() -> None:
    a, b, c, d = (Exists(AttrPath(n)) for n in "abcd")
    assert parse_q("a;b|c;d") == Or((And((a, b)), And((c, d))))
    assert parse_q("a|b;c") == Or((a, And((b, c))))
    assert parse_q("(a|b);c") == And((Or((a, b)), c))


def test_redundant_parentheses_and_nested_groups_flatten() -> None:
    a, b, c = (Exists(AttrPath(n)) for n in "abc")
    assert parse_q("((a))") == a
    assert parse_q("a;(b;c)") == And((a, b, c))
    assert parse_q("(a|(b|c))") == Or((a, b, c))


def test_not_exists() -> None:
    assert parse_q("!temperature") == NotExists(AttrPath("temperature"))
    assert parse_q("!a.b[c];d") == And((NotExists(AttrPath("a", ("b",), ("c",))), Exists(p("d"))))


@pytest.mark.parametrize(
    ("q", "value"),
    [
        ("a==0", num(0)),
        ("a==-12", num(-12)),
        ("a==3.25", num(3.25)),
        ("a==-1.5e3", num(-1500.0)),
        ("a==2E-2", num(0.02)),
        ("a==true", Literal(True, ValueKind.BOOLEAN)),
        ("a==false", Literal(False, ValueKind.BOOLEAN)),
        ('a==""', text("")),
        ('a=="say \\"hi\\""', text('say "hi"')),
        ('a=="back\\\\slash"', text("back\\slash")),
        ('a=="tab\\tline\\nu\\u00e9\\ud83d\\ude00"', text("tab\tline\nu\u00e9\U0001f600")),
        ('a=="keep \\d as written"', text("keep \\d as written")),
        ('a=="semi;colon|pipe)paren"', text("semi;colon|pipe)paren")),
        ("a==2024-02-29", Literal(date(2024, 2, 29), ValueKind.DATE)),
        ("a==12:30:00Z", Literal(time(12, 30, tzinfo=UTC), ValueKind.TIME)),
        ("a==12:30", Literal(time(12, 30), ValueKind.TIME)),
        (
            "a==2024-01-01T10:00:00.250+02:00",
            Literal(
                datetime(2024, 1, 1, 10, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2))),
                ValueKind.DATETIME,
            ),
        ),
        ("a==2024-01-01T10:00:00", Literal(datetime(2024, 1, 1, 10), ValueKind.DATETIME)),
        ("a==urn:ngsi-ld:Device:1", Literal.uri("urn:ngsi-ld:Device:1")),
        ("a==https://example.org/x?y", Literal.uri("https://example.org/x?y")),
    ],
)
def test_values(q: str, value: Literal) -> None:
    parsed = parse_q(q)
    assert isinstance(parsed, Comparison)
    assert isinstance(parsed.value, Literal)
    assert parsed.value == value
    assert parsed.value.kind is value.kind


def test_value_kinds_are_part_of_equality() -> None:
    assert parse_q("a==1") != parse_q("a==true")
    assert parse_q("a==1") == parse_q("a==1.0")
    assert parse_q('a=="urn:x:1"') != parse_q("a==urn:x:1")


def test_a_comma_always_separates_values() -> None:
    got = parse_q("a==00:00:00,5")
    assert isinstance(got, Comparison)
    assert got.value == ValueList((Literal(time(0), ValueKind.TIME), num(5)))
    got = parse_q("a==2024-01-01T00:00:00,5")
    assert isinstance(got, Comparison)
    assert got.value == ValueList((Literal(datetime(2024, 1, 1), ValueKind.DATETIME), num(5)))


def test_ranges_and_lists_of_every_kind() -> None:
    assert parse_q('a=="a".."m"') == Comparison(p("a"), Op.EQ, Range(text("a"), text("m")))
    assert parse_q("a!=2024-01-01..2024-12-31") == Comparison(
        p("a"),
        Op.NE,
        Range(
            Literal(date(2024, 1, 1), ValueKind.DATE), Literal(date(2024, 12, 31), ValueKind.DATE)
        ),
    )
    got = parse_q('a==1,"x",true,urn:a:b,2024-01-01')
    assert isinstance(got, Comparison)
    assert isinstance(got.value, ValueList)
    assert [v.kind for v in got.value.values] == [
        ValueKind.NUMBER,
        ValueKind.STRING,
        ValueKind.BOOLEAN,
        ValueKind.URI,
        ValueKind.DATE,
    ]


@pytest.mark.parametrize(
    ("q", "regex"),
    [
        ("name~=^Merc", "^Merc"),
        ("name~=(?i)mercedes", "(?i)mercedes"),
        ("name~=(a|b)c", "(a|b)c"),
        ("name~=[;|]x", "[;|]x"),
        ("name~=a\\)b", "a\\)b"),
        ('name~="a|b"', "a|b"),
        ('name~="\\d+\\.\\d"', "\\d+\\.\\d"),
        ('name~="say \\"x\\""', 'say "x"'),
        ('name~="C:\\\\dir"', "C:\\dir"),
    ],
)
def test_regular_expressions(q: str, regex: str) -> None:
    parsed = parse_q(q)
    assert parsed == Comparison(p("name"), Op.MATCHES, Pattern(regex))
    assert parse_q(format_q(parsed)) == parsed


def test_unquoted_regex_ends_at_top_level_operators() -> None:
    assert parse_q("a~=x|b") == Or((Comparison(p("a"), Op.MATCHES, Pattern("x")), Exists(p("b"))))
    assert parse_q("(a!~=x);b") == And(
        (Comparison(p("a"), Op.NOT_MATCHES, Pattern("x")), Exists(p("b")))
    )


@pytest.mark.parametrize(
    ("q", "path"),
    [
        ("temperature", AttrPath("temperature")),
        ("a.b.c", AttrPath("a", ("b", "c"))),
        ("a[b]", AttrPath("a", (), ("b",))),
        ("a[b.c]", AttrPath("a", (), ("b", "c"))),
        ("a[b][c]", AttrPath("a", (), ("b", "c"))),
        ("a.b[c.d]", AttrPath("a", ("b",), ("c", "d"))),
        ("items[list.0.id]", AttrPath("items", (), ("list", "0", "id"))),
        ("température", AttrPath("température")),
        ("schema:name", AttrPath("schema:name")),
        (
            "ngsi-ld:location.ngsi-ld:observedAt",
            AttrPath("ngsi-ld:location", ("ngsi-ld:observedAt",)),
        ),
        (
            "https://smartdatamodels.org/dataModel.Environment/temperature",
            AttrPath("https://smartdatamodels.org/dataModel.Environment/temperature"),
        ),
        (
            "https://smartdatamodels.org/dataModel.Environment/temperature.observedAt",
            AttrPath(
                "https://smartdatamodels.org/dataModel.Environment/temperature", ("observedAt",)
            ),
        ),
        (
            "https://example.org/ns#temp.https://uri.etsi.org/ngsi-ld/observedAt",
            AttrPath("https://example.org/ns#temp", ("https://uri.etsi.org/ngsi-ld/observedAt",)),
        ),
        ("urn:x:attr[k]", AttrPath("urn:x:attr", (), ("k",))),
    ],
)
def test_attribute_paths(q: str, path: AttrPath) -> None:
    assert AttrPath.parse(q) == path
    assert parse_q(q) == Exists(path)
    assert parse_q(q + "==1") == Comparison(path, Op.EQ, num(1))
    assert str(path) == q.replace("][", ".")


def test_whitespace_between_tokens_is_ignored() -> None:
    assert parse_q(' ( a > 1 ; b == "x" ) | c == 1 .. 5 , 7 '.replace(" .. 5 , 7", "..5")) == (
        parse_q('(a>1;b=="x")|c==1..5')
    )
    assert parse_q("a == 1 , 2") == parse_q("a==1,2")


def test_printer_is_canonical() -> None:
    assert format_q(parse_q(" a == 1.50 ")) == "a==1.5"
    assert format_q(parse_q("a==2024-01-01T00:00:00.000Z")) == "a==2024-01-01T00:00:00Z"
    assert format_q(parse_q("a==2024-01-01T02:00:00+02:00")) == "a==2024-01-01T02:00:00+02:00"
    assert format_q(parse_q("a[b][c]")) == "a[b.c]"
    assert format_q(parse_q("a;b|c")) == "(a;b)|c"
    assert format_q(parse_q("a|(b|c);d")) == "a|(b|c);d".replace("(b|c);d", "((b|c);d)")
    assert format_q(parse_q('a~="x"')) == "a~=x"
    assert format_q(parse_q('a~="x|y"')) == 'a~="x|y"'
    assert format_q(parse_q('a~=" x"')) == 'a~=" x"'
    assert format_q(parse_q('a=="\\u0001"')) == 'a=="\\u0001"'
    assert str(parse_q("a>1;!b")) == "a>1;!b"


def test_printer_refuses_names_the_grammar_cannot_spell() -> None:
    odd = Exists(AttrPath("http://example.org/file.json"))
    with pytest.raises(ValueError, match="cannot be written"):
        format_q(odd)
    assert "example.org/file.json" in str(odd)  # str() falls back to repr
    with pytest.raises(ValueError, match="key"):
        format_q(Exists(AttrPath("a", (), ("x.y",))))


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "message"),
    [
        ("temperature>=", "q: expected a value after '>=' at position 14"),
        ("", "q: empty query: expected an attribute path or '(' at position 1"),
        ("a;", "q: expected an attribute path or '(' after ';' at position 3"),
        ("a|", "q: expected an attribute path or '(' after '|' at position 3"),
        ("a==", "q: expected a value after '==' at position 4"),
        ("a==1,", "q: expected a value after ',' at position 6"),
        ("a==1..", "q: expected a value after '..' at position 7"),
        ("a=1", "q: '=' is not an operator: use '==' at position 2"),
        ("(a", "q: expected ')' at position 3: the '(' at position 1 is not closed"),
        ("a)", "q: unexpected ')' that closes no '(' at position 2"),
        ("a;b)", "q: unexpected ')' that closes no '(' at position 4"),
        ("a==Mercedes", 'strings are written in double quotes ("Mercedes")'),
        ('a=="open', "q: unterminated string: expected a closing '\"' at position 4"),
        ("a>true", "q: '>' compares numbers, strings, dateTimes, dates or times at position 3"),
        ("a<urn:x:y", "got uri urn:x:y"),
        ("a>1..5", "q: a range (..) is only allowed with '==' or '!=' at position 4"),
        ("a<=1,2", "q: a value list (,) is only allowed with '==' or '!=' at position 5"),
        ("a==1..true", "a range takes numbers, strings, dateTimes, dates or times"),
        ('a==1.."z"', "both bounds of a range must be of the same kind"),
        ("a~=(", "q: invalid regular expression '(' (missing ), unterminated subpattern)"),
        ("a~=", "q: expected a regular expression after '~=' at position 4"),
        ("a~=" + "(" * 510 + "x" + ")" * 510, "q: regular expression nested too deeply"),
        ("a~=" + "x" * 1_100, "q: regular expression longer than 1024 characters (1100)"),
        ("!a==1", "q: '!' (the attribute does not exist) takes no comparison at position 1"),
        ("!(a)", "'!' applies to an attribute path only"),
        ("a{b}==1", "linked-entity paths (attr{...}) are not supported at position 2"),
        ("a==1x", "q: expected a value after '==' at position 4: found '1x'"),
        ("a==2024-13-01", "q: invalid date '2024-13-01' at position 4"),
        ("a==2024-01-01T25:00:00Z", "invalid dateTime"),
        ("a b", "q: unexpected 'b' after the attribute path 'a' at position 3"),
        ("a.", "q: expected a sub-attribute name after '.' at position 3"),
        ("a[", "q: expected ']' to close '[' at position 2"),
        ("a[]", "q: expected member names separated by '.' inside '[...]' at position 3"),
        (">5", "q: expected an attribute path at position 1: found '>'"),
        ('a=="\\u12"', "expected four hex digits after '\\u'"),
        ("a==1 2", "unexpected '2'"),
        ("a==" + "1" * 5_000, "q: number 111111111111... is too long at position 4"),
        (
            "a>2024-01-01T10:00:00 02:00",
            "a '+' in a time zone offset must be sent as %2B in a URL",
        ),
        ("(a>10:00 01:00)", "a '+' in a time zone offset must be sent as %2B in a URL"),
    ],
)
def test_error_messages_name_position_and_expectation(q: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_q(q)
    assert message in (caught.value.detail or "")
    assert caught.value.status_code == 400


def test_query_errors_are_bad_request_data_on_the_wire() -> None:
    """NGSI-LD answers a query that is not valid with BadRequestData (the ETSI suite checks it);
    the error is also an InvalidRequest for callers that catch that."""
    with pytest.raises(InvalidQuery) as caught:
        parse_q("(invalidQuery")
    error = caught.value
    assert isinstance(error, BadRequestData)
    assert isinstance(error, InvalidRequest)
    assert error.to_problem() == {
        "type": "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
        "title": "The request includes input data which does not meet the requirements",
        "status": 400,
        "detail": "q: expected ')' at position 14: the '(' at position 1 is not closed, "
        "found end of query",
    }


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    ok = "(" * MAX_NESTING + "a" + ")" * MAX_NESTING
    assert parse_q(ok) == Exists(p("a"))
    for depth in (MAX_NESTING + 1, 5_000):
        with pytest.raises(InvalidRequest, match=f"nested deeper than {MAX_NESTING} levels"):
            parse_q("(" * depth + "a" + ")" * depth, max_length=20_000)


def test_alternating_nesting_at_the_limit_parses_and_prints() -> None:
    text = "a"
    for level in range(MAX_NESTING):
        text = f"({text}{';' if level % 2 else '|'}x{level})"
    tree = parse_q(text)
    assert tree.depth == MAX_NESTING
    assert parse_q(format_q(tree)) == tree


def test_long_input_is_refused() -> None:
    long_q = ";".join(f"a{i}==1" for i in range(5_000))
    with pytest.raises(InvalidRequest, match="longer than 16384 characters"):
        parse_q(long_q)
    assert isinstance(parse_q(long_q, max_length=len(long_q)), And)


def test_dotted_iris_scan_in_linear_time() -> None:
    name = "ex:" + "b." * 7_000 + "c/d"
    assert parse_q(name) == Exists(AttrPath(name))
    subs = "ex:a" + ".b" * 7_000
    assert parse_q(subs) == Exists(AttrPath("ex:a", ("b",) * 7_000))


def test_many_terms_parse_without_recursion() -> None:
    text = "|".join(f"a{i}>{i}" for i in range(2_000))
    tree = parse_q(text, max_length=len(text))
    assert isinstance(tree, Or)
    assert len(tree.terms) == 2_000


def test_non_string_input() -> None:
    with pytest.raises(InvalidRequest, match="expected a string"):
        parse_q(42)  # type: ignore[arg-type]


# --- tree construction -----------------------------------------------------------------------


def test_nodes_validate_their_parts() -> None:
    with pytest.raises(ValueError, match="at least two"):
        And((Exists(p("a")),))
    with pytest.raises(ValueError, match="only allowed with"):
        Comparison(p("a"), Op.GT, Range(num(1), num(2)))
    with pytest.raises(ValueError, match="regular expression"):
        Comparison(p("a"), Op.MATCHES, text("x"))
    with pytest.raises(ValueError, match="needs '~=' or '!~='"):
        Comparison(p("a"), Op.EQ, Pattern("x"))
    with pytest.raises(ValueError, match="not a valid number literal"):
        Literal(True, ValueKind.NUMBER)
    with pytest.raises(ValueError, match="not a valid number literal"):
        Literal(float("nan"), ValueKind.NUMBER)
    with pytest.raises(ValueError, match="not a valid number literal"):
        Literal(10**500, ValueKind.NUMBER)
    with pytest.raises(ValueError, match="not a valid uri literal"):
        Literal.uri("no scheme")
    with pytest.raises(ValueError, match="at least two values"):
        ValueList((num(1),))
    with pytest.raises(ValueError, match="non-empty"):
        AttrPath("")
    with pytest.raises(TypeError):
        Literal.of(object())  # type: ignore[arg-type]


def test_trees_are_hashable_and_frozen() -> None:
    tree = parse_q('a>1;b=="x"|c~=y')
    assert hash(tree) == hash(parse_q('a>1;b=="x"|c~=y'))
    assert {tree: 1}[parse_q('(a>1;b=="x")|c~=y')] == 1
    assert isinstance(tree, Or)
    with pytest.raises(AttributeError):
        tree.terms = ()  # type: ignore[misc]


def test_tree_depth_is_limited_at_construction() -> None:
    tree: Or | And = Or((Exists(p("a")), Exists(p("b"))))
    for i in range(MAX_NESTING):
        tree = (And if i % 2 == 0 else Or)((tree, Exists(p(f"x{i}"))))
    assert tree.depth == MAX_NESTING + 1
    other = And if isinstance(tree, Or) else Or
    with pytest.raises(ValueError, match="nested deeper"):
        other((tree, Exists(p("y"))))


def test_map_attributes_rewrites_every_attribute_name() -> None:
    tree = parse_q('temperature.observedAt>2024-01-01;(address[city]=="B"|!refDevice)')
    mapped = tree.map_attributes(lambda name: "https://example.org/" + name)
    assert mapped == parse_q(
        "https://example.org/temperature.https://example.org/observedAt>2024-01-01;"
        '(https://example.org/address[city]=="B"|!https://example.org/refDevice)'
    )
    assert tree.attribute_names() == {"temperature", "address", "refDevice"}
    assert [str(path) for path in tree.paths()] == [
        "temperature.observedAt",
        "address[city]",
        "refDevice",
    ]


# --- builder ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("built", "q"),
    [
        (Q("temperature") > 20, "temperature>20"),
        (Q("temperature") >= 20.5, "temperature>=20.5"),
        (Q("temperature") < -3, "temperature<-3"),
        (Q("temperature") <= 0, "temperature<=0"),
        (20 < Q("temperature"), "temperature>20"),  # noqa: SIM300
        (Q("brandName").eq("Mercedes"), 'brandName=="Mercedes"'),
        (Q("brandName").ne("Mercedes"), 'brandName!="Mercedes"'),
        (Q("isParked").eq(True), "isParked==true"),
        (Q("a").between(1, 5), "a==1..5"),
        (Q("a").not_between(1, 5), "a!=1..5"),
        (Q("color").one_of("red", "blue"), 'color=="red","blue"'),
        (Q("color").one_of(["red", "blue"]), 'color=="red","blue"'),
        (Q("color").one_of("red"), 'color=="red"'),
        (Q("color").none_of("red", "blue"), 'color!="red","blue"'),
        (Q("name").matches("^Park"), "name~=^Park"),
        (Q("name").not_matches("a|b"), 'name!~="a|b"'),
        (Q("a").exists(), "a"),
        (Q("a").missing(), "!a"),
        (Q("address[city]").eq("Berlin"), 'address[city]=="Berlin"'),
        (Q("address").key("city").eq("Berlin"), 'address[city]=="Berlin"'),
        (
            Q("temperature").sub("observedAt").ge(date(2024, 1, 1)),
            "temperature.observedAt>=2024-01-01",
        ),
        (
            Q("temperature.observedAt") >= datetime(2024, 1, 1, tzinfo=UTC),
            "temperature.observedAt>=2024-01-01T00:00:00Z",
        ),
        (Q("opening").lt(time(8, 0)), "opening<08:00:00"),
        (Q("refDevice").eq(Literal.uri("urn:ngsi-ld:Device:1")), "refDevice==urn:ngsi-ld:Device:1"),
        ((Q("a") > 1) & (Q("b") > 2), "a>1;b>2"),
        ((Q("a") > 1) & (Q("b") > 2) & Q("c").exists(), "a>1;b>2;c"),
        ((Q("a") > 1) | (Q("b") > 2) & Q("c").exists(), "a>1|b>2;c"),
        (((Q("a") > 1) | (Q("b") > 2)) & Q("c").exists(), "(a>1|b>2);c"),
    ],
)
def test_builder_makes_the_parsers_tree(built: object, q: str) -> None:
    assert built == parse_q(q)


def test_builder_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        Q("a").one_of()
    with pytest.raises(InvalidRequest, match="attribute path"):
        Q("a==1")
    with pytest.raises(ValueError, match="compares numbers"):
        Q("a") > True  # noqa: B015
    with pytest.raises(ValueError, match="invalid regular expression"):
        Q("a").matches("(")
    assert repr(Q("a.b[c]")) == "Q('a.b[c]')"
