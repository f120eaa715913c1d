"""The JSON-LD Link header and NGSI-LD's rules for where a request's @context may be."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ngsi._context import Context
from ngsi._context_http import (
    acontext_from_request,
    context_from_request,
    format_link_header,
    parse_link_header,
)
from ngsi._context_store import ContextStore
from ngsi._core_context import CORE_CONTEXT_URL, DEFAULT_VOCAB
from ngsi._errors import BadRequestData, LdContextNotAvailable

WEATHER = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/master/context.jsonld"
)
REL = "http://www.w3.org/ns/json-ld#context"
WEATHER_TEMPERATURE = "https://smartdatamodels.org/dataModel.Weather/temperature"


@pytest.fixture(scope="module")
def store(shared_dir: Path) -> ContextStore:
    return ContextStore(preload={WEATHER: shared_dir / "sdm/dataModel.Weather/context.jsonld"})


def test_format_link_header_exactly() -> None:
    assert format_link_header(WEATHER) == (
        f'<{WEATHER}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    )
    assert parse_link_header(format_link_header(WEATHER)) == WEATHER


@pytest.mark.parametrize(
    "value",
    [
        f'<{WEATHER}>; rel="{REL}"; type="application/ld+json"',
        f"<{WEATHER}>;rel={REL};type=application/ld+json",
        f'  < {WEATHER} >  ;  REL = "{REL}"  ;  type = "application/ld+json"  ',
        f'<{WEATHER}>; rel="{REL}"',
        f'<{WEATHER}>; type="application/ld+json"; rel="alternate {REL}"',
        f'<https://broker.example/entities?offset=20>; rel="next", <{WEATHER}>; rel="{REL}"',
        f'<{WEATHER}>; rel="{REL}", <{WEATHER}>; rel="{REL}"',
    ],
)
def test_parse_link_header_is_tolerant(value: str) -> None:
    assert parse_link_header(value) == WEATHER


@pytest.mark.parametrize(
    "value", [None, "", "   ", '<https://broker.example/entities?offset=20>; rel="next"']
)
def test_parse_link_header_without_a_context_link(value: str | None) -> None:
    assert parse_link_header(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (WEATHER, "expected <URL>"),
        (f'<{WEATHER}; rel="{REL}"', "not closed"),
        (f"<{WEATHER}>", "no rel"),
        (f"<{WEATHER}>; rel", "has no value"),
        (f'<{WEATHER}>; rel="{REL}", <https://other.example/c>; rel="{REL}"', "more than one"),
        (f'<context.jsonld>; rel="{REL}"', "not an absolute http(s) URL"),
        (f'<ftp://files.example/context.jsonld>; rel="{REL}"', "not an absolute http(s) URL"),
    ],
)
def test_parse_link_header_errors_name_the_header(value: str, reason: str) -> None:
    with pytest.raises(BadRequestData) as raised:
        parse_link_header(value)
    assert (raised.value.detail or "").startswith("Link header")
    assert reason in (raised.value.detail or "")


def test_json_with_link_header(store: ContextStore) -> None:
    context = context_from_request(
        format_link_header(WEATHER), None, "application/json; charset=utf-8", store
    )
    assert context is store.resolve(WEATHER)
    assert context.expand_term("temperature") == WEATHER_TEMPERATURE


@pytest.mark.parametrize("content_type", ["application/json", "", None])
def test_no_context_means_core(store: ContextStore, content_type: str | None) -> None:
    assert context_from_request(None, None, content_type, store) is Context.core()


def test_get_without_body_uses_the_link_header(store: ContextStore) -> None:
    context = context_from_request(format_link_header(WEATHER), None, None, store)
    assert context.expand_term("temperature") == WEATHER_TEMPERATURE


def test_json_body_with_context_is_refused(store: ContextStore) -> None:
    with pytest.raises(BadRequestData, match=r"needs Content-Type application/ld\+json"):
        context_from_request(None, WEATHER, "application/json", store)


def test_ld_json_with_inline_or_linked_context_in_body(store: ContextStore) -> None:
    inline = context_from_request(
        None, {"speed": "http://example.org/speed"}, "application/ld+json", store
    )
    assert inline.expand_term("speed") == "http://example.org/speed"
    listed = context_from_request(
        None, [WEATHER, CORE_CONTEXT_URL], "Application/LD+JSON;charset=utf-8", store
    )
    assert listed.expand_term("temperature") == WEATHER_TEMPERATURE
    assert listed.expand_term("undefinedThing") == DEFAULT_VOCAB + "undefinedThing"


def test_ld_json_with_link_header_is_refused(store: ContextStore) -> None:
    with pytest.raises(BadRequestData, match="Link header cannot be used"):
        context_from_request(format_link_header(WEATHER), WEATHER, "application/ld+json", store)


def test_ld_json_without_body_context_is_refused(store: ContextStore) -> None:
    with pytest.raises(BadRequestData, match="needs an @context member"):
        context_from_request(None, None, "application/ld+json", store)


def test_unknown_link_context_is_not_available(store: ContextStore) -> None:
    link = format_link_header("https://contexts.example/unknown.jsonld")
    with pytest.raises(LdContextNotAvailable) as raised:
        context_from_request(link, None, "application/json", store)
    assert "https://contexts.example/unknown.jsonld" in (raised.value.detail or "")


def test_async_variant_applies_the_same_rules(store: ContextStore) -> None:
    async def main() -> Context:
        with pytest.raises(BadRequestData, match="Link header cannot be used"):
            await acontext_from_request(
                format_link_header(WEATHER), WEATHER, "application/ld+json", store
            )
        return await acontext_from_request(
            format_link_header(WEATHER), None, "application/json", store
        )

    context = asyncio.run(main())
    assert context is store.resolve(WEATHER)
