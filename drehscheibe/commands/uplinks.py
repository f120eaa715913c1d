"""`drehscheibe uplinks ...`: the agent's archive of raw uplinks; replay them after a fix."""

from __future__ import annotations

from typing import Annotated

import typer

from drehscheibe._output import ExitCode, OutputFormat, fail, print_json, print_table
from drehscheibe.commands.agent import ConfigOpt, parse_time, resolve_config

app = typer.Typer(help="Replay the agent's archived uplinks.", no_args_is_help=True)


@app.command("replay")
def replay(
    *,
    config: ConfigOpt = None,
    device: Annotated[str | None, typer.Option("--device", "-d", help="Only this DevEUI.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Received from this time on: ISO 8601 or an age (2h, 7d)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Received before this time (as --since).")
    ] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only this source name.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be replayed.")
    ] = False,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="table for people, json for scripts.")
    ] = OutputFormat.table,
) -> None:
    """Run archived uplinks again through the current registry, profiles and mapping.

    The entities go to the agent's outbox and the agent delivers them. Readings older than what
    the broker has are kept as history only; the current state is never set back.
    """
    from agents.lorawan import normalize_eui
    from agents.runtime import ConfigError, replay_archive

    if device is None and since is None and source is None:
        fail(
            "give --device, --since or --source (replaying the whole archive is rarely meant)",
            ExitCode.USAGE,
        )
    dev_eui = None
    if device is not None:
        try:
            dev_eui = normalize_eui(device)
        except ValueError as exc:
            fail(f"--device {device!r}: {exc}", ExitCode.USAGE)
    settings = resolve_config(config, None, need_file=True)
    try:
        report = replay_archive(
            settings,
            dev_eui=dev_eui,
            since=parse_time(since, option="--since") if since else None,
            until=parse_time(until, option="--until") if until else None,
            source=source,
            dry_run=dry_run,
        )
    except ConfigError as exc:
        fail(str(exc), ExitCode.INVALID)
    if output is OutputFormat.json:
        print_json(report.as_dict())
    elif dry_run:
        typer.echo(f"{report.taken} archived uplinks would be replayed")
    else:
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(report.outcomes.items()))
        print_table(
            None,
            ["uplinks", "entities queued", "dead letters", "skipped", "outcomes"],
            [[report.uplinks, report.entities, report.failed, report.skipped, outcomes]],
        )
        for problem in report.problems:
            typer.echo(problem, err=True)
    if report.skipped:
        raise typer.Exit(int(ExitCode.ERROR))
