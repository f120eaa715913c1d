"""`drehscheibe erase ...`: erase one device's or one area's data, apply the agent's retention.

    drehscheibe erase device 70B3D57ED0000001 --tenant city -c agent.yaml
    drehscheibe erase area --bbox 6.77,51.22,6.78,51.23 --tenant city --data-dir agent-data
    drehscheibe erase area --polygon area.geojson --dry-run -o json
    drehscheibe erase expired -c agent.yaml --archive-days 30 --dead-letter-days 90

An erasure reaches the broker's current state and history (over NGSI-LD) and, with the agent's
configuration or data folder, its archived uplinks, dead letters, outbox and frame counters. It
prints what it removed, counted per store (`-o json` for the record of the request). `--dry-run`
only lists the entities and devices it would erase.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from drehscheibe._output import ExitCode, OutputFormat, fail, ngsi_errors, print_json, print_table
from drehscheibe.commands._common import DEFAULT_BROKER, BrokerOpt, OutputOpt, TenantOpt
from drehscheibe.commands.agent import ConfigOpt, DataDirOpt, resolve_config

if TYPE_CHECKING:
    from agents.privacy import ErasureReport

app = typer.Typer(
    help="Erase one device's or one area's data everywhere; apply the agent's retention.",
    no_args_is_help=True,
)

DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="List what would be erased; change nothing.")
]


def _agent_dir(config: Path | None, data_dir: Path | None) -> Path | None:
    if config is None and data_dir is None:
        return None
    resolved = resolve_config(config, data_dir)
    return Path(resolved.agent.data_dir)


def _show(report: ErasureReport, output: OutputFormat, *, dry_run: bool) -> None:
    if output is OutputFormat.json:
        print_json({**report.to_json(), "dry_run": dry_run})
        return
    verb = "would erase" if dry_run else "erased"
    typer.echo(
        f"{report.subject}: {verb} {len(report.entities)} entities, {len(report.devices)} devices"
    )
    for entity_id in sorted(report.entities):
        typer.echo(f"  {entity_id}")
    if not dry_run:
        print_table("removed", ["store", "count"], sorted(report.counts().items()))
    for note in report.notes:
        typer.echo(f"note: {note}")


def _eraser(broker: str, tenant: str | None, agent_dir: Path | None) -> Any:
    from agents.privacy import Eraser
    from ngsi import Client

    return Eraser(Client(broker, tenant=tenant), agent_dir=agent_dir)


@app.command("device")
def device(
    dev_eui: Annotated[str, typer.Argument(help="The device's DevEUI.")],
    *,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Erase one device: its Device entity, the entities it fed (refDevice) or whose id names
    it, in current state and history, and its uplinks and dead letters in the agent."""
    from agents.lorawan import normalize_eui

    try:
        eui = normalize_eui(dev_eui)
    except ValueError as exc:
        fail(f"DEVEUI {dev_eui!r}: {exc}", ExitCode.USAGE)
    agent_dir = _agent_dir(config, data_dir)
    with ngsi_errors():
        eraser = _eraser(broker, tenant, agent_dir)
        with eraser.client:
            report = eraser.erase_device(eui, dry_run=dry_run)
    _show(report, output, dry_run=dry_run)


def _area(bbox: str | None, polygon: Path | None) -> dict[str, Any]:
    from agents.privacy import bbox_polygon

    if (bbox is None) == (polygon is None):
        fail("give --bbox or --polygon (one of them)", ExitCode.USAGE)
    if bbox is not None:
        try:
            west, south, east, north = (float(part) for part in bbox.split(","))
            return bbox_polygon(west, south, east, north)
        except ValueError as exc:
            fail(f"--bbox {bbox!r}: expected WEST,SOUTH,EAST,NORTH in degrees ({exc})")
    assert polygon is not None
    try:
        data = orjson.loads(polygon.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        fail(f"--polygon {polygon}: not a readable GeoJSON file ({exc})", ExitCode.USAGE)
    if isinstance(data, dict) and data.get("type") == "Feature":
        data = data.get("geometry")
    if not isinstance(data, dict) or data.get("type") not in ("Polygon", "MultiPolygon"):
        fail(f"--polygon {polygon}: expected a GeoJSON Polygon or MultiPolygon", ExitCode.USAGE)
    return data


@app.command("area")
def area(
    *,
    bbox: Annotated[
        str | None, typer.Option(help="WEST,SOUTH,EAST,NORTH in degrees (WGS 84).")
    ] = None,
    polygon: Annotated[
        Path | None, typer.Option(help="GeoJSON file: a Polygon, MultiPolygon or a Feature.")
    ] = None,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Erase an area: every entity located in it (current state and history), and the data of
    the devices among them."""
    geometry = _area(bbox, polygon)
    agent_dir = _agent_dir(config, data_dir)
    with ngsi_errors():
        eraser = _eraser(broker, tenant, agent_dir)
        with eraser.client:
            try:
                report = eraser.erase_area(geometry, dry_run=dry_run)
            except ValueError as exc:
                fail(str(exc), ExitCode.USAGE)
    _show(report, output, dry_run=dry_run)


@app.command("expired")
def expired(
    *,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    archive_days: Annotated[
        float | None, typer.Option(help="Keep archived uplinks this many days.", min=0.001)
    ] = None,
    dead_letter_days: Annotated[
        float | None, typer.Option(help="Keep dead letters this many days.", min=0.001)
    ] = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Apply the agent's retention now: delete archived uplinks and dead letters older than
    the given periods (the archive's default is the agent's archive.retention_days)."""
    from agents.privacy import apply_agent_retention

    if config is None and data_dir is None:
        fail("give the agent's configuration (-c) or --data-dir", ExitCode.USAGE)
    resolved = resolve_config(config, data_dir)
    if archive_days is None:
        archive_days = resolved.archive.retention_days
    report = apply_agent_retention(
        Path(resolved.agent.data_dir),
        archive_days=archive_days,
        dead_letter_days=dead_letter_days,
    )
    if output is OutputFormat.json:
        print_json(report.to_json())
    else:
        typer.echo(f"deleted {report.archive} archived uplinks, {report.dead_letters} dead letters")


if __name__ == "__main__":
    app()
