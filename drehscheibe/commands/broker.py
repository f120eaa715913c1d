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


def _retention_by_type(values: list[str], *, option: str) -> dict[str, float]:
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
                param_hint=option,
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
    auth_file: Annotated[
        Path | None,
        typer.Option(
            "--auth-file",
            help=(
                "YAML/JSON file with the OAuth2 issuers and hashed API keys, each with its "
                "tenants and operations (see ngsi.broker._auth)."
            ),
        ),
    ] = None,
    allow_anonymous: Annotated[
        bool,
        typer.Option(
            "--allow-anonymous",
            help=(
                "Serve requests without credentials even when listening beyond loopback "
                "(without it such a broker needs --auth-file or --api-key-file)."
            ),
        ),
    ] = False,
    context_allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--context-allow-host",
            help=(
                "Host name, *.domain, IP address or CIDR network @contexts may be fetched "
                "from (repeatable; with --allow-context-fetch)."
            ),
        ),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Largest request body (bytes).")
    ] = 1024 * 1024,
    cache_mb: Annotated[
        int | None,
        typer.Option(
            "--cache-mb",
            min=0,
            help="Memory for entities kept between requests (MiB; default 128; 0: none).",
        ),
    ] = None,
    notification_allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--notification-allow-host",
            help=(
                "Host name, *.domain, IP address or CIDR network notifications may go to "
                "(repeatable). Unset: a broker on loopback notifies any host; one on another "
                "address any host but loopback, private, link-local and unspecified addresses."
            ),
        ),
    ] = None,
    notification_timeout: Annotated[
        float,
        typer.Option("--notification-timeout", help="Seconds one notification attempt may take."),
    ] = 5.0,
    notification_retry_for: Annotated[
        float,
        typer.Option(
            "--notification-retry-for",
            help=(
                "Seconds a failed notification is retried, with the same id (waits of 0.5 s "
                "doubling up to --notification-retry-max-delay); 0: no retry. Orion-LD does "
                "not retry."
            ),
        ),
    ] = 120.0,
    notification_retry_max_delay: Annotated[
        float,
        typer.Option(
            "--notification-retry-max-delay",
            help="Longest wait between two attempts of one notification (seconds).",
        ),
    ] = 4.0,
    notification_queue_limit: Annotated[
        int,
        typer.Option(
            "--notification-queue-limit",
            help="Notifications that may wait per endpoint; beyond that the oldest is dropped.",
        ),
    ] = 10_000,
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
    state_retention_days: Annotated[
        float | None,
        typer.Option(
            "--state-retention-days",
            help="Days an entity not updated stays in the current state (default: for ever).",
        ),
    ] = None,
    state_retention_days_by_type: Annotated[
        list[str] | None,
        typer.Option(
            "--state-retention-days-by-type",
            help=(
                "TYPE=DAYS: current-state retention for one entity type, TYPE as its expanded "
                "IRI (repeatable; overrides --state-retention-days for that type)."
            ),
        ),
    ] = None,
    retention_interval: Annotated[
        float,
        typer.Option(
            "--retention-interval", help="Seconds between two runs of the current-state retention."
        ),
    ] = 3600.0,
    model_contexts: Annotated[
        bool,
        typer.Option(
            "--model-contexts/--no-model-contexts",
            help=(
                "Serve the Smart Data Models @contexts of the project's models (their terms) "
                "without the network; --preload-context for the same URL wins."
            ),
        ),
    ] = True,
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
    preloads = _preloads(preload_context or [])
    if model_contexts:
        from models import write_subject_contexts

        try:
            written = write_subject_contexts(data / "model-contexts")
        except OSError as exc:
            raise typer.BadParameter(f"{data}: {exc.strerror}", param_hint="--data") from None
        preloads = {**written, **preloads}
    if contexts_dir is not None and not contexts_dir.is_dir():
        raise typer.BadParameter(f"{contexts_dir}: no such folder", param_hint="--contexts-dir")
    auth = None
    if auth_file is not None:
        from ngsi.broker._auth import BrokerAuth

        try:
            auth = BrokerAuth.load(auth_file)
        except (OSError, ValueError) as exc:
            message = _settings_problem(exc) if isinstance(exc, ValidationError) else str(exc)
            raise typer.BadParameter(f"{auth_file}: {message}", param_hint="--auth-file") from None
    try:
        settings = BrokerSettings(
            data_dir=data,
            host=host,
            port=port,
            preload_contexts=preloads,
            contexts_dir=contexts_dir,
            allow_context_fetch=allow_context_fetch,
            api_key=api_key,
            auth=auth,
            allow_anonymous=allow_anonymous,
            context_allow_hosts=context_allow_host,
            max_body_bytes=max_body_bytes,
            log_level=log_level,
            notification_allow_hosts=notification_allow_host,
            notification_timeout=notification_timeout,
            notification_retry_for=notification_retry_for,
            notification_retry_max_delay=notification_retry_max_delay,
            notification_queue_limit=notification_queue_limit,
            history_retention_days=history_retention_days,
            history_retention_days_by_type=_retention_by_type(
                history_retention_days_by_type or [], option="--history-retention-days-by-type"
            ),
            state_retention_days=state_retention_days,
            state_retention_days_by_type=_retention_by_type(
                state_retention_days_by_type or [], option="--state-retention-days-by-type"
            ),
            retention_interval=retention_interval,
            **({} if cache_mb is None else {"cache_mb": cache_mb}),
        )
    except ValidationError as exc:
        raise typer.BadParameter(_settings_problem(exc)) from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: listening on {host}, reachable from other machines", err=True)
    from ngsi.broker._auth import exposure_problem

    problem = exposure_problem(
        host=host, auth=auth, api_key=api_key, allow_anonymous=allow_anonymous
    )
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    typer.echo(f"NGSI-LD broker on http://{host}:{port}/ngsi-ld/v1 (data in {data})", err=True)
    run(settings)
