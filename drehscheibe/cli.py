"""The `drehscheibe` command line: noun groups with verb subcommands.

Each group lives in `drehscheibe/commands/<group>.py` and is registered here by name.
Commands parse options and present results; the work happens in the library packages.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from drehscheibe import __version__

app = typer.Typer(
    name="drehscheibe",
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


# (module in drehscheibe.commands, group name); each module has a typer `app`.
COMMAND_GROUPS: tuple[tuple[str, str], ...] = (
    ("entities", "entities"),
    ("models", "models"),
    ("broker", "broker"),
    ("subscriptions", "subscriptions"),
    ("consume", "consume"),
    ("agent", "agent"),
    ("deadletters", "deadletters"),
    ("uplinks", "uplinks"),
    ("devices", "devices"),
    ("profiles", "profiles"),
    ("web", "web"),
    ("simulate", "simulate"),
)


def _register_groups() -> None:
    for module_name, group in COMMAND_GROUPS:
        module = importlib.import_module(f"drehscheibe.commands.{module_name}")
        app.add_typer(module.app, name=group)
    from drehscheibe.commands.demo import demo

    app.command("demo")(demo)


_register_groups()


def main() -> None:
    app()
