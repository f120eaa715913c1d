"""Registering a simulated fleet the way an admin would: through `drehscheibe devices`.

`register_fleet` runs the command line as subprocesses: `devices list --output json` to learn
which DevEUIs the broker has, then, for the others, one `devices import FILE --output json` with
a JSON device list written to a temporary file. Devices already registered are skipped (their
registrations are left as the admin may have changed them), so registering twice is harmless.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from agents.simulator._fleet import Fleet

__all__ = ["RegistrationError", "RegistrationReport", "register_fleet"]


class RegistrationError(RuntimeError):
    """`drehscheibe devices` failed as a whole (broker unreachable, bad answer): the message
    has its exit code and what it printed."""

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class RegistrationReport:
    """DevEUIs newly registered, already registered (skipped), and the rows that failed."""

    registered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {"registered": self.registered, "skipped": self.skipped, "failed": self.failed}


def _run(
    command: Sequence[str], *args: str, timeout: float, env: Mapping[str, str] | None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=dict(env) if env is not None else None,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RegistrationError(f"{' '.join([*command, *args[:2]])}: {error}") from None


def _said(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stderr.strip() or result.stdout.strip() or "no output")[-2000:]


def register_fleet(
    fleet: Fleet,
    *,
    broker: str,
    tenant: str | None = None,
    profiles_dir: str | Path | None = None,
    command: Sequence[str] | None = None,
    timeout: float = 300.0,
    env: Mapping[str, str] | None = None,
) -> RegistrationReport:
    """Register every device of `fleet` in the NGSI-LD broker at `broker` (see the module
    docstring). `command` is how to run the CLI (default: this Python's `-m drehscheibe`).

    Raises `RegistrationError` when listing or importing fails as a whole; rows the import
    refused are in the report's `failed`.
    """
    cli = list(command) if command is not None else [sys.executable, "-m", "drehscheibe"]
    common = ["--broker", broker]
    if tenant:
        common += ["--tenant", tenant]
    if profiles_dir is not None:
        common += ["--profiles-dir", str(profiles_dir)]
    listed = _run(cli, "devices", "list", *common, "--output", "json", timeout=timeout, env=env)
    if listed.returncode != 0:
        raise RegistrationError(
            f"drehscheibe devices list failed (exit {listed.returncode}): {_said(listed)}",
            exit_code=listed.returncode,
        )
    try:
        known = {str(item["dev_eui"]).upper() for item in orjson.loads(listed.stdout)}
    except (orjson.JSONDecodeError, TypeError, KeyError) as error:
        raise RegistrationError(
            f"drehscheibe devices list printed no device list ({error}): {listed.stdout[:500]}"
        ) from None
    report = RegistrationReport()
    rows = []
    for row in fleet.registrations():
        if row["dev_eui"] in known:
            report.skipped.append(row["dev_eui"])
        else:
            rows.append(row)
    if not rows:
        return report
    with tempfile.TemporaryDirectory(prefix="drehscheibe-fleet-") as folder:
        file = Path(folder) / "devices.json"
        file.write_bytes(orjson.dumps({"devices": rows}))
        imported = _run(
            cli,
            "devices",
            "import",
            str(file),
            *common,
            "--output",
            "json",
            timeout=timeout,
            env=env,
        )
    try:
        outcome = orjson.loads(imported.stdout)
    except orjson.JSONDecodeError:
        raise RegistrationError(
            f"drehscheibe devices import failed (exit {imported.returncode}): {_said(imported)}",
            exit_code=imported.returncode,
        ) from None
    report.registered.extend(outcome.get("registered", []))
    # Another registration may have raced ours: a device updated here was already there.
    report.skipped.extend(outcome.get("updated", []))
    for problem in outcome.get("failed", []):
        where = problem.get("dev_eui") or problem.get("where", "?")
        report.failed.append(f"{where}: {problem.get('message', problem)}")
    return report
