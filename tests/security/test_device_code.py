"""The device authorization grant (RFC 8628) for people: the code is shown, the token endpoint
polled as the issuer asks, the token refreshed, and kept between runs. The issuer is a handler in
the test (its tokens are JWTs signed with the test's keys); the broker is real, over HTTP."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx
import pytest

from ngsi import Client
from ngsi._auth import AuthenticationError, DeviceCode, OAuth2DeviceCode
from tests.security.conftest import Issuer, secured_broker, trusting

REALM = "http://keycloak.city.example/realms/drehscheibe/protocol/openid-connect"
DEVICE_URL = f"{REALM}/auth/device"
TOKEN_URL = f"{REALM}/token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class DeviceIssuer:
    """Keycloak's device and token endpoints: `answers` is what the polls get, in order, before
    the person confirms (`authorization_pending`, `slow_down`, `access_denied`...)."""

    def __init__(self, issuer: Issuer, *, answers: list[str], interval: int = 5) -> None:
        self.issuer = issuer
        self.answers = list(answers)
        self.interval = interval
        self.forms: list[dict[str, str]] = []
        self.refresh_ok = True
        self.issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.forms.append(form)
        if str(request.url) == DEVICE_URL:
            return httpx.Response(
                200,
                json={
                    "device_code": "dev-code-secret",
                    "user_code": "WDJB-MJHT",
                    "verification_uri": "https://keycloak.city.example/realms/x/device",
                    "verification_uri_complete": "https://keycloak.city.example/x?c=WDJB-MJHT",
                    "expires_in": 600,
                    "interval": self.interval,
                },
            )
        assert str(request.url) == TOKEN_URL
        if form["grant_type"] == "refresh_token":
            if not self.refresh_ok:
                return httpx.Response(400, json={"error": "invalid_grant"})
            return self.tokens()
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:device_code"
        assert form["device_code"] == "dev-code-secret"
        if self.answers:
            return httpx.Response(400, json={"error": self.answers.pop(0)})
        return self.tokens()

    def tokens(self) -> httpx.Response:
        self.issued += 1
        return httpx.Response(
            200,
            json={
                "access_token": self.issuer.token(["tenant:planning:read"]),
                "token_type": "Bearer",
                "expires_in": 300,
                "refresh_token": f"refresh-{self.issued}",
            },
        )


class Routing(httpx.BaseTransport):
    """The issuer's host to the handler, everything else over real HTTP."""

    def __init__(self, issuer: DeviceIssuer) -> None:
        self.issuer = httpx.MockTransport(issuer)
        self.real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "keycloak.city.example":
            return self.issuer.handle_request(request)
        return self.real.handle_request(request)

    def close(self) -> None:
        self.real.close()


def device_auth(clock: Clock, shown: list[DeviceCode], **options: Any) -> OAuth2DeviceCode:
    return OAuth2DeviceCode(
        DEVICE_URL,
        TOKEN_URL,
        "drehscheibe-cli",
        prompt=shown.append,
        clock=clock,
        sleep=clock.sleep,
        **options,
    )


def test_a_person_signs_in_with_a_code_and_reads_their_tenant(
    tmp_path: Path, issuer: Issuer
) -> None:
    fake = DeviceIssuer(issuer, answers=["authorization_pending", "slow_down"])
    clock, shown = Clock(), []
    auth = device_auth(clock, shown, scope="openid")
    with (
        secured_broker(tmp_path / "data", trusting(issuer, tmp_path)) as running,
        Client(running.url, tenant="planning", auth=auth, transport=Routing(fake)) as client,
    ):
        assert client.count(type="Anything") == 0
        assert [c.user_code for c in shown] == ["WDJB-MJHT"]
        assert clock.slept == [5.0, 5.0, 10.0]  # the interval, then 5 s more after slow_down
        assert fake.forms[0] == {"client_id": "drehscheibe-cli", "scope": "openid"}
        assert auth.logins == 1
        # Shortly before the token expires the refresh token gets the next one: no new code.
        clock.now += 290
        assert client.count(type="Anything") == 0
        assert auth.refreshes == 1
        assert len(shown) == 1
        # A refresh token the issuer no longer accepts means signing in again.
        fake.refresh_ok = False
        clock.now += 290
        assert client.count(type="Anything") == 0
        assert len(shown) == 2
        assert auth.logins == 2
    assert "dev-code-secret" not in repr(auth)
    assert "refresh" not in repr(auth)


@pytest.mark.parametrize(
    ("answer", "message"),
    [("access_denied", "declined"), ("expired_token", "expired"), ("invalid_client", "400")],
)
def test_a_declined_or_expired_sign_in_is_an_authentication_error(
    issuer: Issuer, answer: str, message: str
) -> None:
    fake = DeviceIssuer(issuer, answers=["authorization_pending", answer])
    clock, shown = Clock(), []
    auth = device_auth(clock, shown)
    with pytest.raises(AuthenticationError, match=message):
        auth.login(transport=httpx.MockTransport(fake))
    assert "dev-code-secret" not in str(shown)


def test_the_code_expires_when_nobody_confirms_it(issuer: Issuer) -> None:
    fake = DeviceIssuer(issuer, answers=["authorization_pending"] * 1000, interval=60)
    clock, shown = Clock(), []
    with pytest.raises(AuthenticationError, match="expired before it was confirmed"):
        device_auth(clock, shown).login(transport=httpx.MockTransport(fake))
    assert sum(clock.slept) <= 660


def test_the_refresh_token_is_kept_between_runs(tmp_path: Path, issuer: Issuer) -> None:
    fake = DeviceIssuer(issuer, answers=[])
    store = tmp_path / "tokens" / "drehscheibe.json"
    clock, shown = Clock(), []
    first = device_auth(clock, shown, token_file=store)
    first.login(transport=httpx.MockTransport(fake))
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert "refresh-1" in store.read_text()

    second = device_auth(clock, shown, token_file=store)
    assert second.signed_in
    second.login(transport=httpx.MockTransport(fake))
    assert len(shown) == 1  # no second code: the stored refresh token did it
    assert second.refreshes == 1
    assert "refresh-2" in store.read_text()

    second.logout()
    assert not store.exists()
    assert not second.signed_in


def test_the_async_face_signs_in_too(issuer: Issuer) -> None:
    fake = DeviceIssuer(issuer, answers=["authorization_pending"], interval=0)
    shown: list[DeviceCode] = []
    auth = OAuth2DeviceCode(DEVICE_URL, TOKEN_URL, "drehscheibe-cli", prompt=shown.append)

    def broker(request: httpx.Request) -> httpx.Response:
        if request.url.host == "keycloak.city.example":
            return fake(request)
        assert request.headers["Authorization"].startswith("Bearer ey")
        return httpx.Response(200, json=[])

    async def main() -> int:
        async with httpx.AsyncClient(transport=httpx.MockTransport(broker), auth=auth) as http:
            response = await http.get("http://broker.example/ngsi-ld/v1/entities?type=T")
            return response.status_code

    assert anyio.run(main) == 200
    assert auth.logins == 1
    assert len(shown) == 1
