"""`drehscheibe entities ...`: read and write NGSI-LD entities in any broker."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from drehscheibe._output import ExitCode, OutputFormat, fail, ngsi_errors, print_json, print_table
from drehscheibe.commands._common import (
    DEFAULT_BROKER,
    BrokerOpt,
    ContextOpt,
    OutputOpt,
    TenantOpt,
    TokenFileOpt,
    make_client,
)

app = typer.Typer(help="Read and write NGSI-LD entities.", no_args_is_help=True)


def _summary(entity: dict[str, Any]) -> list[str]:
    attributes = sorted(k for k in entity if k not in {"id", "type", "@context"})
    return [entity.get("id", ""), str(entity.get("type", "")), ", ".join(attributes)]


@app.command("get")
def get(
    entity_id: Annotated[str, typer.Argument(help="Entity id (a URI).")],
    *,
    attrs: Annotated[str | None, typer.Option(help="Comma-separated attributes.")] = None,
    key_values: Annotated[bool, typer.Option("--key-values", help="keyValues form.")] = False,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
    context: ContextOpt = None,
) -> None:
    """Print one entity as JSON."""
    with ngsi_errors(), make_client(broker, tenant, context, token_file=token_file) as client:
        entity = client.retrieve(
            entity_id,
            attrs=attrs.split(",") if attrs else None,
            options="keyValues" if key_values else None,
        )
    print_json(entity)


@app.command("list")
def list_(
    *,
    type_: Annotated[str | None, typer.Option("--type", "-t", help="Entity type(s).")] = None,
    q: Annotated[str | None, typer.Option("--q", help="NGSI-LD query, e.g. 'co2>800'.")] = None,
    id_pattern: Annotated[str | None, typer.Option(help="Regular expression on ids.")] = None,
    attrs: Annotated[str | None, typer.Option(help="Comma-separated attributes.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many entities.")] = 100,
    key_values: Annotated[bool, typer.Option("--key-values", help="keyValues form.")] = False,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """List entities matching a query (pages through the broker's results)."""
    if not (type_ or q or id_pattern or attrs):
        fail("give at least one of --type, --q, --id-pattern or --attrs", ExitCode.USAGE)
    entities: list[dict[str, Any]] = []
    with ngsi_errors(), make_client(broker, tenant, context, token_file=token_file) as client:
        for entity in client.iter_entities(
            type=type_,
            q=q,
            id_pattern=id_pattern,
            attrs=attrs.split(",") if attrs else None,
            options="keyValues" if key_values else None,
        ):
            entities.append(entity)
            if len(entities) >= limit:
                break
    if output is OutputFormat.json:
        print_json(entities)
    else:
        print_table(None, ["id", "type", "attributes"], (_summary(e) for e in entities))


@app.command("count")
def count(
    *,
    type_: Annotated[str | None, typer.Option("--type", "-t", help="Entity type(s).")] = None,
    q: Annotated[str | None, typer.Option("--q", help="NGSI-LD query.")] = None,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
    context: ContextOpt = None,
) -> None:
    """Print how many entities match."""
    if not (type_ or q):
        fail("give --type or --q", ExitCode.USAGE)
    with ngsi_errors(), make_client(broker, tenant, context, token_file=token_file) as client:
        typer.echo(client.count(type=type_, q=q))


@app.command("upsert")
def upsert(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="JSON file: an entity or a list; - for stdin.")
    ],
    *,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Replace whole entities (default: update only the given attributes)."
        ),
    ] = False,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Create or update entities in batches."""
    raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        fail(f"{file}: not JSON: {exc}", ExitCode.USAGE)
    entities = data if isinstance(data, list) else [data]
    with ngsi_errors(), make_client(broker, tenant, context, token_file=token_file) as client:
        result = client.batch_upsert(entities, mode="replace" if replace else "update")
    if output is OutputFormat.json:
        print_json(result.model_dump(mode="json"))
    else:
        typer.echo(f"{len(result.succeeded)} upserted, {len(result.failed)} failed")
        for failure in result.failed:
            typer.echo(f"  {failure.entity_id}: {failure.problem.detail or failure.problem.title}")
    if result.failed:
        raise typer.Exit(int(ExitCode.CLIENT_ERROR))


@app.command("delete")
def delete(
    entity_ids: Annotated[list[str], typer.Argument(help="Entity ids.")],
    *,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Delete entities."""
    with ngsi_errors(), make_client(broker, tenant, None, token_file=token_file) as client:
        for entity_id in entity_ids:
            client.delete(entity_id)
    typer.echo(f"{len(entity_ids)} deleted")


@app.command("types")
def types(
    *,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """List the entity types the broker holds."""
    with ngsi_errors(), make_client(broker, tenant, context, token_file=token_file) as client:
        found = client.types()
    if output is OutputFormat.json:
        print_json(found)
    else:
        print_table(None, ["type"], ([name] for name in found))
