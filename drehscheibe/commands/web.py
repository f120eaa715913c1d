"""`drehscheibe web ...`: the page that shows the city's devices on a map."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drehscheibe._output import ExitCode, fail
from drehscheibe.commands._common import DEFAULT_BROKER, BrokerOpt, TenantOpt

__all__ = ["app"]

app = typer.Typer(help="Serve the page: devices on a map, a list, histories.", no_args_is_help=True)


@app.command("serve")
def serve(
    *,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", envvar="DREHSCHEIBE_WEB_PORT")] = 8090,
    broker_profile: Annotated[
        str,
        typer.Option(
            "--broker-profile", help="The broker's kind: orion-ld, scorpio, stellio, embedded."
        ),
    ] = "orion-ld",
    broker_token_file: Annotated[
        Path | None,
        typer.Option("--broker-token-file", help="File holding the broker's API key or token."),
    ] = None,
    refresh_seconds: Annotated[
        float, typer.Option("--refresh-seconds", help="How often the page reloads its data.")
    ] = 5.0,
    tile_url: Annotated[
        str | None,
        typer.Option(
            "--tile-url",
            envvar="DREHSCHEIBE_TILE_URL",
            help=(
                "Raster tile URL template with {z}/{x}/{y}, e.g. a city tile server "
                "(default: none; markers show on a plain grid)."
            ),
        ),
    ] = None,
    tile_attribution: Annotated[
        str | None,
        typer.Option("--tile-attribution", help="Attribution text shown under the map."),
    ] = None,
    title: Annotated[str, typer.Option(help="The page's title.")] = "Drehscheibe: city sensors",
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the page on HOST:PORT, reading the broker, until interrupted (Ctrl-C)."""
    from pydantic import SecretStr, ValidationError

    from drehscheibe.web import WebSettings
    from drehscheibe.web import serve as run

    token = None
    if broker_token_file is not None:
        try:
            token = broker_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            fail(f"{broker_token_file}: {exc.strerror}", ExitCode.USAGE)
        if not token:
            fail(f"{broker_token_file} is empty", ExitCode.USAGE)
    try:
        settings = WebSettings(
            broker_url=broker,
            tenant=tenant,
            broker_profile=broker_profile,
            broker_token=SecretStr(token) if token else None,
            host=host,
            port=port,
            title=title,
            refresh_seconds=refresh_seconds,
            tile_url=tile_url,
            tile_attribution=tile_attribution,
            log_level=log_level,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        fail(problems, ExitCode.USAGE)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: listening on {host}, reachable from other machines", err=True)
    typer.echo(f"page on http://{host}:{port}/ (reading {broker})", err=True)
    run(settings)
