"""The installed `drehscheibe` command, run as a real subprocess."""

from __future__ import annotations

import subprocess
import sys

from drehscheibe import __version__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drehscheibe", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"drehscheibe {__version__}"


def test_help_lists_the_command_groups() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    for group in ("entities", "models", "broker", "subscriptions", "devices", "profiles", "web"):
        assert group in result.stdout


def test_packages_import() -> None:
    code = "import ngsi, models, agents, schemas, drehscheibe"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_unreachable_broker_is_one_line_and_exit_code_3() -> None:
    from tests.conftest import free_port

    result = run(
        "entities", "get", "urn:ngsi-ld:X:1", "--broker", f"http://127.0.0.1:{free_port()}"
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "broker unreachable" in result.stderr
    assert "Traceback" not in result.stderr
