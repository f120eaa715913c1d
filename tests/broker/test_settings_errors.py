"""The HTTP-level rejections of the broker (the API key and body limit from the settings, and
405, 406, 415) are ProblemDetails that `ngsi.error_from_problem` maps back to the shared error
classes, by type and, for a body without an NGSI-LD type, by status."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ngsi._errors import (
    ERROR_TYPE_BASE,
    BadRequestData,
    Forbidden,
    MethodNotAllowed,
    NgsiApiError,
    NotAcceptable,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    error_from_problem,
)
from tests.broker.conftest import start_broker

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with (
        start_broker(tmp_path_factory.mktemp("data"), api_key=KEY, max_body_bytes=2048) as running,
        httpx.Client(base_url=running.api, timeout=10, headers={"X-API-Key": KEY}) as client,
    ):
        yield client


def mapped(response: httpx.Response) -> NgsiApiError:
    body = response.json()
    assert response.headers["content-type"].startswith("application/json")
    assert body["type"].startswith(ERROR_TYPE_BASE)
    assert body["status"] == response.status_code
    return error_from_problem(body, response.status_code)


def test_missing_api_key_is_401_unauthorized(api: httpx.Client) -> None:
    response = api.get("/entities", params={"type": "T"}, headers={"X-API-Key": ""})
    assert response.status_code == 401
    assert isinstance(mapped(response), Unauthorized)


def test_body_over_the_limit_is_413_payload_too_large(api: httpx.Client) -> None:
    big = {"id": "urn:ngsi-ld:T:big", "type": "T", "p": {"type": "Property", "value": "x" * 4096}}
    response = api.post("/entities", json=big)
    assert response.status_code == 413
    error = mapped(response)
    assert isinstance(error, PayloadTooLarge)
    assert error.status_code == 413


def test_wrong_method_is_405_method_not_allowed(api: httpx.Client) -> None:
    response = api.put("/subscriptions", json={})
    assert response.status_code == 405
    assert isinstance(mapped(response), MethodNotAllowed)
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


def test_unacceptable_accept_is_406_not_acceptable(api: httpx.Client) -> None:
    response = api.get("/entities", params={"type": "T"}, headers={"Accept": "text/csv"})
    assert response.status_code == 406
    assert isinstance(mapped(response), NotAcceptable)


def test_wrong_content_type_is_415_unsupported_media_type(api: httpx.Client) -> None:
    response = api.post(
        "/subscriptions", content=b"<subscription/>", headers={"Content-Type": "application/xml"}
    )
    assert response.status_code == 415
    assert isinstance(mapped(response), UnsupportedMediaType)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, Unauthorized),
        (403, Forbidden),
        (405, MethodNotAllowed),
        (406, NotAcceptable),
        (413, PayloadTooLarge),
        (415, UnsupportedMediaType),
    ],
)
def test_other_brokers_bodies_map_by_status(status: int, expected: type[NgsiApiError]) -> None:
    for body in (None, {"title": "nope"}, {"type": "about:blank", "detail": "nope"}):
        error = error_from_problem(body, status)
        assert type(error) is expected, body
        assert error.status_code == status


def test_the_type_wins_over_the_status() -> None:
    body = {"type": ERROR_TYPE_BASE + "BadRequestData", "detail": "limit"}
    assert isinstance(error_from_problem(body, 413), BadRequestData)


def test_rendered_classes_carry_their_type_and_title() -> None:
    for cls in (MethodNotAllowed, NotAcceptable, PayloadTooLarge, UnsupportedMediaType):
        problem = cls("why").to_problem()
        assert problem["type"] == ERROR_TYPE_BASE + cls.error_name
        assert problem["status"] == cls.status
        assert problem["title"]
        assert problem["detail"] == "why"
