"""`drehscheibe agent ...`: run the LoRaWAN agent, check its configuration.

Also the options the agent-related groups share (`deadletters`, `uplinks`): where the agent's
configuration or data folder is, and times given as ISO 8601 or as an age (`2h`).
"""

from __future__ import annotations

import re
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from drehscheibe._output import ExitCode, fail, print_json

if TYPE_CHECKING:
    from agents.runtime import AgentConfig

__all__ = ["ConfigOpt", "DataDirOpt", "app", "parse_time", "resolve_config"]

app = typer.Typer(help="Run the LoRaWAN agent.", no_args_is_help=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="DREHSCHEIBE_AGENT_CONFIG",
        help="The agent's configuration file (YAML).",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="DREHSCHEIBE_AGENT_DATA_DIR",
        help="The agent's data folder (instead of --config).",
    ),
]

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, *, option: str, now: datetime | None = None) -> datetime:
    """An aware UTC time from ISO 8601 (a naive one is taken as UTC) or an age (`30m`, `2h`,
    `7d`: that long before now). Fails the command with a usage error otherwise."""
    found = _AGE.match(text.strip())
    if found:
        amount, unit = float(found.group(1)), found.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(
            f"{option} {text!r}: expected ISO 8601 (2024-05-01T12:00:00Z) or an age (2h, 7d)",
            ExitCode.USAGE,
        )
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def resolve_config(
    config: Path | None, data_dir: Path | None, *, need_file: bool = False
) -> AgentConfig:
    """The configuration from `--config`, or a default one around `--data-dir`."""
    from agents.runtime import AgentConfig, ConfigError, load_config

    if config is not None:
        try:
            loaded = load_config(config)
        except ConfigError as exc:
            fail(str(exc), ExitCode.INVALID)
        if data_dir is not None:
            loaded = loaded.model_copy(
                update={"agent": loaded.agent.model_copy(update={"data_dir": data_dir})}
            )
        return loaded
    if need_file:
        fail("give the agent's configuration with --config/-c", ExitCode.USAGE)
    if data_dir is None:
        fail("give the agent's --config/-c or its --data-dir", ExitCode.USAGE)
    return AgentConfig.from_mapping(
        {"agent": {"data_dir": str(data_dir.resolve())}}, environ={}, origin="--data-dir"
    )


@app.command("run")
def run(
    *,
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            envvar="DREHSCHEIBE_AGENT_CONFIG",
            help="The agent's configuration file (YAML).",
        ),
    ],
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = None,
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="text, or json for one object per line.")
    ] = None,
) -> None:
    """Run the agent until SIGTERM or Ctrl-C: sources → pipeline → outbox → broker.

    Secrets come from files or environment variables named in the configuration, or from
    DREHSCHEIBE_SOURCE_<NAME>_PASSWORD / _SECRET and DREHSCHEIBE_BROKER_TOKEN; the broker URL
    from DREHSCHEIBE_BROKER_URL. On SIGTERM the agent stops taking uplinks, commits what it
    holds and delivers what it can for a few seconds; the rest waits in the outbox.
    """
    from agents.runtime import Agent, ConfigError, configure_logging

    settings = resolve_config(config, None)
    level = (log_level or settings.logging.level).lower()
    form = (log_format or settings.logging.format).lower()
    if level not in ("debug", "info", "warning", "error") or form not in ("text", "json"):
        fail("--log-level is debug|info|warning|error, --log-format text|json", ExitCode.USAGE)
    configure_logging(level=level, format="json" if form == "json" else "text")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        agent = Agent(settings)
        try:
            agent.start()
        except ConfigError as exc:
            agent.stop()
            fail(str(exc), ExitCode.INVALID)
        except OSError as exc:
            agent.stop()
            fail(str(exc))
        try:
            while not stop.wait(1.0):
                pass
        finally:
            agent.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command("check")
def check(
    *,
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            envvar="DREHSCHEIBE_AGENT_CONFIG",
            help="The agent's configuration file (YAML).",
        ),
    ],
) -> None:
    """Validate the configuration (schema, overrides, secrets, profiles) without starting."""
    from agents.runtime import ConfigError, check_config

    settings = resolve_config(config, None)
    try:
        summary = check_config(settings)
    except ConfigError as exc:
        fail(str(exc), ExitCode.INVALID)
    print_json(summary)
