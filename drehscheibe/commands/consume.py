"""`drehscheibe consume ...`: run a notification consumer, read the planning archive.

    drehscheibe consume run traffic --port 8081 --out traffic-state.json
    drehscheibe consume run environment --port 8082 --out env/ --forward http://alerts/hook
    drehscheibe consume run planning --mqtt mqtt://127.0.0.1:1883/city/planning --out archive.db
    drehscheibe consume run csv --port 8083 --out changes.csv
    drehscheibe consume query archive.db --from 2024-05-01T00:00:00Z --bbox 13.3,52.4,13.5,52.6

The inbox is durable by default (a SQLite file beside `--out`, or `--state DIR`): a 2xx answer
then means the notification survives a crash; `--memory` keeps it in memory instead.
The shared secret is read from an environment variable or a file, never from the command line.
"""

from __future__ import annotations

import enum
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from drehscheibe._output import ExitCode, OutputFormat, fail, print_json, print_table, stderr
from drehscheibe.commands._common import OutputOpt

if TYPE_CHECKING:
    from agents.consumers import AlertRule, Consumer, SharedSecret

app = typer.Typer(
    help="Receive notifications: reference consumers and simple sinks.", no_args_is_help=True
)


class Kind(enum.StrEnum):
    traffic = "traffic"
    environment = "environment"
    planning = "planning"
    jsonl = "jsonl"
    csv = "csv"
    geojson = "geojson"
    sqlite = "sqlite"
    webhook = "webhook"


def _secret(header: str | None, env: str | None, file: Path | None) -> SharedSecret | None:
    from agents.consumers import SharedSecret

    if header is None:
        if env or file:
            fail("--secret-env / --secret-file need --secret-header", ExitCode.USAGE)
        return None
    if env:
        value = os.environ.get(env)
        if not value:
            fail(f"environment variable {env} (--secret-env) is not set", ExitCode.USAGE)
    elif file:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            fail(f"--secret-file {file}: {exc.strerror or exc}", ExitCode.USAGE)
    else:
        fail("--secret-header needs --secret-env VAR or --secret-file FILE", ExitCode.USAGE)
    return SharedSecret(header=header, value=value)


def _rules(path: Path | None) -> tuple[AlertRule, ...]:
    import yaml
    from pydantic import TypeAdapter, ValidationError

    from agents.consumers import DEFAULT_RULES, AlertRule

    if path is None:
        return DEFAULT_RULES
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        fail(f"--rules {path}: {exc}", ExitCode.USAGE)
    items = data.get("rules") if isinstance(data, dict) else data
    try:
        return tuple(TypeAdapter(list[AlertRule]).validate_python(items))
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where = "/".join(str(step) for step in error["loc"])
            stderr.print(f"[red]invalid:[/red] {path}: rules/{where}: {error['msg']}")
        raise typer.Exit(int(ExitCode.INVALID)) from None


def _build(
    kind: Kind,
    *,
    name: str,
    out: Path | None,
    forward: str | None,
    rules: Path | None,
    geojson: Path | None,
    options: dict[str, Any],
) -> Consumer:
    from agents.consumers import (
        Consumer,
        CsvSink,
        GeoJsonSink,
        JsonLinesSink,
        Sink,
        SqliteSink,
        WebhookSink,
        environment_consumer,
        planning_consumer,
        traffic_consumer,
    )

    if kind is Kind.webhook:
        if not forward:
            fail("consume run webhook needs --forward URL", ExitCode.USAGE)
        return Consumer(name, sinks=[WebhookSink(forward)], **options)
    if out is None:
        fail(f"consume run {kind.value} needs --out", ExitCode.USAGE)
    if kind is Kind.traffic:
        consumer, _ = traffic_consumer(name=name, state_path=out, geojson_path=geojson, **options)
        return consumer
    if kind is Kind.environment:
        consumer, _ = environment_consumer(
            name=name, rules=_rules(rules), out_dir=out, forward_url=forward, **options
        )
        return consumer
    if kind is Kind.planning:
        consumer, _ = planning_consumer(name=name, archive_path=out, **options)
        return consumer
    sink: Sink
    if kind is Kind.jsonl:
        sink = JsonLinesSink(out)
    elif kind is Kind.csv:
        sink = CsvSink(out)
    elif kind is Kind.geojson:
        sink = GeoJsonSink(out)
    else:
        sink = SqliteSink(out)
    sinks: list[Sink] = [sink]
    if forward:
        sinks.append(WebhookSink(forward))
    return Consumer(name, sinks=sinks, **options)


@app.command("run")
def run(
    kind: Annotated[Kind, typer.Argument(help="Reference consumer or sink.")],
    *,
    port: Annotated[
        int | None, typer.Option(help="HTTP port for notifications (POST /notify).", envvar="PORT")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    path: Annotated[str, typer.Option(help="Path notifications are POSTed to.")] = "/notify",
    mqtt: Annotated[
        str | None,
        typer.Option(
            help="Also read notifications from mqtt://host:port/topic (MQTT URL).",
            envvar="DREHSCHEIBE_CONSUMER_MQTT_URL",
        ),
    ] = None,
    topic: Annotated[str | None, typer.Option(help="MQTT topic (default: the URL's path).")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="traffic: state JSON; environment: folder; planning: archive SQLite; "
            "jsonl/csv/geojson/sqlite: the file.",
        ),
    ] = None,
    geojson: Annotated[
        Path | None, typer.Option(help="traffic: also keep a GeoJSON of the latest state.")
    ] = None,
    forward: Annotated[
        str | None, typer.Option(help="Forward (environment: alerts; others: changes) here.")
    ] = None,
    rules: Annotated[
        Path | None, typer.Option(help="environment: alert rules (YAML list of rules).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Consumer name (logs, MQTT client id).")] = (
        None
    ),
    state: Annotated[
        Path | None, typer.Option(help="Folder of the durable inbox (default: beside --out).")
    ] = None,
    memory: Annotated[
        bool, typer.Option("--memory", help="Keep the inbox in memory (not durable).")
    ] = False,
    secret_header: Annotated[
        str | None, typer.Option(help="receiverInfo header that must carry the shared secret.")
    ] = None,
    secret_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the shared secret.")
    ] = None,
    secret_file: Annotated[
        Path | None, typer.Option(help="File holding the shared secret.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Receive notifications until interrupted (Ctrl-C / SIGTERM)."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if port is None and mqtt is None:
        fail("give --port, --mqtt, or both", ExitCode.USAGE)
    consumer_name = name or kind.value
    state_dir: Path | None = None
    if not memory:
        if state is not None:
            state_dir = state
        elif out is not None:
            state_dir = (
                out / "inbox" if kind is Kind.environment else out.with_name(out.name + ".inbox")
            )
        else:
            state_dir = Path(f".{consumer_name}.inbox")
    options: dict[str, Any] = {
        "state_dir": state_dir,
        "secret": _secret(secret_header, secret_env, secret_file),
    }
    consumer = _build(
        kind,
        name=consumer_name,
        out=out,
        forward=forward,
        rules=rules,
        geojson=geojson,
        options=options,
    )
    where = []
    if port is not None:
        where.append(f"http://{host}:{port}{path}")
    if mqtt:
        from agents.subscriptions import mask_url_password

        where.append(mask_url_password(mqtt) + (f" topic {topic}" if topic else ""))
    inbox = f"durable in {state_dir}" if state_dir else "in memory"
    stderr.print(f"consumer {consumer_name} ({kind.value}) on {' and '.join(where)}; inbox {inbox}")
    try:
        consumer.run(host=host, port=port, path=path, mqtt=mqtt, topic=topic)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


@app.command("query")
def query(
    archive: Annotated[Path, typer.Argument(help="Planning archive (SQLite).")],
    *,
    since: Annotated[str | None, typer.Option("--from", help="observedAt from (ISO, UTC).")] = None,
    until: Annotated[str | None, typer.Option("--to", help="observedAt before (ISO, UTC).")] = None,
    bbox: Annotated[
        str | None, typer.Option(help="minLon,minLat,maxLon,maxLat: location intersects it.")
    ] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", "-t", help="Entity type(s).")] = None,
    entity_id: Annotated[str | None, typer.Option("--id", help="One entity.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many changes.")] = 100,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """List archived changes by time and area, oldest first."""
    from agents.consumers import PlanningArchive

    if not archive.is_file():
        fail(f"{archive}: no such archive", ExitCode.USAGE)
    box = None
    if bbox is not None:
        try:
            box = [float(v) for v in bbox.split(",")]
        except ValueError:
            fail("--bbox takes four numbers: minLon,minLat,maxLon,maxLat", ExitCode.USAGE)
    store = PlanningArchive(archive)
    try:
        found = store.query(
            since=since, until=until, bbox=box, types=type_, entity_id=entity_id, limit=limit
        )
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    finally:
        store.close()
    if output is OutputFormat.json:
        print_json(found)
    else:
        print_table(
            f"{len(found)} changes",
            ["observedAt", "entityId", "entityType", "subscriptionId"],
            ([c["observedAt"], c["entityId"], c["entityType"], c["subscriptionId"]] for c in found),
        )
