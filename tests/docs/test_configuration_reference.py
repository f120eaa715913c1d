"""docs/configuration.md is what docs/_generate.py renders from the JSON Schemas, and the
rendering leaves no setting out."""

from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.conftest import REPO

GENERATOR = REPO / "docs" / "_generate.py"


@functools.cache
def generator() -> ModuleType:
    """docs/_generate.py as a module (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("docs_generate", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_committed_reference_is_up_to_date() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == generator().render(), (
        "docs/configuration.md is out of date: run .venv/bin/python docs/_generate.py"
    )


def test_check_mode_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("# old\n", encoding="utf-8")
    command = [sys.executable, str(GENERATOR), "--check", "--output", str(stale)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "out of date" in result.stderr
    written = subprocess.run(
        [sys.executable, str(GENERATOR), "--output", str(stale)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def _paths(node: dict[str, Any], prefix: str = "") -> set[str]:
    """Every member path the rendering must show as a row: the members of nested objects with
    dots (`broker.url`), a $ref target's members in the target's own table."""
    out: set[str] = set()
    for member, sub in node.get("properties", {}).items():
        if sub is False:
            continue
        path = f"{prefix}{member}"
        if "$ref" not in sub and sub.get("type") == "object" and "properties" in sub:
            out |= _paths(sub, f"{path}.")
        else:
            out.add(path)
    return out


def test_every_setting_of_every_configuration_schema_is_a_row(tmp_path: Path) -> None:
    module = generator()
    text = module.render()
    names = module.config_schema_names()
    assert {"agent-config", "consumers", "device-profile"} <= set(names)
    rows = {line.split("`")[1] for line in text.splitlines() if line.startswith("| `")}
    for name in names:
        schema = json.loads((module.SCHEMA_DIR / f"{name}.schema.json").read_text("utf-8"))
        assert f'<a id="{name}"></a>' in text
        missing = _paths(schema) - rows
        assert not missing, f"{name}: {sorted(missing)}"
        for definition in schema.get("$defs", {}).values():
            missing = _paths(definition) - rows
            assert not missing, f"{name}: {sorted(missing)}"
    for entity_type in module.entity_schema_names():
        assert f"`{entity_type}`" in text


def test_a_new_setting_shows_up(tmp_path: Path) -> None:
    module = generator()
    folder = tmp_path / "json"
    folder.mkdir()
    schema = json.loads((module.SCHEMA_DIR / "agent-config.schema.json").read_text("utf-8"))
    schema["properties"]["broker"]["properties"]["pool_size"] = {
        "type": "integer",
        "minimum": 1,
        "description": "Connections kept open to the broker.",
    }
    (folder / "agent-config.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    text = module.render(folder)
    assert (
        "| `broker.pool_size` | integer, ≥ 1 | Connections kept open to the broker. |"
        in text.splitlines()
    )
    assert text != module.render()
