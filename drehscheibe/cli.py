"""The `drehscheibe` command line: noun groups with verb subcommands.

Each group lives in `drehscheibe/commands/<group>.py` (a typer `app`) and is named in
`COMMAND_GROUPS` with its one-line help. Groups load lazily: a run imports only the module of
the group it invokes, so that start-up stays cheap (`drehscheibe --version` and `--help` import
none of them). Commands parse options and present results; the work happens in the library
packages.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from drehscheibe import __version__

__all__ = ["COMMAND_GROUPS", "LazyGroup", "app", "load_command", "main"]

# (name, module in drehscheibe.commands, attribute, one-line help). A `Typer` attribute is a
# group; a function is a single command (`demo`). The help is what `drehscheibe --help` shows
# without importing the module; tests/cli/test_lazy_groups.py checks that it matches the module.
COMMAND_GROUPS: tuple[tuple[str, str, str, str], ...] = (
    ("entities", "entities", "app", "Read and write NGSI-LD entities."),
    (
        "models",
        "models",
        "app",
        "Smart Data Models: types, attributes, official schemas and validation.",
    ),
    ("broker", "broker", "app", "Run the embedded NGSI-LD broker."),
    (
        "subscriptions",
        "subscriptions",
        "app",
        "NGSI-LD subscriptions: one by one, or declared in a consumers file (apply/diff).",
    ),
    ("consume", "consume", "app", "Receive notifications: reference consumers and simple sinks."),
    ("agent", "agent", "app", "Run the LoRaWAN agent."),
    ("deadletters", "deadletters", "app", "Read, replay and purge the agent's dead letters."),
    ("uplinks", "uplinks", "app", "Replay the agent's archived uplinks."),
    (
        "devices",
        "devices",
        "app",
        "Register LoRaWAN devices: Device entities in the broker, with profile and place.",
    ),
    (
        "profiles",
        "profiles",
        "app",
        "Device profiles: which codec, which Smart Data Models, which attributes and units.",
    ),
    ("web", "web", "app", "Serve the page: devices on a map, a list, histories."),
    (
        "publish",
        "publish",
        "app",
        "Publish a projection without personal data to a public tenant.",
    ),
    (
        "erase",
        "erase",
        "app",
        "Erase one device's or one area's data everywhere; apply the agent's retention.",
    ),
    (
        "simulate",
        "simulate",
        "app",
        "Simulate a city's LoRaWAN fleet: uplinks as The Things Stack or ChirpStack publish them.",
    ),
    (
        "demo",
        "demo",
        "demo",
        "Run the whole path: broker, MQTT, agent, consumers, a simulated fleet and the page.",
    ),
)


def load_command(name: str) -> Any:
    """The click command of one entry of `COMMAND_GROUPS`, importing its module; KeyError for
    an unknown name."""
    entry = next((e for e in COMMAND_GROUPS if e[0] == name), None)
    if entry is None:
        raise KeyError(name)
    _, module_name, attribute, _help = entry
    target = getattr(importlib.import_module(f"drehscheibe.commands.{module_name}"), attribute)
    command: Any
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)
    else:
        single = typer.Typer()
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """The root group: lists every entry of `COMMAND_GROUPS` but imports a group's module only
    when that group runs. Help output uses the table's one-line help instead of loading them."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        eager = [name for name in self.commands if name not in _NAMES]
        return [entry[0] for entry in COMMAND_GROUPS] + eager

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = self.commands.get(cmd_name)
        if found is not None:
            return found
        if cmd_name not in _NAMES:
            return None
        if self._listing:
            return TyperGroup(name=cmd_name, help=_HELP[cmd_name])
        command = load_command(cmd_name)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


_NAMES = frozenset(entry[0] for entry in COMMAND_GROUPS)
_HELP = {entry[0]: entry[3] for entry in COMMAND_GROUPS}

app = typer.Typer(
    name="drehscheibe",
    cls=LazyGroup,
    help="The city's data hub: LoRaWAN sensors into FIWARE NGSI-LD and out to its consumers.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"drehscheibe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Drehscheibe: the city's data hub between LoRaWAN sensors and FIWARE NGSI-LD."""


def main() -> None:
    app()
