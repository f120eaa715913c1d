"""`drehscheibe devices downlink` and `devices downlinks`: send a downlink, list the records.

    drehscheibe devices downlink 0004A30B001C0530 --port 10 --payload 0164000002 -c agent.yaml
    drehscheibe devices downlink 0004A30B001C0530 --json '{"digital_out_1": 1}' -c agent.yaml
    drehscheibe devices downlinks 0004A30B001C0530 -c agent.yaml --output json

The command reads the agent's configuration (`--config`, the file the agent runs with) for the
network server's MQTT connection and the data folder, publishes the downlink in that network
server's own format (The Things Stack `.../down/push` or `down/replace`, ChirpStack v4
`.../command/down`) through the source the device's uplinks came from, and records it in the
agent's downlink records, where the running agent follows its events (`PENDING`, `SENT`,
`ACKED`, `FAILED`). `--json` encodes the object with the encoder of the device's profile
(`downlink.encoder`), read from the registry in the broker.

With `--wait N` the command waits up to N seconds for the running agent to record the network
server's answer (`SENT` for an unconfirmed downlink, `ACKED`, or `FAILED`).

Exit codes: 0 sent (handed to the MQTT server; with `--wait`, answered), 1 not sent, refused
or no answer within `--wait` (the record says why), 2 bad options, 3 broker unreachable (for
`--json`), 4 device not registered (for `--json`), 6 the data does not encode or the
configuration is invalid.
"""

from __future__ import annotations

import getpass
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from drehscheibe._output import ExitCode, OutputFormat, fail, ngsi_errors, print_json, print_table
from drehscheibe.commands._common import OutputOpt

if TYPE_CHECKING:
    from agents.downlink import Downlink, DownlinkRecord

__all__ = ["register"]

_ConfigOpt = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="DREHSCHEIBE_AGENT_CONFIG",
        help="The agent's configuration file (YAML): MQTT connection and data folder.",
    ),
]
_PRIORITIES = ("LOWEST", "LOW", "BELOW_NORMAL", "NORMAL", "ABOVE_NORMAL", "HIGH", "HIGHEST")


def _eui(text: str) -> str:
    from agents.lorawan import normalize_eui

    try:
        return normalize_eui(text)
    except ValueError as exc:
        fail(f"DevEUI {text!r}: {exc}", ExitCode.USAGE)


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def _config(path: Path) -> Any:
    from agents.runtime import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        fail(str(exc), ExitCode.INVALID)


def _json_downlink(
    config: Any, dev_eui: str, data: Any, *, port: int | None, confirmed: bool
) -> Downlink:
    """Encode `data` with the device's profile (registry in the broker, profiles folder)."""
    from agents.downlink import DownlinkError, profile_downlink
    from agents.profiles import ProfileCatalog, ProfileError, ProfileNotFound
    from agents.registry import DEVICE_CONTEXT, RegisteredDevice
    from ngsi import Client

    tenants = [config.broker.tenant] + [
        s.tenant
        for s in config.sources
        if s.tenant is not None and s.tenant != config.broker.tenant
    ]
    from agents.runtime import ConfigError, resolve_secret

    try:
        token = resolve_secret(config.broker.token, what="broker token")
    except ConfigError as exc:
        fail(str(exc), ExitCode.INVALID)
    device: RegisteredDevice | None = None
    with ngsi_errors():
        for tenant in tenants:
            with Client(
                config.broker.url,
                tenant=tenant,
                auth=token,
                timeout=config.broker.timeout,
                profile=config.broker.profile,
            ) as client:
                for entity in client.query(
                    type="Device", q=f'devEUI=="{dev_eui}"', context=DEVICE_CONTEXT, limit=2
                ):
                    device = RegisteredDevice.from_entity(entity)
                    break
            if device is not None:
                break
    if device is None:
        fail(
            f"device {dev_eui} is not registered (--json needs its profile)", ExitCode.CLIENT_ERROR
        )
    if device.profile is None:
        fail(f"device {dev_eui} has no profile (--json needs one)", ExitCode.INVALID)
    try:
        profile = ProfileCatalog(config.profiles.dir).get(device.profile)
    except (ProfileError, ProfileNotFound) as exc:
        fail(f"device {dev_eui}: profile {device.profile}: {exc}", ExitCode.INVALID)
    try:
        return profile_downlink(profile, data, dev_eui=dev_eui, f_port=port, confirmed=confirmed)
    except DownlinkError as exc:
        fail(str(exc), ExitCode.INVALID)


def _row(record: DownlinkRecord) -> list[Any]:
    return [
        record.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        record.dev_eui,
        record.f_port,
        record.payload.hex().upper(),
        "yes" if record.confirmed else "",
        record.status,
        record.command or "",
        record.actor,
        record.detail or "",
        record.id,
    ]


_COLUMNS = ("created (UTC)", "DevEUI", "fPort", "payload", "confirmed", "status", "command")
_COLUMNS_TAIL = ("by", "detail", "id")


def downlink(
    dev_eui: Annotated[str, typer.Argument(help="DevEUI of the device.")],
    *,
    config: _ConfigOpt,
    port: Annotated[
        int | None,
        typer.Option("--port", "-p", min=1, max=223, help="fPort (1-223)."),
    ] = None,
    payload: Annotated[
        str | None, typer.Option("--payload", help="The payload as hex (0164000002).")
    ] = None,
    json_data: Annotated[
        str | None,
        typer.Option("--json", help="A JSON value, encoded with the device profile's encoder."),
    ] = None,
    confirmed: Annotated[
        bool, typer.Option("--confirmed", help="Ask the device to acknowledge it.")
    ] = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Replace the device's queue (The Things Stack) instead of adding to it.",
        ),
    ] = False,
    priority: Annotated[
        str, typer.Option("--priority", help="The Things Stack priority (LOWEST...HIGHEST).")
    ] = "NORMAL",
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="The configured source to send through (default: the "
            "one the device's uplinks came from).",
        ),
    ] = None,
    application: Annotated[
        str | None,
        typer.Option(
            "--application",
            help="The network server's application id (when no uplink taught it yet).",
        ),
    ] = None,
    device_id: Annotated[
        str | None,
        typer.Option(
            "--device-id", help="The Things Stack device id (when no uplink taught it yet)."
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            help="Wait up to this many seconds for the running agent to record the network "
            "server's answer: SENT (unconfirmed), ACKED or FAILED.",
        ),
    ] = 0,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Send a downlink through the device's network server and record it."""
    from agents.downlink import Downlink, DownlinkError, DownlinkSender, DownlinkStore

    eui = _eui(dev_eui)
    if (payload is None) == (json_data is None):
        fail("give exactly one of --payload HEX and --json OBJ", ExitCode.USAGE)
    if priority.upper() not in _PRIORITIES:
        fail(f"--priority {priority!r}: expected one of {', '.join(_PRIORITIES)}", ExitCode.USAGE)
    settings = _config(config)
    if payload is not None:
        if port is None:
            fail("--payload needs --port", ExitCode.USAGE)
        try:
            raw = bytes.fromhex(payload.replace(" ", ""))
        except ValueError:
            fail(f"--payload {payload!r} is not hex", ExitCode.USAGE)
        try:
            message = Downlink.model_validate(
                {
                    "dev_eui": eui,
                    "f_port": port,
                    "payload": raw,
                    "confirmed": confirmed,
                    "priority": priority.upper(),
                }
            )
        except ValueError as exc:
            fail(f"device {eui}: {exc}", ExitCode.USAGE)
    else:
        assert json_data is not None
        try:
            data = orjson.loads(json_data)
        except orjson.JSONDecodeError as exc:
            fail(f"--json is not JSON: {exc}", ExitCode.USAGE)
        message = _json_downlink(settings, eui, data, port=port, confirmed=confirmed)
        if priority.upper() != "NORMAL":
            message = message.model_copy(update={"priority": priority.upper()})
    with DownlinkStore.in_data_dir(settings.agent.data_dir) as store:
        try:
            sender = DownlinkSender.from_config(settings, store=store)
        except DownlinkError as exc:
            fail(str(exc), ExitCode.INVALID)
        with sender:
            record = sender.send(
                message,
                actor=_actor(),
                replace=replace,
                source=source,
                application=application,
                device_id=device_id,
            )
        waited_out = wait > 0 and record.status != "FAILED" and not _answered(record)
        deadline = time.monotonic() + wait
        while waited_out and time.monotonic() < deadline:
            time.sleep(0.2)
            record = store.get(record.id) or record
            waited_out = not _answered(record)
    if output is OutputFormat.json:
        print_json(record.to_json())
    else:
        print_table(None, (*_COLUMNS, *_COLUMNS_TAIL), [_row(record)])
    if record.status == "FAILED":
        fail(f"downlink to {eui} not sent: {record.detail}", ExitCode.ERROR)
    if waited_out:
        fail(
            f"downlink to {eui}: no answer from the network server within {wait:g} s (status "
            f"{record.status}); the running agent records it when one comes",
            ExitCode.ERROR,
        )


def _answered(record: DownlinkRecord) -> bool:
    """Whether the record holds the network server's last word for it."""
    return record.status in ("ACKED", "FAILED") or (
        record.status == "SENT" and not record.confirmed
    )


def downlinks(
    dev_eui: Annotated[
        str | None, typer.Argument(help="DevEUI (default: the downlinks of every device).")
    ] = None,
    *,
    config: _ConfigOpt,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """List the recorded downlinks, newest first: who sent what when, and what became of it."""
    from agents.downlink import DownlinkStore

    eui = _eui(dev_eui) if dev_eui is not None else None
    settings = _config(config)
    with DownlinkStore.in_data_dir(settings.agent.data_dir) as store:
        records = store.list(eui, limit=limit)
    if output is OutputFormat.json:
        print_json([record.to_json() for record in records])
        return
    print_table(
        f"downlinks of {eui}" if eui else "downlinks",
        (*_COLUMNS, *_COLUMNS_TAIL),
        [_row(record) for record in records],
    )


def register(app: typer.Typer) -> None:
    """Add `downlink` and `downlinks` to the `devices` command group."""
    app.command("downlink")(downlink)
    app.command("downlinks")(downlinks)
