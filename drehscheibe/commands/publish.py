"""`drehscheibe publish ...`: the public projection for other cities and open data.

    drehscheibe publish check -r publish.yaml                 # validate the rules (and the key)
    drehscheibe publish preview -r publish.yaml --limit 3     # what would be published, per type
    drehscheibe publish resync -r publish.yaml                # rebuild the public tenant in full
    drehscheibe publish serve -r publish.yaml --port 8090     # keep it current: subscribe, re-sync,
                                                              # then receive notifications

The rules (`schemas/json/publish-rules.schema.json`) name the source and target tenants, the
types and attributes published, the coordinate precision, what happens to device identifiers
and which counts are suppressed below a threshold. The pseudonym key comes from the file the
rules name or from $DREHSCHEIBE_PUBLISH_KEY, never from the command line.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from drehscheibe._output import ExitCode, OutputFormat, fail, ngsi_errors, print_json, stderr
from drehscheibe.commands._common import DEFAULT_BROKER, BrokerOpt, OutputOpt

if TYPE_CHECKING:
    from agents.publish import PublishRules

app = typer.Typer(
    help="Publish a projection without personal data to a public tenant.", no_args_is_help=True
)

RulesOpt = Annotated[
    Path,
    typer.Option(
        "--rules", "-r", envvar="DREHSCHEIBE_PUBLISH_RULES", help="Rule file (YAML or JSON)."
    ),
]


def _rules(path: Path) -> tuple[PublishRules, bytes]:
    from agents.publish import RulesError, load_rules, read_key

    try:
        rules = load_rules(path)
        return rules, read_key(rules)
    except RulesError as exc:
        fail(str(exc), ExitCode.INVALID)


def _client(broker: str) -> Any:
    from ngsi import Client

    return Client(broker, profile="orion-ld")


@app.command("check")
def check(*, rules: RulesOpt, output: OutputOpt = OutputFormat.table) -> None:
    """Validate the rule file and the pseudonym key; show what each type publishes."""
    loaded, _ = _rules(rules)
    summary: list[dict[str, Any]] = [
        {
            "type": rule.type,
            "context": rule.context_url(),
            "attributes": list(rule.attributes),
            "coordinate_decimals": loaded.decimals(rule),
            "device_identifiers": loaded.identifiers(rule),
            "suppress_below": rule.suppress_below,
        }
        for rule in loaded.types
    ]
    if output is OutputFormat.json:
        print_json(
            {
                "source_tenant": loaded.source_tenant,
                "target_tenant": loaded.target_tenant,
                "types": summary,
            }
        )
        return
    stderr.print(f"rules ok: {loaded.source_tenant or '(default tenant)'} → {loaded.target_tenant}")
    for item in summary:
        suppressed = ", ".join(f"{k} < {v:g}" for k, v in item["suppress_below"].items())
        typer.echo(
            f"{item['type']}: {', '.join(item['attributes']) or '(id only)'}; coordinates "
            f"{item['coordinate_decimals']} decimals; device identifiers "
            f"{item['device_identifiers']}" + (f"; suppressed: {suppressed}" if suppressed else "")
        )


@app.command("preview")
def preview(
    *,
    rules: RulesOpt,
    broker: BrokerOpt = DEFAULT_BROKER,
    limit: Annotated[int, typer.Option(help="Entities per type.", min=1, max=1000)] = 3,
) -> None:
    """Print (as JSON) how the first entities of each published type would look in public."""
    from agents.publish import Projector

    loaded, key = _rules(rules)
    projector = Projector(loaded, key=key)
    shown: list[dict[str, Any]] = []
    with ngsi_errors(), _client(broker) as client:
        for rule in loaded.types:
            for entity in client.query(
                type=rule.type,
                limit=limit,
                tenant=loaded.source_tenant,
                context=rule.context_url(),
            ):
                projected = projector.project(entity)
                if projected is not None:
                    shown.append(projected)
    print_json(shown)


@app.command("resync")
def resync(
    *, rules: RulesOpt, broker: BrokerOpt = DEFAULT_BROKER, output: OutputOpt = OutputFormat.table
) -> None:
    """Rebuild the public tenant from the source: write every projected entity, delete what the
    rules no longer produce."""
    from agents.publish import PublicProjection

    loaded, key = _rules(rules)
    with ngsi_errors(), _client(broker) as client:
        report = PublicProjection(loaded, client=client, key=key).resync()
    if output is OutputFormat.json:
        print_json(report.to_json())
    else:
        typer.echo(
            f"read {report.read}, written {report.written}, deleted {report.deleted}, "
            f"failed {len(report.failed)}"
        )
    if report.failed:
        raise typer.Exit(int(ExitCode.CLIENT_ERROR))


class _Stopped(Exception):
    pass


def _raise_stopped(signum: int, frame: Any) -> None:
    raise _Stopped()


@app.command("serve")
def serve(
    *,
    rules: RulesOpt,
    broker: BrokerOpt = DEFAULT_BROKER,
    host: Annotated[str, typer.Option(help="Address the receiver listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the receiver listens on.")] = 8090,
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="URL the broker notifies (default http://HOST:PORT/notify; give it when the "
            "broker reaches this machine by another name)."
        ),
    ] = None,
    state: Annotated[
        Path, typer.Option(help="Folder of the durable inbox of notifications.")
    ] = Path("publish-state"),
    no_resync: Annotated[
        bool, typer.Option("--no-resync", help="Skip the full re-sync at start.")
    ] = False,
) -> None:
    """Keep the public tenant current: receive notifications, subscribe, re-sync, run until
    Ctrl-C or SIGTERM."""
    from agents.consumers import Consumer, serve_in_thread
    from agents.publish import PublicProjection

    loaded, key = _rules(rules)
    with ngsi_errors(), _client(broker) as client:
        projection = PublicProjection(loaded, client=client, key=key)
        consumer = Consumer("publish", sinks=[projection], state_dir=state)
        consumer.start()
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_stopped) if main else None
        try:
            with serve_in_thread(consumer, host=host, port=port) as receiver:
                target = endpoint or receiver.url
                ids = projection.subscribe(target)
                stderr.print(f"subscribed {len(ids)} types; notifications to {target}")
                if not no_resync:
                    report = projection.resync()
                    stderr.print(f"re-sync: {report.to_json()}")
                threading.Event().wait()
        except (KeyboardInterrupt, _Stopped):
            pass
        finally:
            consumer.stop()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    app()
