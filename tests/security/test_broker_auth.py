"""The broker's authentication and authorisation over real HTTP: JWTs signed with keys made in
the test, per-tenant and per-operation grants, API keys, anonymous access and the start rule."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from ngsi._errors import ERROR_TYPE_BASE, NgsiApiError
from ngsi.broker import BrokerSettings, create_app
from ngsi.broker._auth import (
    ApiKeyEntry,
    Authenticator,
    BrokerAuth,
    Grant,
    OAuth2Issuer,
    Principal,
    claim_grants,
    generate_api_key,
    hash_api_key,
    operation_for,
    parse_grant,
)
from ngsi.broker._routes import API_PREFIX
from tests.broker.conftest import RunningBroker
from tests.security.conftest import AUDIENCE, Issuer, bearer, secured_broker, trusting

TRAFFIC_KEY = generate_api_key()
ADMIN_KEY = generate_api_key()


def entity(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:{n}",
        "type": "TrafficFlowObserved",
        "intensity": {"type": "Property", "value": n},
        **extra,
    }


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, issuer: Issuer) -> Iterator[RunningBroker]:
    folder = tmp_path_factory.mktemp("secured")
    keys = [
        ApiKeyEntry(
            name="traffic-counter",
            sha256=hash_api_key(TRAFFIC_KEY),
            tenants=["traffic"],
            operations=["read"],
        ),
        ApiKeyEntry(
            name="ops", sha256=hash_api_key(ADMIN_KEY), tenants=["*"], operations=["admin"]
        ),
    ]
    with secured_broker(folder / "data", trusting(issuer, folder, api_keys=keys)) as running:
        for tenant in ("traffic", "environment"):  # tenants exist once written to
            seed = {"X-API-Key": ADMIN_KEY, "NGSILD-Tenant": tenant}
            seed_entity = [{"id": "urn:ngsi-ld:Seed:1", "type": "Seed"}]
            upsert = httpx.post(
                f"{running.api}/entityOperations/upsert", json=seed_entity, headers=seed
            )
            assert upsert.is_success, upsert.text
        yield running


@pytest.fixture
def http(broker: RunningBroker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.api, timeout=10) as client:
        yield client


def problem(response: httpx.Response, status: int, name: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == ERROR_TYPE_BASE + name
    assert body["status"] == status
    detail = body["detail"]
    assert isinstance(detail, str)
    return detail


# --- tenants and operations -------------------------------------------------------------------


def test_a_token_for_tenant_a_cannot_read_or_write_tenant_b(
    http: httpx.Client, issuer: Issuer
) -> None:
    token = issuer.token(["tenant:traffic:read", "tenant:traffic:write"])
    created = http.post("/entities", json=entity(1), headers=bearer(token, "traffic"))
    assert created.status_code == 201, created.text
    assert http.get(f"/entities/{entity(1)['id']}", headers=bearer(token, "traffic")).is_success

    admin = {"X-API-Key": ADMIN_KEY, "NGSILD-Tenant": "environment"}
    assert http.post("/entities", json=entity(2), headers=admin).status_code == 201

    for tenant in ("environment", None):
        read = http.get(
            "/entities", params={"type": "TrafficFlowObserved"}, headers=bearer(token, tenant)
        )
        detail = problem(read, 403, "Forbidden")
        assert "traffic-dashboard" in detail
        assert f"tenant:{tenant or '@default'}:read" in detail
        cached = http.get(f"/entities/{entity(2)['id']}", headers=bearer(token, tenant))
        problem(cached, 403, "Forbidden")
        write = http.post("/entities", json=entity(3), headers=bearer(token, tenant))
        problem(write, 403, "Forbidden")
    # Fiware-Service names the tenant too, as the broker reads it.
    legacy = {**bearer(token), "Fiware-Service": "environment"}
    problem(http.get(f"/entities/{entity(2)['id']}", headers=legacy), 403, "Forbidden")
    # Nothing was written to the other tenants.
    count = http.get(
        "/entities",
        params={"type": "TrafficFlowObserved", "count": "true", "limit": 0},
        headers=admin,
    )
    assert count.headers["NGSILD-Results-Count"] == "1"


def test_a_read_only_token_cannot_write(http: httpx.Client, issuer: Issuer) -> None:
    writer = issuer.token(["tenant:traffic:write"])
    reader = issuer.token(["tenant:traffic:read"])
    assert http.post("/entities", json=entity(10), headers=bearer(writer, "traffic")).is_success
    eid = entity(10)["id"]

    assert http.get(f"/entities/{eid}", headers=bearer(reader, "traffic")).status_code == 200
    query = http.post(
        "/entityOperations/query",
        json={"type": "Query", "entities": [{"type": "TrafficFlowObserved"}]},
        headers=bearer(reader, "traffic"),
    )
    assert query.status_code == 200, query.text
    patch = {"intensity": {"type": "Property", "value": 99}}
    attempts = [
        http.post("/entities", json=entity(11), headers=bearer(reader, "traffic")),
        http.patch(f"/entities/{eid}/attrs", json=patch, headers=bearer(reader, "traffic")),
        http.delete(f"/entities/{eid}", headers=bearer(reader, "traffic")),
        http.post("/entityOperations/upsert", json=[entity(12)], headers=bearer(reader, "traffic")),
        http.post(
            "/subscriptions",
            json={
                "type": "Subscription",
                "entities": [{"type": "TrafficFlowObserved"}],
                "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
            },
            headers=bearer(reader, "traffic"),
        ),
    ]
    for refused in attempts:
        detail = problem(refused, 403, "Forbidden")
        assert "may not" in detail
    kept = http.get(f"/entities/{eid}", headers=bearer(reader, "traffic")).json()
    assert kept["intensity"]["value"] == 10


def test_subscribe_and_admin_are_operations_of_their_own(
    http: httpx.Client, issuer: Issuer
) -> None:
    subscriber = issuer.token(["tenant:traffic:subscribe"])
    body = {
        "type": "Subscription",
        "entities": [{"type": "TrafficFlowObserved"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
    }
    made = http.post("/subscriptions", json=body, headers=bearer(subscriber, "traffic"))
    assert made.status_code == 201, made.text
    assert http.get("/subscriptions", headers=bearer(subscriber, "traffic")).status_code == 200
    problem(http.get("/entities/x", headers=bearer(subscriber, "traffic")), 403, "Forbidden")

    context = {"@context": {"speed": "https://example.org/speed"}}
    tenant_admin = issuer.token(["tenant:traffic:admin"])
    # @contexts are broker-wide: admin on one tenant is not enough.
    refused = http.post("/jsonldContexts", json=context, headers=bearer(tenant_admin, "traffic"))
    assert "tenant:*:admin" in problem(refused, 403, "Forbidden")
    # admin on a tenant includes its reads and writes.
    assert http.post("/entities", json=entity(20), headers=bearer(tenant_admin, "traffic"))
    everywhere = issuer.token(["tenant:*:admin"])
    assert http.post("/jsonldContexts", json=context, headers=bearer(everywhere)).status_code == 201


def test_keycloak_client_roles_scopes_keyrock_roles_and_es256(
    http: httpx.Client, issuer: Issuer
) -> None:
    client_roles = issuer.token(
        resource_access={AUDIENCE: {"roles": ["tenant:traffic:read"]}, "other": {"roles": []}}
    )
    scoped = issuer.token(scope="openid profile tenant:traffic:read")
    keyrock = issuer.token(roles=[{"id": "r1", "name": "tenant:traffic:read"}])
    elliptic = issuer.token(["tenant:traffic:read"], alg="ES256")
    for token in (client_roles, scoped, keyrock, elliptic):
        found = http.get(
            "/entities", params={"type": "TrafficFlowObserved"}, headers=bearer(token, "traffic")
        )
        assert found.status_code == 200, found.text
    # Roles of another client do not count.
    foreign = issuer.token(resource_access={"other": {"roles": ["tenant:traffic:read"]}})
    problem(http.get("/entities/x", headers=bearer(foreign, "traffic")), 403, "Forbidden")


# --- refused tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("expired", "expired"),
        ("wrong-issuer", "not trusted"),
        ("wrong-signature", "signature does not verify"),
        ("wrong-audience", "audience"),
        ("not-yet-valid", "not valid yet"),
        ("unknown-kid", "does not publish"),
        ("hs256", "signed with 'HS256'"),
        ("garbage", "not a readable JWT"),
        ("no-credentials", "credentials are needed"),
        ("basic", "Bearer"),
    ],
)
def test_bad_tokens_are_401_with_a_clear_problem(
    http: httpx.Client, issuer: Issuer, case: str, expected: str
) -> None:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    roles = ["tenant:traffic:read"]
    headers: dict[str, str]
    if case == "no-credentials":
        headers = {}
    elif case == "basic":
        headers = {"Authorization": "Basic dXNlcjpwYXNz"}
    else:
        token = {
            "expired": lambda: issuer.token(roles, expires_in=-120),
            "wrong-issuer": lambda: issuer.token(roles, iss="https://evil.example/realms/x"),
            "wrong-signature": lambda: issuer.token(
                roles, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
            ),
            "wrong-audience": lambda: issuer.token(roles, aud="account"),
            "not-yet-valid": lambda: issuer.token(roles, nbf=int(__import__("time").time()) + 600),
            "unknown-kid": lambda: issuer.token(roles, kid="rotated-away"),
            "hs256": lambda: jwt.encode(
                {"iss": issuer.iss, "aud": AUDIENCE, "exp": 2**31}, "k" * 32, algorithm="HS256"
            ),
            "garbage": lambda: "aaa.bbb.ccc",
        }[case]()
        headers = bearer(token)
    response = http.get(
        "/entities", params={"type": "T"}, headers={**headers, "NGSILD-Tenant": "traffic"}
    )
    detail = problem(response, 401, "Unauthorized")
    assert expected in detail
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_version_is_open(http: httpx.Client, broker: RunningBroker) -> None:
    assert httpx.get(broker.url + "/version").status_code == 200
    assert http.get("/entities", params={"type": "T"}).status_code == 401


# --- API keys ---------------------------------------------------------------------------------


def test_api_keys_have_tenants_and_operations(http: httpx.Client) -> None:
    admin = {"X-API-Key": ADMIN_KEY, "NGSILD-Tenant": "traffic"}
    assert http.post("/entityOperations/upsert", json=[entity(31)], headers=admin).is_success
    key = {"X-API-Key": TRAFFIC_KEY, "NGSILD-Tenant": "traffic"}
    assert http.get("/entities", params={"type": "T"}, headers=key).status_code == 200
    as_bearer = {"Authorization": f"Bearer {TRAFFIC_KEY}", "NGSILD-Tenant": "traffic"}
    assert http.get("/entities", params={"type": "T"}, headers=as_bearer).status_code == 200
    assert "traffic-counter" in problem(
        http.post("/entities", json=entity(30), headers=key), 403, "Forbidden"
    )
    other = {"X-API-Key": TRAFFIC_KEY, "NGSILD-Tenant": "environment"}
    problem(http.get("/entities", params={"type": "T"}, headers=other), 403, "Forbidden")
    wrong = {"X-API-Key": TRAFFIC_KEY + "x", "NGSILD-Tenant": "traffic"}
    assert "not valid" in problem(
        http.get("/entities", params={"type": "T"}, headers=wrong), 401, "Unauthorized"
    )


def test_api_key_entries_store_only_the_hash(tmp_path: Path) -> None:
    key = generate_api_key()
    assert len(key) >= 40
    file = tmp_path / "auth.yaml"
    file.write_text(
        "api_keys:\n"
        f"  - name: planning\n    sha256: {hash_api_key(key)}\n"
        "    tenants: ['planning', '@default']\n    operations: [read, subscribe]\n",
        encoding="utf-8",
    )
    auth = BrokerAuth.load(file)
    assert key not in file.read_text(encoding="utf-8")
    assert auth.api_keys[0].grants == {
        Grant("planning", "read"),
        Grant("planning", "subscribe"),
        Grant("@default", "read"),
        Grant("@default", "subscribe"),
    }
    with pytest.raises(ValueError, match="tenant"):
        ApiKeyEntry(name="x", sha256="0" * 64, tenants=["bad tenant!"], operations=["read"])


# --- anonymous access and the start rule --------------------------------------------------------


def test_a_broker_off_loopback_without_credentials_refuses_to_start(tmp_path: Path) -> None:
    settings = BrokerSettings(data_dir=tmp_path, host="0.0.0.0")
    with pytest.raises(ValueError, match="--allow-anonymous"):
        create_app(settings)
    create_app(BrokerSettings(data_dir=tmp_path, host="127.0.0.1"))
    create_app(BrokerSettings(data_dir=tmp_path, host="0.0.0.0", api_key="k" * 32))


def test_allow_anonymous_off_loopback_is_said_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ngsi.broker"):
        create_app(BrokerSettings(data_dir=tmp_path, host="192.0.2.10", allow_anonymous=True))
    assert any("ANONYMOUS ACCESS" in record.getMessage() for record in caplog.records)


def test_anonymous_reads_with_authenticated_writes(tmp_path: Path, issuer: Issuer) -> None:
    auth = trusting(issuer, tmp_path, anonymous=["read"])
    with (
        secured_broker(tmp_path / "data", auth, host="0.0.0.0", allow_anonymous=True) as running,
        httpx.Client(base_url=running.api, timeout=10) as http,
    ):
        assert http.get("/entities", params={"type": "T"}).status_code == 200
        problem(http.post("/entities", json=entity(40)), 403, "Forbidden")
        writer = issuer.token(["tenant:@default:write"])
        assert http.post("/entities", json=entity(40), headers=bearer(writer)).status_code == 201


def test_credentials_switch_anonymous_access_off_even_on_loopback(
    tmp_path: Path, issuer: Issuer
) -> None:
    with (
        secured_broker(tmp_path / "data", trusting(issuer, tmp_path)) as running,
        httpx.Client(base_url=running.api, timeout=10) as http,
    ):
        problem(http.get("/entities", params={"type": "T"}), 401, "Unauthorized")


# --- the operation of every route ---------------------------------------------------------------


def test_every_route_maps_to_one_operation(tmp_path: Path) -> None:
    app = create_app(BrokerSettings(data_dir=tmp_path))
    expected = {
        ("GET", "/entities"): "read",
        ("POST", "/entities"): "write",
        ("GET", "/entities/x"): "read",
        ("PATCH", "/entities/x"): "write",
        ("DELETE", "/entities/x/attrs/a"): "write",
        ("POST", "/entityOperations/upsert"): "write",
        ("POST", "/entityOperations/delete"): "write",
        ("POST", "/entityOperations/query"): "read",
        ("GET", "/types"): "read",
        ("GET", "/attributes/a"): "read",
        ("GET", "/temporal/entities"): "read",
        ("POST", "/temporal/entities"): "write",
        ("POST", "/temporal/entityOperations/query"): "read",
        ("DELETE", "/temporal/entities/x"): "write",
        ("GET", "/subscriptions"): "subscribe",
        ("POST", "/subscriptions"): "subscribe",
        ("DELETE", "/subscriptions/s"): "subscribe",
        ("GET", "/jsonldContexts"): "read",
        ("POST", "/jsonldContexts"): "admin",
        ("DELETE", "/jsonldContexts/c"): "admin",
        ("POST", "/somethingNew"): "admin",
    }
    for (method, path), operation in expected.items():
        found = operation_for(method, API_PREFIX + path)
        assert found is not None
        assert found[0] == operation, (method, path)
    assert operation_for("GET", "/version") is None
    assert operation_for("POST", "/version") == ("admin", True)
    # Every route the app serves is classified (nothing falls through unauthenticated).
    mount = next(r for r in app.routes if getattr(r, "path", "") == API_PREFIX)
    for route in mount.routes:  # type: ignore[attr-defined]
        path = API_PREFIX + route.path.replace("{entity_id}", "x").replace("{attr}", "a")
        for method in route.methods or ():
            assert operation_for(method, path) is not None, (method, path)


def test_grants_parse_and_cover() -> None:
    assert parse_grant("tenant:traffic:read") == Grant("traffic", "read")
    assert parse_grant("tenant:*:*") == Grant("*", "*")
    for text in ("offline_access", "tenant:traffic", "tenant::read", "tenant:a:delete", "x:a:read"):
        assert parse_grant(text) is None
    admin = Principal("token", "t", frozenset({Grant("traffic", "admin")}))
    assert admin.may("write", "traffic")
    assert not admin.may("read", "environment")
    assert not admin.may("admin", "traffic", broker_wide=True)
    claims = {
        "realm_access": {"roles": ["offline_access", "tenant:planning:read"]},
        "scope": "openid tenant:planning:subscribe",
    }
    assert claim_grants(claims, clients=[AUDIENCE]) == {
        Grant("planning", "read"),
        Grant("planning", "subscribe"),
    }


def test_keys_are_fetched_from_the_issuer_without_following_redirects(issuer: Issuer) -> None:
    fetched: list[str] = []

    def keycloak(request: httpx.Request) -> httpx.Response:
        fetched.append(request.url.path)
        if request.url.path == "/moved":
            return httpx.Response(302, headers={"Location": "http://keycloak.city.example/certs"})
        return httpx.Response(200, json=issuer.jwks())

    def authenticator(path: str) -> Authenticator:
        trusted = OAuth2Issuer(
            issuer=issuer.iss,
            audience=[AUDIENCE],
            jwks_url=f"http://keycloak.city.example{path}",
        )
        return Authenticator(BrokerAuth(oauth2=[trusted]), transport=httpx.MockTransport(keycloak))

    fetching = authenticator("/certs")
    token = issuer.token(["tenant:traffic:read"])
    for _ in range(3):
        principal = anyio.run(fetching.authenticate, {"authorization": f"Bearer {token}"})
        assert principal.may("read", "traffic")
    assert fetched == ["/certs"]  # kept, not fetched per request

    moved = authenticator("/moved")
    with pytest.raises(NgsiApiError) as raised:
        anyio.run(moved.authenticate, {"authorization": f"Bearer {token}"})
    assert raised.value.status_code == 503
    assert "could not be fetched" in str(raised.value)
    assert fetched[-1] == "/moved"


def test_the_cli_refuses_a_public_broker_without_credentials(tmp_path: Path) -> None:
    import subprocess
    import sys

    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "drehscheibe", "broker", "serve", "--data", str(tmp_path)]
        return subprocess.run(
            [*command, "--port", "1", *args], capture_output=True, text=True, timeout=60
        )

    refused = serve("--host", "0.0.0.0")
    assert refused.returncode == 2
    assert "--allow-anonymous" in refused.stderr
    assert "0.0.0.0" in refused.stderr
    bad = tmp_path / "auth.yaml"
    bad.write_text("api_keys:\n  - name: x\n    sha256: nothex\n", encoding="utf-8")
    invalid = serve("--host", "0.0.0.0", "--auth-file", str(bad))
    assert invalid.returncode == 2
    assert "sha256" in invalid.stderr


def test_the_auth_file_of_the_security_guide_loads(tmp_path: Path) -> None:
    from tests.conftest import REPO

    text = (REPO / "docs" / "security.md").read_text(encoding="utf-8")
    example = text.split("```\n", 2)[1]
    assert example.startswith("oauth2:")
    file = tmp_path / "auth.yaml"
    file.write_text(example, encoding="utf-8")
    auth = BrokerAuth.load(file)
    assert auth.oauth2[0].audience == ["ngsi-ld"]
    assert auth.api_keys[0].grants == {Grant("traffic", "write")}
    assert auth.anonymous == ["read"]


def test_a_validated_token_is_kept_only_until_it_expires(tmp_path: Path, issuer: Issuer) -> None:
    import time

    trusted = OAuth2Issuer(
        issuer=issuer.iss,
        audience=[AUDIENCE],
        jwks_file=issuer.write_jwks(tmp_path / "jwks.json"),
        leeway=0,
    )
    authenticator = Authenticator(BrokerAuth(oauth2=[trusted]))
    token = issuer.token(["tenant:traffic:read"], expires_in=1)
    headers = {"authorization": f"Bearer {token}"}
    first = anyio.run(authenticator.authenticate, headers)
    assert anyio.run(authenticator.authenticate, headers) is first  # kept, not validated again
    time.sleep(max(0.0, int(time.time()) + 2 - time.time()))
    with pytest.raises(NgsiApiError, match="expired"):
        anyio.run(authenticator.authenticate, headers)
