"""Every entity our models write validates against the official schema, offline, in every
representation; and what is written reads back into an equal entity."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import Representation, SmartDataModel, default_registry
from ngsi import Point
from schemas import EntityRepresentation, SdmSchemas, validate_document
from tests.models._generate import entities

MODELS = [pytest.param(info.model, id=info.type_name) for info in default_registry]


def _exactly(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


@pytest.mark.parametrize("model", MODELS)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_what_a_model_writes_is_valid_offline_and_reads_back(
    model: type[SmartDataModel], data: st.DataObject, sdm: SdmSchemas, no_network: list[Any]
) -> None:
    key_values = data.draw(entities(model))
    entity = model.from_ngsi(key_values, representation="keyValues")
    assert _exactly(entity.to_ngsi("keyValues")) == _exactly(key_values)

    representations: tuple[Representation, ...] = ("normalized", "concise", "keyValues")
    for representation in representations:
        written = entity.to_ngsi(representation)
        read_as: EntityRepresentation = "concise" if representation == "concise" else "auto"
        violations = sdm.violations(written, representation=read_as)
        assert violations == [], f"{representation}: {[str(v) for v in violations]}"
        again = model.from_ngsi(written)
        assert _exactly(again.to_ngsi("keyValues")) == _exactly(key_values)

    assert validate_document(model.type_name(), entity.to_ngsi("keyValues")) == []
    assert no_network == []


def test_a_full_air_quality_reading_is_valid_offline(
    sdm: SdmSchemas, no_network: list[Any]
) -> None:
    from models import AirQualityObserved, Measured

    observed = datetime(2024, 5, 1, 11, 59, 30, tzinfo=UTC)
    reading = AirQualityObserved(
        id="urn:ngsi-ld:AirQualityObserved:berlin-mitte",
        dateObserved=datetime(2024, 5, 1, 12, tzinfo=UTC),
        location=Point(coordinates=[13.40, 52.52]),
        temperature=Measured(value=21.3, observed_at=observed),
        relativeHumidity=0.41,
        co2=Measured(value=612, unit_code="59", observed_at=observed),
        pm25=7.5,
        typeofLocation="outdoor",
        refDevice="urn:ngsi-ld:Device:70B3D57ED0000001",
    )
    normalized = reading.to_ngsi()
    assert sdm.violations(normalized) == []
    assert sdm.violations(reading.to_ngsi("keyValues")) == []
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("127.0.0.1", 9))
    assert len(no_network) == 1
