"""`drehscheibe deadletters ...`: what the agent gave up on, with the reason; read, replay, purge.

The dead letters live in the agent's outbox database (`<data_dir>/outbox.db`); every command
finds it through the agent's configuration (`-c agent.yaml`) or `--data-dir`. The commands may
run while the agent runs: SQLite's WAL lets them read and write beside it.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

import typer

from drehscheibe._output import ExitCode, OutputFormat, fail, print_json, print_table
from drehscheibe.commands.agent import (
    ConfigOpt,
    DataDirOpt,
    parse_time,
    resolve_config,
)

app = typer.Typer(help="Read, replay and purge the agent's dead letters.", no_args_is_help=True)

ReasonOpt = Annotated[
    list[str] | None,
    typer.Option("--reason", "-r", help="Only this reason code (repeatable), e.g. codec-error."),
]
DeviceOpt = Annotated[str | None, typer.Option("--device", "-d", help="Only this DevEUI.")]
SourceOpt = Annotated[str | None, typer.Option("--source", help="Only this source name.")]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="From this time on: ISO 8601, or an age such as 2h, 30m, 7d."),
]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Before this time (as --since).")]
IdOpt = Annotated[list[int] | None, typer.Option("--id", help="Only this id (repeatable).")]


def _filters(
    reason: list[str] | None,
    device: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    from agents.lorawan import normalize_eui

    found: dict[str, Any] = {}
    if reason:
        found["reason"] = reason
    if device:
        try:
            found["dev_eui"] = normalize_eui(device)
        except ValueError as exc:
            fail(f"--device {device!r}: {exc}", ExitCode.USAGE)
    if source:
        found["source"] = source
    if since:
        found["since"] = parse_time(since, option="--since")
    if until:
        found["until"] = parse_time(until, option="--until")
    return found


def _letters(config: Path | None, data_dir: Path | None) -> Any:
    from agents.delivery import DeadLetters

    resolved = resolve_config(config, data_dir)
    path = resolved.outbox_path
    if not path.is_file():
        fail(f"no outbox database at {path}: has the agent run with this data folder?")
    return DeadLetters(path)


def _payload_text(letter: Any) -> tuple[str, str]:
    raw = letter.raw
    if raw is None:
        return "none", ""
    try:
        return "text", raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64", base64.b64encode(raw).decode()


def _row(letter: Any) -> list[Any]:
    return [
        letter.id,
        letter.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        letter.reason,
        letter.source or "",
        letter.dev_eui or letter.entity_id or "",
        (letter.message[:90] + "…") if len(letter.message) > 90 else letter.message,
        "yes" if letter.replayed_at is not None else "",
    ]


@app.command("list")
def list_(
    *,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    reason: ReasonOpt = None,
    device: DeviceOpt = None,
    source: SourceOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    replayed: Annotated[
        bool | None,
        typer.Option("--replayed/--not-replayed", help="Only those taken (or not) for replay."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.")] = 100,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="table for people, json for scripts.")
    ] = OutputFormat.table,
) -> None:
    """List dead letters, oldest first, with their reason and message."""
    filters = _filters(reason, device, source, since, until)
    with _letters(config, data_dir) as letters:
        found = letters.list(**filters, replayed=replayed, limit=limit)
        total = letters.count(**filters, replayed=replayed)
    if output is OutputFormat.json:
        print_json([letter.model_dump(mode="json", exclude={"payload"}) for letter in found])
        return
    title = f"{len(found)} of {total} dead letters" if total > len(found) else None
    print_table(
        title,
        ["id", "created (UTC)", "reason", "source", "device / entity", "message", "replayed"],
        (_row(letter) for letter in found),
    )


@app.command("show")
def show(
    letter_id: Annotated[int, typer.Argument(help="The dead letter's id.")],
    *,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Print one dead letter as JSON, with its raw input (text, or base64 when binary)."""
    from agents.delivery import DeadLetterNotFound

    with _letters(config, data_dir) as letters:
        try:
            letter = letters.show(letter_id)
        except DeadLetterNotFound as exc:
            fail(str(exc), ExitCode.CLIENT_ERROR)
    data = letter.model_dump(mode="json", exclude={"payload", "payload_json"})
    encoding, text = _payload_text(letter)
    data["payload_encoding"] = encoding
    data["payload"] = letter.payload_json if letter.payload_json is not None else text
    print_json(data)


@app.command("replay")
def replay(
    *,
    config: ConfigOpt = None,
    ids: IdOpt = None,
    reason: ReasonOpt = None,
    device: DeviceOpt = None,
    source: SourceOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    include_replayed: Annotated[
        bool, typer.Option("--include-replayed", help="Also those replayed before.")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="table for people, json for scripts.")
    ] = OutputFormat.table,
) -> None:
    """Run dead letters again through the current registry, profiles and mapping.

    Uplinks go through the whole pipeline (without duplicate detection); entities the broker
    rejected go back to the outbox as they are. The agent's sender delivers them. Entries stay
    in the store, marked as replayed; those that fail again come back as new dead letters.
    """
    from agents.runtime import ConfigError, replay_dead_letters

    filters = _filters(reason, device, source, since, until)
    resolved = resolve_config(config, None, need_file=True)
    if not resolved.outbox_path.is_file():
        fail(f"no outbox database at {resolved.outbox_path}")
    try:
        report = replay_dead_letters(
            resolved, ids=ids, include_replayed=include_replayed, limit=limit, **filters
        )
    except ConfigError as exc:
        fail(str(exc), ExitCode.INVALID)
    if output is OutputFormat.json:
        print_json(report.as_dict())
    else:
        print_table(
            None,
            ["taken", "uplinks", "entities queued", "failed again", "skipped"],
            [[report.taken, report.uplinks, report.entities, report.failed, report.skipped]],
        )
        for problem in report.problems:
            typer.echo(problem, err=True)
    if report.failed or report.skipped:
        raise typer.Exit(int(ExitCode.ERROR))


@app.command("purge")
def purge(
    *,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    ids: IdOpt = None,
    reason: ReasonOpt = None,
    device: DeviceOpt = None,
    source: SourceOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    replayed: Annotated[
        bool | None,
        typer.Option("--replayed/--not-replayed", help="Only those taken (or not) for replay."),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Delete every dead letter (no filter needed).")
    ] = False,
) -> None:
    """Delete dead letters matching the filters (at least one filter, or --all)."""
    filters = _filters(reason, device, source, since, until)
    if ids:
        filters["ids"] = ids
    if replayed is not None:
        filters["replayed"] = replayed
    if not filters and not everything:
        fail("give a filter (--id, --reason, --device, --since, ...) or --all", ExitCode.USAGE)
    with _letters(config, data_dir) as letters:
        deleted = letters.purge(**filters, everything=everything)
    typer.echo(f"{deleted} dead letters deleted")
