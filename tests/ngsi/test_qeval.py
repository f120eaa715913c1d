"""Evaluating `q` against normalized entities: the semantics of ETSI GS CIM 009 clause 4.9."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngsi._qeval import compile_q, matches_q
from ngsi._query import Q, QExpr, parse_q
from tests.ngsi.test_query_roundtrip import trees

CORE = "https://uri.etsi.org/ngsi-ld/"

VEHICLE: dict[str, Any] = {
    "id": "urn:ngsi-ld:Vehicle:A4567",
    "type": "Vehicle",
    "brandName": {"type": "Property", "value": "Mercedes"},
    "speed": {
        "type": "Property",
        "value": 80,
        "observedAt": "2024-05-01T12:00:00Z",
        "unitCode": "KMH",
        "accuracy": {"type": "Property", "value": 0.5},
        "measuredBy": {"type": "Relationship", "object": "urn:ngsi-ld:Camera:1"},
    },
    "rpm": {"type": "Property", "value": 3200.5},
    "isParked": {
        "type": "Relationship",
        "object": "urn:ngsi-ld:OffStreetParking:Downtown1",
        "observedAt": "2024-05-01T11:00:00Z",
    },
    "passengers": {
        "type": "Relationship",
        "object": ["urn:ngsi-ld:Person:1", "urn:ngsi-ld:Person:2"],
    },
    "colors": {"type": "Property", "value": ["blue", "red", "green"]},
    "mixed": {"type": "Property", "value": ["a", 1]},
    "empty": {"type": "Property", "value": []},
    "isElectric": {"type": "Property", "value": False},
    "seats": {"type": "Property", "value": "5"},
    "address": {
        "type": "Property",
        "value": {
            "city": "Berlin",
            "street": "Ulrich Strasse",
            "geo": {"zip": "10115", "floors": [1, 2]},
            "doors": [{"id": "d1", "width": 80}, {"id": "d2", "width": 90}],
        },
    },
    "name": {
        "type": "LanguageProperty",
        "languageMap": {"en": "red car", "de": "rotes Auto", "fr": ["voiture", "rouge"]},
    },
    "wheels": {"type": "ListProperty", "valueList": [17, 17, 18, 18]},
    "config": {"type": "JsonProperty", "json": {"mode": "eco", "limits": {"max": 120}}},
    "category": {"type": "VocabProperty", "vocab": "sports"},
    "route": {
        "type": "ListRelationship",
        "objectList": [{"object": "urn:ngsi-ld:Stop:1"}, {"object": "urn:ngsi-ld:Stop:2"}],
    },
    "temperature": [
        {"type": "Property", "value": 21, "datasetId": "urn:ngsi-ld:Dataset:inside"},
        {"type": "Property", "value": 4, "datasetId": "urn:ngsi-ld:Dataset:outside"},
    ],
    "serviced": {
        "type": "Property",
        "value": {"@type": "DateTime", "@value": "2024-03-01T08:00:00Z"},
    },
    "lastSeen": {"type": "Property", "value": "2024-05-01T14:00:00+02:00"},
    "builtOn": {"type": "Property", "value": "2019-06-30"},
    "opensAt": {"type": "Property", "value": "08:30:00"},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [13.4, 52.5]}},
}


def match(q: str, entity: dict[str, Any] | None = None) -> bool:
    return matches_q(parse_q(q), VEHICLE if entity is None else entity)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        # existence
        ("speed", True),
        ("fuel", False),
        ("!fuel", True),
        ("!speed", False),
        # numbers
        ("speed==80", True),
        ("speed==80.0", True),
        ("speed!=80", False),
        ("speed>50", True),
        ("speed>80", False),
        ("speed>=80", True),
        ("speed<80.5", True),
        ("speed<=79", False),
        ("rpm>3000", True),
        ("speed==50..100", True),
        ("speed==81..100", False),
        ("speed!=81..100", True),
        ("speed!=50..100", False),
        ("speed==1,2,80", True),
        ("speed!=1,2,80", False),
        ("speed!=1,2", True),
        # types never mix: "5" is a string, not a number
        ("seats==5", False),
        ("seats!=5", True),
        ("seats>4", False),
        ('seats=="5"', True),
        ('speed=="80"', False),
        ('speed!="80"', True),
        ("isElectric==false", True),
        ("isElectric==0", False),
        ("isElectric!=true", True),
        ("speed==true", False),
        # strings
        ('brandName=="Mercedes"', True),
        ('brandName!="Mercedes"', False),
        ('brandName=="mercedes"', False),
        ('brandName>"A"', True),
        ('brandName<"A"', False),
        ('brandName=="A".."N"', True),
        ('brandName=="BMW","Mercedes"', True),
        ("brandName~=^Merc", True),
        ("brandName~=ced", True),
        ("brandName~=^ced", False),
        ("brandName~=(?i)^MERC", True),
        ("brandName!~=^Merc", False),
        ("brandName!~=^BMW", True),
        ("speed~=8", False),
        ("speed!~=8", False),
        # a missing attribute matches no comparison at all
        ("fuel==1", False),
        ("fuel!=1", False),
        ('fuel!="x"', False),
        ("fuel!=1..2", False),
        ("fuel!~=x", False),
        ("fuel<1", False),
        # relationships compare their object, with == and != only
        ("isParked==urn:ngsi-ld:OffStreetParking:Downtown1", True),
        ('isParked=="urn:ngsi-ld:OffStreetParking:Downtown1"', True),
        ("isParked!=urn:ngsi-ld:OffStreetParking:Downtown1", False),
        ("isParked!=urn:ngsi-ld:OffStreetParking:Other", True),
        (
            "isParked==urn:ngsi-ld:OffStreetParking:Other,urn:ngsi-ld:OffStreetParking:Downtown1",
            True,
        ),
        ('isParked>"a"', False),
        ("isParked~=Downtown", False),
        ("isParked!~=Uptown", False),
        ("passengers==urn:ngsi-ld:Person:2", True),
        ("passengers!=urn:ngsi-ld:Person:2", False),
        ("passengers!=urn:ngsi-ld:Person:3", True),
        ("isParked.observedAt<2024-05-01T11:30:00Z", True),
        # arrays: == any element, != no element
        ('colors=="red"', True),
        ('colors=="black"', False),
        ('colors!="red"', False),
        ('colors!="black"', True),
        ('colors=="black","green"', True),
        ('colors!="black","green"', False),
        ('colors=="a".."c"', True),
        ('colors>"q"', True),
        ("colors~=^gr", True),
        ("colors!~=^y", True),
        ("colors!~=^r", False),
        ("mixed!~=z", False),
        ("mixed~=a", True),
        ("mixed==1", True),
        ("empty", True),
        ("empty==1", False),
        ("empty!=1", True),
        # multiple instances (datasetId): any instance
        ("temperature==4", True),
        ("temperature>20", True),
        ("temperature>30", False),
        ("temperature!=4", False),
        ("temperature!=5", True),
        ('temperature.datasetId=="urn:ngsi-ld:Dataset:outside"', True),
        # sub-attributes and members
        ("speed.observedAt", True),
        ("speed.createdAt", False),
        ("!speed.createdAt", True),
        ("speed.observedAt>=2024-05-01T00:00:00Z", True),
        ("speed.observedAt>2024-05-01T12:00:00Z", False),
        ("speed.observedAt==2024-05-01T14:00:00+02:00", True),
        ('speed.unitCode=="KMH"', True),
        ("speed.accuracy<1", True),
        ("speed.accuracy.value<1", True),
        ("speed.measuredBy==urn:ngsi-ld:Camera:1", True),
        ("speed.measuredBy.observedAt", False),
        ("speed.unitCode.other", False),
        ("brandName.accuracy", False),
        # keys inside JSON values
        ('address[city]=="Berlin"', True),
        ('address[city]!="Berlin"', False),
        ("address[country]", False),
        ("!address[country]", True),
        ('address[country]!="DE"', False),
        ('address[geo.zip]=="10115"', True),
        ('address[geo][zip]=="10115"', True),
        ("address[geo.floors]==2", True),
        ("address[geo.floors.1]==2", True),
        ("address[geo.floors.0]==2", False),
        ("address[geo.floors.7]", False),
        ("address[geo.floors.²]", False),
        ("address[doors.width]>85", True),
        ('address[doors.id]=="d2"', True),
        ('address[*]=="Berlin"', True),
        ("address[city.x]", False),
        ("speed[x]", False),
        # LanguageProperty: any language, or the one named
        ('name=="rotes Auto"', True),
        ('name=="voiture"', True),
        ('name!="red car"', False),
        ('name[en]=="red car"', True),
        ('name[de]=="red car"', False),
        ('name[fr]=="rouge"', True),
        ('name[*]=="rouge"', True),
        ('name[*]!="blue"', True),
        ("name[it]", False),
        ("name~=^rot", True),
        # other attribute types
        ("wheels==18", True),
        ("wheels!=19", True),
        ("wheels>17", True),
        ('config[mode]=="eco"', True),
        ("config[limits.max]>100", True),
        ('category=="sports"', True),
        ("route==urn:ngsi-ld:Stop:2", True),
        ("route!=urn:ngsi-ld:Stop:3", True),
        ('route>"a"', False),
        ("location", True),
        ("location==1", False),
        # temporal values
        ("serviced<2024-04-01T00:00:00Z", True),
        ("serviced==2024-03-01T08:00:00Z", True),
        ("serviced==2024-03-01T09:00:00+01:00", True),
        ("serviced==2024-03-01T00:00:00Z..2024-03-31T23:59:59Z", True),
        ("lastSeen==2024-05-01T12:00:00Z", True),
        ("lastSeen>2024-05-01T13:00:00Z", False),
        ('lastSeen=="2024-05-01T14:00:00+02:00"', True),
        ("builtOn<2020-01-01", True),
        ("builtOn==2019-06-30", True),
        ("builtOn!=2019-06-30", False),
        ("builtOn==2019-06-30T00:00:00Z", False),
        ("opensAt<09:00", True),
        ("opensAt==08:30:00Z", True),
        ("opensAt==09:30:00+01:00", True),
        ("brandName>2020-01-01T00:00:00Z", False),
        ("brandName!=2020-01-01", True),
        # combinations, AND before OR
        ('speed>50;brandName=="Mercedes"', True),
        ('speed>50;brandName=="BMW"', False),
        ('speed>90|brandName=="Mercedes"', True),
        ("(speed>90|rpm>3000);isElectric==false", True),
        ("speed>90|rpm>3000;isElectric==true", False),
        ("speed>90;rpm>3000|isElectric==false", True),
        ("fuel|!fuel", True),
        ("speed;rpm;brandName;!fuel", True),
    ],
)
def test_semantics(q: str, expected: bool) -> None:
    assert match(q) is expected
    assert compile_q(parse_q(q))(VEHICLE) is expected


def test_huge_array_index_is_just_absent() -> None:
    assert not match("address[geo.floors." + "1" * 5_000 + "]")


def test_naive_datetimes_count_as_utc() -> None:
    entity = {"seen": {"type": "Property", "value": "2024-05-01T12:00:00"}}
    assert match("seen==2024-05-01T12:00:00Z", entity)
    assert match("seen==2024-05-01T12:00:00", entity)
    assert match("seen>2024-05-01T13:00:00+02:00", entity)


def test_core_members_are_found_under_short_name_or_iri() -> None:
    expanded = {
        "speed": {
            "type": "Property",
            "value": 80,
            CORE + "observedAt": "2024-05-01T12:00:00Z",
        },
    }
    assert match("speed.observedAt>2024-01-01T00:00:00Z", expanded)
    iri_path = parse_q("speed.observedAt>2024-01-01T00:00:00Z").map_attributes(
        lambda n: CORE + n if n == "observedAt" else n
    )
    assert matches_q(iri_path, VEHICLE)
    assert matches_q(iri_path, expanded)


def test_expanded_names_match_an_expanded_entity() -> None:
    iri = "https://smartdatamodels.org/dataModel.Environment/temperature"
    entity = {iri: {"type": "Property", "value": 21.5}}
    tree = parse_q("temperature>20")
    assert not matches_q(tree, entity)
    expanded = tree.map_attributes(lambda name: iri if name == "temperature" else name)
    assert matches_q(expanded, entity)
    assert matches_q(parse_q(f"{iri}>20"), entity)


def test_concise_attributes_without_type_are_understood() -> None:
    entity = {
        "speed": {"value": 80, "observedAt": "2024-05-01T12:00:00Z"},
        "owner": {"object": "urn:ngsi-ld:Person:1"},
        "label": {"languageMap": {"en": "x"}},
    }
    assert match("speed>50", entity)
    assert match("owner==urn:ngsi-ld:Person:1", entity)
    assert not match('owner>"a"', entity)
    assert match('label=="x"', entity)


@pytest.mark.parametrize(
    "entity",
    [
        {},
        {"speed": None},
        {"speed": 80},
        {"speed": "80"},
        {"speed": [80, "x", None]},
        {"speed": {"type": "Property"}},
        {"speed": {"type": "Unknown", "value": 80}},
        {"speed": {"type": "Property", "value": None}},
        {"speed": {"type": "Property", "value": {"observedAt": 1}}},
        {"speed": [{"type": "Property", "value": 80}, "junk", None]},
        {"speed": {"type": "Property", "value": 80, "observedAt": 17}},
        {"speed": {"type": "Property", "value": 80, "observedAt": "not a date"}},
        {"speed": {"type": "Property", "value": 80, "observedAt": "2024-99-99T00:00:00Z"}},
    ],
)
def test_odd_entity_content_never_raises(entity: dict[str, Any]) -> None:
    for q in [
        "speed",
        "!speed",
        "speed==80",
        "speed!=80",
        "speed>1",
        "speed~=8",
        "speed!~=8",
        "speed.observedAt>2024-01-01T00:00:00Z",
        "speed.observedAt==10:00",
        "speed[observedAt]",
        "speed==1..100",
        "speed==1,2",
    ]:
        assert isinstance(match(q, entity), bool)


def test_a_typed_attribute_with_a_wrong_member_still_resolves() -> None:
    entity = {"speed": {"type": "Unknown", "value": 80}}
    assert match("speed==80", entity)
    assert match("speed", {"speed": [{"type": "Property", "value": 80}, "junk"]})
    assert not match("speed", {"speed": 80})
    assert not match("speed", {"speed": {"type": "Property"}})


def test_builder_trees_evaluate_like_parsed_ones() -> None:
    built = ((Q("speed") > 50) | Q("rpm").between(0, 100)) & Q("brandName").one_of(
        "BMW", "Mercedes"
    )
    assert matches_q(built, VEHICLE)
    assert built == parse_q('(speed>50|rpm==0..100);brandName=="BMW","Mercedes"')


def test_compiled_matchers_are_cached_per_tree() -> None:
    first = compile_q(parse_q('speed>50;brandName=="Mercedes"'))
    assert compile_q(parse_q('speed > 50 ; brandName == "Mercedes"')) is first


def test_compile_q_rejects_non_trees() -> None:
    with pytest.raises(TypeError, match="compile_q takes a q expression"):
        compile_q("speed>50")  # type: ignore[arg-type]


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from(["a", "x", "2024-01-01T00:00:00Z", "2024-01-01", "10:00", "urn:a:b", ""]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abk*"), inner),
    max_leaves=6,
)
attribute_names = st.sampled_from(["a", "b", "k", "observedAt", "unitCode"])
sub_properties = st.builds(lambda v: {"type": "Property", "value": v}, json_values)
properties = st.builds(
    lambda value, observed, sub: {
        "type": "Property",
        "value": value,
        **({} if observed is None else {"observedAt": observed}),
        **({} if sub is None else {"a": sub}),
    },
    json_values,
    st.one_of(st.none(), json_scalars),
    st.one_of(st.none(), sub_properties),
)
relationships = st.builds(lambda o: {"type": "Relationship", "object": o}, json_values)
language_properties = st.builds(
    lambda m: {"type": "LanguageProperty", "languageMap": m},
    st.dictionaries(st.sampled_from("ab"), json_values),
)
instances = st.one_of(properties, relationships, language_properties, json_values)
entities = st.dictionaries(attribute_names, st.one_of(instances, st.lists(instances, max_size=2)))


@settings(max_examples=150, deadline=None)
@given(trees, entities)
def test_evaluation_never_raises_and_is_deterministic(tree: QExpr, entity: dict[str, Any]) -> None:
    result = matches_q(tree, entity)
    assert isinstance(result, bool)
    assert compile_q(tree)(entity) is result


short_paths = st.sampled_from(
    ["a", "b", "a.a", "a.observedAt", "a[a]", "b[k.a]", "a[*]", "k.a.observedAt"]
)
q_values = st.sampled_from(
    ['"a"', '"x"', "1", "0", "true", "urn:a:b", "2024-01-01T00:00:00Z", "10:00"]
)


@settings(max_examples=200, deadline=None)
@given(short_paths, q_values, entities)
def test_unequal_is_exists_and_not_equal(path: str, value: str, entity: dict[str, Any]) -> None:
    exists = match(path, entity)
    assert match("!" + path, entity) is not exists
    assert match(f"{path}!={value}", entity) is (exists and not match(f"{path}=={value}", entity))


def test_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints evaluations/s of typical subscription filters (run with -s to see them)."""
    workloads = {
        "temperature>20": "simple comparison",
        'temperature>20;status=="ok"': "two-term AND",
        "temperature.observedAt>=2024-01-01T00:00:00Z;refDevice==urn:ngsi-ld:Device:1": (
            "sub-attribute dateTime + relationship"
        ),
        '(co2>1000|pm25>25);address[city]=="Berlin";!maintenance': "grouped, keys, not-exists",
        "name~=^Station": "regex",
    }
    entity = {
        "id": "urn:ngsi-ld:AirQualityObserved:1",
        "type": "AirQualityObserved",
        "temperature": {"type": "Property", "value": 21.5, "observedAt": "2024-05-01T12:00:00Z"},
        "status": {"type": "Property", "value": "ok"},
        "co2": {"type": "Property", "value": 640},
        "pm25": {"type": "Property", "value": 31},
        "address": {"type": "Property", "value": {"city": "Berlin"}},
        "name": {"type": "Property", "value": "Station 7"},
        "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:1"},
    }
    rounds = 20_000
    lines = []
    for q, label in workloads.items():
        matcher = compile_q(parse_q(q))
        assert matcher(entity)
        start = time.perf_counter()
        for _ in range(rounds):
            matcher(entity)
        elapsed = time.perf_counter() - start
        lines.append(f"q evaluation {rounds / elapsed:>12,.0f} /s  {label}: {q}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
