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

from agents.lorawan import normalize_eui
from agents.registry import (
    Calibration,
    DeviceAlreadyRegistered,
    DeviceNotRegistered,
    RegisteredDevice,
    Registry,
    RegistryError,
    parse_point,
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
        ["controls", ", ".join(device.controlled_property)],
    ]
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
    file: Annotated[Path, typer.Argument(help="CSV (with a header row) or JSON file.")],
    *,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Register (or update) every device of a file. Exit code 6 when some row failed."""
    with _registry(broker, tenant, profiles_dir) as registry:
        report = registry.import_file(file)
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
    """Add a calibration: the mapped value becomes value * scale + offset in its period."""
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
        current = registry.fetch(eui)
        if current is None:
            raise DeviceNotRegistered(f"device {eui} is not registered")
        device = registry.update(eui, calibration=(*current.calibration, item))
    _print(device, output)


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
