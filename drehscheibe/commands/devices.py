"""`drehscheibe devices ...`: register LoRaWAN devices as Device entities in the broker.

Registrations live in the broker (design decision 1); a running agent picks up every change
through its subscription, without a restart. Exit codes: 4 for a DevEUI that is registered
already (register) or not registered (show, update, delete), 6 for a registration that is not
valid (an unknown profile, a bad DevEUI or location), 3 when the broker is unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from agents.fleet import read_health
from agents.lorawan import normalize_eui
from agents.registry import (
    API_KEY_ENV,
    Calibration,
    DeviceAlreadyRegistered,
    DeviceNotRegistered,
    NetworkServerKind,
    RegisteredDevice,
    Registry,
    RegistryError,
    parse_point,
    read_api_key,
    read_network_server,
)
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
    OutputOpt,
    TenantOpt,
    make_client,
)
from drehscheibe.commands.profiles import ProfilesDirOpt, load_catalog

__all__ = ["app"]

app = typer.Typer(
    help="Register LoRaWAN devices: Device entities in the broker, with profile and place.",
    no_args_is_help=True,
)

NameOpt = Annotated[str | None, typer.Option("--name", help="A name for people.")]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="A description.")]
PointOpt = Annotated[
    str | None,
    typer.Option(
        "--measuring-point",
        help="The place its observations belong to (default: the DevEUI); keeps the time "
        "series when the sensor is swapped.",
    ),
]
LocationOpt = Annotated[
    str | None, typer.Option("--location", help="Where it is installed: LON,LAT (WGS 84).")
]
OwnerOpt = Annotated[
    list[str] | None, typer.Option("--owner", help="Who is responsible (an id); repeatable.")
]
ModelOpt = Annotated[
    str | None, typer.Option("--device-model", help="Its DeviceModel (id or name).")
]
StateOpt = Annotated[
    str | None,
    typer.Option("--state", help="active, maintenance, inactive, decommissioned or unprovisioned."),
]
InstalledOpt = Annotated[
    str | None, typer.Option("--installed", help="When it was installed (ISO 8601, with zone).")
]


def _eui(text: str) -> str:
    try:
        return normalize_eui(text)
    except ValueError as exc:
        fail(f"{text!r}: {exc}", ExitCode.USAGE)


@contextmanager
def _registry(broker: str, tenant: str | None, profiles_dir: Path | None) -> Iterator[Registry]:
    catalog = load_catalog(profiles_dir)
    with ngsi_errors(), make_client(broker, tenant, None) as client:
        try:
            yield Registry(client, profiles=catalog)
        except (DeviceAlreadyRegistered, DeviceNotRegistered) as exc:
            fail(str(exc), ExitCode.CLIENT_ERROR)
        except RegistryError as exc:
            fail(str(exc), ExitCode.INVALID)


def _fields(
    *,
    name: str | None,
    description: str | None,
    measuring_point: str | None,
    location: str | None,
    owner: list[str] | None,
    device_model: str | None,
    state: str | None,
    installed: str | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if name is not None:
        fields["name"] = name or None
    if description is not None:
        fields["description"] = description or None
    if measuring_point is not None:
        fields["measuring_point"] = measuring_point or None
    if location is not None:
        try:
            fields["location"] = parse_point(location) if location else None
        except ValueError as exc:
            fail(f"--location: {exc}", ExitCode.USAGE)
    if owner:
        fields["owner"] = tuple(owner)
    if device_model is not None:
        fields["device_model"] = device_model or None
    if state is not None:
        fields["state"] = state
    if installed is not None:
        fields["date_installed"] = _datetime(installed, "--installed") if installed else None
    return fields


def _datetime(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not an ISO 8601 date-time", ExitCode.USAGE)
    if value.tzinfo is None:
        fail(f"{option} {text!r} has no time zone (add Z or +01:00)", ExitCode.USAGE)
    return value


def _first_problem(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(step) for step in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _record(device: RegisteredDevice) -> dict[str, Any]:
    return device.model_dump(mode="json", by_alias=True)


def _rows(device: RegisteredDevice) -> list[list[str]]:
    location = ""
    if device.location is not None:
        location = ",".join(str(c) for c in device.location.get("coordinates", []))
    rows = [
        ["DevEUI", device.dev_eui],
        ["device id", device.device_id],
        ["name", device.name or ""],
        ["profile", device.profile or ""],
        ["measuring point", device.point],
        ["location", location],
        ["state", device.state],
        ["owner", ", ".join(device.owner)],
        ["device model", device.device_model or ""],
        ["installed", device.date_installed.isoformat() if device.date_installed else ""],
        ["first used", device.date_first_used.isoformat() if device.date_first_used else ""],
        [
            "decommissioned",
            device.date_decommissioned.isoformat() if device.date_decommissioned else "",
        ],
        ["controls", ", ".join(device.controlled_property)],
    ]
    for placement in device.placements:
        since = placement.valid_from.isoformat() if placement.valid_from else "always"
        where = ",".join(str(c) for c in placement.location["coordinates"])
        rows.append([f"placed from {since}", where])
    for item in device.calibration:
        until = item.valid_until.isoformat() if item.valid_until else "open"
        since = item.valid_from.isoformat() if item.valid_from else "always"
        rows.append(
            [
                f"calibration {item.attribute}",
                f"x{item.scale:g} {item.offset:+g} ({since} .. {until})",
            ]
        )
    return rows


def _print(device: RegisteredDevice, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print_json(_record(device))
    else:
        print_table(None, ["field", "value"], _rows(device))


@app.command("register")
def register(
    dev_eui: Annotated[str, typer.Argument(help="DevEUI (16 hex digits).")],
    *,
    profile: Annotated[str, typer.Option("--profile", "-p", help="Device profile name.")],
    device_id: Annotated[
        str | None,
        typer.Option("--device-id", help="Device entity id (default urn:ngsi-ld:Device:DEVEUI)."),
    ] = None,
    name: NameOpt = None,
    description: DescriptionOpt = None,
    measuring_point: PointOpt = None,
    location: LocationOpt = None,
    owner: OwnerOpt = None,
    device_model: ModelOpt = None,
    state: StateOpt = None,
    installed: InstalledOpt = None,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Register a device: its Device entity is created in the broker."""
    fields = _fields(
        name=name,
        description=description,
        measuring_point=measuring_point,
        location=location,
        owner=owner,
        device_model=device_model,
        state=state,
        installed=installed,
    )
    with _registry(broker, tenant, profiles_dir) as registry:
        try:
            device = RegisteredDevice(
                dev_eui=_eui(dev_eui), device_id=device_id or "", profile=profile, **fields
            )
        except ValidationError as exc:
            raise RegistryError(_first_problem(exc)) from None
        device = registry.register(device)
    _print(device, output)


@app.command("import")
def import_(
    file: Annotated[
        Path | None,
        typer.Argument(help="CSV (with a header row) or JSON file; or use --from."),
    ] = None,
    *,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Read the devices of a network-server application: chirpstack (v4 REST API) "
            "or tts (The Things Stack end-device registry).",
        ),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="The network server's base URL (with --from).")
    ] = None,
    application: Annotated[
        str | None,
        typer.Option("--application", help="Application id (ChirpStack: its UUID)."),
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file",
            help=f"File holding the network server's API key (else ${API_KEY_ENV}).",
        ),
    ] = None,
    default_profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="Profile of imported devices without a 'profile' tag (else unprovisioned).",
        ),
    ] = None,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Register (or update) every device of a file, or of a network-server application
    (tags or attributes become the registration's tags; keys are never read). Exit code 6
    when some device failed."""
    if (file is None) == (source is None):
        fail("give a FILE or --from chirpstack|tts (not both)", ExitCode.USAGE)
    if source is not None and source not in ("chirpstack", "tts"):
        fail(f"--from {source!r}: expected chirpstack or tts", ExitCode.USAGE)
    if source is not None and (not url or not application):
        fail(f"--from {source} needs --url and --application", ExitCode.USAGE)
    with _registry(broker, tenant, profiles_dir) as registry:
        if file is not None:
            report = registry.import_file(file)
        elif source is not None and url is not None and application is not None:
            kind: NetworkServerKind = "chirpstack" if source == "chirpstack" else "tts"
            parsed = read_network_server(
                kind,
                url,
                application=application,
                api_key=read_api_key(file=api_key_file),
                profile=default_profile,
            )
            report = registry.import_devices(parsed, where=f"{source} application {application}")
    if output is OutputFormat.json:
        print_json(
            {
                "registered": report.registered,
                "updated": report.updated,
                "failed": [problem.model_dump() for problem in report.failed],
            }
        )
    else:
        typer.echo(f"registered {len(report.registered)}, updated {len(report.updated)}")
        for problem in report.failed:
            stderr.print(f"[red]failed:[/red] {problem}")
    if not report.ok:
        raise typer.Exit(int(ExitCode.INVALID))


@app.command("list")
def list_(
    *,
    profile: Annotated[str | None, typer.Option("--profile", help="Only this profile.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="Only this state.")] = None,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """List the registered devices (as the broker has them)."""
    with _registry(broker, tenant, profiles_dir) as registry:
        devices, _ignored = registry.fetch_all()
    devices = [
        device
        for device in sorted(devices, key=lambda d: d.dev_eui)
        if (profile is None or device.profile == profile)
        and (state is None or device.state == state)
    ]
    if output is OutputFormat.json:
        print_json([_record(device) for device in devices])
        return
    print_table(
        f"{len(devices)} registered device(s)",
        ["DevEUI", "profile", "measuring point", "state", "name"],
        ([d.dev_eui, d.profile or "", d.point, d.state, d.name or ""] for d in devices),
    )


@app.command("show")
def show(
    dev_eui: Annotated[str, typer.Argument(help="DevEUI.")],
    *,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Show one registration."""
    eui = _eui(dev_eui)
    with _registry(broker, tenant, profiles_dir) as registry:
        device = registry.fetch(eui)
        if device is None:
            raise DeviceNotRegistered(f"device {eui} is not registered")
    _print(device, output)


@app.command("update")
def update(
    dev_eui: Annotated[str, typer.Argument(help="DevEUI.")],
    *,
    profile: Annotated[str | None, typer.Option("--profile", "-p", help="Device profile.")] = None,
    name: NameOpt = None,
    description: DescriptionOpt = None,
    measuring_point: PointOpt = None,
    location: LocationOpt = None,
    owner: OwnerOpt = None,
    device_model: ModelOpt = None,
    state: StateOpt = None,
    installed: InstalledOpt = None,
    clear_calibration: Annotated[
        bool, typer.Option("--clear-calibration", help="Remove every calibration.")
    ] = False,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Change a registration; an empty value ("") removes a field."""
    changes = _fields(
        name=name,
        description=description,
        measuring_point=measuring_point,
        location=location,
        owner=owner,
        device_model=device_model,
        state=state,
        installed=installed,
    )
    if profile is not None:
        changes["profile"] = profile or None
    if clear_calibration:
        changes["calibration"] = ()
    if not changes:
        fail("nothing to change: give at least one option", ExitCode.USAGE)
    with _registry(broker, tenant, profiles_dir) as registry:
        device = registry.update(_eui(dev_eui), **changes)
    _print(device, output)


@app.command("calibrate")
def calibrate(
    dev_eui: Annotated[str, typer.Argument(help="DevEUI.")],
    attribute: Annotated[str, typer.Argument(help="Target attribute (temperature, co2, ...).")],
    *,
    offset: Annotated[float, typer.Option("--offset", help="Added after scaling.")] = 0.0,
    scale: Annotated[float, typer.Option("--scale", help="Factor.")] = 1.0,
    valid_from: Annotated[
        str | None, typer.Option("--from", help="Valid from (ISO 8601; default: always).")
    ] = None,
    valid_until: Annotated[
        str | None, typer.Option("--until", help="Valid until, exclusive (default: open).")
    ] = None,
    entity_type: Annotated[
        str | None, typer.Option("--entity-type", help="Only for this entity type.")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why (reference sensor, ...).")] = None,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Add a calibration: the mapped value becomes value * scale + offset in its period.

    An open calibration of the same attribute that started earlier ends where this one starts;
    one that starts at the same time is replaced. `update --clear-calibration` removes all."""
    try:
        item = Calibration.model_validate(
            {
                "attribute": attribute,
                "offset": offset,
                "scale": scale,
                "validFrom": _datetime(valid_from, "--from") if valid_from else None,
                "validUntil": _datetime(valid_until, "--until") if valid_until else None,
                "entityType": entity_type,
                "note": note,
            }
        )
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    eui = _eui(dev_eui)
    with _registry(broker, tenant, profiles_dir) as registry:
        device = registry.calibrate(eui, item)
    _print(device, output)


AtOpt = Annotated[str | None, typer.Option("--at", help="When (ISO 8601 with zone; default: now).")]


@app.command("move")
def move(
    dev_eui: Annotated[str, typer.Argument(help="DevEUI.")],
    *,
    lat: Annotated[float, typer.Option("--lat", help="Latitude (WGS 84).")],
    lon: Annotated[float, typer.Option("--lon", help="Longitude (WGS 84).")],
    alt: Annotated[float | None, typer.Option("--alt", help="Altitude (m).")] = None,
    valid_from: Annotated[
        str | None,
        typer.Option("--from", help="Installed there from (ISO 8601 with zone; default: now)."),
    ] = None,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Move a device to a new location from a date on; the places it was stay in its
    history, and readings made before the date keep their location."""
    text = f"{lon},{lat}" + (f",{alt}" if alt is not None else "")
    try:
        point = parse_point(text)
    except ValueError as exc:
        fail(f"--lat/--lon: {exc}", ExitCode.USAGE)
    start = _datetime(valid_from, "--from") if valid_from else None
    eui = _eui(dev_eui)
    with _registry(broker, tenant, profiles_dir) as registry:
        device = registry.move(eui, point, valid_from=start)
    _print(device, output)


@app.command("swap")
def swap(
    old: Annotated[str, typer.Argument(help="DevEUI of the sensor that leaves.")],
    new: Annotated[str, typer.Argument(help="DevEUI of the sensor that replaces it.")],
    *,
    at: AtOpt = None,
    decommission_old: Annotated[
        bool,
        typer.Option(
            "--decommission-old",
            help="Decommission the old sensor (default: it becomes inactive).",
        ),
    ] = False,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Replace a sensor at its measuring point: the new one takes over the measuring point
    (its observation entities and their history) and location, refDevice follows; the old
    one leaves service. A new DevEUI that is not registered is registered with the old
    one's profile."""
    old_eui, new_eui = _eui(old), _eui(new)
    when = _datetime(at, "--at") if at else None
    with _registry(broker, tenant, profiles_dir) as registry:
        report = registry.swap(
            old_eui,
            new_eui,
            at=when,
            old_state="decommissioned" if decommission_old else "inactive",
        )
    if output is OutputFormat.json:
        print_json(
            {
                "old": _record(report.old),
                "new": _record(report.new),
                "registered": report.registered,
                "observations": list(report.observations),
            }
        )
        return
    print_table(
        f"{report.new.dev_eui} replaces {report.old.dev_eui} at {report.new.point}",
        ["DevEUI", "role", "state", "measuring point"],
        [
            [report.old.dev_eui, "old", report.old.state, report.old.point],
            [
                report.new.dev_eui,
                "new (registered)" if report.registered else "new",
                report.new.state,
                report.new.point,
            ],
        ],
    )
    for entity_id in report.observations:
        typer.echo(f"refDevice of {entity_id} -> {report.new.device_id}")


@app.command("decommission")
def decommission(
    dev_eui: Annotated[str, typer.Argument(help="DevEUI.")],
    *,
    at: AtOpt = None,
    remove_entity: Annotated[
        bool,
        typer.Option(
            "--remove-entity",
            help="Also delete the Device entity (default: kept, state decommissioned).",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Take a device out of service for good: no more of its data is accepted. Its
    observations stay with the measuring point."""
    eui = _eui(dev_eui)
    when = _datetime(at, "--at") if at else None
    if not yes and not typer.confirm(f"Decommission {eui}?"):
        raise typer.Exit(int(ExitCode.ERROR))
    with _registry(broker, tenant, profiles_dir) as registry:
        device = registry.decommission(eui, at=when, remove_entity=remove_entity)
    if remove_entity and output is not OutputFormat.json:
        typer.echo(f"decommissioned {device.dev_eui}; deleted {device.device_id}")
        return
    _print(device, output)


@app.command("health")
def health(
    *,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="Only devices with this health: ok, degraded, silent, unknown, none."
        ),
    ] = None,
    problems: Annotated[
        bool, typer.Option("--problems", help="Only devices that are silent or degraded.")
    ] = False,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Show the fleet's health as the agent last judged it (the Device entities' `health`):
    silent devices, low batteries, lost frames, payloads that do not decode."""
    if status is not None and status not in ("ok", "degraded", "silent", "unknown", "none"):
        fail(f"--status {status!r}: expected ok, degraded, silent, unknown or none", ExitCode.USAGE)
    with ngsi_errors(), make_client(broker, tenant, None) as client:
        records = read_health(client, status=status)
    if problems:
        records = [r for r in records if r.health in ("silent", "degraded")]
    if output is OutputFormat.json:
        print_json([record.model_dump(mode="json", by_alias=True) for record in records])
        return
    counts: dict[str, int] = {}
    for record in records:
        counts[record.health or "none"] = counts.get(record.health or "none", 0) + 1
    summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    print_table(
        f"{len(records)} device(s)" + (f": {summary}" if summary else ""),
        ["DevEUI", "state", "health", "reasons", "last report", "battery", "detail"],
        (
            [
                record.dev_eui,
                record.device_state or "",
                record.health or "",
                ", ".join(record.reasons),
                record.last_value_reported.isoformat() if record.last_value_reported else "",
                f"{record.battery_level:.0%}" if record.battery_level is not None else "",
                "; ".join(record.detail),
            ]
            for record in records
        ),
    )


@app.command("delete")
def delete(
    dev_eui: Annotated[str, typer.Argument(help="DevEUI.")],
    *,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    profiles_dir: ProfilesDirOpt = None,
) -> None:
    """Delete a registration (its Device entity); its observations stay with the measuring
    point."""
    eui = _eui(dev_eui)
    if not yes and not typer.confirm(f"Delete the registration of {eui}?"):
        raise typer.Exit(int(ExitCode.ERROR))
    with _registry(broker, tenant, profiles_dir) as registry:
        device = registry.delete(eui)
    typer.echo(f"deleted {device.device_id}")


from drehscheibe.commands._downlinks import register as _register_downlinks  # noqa: E402

_register_downlinks(app)
