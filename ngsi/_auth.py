"""Authentication for the NGSI-LD client, as httpx `Auth` flows usable by both client faces.

* `BearerToken`: a static token, sent as `Authorization: Bearer ...`.
* `OAuth2ClientCredentials`: the OAuth2 client-credentials grant (RFC 6749, 4.4) against a
  token endpoint such as Keycloak's. The token is fetched on first use, cached until shortly
  before it expires, fetched again then, and once more when the broker answers 401 (revoked or
  rotated token). Concurrent requests share one fetch.
* `OAuth2DeviceCode`: the device authorization grant (RFC 8628) for people at a terminal, then
  the refresh-token grant; the refresh token may be kept in a file between runs.

Secrets (tokens, client secrets) never appear in reprs, exception messages or logs.
"""

from __future__ import annotations

import base64
import os
import sys
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

import anyio
import httpx
import orjson

from ngsi._errors import NgsiError

__all__ = [
    "AuthenticationError",
    "BearerToken",
    "DeviceCode",
    "OAuth2ClientCredentials",
    "OAuth2DeviceCode",
    "print_device_code",
]


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


_Step = httpx.Request | float
"""A step of a token flow: a request to send, or seconds to wait."""


class _OAuth2Flow(httpx.Auth):
    """What the OAuth2 grants share: the cached access token with its expiry, one lock per
    client face so that concurrent requests share one fetch, and both flows (obtain a token
    when none is valid, send, and on a 401 obtain a new token once and send again).

    A grant supplies only `_obtain`, the steps to a new token, written once as a generator of
    `_Step` for both faces; the grant keeps its token with `_store`.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        *,
        scope: str | None,
        audience: str | None,
        refresh_margin: float,
        timeout: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.scope = scope
        self.audience = audience
        self.refresh_margin = refresh_margin
        self.timeout = httpx.Timeout(timeout)
        self._clock = clock
        self._sleep = sleep
        self._token: str | None = None
        self._expires_at: float | None = None
        self._thread_lock = threading.Lock()
        self._async_lock: anyio.Lock | None = None

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
                token = yield from self._run_sync(self._renewed(None))
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        with self._thread_lock:
            current = yield from self._run_sync(self._renewed(token))
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
        # An async generator cannot delegate to another, so the token steps are driven in one
        # place: a first round, and a second one only after a 401 (`refused`).
        refused: httpx.Response | None = None
        rejected: str | None = None
        while True:
            if token is None:
                async with lock:
                    steps = self._renewed(rejected)
                    reply: httpx.Response | None = None
                    while True:
                        try:
                            step = steps.send(reply)
                        except StopIteration as done:
                            token = done.value
                            break
                        if isinstance(step, float):
                            await anyio.sleep(step)
                            reply = None
                        else:
                            reply = yield step
                            await reply.aread()
            if refused is not None:
                await refused.aread()
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if response.status_code != 401 or refused is not None:
                return
            refused, rejected, token = response, token, None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # Used only by callers that drive the generic flow themselves.
        return self.sync_auth_flow(request)

    def _run_sync(
        self, flow: Generator[_Step, httpx.Response | None, str]
    ) -> Generator[httpx.Request, httpx.Response, str]:
        reply: httpx.Response | None = None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as done:
                token: str = done.value
                return token
            if isinstance(step, float):
                self._sleep(step)
                reply = None
            else:
                reply = yield step
                reply.read()

    def _renewed(self, rejected: str | None) -> Generator[_Step, httpx.Response | None, str]:
        """Steps to a valid token, to be taken under the lock: the cached one unless it is
        missing, expired or the `rejected` one the broker refused (then invalidated), else a new
        one (another request may have fetched it meanwhile)."""
        current = self._valid_token()
        if current is not None and current != rejected:
            return current
        if rejected is not None:
            self.invalidate()
        return (yield from self._obtain())

    def _obtain(self) -> Generator[_Step, httpx.Response | None, str]:
        """Steps to a new access token, kept with `_store`. Returns the token."""
        raise NotImplementedError

    # Token handling --------------------------------------------------------------------------

    def _valid_token(self) -> str | None:
        if self._token is None:
            return None
        if self._expires_at is not None and self._clock() >= self._expires_at:
            return None
        return self._token

    def _store(self, response: httpx.Response) -> str:
        where = f"token endpoint {self.token_url} for client {self.client_id!r}"
        token, expires_in, body = _token_answer(response, where)
        if expires_in is not None:
            margin = min(self.refresh_margin, expires_in / 2)
            self._expires_at = self._clock() + expires_in - margin
        else:
            self._expires_at = None
        self._token = token
        self._stored(body)
        return token

    def _stored(self, answer: dict[str, Any]) -> None:
        """Keep what else the token endpoint answered (nothing, unless a grant needs it)."""

    def _post(self, url: str, form: dict[str, str], *, secret: str | None) -> httpx.Request:
        """A form POST to an endpoint of the issuer; with `secret`, the client authenticates
        with HTTP Basic."""
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        if secret is not None:
            # RFC 6749, 2.3.1: both parts are form-urlencoded before Basic encoding.
            pair = f"{quote(self.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return httpx.Request(
            "POST",
            url,
            headers=headers,
            content=urlencode(form),
            extensions={"timeout": self.timeout.as_dict()},
        )


class OAuth2ClientCredentials(_OAuth2Flow):
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
        super().__init__(
            token_url,
            client_id,
            scope=scope,
            audience=audience,
            refresh_margin=refresh_margin,
            timeout=timeout,
            clock=clock,
        )
        self._client_secret = client_secret
        self.credentials_in = credentials_in
        self.fetches = 0
        """How many tokens were fetched so far (for health reports and tests)."""

    def __repr__(self) -> str:
        return (
            f"OAuth2ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"scope={self.scope!r}, client_secret='***')"
        )

    def _obtain(self) -> Generator[_Step, httpx.Response | None, str]:
        response = yield self._token_request()
        assert response is not None
        token = self._store(response)
        self.fetches += 1
        return token

    def _token_request(self) -> httpx.Request:
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.audience:
            form["audience"] = self.audience
        if self.credentials_in == "basic":
            return self._post(self.token_url, form, secret=self._client_secret)
        form["client_id"] = self.client_id
        form["client_secret"] = self._client_secret
        return self._post(self.token_url, form, secret=None)


def _json_body(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        return None


def _refusal(response: httpx.Response, where: str, body: Any) -> AuthenticationError:
    reason = ""
    if isinstance(body, dict):
        parts = [str(body[key]) for key in ("error", "error_description") if key in body]
        reason = ": " + " - ".join(parts) if parts else ""
    return AuthenticationError(
        f"{where} answered {response.status_code}{reason}",
        status=response.status_code,
        request=response.request,
    )


def _token_answer(response: httpx.Response, where: str) -> tuple[str, float | None, dict[str, Any]]:
    """The access token, its lifetime in seconds (None: not announced) and the whole answer of
    a token endpoint (RFC 6749, 5.1); AuthenticationError for a refusal or an unusable answer."""
    body = _json_body(response)
    if not response.is_success:
        raise _refusal(response, where, body)
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise AuthenticationError(
            f"{where} answered {response.status_code} without an access_token",
            status=response.status_code,
            request=response.request,
        )
    assert isinstance(body, dict)
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
        return token, float(expires_in), body
    return token, None, body


# The device authorization grant ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """What a person needs to confirm a device login (RFC 8628, 3.2): open `verification_uri`
    (or `verification_uri_complete`, which holds the code) and enter `user_code`, within
    `expires_in` seconds. The device code itself stays inside `OAuth2DeviceCode`."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float


def print_device_code(code: DeviceCode) -> None:
    """The default prompt: one line on standard error."""
    where = code.verification_uri_complete or code.verification_uri
    print(
        f"To sign in, open {where} and enter the code {code.user_code} "
        f"(valid for {code.expires_in / 60:.0f} min).",
        file=sys.stderr,
        flush=True,
    )


class OAuth2DeviceCode(_OAuth2Flow):
    """OAuth2 for people at a terminal: the device authorization grant (RFC 8628), then the
    refresh-token grant (RFC 6749, 6) for as long as the issuer allows.

    The first request that needs a token (or `login()`) asks `device_authorization_url` for a
    code, shows it with `prompt` (default: `print_device_code`, one line on stderr) and polls
    `token_url` every `interval` seconds the issuer names (5 s more after each `slow_down`) until
    the person confirmed, declined (`AuthenticationError`) or the code expired
    (`AuthenticationError`). Later tokens come from the refresh token, shortly before the access
    token expires (`refresh_margin`, as `OAuth2ClientCredentials`) and once more on a 401; a
    refused refresh token falls back to a new device login. A public client sends only
    `client_id`; a confidential one authenticates with `client_secret` (HTTP Basic).

    `token_file` keeps the refresh token between runs (a JSON file written with mode 0600, read
    at construction); without it each process logs in once. Concurrent requests share one
    login. Requests to the token endpoints wait at most `timeout` seconds each. Secrets (device
    code, tokens, client secret) never appear in reprs, messages or logs.

    Keycloak: `device_authorization_url` is
    `<issuer>/protocol/openid-connect/auth/device`, `token_url`
    `<issuer>/protocol/openid-connect/token`, and the client has "OAuth 2.0 Device Authorization
    Grant" enabled.
    """

    def __init__(
        self,
        device_authorization_url: str,
        token_url: str,
        client_id: str,
        *,
        client_secret: str | None = None,
        scope: str | None = None,
        audience: str | None = None,
        prompt: Callable[[DeviceCode], None] = print_device_code,
        token_file: str | os.PathLike[str] | None = None,
        refresh_margin: float = 30.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not device_authorization_url or not token_url or not client_id:
            raise ValueError(
                "the device authorization grant needs a device authorization URL, a token URL "
                "and a client id"
            )
        super().__init__(
            token_url,
            client_id,
            scope=scope,
            audience=audience,
            refresh_margin=refresh_margin,
            timeout=timeout,
            clock=clock,
            sleep=sleep,
        )
        self.device_authorization_url = device_authorization_url
        self._client_secret = client_secret
        self.prompt = prompt
        self.token_file = Path(token_file) if token_file is not None else None
        self._refresh_token: str | None = self._read_token_file()
        self.logins = 0
        """How many device logins were completed (for tests and health reports)."""
        self.refreshes = 0
        """How many tokens came from the refresh token."""

    def __repr__(self) -> str:
        return (
            f"OAuth2DeviceCode(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"scope={self.scope!r}, tokens='***')"
        )

    @property
    def signed_in(self) -> bool:
        """Whether a token or a refresh token is at hand (no device login needed)."""
        return self._valid_token() is not None or self._refresh_token is not None

    def invalidate(self) -> None:
        """Forget the access token (the refresh token is kept)."""
        super().invalidate()

    def logout(self) -> None:
        """Forget every token and delete `token_file`."""
        self.invalidate()
        self._refresh_token = None
        if self.token_file is not None:
            self.token_file.unlink(missing_ok=True)

    def login(self, *, transport: httpx.BaseTransport | None = None) -> None:
        """Obtain a token now (the device login unless a refresh token still works), with a
        client of its own; `transport` is for tests."""
        with self._thread_lock, httpx.Client(transport=transport) as client:
            self.invalidate()
            steps = self._run_sync(self._obtain())
            try:
                request = next(steps)
                while True:
                    request = steps.send(client.send(request))
            except StopIteration:
                return

    # The grant, written once as a generator of steps ----------------------------------------

    def _obtain(self) -> Generator[_Step, httpx.Response | None, str]:
        """Steps to a new access token: the refresh grant when a refresh token is at hand, else
        (or when it is refused) the device login. Returns the token."""
        if self._refresh_token is not None:
            response = yield self._token_request(
                {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
            )
            assert response is not None
            if response.is_success:
                token = self._store(response)
                self.refreshes += 1
                return token
            error = _json_body(response)
            if response.status_code >= 500 or not (
                isinstance(error, dict) and error.get("error") == "invalid_grant"
            ):
                raise _refusal(response, f"token endpoint {self.token_url} (refresh)", error)
            self._refresh_token = None  # expired or revoked: sign in again
        form = {"client_id": self.client_id}
        if self.scope:
            form["scope"] = self.scope
        if self.audience:
            form["audience"] = self.audience
        response = yield self._post(self.device_authorization_url, form, secret=self._client_secret)
        assert response is not None
        code, device_code = self._device_code(response)
        self.prompt(code)
        interval = code.interval
        deadline = self._clock() + code.expires_in
        while True:
            yield float(interval)
            if self._clock() > deadline:
                raise AuthenticationError(
                    f"the code {code.user_code} expired before it was confirmed at "
                    f"{code.verification_uri}; sign in again"
                )
            response = yield self._token_request(
                {
                    "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                    "device_code": device_code,
                }
            )
            assert response is not None
            if response.is_success:
                token = self._store(response)
                self.logins += 1
                return token
            body = _json_body(response)
            error = body.get("error") if isinstance(body, dict) else None
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                interval += 5
                continue
            if error == "access_denied":
                raise AuthenticationError(
                    f"the sign-in with code {code.user_code} was declined",
                    status=response.status_code,
                    request=response.request,
                )
            if error == "expired_token":
                raise AuthenticationError(
                    f"the code {code.user_code} expired before it was confirmed; sign in again",
                    status=response.status_code,
                    request=response.request,
                )
            raise _refusal(response, f"token endpoint {self.token_url}", body)

    def _device_code(self, response: httpx.Response) -> tuple[DeviceCode, str]:
        where = f"device authorization endpoint {self.device_authorization_url}"
        body = _json_body(response)
        if not response.is_success:
            raise _refusal(response, where, body)
        fields = body if isinstance(body, dict) else {}
        device_code = fields.get("device_code")
        user_code = fields.get("user_code")
        uri = fields.get("verification_uri") or fields.get("verification_url")
        if not all(isinstance(v, str) and v for v in (device_code, user_code, uri)):
            raise AuthenticationError(
                f"{where} answered without device_code, user_code and verification_uri",
                status=response.status_code,
                request=response.request,
            )
        assert isinstance(device_code, str)
        assert isinstance(user_code, str)
        assert isinstance(uri, str)
        complete = fields.get("verification_uri_complete")
        expires_in = fields.get("expires_in")
        interval = fields.get("interval", 5)
        return (
            DeviceCode(
                user_code=user_code,
                verification_uri=uri,
                verification_uri_complete=complete if isinstance(complete, str) else None,
                expires_in=float(expires_in) if isinstance(expires_in, int | float) else 600.0,
                interval=float(interval) if isinstance(interval, int | float) else 5.0,
            ),
            device_code,
        )

    def _token_request(self, form: dict[str, str]) -> httpx.Request:
        form = dict(form)
        if self._client_secret is None:
            form["client_id"] = self.client_id
        return self._post(self.token_url, form, secret=self._client_secret)

    # Token handling --------------------------------------------------------------------------

    def _stored(self, answer: dict[str, Any]) -> None:
        refresh = answer.get("refresh_token")
        if isinstance(refresh, str) and refresh and refresh != self._refresh_token:
            self._refresh_token = refresh
            self._write_token_file()

    def _read_token_file(self) -> str | None:
        if self.token_file is None:
            return None
        try:
            data = orjson.loads(self.token_file.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if not isinstance(data, dict) or data.get("client_id") != self.client_id:
            return None
        if data.get("token_url") != self.token_url:
            return None
        refresh = data.get("refresh_token")
        return refresh if isinstance(refresh, str) and refresh else None

    def _write_token_file(self) -> None:
        if self.token_file is None or self._refresh_token is None:
            return
        document = {
            "token_url": self.token_url,
            "client_id": self.client_id,
            "refresh_token": self._refresh_token,
        }
        self.token_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.token_file.with_name(self.token_file.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(orjson.dumps(document))
        os.replace(temporary, self.token_file)
