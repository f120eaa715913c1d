"""Options every command that talks to a broker shares, and how they become a client."""

from __future__ import annotations

from typing import Annotated

import typer

from drehscheibe._output import OutputFormat
from ngsi import Client

__all__ = ["BrokerOpt", "ContextOpt", "OutputOpt", "TenantOpt", "make_client"]

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

DEFAULT_BROKER = "http://127.0.0.1:1026"


def make_client(broker: str, tenant: str | None, context: str | None) -> Client:
    return Client(broker, tenant=tenant, context=context)
