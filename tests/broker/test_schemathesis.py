"""schemathesis against the broker over real HTTP, with the official NGSI-LD 1.6.1 OpenAPI.

The OpenAPI's schemas are loose, so this is a crash and response-shape guard, not a conformance
oracle (the ETSI suite is that). For each entity, batch, query and subscription operation it
generates requests from the schema, in schemathesis' positive mode (data the schema allows) and
negative mode (data it forbids), and sends them to a broker served by uvicorn on a free port.

Checks, and why these:
- `not_a_server_error`: no 5xx, no unparseable answer. One 5xx is the right answer and is let
  through: 503 LdContextNotAvailable for a generated remote `@context` URL, since the broker
  must not fetch it (it runs offline, as configured here).
- `response_schema_conformance`: a body must match the schema the OpenAPI gives for its status
  (ProblemDetails, entities, subscriptions, batch results). Two defects of the file are
  corrected in memory: `BatchOperationResult` requires `error`, where its own properties and the
  specification's text name the member `errors`; `Subscription` is `oneOf` OnChange and
  Periodic, and Periodic does not require its `timeInterval`, so that every subscription with
  `entities` matches both and no valid subscription passes. Only normalized answers are checked:
  the file has no schema for the keyValues and concise representations (`options=`, `format=`).
- `content_type_conformance` and `response_headers_conformance`: the media type and the declared
  headers (such as `Location` of a create) of documented answers.
Not used: `status_code_conformance` (the file lists only some of the statuses NGSI-LD defines:
415, 406, 413, 422 OperationNotSupported, 404 NonexistentTenant and 503 are missing),
`positive_data_acceptance` and `negative_data_rejection` (the schemas accept what NGSI-LD
refuses, such as attributes without a type, and forbid what it allows), and the stateful checks
(the file declares no links between operations).

To reach past the first validation, half of the cases get known values where random ones would
end early: existing entity and subscription ids in the path, the core @context instead of a
random remote one, a loopback notification endpoint. Notifications may go to 127.0.0.1 only.

Bounded for CI by `SCHEMATHESIS_MAX_EXAMPLES` (examples per operation and mode, default 4);
raise it for a long run by hand, e.g. `SCHEMATHESIS_MAX_EXAMPLES=300 pytest -n 2 <this file>`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.core.errors import UnsupportedSchema
from schemathesis.generation import GenerationMode

from tests.broker.conftest import RunningBroker, start_broker

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "4"))
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
CORE_LINK = f'<{CORE}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
ENDPOINT = "http://127.0.0.1:9/notify"

OPERATIONS = (
    "POST /entities",
    "GET /entities",
    "GET /entities/{entityId}",
    "PUT /entities/{entityId}",
    "PATCH /entities/{entityId}",
    "DELETE /entities/{entityId}",
    "POST /entities/{entityId}/attrs",
    "PATCH /entities/{entityId}/attrs",
    "PUT /entities/{entityId}/attrs/{attrId}",
    "PATCH /entities/{entityId}/attrs/{attrId}",
    "DELETE /entities/{entityId}/attrs/{attrId}",
    "POST /entityOperations/create",
    "POST /entityOperations/upsert",
    "POST /entityOperations/update",
    "POST /entityOperations/delete",
    "POST /entityOperations/merge",
    "POST /entityOperations/query",
    "POST /subscriptions",
    "GET /subscriptions",
    "GET /subscriptions/{subscriptionId}",
    "PATCH /subscriptions/{subscriptionId}",
    "DELETE /subscriptions/{subscriptionId}",
)

ENTITY_IDS = [f"urn:ngsi-ld:Sensor:{n}" for n in range(1, 4)]
SUBSCRIPTION_IDS = ["urn:ngsi-ld:Subscription:known-1", "urn:ngsi-ld:Subscription:known-2"]
PATH_VALUES = {
    "entityId": st.sampled_from(ENTITY_IDS)
    | st.from_regex(r"urn:ngsi-ld:[A-Za-z]{1,8}:[A-Za-z0-9._~-]{1,12}", fullmatch=True),
    "subscriptionId": st.sampled_from(SUBSCRIPTION_IDS)
    | st.from_regex(r"urn:ngsi-ld:Subscription:[A-Za-z0-9._~-]{1,12}", fullmatch=True),
    "attrId": st.sampled_from(["temperature", "name", "location"])
    | st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,10}", fullmatch=True),
}


def seed_entity(entity_id: str) -> dict[str, Any]:
    return {
        "id": entity_id,
        "type": "Sensor",
        "temperature": {"type": "Property", "value": 20.5, "unitCode": "CEL"},
        "name": {"type": "Property", "value": "Sensor"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [6.8, 51.2]}},
    }


@pytest.fixture(scope="module")
def api_schema(shared_dir: Path) -> Any:
    """The official OpenAPI, with `BatchOperationResult` and `Subscription.Periodic` corrected
    (see the module documentation)."""
    raw = yaml.safe_load(
        (shared_dir / "ngsi-ld" / "openapi" / "ngsi-ld-api-v1.6.1.yaml").read_text("utf-8")
    )
    result = raw["components"]["schemas"]["BatchOperationResult"]
    assert "errors" in result["properties"]
    assert "error" in result["required"]
    result["required"] = ["success", "errors"]
    periodic = raw["components"]["schemas"]["Subscription.Periodic"]["allOf"]
    assert {"required": ["entities"]} in periodic
    periodic[periodic.index({"required": ["entities"]})] = {
        "required": ["entities", "timeInterval"]
    }
    return schemathesis.openapi.from_dict(raw)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    with start_broker(
        tmp_path_factory.mktemp("schemathesis"), notification_allow_hosts=["127.0.0.1"]
    ) as running:
        with httpx.Client(base_url=running.api, timeout=10) as http:
            for entity_id in ENTITY_IDS:
                assert http.post("/entities", json=seed_entity(entity_id)).status_code == 201
            for subscription_id in SUBSCRIPTION_IDS:
                created = http.post(
                    "/subscriptions",
                    json={
                        "id": subscription_id,
                        "type": "Subscription",
                        "entities": [{"type": "Sensor"}],
                        "notification": {"endpoint": {"uri": ENDPOINT}},
                    },
                )
                assert created.status_code == 201, created.text
        yield running


def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' `not_a_server_error`, letting 503 LdContextNotAvailable through."""
    if response.status_code == 503:
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if isinstance(problem, dict) and str(problem.get("type", "")).endswith(
            "/LdContextNotAvailable"
        ):
            return None
    return checks.not_a_server_error(ctx, response, case)


def _simplified(case: Any) -> bool:
    query = case.query or {}
    asked = ",".join(str(query.get(name) or "") for name in ("options", "format"))
    return any(word in asked for word in ("keyValues", "concise", "simplified"))


def normalized_schema_conformance(ctx: Any, response: Any, case: Any) -> bool | None:
    """`response_schema_conformance` for answers in the normalized representation."""
    if _simplified(case):
        return None
    outcome: bool | None = checks.response_schema_conformance(ctx, response, case)
    return outcome


CHECKS = [
    no_server_error,
    normalized_schema_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
]


def deepen(case: Any, data: st.DataObject) -> None:
    """Known values in place of random ones in about half of the places that would otherwise
    stop a request at the first check (see the module documentation)."""
    known = st.booleans()
    body = case.body
    items = body if isinstance(body, list) else [body]
    for item in items:
        if not isinstance(item, dict):
            continue
        if "@context" in item and data.draw(known):
            item["@context"] = CORE
        notification = item.get("notification")
        if isinstance(notification, dict) and data.draw(known):
            endpoint = notification.get("endpoint")
            if isinstance(endpoint, dict):
                endpoint["uri"] = ENDPOINT
    headers = case.headers
    if isinstance(headers, dict) and "Link" in headers and data.draw(known):
        headers["Link"] = CORE_LINK


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("label", OPERATIONS)
def test_no_server_error_and_well_formed_answers(
    label: str, mode: GenerationMode, api_schema: Any, served: RunningBroker
) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    names = re.findall(r"{(\w+)}", label)
    # Path values come from PATH_VALUES: the schema's `format: uri` ids would need '/'.
    strategy = operation.as_strategy(mode, path_parameters=dict.fromkeys(names, "x") or None)

    @given(data=st.data())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(data: st.DataObject) -> None:
        try:
            case = data.draw(strategy)
        except UnsupportedSchema:
            # Negative mode cannot negate some parts of these schemas; those draws are skipped.
            reject()
        for name in names:
            case.path_parameters[name] = data.draw(PATH_VALUES[name])
        deepen(case, data)
        case.call_and_validate(base_url=served.api, checks=CHECKS)

    run()
