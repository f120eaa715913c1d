"""`drehscheibe simulate ...`: a simulated LoRaWAN fleet publishing like a network server.

    drehscheibe simulate fleet --devices 50 --write fleet.yaml      # see (and edit) the fleet
    drehscheibe simulate register --broker http://127.0.0.1:1026    # via `devices import`
    drehscheibe simulate run --rate 20 --duration 600 --mqtt-port 1883
    drehscheibe simulate run --once --dry-run | head                # JSON lines, no broker

Exit codes: 3 when the MQTT broker or the NGSI-LD broker cannot be reached, 6 for a fleet or
option that is not valid, 1 for other failures; a run stopped by Ctrl-C or SIGTERM ends with 0
after printing what it sent.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from agents.simulator import (
    CORRUPTIONS,
    Fleet,
    FleetError,
    FrameCounters,
    JsonLinesSink,
    MqttSink,
    PublishError,
    RegistrationError,
    RunReport,
    Simulator,
    Sink,
    StateError,
    WebhookSink,
    build_fleet,
    load_fleet,
    register_fleet,
    run_simulation,
)
from drehscheibe._output import ExitCode, OutputFormat, fail, print_json, print_table, stderr
from drehscheibe.commands._common import DEFAULT_BROKER, BrokerOpt, OutputOpt, TenantOpt
from drehscheibe.commands.profiles import ProfilesDirOpt

__all__ = ["app"]

app = typer.Typer(
    help="Simulate a city's LoRaWAN fleet: uplinks as The Things Stack or ChirpStack publish them.",
    no_args_is_help=True,
)

FleetFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--fleet", "-f", help="A fleet file (YAML, from `simulate fleet --write`).", exists=False
    ),
]
DevicesOpt = Annotated[
    int, typer.Option("--devices", "-n", help="How many devices (without --fleet).", min=1)
]
CityOpt = Annotated[str, typer.Option("--city", help="Built-in city (without --fleet).")]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", help="Seed of DevEUIs, values and radio noise.")
]
NetworkServerOpt = Annotated[
    str | None,
    typer.Option(
        "--network-server",
        help="tts (The Things Stack v3) or chirpstack-v4 (default: the fleet's, else tts).",
    ),
]
ApplicationOpt = Annotated[
    str | None,
    typer.Option("--application", help="Application ID (TTS) or name (ChirpStack)."),
]
NsTenantOpt = Annotated[
    str | None,
    typer.Option(
        "--ns-tenant",
        help="The network server's tenant (TTS topics v3/APP@TENANT/...); '' for none.",
    ),
]
KindOpt = Annotated[
    list[str] | None,
    typer.Option("--kind", help="Only sites of this kind (repeatable): air-quality, noise, ..."),
]


def _fleet(
    fleet_file: Path | None,
    devices: int,
    city: str,
    seed: int | None,
    network_server: str | None,
    application: str | None,
    ns_tenant: str | None,
    kinds: list[str] | None,
) -> Fleet:
    if network_server is not None and network_server not in ("tts", "chirpstack-v4"):
        fail(
            f"--network-server {network_server!r}: expected tts or chirpstack-v4",
            ExitCode.INVALID,
        )
    changes: dict[str, Any] = {}
    if network_server is not None:
        changes["network_server"] = network_server
    if application is not None:
        changes["application"] = application
    if ns_tenant is not None:
        changes["tenant"] = ns_tenant or None
    try:
        if fleet_file is not None:
            fleet = load_fleet(fleet_file)
            if seed is not None:
                changes["seed"] = seed
        else:
            fleet = build_fleet(
                devices,
                city=city,
                seed=seed or 0,
                kinds=kinds,
                network_server=changes.pop("network_server", "tts"),
            )
        if changes:
            fleet = fleet.revised(**changes)
    except FleetError as error:
        fail(str(error), ExitCode.INVALID)
    return fleet


def _fleet_rows(fleet: Fleet) -> list[list[str]]:
    return [
        [
            device.dev_eui,
            device.device_id,
            device.profile,
            device.measuring_point,
            f"{device.location[0]:.5f},{device.location[1]:.5f}",
            device.site,
        ]
        for device in fleet.devices
    ]


@app.command("fleet")
def fleet_command(
    *,
    fleet_file: FleetFileOpt = None,
    devices: DevicesOpt = 50,
    city: CityOpt = "duesseldorf",
    seed: SeedOpt = None,
    network_server: NetworkServerOpt = None,
    application: ApplicationOpt = None,
    ns_tenant: NsTenantOpt = None,
    kind: KindOpt = None,
    write: Annotated[
        Path | None, typer.Option("--write", help="Write the fleet as YAML to this file.")
    ] = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Show the simulated fleet (devices, sites, profiles), or write it to a file to edit."""
    fleet = _fleet(fleet_file, devices, city, seed, network_server, application, ns_tenant, kind)
    if write is not None:
        fleet.write_yaml(write)
        stderr.print(f"wrote {len(fleet.devices)} devices to {write}")
        return
    if output is OutputFormat.json:
        print_json(fleet.to_document())
        return
    print_table(
        f"{len(fleet.devices)} simulated devices in {fleet.city_name} ({fleet.network_server})",
        ["DevEUI", "device ID", "profile", "measuring point", "lon,lat", "site"],
        _fleet_rows(fleet),
    )


def _register(
    fleet: Fleet,
    broker: str,
    tenant: str | None,
    profiles_dir: Path | None,
    output: OutputFormat,
    *,
    quiet: bool = False,
) -> None:
    try:
        report = register_fleet(fleet, broker=broker, tenant=tenant, profiles_dir=profiles_dir)
    except RegistrationError as error:
        code = ExitCode.UNREACHABLE if error.exit_code == ExitCode.UNREACHABLE else ExitCode.ERROR
        fail(str(error), code)
    if output is OutputFormat.json and not quiet:
        print_json(report.as_dict())
    else:
        stderr.print(
            f"registered {len(report.registered)}, already registered {len(report.skipped)}"
            + (f", failed {len(report.failed)}" if report.failed else "")
        )
    for problem in report.failed:
        stderr.print(f"[red]failed:[/red] {problem}")
    if not report.ok:
        raise typer.Exit(int(ExitCode.INVALID))


@app.command("register")
def register_command(
    *,
    fleet_file: FleetFileOpt = None,
    devices: DevicesOpt = 50,
    city: CityOpt = "duesseldorf",
    seed: SeedOpt = None,
    kind: KindOpt = None,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Register the fleet's devices via `drehscheibe devices import` (registered ones: skipped)."""
    fleet = _fleet(fleet_file, devices, city, seed, None, None, None, kind)
    _register(fleet, broker, tenant, profiles_dir, output)


def _secret(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if value is None:
        fail(f"the environment variable {env_name} is not set", ExitCode.USAGE)
    return value


def _summary(report: RunReport, output: OutputFormat, *, to_stderr: bool) -> None:
    if output is OutputFormat.json and not to_stderr:
        print_json(report.as_dict())
        return
    corrupt = ", ".join(f"{k} {v}" for k, v in sorted(report.corrupt.items())) or "0"
    stderr.print(
        f"sent {report.uplinks} uplinks in {report.messages} messages "
        f"({report.rate:.1f} uplinks/s over {report.seconds:.1f} s); duplicates "
        f"{report.duplicates}, corrupt {corrupt}, failed {report.failed}"
    )


@app.command("run")
def run_command(
    *,
    fleet_file: FleetFileOpt = None,
    devices: DevicesOpt = 50,
    city: CityOpt = "duesseldorf",
    seed: SeedOpt = None,
    network_server: NetworkServerOpt = None,
    application: ApplicationOpt = None,
    ns_tenant: NsTenantOpt = None,
    kind: KindOpt = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            help="Uplinks per second, all devices together (default 10; with "
            "--dry-run: as fast as possible).",
            min=0.001,
        ),
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", help="Stop after this many uplinks.", min=0)
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds.", min=0)
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One uplink per device, then stop.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the messages as JSON lines instead of sending."),
    ] = False,
    mqtt_host: Annotated[
        str, typer.Option("--mqtt-host", envvar="DREHSCHEIBE_MQTT_HOST", help="MQTT broker.")
    ] = "127.0.0.1",
    mqtt_port: Annotated[
        int, typer.Option("--mqtt-port", envvar="DREHSCHEIBE_MQTT_PORT", help="MQTT port.")
    ] = 1883,
    qos: Annotated[int, typer.Option("--qos", help="MQTT QoS: 0, 1 or 2.", min=0, max=2)] = 0,
    connect_timeout: Annotated[
        float,
        typer.Option("--connect-timeout", help="Seconds to wait for the MQTT connection.", min=0.1),
    ] = 10.0,
    username: Annotated[str | None, typer.Option("--username", help="MQTT user name.")] = None,
    password_env: Annotated[
        str | None,
        typer.Option("--password-env", help="Environment variable holding the MQTT password."),
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook",
            help="POST to this URL instead of MQTT (TTS: {devEUI}, {devID}, {appID} are "
            "filled in; ChirpStack: ?event=up is added).",
        ),
    ] = None,
    secret_header: Annotated[
        str, typer.Option("--secret-header", help="Header carrying the webhook secret.")
    ] = "X-Webhook-Secret",
    secret_env: Annotated[
        str | None,
        typer.Option("--secret-env", help="Environment variable holding the webhook secret."),
    ] = None,
    duplicates: Annotated[
        float,
        typer.Option("--duplicates", help="Share of uplinks sent twice (0..1).", min=0, max=1),
    ] = 0.0,
    corrupt: Annotated[
        float,
        typer.Option("--corrupt", help="Share of uplinks sent broken (0..1).", min=0, max=1),
    ] = 0.0,
    corruption: Annotated[
        list[str] | None,
        typer.Option(
            "--corruption",
            help=f"Kinds of corruption to use (repeatable): {', '.join(CORRUPTIONS)}.",
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="Frame-counter file, so a restart continues (default simulator-state.json; "
            "with --dry-run: none).",
        ),
    ] = None,
    no_state: Annotated[
        bool, typer.Option("--no-state", help="Keep the frame counters in memory only.")
    ] = False,
    start: Annotated[
        datetime | None,
        typer.Option(
            "--start",
            help="Simulated clock: the time of the first uplink (ISO 8601).",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
        ),
    ] = None,
    speedup: Annotated[
        float, typer.Option("--speedup", help="Simulated clock runs this many times faster.")
    ] = 1.0,
    register: Annotated[
        bool, typer.Option("--register", help="Register the fleet in the broker first.")
    ] = False,
    broker: BrokerOpt = DEFAULT_BROKER,
    tenant: TenantOpt = None,
    profiles_dir: ProfilesDirOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Send the fleet's uplinks at a steady rate (MQTT, webhook, or --dry-run to stdout)."""
    fleet = _fleet(fleet_file, devices, city, seed, network_server, application, ns_tenant, kind)
    if speedup <= 0:
        fail("--speedup must be positive", ExitCode.USAGE)
    if once:
        count = len(fleet.devices) if count is None else min(count, len(fleet.devices))
    state_path = None if no_state else state or (None if dry_run else Path("simulator-state.json"))
    try:
        counters = FrameCounters(state_path)
        simulator = Simulator(
            fleet,
            counters=counters,
            duplicate_rate=duplicates,
            corrupt_rate=corrupt,
            corruptions=corruption or tuple(CORRUPTIONS),
        )
    except (StateError, FleetError, ValueError) as error:
        fail(str(error), ExitCode.INVALID)
    if register:
        _register(fleet, broker, tenant, profiles_dir, output, quiet=True)
    sink: Sink
    if dry_run:
        sink = JsonLinesSink(sys.stdout.buffer)
    elif webhook is not None:
        sink = WebhookSink(webhook, secret_header=secret_header, secret=_secret(secret_env))
    else:
        sink = MqttSink(
            mqtt_host,
            mqtt_port,
            qos=qos,
            username=username,
            password=_secret(password_env),
            connect_timeout=connect_timeout,
        )
    pace = rate if rate is not None else (None if dry_run else 10.0)
    clock = start.replace(tzinfo=start.tzinfo or UTC) if start is not None else None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {
        sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        try:
            sink.open()
        except PublishError as error:
            fail(str(error), ExitCode.UNREACHABLE)
        try:
            report = run_simulation(
                simulator,
                sink,
                rate=pace,
                count=count,
                duration=duration,
                clock_start=clock,
                speedup=speedup,
                stop=stop,
            )
        except StateError as error:
            fail(str(error), ExitCode.ERROR)
        finally:
            sink.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    report.failed = sink.failed
    if isinstance(sink, WebhookSink) and sink.last_error:
        stderr.print(f"[yellow]last webhook error:[/yellow] {sink.last_error}")
    _summary(report, output, to_stderr=dry_run)
