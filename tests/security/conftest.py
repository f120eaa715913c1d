"""Helpers for the security tests: a token issuer with keys made in the test, and a broker that
trusts it (served over real HTTP on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from ngsi.broker._auth import BrokerAuth, OAuth2Issuer
from tests.broker.conftest import RunningBroker, start_broker

ISSUER = "https://keycloak.city.example/realms/drehscheibe"
AUDIENCE = "ngsi-ld"


@dataclass
class Issuer:
    """Signs JWTs as Keycloak would: RS256 with kid `rsa-1`, or ES256 with kid `ec-1`."""

    iss: str = ISSUER
    rsa_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    ec_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec_key.public_key()))
        # An encryption key, as Keycloak publishes one too: never used for signatures.
        enc = dict(rsa_jwk, kid="enc-1", use="enc", alg="RSA-OAEP")
        return {
            "keys": [
                {**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"},
                enc,
            ]
        }

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()), encoding="utf-8")
        return path

    def token(
        self,
        roles: Sequence[str] = (),
        *,
        alg: str = "RS256",
        expires_in: float = 300,
        iss: str | None = None,
        aud: str | list[str] = AUDIENCE,
        kid: str | None = None,
        key: Any = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": iss or self.iss,
            "aud": aud,
            "sub": "3f1c0d7e",
            "preferred_username": "traffic-dashboard",
            "iat": now,
            "exp": now + int(expires_in),
            **claims,
        }
        if roles:
            payload["realm_access"] = {"roles": list(roles)}
        signing = key or (self.rsa_key if alg == "RS256" else self.ec_key)
        headers = {"kid": kid or ("rsa-1" if alg == "RS256" else "ec-1")}
        return jwt.encode(payload, signing, algorithm=alg, headers=headers)


@pytest.fixture(scope="session")
def issuer() -> Issuer:
    return Issuer()


def trusting(issuer: Issuer, folder: Path, **options: Any) -> BrokerAuth:
    """Broker credentials that trust `issuer` (keys from a JWKS file) plus `options`."""
    jwks = issuer.write_jwks(folder / "jwks.json")
    return BrokerAuth(
        oauth2=[OAuth2Issuer(issuer=issuer.iss, audience=[AUDIENCE], jwks_file=jwks)],
        **options,
    )


@contextlib.contextmanager
def secured_broker(data_dir: Path, auth: BrokerAuth, **settings: Any) -> Iterator[RunningBroker]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with start_broker(data_dir, auth=auth, **settings) as running:
        yield running


def bearer(token: str, tenant: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if tenant is not None:
        headers["NGSILD-Tenant"] = tenant
    return headers
