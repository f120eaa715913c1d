"""Authentication for the NGSI-LD client, as httpx `Auth` flows usable by both client faces.

* `BearerToken`: a static token, sent as `Authorization: Bearer ...`.
* `OAuth2ClientCredentials`: the OAuth2 client-credentials grant (RFC 6749, 4.4) against a
  token endpoint such as Keycloak's. The token is fetched on first use, cached until shortly
  before it expires, fetched again then, and once more when the broker answers 401 (revoked or
  rotated token). Concurrent requests share one fetch.

Secrets (tokens, client secrets) never appear in reprs, exception messages or logs.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Literal
from urllib.parse import quote, urlencode

import anyio
import httpx
import orjson

from ngsi._errors import NgsiError

__all__ = ["AuthenticationError", "BearerToken", "OAuth2ClientCredentials"]


class AuthenticationError(NgsiError):
    """The token endpoint refused the client's credentials or answered something unusable."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request: httpx.Request | None = None,
    ) -> None:
        super().__init__(message, request=request)
        self.status_code = status


class BearerToken(httpx.Auth):
    """A static bearer token, sent with every request."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("a bearer token must not be empty")
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerToken(token='***')"


class OAuth2ClientCredentials(httpx.Auth):
    """OAuth2 client credentials: a token from `token_url`, refreshed on expiry and on a 401.

    `refresh_margin` seconds before the announced expiry (`expires_in`) the token counts as
    expired, so that no request leaves with a token that dies on the way; for short-lived tokens
    the margin is at most half their lifetime. A token endpoint that announces no expiry gives a
    token that is kept until the broker answers 401. The client authenticates at the token
    endpoint with HTTP Basic (`credentials_in="basic"`, the RFC's recommendation) or with
    `client_id`/`client_secret` form fields (`"body"`); a token request waits at most `timeout`
    seconds. A refusal raises `AuthenticationError`.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        audience: str | None = None,
        refresh_margin: float = 30.0,
        credentials_in: Literal["basic", "body"] = "basic",
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not token_url or not client_id:
            raise ValueError("OAuth2 client credentials need a token URL and a client id")
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.audience = audience
        self.refresh_margin = refresh_margin
        self.credentials_in = credentials_in
        self.timeout = httpx.Timeout(timeout)
        self._clock = clock
        self._token: str | None = None
        self._expires_at: float | None = None
        self._thread_lock = threading.Lock()
        self._async_lock: anyio.Lock | None = None
        self.fetches = 0
        """How many tokens were fetched so far (for health reports and tests)."""

    def __repr__(self) -> str:
        return (
            f"OAuth2ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"scope={self.scope!r}, client_secret='***')"
        )

    def invalidate(self) -> None:
        """Forget the cached token; the next request fetches a new one."""
        self._token = None
        self._expires_at = None

    # The flows -------------------------------------------------------------------------------

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._valid_token()
        if token is None:
            with self._thread_lock:
                token = self._valid_token()
                if token is None:
                    response = yield self._token_request()
                    response.read()
                    token = self._store(response)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        with self._thread_lock:
            current = self._valid_token()
            if current is None or current == token:
                self.invalidate()
                token_response = yield self._token_request()
                token_response.read()
                current = self._store(token_response)
        response.read()
        request.headers["Authorization"] = f"Bearer {current}"
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._async_lock is None:
            self._async_lock = anyio.Lock()
        lock = self._async_lock
        token = self._valid_token()
        if token is None:
            async with lock:
                token = self._valid_token()
                if token is None:
                    response = yield self._token_request()
                    await response.aread()
                    token = self._store(response)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        async with lock:
            current = self._valid_token()
            if current is None or current == token:
                self.invalidate()
                token_response = yield self._token_request()
                await token_response.aread()
                current = self._store(token_response)
        await response.aread()
        request.headers["Authorization"] = f"Bearer {current}"
        yield request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # Used only by callers that drive the generic flow themselves.
        return self.sync_auth_flow(request)

    # Token handling --------------------------------------------------------------------------

    def _valid_token(self) -> str | None:
        if self._token is None:
            return None
        if self._expires_at is not None and self._clock() >= self._expires_at:
            return None
        return self._token

    def _token_request(self) -> httpx.Request:
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.audience:
            form["audience"] = self.audience
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        if self.credentials_in == "basic":
            # RFC 6749, 2.3.1: both parts are form-urlencoded before Basic encoding.
            pair = f"{quote(self.client_id, safe='')}:{quote(self._client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:
            form["client_id"] = self.client_id
            form["client_secret"] = self._client_secret
        return httpx.Request(
            "POST",
            self.token_url,
            headers=headers,
            content=urlencode(form),
            extensions={"timeout": self.timeout.as_dict()},
        )

    def _store(self, response: httpx.Response) -> str:
        where = f"token endpoint {self.token_url} for client {self.client_id!r}"
        body: Any
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            body = None
        if not response.is_success:
            reason = ""
            if isinstance(body, dict):
                parts = [str(body[key]) for key in ("error", "error_description") if key in body]
                reason = ": " + " - ".join(parts) if parts else ""
            raise AuthenticationError(
                f"{where} answered {response.status_code}{reason}",
                status=response.status_code,
                request=response.request,
            )
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthenticationError(
                f"{where} answered {response.status_code} without an access_token",
                status=response.status_code,
                request=response.request,
            )
        token_type = body.get("token_type", "Bearer")
        if isinstance(token_type, str) and token_type.lower() != "bearer":
            raise AuthenticationError(
                f"{where} issued a {token_type!r} token; only bearer tokens are supported",
                status=response.status_code,
                request=response.request,
            )
        expires_in = body.get("expires_in")
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            margin = min(self.refresh_margin, expires_in / 2)
            self._expires_at = self._clock() + expires_in - margin
        else:
            self._expires_at = None
        self._token = token
        self.fetches += 1
        return token
