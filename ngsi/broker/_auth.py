"""Who may do what on the embedded broker: OAuth2 bearer tokens (JWT), API keys, anonymous access.

Every request but `GET /version` is one **operation** on one **tenant** (`operation_for`):

| operation   | requests                                                                   |
|-------------|----------------------------------------------------------------------------|
| `read`      | GET/HEAD of entities, types, attributes, temporal entities, @contexts;     |
|             | `POST /entityOperations/query`, `POST /temporal/entityOperations/query`    |
| `write`     | every other request on `/entities`, `/entityOperations`, `/temporal`       |
| `subscribe` | every request on `/subscriptions` (reading one shows its endpoint and      |
|             | `receiverInfo`; a subscription receives the tenant's data)                 |
| `admin`     | `POST`/`DELETE` of `/jsonldContexts` (broker-wide: needs `admin` on every  |
|             | tenant, `*`), and any other path (deny by default)                         |

The tenant is the request's `NGSILD-Tenant` header (else `Fiware-Service`), as the broker reads
it; no header is the default tenant, named `@default` in grants.

**Grants** are strings `tenant:<tenant>:<operation>`: `<tenant>` a tenant name, `@default` or
`*` (every tenant), `<operation>` one of the four or `*`. `admin` on a tenant includes the three
others. A principal may do an operation on a tenant when one of its grants covers both.

**Where grants come from:**

- *Bearer tokens* (`Authorization: Bearer <JWT>`), validated against a trusted issuer
  (`OAuth2Issuer`): signature with the issuer's keys (JWKS from a file or from its URL), algorithm
  RS256 or ES256 as configured, `iss` equal to the issuer, `aud` naming one of the configured
  audiences, `exp` in the future and `nbf` (when present) in the past, both with `leeway`
  seconds of clock skew. The grants are read from these claims, every string that parses as a
  grant counts and others are ignored:
  - `realm_access.roles` (Keycloak realm roles),
  - `resource_access.<client>.roles` for `roles_client` (default: each configured audience)
    (Keycloak client roles),
  - `roles` (Keyrock: a list of strings or of objects with a `name`),
  - `scope` (space-separated OAuth2 scopes; `scp` as a list too).
  A Keycloak realm for a traffic consumer thus gives the role `tenant:traffic:read`.
  A validated token is remembered until it expires, at most 60 s (validation costs about
  0.4 ms; a remembered token about 1 µs).
- *API keys* (`X-API-Key: <key>`, or `Authorization: Bearer <key>` when it is not a JWT):
  `ApiKeyEntry` names the key's SHA-256 (never the key), its tenants and operations. The
  single `BrokerSettings.api_key` of earlier versions still works and grants everything.
- *Anonymous requests*: see `BrokerAuth.anonymous` and `anonymous_allowed`.

Refusals are ProblemDetails: 401 `Unauthorized` with `WWW-Authenticate: Bearer` (no, wrong,
expired or untrusted credentials; the detail says which), 403 `Forbidden` (valid credentials
without the grant; the detail names operation, tenant and the grants held).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import jwt
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.types import ASGIApp, Receive, Scope, Send

from ngsi._errors import Forbidden, NgsiApiError, Unauthorized
from ngsi.broker._http import problem_response

__all__ = [
    "ANY_TENANT",
    "DEFAULT_TENANT",
    "OPEN_PATHS",
    "OPERATIONS",
    "ApiKeyEntry",
    "AuthMiddleware",
    "Authenticator",
    "BrokerAuth",
    "Grant",
    "OAuth2Issuer",
    "Operation",
    "Principal",
    "anonymous_allowed",
    "claim_grants",
    "exposure_problem",
    "generate_api_key",
    "hash_api_key",
    "is_loopback_host",
    "operation_for",
    "parse_grant",
]

log = logging.getLogger("ngsi.broker.auth")

Operation = Literal["read", "write", "subscribe", "admin"]
OPERATIONS: Final[tuple[Operation, ...]] = ("read", "write", "subscribe", "admin")
DEFAULT_TENANT: Final = "@default"
"""The default tenant (requests without a tenant header) as grants name it."""
ANY_TENANT: Final = "*"
OPEN_PATHS: Final = frozenset({"/version", "/ngsi-ld/ex/v1/version"})
"""Paths anyone may GET: the broker's version."""

_API: Final = "/ngsi-ld/v1"
_READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_DATA_RESOURCES: Final = frozenset({"entities", "entityOperations", "types", "attributes"})
_QUERY_POSTS: Final = frozenset({"/entityOperations/query", "/temporal/entityOperations/query"})
Algorithm = Literal["RS256", "ES256"]
_ALGORITHMS: Final[tuple[Algorithm, ...]] = ("RS256", "ES256")
_KEY_TYPES: Final = {"RS256": "RSA", "ES256": "EC"}
_TOKEN_CACHE_SIZE: Final = 4096


# --- operations -------------------------------------------------------------------------------


def operation_for(method: str, path: str) -> tuple[Operation, bool] | None:
    """The operation a request is (see the module table) and whether it is broker-wide (needs
    the grant on every tenant); None for the open paths."""
    method = method.upper()
    if path in OPEN_PATHS and method in _READ_METHODS:
        return None
    if not path.startswith(_API + "/"):
        return ("admin", True)
    rest = path[len(_API) :]
    resource = rest.split("/", 2)[1]
    if resource == "subscriptions":
        return ("subscribe", False)
    if resource == "jsonldContexts":
        return ("read", False) if method in _READ_METHODS else ("admin", True)
    if resource in _DATA_RESOURCES or resource == "temporal":
        if method in _READ_METHODS or (method == "POST" and rest in _QUERY_POSTS):
            return ("read", False)
        return ("write", False)
    return ("admin", False)


# --- grants and principals --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    """One permission: `operation` (or `*`) on `tenant` (a name, `@default` or `*`)."""

    tenant: str
    operation: str

    def __str__(self) -> str:
        return f"tenant:{self.tenant}:{self.operation}"

    def covers(self, tenant: str, operation: Operation) -> bool:
        tenant_ok = self.tenant in (ANY_TENANT, tenant)
        operation_ok = self.operation in ("*", "admin", operation)
        return tenant_ok and operation_ok


def parse_grant(text: str) -> Grant | None:
    """`tenant:<tenant>:<operation>` as a Grant; None for any other string."""
    parts = text.strip().split(":")
    if len(parts) != 3 or parts[0] != "tenant" or not parts[1]:
        return None
    if parts[2] != "*" and parts[2] not in OPERATIONS:
        return None
    return Grant(parts[1], parts[2])


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent a request (`kind` and `name`: the token's subject, the key's name) and what it
    may do. The authenticated principal is in the ASGI scope under `"drehscheibe.principal"`."""

    kind: Literal["anonymous", "api-key", "token"]
    name: str
    grants: frozenset[Grant] = field(default_factory=frozenset)

    def may(self, operation: Operation, tenant: str | None, *, broker_wide: bool = False) -> bool:
        """Whether the principal may do `operation` on `tenant` (None: the default tenant), or
        on every tenant when `broker_wide`."""
        wanted = ANY_TENANT if broker_wide else (tenant or DEFAULT_TENANT)
        for grant in self.grants:
            if broker_wide and grant.tenant != ANY_TENANT:
                continue
            if grant.covers(wanted, operation):
                return True
        return False

    def describe(self) -> str:
        held = ", ".join(sorted(str(g) for g in self.grants)) or "none"
        return f"{self.kind} {self.name!r} (grants: {held})"


def _all_grants(operations: Iterable[str], tenants: Iterable[str]) -> frozenset[Grant]:
    return frozenset(Grant(t, o) for t in tenants for o in operations)


# --- settings ---------------------------------------------------------------------------------


def hash_api_key(key: str) -> str:
    """The SHA-256 of an API key, hex, as `ApiKeyEntry.sha256` holds it."""
    return hashlib.sha256(key.strip().encode("utf-8")).hexdigest()


def generate_api_key() -> str:
    """A new random API key (256 bits, URL-safe); store only `hash_api_key(key)`."""
    return secrets.token_urlsafe(32)


def _tenant_entry(value: str) -> str:
    from ngsi.broker._store import validate_tenant

    if value in (ANY_TENANT, DEFAULT_TENANT):
        return value
    try:
        validate_tenant(value)
    except NgsiApiError as exc:
        raise ValueError(str(exc.detail or exc)) from None
    return value


class ApiKeyEntry(BaseModel):
    """One static API key: `name` (for logs and errors), `sha256` (hex digest of the key, see
    `hash_api_key`), `tenants` (names, `@default`, or `*` for all) and `operations`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    tenants: list[str] = Field(min_length=1)
    operations: list[Operation] = Field(min_length=1)

    @field_validator("tenants")
    @classmethod
    def _tenants(cls, value: list[str]) -> list[str]:
        return [_tenant_entry(t) for t in value]

    @property
    def grants(self) -> frozenset[Grant]:
        return _all_grants(self.operations, self.tenants)


class OAuth2Issuer(BaseModel):
    """A token issuer the broker trusts (a Keycloak realm, a Keyrock instance).

    - `issuer`: the exact `iss` of its tokens (Keycloak: `https://<host>/realms/<realm>`).
    - `audience`: the `aud` values accepted (at least one must be in the token).
    - `jwks_file` or `jwks_url`: where its public keys are (Keycloak:
      `<issuer>/protocol/openid-connect/certs`); the URL is fetched with `jwks_timeout`, no
      redirects, at most 256 KiB, kept `jwks_cache_seconds` and fetched again early when a token
      names an unknown key id (at most every 30 s).
    - `algorithms`: accepted signature algorithms (RS256, ES256).
    - `roles_client`: the client whose Keycloak client roles count (default: each audience).
    - `leeway`: seconds of clock skew allowed on `exp` and `nbf`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(min_length=1)
    audience: list[str] = Field(min_length=1)
    jwks_file: Path | None = None
    jwks_url: str | None = None
    algorithms: list[Algorithm] = Field(default_factory=lambda: list(_ALGORITHMS), min_length=1)
    roles_client: str | None = None
    leeway: float = Field(default=30.0, ge=0)
    jwks_timeout: float = Field(default=5.0, gt=0)
    jwks_cache_seconds: float = Field(default=600.0, gt=0)

    @field_validator("audience", mode="before")
    @classmethod
    def _audience(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_key_source(self) -> OAuth2Issuer:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError(
                f"issuer {self.issuer}: give exactly one of jwks_file and jwks_url (Keycloak: "
                f"{self.issuer.rstrip('/')}/protocol/openid-connect/certs)"
            )
        if self.jwks_url is not None and not self.jwks_url.startswith(("https://", "http://")):
            raise ValueError(f"issuer {self.issuer}: jwks_url must be an http(s) URL")
        return self


class BrokerAuth(BaseModel):
    """The broker's credentials (`BrokerSettings.auth`; see the module documentation).

    - `api_keys`: static keys with their tenants and operations.
    - `oauth2`: trusted token issuers.
    - `anonymous`: the operations anonymous requests may do, on every tenant, where anonymous
      access is allowed (`anonymous_allowed`); all four by default.

    Load one from a YAML or JSON file with `BrokerAuth.load(path)`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_keys: list[ApiKeyEntry] = Field(default_factory=list)
    oauth2: list[OAuth2Issuer] = Field(default_factory=list)
    anonymous: list[Operation] = Field(default_factory=lambda: list(OPERATIONS))

    @property
    def has_credentials(self) -> bool:
        return bool(self.api_keys or self.oauth2)

    @classmethod
    def load(cls, path: Path) -> BrokerAuth:
        """Read a YAML or JSON file (relative `jwks_file` paths are taken from its folder)."""
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping with api_keys and/or oauth2")
        for issuer in data.get("oauth2") or []:
            if isinstance(issuer, dict) and issuer.get("jwks_file"):
                issuer["jwks_file"] = str(path.parent / str(issuer["jwks_file"]))
        return cls.model_validate(data)


def is_loopback_host(host: str) -> bool:
    """Whether a bind address reaches only this machine (127.0.0.0/8, ::1, `localhost`)."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _has_credentials(auth: BrokerAuth | None, api_key: str | None) -> bool:
    return bool(api_key) or (auth is not None and auth.has_credentials)


def anonymous_allowed(
    *, host: str, auth: BrokerAuth | None, api_key: str | None, allow_anonymous: bool
) -> bool:
    """Anonymous requests are served when `allow_anonymous` is set, or when no credentials are
    configured and the broker listens on loopback (the one-machine default)."""
    if allow_anonymous:
        return True
    return not _has_credentials(auth, api_key) and is_loopback_host(host)


def exposure_problem(
    *, host: str, auth: BrokerAuth | None, api_key: str | None, allow_anonymous: bool
) -> str | None:
    """Why a broker with these settings must not start: listening beyond loopback with no
    credentials configured and without `allow_anonymous`. None when it may start."""
    if allow_anonymous or is_loopback_host(host) or _has_credentials(auth, api_key):
        return None
    return (
        f"the broker would listen on {host}, reachable from other machines, and accept "
        "anonymous requests: configure credentials (auth: API keys or OAuth2 issuers; "
        "--auth-file) or say --allow-anonymous (allow_anonymous=True) if that is meant"
    )


# --- tokens -----------------------------------------------------------------------------------


class _Jwks:
    """The public keys of one issuer, from a file or fetched (see `OAuth2Issuer`)."""

    def __init__(self, issuer: OAuth2Issuer, transport: httpx.AsyncBaseTransport | None) -> None:
        self.issuer = issuer
        self._transport = transport
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._tried_at = -1e9
        self._lock = asyncio.Lock()
        if issuer.jwks_file is not None:
            self._keys = self._parse(issuer.jwks_file.read_bytes(), str(issuer.jwks_file))
            self._fetched_at = float("inf")

    def _parse(self, raw: bytes, where: str) -> dict[str | None, jwt.PyJWK]:
        try:
            document = json.loads(raw)
            entries = document["keys"]
            assert isinstance(entries, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise ValueError(f"{where}: not a JWK set (a JSON object with 'keys')") from None
        keys: dict[str | None, jwt.PyJWK] = {}
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            if entry.get("kty") not in ("RSA", "EC"):
                continue
            try:
                key = jwt.PyJWK(entry)
            except jwt.PyJWKError:
                continue
            keys[entry.get("kid")] = key
        if not keys:
            raise ValueError(f"{where}: no RSA or EC signing key in the JWK set")
        return keys

    async def key(self, kid: str | None, key_type: str) -> jwt.PyJWK:
        fresh = time.monotonic() - self._fetched_at < self.issuer.jwks_cache_seconds
        found = self._pick(kid, key_type)
        if found is None or not fresh:
            await self._refresh(force=found is None)
            found = self._pick(kid, key_type)
        if found is None:
            raise Unauthorized(
                f"the token names signing key {kid!r}, which issuer {self.issuer.issuer} "
                "does not publish"
            )
        return found

    def _pick(self, kid: str | None, key_type: str) -> jwt.PyJWK | None:
        if kid is not None:
            key = self._keys.get(kid)
        else:
            matching = [k for k in self._keys.values() if k.key_type == key_type]
            key = matching[0] if len(matching) == 1 else None
        return key if key is not None and key.key_type == key_type else None

    async def _refresh(self, *, force: bool) -> None:
        url = self.issuer.jwks_url
        if url is None:
            return
        async with self._lock:
            now = time.monotonic()
            if now - self._tried_at < (30.0 if force else self.issuer.jwks_cache_seconds / 10):
                return
            self._tried_at = now
            try:
                raw = await self._fetch(url)
                self._keys = self._parse(raw, url)
                self._fetched_at = now
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("the keys of issuer %s were not fetched: %s", self.issuer.issuer, exc)
                if not self._keys:
                    raise _KeysUnavailable(
                        f"the keys of issuer {self.issuer.issuer} could not be fetched from "
                        f"{url}: {exc}"
                    ) from None

    async def _fetch(self, url: str) -> bytes:
        limit = 256 * 1024
        async with httpx.AsyncClient(
            transport=self._transport,
            timeout=self.issuer.jwks_timeout,
            follow_redirects=False,
            trust_env=False,
        ) as client:
            async with asyncio.timeout(self.issuer.jwks_timeout):
                async with client.stream("GET", url, headers={"Accept": "application/json"}) as r:
                    if r.status_code != 200:
                        raise ValueError(f"HTTP {r.status_code}")
                    body = b""
                    async for chunk in r.aiter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise ValueError(f"more than {limit} bytes")
                    return body


class _KeysUnavailable(NgsiApiError):
    status = 503
    error_name = "InternalError"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        found: list[str] = []
        for item in value:
            if isinstance(item, str):
                found.append(item)
            elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
                found.append(item["name"])
        return found
    return []


def claim_grants(claims: Mapping[str, Any], *, clients: Sequence[str]) -> frozenset[Grant]:
    """The grants a validated token carries (see the module documentation for the claims)."""
    names: list[str] = []
    realm = claims.get("realm_access")
    if isinstance(realm, Mapping):
        names += _strings(realm.get("roles"))
    resources = claims.get("resource_access")
    if isinstance(resources, Mapping):
        for client in clients:
            access = resources.get(client)
            if isinstance(access, Mapping):
                names += _strings(access.get("roles"))
    names += _strings(claims.get("roles"))
    names += _strings(claims.get("scope"))
    names += _strings(claims.get("scp"))
    return frozenset(g for g in map(parse_grant, names) if g is not None)


class Authenticator:
    """Turns a request's headers into a `Principal` or raises `Unauthorized`.

    `transport` is for tests (fetching the issuers' keys). Thread-safety: one event loop.
    """

    def __init__(
        self,
        auth: BrokerAuth | None,
        *,
        api_key: str | None = None,
        anonymous: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.auth = auth or BrokerAuth()
        self._legacy_key = api_key.encode() if api_key else None
        self._keys = {entry.sha256.lower(): entry for entry in self.auth.api_keys}
        self._issuers = {i.issuer: _Jwks(i, transport) for i in self.auth.oauth2}
        self._validated: dict[str, tuple[float, Principal]] = {}
        self.anonymous = (
            Principal("anonymous", "anonymous", _all_grants(self.auth.anonymous, [ANY_TENANT]))
            if anonymous
            else None
        )

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """`headers` with lower-case names (first value of each)."""
        api_key = headers.get("x-api-key")
        if api_key is not None:
            return self._api_key(api_key.strip())
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                raise Unauthorized("the Authorization header must be 'Bearer <token or API key>'")
            credentials = credentials.strip()
            if credentials.count(".") == 2 and self._issuers:
                return await self._token(credentials)
            return self._api_key(credentials)
        if self.anonymous is not None:
            return self.anonymous
        raise Unauthorized(
            "credentials are needed: send an OAuth2 bearer token (Authorization: Bearer) or an "
            "API key (X-API-Key)"
        )

    def _api_key(self, given: str) -> Principal:
        if self._legacy_key is not None and hmac.compare_digest(given.encode(), self._legacy_key):
            return Principal("api-key", "api_key", _all_grants(["*"], [ANY_TENANT]))
        entry = self._keys.get(hash_api_key(given))
        if entry is None:
            raise Unauthorized("the API key is not valid")
        return Principal("api-key", entry.name, entry.grants)

    async def _token(self, token: str) -> Principal:
        """A validated token's principal, kept until the token expires (at most 60 s, so that a
        key withdrawn from the issuer's set stops working soon) for the next requests."""
        now = time.time()
        cached = self._validated.get(token)
        if cached is not None and now < cached[0]:
            return cached[1]
        principal, expires = await self._validate(token)
        if len(self._validated) >= _TOKEN_CACHE_SIZE:
            self._validated = {t: v for t, v in self._validated.items() if now < v[0]}
            if len(self._validated) >= _TOKEN_CACHE_SIZE:
                self._validated.clear()
        self._validated[token] = (min(expires, now + 60.0), principal)
        return principal

    async def _validate(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is not a readable JWT") from None
        issuer_name = unverified.get("iss")
        jwks = self._issuers.get(issuer_name) if isinstance(issuer_name, str) else None
        if jwks is None:
            trusted = ", ".join(sorted(self._issuers))
            raise Unauthorized(f"the token's issuer {issuer_name!r} is not trusted ({trusted})")
        issuer = jwks.issuer
        algorithm = header.get("alg")
        if algorithm not in issuer.algorithms:
            raise Unauthorized(
                f"the token is signed with {algorithm!r}; issuer {issuer.issuer} is trusted "
                f"with {', '.join(issuer.algorithms)} only"
            )
        kid = header.get("kid")
        key = await jwks.key(kid if isinstance(kid, str) else None, _KEY_TYPES[algorithm])
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=issuer.audience,
                issuer=issuer.issuer,
                leeway=issuer.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired; get a new one") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("the token is not valid yet (nbf is in the future)") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(
                f"the token's audience {unverified.get('aud')!r} is not one of "
                f"{', '.join(issuer.audience)}"
            ) from None
        except jwt.InvalidSignatureError:
            raise Unauthorized(
                f"the token's signature does not verify with the keys of {issuer.issuer}"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"the token has no {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the token is not valid: {exc}") from None
        clients = [issuer.roles_client] if issuer.roles_client else issuer.audience
        subject = claims.get("preferred_username") or claims.get("sub") or claims.get("azp")
        principal = Principal("token", str(subject or "?"), claim_grants(claims, clients=clients))
        return principal, float(claims["exp"])


# --- middleware -------------------------------------------------------------------------------


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        if name not in found:
            found[name] = raw_value.decode("latin-1")
    return found


class AuthMiddleware:
    """Authenticates and authorises every HTTP request (see the module documentation) before
    the app sees it; puts the `Principal` into the scope as `"drehscheibe.principal"`."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = operation_for(scope["method"], scope["path"])
        if wanted is None:
            await self.app(scope, receive, send)
            return
        operation, broker_wide = wanted
        headers = _headers(scope)
        try:
            principal = await self.authenticator.authenticate(headers)
        except Unauthorized as exc:
            challenge = 'Bearer realm="ngsi-ld"'
            if "authorization" in headers or "x-api-key" in headers:
                challenge += ', error="invalid_token"'
            response = problem_response(exc, headers={"WWW-Authenticate": challenge})
            await response(scope, receive, send)
            return
        except NgsiApiError as exc:
            await problem_response(exc)(scope, receive, send)
            return
        tenant = headers.get("ngsild-tenant")
        if tenant is None:
            tenant = headers.get("fiware-service")
        tenant = tenant or None
        if not principal.may(operation, tenant, broker_wide=broker_wide):
            where = "every tenant" if broker_wide else f"tenant {tenant or DEFAULT_TENANT!r}"
            error = Forbidden(
                f"{principal.describe()} may not {operation} on {where}: that needs the grant "
                f"tenant:{ANY_TENANT if broker_wide else tenant or DEFAULT_TENANT}:{operation}"
            )
            await problem_response(error)(scope, receive, send)
            return
        scope["drehscheibe.principal"] = principal
        await self.app(scope, receive, send)
