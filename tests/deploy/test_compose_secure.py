"""The `secure` profile of `docker-compose.fiware.yml`: Keycloak and Kong in front of Orion-LD,
checked without a Docker engine: wiring, the realm file (roles for the three consumer kinds,
secrets from the env file), and Kong's configuration as the `kong-config` service writes it
(its own shell command, run here with a key made in the test)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ngsi.broker._auth import OPERATIONS, Grant, parse_grant
from tests.deploy.compose_support import Compose
from tests.deploy.stack import REPO, mounted, orion_service

SECURE = ("keycloak", "kong-config", "kong")
REALM_FILE = REPO / "deploy" / "keycloak" / "drehscheibe-realm.json"
KONG_TEMPLATE = REPO / "deploy" / "kong" / "kong.template.yml"
CONSUMER_KINDS = ("traffic", "environment", "planning")


@pytest.fixture(scope="module")
def realm() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(REALM_FILE.read_text(encoding="utf-8"))
    return document


def test_the_secure_profile_runs_keycloak_and_kong_in_front_of_orion_ld(compose: Compose) -> None:
    for name in SECURE:
        assert compose.service(name).profiles == ["secure"], name
    kong = compose.service("kong")
    assert kong.environment["KONG_DATABASE"] == "off"
    assert kong.environment["KONG_ADMIN_LISTEN"].startswith("127.0.0.1:")
    assert kong.depends_on["kong-config"]["condition"] == "service_completed_successfully"
    assert kong.depends_on[orion_service(compose).name]["condition"] == "service_healthy"
    assert compose.service("kong-config").depends_on["keycloak"]["condition"] == "service_healthy"
    keycloak = compose.service("keycloak")
    assert "--import-realm" in keycloak.argv()
    assert mounted(compose, keycloak, "/opt/keycloak/data/import/drehscheibe-realm.json") == (
        REALM_FILE
    )
    assert {p.published for p in kong.ports()} == {8000}


def test_the_realm_takes_its_secrets_from_the_environment(
    compose: Compose, realm: dict[str, Any]
) -> None:
    placeholders = set(re.findall(r"\$\{([A-Z0-9_]+)\}", REALM_FILE.read_text(encoding="utf-8")))
    assert placeholders
    environment = compose.service("keycloak").environment
    assert placeholders <= environment.keys()
    for name in placeholders:
        assert environment[name].startswith("test-"), f"{name} comes from the env file"
    for client in realm["clients"]:
        secret = client.get("secret")
        assert client["publicClient"] or re.fullmatch(r"\$\{[A-Z0-9_]+\}", secret or ""), client


def test_the_realm_has_a_role_for_each_consumer_kind(realm: dict[str, Any]) -> None:
    roles = {role["name"]: role for role in realm["roles"]["realm"]}
    grants = {name for name in roles if parse_grant(name) is not None}
    assert grants == {f"tenant:@default:{op}" for op in OPERATIONS if op != "admin"} | {
        "tenant:*:admin"
    }
    accounts = {user["serviceAccountClientId"]: user for user in realm["users"]}
    clients = {client["clientId"]: client for client in realm["clients"]}
    for kind in CONSUMER_KINDS:
        role = roles[f"consumer-{kind}"]
        composed = {parse_grant(name) for name in role["composites"]["realm"]}
        assert composed == {Grant("@default", "read"), Grant("@default", "subscribe")}, kind
        assert clients[kind]["serviceAccountsEnabled"] is True
        assert clients[kind]["standardFlowEnabled"] is False
        assert accounts[kind]["realmRoles"] == [f"consumer-{kind}"]
    cli = clients["drehscheibe-cli"]
    assert cli["publicClient"] is True
    assert cli["attributes"]["oauth2.device.authorization.grant.enabled"] == "true"
    # Every client's tokens name the audience the embedded broker checks.
    scope = next(s for s in realm["clientScopes"] if s["name"] == "ngsi-ld")
    mappers = {m["protocolMapper"]: m["config"] for m in scope["protocolMappers"]}
    assert mappers["oidc-audience-mapper"]["included.custom.audience"] == "ngsi-ld"
    # ... and carry the realm roles where the broker reads them.
    assert mappers["oidc-usermodel-realm-role-mapper"]["claim.name"] == "realm_access.roles"
    assert all("ngsi-ld" in c["defaultClientScopes"] for c in clients.values())


def kong_config(compose: Compose, tmp_path: Path) -> tuple[dict[str, Any], bytes]:
    """Run kong-config's command with the realm answer of a fake Keycloak; the written file
    and the public key (DER) it should hold."""
    if shutil.which("awk") is None:
        pytest.skip("no awk on this machine")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    answer = json.dumps({"realm": "drehscheibe", "public_key": base64.b64encode(der).decode()})
    service = compose.service("kong-config")
    script = service.spec["command"][0]
    curl = re.search(r"curl [^|]*\|", script)
    assert curl is not None
    script = script.replace(curl.group(), f"printf '%s' '{answer}' |")
    template = mounted(compose, service, "/etc/kong/kong.template.yml")
    assert template == KONG_TEMPLATE
    script = script.replace("/etc/kong/kong.template.yml", str(template))
    script = script.replace("/kong/kong.yml", f"{tmp_path}/kong.yml")
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    return yaml.safe_load((tmp_path / "kong.yml").read_text(encoding="utf-8")), der


def test_kong_checks_realm_tokens_and_gives_each_consumer_kind_its_groups(
    compose: Compose, realm: dict[str, Any], tmp_path: Path
) -> None:
    config, der = kong_config(compose, tmp_path)
    services = {s["name"]: s for s in config["services"]}
    orion = services["orion-ld"]
    assert orion["url"] == "http://orion:1026"
    plugins = {p["name"]: p["config"] for p in orion["plugins"]}
    assert plugins["jwt"]["key_claim_name"] == "azp"
    assert "exp" in plugins["jwt"]["claims_to_verify"]
    assert "NGSILD-Tenant" in plugins["request-transformer"]["remove"]["headers"]
    routes = {r["name"]: r for r in orion["routes"]}
    allowed = {name: r["plugins"][0]["config"]["allow"] for name, r in routes.items()}
    assert allowed == {
        "ngsi-read": ["ngsi-read"],
        "ngsi-query": ["ngsi-read"],
        "ngsi-write": ["ngsi-write"],
        "ngsi-subscriptions": ["ngsi-subscribe"],
    }
    # GET /subscriptions is the subscription route's (longer path, methods on both).
    assert "GET" in routes["ngsi-subscriptions"]["methods"]
    client_ids = {c["clientId"] for c in realm["clients"]}
    for consumer in config["consumers"]:
        (secret,) = consumer["jwt_secrets"]
        assert secret["key"] == consumer["username"]
        assert secret["key"] in client_ids
        assert secret["algorithm"] == "RS256"
        loaded = serialization.load_pem_public_key(secret["rsa_public_key"].encode())
        assert (
            loaded.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == der
        )
        groups = {acl["group"] for acl in consumer["acls"]}
        if consumer["username"] in CONSUMER_KINDS:
            assert groups == {"ngsi-read", "ngsi-subscribe"}, consumer["username"]
        else:
            assert groups == {"ngsi-read", "ngsi-write", "ngsi-subscribe"}
    assert {c["username"] for c in config["consumers"]} == client_ids
