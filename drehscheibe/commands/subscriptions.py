"""`drehscheibe subscriptions ...`: NGSI-LD subscriptions, one by one or as code.

One by one: `create`, `list`, `show`, `update`, `delete`, `pause`, `resume`, `test`.
As code: `diff -f consumers.yaml` shows what `apply -f consumers.yaml` would change; `apply`
reconciles (twice changes nothing); `export` writes the broker's subscriptions as such a file.
The work is done by `agents.subscriptions`; these commands parse options and present results.

Exit codes (`drehscheibe._output.ExitCode`): 0 done; 1 `diff --exit-code` found changes;
2 bad options; 3 broker unreachable; 4 the broker refused (4xx) or a change failed; 5 the broker
failed (5xx); 6 the consumers file is invalid.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from drehscheibe._output import (
    ExitCode,
    OutputFormat,
    fail,
    ngsi_errors,
    print_json,
    print_table,
    stderr,
)
from drehscheibe.commands._common import (
    DEFAULT_BROKER,
    BrokerOpt,
    ContextOpt,
    OutputOpt,
    TenantOpt,
    TokenFileOpt,
    make_client,
)
from ngsi import NgsiApiError, NgsiError

app = typer.Typer(
    help="NGSI-LD subscriptions: one by one, or declared in a consumers file (apply/diff).",
    no_args_is_help=True,
)

FileOpt = Annotated[
    Path,
    typer.Option("--file", "-f", help="Consumers file (YAML).", exists=False, dir_okay=False),
]


@contextmanager
def _file_errors() -> Iterator[None]:
    from agents.subscriptions import ConsumersFileError

    try:
        yield
    except ConsumersFileError as exc:
        for problem in exc.problems:
            stderr.print(f"[red]invalid:[/red] {problem.render(exc.source)}", soft_wrap=True)
        raise typer.Exit(int(ExitCode.INVALID)) from None


def _pairs(values: Sequence[str] | None, option: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            fail(f"{option} {value!r}: expected KEY=VALUE", ExitCode.USAGE)
        pairs.append((key.strip(), rest))
    return pairs


def _names(values: Sequence[str] | None) -> list[str]:
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


def _read_document(path: Path) -> dict[str, Any]:
    import yaml

    try:
        raw = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        data = yaml.safe_load(raw)
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}", ExitCode.USAGE)
    except yaml.YAMLError as exc:
        fail(f"{path}: neither JSON nor YAML: {exc}", ExitCode.USAGE)
    if not isinstance(data, dict):
        fail(f"{path}: expected one subscription (a JSON/YAML object)", ExitCode.USAGE)
    return data


def _geoq(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        fail(
            '--geoq expects JSON: {"geometry": "Point", "coordinates": [13.4, 52.5], '
            '"georel": "near;maxDistance==1000"}',
            ExitCode.USAGE,
        )
    if not isinstance(value, dict):
        fail("--geoq expects a JSON object", ExitCode.USAGE)
    return value


# --- one by one ---------------------------------------------------------------------------------


@app.command("create")
def create(
    *,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="A subscription as JSON or YAML (- for stdin)."),
    ] = None,
    type_: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Entity type (repeatable).")
    ] = None,
    entity_id: Annotated[
        list[str] | None, typer.Option("--id", help="Entity id (repeatable; one --type).")
    ] = None,
    id_pattern: Annotated[str | None, typer.Option(help="Regular expression on ids.")] = None,
    watch: Annotated[
        list[str] | None, typer.Option("--watch", "-w", help="Watched attributes (a,b).")
    ] = None,
    q: Annotated[str | None, typer.Option("--q", help="NGSI-LD query, e.g. 'no2>200'.")] = None,
    geoq: Annotated[str | None, typer.Option("--geoq", help="geoQ as JSON.")] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", "-e", help="http(s):// or mqtt:// URI.")
    ] = None,
    accept: Annotated[
        str | None, typer.Option(help="application/json or application/ld+json.")
    ] = None,
    receiver_info: Annotated[
        list[str] | None,
        typer.Option("--receiver-info", help="KEY=VALUE sent as a header (repeatable)."),
    ] = None,
    notifier_info: Annotated[
        list[str] | None,
        typer.Option("--notifier-info", help="KEY=VALUE, e.g. MQTT-QoS=1 (repeatable)."),
    ] = None,
    format_: Annotated[
        str | None, typer.Option("--format", help="normalized, concise or keyValues.")
    ] = None,
    attrs: Annotated[
        list[str] | None, typer.Option("--attrs", help="Attributes to notify (a,b).")
    ] = None,
    sys_attrs: Annotated[bool, typer.Option("--sys-attrs", help="Add createdAt/modifiedAt.")] = (
        False
    ),
    show_changes: Annotated[
        bool, typer.Option("--show-changes", help="Add previous values.")
    ] = False,
    throttling: Annotated[float | None, typer.Option(help="Seconds between notifications.")] = None,
    time_interval: Annotated[
        float | None, typer.Option(help="Periodic: seconds between notifications.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="subscriptionName.")] = None,
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
    expires_at: Annotated[str | None, typer.Option(help="Expiry (ISO 8601, UTC).")] = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Create it paused.")] = False,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Create one subscription from options or from a file; prints its id."""
    from agents.subscriptions import SubscriptionOptionError, build_subscription

    if file is not None:
        body = _read_document(file)
        chosen = context or (body.get("jsonldContext") if isinstance(body, dict) else None)
    else:
        if endpoint is None:
            fail("give --endpoint (or -f FILE)", ExitCode.USAGE)
        try:
            body, chosen = build_subscription(
                endpoint=endpoint,
                types=type_ or [],
                entity_ids=entity_id or [],
                id_pattern=id_pattern,
                watch=_names(watch),
                q=q,
                geo_q=_geoq(geoq),
                accept=accept,
                receiver_info=_pairs(receiver_info, "--receiver-info"),
                notifier_info=_pairs(notifier_info, "--notifier-info"),
                format=format_,
                attributes=_names(attrs),
                sys_attrs=sys_attrs,
                show_changes=show_changes,
                throttling=throttling,
                time_interval=time_interval,
                name=name,
                description=description,
                expires_at=expires_at,
                is_active=False if inactive else None,
                context=context,
            )
        except SubscriptionOptionError as exc:
            fail(str(exc), ExitCode.USAGE)
    with ngsi_errors(), make_client(broker, tenant, None, token_file=token_file) as client:
        subscription_id = client.create_subscription(body, context=chosen)
    if output is OutputFormat.json:
        print_json({"id": subscription_id})
    else:
        typer.echo(subscription_id)


def _status(data: dict[str, Any]) -> str:
    status = str(data.get("status") or "")
    delivery = (data.get("notification") or {}).get("status")
    return f"{status}, failing" if delivery == "failed" and status == "active" else status


@app.command("list")
def list_(
    *,
    name_prefix: Annotated[
        str | None, typer.Option(help="Only subscriptions whose name starts with this.")
    ] = None,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """List every subscription (pages through all of them) with its delivery status."""
    with ngsi_errors(), make_client(broker, tenant, context, token_file=token_file) as client:
        found = [s.to_dict(include_read_only=True) for s in client.list_subscriptions()]
    if name_prefix:
        found = [s for s in found if str(s.get("subscriptionName") or "").startswith(name_prefix)]
    if output is OutputFormat.json:
        print_json(found)
        return
    rows = []
    for data in found:
        notification = data.get("notification") or {}
        rows.append(
            [
                data.get("id"),
                data.get("subscriptionName"),
                _status(data),
                notification.get("timesSent", 0),
                notification.get("lastSuccess"),
                notification.get("lastFailure"),
            ]
        )
    columns = ["id", "name", "status", "timesSent", "lastSuccess", "lastFailure"]
    if sys.stdout.isatty():
        print_table(f"{len(rows)} subscriptions", columns, rows)
    else:
        _plain_table(columns, rows)


def _plain_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Aligned columns without decoration, for pipes and scripts (fast for thousands of rows)."""
    cells = [list(columns), *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    sys.stdout.write(
        "".join(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
            for row in cells
        )
    )


def _readable(client: Any, subscription_id: str, context: str | None) -> dict[str, Any]:
    from agents.subscriptions import context_of

    first = client.retrieve_subscription(subscription_id, context=context)
    data: dict[str, Any] = first.to_dict(include_read_only=True)
    if context is None:
        own = context_of(data)
        if own:
            with suppress(NgsiApiError):
                data = client.retrieve_subscription(subscription_id, context=own).to_dict(
                    include_read_only=True
                )
    return data


@app.command("show")
def show(
    subscription_id: Annotated[str, typer.Argument(help="Subscription id.")],
    *,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="Print receiverInfo values.")
    ] = False,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
    context: ContextOpt = None,
) -> None:
    """Print one subscription as JSON, names in its own @context, secrets masked."""
    from agents.subscriptions import mask_secrets

    with ngsi_errors(), make_client(broker, tenant, None, token_file=token_file) as client:
        data = _readable(client, subscription_id, context)
    print_json(data if show_secrets else mask_secrets(data))


@app.command("update")
def update(
    subscription_id: Annotated[str, typer.Argument(help="Subscription id.")],
    *,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Members to change, as JSON or YAML (- for stdin)."),
    ] = None,
    watch: Annotated[list[str] | None, typer.Option("--watch", "-w")] = None,
    q: Annotated[str | None, typer.Option("--q")] = None,
    geoq: Annotated[str | None, typer.Option("--geoq", help="geoQ as JSON.")] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", "-e")] = None,
    throttling: Annotated[float | None, typer.Option()] = None,
    time_interval: Annotated[float | None, typer.Option()] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    expires_at: Annotated[str | None, typer.Option()] = None,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
    context: ContextOpt = None,
) -> None:
    """Change members of a subscription (PATCH); --endpoint keeps the other endpoint members."""
    from agents.subscriptions import context_of

    fragment: dict[str, Any] = _read_document(file) if file is not None else {}
    if watch:
        fragment["watchedAttributes"] = _names(watch)
    if q is not None:
        fragment["q"] = q
    if geoq is not None:
        fragment["geoQ"] = _geoq(geoq)
    for key, value in (
        ("throttling", throttling),
        ("timeInterval", time_interval),
        ("subscriptionName", name),
        ("description", description),
        ("expiresAt", expires_at),
    ):
        if value is not None:
            fragment[key] = value
    if not fragment and endpoint is None:
        fail("nothing to change: give -f FILE or an option such as --q", ExitCode.USAGE)
    with ngsi_errors(), make_client(broker, tenant, None, token_file=token_file) as client:
        current = _readable(client, subscription_id, context)
        chosen = context or context_of(current)
        if endpoint is not None:
            notification = {
                k: v
                for k, v in (current.get("notification") or {}).items()
                if k in ("attributes", "format", "sysAttrs", "showChanges", "endpoint")
            }
            point = dict(notification.get("endpoint") or {})
            point["uri"] = endpoint
            notification["endpoint"] = {
                k: v
                for k, v in point.items()
                if k in ("uri", "accept", "receiverInfo", "notifierInfo")
            }
            fragment["notification"] = notification
        client.update_subscription(subscription_id, fragment, context=chosen)
    typer.echo(f"updated {subscription_id}")


@app.command("delete")
def delete(
    subscription_ids: Annotated[list[str], typer.Argument(help="Subscription ids.")],
    *,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Delete subscriptions by id."""
    with ngsi_errors(), make_client(broker, tenant, None, token_file=token_file) as client:
        for subscription_id in subscription_ids:
            client.delete_subscription(subscription_id)
            typer.echo(f"deleted {subscription_id}")


def _set_active(
    ids: Sequence[str], active: bool, broker: str, tenant: str | None, token_file: Path | None
) -> None:
    with ngsi_errors(), make_client(broker, tenant, None, token_file=token_file) as client:
        for subscription_id in ids:
            client.update_subscription(subscription_id, {"isActive": active})
            typer.echo(f"{'resumed' if active else 'paused'} {subscription_id}")


@app.command("pause")
def pause(
    subscription_ids: Annotated[list[str], typer.Argument(help="Subscription ids.")],
    *,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Stop notifications (isActive: false).

    `apply` leaves a pause alone unless the consumers file sets isActive.
    """
    _set_active(subscription_ids, False, broker, tenant, token_file)


@app.command("resume")
def resume(
    subscription_ids: Annotated[list[str], typer.Argument(help="Subscription ids.")],
    *,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Notify again (isActive: true)."""
    _set_active(subscription_ids, True, broker, tenant, token_file)


def _sample_entity(client: Any, data: dict[str, Any], context: str | None) -> dict[str, Any]:
    selectors = data.get("entities") or []
    first = selectors[0] if selectors else {}
    type_name = str(first.get("type") or "Thing").split(",")[0].strip()
    notification = data.get("notification") or {}
    options = {"keyValues": "keyValues", "concise": "concise"}.get(
        str(notification.get("format") or "")
    )
    try:
        found = client.query(
            type=type_name,
            id=first.get("id"),
            id_pattern=first.get("idPattern"),
            attrs=notification.get("attributes"),
            options=options,
            limit=1,
            context=context,
        )
    except NgsiError:
        found = []
    if found:
        entity: dict[str, Any] = found[0]
        return entity
    simple = type_name.rsplit("/", 1)[-1]
    return {
        "id": f"urn:ngsi-ld:{simple}:drehscheibe-test",
        "type": type_name,
        "description": {"type": "Property", "value": "test notification from drehscheibe"}
        if options is None
        else "test notification from drehscheibe",
    }


@app.command("test")
def probe(
    subscription_id: Annotated[
        str | None, typer.Argument(help="Subscription whose endpoint to test.")
    ] = None,
    *,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", "-e", help="Test this endpoint instead.")
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", help="KEY=VALUE header (with --endpoint).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 5.0,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    tenant: TenantOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Send one sample notification, as the broker would, and report the endpoint's answer."""
    from agents.subscriptions import context_of, probe_endpoint, sample_notification

    if (subscription_id is None) == (endpoint is None):
        fail("give a subscription id or --endpoint URL (one of them)", ExitCode.USAGE)
    if subscription_id is not None:
        with ngsi_errors(), make_client(broker, tenant, None, token_file=token_file) as client:
            data = _readable(client, subscription_id, context)
            chosen = context or context_of(data)
            entity = _sample_entity(client, data, chosen)
        point = (data.get("notification") or {}).get("endpoint") or {}
        notification = sample_notification(subscription_id, [entity])
        result = probe_endpoint(
            str(point.get("uri")),
            notification,
            accept=str(point.get("accept") or "application/json"),
            context_url=chosen,
            tenant=tenant,
            receiver_info=[(p["key"], p["value"]) for p in point.get("receiverInfo") or []],
            notifier_info=[(p["key"], p["value"]) for p in point.get("notifierInfo") or []],
            timeout=timeout,
        )
    else:
        assert endpoint is not None
        notification = sample_notification(
            "urn:ngsi-ld:Subscription:drehscheibe-test",
            [
                {
                    "id": "urn:ngsi-ld:Thing:drehscheibe-test",
                    "type": "Thing",
                    "description": {
                        "type": "Property",
                        "value": "test notification from drehscheibe",
                    },
                }
            ],
        )
        result = probe_endpoint(
            endpoint,
            notification,
            context_url=context,
            tenant=tenant,
            receiver_info=_pairs(header, "--header"),
            timeout=timeout,
        )
    if output is OutputFormat.json:
        print_json(result.to_json())
    else:
        status = "no answer" if result.status is None else str(result.status)
        typer.echo(f"endpoint: {result.endpoint}")
        typer.echo(f"notification: {result.notification_id}")
        typer.echo(f"status: {status if result.error is None else 'failed'}")
        typer.echo(f"time: {result.elapsed_ms:.1f} ms")
        if result.error:
            typer.echo(f"error: {result.error}")
        if result.note:
            typer.echo(f"note: {result.note}")
        if result.body:
            typer.echo(f"body: {result.body}")
    if result.error is not None:
        raise typer.Exit(int(ExitCode.UNREACHABLE))
    if result.status is not None and result.status >= 500:
        raise typer.Exit(int(ExitCode.SERVER_ERROR))
    if result.status is not None and result.status >= 300:
        raise typer.Exit(int(ExitCode.CLIENT_ERROR))


# --- as code ------------------------------------------------------------------------------------


@app.command("diff")
def diff(
    file: FileOpt,
    *,
    prune: Annotated[
        bool, typer.Option("--prune", help="Show owned subscriptions not in the file as deletes.")
    ] = False,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit with 1 when there are changes (as git diff).")
    ] = False,
    show_unchanged: Annotated[
        bool, typer.Option("--show-unchanged", help="List unchanged subscriptions too.")
    ] = False,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Show what `apply -f FILE` would create, change and delete (the broker is not changed)."""
    from agents.subscriptions import load_consumers_file, plan, render_plan

    with _file_errors():
        consumers = load_consumers_file(file)
        with ngsi_errors(), make_client(broker, None, None, token_file=token_file) as client:
            the_plan = plan(client, consumers, prune=prune)
    if output is OutputFormat.json:
        print_json(the_plan.to_json())
    else:
        sys.stdout.write(render_plan(the_plan, show_unchanged=show_unchanged))
    if exit_code and the_plan.has_changes:
        raise typer.Exit(int(ExitCode.ERROR))


@app.command("apply")
def apply(
    file: FileOpt,
    *,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; change nothing.")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Delete owned subscriptions that are no longer in the file."),
    ] = False,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Reconcile the broker with the consumers file (running it twice changes nothing).

    Only subscriptions the file owns are touched: their subscriptionName is
    `<project>/<consumer>/<subscription>`. Changes are PATCHed where they only set members;
    otherwise the subscription is recreated (delete + create, the id changes).
    """
    from agents.subscriptions import (
        Action,
        apply_plan,
        load_consumers_file,
        plan,
        render_plan,
    )

    with _file_errors():
        consumers = load_consumers_file(file)
        with ngsi_errors(), make_client(broker, None, None, token_file=token_file) as client:
            the_plan = plan(client, consumers, prune=prune)
            report = None if dry_run else apply_plan(client, the_plan)
    if output is OutputFormat.json:
        print_json(
            {"plan": the_plan.to_json(), "applied": None if report is None else report.to_json()}
        )
    else:
        sys.stdout.write(render_plan(the_plan))
        if report is None:
            typer.echo("dry run: nothing changed")
        else:
            done = [o for o in report.outcomes if o.ok]
            typer.echo(f"applied: {len(done)} changes")
            for outcome in report.failed:
                stderr.print(
                    f"[red]failed:[/red] {outcome.change.action.value} {outcome.change.name}: "
                    f"{outcome.error}"
                )
            for change in the_plan.changes:
                if change.action is Action.orphan:
                    stderr.print(
                        f"kept {change.name} ({change.id}): not in the file; --prune deletes it"
                    )
    if report is not None and not report.ok:
        raise typer.Exit(int(ExitCode.CLIENT_ERROR))


@app.command("export")
def export(
    *,
    project: Annotated[
        str, typer.Option("--project", help="Project that will own the exported subscriptions.")
    ],
    owned_only: Annotated[
        bool, typer.Option("--owned-only", help="Only subscriptions the project owns already.")
    ] = False,
    show_secrets: Annotated[
        bool,
        typer.Option(
            "--show-secrets", help="Write receiverInfo values (default: ${ENV} references)."
        ),
    ] = False,
    tenant_names: Annotated[
        list[str] | None,
        typer.Option("--tenant", "-t", help="Tenant(s) to export (default: the default one)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (default: stdout).")
    ] = None,
    broker: BrokerOpt = DEFAULT_BROKER,
    token_file: TokenFileOpt = None,
) -> None:
    """Write the broker's subscriptions as a consumers file.

    Secrets become ${ENV} references unless --show-secrets is given.
    """
    from agents.subscriptions import export_file

    tenants: list[str | None] = list(tenant_names) if tenant_names else [None]
    try:
        with ngsi_errors(), make_client(broker, None, None, token_file=token_file) as client:
            result = export_file(
                client,
                project=project,
                tenants=tenants,
                owned_only=owned_only,
                redact=not show_secrets,
            )
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    import yaml

    text = yaml.safe_dump(result.data, sort_keys=False, allow_unicode=True, width=100)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")
    for warning in result.warnings:
        stderr.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
    if result.environment:
        stderr.print(
            "set these environment variables before apply: " + ", ".join(result.environment)
        )
