"""Context: the core term table against the published v1.8 file, expansion, compaction, entities."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngsi._context import (
    Context,
    TermDefinition,
    compact_entity,
    compact_names,
    expand_entity,
    expand_names,
)
from ngsi._context_store import ContextStore
from ngsi._core_context import (
    CORE_CONTEXT_URL,
    CORE_CONTEXT_URLS,
    CORE_TERMS,
    DEFAULT_VOCAB,
    core_context_document,
    is_core_context_url,
)
from ngsi._errors import BadRequestData, LdContextNotAvailable

NGSI = "https://uri.etsi.org/ngsi-ld/"
SDM = "https://smartdatamodels.org/"
SUBJECTS = ("Environment", "Weather", "Device", "Parking", "Transportation")


def sdm_url(subject: str) -> str:
    return (
        "https://raw.githubusercontent.com/smart-data-models/"
        f"dataModel.{subject}/master/context.jsonld"
    )


@pytest.fixture(scope="module")
def sdm_store(shared_dir: Path) -> ContextStore:
    return ContextStore(
        preload={
            sdm_url(s): shared_dir / "sdm" / f"dataModel.{s}" / "context.jsonld" for s in SUBJECTS
        }
    )


@pytest.fixture(scope="module")
def environment(sdm_store: ContextStore) -> Context:
    return sdm_store.resolve(sdm_url("Environment"))


def inline(entries: Any) -> Context:
    return Context.from_entries(entries)


# The core term table


def _published(shared_dir: Path, version: str) -> dict[str, Any]:
    path = shared_dir / "ngsi-ld" / "contexts" / f"ngsi-ld-core-context-v{version}.jsonld"
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["@context"]
    return document


def _reference_expansion(document: dict[str, Any]) -> dict[str, tuple[str, Any, Any]]:
    """A deliberately naive reading of the published file: enough for its flat structure."""
    vocab: str = document["@vocab"]

    def expand(value: str, *, term: str | None = None) -> str:
        if value.startswith("@"):
            return value
        if value != term and isinstance(document.get(value), str):
            return expand(document[value], term=value)
        prefix, colon, suffix = value.partition(":")
        if colon and isinstance(document.get(prefix), str) and not suffix.startswith("//"):
            return str(document[prefix]) + suffix
        if colon:
            return value
        return vocab + value

    expected: dict[str, tuple[str, str | None, Any]] = {}
    for term, definition in document.items():
        if term.startswith("@"):
            continue
        if isinstance(definition, str):
            iri = vocab + term if definition == term else expand(definition, term=term)
            expected[term] = (iri, None, None)
        else:
            type_ = definition.get("@type")
            expected[term] = (
                expand(definition["@id"], term=term),
                expand(type_) if type_ else None,
                definition.get("@container"),
            )
    return expected


def _ours(term: str) -> tuple[str, Any, Any]:
    definition = CORE_TERMS[term]
    if isinstance(definition, str):
        return (definition, None, None)
    return (definition["@id"], definition.get("@type"), definition.get("@container"))


def test_every_v1_8_core_term_is_ours_with_the_same_expansion(shared_dir: Path) -> None:
    document = _published(shared_dir, "1.8")
    expected = _reference_expansion(document)
    assert set(CORE_TERMS) == set(expected)
    for term, reference in expected.items():
        assert _ours(term) == reference, term
    assert document["@vocab"] == DEFAULT_VOCAB


def test_v1_6_core_terms_are_a_subset_with_the_same_expansion(shared_dir: Path) -> None:
    for term, reference in _reference_expansion(_published(shared_dir, "1.6")).items():
        assert _ours(term) == reference, term


def test_processing_the_published_file_changes_nothing(shared_dir: Path) -> None:
    """Our context processing, fed the v1.8 file inline, agrees with the table term by term."""
    published = inline(_published(shared_dir, "1.8"))
    ours = inline(core_context_document()["@context"])
    core = Context.core()
    for term in CORE_TERMS:
        assert published.definition(term) == core.definition(term), term
        assert ours.definition(term) == core.definition(term), term
    assert core.expand_term("attributeCount") == DEFAULT_VOCAB + "attributeCount"
    assert core.definition("ngsi-ld") == TermDefinition(NGSI, prefix=True)
    assert core.definition("observedAt") == TermDefinition(NGSI + "observedAt", NGSI + "DateTime")


def test_core_context_urls() -> None:
    assert CORE_CONTEXT_URL == "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
    for version in ("1.6", "1.7", "1.8", "1.9"):
        url = f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v{version}.jsonld"
        assert url in CORE_CONTEXT_URLS
        assert is_core_context_url(url)
        assert inline(url).definition("value") == Context.core().definition("value")
    assert not is_core_context_url("https://uri.etsi.org/ngsi-ld/v1/other.jsonld")


# Expansion


def test_core_terms_and_default_vocab() -> None:
    core = Context.core()
    assert core.expand_term("value") == NGSI + "hasValue"
    assert core.expand_term("location") == NGSI + "location"
    assert core.expand_term("Point") == "https://purl.org/geojson/vocab#Point"
    assert core.expand_term("temperature") == DEFAULT_VOCAB + "temperature"
    assert core.expand_type("Vehicle") == DEFAULT_VOCAB + "Vehicle"
    assert core.expand_term("id") == "@id"
    assert core.expand_term("@type") == "@type"
    assert core.vocab == DEFAULT_VOCAB
    assert core.url == CORE_CONTEXT_URL
    assert core.to_jsonld() == CORE_CONTEXT_URL


def test_explicit_terms_compact_iris_and_absolute_iris() -> None:
    context = inline(
        {
            "speed": "ex:speed",  # uses a prefix defined further down
            "ex": "http://example.org/ns/",
            "Car": {"@id": "ex:Car"},
            "owner": {"@id": "ex:owner", "@type": "@id"},
        }
    )
    assert context.expand_term("speed") == "http://example.org/ns/speed"
    assert context.expand_type("Car") == "http://example.org/ns/Car"
    assert context.expand_term("ex:colour") == "http://example.org/ns/colour"
    assert context.expand_term("ngsi-ld:foo") == NGSI + "foo"
    assert context.expand_term("https://other.example/a") == "https://other.example/a"
    assert context.expand_term("urn:ngsi-ld:Car:1") == "urn:ngsi-ld:Car:1"
    assert context.expand_term("_:b0") == "_:b0"
    assert context.expand_term("unknown") == DEFAULT_VOCAB + "unknown"
    assert context.is_id_typed("owner")
    assert not context.is_vocab_typed("owner")


def test_terms_referring_to_terms_and_self_named_terms() -> None:
    context = inline(
        {"@vocab": "http://vocab.example/", "a": "http://example.org/a", "b": "a", "c": "c"}
    )
    assert context.expand_term("b") == "http://example.org/a"
    assert context.expand_term("c") == "http://vocab.example/c"


def test_user_vocab_and_its_reset() -> None:
    context = inline({"@vocab": "http://vocab.example/"})
    assert context.expand_term("foo") == "http://vocab.example/foo"
    assert context.vocab == "http://vocab.example/"
    assert context.compact_iri("http://vocab.example/foo") == "foo"
    assert inline([{"@vocab": "http://vocab.example/"}, {"@vocab": None}]).vocab == DEFAULT_VOCAB
    assert inline({"ex": "http://ex.org/", "@vocab": "ex:v/"}).vocab == "http://ex.org/v/"


def test_later_entries_override_earlier_and_null_resets() -> None:
    first = {"speed": "http://one.example/speed"}
    second = {"speed": "http://two.example/speed"}
    assert inline([first, second]).expand_term("speed") == "http://two.example/speed"
    assert inline([first, None]).expand_term("speed") == DEFAULT_VOCAB + "speed"


def test_core_terms_are_protected() -> None:
    context = inline(
        {
            "location": "http://example.org/loc",
            "value": {"@id": "http://example.org/value"},
            "id": "@id",  # repeating a core definition unchanged is fine
            "status": "https://uri.etsi.org/ngsi-ld/status",
        }
    )
    core = Context.core()
    for term in ("location", "value", "id", "status"):
        assert context.definition(term) == core.definition(term)


def test_prefix_needs_a_delimiter_or_an_explicit_prefix_flag() -> None:
    plain = inline({"ex": "http://example.org/ns"})
    assert plain.expand_term("ex:a") == "ex:a"
    flagged = inline({"ex": {"@id": "http://example.org/ns", "@prefix": True}})
    assert flagged.expand_term("ex:a") == "http://example.org/nsa"


@pytest.mark.parametrize(
    ("local", "message"),
    [
        ({"a": 5}, "term 'a'"),
        ({"a": {"@id": 5}}, "@id of term 'a'"),
        ({"a": {"@id": "http://x/", "@type": 1}}, "@type of term 'a'"),
        ({"a": {"@id": "http://x/", "@container": {"x": 1}}}, "@container of term 'a'"),
        ({"a": "b:x", "b": "a:y"}, "cyclic"),
        ({"@vocab": "relative"}, "@vocab"),
        ({"@import": 7}, "@import"),
    ],
)
def test_malformed_contexts_are_bad_request_data(local: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequestData) as raised:
        inline(local)
    assert message in str(raised.value)


def test_bad_entries_are_bad_request_data() -> None:
    with pytest.raises(BadRequestData, match="entry"):
        inline([5])
    with pytest.raises(BadRequestData, match="@context must be"):
        inline(5)
    with pytest.raises(BadRequestData, match="not an absolute URL"):
        inline("relative/context.jsonld")


def test_unknown_url_without_store_is_not_available() -> None:
    with pytest.raises(LdContextNotAvailable) as raised:
        inline("https://contexts.example/unknown.jsonld")
    assert "https://contexts.example/unknown.jsonld" in (raised.value.detail or "")


def test_null_and_reverse_terms_are_not_defined() -> None:
    context = inline({"gone": None, "back": {"@reverse": "http://example.org/p"}})
    assert not context.defines("gone")
    assert context.expand_term("back") == DEFAULT_VOCAB + "back"


def test_term_typing() -> None:
    core = Context.core()
    assert core.is_vocab_typed("watchedAttributes")
    assert core.is_vocab_typed(NGSI + "watchedAttributes")
    assert core.is_vocab_typed("vocab")
    assert core.is_id_typed("object")
    assert core.is_id_typed("datasetId")
    assert core.term_type("observedAt") == NGSI + "DateTime"
    assert core.term_type("json") == "@json"
    assert core.term_type("temperature") is None
    user = inline({"category": {"@id": "http://example.org/category", "@type": "@vocab"}})
    assert user.is_vocab_typed("category")


# Smart Data Models subject contexts


def test_sdm_subjects_expand_the_same_term_differently(sdm_store: ContextStore) -> None:
    environment = sdm_store.resolve(sdm_url("Environment"))
    weather = sdm_store.resolve(sdm_url("Weather"))
    device = sdm_store.resolve(sdm_url("Device"))
    assert environment.expand_term("temperature") == SDM + "dataModel.Environment/temperature"
    assert weather.expand_term("temperature") == SDM + "dataModel.Weather/temperature"
    assert device.expand_term("temperature") == SDM + "dataModel.Device/temperature"
    for context in (environment, weather, device):
        assert context.expand_term("name") == SDM + "name"
        assert context.expand_term("dateObserved") == SDM + "dateObserved"
        assert context.expand_term("location") == NGSI + "location"
    assert environment.expand_type("AirQualityObserved") == (
        SDM + "dataModel.Environment/AirQualityObserved"
    )
    assert weather.compact_iri(SDM + "dataModel.Weather/temperature") == "temperature"
    # Read with the wrong subject's context, the IRI does not pass for a term.
    assert weather.compact_iri(SDM + "dataModel.Environment/temperature") == (
        SDM + "dataModel.Environment/temperature"
    )


# Compaction


def test_compaction_prefers_terms_then_vocab_then_prefixes() -> None:
    context = inline({"ex": "http://example.org/", "speed": "http://example.org/speed"})
    assert context.compact_iri("http://example.org/speed") == "speed"
    assert context.compact_iri("http://example.org/colour") == "ex:colour"
    assert context.compact_iri(DEFAULT_VOCAB + "colour") == "colour"
    assert context.compact_iri(NGSI + "hasValue") == "value"
    assert context.compact_iri(NGSI + "somethingNew") == "ngsi-ld:somethingNew"
    assert context.compact_iri("http://nowhere.example/x") == "http://nowhere.example/x"
    assert context.compact_iri("urn:ngsi-ld:Car:1") == "urn:ngsi-ld:Car:1"
    assert context.compact_type("http://example.org/Car") == "ex:Car"


def test_vocab_suffix_that_is_a_term_elsewhere_is_not_used() -> None:
    context = inline({"temperature": "http://example.org/temperature"})
    iri = DEFAULT_VOCAB + "temperature"
    compacted = context.compact_iri(iri)
    assert compacted == "ngsi-ld:default-context/temperature"
    assert context.expand_term(compacted) == iri


@pytest.mark.parametrize(
    "order",
    [("zz", "aaa", "ab", "b1"), ("b1", "ab", "aaa", "zz"), ("aaa", "b1", "zz", "ab")],
)
def test_several_terms_for_one_iri_compact_deterministically(order: tuple[str, ...]) -> None:
    context = inline(dict.fromkeys(order, "http://example.org/same"))
    assert context.compact_iri("http://example.org/same") == "ab"


def test_several_prefixes_pick_the_shortest_compact_iri() -> None:
    context = inline(
        {"ex": "http://example.org/", "exs": "http://example.org/sub/", "ey": "http://example.org/"}
    )
    assert context.compact_iri("http://example.org/sub/x") == "exs:x"
    assert context.compact_iri("http://example.org/y") == "ex:y"


_NAMES = st.text(
    alphabet=st.sampled_from("abcXYZ019_-:/#.@"),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(name=_NAMES)
def test_compaction_round_trips_expansion(name: str, environment: Context) -> None:
    for context in (Context.core(), environment):
        iri = context.expand_term(name)
        assert context.expand_term(context.compact_iri(iri)) == iri


@settings(max_examples=100, deadline=None)
@given(name=st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True))
def test_simple_names_come_back_unchanged(name: str, environment: Context) -> None:
    for context in (Context.core(), environment):
        assert context.compact_iri(context.expand_term(name)) == name


# Contexts as values


def test_same_entries_give_the_same_object(sdm_store: ContextStore) -> None:
    url = sdm_url("Weather")
    assert sdm_store.resolve(url) is sdm_store.resolve([url])
    a = sdm_store.resolve([url, {"x": "http://example.org/x", "y": "http://example.org/y"}])
    b = sdm_store.resolve([url, {"y": "http://example.org/y", "x": "http://example.org/x"}])
    assert a is b
    assert hash(a) == hash(b)
    assert a != sdm_store.resolve(url)
    assert sdm_store.resolve(None) is Context.core()
    assert sdm_store.resolve([]) is Context.core()


def test_lru_evicts_but_equality_holds(shared_dir: Path) -> None:
    store = ContextStore(lru_size=2)
    first = store.resolve({"a": "http://example.org/a"})
    store.resolve({"b": "http://example.org/b"})
    store.resolve({"c": "http://example.org/c"})
    again = store.resolve({"a": "http://example.org/a"})
    assert again is not first
    assert again == first
    assert hash(again) == hash(first)


def test_context_is_immutable() -> None:
    context = Context.core()
    with pytest.raises(AttributeError):
        context._vocab = "http://example.org/"
    with pytest.raises(AttributeError):
        context.foo = 1
    with pytest.raises(TypeError):
        Context()


def test_entries_url_and_jsonld_value(sdm_store: ContextStore) -> None:
    url = sdm_url("Weather")
    single = sdm_store.resolve(url)
    assert single.entries == (url,)
    assert single.url == url
    assert single.to_jsonld() == url
    assert single.urls == frozenset({url})
    assert sdm_store.resolve([url, CORE_CONTEXT_URL]).url == url
    v16 = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld"
    assert sdm_store.resolve(v16).url == v16
    assert sdm_store.resolve([v16, CORE_CONTEXT_URL]).url == CORE_CONTEXT_URL
    assert sdm_store.resolve([url, sdm_url("Device")]).url is None
    mixed = sdm_store.resolve([url, {"x": "http://example.org/x"}])
    assert mixed.url is None
    assert mixed.to_jsonld() == [url, {"x": "http://example.org/x"}]


# Entities


def test_normalized_example_round_trips(shared_dir: Path, environment: Context) -> None:
    path = shared_dir / "sdm/dataModel.Environment/AirQualityObserved/examples"
    entity = json.loads((path / "example-normalized.jsonld").read_text(encoding="utf-8"))
    original = copy.deepcopy(entity)
    expanded = expand_entity(entity, environment)
    assert entity == original, "the input must not be changed"
    assert "@context" not in expanded
    assert expanded["id"] == entity["id"]
    assert expanded["type"] == SDM + "dataModel.Environment/AirQualityObserved"
    assert expanded[SDM + "dataModel.Environment/no2"] == entity["no2"]
    assert expanded[NGSI + "location"] == entity["location"]
    assert expanded[SDM + "address"]["value"] == entity["address"]["value"]
    without_context = {k: v for k, v in entity.items() if k != "@context"}
    assert compact_entity(expanded, environment) == without_context


def test_sub_attributes_multi_attributes_and_core_members(environment: Context) -> None:
    entity = {
        "id": "urn:ngsi-ld:AirQualityObserved:1",
        "type": ["AirQualityObserved", "Sensor"],
        "scope": "/city/north",
        "createdAt": "2024-01-01T00:00:00Z",
        "temperature": [
            {
                "type": "Property",
                "value": 21.5,
                "unitCode": "CEL",
                "observedAt": "2024-05-01T10:00:00Z",
                "datasetId": "urn:ngsi-ld:Dataset:a",
                "accuracy": {"type": "Property", "value": 0.2},
            },
            {"type": "Property", "value": 22.0, "datasetId": "urn:ngsi-ld:Dataset:b"},
        ],
        "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:1"},
        "name": {"type": "LanguageProperty", "languageMap": {"de": "Nord", "en": "North"}},
    }
    expanded = expand_entity(entity, environment)
    assert expanded["type"] == [
        SDM + "dataModel.Environment/AirQualityObserved",
        DEFAULT_VOCAB + "Sensor",
    ]
    assert expanded["scope"] == "/city/north"
    assert expanded["createdAt"] == "2024-01-01T00:00:00Z"
    first, second = expanded[SDM + "dataModel.Environment/temperature"]
    assert first["unitCode"] == "CEL"
    assert first["observedAt"] == "2024-05-01T10:00:00Z"
    assert first[DEFAULT_VOCAB + "accuracy"] == {"type": "Property", "value": 0.2}
    assert second["datasetId"] == "urn:ngsi-ld:Dataset:b"
    assert expanded[SDM + "dataModel.Environment/refDevice"]["object"] == "urn:ngsi-ld:Device:1"
    assert expanded[SDM + "name"]["languageMap"] == {"de": "Nord", "en": "North"}
    assert compact_entity(expanded, environment) == entity


def test_concise_entities(environment: Context) -> None:
    entity = {
        "id": "urn:ngsi-ld:AirQualityObserved:2",
        "type": "AirQualityObserved",
        "temperature": {"value": 21, "unitCode": "CEL", "accuracy": {"value": 0.5}},
        "relativeHumidity": 0.5,
        "location": {"type": "Point", "coordinates": [13.4, 52.5]},
        "refDevice": {"object": "urn:ngsi-ld:Device:9"},
        "address": {"streetAddress": "Hauptstraße 1", "type": "PostalAddress"},
    }
    expanded = expand_entity(entity, environment)
    temperature = expanded[SDM + "dataModel.Environment/temperature"]
    assert temperature[DEFAULT_VOCAB + "accuracy"] == {"value": 0.5}
    assert expanded[SDM + "dataModel.Environment/relativeHumidity"] == 0.5
    assert expanded[NGSI + "location"] is entity["location"]
    assert expanded[SDM + "address"] is entity["address"]
    assert compact_entity(expanded, environment) == entity


def test_key_values_never_look_into_values(environment: Context) -> None:
    entity = {
        "id": "urn:x",
        "type": "AirQualityObserved",
        "temperature": 21,
        "calibration": {"value": 1, "offset": 2},
    }
    expanded = expand_entity(entity, environment, key_values=True)
    assert expanded[DEFAULT_VOCAB + "calibration"] == {"value": 1, "offset": 2}
    assert compact_entity(expanded, environment, key_values=True) == entity
    # Without the flag, the same object passes for a concise attribute with a sub-attribute.
    assert (
        DEFAULT_VOCAB + "offset"
        in expand_entity(entity, environment)[DEFAULT_VOCAB + "calibration"]
    )


def test_vocab_typed_members_are_expanded_like_names() -> None:
    context = inline({"Open": "http://example.org/status/Open", "Car": "http://example.org/Car"})
    entity = {
        "id": "urn:x",
        "type": "Parking",
        "state": {"type": "VocabProperty", "vocab": "Open"},
        "states": {"type": "VocabProperty", "vocab": ["Open", "Closed"]},
        "owner": {"type": "Relationship", "object": "urn:y", "objectType": "Car"},
    }
    expanded = expand_entity(entity, context)
    assert expanded[DEFAULT_VOCAB + "state"]["vocab"] == "http://example.org/status/Open"
    assert expanded[DEFAULT_VOCAB + "states"]["vocab"] == [
        "http://example.org/status/Open",
        DEFAULT_VOCAB + "Closed",
    ]
    assert expanded[DEFAULT_VOCAB + "owner"]["objectType"] == "http://example.org/Car"
    assert expanded[DEFAULT_VOCAB + "owner"]["object"] == "urn:y"
    assert compact_entity(expanded, context) == entity


def test_names_colliding_after_expansion_are_refused(environment: Context) -> None:
    entity = {
        "id": "urn:x",
        "type": "AirQualityObserved",
        "temperature": {"type": "Property", "value": 1},
        SDM + "dataModel.Environment/temperature": {"type": "Property", "value": 2},
    }
    with pytest.raises(BadRequestData) as raised:
        expand_entity(entity, environment)
    assert "'temperature'" in str(raised.value)
    assert "urn:x" in str(raised.value)


def test_name_lists(environment: Context) -> None:
    names = ["temperature", "location", "unknownThing", "ex:a"]
    iris = expand_names(names, environment)
    assert iris == [
        SDM + "dataModel.Environment/temperature",
        NGSI + "location",
        DEFAULT_VOCAB + "unknownThing",
        "ex:a",
    ]
    assert compact_names(iris, environment) == names
