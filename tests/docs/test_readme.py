"""Every command shown in README.md and the docs pages (`tests/docs/_blocks.DOCUMENTS`) works as
written.

The shell blocks are read from the documents themselves. `drehscheibe ...` and `curl ...` run
as real subprocesses, in document order, in a scratch folder, against what the documents
themselves start: the embedded broker (`drehscheibe broker serve`), the agent, the consumers and
the page, plus a Mosquitto on loopback where the text says "an MQTT broker on 127.0.0.1:1883".
The only changes made to a command are its ports, each replaced by a free one (1026 → the
broker's, 1883 → Mosquitto's, ...). Files shown as `yaml NAME` / `csv NAME` blocks are written
as shown before the commands after them run. Each command must exit with 0 and print what
`EXPECT` says it prints. The Python examples run too: a script to its end, a consumer until it
has handled one notification.

Commands that cannot run here (`make demo` runs until Ctrl-C, `docker compose` needs Docker) are
checked for what they name: the make target, the compose file, its profiles and services, the
files they copy. A command that is neither run by a scenario nor checked fails
`test_every_command_is_run_or_checked`, so that a new one cannot slip through.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO, Mosquitto, free_port, wait_for_port
from tests.docs._blocks import SHELL, Block, Command, all_blocks, all_commands, commands


@dataclass(frozen=True)
class Scenario:
    """Sections that run together in document order, against one broker (and Mosquitto), after
    the `prelude`: the commands (by their words) and files of "The path by hand" that start
    what the sections need."""

    sections: tuple[tuple[str, str], ...]
    prelude: frozenset[tuple[str, ...]] = frozenset()


BY_HAND = ("README.md", "The path by hand")
SCENARIOS: dict[str, Scenario] = {
    "registry": Scenario(
        sections=(("README.md", "Registering devices"), ("README.md", "Writing a device profile")),
        prelude=frozenset({("broker", "serve")}),
    ),
    "path": Scenario(
        sections=(
            BY_HAND,
            ("README.md", "Troubleshooting"),
            ("README.md", "The NGSI-LD client and the embedded broker"),
            ("metrics.md", "Metrics"),
        ),
    ),
    "subscriptions": Scenario(
        sections=(
            ("README.md", "Subscriptions as code"),
            ("README.md", "The consumers"),
            ("README.md", "Metrics and health"),
        ),
        prelude=frozenset({("broker", "serve"), ("agent", "run"), ("simulate", "register")}),
    ),
}
RUN = frozenset({"drehscheibe", "curl"})
"""Programs whose commands the scenarios run."""
CHECKED = frozenset({"make", "docker", "cp", "python"})
"""Programs whose commands cannot run here; `test_commands_that_cannot_run_name_what_exists`
checks them."""

# The ports the documents use, each replaced by a free one per scenario (1883: Mosquitto's).
DOC_PORTS = (1026, 1883, 8080, 8085, 8090, 8091, 8092, 8093, 8094)
_PORT = re.compile(r"(?<![\d.])(" + "|".join(str(p) for p in DOC_PORTS) + r")(?!\d)")

SERVERS: dict[tuple[str, ...], str] = {
    ("broker", "serve"): "/version",
    ("agent", "run"): "/readyz",
    ("consume", "run"): "/health",
    ("web", "serve"): "/api/config",
}
"""Long-running commands: started, then ready when this path answers 200 on their port."""


@dataclass(frozen=True)
class Expect:
    pattern: str
    eventually: bool = False
    """Asynchronous results (the agent delivers, the broker notifies): retried for a while."""
    exit_codes: frozenset[int] = frozenset({0})


EXPECT: dict[tuple[str, ...], Expect] = {
    ("agent", "check"): Expect(r'"profiles": \['),
    ("simulate", "register"): Expect(r"registered \d+"),
    ("simulate", "run"): Expect(r"sent [1-9]\d* uplinks"),
    ("entities", "types"): Expect(r"AirQualityObserved", eventually=True),
    ("entities", "count"): Expect(r"(?m)^[1-9]\d*$", eventually=True),
    ("entities", "list"): Expect(r'"pm10": ', eventually=True),
    ("entities", "get"): Expect(r'"id": "urn:ngsi-ld:AirQualityObserved:', eventually=True),
    ("devices", "register"): Expect(r"urn:ngsi-ld:Device:70B3D57ED"),
    ("devices", "list"): Expect(r"[1-9]\d* registered device"),
    ("devices", "show"): Expect(r'"dev_eui": "70B3D57ED0000001"'),
    ("devices", "import"): Expect(r"registered 2, updated 0"),
    ("devices", "update"): Expect(r"maintenance"),
    ("devices", "calibrate"): Expect(r"calibration temperature"),
    ("devices", "delete"): Expect(r"deleted urn:ngsi-ld:Device:70B3D57ED0000001"),
    ("profiles", "list"): Expect(r"classroom-climate\s*│\s*user"),
    ("profiles", "show"): Expect(r"(?m)^name: air-quality-lpp$"),
    ("profiles", "test"): Expect(r'"observedAt": "'),
    ("profiles", "check"): Expect(r"classroom-climate\s*│\s*IndoorEnvironmentObserved\s*│\s*ok"),
    ("subscriptions", "diff"): Expect(r"Plan for city-hub: "),
    ("subscriptions", "apply"): Expect(r"applied: \d+ changes"),
    ("subscriptions", "list"): Expect(r"city-hub/traffic/flow"),
    ("subscriptions", "export"): Expect(r"wrote exported\.yaml"),
    ("consume", "query"): Expect(r'"entityType": "AirQualityObserved"|AirQualityObserv', True),
    ("deadletters", "list"): Expect(r"codec-error|malformed-uplink"),
    ("deadletters", "show"): Expect(r'"reason": "[a-z-]+"'),
    # a corrupt frame stays corrupt: replaying it fails again, which is exit code 1
    ("deadletters", "replay"): Expect(r"taken", exit_codes=frozenset({0, 1})),
    ("deadletters", "purge"): Expect(r"[1-9]\d* dead letters deleted"),
    ("uplinks", "replay"): Expect(r"[1-9]\d* archived uplinks would be replayed|entities queued"),
    ("curl", "/metrics"): Expect(r"drehscheibe_uplinks_total\{"),
    ("curl", "/readyz"): Expect(r'"ready":true', eventually=True),
    ("curl", "/version"): Expect(r'"ngsiLdSpec"'),
    ("curl", "/health"): Expect(r'"consumer":"traffic"'),
}


def scenario_of(document: str, section: str) -> str | None:
    for name, scenario in SCENARIOS.items():
        if (document, section) in scenario.sections:
            return name
    return None


def expectation(command: Command) -> Expect | None:
    if command.program == "curl":
        url = next((a for a in command.argv if a.startswith("http")), "")
        return EXPECT.get(("curl", httpx.URL(url).path)) if url else None
    return EXPECT.get(command.words)


# --- what is checked without running -------------------------------------------------------


def test_the_documents_have_commands() -> None:
    found = all_commands()
    assert len(found) > 40, [c.text for c in found]
    assert {c.block.document for c in found} >= {"README.md"}


def test_every_command_is_run_or_checked() -> None:
    escaped = []
    for command in all_commands():
        program = command.program
        if program in CHECKED:
            continue
        if program not in RUN:
            escaped.append(f"{command.where}: {command.text!r}: add its program to RUN or CHECKED")
        elif scenario_of(command.block.document, command.block.section) is None:
            escaped.append(f"{command.where}: {command.text!r}: its section is in no scenario")
        elif command.words not in SERVERS and expectation(command) is None:
            escaped.append(f"{command.where}: {command.text!r}: say in EXPECT what it prints")
    assert not escaped, "\n".join(escaped)


def test_every_file_and_python_block_is_used() -> None:
    for block in all_blocks():
        if block.language in SHELL or block.language == "":
            continue
        if block.language == "python":
            ast.parse(block.text, filename=block.where)
            assert scenario_of(block.document, block.section), f"{block.where}: not run"
        elif block.name == ".env":
            continue  # test_env_blocks_name_settings_of_the_env_file
        else:
            assert block.name, f"{block.where}: a `{block.language}` block needs a file name"
            assert scenario_of(block.document, block.section), f"{block.where}: not used"


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        (REPO / "docker-compose.fiware.yml").read_text(encoding="utf-8")
    )
    return document


def test_commands_that_cannot_run_name_what_exists() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    compose = _compose()
    services = compose["services"]
    profiles = {p for service in services.values() for p in service.get("profiles", [])}
    checked = 0
    for command in all_commands():
        argv = command.argv
        if command.program == "make":
            for target in argv[1:]:
                assert re.search(rf"(?m)^{re.escape(target)}:", makefile), command.where
            checked += 1
        elif command.program == "cp":
            assert (REPO / argv[1]).is_file(), f"{command.where}: {argv[1]} does not exist"
            checked += 1
        elif command.program == "python":  # the benchmarks: too long to run here
            script = REPO / argv[1]
            assert script.is_file(), f"{command.where}: {argv[1]} does not exist"
            usage = subprocess.run(
                [sys.executable, str(script), "--help"],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            ).stdout
            for option in argv[2:]:
                if option.startswith("--"):
                    assert option in usage, f"{command.where}: {argv[1]} has no {option}"
            checked += 1
        elif command.program == "docker":
            assert argv[1] == "compose", command.where
            rest = list(argv[2:])
            while rest and rest[0].startswith("-"):
                option = rest.pop(0)
                value = rest.pop(0)
                if option == "-f":
                    assert (REPO / value).is_file(), f"{command.where}: no {value}"
                elif option == "--profile":
                    assert value in profiles, f"{command.where}: no profile {value}"
                else:
                    pytest.fail(f"{command.where}: unexpected option {option}")
            verb, *args = rest
            assert verb in {"up", "ps", "run", "logs", "down", "pull", "build", "config"}, verb
            named = [a for a in args if not a.startswith("-")]
            for service in named:
                assert service in services, f"{command.where}: no service {service}"
            if verb == "run":
                assert named, f"{command.where}: run needs a service"
            checked += 1
    assert checked >= 5


def test_env_blocks_name_settings_of_the_env_file() -> None:
    example = (REPO / "deploy" / "env.example").read_text(encoding="utf-8")
    known = set(re.findall(r"(?m)^([A-Z_][A-Z0-9_]*)=", example))
    compose_text = (REPO / "docker-compose.fiware.yml").read_text(encoding="utf-8")
    services = _compose()["services"].values()
    profiles = {p for service in services for p in service.get("profiles", [])}
    env_blocks = [b for b in all_blocks() if b.name == ".env"]
    assert env_blocks
    for block in env_blocks:
        for line in block.text.splitlines():
            key, _, value = line.partition("=")
            assert key in known, f"{block.where}: {key} is not in deploy/env.example"
            if key == "COMPOSE_PROFILES":
                for profile in value.split(","):
                    assert profile in profiles, f"{block.where}: no compose profile {profile}"
            if key == "ORIONLD_TROE":
                assert "${ORIONLD_TROE" in compose_text


# --- the scenarios -------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]


@dataclass
class Stage:
    """A scratch folder, the ports of one scenario, and the servers it started."""

    workdir: Path
    ports: dict[int, int]
    servers: list[Server] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)

    def subst(self, text: str) -> str:
        return _PORT.sub(lambda m: str(self.ports[int(m.group(1))]), text)

    def environ(self, extra: dict[str, str]) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("DREHSCHEIBE_") or key == "DREHSCHEIBE_SDM_SCHEMAS"
        }
        env.update(
            COLUMNS="200",
            NO_COLOR="1",
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(REPO),
            DREHSCHEIBE_BROKER_URL=f"http://127.0.0.1:{self.ports[1026]}",
        )
        env.update({k: self.subst(v) for k, v in extra.items()})
        return env

    def argv(self, command: Command) -> list[str]:
        argv = [self.subst(word) for word in command.argv]
        if command.program == "drehscheibe":
            return [sys.executable, "-m", "drehscheibe", *argv[1:]]
        return argv

    def write(self, block: Block) -> None:
        assert block.name is not None
        path = self.workdir / block.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.subst(block.text), encoding="utf-8")

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Server:
        log = self.workdir / "logs" / f"{len(self.servers)}-{name}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        server = Server(name, process, log)
        self.servers.append(server)
        return server

    def serve(self, command: Command) -> None:
        path = SERVERS[command.words]
        argv = self.argv(command)
        if command.words == ("agent", "run"):
            port = self.ports[8080]
        else:
            assert "--port" in argv, f"{command.where}: show the port (--port) of a server"
            port = int(argv[argv.index("--port") + 1])
        server = self.start(" ".join(command.words), argv, self.environ(command.env))
        url = f"http://127.0.0.1:{port}{path}"
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(f"{command.where}: {command.text!r} exited:\n{server.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    self.ran.append(command.text)
                    return
            time.sleep(0.1)
        pytest.fail(f"{command.where}: {url} did not answer 200:\n{server.output()}")

    def run(self, command: Command) -> None:
        if command.words in SERVERS:
            self.serve(command)
            return
        expect = expectation(command)
        assert expect is not None, command.where
        print(f"{time.strftime('%X')} {command.text}", flush=True)
        deadline = time.monotonic() + (60 if expect.eventually else 0)
        while True:
            result = subprocess.run(
                self.argv(command),
                cwd=self.workdir,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env=self.environ(command.env),
            )
            output = result.stdout + result.stderr
            ok = result.returncode in expect.exit_codes and re.search(expect.pattern, output)
            if ok:
                self.ran.append(command.text)
                return
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"{command.where}: {command.text!r} exited with {result.returncode}, "
                    f"expected {sorted(expect.exit_codes)} and /{expect.pattern}/ in:\n"
                    f"{output[-4000:]}"
                )
            time.sleep(1.0)

    def stop(self) -> None:
        for server in reversed(self.servers):
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGTERM)
        for server in reversed(self.servers):
            try:
                server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=10)
        self.servers.clear()


@contextlib.contextmanager
def stage(tmp_path: Path, mosquitto: Mosquitto | None) -> Iterator[Stage]:
    """The scratch folder as a reader's checkout has it after `make demo`: the repository's
    examples (ports replaced) and the Smart Data Models contexts the demo writes."""
    from models import write_subject_contexts

    ports = {port: free_port() for port in DOC_PORTS}
    if mosquitto is not None:
        ports[1883] = mosquitto.port
    running = Stage(workdir=tmp_path / "work", ports=ports)
    running.workdir.mkdir()
    examples = running.workdir / "examples"
    examples.mkdir()
    for source in (REPO / "examples").glob("*.yaml"):
        (examples / source.name).write_text(
            running.subst(source.read_text(encoding="utf-8")), encoding="utf-8"
        )
    write_subject_contexts(running.workdir / "demo-data" / "contexts")
    try:
        yield running
    finally:
        running.stop()


def _steps(scenario: str) -> list[Block]:
    return [b for b in all_blocks() if scenario_of(b.document, b.section) == scenario]


def run_python(running: Stage, block: Block) -> None:
    """A Python example, ports replaced: a consumer (`consumer.run(...)`) gets one notification
    and must print and store it; anything else must run to its end and print an entity id."""
    script = running.workdir / f"example-{block.line}.py"
    script.write_text(running.subst(block.text), encoding="utf-8")
    argv = [sys.executable, str(script)]
    env = running.environ({})
    if "consumer.run(" not in block.text:
        result = subprocess.run(
            argv, cwd=running.workdir, capture_output=True, text=True, timeout=60, env=env
        )
        assert result.returncode == 0, f"{block.where}:\n{result.stderr}"
        assert "urn:ngsi-ld:" in result.stdout, f"{block.where}: printed {result.stdout!r}"
        return
    port = running.ports[8085]
    process = subprocess.Popen(
        argv, cwd=running.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        wait_for_port(port, timeout=30)
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        body = {
            "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
            "type": "Notification",
            "subscriptionId": "urn:ngsi-ld:Subscription:noise",
            "notifiedAt": now,
            "data": [
                {
                    "id": "urn:ngsi-ld:NoiseLevelObserved:bolkerstrasse",
                    "type": "NoiseLevelObserved",
                    "LAeq": {"type": "Property", "value": 71.5, "observedAt": now},
                }
            ],
        }
        response = httpx.post(f"http://127.0.0.1:{port}/notify", json=body, timeout=10)
        assert response.status_code == 200, response.text
        line = process.stdout.readline().decode() if process.stdout else ""
        assert line == "loud at urn:ngsi-ld:NoiseLevelObserved:bolkerstrasse 71.5\n", line
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=20)
    assert b"Traceback" not in err, err.decode()
    assert (running.workdir / "noise.jsonl").read_text(encoding="utf-8").count("\n") == 1


def play(running: Stage, name: str) -> None:
    """Run the scenario's prelude, then its blocks in document order."""
    scenario = SCENARIOS[name]
    if scenario.prelude:
        for block in all_blocks():
            if (block.document, block.section) != BY_HAND:
                continue
            if block.language in SHELL:
                for command in commands(block):
                    if command.words in scenario.prelude:
                        running.run(command)
            elif block.name is not None:
                running.write(block)
    for block in _steps(name):
        if block.language in SHELL:
            for command in commands(block):
                running.run(command)
        elif block.language == "python":
            run_python(running, block)
        elif block.name is not None and block.name != ".env":
            running.write(block)


def section_commands(name: str) -> list[str]:
    """The commands of the scenario's sections, in document order (without the prelude)."""
    return [c.text for b in _steps(name) if b.language in SHELL for c in commands(b)]


def documented_metrics() -> set[str]:
    text = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(drehscheibe_[a-z_]+)`", text, flags=re.MULTILINE))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_device_registration_and_profiles_run_as_written(tmp_path: Path) -> None:
    with stage(tmp_path, None) as running:
        play(running, "registry")
        assert running.ran[1:] == section_commands("registry")


@pytest.mark.slow
@pytest.mark.mqtt
@pytest.mark.timeout(300)
def test_the_path_by_hand_and_troubleshooting_run_as_written(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with stage(tmp_path, mosquitto) as running:
        play(running, "path")
        assert running.ran == section_commands("path")
        # what the agent exposes is what docs/metrics.md lists
        text = httpx.get(f"http://127.0.0.1:{running.ports[8080]}/metrics", timeout=10).text
        exposed = set(re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE))
        documented = documented_metrics()
        assert exposed - documented == set(), "exposed, not in docs/metrics.md"
        sources = "\n".join(p.read_text(encoding="utf-8") for p in REPO.glob("agents/**/*.py"))
        assert {m for m in documented if f'"{m}"' not in sources} == set(), "not in the code"


@pytest.mark.slow
@pytest.mark.mqtt
@pytest.mark.timeout(300)
def test_subscriptions_and_consumers_run_as_written(tmp_path: Path, mosquitto: Mosquitto) -> None:
    with stage(tmp_path, mosquitto) as running:
        play(running, "subscriptions")
        assert running.ran[3:] == section_commands("subscriptions")
        # the subscriptions reached the consumers over HTTP and MQTT
        assert (running.workdir / "var" / "traffic-state.json").is_file()
        assert (running.workdir / "var" / "planning.sqlite").is_file()
        assert (running.workdir / "exported.yaml").is_file()
