"""`drehscheibe profiles ...`: the device profiles, and trying one on a payload."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml

from agents.codecs import CodecError
from agents.lorawan import GatewayReception, Uplink
from agents.mapping import (
    MappingConfig,
    MappingError,
    map_uplink,
    validate_mapped,
    validate_profile_shapes,
)
from agents.profiles import DeviceProfile, ProfileCatalog, ProfileError, ProfileNotFound
from agents.registry import RegisteredDevice, parse_point
from drehscheibe._output import ExitCode, OutputFormat, fail, print_json, print_table, stderr
from drehscheibe.commands._common import OutputOpt
from schemas import SdmSchemas, default_sdm_dir

__all__ = ["ProfilesDirOpt", "app", "load_catalog"]

app = typer.Typer(
    help="Device profiles: which codec, which Smart Data Models, which attributes and units.",
    no_args_is_help=True,
)

ProfilesDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--profiles-dir",
        envvar="DREHSCHEIBE_PROFILES_DIR",
        help="Folder of the city's own profiles (*.yaml); they override built-ins of that name.",
    ),
]
SdmDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--sdm-dir",
        envvar="DREHSCHEIBE_SDM_SCHEMAS",
        help="Folder of the official Smart Data Models schemas (validation also against them).",
    ),
]

_DUMMY_DEV_EUI = "0000000000000001"


def load_catalog(profiles_dir: Path | None) -> ProfileCatalog:
    """The built-in profiles and those of `profiles_dir`; a missing folder ends the command."""
    try:
        return ProfileCatalog(profiles_dir)
    except ProfileError as exc:
        fail(str(exc), ExitCode.USAGE)


def _profile(catalog: ProfileCatalog, name: str) -> DeviceProfile:
    try:
        return catalog.get(name)
    except ProfileNotFound as exc:
        fail(str(exc), ExitCode.USAGE)
    except ProfileError as exc:
        fail(f"profile {name!r} does not load:\n{exc}", ExitCode.INVALID)


def _sdm(sdm_dir: Path | None) -> SdmSchemas | None:
    folder = sdm_dir or default_sdm_dir()
    return SdmSchemas(folder) if folder.is_dir() else None


@app.command("list")
def list_(
    *,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """List the profiles: built-in and the folder's, and which of these override a built-in."""
    catalog = load_catalog(profiles_dir)
    entries = catalog.entries()
    if output is OutputFormat.json:
        print_json([entry.model_dump() for entry in entries])
        return
    rows = []
    for entry in entries:
        origin: str = entry.origin
        if entry.overrides_builtin:
            origin = "user (overrides built-in)"
        types = ", ".join(dict.fromkeys(entry.entity_types))
        what = types if entry.error is None else "error: see below"
        rows.append([entry.name, origin, entry.codec or "", what])
    print_table("Device profiles", ["name", "origin", "codec", "entities"], rows)
    for entry in entries:
        if entry.error is not None:
            stderr.print(f"[red]{entry.name}[/red]: {entry.error}")


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Profile name.")],
    *,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Print a profile (YAML for people, JSON with --output json)."""
    catalog = load_catalog(profiles_dir)
    profile = _profile(catalog, name)
    document = profile.model_dump(mode="json", exclude_unset=True)
    document = {"name": profile.name, **document}
    if output is OutputFormat.json:
        document["origin"] = "builtin" if profile.builtin else "user"
        document["path"] = str(profile.path) if profile.path else None
        print_json(document)
        return
    origin = "built-in" if profile.builtin else f"from {profile.path}"
    sys.stdout.write(f"# {profile.name} ({origin})\n")
    sys.stdout.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=96))


@app.command("check")
def check(
    names: Annotated[list[str] | None, typer.Argument(help="Profiles (default: all).")] = None,
    *,
    profiles_dir: ProfilesDirOpt = None,
    sdm_dir: SdmDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Validate the entities each profile makes, once, against the models and the official
    Smart Data Models schemas. Exit code 6 when one does not validate."""
    catalog = load_catalog(profiles_dir)
    sdm = _sdm(sdm_dir)
    failed = False
    results: list[dict[str, Any]] = []
    for name in names or [entry.name for entry in catalog.entries()]:
        try:
            reports = validate_profile_shapes(catalog.get(name), sdm=sdm)
        except (ProfileError, ProfileNotFound, MappingError) as exc:
            results.append({"profile": name, "entity": "", "ok": False, "problems": [str(exc)]})
            failed = True
            continue
        for report in reports:
            failed = failed or not report.ok
            results.append(
                {
                    "profile": name,
                    "entity": report.key,
                    "ok": report.ok,
                    "problems": report.problems,
                    "admin_owned": report.admin_owned,
                }
            )
    if output is OutputFormat.json:
        print_json({"official_schemas": sdm is not None, "results": results})
    else:
        if sdm is None:
            stderr.print("[yellow]official schemas not found: checked against the models only")
        print_table(
            "Profile entities",
            ["profile", "entity", "result", "owned by the entity's admin"],
            (
                [
                    r["profile"],
                    r["entity"],
                    "ok" if r["ok"] else "; ".join(r["problems"]),
                    ", ".join(r.get("admin_owned", [])),
                ]
                for r in results
            ),
        )
    if failed:
        raise typer.Exit(int(ExitCode.INVALID))


@app.command("test")
def try_profile(
    name: Annotated[str, typer.Argument(help="Profile name.")],
    *,
    payload: Annotated[
        str | None, typer.Option("--payload", help="FRMPayload as hex (spaces allowed).")
    ] = None,
    port: Annotated[int, typer.Option("--port", min=0, max=255, help="The uplink's fPort.")] = 1,
    decoded: Annotated[
        str | None,
        typer.Option(
            "--decoded",
            help="The network server's decoded object as JSON (network-server codecs); a JSON "
            "list is a normalized payload.",
        ),
    ] = None,
    measuring_point: Annotated[
        str | None, typer.Option("--measuring-point", help="Measuring point of the dummy device.")
    ] = None,
    location: Annotated[
        str | None, typer.Option("--location", help="LON,LAT of the dummy device.")
    ] = "13.4050,52.5200",
    validate: Annotated[
        bool,
        typer.Option(
            "--validate/--no-validate",
            help="Validate the entities with the models and the official schemas.",
        ),
    ] = True,
    profiles_dir: ProfilesDirOpt = None,
    sdm_dir: SdmDirOpt = None,
) -> None:
    """Decode and map one payload with a dummy device and print the entities (JSON).

    Warnings go to stderr. Exit code 6 when the payload does not decode or an entity does not
    validate.
    """
    catalog = load_catalog(profiles_dir)
    profile = _profile(catalog, name)
    try:
        frame = bytes.fromhex(payload.replace(" ", "")) if payload else b""
    except ValueError:
        fail(f"--payload {payload!r} is not hex (such as 0167010F)", ExitCode.USAGE)
    object_: dict[str, Any] | None = None
    normalized: list[dict[str, Any]] | None = None
    if decoded is not None:
        try:
            parsed = orjson.loads(decoded)
        except orjson.JSONDecodeError as exc:
            fail(f"--decoded is not JSON: {exc}", ExitCode.USAGE)
        if isinstance(parsed, list):
            normalized = parsed
        elif isinstance(parsed, dict):
            object_ = parsed
        else:
            fail("--decoded takes a JSON object (or a list, a normalized payload)", ExitCode.USAGE)
    if payload is None and decoded is None:
        fail("give --payload HEX (or --decoded JSON for network-server codecs)", ExitCode.USAGE)
    try:
        point = parse_point(location) if location else None
    except ValueError as exc:
        fail(f"--location: {exc}", ExitCode.USAGE)
    now = datetime.now(UTC).replace(microsecond=0)
    uplink = Uplink(
        source="tts",
        dev_eui=_DUMMY_DEV_EUI,
        device_id="profile-test",
        f_port=port,
        f_cnt=1,
        payload=frame,
        decoded=object_,
        normalized_payload=normalized,
        received_at=now,
        gateways=(GatewayReception(gateway_id="profile-test-gateway", rssi=-90.0, snr=8.0),),
    )
    device = RegisteredDevice(
        dev_eui=_DUMMY_DEV_EUI,
        name="profile test",
        profile=profile.name,
        measuring_point=measuring_point,
        location=point,
    )
    try:
        codec = catalog.codec(profile.name)
        measurements = codec.decode(frame, f_port=port, uplink=uplink)
    except CodecError as exc:
        fail(f"the {profile.codec.name} codec refuses the payload: {exc}", ExitCode.INVALID)
    try:
        mapped = map_uplink(uplink, measurements, device, profile, now=now, config=MappingConfig())
    except MappingError as exc:
        fail(str(exc), ExitCode.INVALID)
    for warning in mapped.warnings:
        stderr.print(f"[yellow]warning:[/yellow] {warning}")
    print_json(mapped.entities)
    if validate:
        failed = False
        for report in validate_mapped(mapped, sdm=_sdm(sdm_dir)):
            for problem in report.problems:
                failed = True
                stderr.print(f"[red]invalid:[/red] {report.entity_id}: {problem}")
        if failed:
            raise typer.Exit(int(ExitCode.INVALID))
