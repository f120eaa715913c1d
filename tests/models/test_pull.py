"""`drehscheibe models pull`: the official files from a (local) mirror of the repositories."""

from __future__ import annotations

import functools
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from models import default_registry
from schemas import SchemaPullError, SdmSchemas, pull_schemas
from tests.conftest import free_port
from tests.models.test_cli_models import run

EXPECTED = {
    "common-schema.json",
    "dataModel.Device/device-schema.json",
    "dataModel.Environment/Environment-schema.json",
    "dataModel.Weather/weather-schema.json",
    *(f"{info.repository}/context.jsonld" for info in default_registry),
    *(f"{info.repository}/{info.type_name}/schema.json" for info in default_registry),
}


class _Quiet(SimpleHTTPRequestHandler):
    requested: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        self.requested.append(self.path)


@pytest.fixture
def mirror(sdm_dir: Path, tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """The upstream layout (`<repository>/master/<path>`) served on 127.0.0.1."""
    served = tmp_path / "served"
    for subject in sdm_dir.glob("dataModel.*"):
        shutil.copytree(
            subject, served / subject.name / "master", ignore=shutil.ignore_patterns("examples")
        )
    (served / "data-models" / "master").mkdir(parents=True)
    shutil.copy(sdm_dir / "common-schema.json", served / "data-models" / "master")
    requested: list[str] = []
    handler = type("Handler", (_Quiet,), {"requested": requested})
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served, requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_pull_fetches_schemas_contexts_and_what_they_reference(
    mirror: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    base_url, _, requested = mirror
    dest = tmp_path / "sdm"
    result = pull_schemas(dest, subjects=default_registry.subjects(), base_url=base_url)
    assert set(result.files) == EXPECTED
    assert len(requested) == len(EXPECTED)
    assert not (dest / "dataModel.Weather" / "WeatherObserved" / "examples").exists()
    manifest = json.loads((dest / "MANIFEST.json").read_text())
    assert manifest["base_url"] == base_url
    assert set(manifest["files"]) == EXPECTED
    pulled = SdmSchemas(dest)
    assert pulled.types() == default_registry.types()
    assert pulled.violations(
        {"id": "urn:ngsi-ld:AirQualityObserved:x", "type": "AirQualityObserved"}
    )


def test_a_failed_pull_leaves_the_directory_alone(
    mirror: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    base_url, served, _ = mirror
    (served / "dataModel.Weather" / "master" / "weather-schema.json").unlink()
    dest = tmp_path / "sdm"
    dest.mkdir()
    (dest / "keep.txt").write_text("x")
    with pytest.raises(SchemaPullError, match=r"weather-schema\.json answered HTTP 404"):
        pull_schemas(dest, subjects=default_registry.subjects(), base_url=base_url)
    assert sorted(path.name for path in dest.iterdir()) == ["keep.txt"]


def test_pull_from_the_command_line(mirror: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    base_url, _, _ = mirror
    dest = tmp_path / "pulled"
    result = run("pull", "--dest", str(dest), "--base-url", base_url)
    assert result.returncode == 0, result.stderr
    assert f"{len(EXPECTED)} files from {base_url} in {dest}" in result.stdout
    example = (
        Path(__file__).resolve().parents[2] / ".." / "shared" / "sdm" / "dataModel.Parking"
        / "ParkingSpot" / "examples" / "example-normalized.jsonld"
    )  # fmt: skip
    checked = run("validate", "--schemas", str(dest), str(example))
    assert checked.returncode == 0, checked.stdout


def test_pull_offline_is_one_clear_line(tmp_path: Path) -> None:
    dest = tmp_path / "sdm"
    result = run(
        "pull",
        "--dest",
        str(dest),
        "--base-url",
        f"http://127.0.0.1:{free_port()}",
        "--timeout",
        "2",
    )
    assert result.returncode == 1
    assert "cannot reach http://127.0.0.1:" in result.stderr
    assert "DREHSCHEIBE_SDM_SCHEMAS" in result.stderr
    assert "Traceback" not in result.stderr
    assert not dest.exists() or not any(dest.iterdir())
