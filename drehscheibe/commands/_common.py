"""Options every command that talks to a broker shares, and how they become a client.

Credentials for a broker behind an access-control proxy (Orion-LD behind a PEP proxy such as
Wilma or Kong, or the embedded broker with an API key) come from files and the environment,
never from plain command-line arguments (which other users see in the process list and shell
history). In order of precedence:

1. `--token-file FILE` (or `DREHSCHEIBE_BROKER_TOKEN_FILE`): a file holding a bearer token;
2. `DREHSCHEIBE_BROKER_TOKEN`: the bearer token itself;
3. OAuth2 client credentials: `DREHSCHEIBE_BROKER_TOKEN_URL` (the token endpoint, e.g.
   Keycloak's `.../protocol/openid-connect/token`), `DREHSCHEIBE_BROKER_CLIENT_ID`,
   `DREHSCHEIBE_BROKER_CLIENT_SECRET` or `DREHSCHEIBE_BROKER_CLIENT_SECRET_FILE`, optional
   `DREHSCHEIBE_BROKER_SCOPE` and `DREHSCHEIBE_BROKER_AUDIENCE`. The token is fetched on first
   use and renewed before it expires and after a 401.
4. OAuth2 device authorization for people (RFC 8628): `DREHSCHEIBE_BROKER_DEVICE_AUTH_URL`
   (e.g. Keycloak's `.../protocol/openid-connect/auth/device`) with
   `DREHSCHEIBE_BROKER_TOKEN_URL` and `DREHSCHEIBE_BROKER_CLIENT_ID` and no secret: the first
   command prints a link and a code to confirm in the browser; the tokens are kept (mode 0600)
   in the user's configuration folder and refreshed, so later commands do not ask again.

Nothing set: no `Authorization` header. Setting two of them (a token and client credentials) is
an error, so that a forgotten variable never decides silently which identity is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from drehscheibe._output import ExitCode, OutputFormat, fail

if TYPE_CHECKING:
    import httpx

    from ngsi import Client

__all__ = [
    "DEFAULT_BROKER",
    "BrokerOpt",
    "ContextOpt",
    "OutputOpt",
    "TenantOpt",
    "TokenFileOpt",
    "broker_auth",
    "make_client",
]

TOKEN_FILE_ENV = "DREHSCHEIBE_BROKER_TOKEN_FILE"
TOKEN_ENV = "DREHSCHEIBE_BROKER_TOKEN"
TOKEN_URL_ENV = "DREHSCHEIBE_BROKER_TOKEN_URL"
CLIENT_ID_ENV = "DREHSCHEIBE_BROKER_CLIENT_ID"
CLIENT_SECRET_ENV = "DREHSCHEIBE_BROKER_CLIENT_SECRET"
CLIENT_SECRET_FILE_ENV = "DREHSCHEIBE_BROKER_CLIENT_SECRET_FILE"
SCOPE_ENV = "DREHSCHEIBE_BROKER_SCOPE"
AUDIENCE_ENV = "DREHSCHEIBE_BROKER_AUDIENCE"
DEVICE_AUTH_URL_ENV = "DREHSCHEIBE_BROKER_DEVICE_AUTH_URL"

BrokerOpt = Annotated[
    str,
    typer.Option(
        "--broker",
        envvar="DREHSCHEIBE_BROKER_URL",
        help="NGSI-LD broker base URL.",
        show_default=True,
    ),
]
TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", envvar="DREHSCHEIBE_TENANT", help="NGSILD-Tenant to address."),
]
ContextOpt = Annotated[
    str | None,
    typer.Option(
        "--context",
        envvar="DREHSCHEIBE_CONTEXT",
        help="@context URL for attribute names (sent as a Link header).",
    ),
]
OutputOpt = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="table for people, json for scripts."),
]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar=TOKEN_FILE_ENV,
        help=(
            "File holding the bearer token for the broker (or its proxy). Also: "
            f"{TOKEN_ENV}, or OAuth2 client credentials via {TOKEN_URL_ENV}, {CLIENT_ID_ENV}, "
            f"{CLIENT_SECRET_ENV}[_FILE]."
        ),
        dir_okay=False,
    ),
]

DEFAULT_BROKER = "http://127.0.0.1:1026"


def _read_secret(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        fail(f"{what} {path}: {exc.strerror or exc}", ExitCode.USAGE)
    if not text:
        fail(f"{what} {path} is empty", ExitCode.USAGE)
    return text


def broker_auth(
    token_file: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> httpx.Auth | None:
    """The authentication the broker options and environment ask for (see the module), or
    None. A missing or empty file, an incomplete or ambiguous set of variables exits with
    code 2 and says which variable or file is wrong."""
    env = os.environ if environ is None else environ
    file = token_file
    if file is None and env.get(TOKEN_FILE_ENV):
        file = Path(env[TOKEN_FILE_ENV])
    token = env.get(TOKEN_ENV, "").strip() or None
    oauth = {name: env.get(name, "").strip() for name in (TOKEN_URL_ENV, CLIENT_ID_ENV)}
    secret_file = env.get(CLIENT_SECRET_FILE_ENV, "").strip()
    secret = env.get(CLIENT_SECRET_ENV, "").strip()
    device_url = env.get(DEVICE_AUTH_URL_ENV, "").strip()
    wants_oauth = any(oauth.values()) or bool(secret or secret_file)
    if device_url:
        if secret or secret_file:
            fail(
                f"{DEVICE_AUTH_URL_ENV} signs a person in without a client secret; unset "
                f"{CLIENT_SECRET_ENV}/{CLIENT_SECRET_FILE_ENV} or {DEVICE_AUTH_URL_ENV}",
                ExitCode.USAGE,
            )
        wants_oauth = False
    chosen = [
        label
        for label, present in (
            (f"--token-file/{TOKEN_FILE_ENV}", file is not None),
            (TOKEN_ENV, token is not None),
            (f"{TOKEN_URL_ENV} (OAuth2 client credentials)", wants_oauth),
            (f"{DEVICE_AUTH_URL_ENV} (OAuth2 device authorization)", bool(device_url)),
        )
        if present
    ]
    if len(chosen) > 1:
        fail(f"broker credentials given twice: {' and '.join(chosen)}; keep one", ExitCode.USAGE)
    from ngsi import BearerToken, OAuth2ClientCredentials, OAuth2DeviceCode

    if file is not None:
        return BearerToken(_read_secret(file, "token file"))
    if token is not None:
        return BearerToken(token)
    if device_url:
        missing = [name for name, value in oauth.items() if not value]
        if missing:
            fail(
                f"OAuth2 device authorization incomplete: set {', '.join(missing)}", ExitCode.USAGE
            )
        client_id = oauth[CLIENT_ID_ENV]
        return OAuth2DeviceCode(
            device_url,
            oauth[TOKEN_URL_ENV],
            client_id,
            scope=env.get(SCOPE_ENV, "").strip() or None,
            audience=env.get(AUDIENCE_ENV, "").strip() or None,
            token_file=Path(typer.get_app_dir("drehscheibe")) / "tokens" / f"{client_id}.json",
        )
    if not wants_oauth:
        return None
    missing = [name for name, value in oauth.items() if not value]
    if not (secret or secret_file):
        missing.append(f"{CLIENT_SECRET_ENV} or {CLIENT_SECRET_FILE_ENV}")
    if missing:
        fail(f"OAuth2 client credentials incomplete: set {', '.join(missing)}", ExitCode.USAGE)
    if secret_file:
        secret = _read_secret(Path(secret_file), "client secret file")
    return OAuth2ClientCredentials(
        oauth[TOKEN_URL_ENV],
        oauth[CLIENT_ID_ENV],
        secret,
        scope=env.get(SCOPE_ENV, "").strip() or None,
        audience=env.get(AUDIENCE_ENV, "").strip() or None,
    )


def make_client(
    broker: str, tenant: str | None, context: str | None, *, token_file: Path | None = None
) -> Client:
    """A client for `broker`, authenticated as `broker_auth(token_file)` says."""
    from ngsi import Client

    return Client(broker, tenant=tenant, context=context, auth=broker_auth(token_file))
