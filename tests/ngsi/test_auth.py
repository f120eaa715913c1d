"""Authentication: static bearer tokens and OAuth2 client credentials, on both faces."""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx
import pytest

from ngsi._auth import AuthenticationError, BearerToken, OAuth2ClientCredentials
from ngsi._client import AsyncClient
from ngsi._errors import NgsiApiError
from tests.ngsi.test_client_support import FAST_RETRIES, FakeBroker, faces, json_response

face = faces()

TOKEN_URL = "http://keycloak:8080/realms/city/protocol/openid-connect/token"
SECRET = "s3cr3t-Value"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TokenServer:
    """A token endpoint and a broker behind one handler; the broker accepts only `valid` tokens."""

    def __init__(self, *, expires_in: int | None = 300) -> None:
        self.issued = 0
        self.expires_in = expires_in
        self.valid: set[str] = set()
        self.token_requests: list[httpx.Request] = []
        self.broker_requests: list[httpx.Request] = []
        self.broker_tokens: list[str | None] = []  # as sent: a retried request is one object

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        if str(request.url) == TOKEN_URL:
            self.token_requests.append(request)
            self.issued += 1
            token = f"token-{self.issued}"
            self.valid.add(token)
            body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
            return json_response(200, body)
        self.broker_requests.append(request)
        self.broker_tokens.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.valid:
            return httpx.Response(401, headers={"WWW-Authenticate": "Bearer"})
        return json_response(200, [])


def oauth(clock: Clock | None = None, **kwargs: Any) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        TOKEN_URL,
        "drehscheibe-agent",
        SECRET,
        scope="ngsi-ld:write",
        clock=clock or Clock(),
        **kwargs,
    )


@pytest.mark.anyio
async def test_a_static_bearer_token_goes_with_every_request(face: Any) -> None:
    broker = FakeBroker(lambda r: json_response(200, []))
    client = face(broker, auth="abc.def")

    await client.query(type="T")

    assert broker.last.headers["Authorization"] == "Bearer abc.def"
    assert "abc.def" not in repr(BearerToken("abc.def"))
    with pytest.raises(ValueError, match="empty"):
        BearerToken("")


@pytest.mark.anyio
async def test_the_token_is_fetched_lazily_and_cached(face: Any) -> None:
    server = TokenServer()
    client = face(server, auth=oauth())
    assert server.token_requests == []

    for _ in range(3):
        await client.query(type="T")

    [token_request] = server.token_requests
    assert token_request.method == "POST"
    assert parse_qs(token_request.content.decode()) == {
        "grant_type": ["client_credentials"],
        "scope": ["ngsi-ld:write"],
    }
    assert token_request.extensions["timeout"]["read"] == 10.0
    basic = base64.b64decode(token_request.headers["Authorization"].removeprefix("Basic "))
    assert basic.decode() == f"drehscheibe-agent:{SECRET}"
    assert server.broker_tokens == ["Bearer token-1"] * 3


@pytest.mark.anyio
async def test_the_token_is_refreshed_shortly_before_it_expires(face: Any) -> None:
    server = TokenServer(expires_in=300)
    clock = Clock()
    client = face(server, auth=oauth(clock, refresh_margin=30))

    await client.query(type="T")
    clock.now += 269
    await client.query(type="T")
    clock.now += 2  # 271 s: within 30 s of the expiry
    await client.query(type="T")

    assert server.issued == 2
    tokens = server.broker_tokens
    assert tokens == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]


@pytest.mark.anyio
async def test_a_401_fetches_a_new_token_once_and_repeats_the_request(face: Any) -> None:
    server = TokenServer(expires_in=None)
    client = face(server, auth=oauth())
    await client.query(type="T")

    server.valid.clear()  # the broker revoked the token
    assert await client.query(type="T") == []

    assert server.issued == 2
    tokens = server.broker_tokens
    assert tokens == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]


@pytest.mark.anyio
async def test_a_second_401_is_raised_without_looping(face: Any) -> None:
    server = TokenServer()
    server.valid = set()

    def deny(request: httpx.Request) -> httpx.Response:
        response = server(request)
        server.valid.clear()
        return response

    client = face(deny, auth=oauth())

    with pytest.raises(NgsiApiError) as caught:
        await client.query(type="T")

    assert caught.value.status_code == 401
    assert server.issued == 2
    assert len(server.broker_requests) == 2


@pytest.mark.anyio
async def test_a_refusal_of_the_token_endpoint_is_an_authentication_error(
    face: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            return json_response(
                401, {"error": "invalid_client", "error_description": "bad secret"}
            )
        return json_response(200, [])

    broker = FakeBroker(refuse)
    credentials = oauth()
    client = face(broker, auth=credentials)

    with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationError) as caught:
        await client.query(type="T")

    message = str(caught.value)
    assert "invalid_client" in message
    assert "bad secret" in message
    assert "drehscheibe-agent" in message
    assert caught.value.status_code == 401
    assert SECRET not in message
    assert SECRET not in repr(credentials)
    assert SECRET not in caplog.text
    assert len(broker.requests) == 1  # not retried: credentials do not heal


@pytest.mark.anyio
async def test_credentials_may_go_in_the_form_body(face: Any) -> None:
    server = TokenServer()
    client = face(server, auth=oauth(credentials_in="body"))

    await client.query(type="T")

    [token_request] = server.token_requests
    assert "Authorization" not in token_request.headers
    form = parse_qs(token_request.content.decode())
    assert form["client_id"] == ["drehscheibe-agent"]
    assert form["client_secret"] == [SECRET]


@pytest.mark.anyio
async def test_a_token_answer_without_access_token_is_refused(face: Any) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return json_response(200, {"token_type": "Bearer"})

    client = face(answer, auth=oauth())
    with pytest.raises(AuthenticationError, match="without an access_token"):
        await client.query(type="T")


@pytest.mark.anyio
async def test_concurrent_async_requests_share_one_token_fetch() -> None:
    server = TokenServer()
    client = AsyncClient(transport=httpx.MockTransport(server), auth=oauth(), retries=FAST_RETRIES)

    async with client, anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(client.query)

    assert server.issued == 1
    assert len(server.broker_requests) == 5
