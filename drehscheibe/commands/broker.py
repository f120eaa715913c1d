"""`drehscheibe broker ...`: run the embedded NGSI-LD broker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Run the embedded NGSI-LD broker.", no_args_is_help=True)


def _preloads(values: list[str]) -> dict[str, Path]:
    preload: dict[str, Path] = {}
    for value in values:
        url, sep, path = value.rpartition("=")
        if not sep or not url or not path:
            raise typer.BadParameter(
                f"{value!r}: expected URL=FILE, e.g. "
                "https://example.org/context.jsonld=contexts/example.jsonld",
                param_hint="--preload-context",
            )
        file = Path(path)
        if not file.is_file():
            raise typer.BadParameter(f"{file}: no such file", param_hint="--preload-context")
        preload[url] = file
    return preload


def _retention_by_type(values: list[str]) -> dict[str, float]:
    by_type: dict[str, float] = {}
    for value in values:
        type_iri, sep, days = value.rpartition("=")
        try:
            by_type[type_iri] = float(days)
        except ValueError:
            sep = ""
        if not sep or not type_iri:
            raise typer.BadParameter(
                f"{value!r}: expected TYPE=DAYS with the expanded type, e.g. "
                "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved=30",
                param_hint="--history-retention-days-by-type",
            )
    return by_type


def _settings_problem(exc: Any) -> str:
    """A pydantic ValidationError as one line per field: `field: problem`."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


@app.command("serve")
def serve(
    *,
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Folder for the SQLite files (one per tenant).",
            envvar="DREHSCHEIBE_BROKER_DATA",
        ),
    ] = Path("broker-data"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 1026,
    preload_context: Annotated[
        list[str] | None,
        typer.Option(
            "--preload-context",
            help="URL=FILE: serve this @context URL from a local file (repeatable).",
        ),
    ] = None,
    contexts_dir: Annotated[
        Path | None,
        typer.Option(
            "--contexts-dir",
            help="Folder with a contexts.json map (URL → file) of @contexts to preload.",
        ),
    ] = None,
    allow_context_fetch: Annotated[
        bool,
        typer.Option(
            "--allow-context-fetch", help="Fetch unknown remote @contexts over the network."
        ),
    ] = False,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file",
            help="File holding the API key clients must send (X-API-Key or Bearer).",
        ),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Largest request body (bytes).")
    ] = 1024 * 1024,
    notification_allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--notification-allow-host",
            help=(
                "Host name, *.domain, IP address or CIDR network notifications may go to "
                "(repeatable). Unset: a broker on loopback notifies any host; one on another "
                "address any host but loopback, link-local and unspecified addresses."
            ),
        ),
    ] = None,
    notification_timeout: Annotated[
        float,
        typer.Option("--notification-timeout", help="Seconds one notification attempt may take."),
    ] = 5.0,
    history_retention_days: Annotated[
        float | None,
        typer.Option(
            "--history-retention-days",
            help="Days the temporal history keeps attribute values (default: for ever).",
        ),
    ] = None,
    history_retention_days_by_type: Annotated[
        list[str] | None,
        typer.Option(
            "--history-retention-days-by-type",
            help=(
                "TYPE=DAYS: history retention for one entity type, TYPE as its expanded IRI "
                "(repeatable; overrides --history-retention-days for that type)."
            ),
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve NGSI-LD on HOST:PORT until interrupted (Ctrl-C)."""
    from pydantic import ValidationError

    from ngsi.broker import BrokerSettings
    from ngsi.broker import serve as run

    api_key = None
    if api_key_file is not None:
        try:
            api_key = api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise typer.BadParameter(
                f"{api_key_file}: {exc.strerror}", param_hint="--api-key-file"
            ) from None
        if not api_key:
            raise typer.BadParameter(f"{api_key_file} is empty", param_hint="--api-key-file")
    if contexts_dir is not None and not contexts_dir.is_dir():
        raise typer.BadParameter(f"{contexts_dir}: no such folder", param_hint="--contexts-dir")
    try:
        settings = BrokerSettings(
            data_dir=data,
            host=host,
            port=port,
            preload_contexts=_preloads(preload_context or []),
            contexts_dir=contexts_dir,
            allow_context_fetch=allow_context_fetch,
            api_key=api_key,
            max_body_bytes=max_body_bytes,
            log_level=log_level,
            notification_allow_hosts=notification_allow_host,
            notification_timeout=notification_timeout,
            history_retention_days=history_retention_days,
            history_retention_days_by_type=_retention_by_type(history_retention_days_by_type or []),
        )
    except ValidationError as exc:
        raise typer.BadParameter(_settings_problem(exc)) from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: listening on {host}, reachable from other machines", err=True)
    typer.echo(f"NGSI-LD broker on http://{host}:{port}/ngsi-ld/v1 (data in {data})", err=True)
    run(settings)
