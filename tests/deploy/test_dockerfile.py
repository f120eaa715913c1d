"""The project's Dockerfile, exercised without Docker.

The fast tests read the Dockerfile and `.dockerignore`: two stages, a slim runtime that runs as
an unprivileged user, installs from the build stage's wheels only, and has a health check and
the `drehscheibe` entry point. The slow test follows the Dockerfile's own instructions on this
machine (COPY from the build context as `.dockerignore` filters it, then every RUN command of
both stages, with container paths mapped into tmp_path), so it cannot drift from the file: the
wheel is built as the first stage builds it, installed into a fresh virtual environment as the
second stage installs it (from the wheelhouse alone, no index, no pip configuration of this
machine), and the installed `drehscheibe` must answer.
"""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import sysconfig
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.compose_support import load_compose
from tests.deploy.dockerfile_support import (
    DockerIgnore,
    Stage,
    StageRun,
    exec_form,
    parse_dockerfile,
    split_flags,
)

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
PROJECT_PACKAGES = ["ngsi", "models", "agents", "schemas", "drehscheibe"]
COMPOSE = "docker-compose.fiware.yml"


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    _, found = parse_dockerfile(DOCKERFILE)
    return found


@pytest.fixture(scope="module")
def ignore() -> DockerIgnore:
    return DockerIgnore((REPO / ".dockerignore").read_text(encoding="utf-8"))


def runtime_of(stages: list[Stage]) -> Stage:
    return stages[-1]


def only(stage: Stage, keyword: str) -> list[str]:
    (instruction,) = stage.all(keyword)
    value = exec_form(instruction.args)
    assert value is not None, f"Dockerfile:{instruction.line}: use the exec form (JSON array)"
    return value


def healthcheck_command(stage: Stage) -> list[str]:
    (instruction,) = stage.all("HEALTHCHECK")
    _, rest = split_flags(instruction.args)
    keyword, _, command = rest.partition(" ")
    assert keyword == "CMD"
    value = exec_form(command)
    assert value is not None, "HEALTHCHECK CMD in exec form"
    return value


def test_two_stages_and_a_slim_runtime(stages: list[Stage]) -> None:
    assert len(stages) == 2
    build, runtime = stages
    assert build.name is not None
    assert runtime.base == "python:3.11-slim"
    assert build.base == runtime.base  # the wheels are built for the runtime's Python
    builds_wheel = [i.args for i in build.all("RUN") if re.search(r"pip wheel|-m build", i.args)]
    assert builds_wheel, "the first stage builds the wheel"


def test_the_runtime_installs_wheels_only_and_runs_unprivileged(stages: list[Stage]) -> None:
    build, runtime = stages
    copies = [split_flags(i.args)[0] for i in runtime.all("COPY") + runtime.all("ADD")]
    assert all("from" in flags for flags in copies), "no source tree in the runtime stage"
    installs = [i for i in runtime.all("RUN") if "pip install" in i.args]
    assert len(installs) == 1
    flags, command = split_flags(installs[0].args)
    assert "--no-index" in command.split(), "the runtime installs from the wheelhouse alone"
    mounts = [dict(item.split("=", 1) for item in m.split(",")) for m in flags.get("mount", [])]
    assert any(m.get("from") == build.name for m in mounts)
    for instruction in runtime.all("RUN"):
        assert not re.search(r"apt-get|apk add|gcc|build-essential", instruction.args)
    users = runtime.all("USER")
    assert users, "the runtime stage runs as a user of its own"
    user = users[-1].args.split(":")[0]
    assert user not in {"0", "root"}
    assert runtime.instructions.index(users[-1]) > runtime.instructions.index(installs[0])


def test_entry_point_health_check_and_ports(stages: list[Stage]) -> None:
    runtime = runtime_of(stages)
    assert only(runtime, "ENTRYPOINT") == ["drehscheibe"]
    command = healthcheck_command(runtime)
    assert command[0] == "python"
    assert "/healthz" in " ".join(command)
    exposed = {int(port.split("/")[0]) for i in runtime.all("EXPOSE") for port in i.args.split()}
    env = dict.fromkeys(re.findall(r"\$\{(\w+):\?", (REPO / COMPOSE).read_text()), "x")
    compose = load_compose(REPO / COMPOSE, env)
    image = compose.service("agent").image
    ours = [s for s in compose.services.values() if s.image == image]
    used = {int(s.option("--port") or 8080) for s in ours if s.argv()[:1] != ["subscriptions"]}
    assert used <= exposed


def test_dockerignore_keeps_the_context_to_what_the_image_needs(ignore: DockerIgnore) -> None:
    for kept in ["pyproject.toml", "README.md", "ngsi/__init__.py", "schemas/json/x.json"]:
        assert not ignore.excluded(kept), kept
    for package in PROJECT_PACKAGES:
        assert not ignore.excluded(f"{package}/__init__.py"), package
    for left_out in [
        ".env",
        "deploy/env.example",
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "agents/__pycache__/x.cpython-311.pyc",
        "demo-data/broker/default.sqlite",
    ]:
        assert ignore.excluded(left_out), left_out


def test_every_package_of_the_wheel_is_copied_into_the_build(stages: list[Stage]) -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r"packages = \[([^\]]*)\]", pyproject)
    assert found
    packages = re.findall(r'"([^"]+)"', found.group(1))
    assert packages == PROJECT_PACKAGES
    copied = {word.rstrip("/") for i in stages[0].all("COPY") for word in i.args.split()[:-1]}
    assert set(packages) | {"pyproject.toml", "README.md"} <= copied


# --- the build, followed ---------------------------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/healthz" else 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def shim(folder: Path) -> Path:
    """A folder with `python`: the interpreter running the tests (a Python 3.11 with pip)."""
    folder.mkdir()
    python = folder / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return folder


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_image_build_followed_on_this_machine(
    stages: list[Stage], ignore: DockerIgnore, tmp_path: Path, health_server: str
) -> None:
    shims = shim(tmp_path / "shim")
    build_stage, runtime_stage = stages
    assert build_stage.name is not None
    # The build stage fetches dependencies the way this machine's pip is set up to.
    build = StageRun(
        build_stage,
        root=tmp_path / "build",
        context=REPO,
        ignore=ignore,
        env={**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"},
    )
    build.run()
    wheels = sorted(build.host("/wheels").glob("drehscheibe-*.whl"))
    assert len(wheels) == 1, build.ran
    # The runtime stage sees nothing of this machine's pip: the wheelhouse must be complete.
    home = tmp_path / "home"
    home.mkdir()
    runtime = StageRun(
        runtime_stage,
        root=tmp_path / "runtime",
        context=REPO,
        ignore=ignore,
        env={"PATH": f"{shims}:/usr/bin:/bin", "HOME": str(home), "PIP_CONFIG_FILE": os.devnull},
        stages={build_stage.name: build},
    )
    runtime.run()
    assert any(part.startswith("useradd") for part in runtime.skipped)
    venv = runtime.host("/opt/drehscheibe")
    assert (venv / "bin" / "drehscheibe").is_file()

    # Package data travels in the wheel, and the agent's hot path compiled for this Python.
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert f"-{tag}-{tag}-linux_" in wheels[0].name, wheels[0].name
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    modules = config["tool"]["drehscheibe"]["native"]["modules"]
    compiled = {module.replace(".", "/") + suffix for module in modules}
    compiled.add(f"drehscheibe__mypyc{suffix}")
    assert compiled <= names, f"not compiled into the wheel: {sorted(compiled - names)}"
    assert "drehscheibe__mypyc.json" not in names
    for pattern in ["schemas/json/*.json", "agents/profiles/builtin/*.yaml"]:
        expected = {p.relative_to(REPO).as_posix() for p in REPO.glob(pattern)}
        assert expected
        assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]

    def drehscheibe(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [*only(runtime_stage, "ENTRYPOINT"), *args]
        return subprocess.run(
            argv,
            cwd=runtime.host(runtime.workdir),
            env={**runtime.env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    version = re.search(
        r'__version__ = "([^"]+)"', (REPO / "drehscheibe" / "__init__.py").read_text()
    )
    assert version
    answer = drehscheibe("--version")
    assert answer.returncode == 0, answer.stderr
    assert version.group(1) in answer.stdout
    answer = drehscheibe("--help")
    assert answer.returncode == 0, answer.stderr
    for group in ["agent", "consume", "subscriptions", "broker"]:
        assert group in answer.stdout
    answer = drehscheibe("models", "list")
    assert answer.returncode == 0, answer.stderr
    assert "AirQualityObserved" in answer.stdout
    answer = drehscheibe("profiles", "list", "--output", "json")
    assert answer.returncode == 0, answer.stderr
    builtin = {p.stem for p in (REPO / "agents" / "profiles" / "builtin").glob("*.yaml")}
    assert builtin <= set(re.findall(r'"name": "([^"]+)"', answer.stdout))
    where = subprocess.run(
        [
            "python",
            "-c",
            "import drehscheibe, schemas, agents.runtime._pipeline as pipeline; "
            "print(drehscheibe.__file__); print(pipeline.__file__)",
        ],
        cwd=runtime.host(runtime.workdir),
        env=runtime.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    package, pipeline = where.stdout.split()
    assert Path(package).is_relative_to(venv), "imported from outside the venv"
    assert pipeline.endswith(suffix), "the installed agent runs plain Python"
    assert not where.stderr, where.stderr  # no warning of stale compiled modules

    # The image's HEALTHCHECK, run with the installed Python.
    check = healthcheck_command(runtime_stage)

    def healthy(url: str) -> int:
        env = {**runtime.env, "DREHSCHEIBE_HEALTHCHECK_URL": url}
        return subprocess.run(
            check, env=env, capture_output=True, timeout=60, check=False
        ).returncode

    assert healthy(f"{health_server}/healthz") == 0
    assert healthy(f"{health_server}/failing") != 0
    assert healthy("http://127.0.0.1:9/healthz") != 0
