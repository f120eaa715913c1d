"""`drehscheibe models ...` run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "sdm"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "DREHSCHEIBE_SDM_SCHEMAS"}
    environment.update({"COLUMNS": "200", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "drehscheibe", "models", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
    )


def test_list_as_json(sdm_dir: Path) -> None:
    result = run("list", "--output", "json", "--schemas", str(sdm_dir))
    assert result.returncode == 0, result.stderr
    rows = {row["type"]: row for row in json.loads(result.stdout)}
    assert len(rows) == 16
    assert rows["AirQualityObserved"] == {
        "type": "AirQualityObserved",
        "subject": "Environment",
        "schemaVersion": "0.1.4",
        "installedSchemaVersion": "0.1.4",
        "context": "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/"
        "master/context.jsonld",
    }


def test_list_as_a_table_says_what_is_missing(tmp_path: Path) -> None:
    result = run("list", env={"DREHSCHEIBE_SDM_SCHEMAS": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "WeatherForecast" in result.stdout
    assert "missing" in result.stdout


def test_show_a_type() -> None:
    result = run("show", "AirQualityObserved", "--output", "json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    attributes = {row["name"]: row for row in shown["attributes"]}
    assert attributes["temperature"] == {
        "name": "temperature",
        "attributeType": "Property",
        "valueType": "number",
        "unitCode": "CEL",
        "required": False,
        "enum": [],
    }
    assert attributes["typeofLocation"]["enum"] == ["indoor", "outdoor"]
    assert attributes["refDevice"]["attributeType"] == "Relationship"
    assert attributes["location"]["valueType"] == "GeoJSON geometry"
    assert attributes["dateObserved"]["required"] is True
    table = run("show", "ParkingSpot")
    assert table.returncode == 0
    assert "occupied" in table.stdout
    unknown = run("show", "Bridge")
    assert unknown.returncode == 1
    assert "no Smart Data Model is registered for type 'Bridge'" in unknown.stderr


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_validate_files(sdm_dir: Path, tmp_path: Path) -> None:
    weather = EXAMPLES / "dataModel.Weather" / "WeatherObserved" / "examples"
    normalized = weather / "example-normalized.jsonld"
    batch = _write(
        tmp_path / "batch.json",
        [
            json.loads((weather / "example.json").read_text()),
            json.loads(normalized.read_text()),
        ],
    )
    good = run("validate", "--schemas", str(sdm_dir), str(normalized), str(batch))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "3 of 3 entities valid" in good.stdout

    aqo = EXAMPLES / "dataModel.Environment" / "AirQualityObserved" / "examples" / "example.json"
    bad = run("validate", "--schemas", str(sdm_dir), str(aqo), str(batch))
    assert bad.returncode == 6, bad.stdout + bad.stderr
    assert (
        f"{aqo}: Madrid-AmbientObserved-28079004-2016-03-15T11:00:00: tsp: type: "
        "73.3 is not of type 'integer'"
    ) in bad.stdout
    assert "dateObserved: format:" in bad.stdout
    assert "2 of 3 entities valid" in bad.stdout

    as_json = run("validate", "-o", "json", str(aqo), env={"DREHSCHEIBE_SDM_SCHEMAS": str(sdm_dir)})
    assert as_json.returncode == 6
    [result] = json.loads(as_json.stdout)
    assert result["valid"] is False
    assert {"attribute": "tsp", "rule": "type", "message": "73.3 is not of type 'integer'"} in (
        result["violations"]
    )


def test_validate_without_schemas_or_with_bad_files(sdm_dir: Path, tmp_path: Path) -> None:
    example = EXAMPLES / "dataModel.Weather" / "WeatherObserved" / "examples" / "example.json"
    missing = run("validate", str(example), env={"DREHSCHEIBE_SDM_SCHEMAS": str(tmp_path / "x")})
    assert missing.returncode == 1
    assert "no schema for 'WeatherObserved'" in missing.stdout
    assert "drehscheibe models pull" in missing.stdout
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    result = run("validate", "--schemas", str(sdm_dir), str(broken), str(tmp_path / "absent.json"))
    assert result.returncode == 1
    assert f"{broken}: error: not JSON" in result.stdout
    assert "absent.json: error: cannot read" in result.stdout
    assert "Traceback" not in result.stderr


def test_published_schemas_are_up_to_date(tmp_path: Path) -> None:
    assert run("schemas", "--check").returncode == 0
    stale = run("schemas", "--check", "--dir", str(tmp_path))
    assert stale.returncode == 1
    assert "AirQualityObserved: out of date" in stale.stdout
    written = run("schemas", "--write", "--dir", str(tmp_path))
    assert written.returncode == 0
    assert len(list(tmp_path.glob("*.schema.json"))) == 16
    assert run("schemas", "--check", "--dir", str(tmp_path)).returncode == 0


def test_help() -> None:
    result = run("validate", "--help")
    assert result.returncode == 0
    assert "--schemas" in result.stdout
