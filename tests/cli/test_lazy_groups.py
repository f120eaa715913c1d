"""The root command loads command groups lazily: only the invoked group's module is imported,
and `--help` lists every group from the table in `drehscheibe.cli` without importing any."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import typer

from drehscheibe.cli import COMMAND_GROUPS

PROBE = """
import contextlib, sys
from drehscheibe.cli import app
with contextlib.suppress(SystemExit):
    app(sys.argv[1:], prog_name="drehscheibe")
loaded = sorted(m for m in sys.modules if m.startswith("drehscheibe.commands."))
print("LOADED", ",".join(loaded))
"""


def loaded_modules(*args: str) -> tuple[str, set[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("LOADED"))
    names = {name for name in line.removeprefix("LOADED").strip().split(",") if name}
    return result.stdout, names


def test_root_help_lists_every_group_without_importing_one() -> None:
    output, loaded = loaded_modules("--help")
    assert loaded == set()
    for name, _module, _attribute, help_text in COMMAND_GROUPS:
        assert name in output
        assert help_text.split()[0] in output


def test_version_imports_no_command_module() -> None:
    output, loaded = loaded_modules("--version")
    assert "drehscheibe " in output
    assert loaded == set()


def test_a_group_imports_only_its_own_module() -> None:
    output, loaded = loaded_modules("subscriptions", "--help")
    assert "apply" in output
    assert "list" in output
    assert loaded <= {"drehscheibe.commands.subscriptions", "drehscheibe.commands._common"}
    assert "drehscheibe.commands.subscriptions" in loaded


@pytest.mark.parametrize(("name", "module", "attribute", "help_text"), COMMAND_GROUPS)
def test_the_help_table_matches_the_modules(
    name: str, module: str, attribute: str, help_text: str
) -> None:
    target = getattr(importlib.import_module(f"drehscheibe.commands.{module}"), attribute)
    own = target.info.help if isinstance(target, typer.Typer) else target.__doc__
    assert isinstance(own, str)
    assert own.strip().splitlines()[0] == help_text, name
