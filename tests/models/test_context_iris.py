"""The expanded IRI of every attribute each model writes, with its subject's official @context.

One @context per entity type (design decision 7): other cities read our entities with the
official Smart Data Models contexts, so every attribute name we write must be defined by the
subject's context (or be an NGSI-LD core term) and expand to the IRI pinned in
`models/data/attribute_iris.json`. The contexts are preloaded from the shared folder: no network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import SmartDataModel, default_registry
from ngsi import ContextStore, expand_entity
from tests.models._generate import entities

PINNED: dict[str, dict[str, str]] = json.loads(
    (Path(__file__).parents[2] / "models" / "data" / "attribute_iris.json").read_text("utf-8")
)
SDM = "https://smartdatamodels.org/"
CORE = "https://uri.etsi.org/ngsi-ld/"
MODELS = [pytest.param(info.model, id=info.type_name) for info in default_registry]


@pytest.fixture(scope="module")
def contexts(shared_dir: Path) -> Any:
    preload = {
        info.context_url: shared_dir / "sdm" / info.repository / "context.jsonld"
        for info in default_registry
    }
    return ContextStore(preload=preload, allow_network=False)


def test_the_brief_examples(contexts: Any) -> None:
    from models import AirQualityObserved, ParkingSpot, WeatherObserved

    environment = contexts.resolve(AirQualityObserved.context_url())
    weather = contexts.resolve(WeatherObserved.context_url())
    parking = contexts.resolve(ParkingSpot.context_url())
    assert environment.expand_term("temperature") == f"{SDM}dataModel.Environment/temperature"
    assert weather.expand_term("temperature") == f"{SDM}dataModel.Weather/temperature"
    assert environment.expand_term("refDevice") == f"{SDM}dataModel.Environment/refDevice"
    assert weather.expand_term("refDevice") == f"{SDM}dataModel.Weather/refDevice"
    assert parking.expand_term("refDevice") == f"{SDM}dataModel.Parking/refDevice"
    for context in (environment, weather, parking):
        assert context.expand_term("name") == f"{SDM}name"
        assert context.expand_term("location") == f"{CORE}location"
    for context in (environment, weather):
        assert context.expand_term("dateObserved") == f"{SDM}dateObserved"


@pytest.mark.parametrize("model", MODELS)
def test_every_declared_attribute_expands_to_its_pinned_iri(
    model: type[SmartDataModel], contexts: Any
) -> None:
    pinned = PINNED[model.type_name()]
    assert pinned["@context"] == model.context_url()
    assert set(pinned) - {"@context"} == set(model.attribute_names())
    context = contexts.resolve(model.context_url())
    for name in model.attribute_names():
        assert context.defines(name), f"{name} is not defined by {model.context_url()}"
        assert context.expand_term(name) == pinned[name], name


@pytest.mark.parametrize("model", MODELS)
def test_pinned_iris_are_the_subjects_the_shared_or_core_terms(
    model: type[SmartDataModel],
) -> None:
    subject = f"{SDM}dataModel.{model.subject}/"
    for name, iri in PINNED[model.type_name()].items():
        if name == "@context":
            continue
        allowed = {f"{subject}{name}", f"{SDM}{name}", f"{CORE}{name}"}
        if name == "description":  # the core context's own term, Dublin Core
            allowed.add("http://purl.org/dc/terms/description")
        if name == "value":  # Device's `value` collides with the core term `value`
            allowed.add(f"{CORE}hasValue")
        assert iri in allowed, (name, iri)


@pytest.mark.parametrize("model", MODELS)
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_what_a_model_writes_expands_to_pinned_iris_only(
    model: type[SmartDataModel], data: st.DataObject, contexts: Any
) -> None:
    entity = model.from_ngsi(data.draw(entities(model)), representation="keyValues")
    written = entity.to_ngsi("normalized")
    expanded = expand_entity(written, contexts.resolve(model.context_url()))
    pinned = PINNED[model.type_name()]
    expected = {pinned[name] for name in written if name not in ("id", "type")}
    assert set(expanded) - {"id", "type"} == expected
    assert expanded["type"] == f"{SDM}dataModel.{model.subject}/{model.type_name()}"
