"""`docker-compose.fiware.yml` checked without a Docker engine.

The file is interpolated with the variables of `deploy/env.example` as Compose would (empty
secrets filled with test values), validated against the Compose Specification's JSON Schema, and
its wiring checked: services, profiles, ports, mounts, health checks and start order, secrets,
and the configuration files it mounts (the agent's, the consumers file, Mosquitto's) against the
project's own schemas and loaders.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from agents.runtime import AgentConfig, check_config, resolve_secret
from agents.subscriptions import load_consumers_file
from ngsi import CORE_CONTEXT_URL
from schemas import validate_document
from tests.deploy.compose_support import (
    Compose,
    MissingVariable,
    Service,
    load_compose,
    shell_expand,
    variables_in,
)
from tests.deploy.stack import (
    COMPOSE_FILE,
    COMPOSE_SETTINGS,
    REPO,
    SECRET_REFERENCE,
    SECRETISH,
    agent_service,
    filled_secret,
    mosquitto_conf,
    mosquitto_service,
    mounted,
    one,
    orion_service,
    subscriptions_service,
    url_port,
)


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(path, key, value) for every mapping entry and `KEY=VALUE` list item."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}/{key}", key, item
            yield from walk(item, f"{path}/{key}")
    elif isinstance(value, list):
        for number, item in enumerate(value):
            if isinstance(item, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", item):
                key, _, text = item.partition("=")
                yield f"{path}/{number}", key, text
            yield from walk(item, f"{path}/{number}")


# --- the file as a whole ---------------------------------------------------------------------


COMPOSE_FILES = sorted(
    {
        *REPO.glob("docker-compose*.y*ml"),
        *REPO.glob("compose*.y*ml"),
        *REPO.glob("deploy/*compose*.y*ml"),
    }
)


def test_the_compose_file_is_found() -> None:
    assert COMPOSE_FILE in COMPOSE_FILES


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_it_validates_against_the_compose_specification(
    path: Path, deploy_env: dict[str, str], shared_dir: Path
) -> None:
    """The compose file, and any override shipped beside it."""
    schema = json.loads((shared_dir / "compose" / "compose-spec.json").read_text())
    assert "draft-07" in schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    document = load_compose(path, deploy_env).document
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(document), key=lambda e: str(list(e.path))
    )
    assert not errors, "\n".join(
        f"{'/'.join(str(p) for p in e.path) or '(top)'}: {e.message}" for e in errors
    )


def referenced_variables(document: Any) -> set[str]:
    """Every variable the compose file's values read (comments do not count)."""
    if isinstance(document, str):
        return variables_in(document)
    if isinstance(document, dict):
        return set().union(*(referenced_variables(v) for v in document.values()), set())
    if isinstance(document, list):
        return set().union(*(referenced_variables(v) for v in document), set())
    return set()


def required_variables(document: Any) -> set[str]:
    """The variables the compose file requires (`${VAR:?...}` / `${VAR?...}`)."""
    text = json.dumps(document)
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", text.replace("$$", "")))


def test_every_variable_is_documented_in_env_example(
    compose: Compose, env_example: dict[str, str], raw: dict[str, Any]
) -> None:
    referenced = referenced_variables(raw)
    assert referenced, "the compose file reads no variables at all"
    assert referenced - env_example.keys() == set(), "read by the compose file, not in env.example"
    unused = env_example.keys() - referenced - COMPOSE_SETTINGS
    assert unused == set(), "in env.example, never read by the compose file"
    assert compose.substitution.unset == set()


def test_a_copied_env_example_refuses_to_start_until_every_secret_is_set(
    env_example: dict[str, str],
) -> None:
    env = dict(env_example)
    missing: list[MissingVariable] = []
    for _ in range(len(env) + 1):
        try:
            load_compose(COMPOSE_FILE, env)
        except MissingVariable as exc:
            missing.append(exc)
            env[exc.name] = filled_secret(exc.name)
        else:
            break
    unexplained = [exc.name for exc in missing if not exc.message.strip()]
    assert unexplained == [], "each ${VAR:?message} needs a message saying what to set"
    assert missing, "env.example as it is starts the stack: its secrets must be empty and required"
    empty_secrets = {n for n, v in env_example.items() if SECRETISH.search(n) and not v}
    optional = {"DREHSCHEIBE_BROKER_TOKEN"}  # a PEP proxy's token; none by default
    assert {exc.name for exc in missing} == empty_secrets - optional


def test_env_example_holds_no_secret_values(env_example: dict[str, str]) -> None:
    secrets = {name: value for name, value in env_example.items() if SECRETISH.search(name)}
    assert secrets, "env.example names no secrets"
    assert {name for name, value in secrets.items() if value} == set()


def test_no_literal_secrets_in_the_compose_file(raw: dict[str, Any]) -> None:
    literal = [
        f"{path}: {value!r}"
        for path, key, value in walk(raw)
        if isinstance(key, str)
        and SECRETISH.search(key)
        and not isinstance(value, dict | list)
        and not (isinstance(value, str) and SECRET_REFERENCE.fullmatch(value))
    ]
    assert literal == [], "secrets must come from the env file as ${VAR} / ${VAR:?message}"
    defaults = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?-([^}]+)\}", json.dumps(raw))
    assert [name for name, _ in defaults if SECRETISH.search(name)] == []


def test_every_service_named_exists(compose: Compose) -> None:
    services = compose.services
    declared_volumes = set(compose.document.get("volumes") or {})
    problems: list[str] = []
    for service in services.values():
        spec = service.spec
        named = list(service.depends_on)
        named += [str(link).split(":")[0] for link in spec.get("links") or []]
        named += [str(entry).split(":")[0] for entry in spec.get("volumes_from") or []]
        if str(spec.get("network_mode", "")).startswith("service:"):
            named.append(spec["network_mode"].split(":", 1)[1])
        if isinstance(spec.get("extends"), dict) and "file" not in spec["extends"]:
            named.append(spec["extends"]["service"])
        problems += [f"{service.name} names {other!r}" for other in named if other not in services]
        problems += [
            f"{service.name} mounts volume {m.source!r}, not declared under volumes:"
            for m in service.mounts()
            if m.kind == "volume" and m.source and m.source not in declared_volumes
        ]
    assert problems == []


def test_profiles_wiring(compose: Compose) -> None:
    """A dependency must be running whenever its dependent is, unless it is `required: false`."""
    services = compose.services
    problems = []
    for service in services.values():
        for other, dependency in service.depends_on.items():
            needed = set(services[other].profiles)
            if not needed or not dependency["required"]:
                continue
            mine = set(service.profiles)
            if not mine or not mine <= needed:
                problems.append(
                    f"{service.name} needs {other}, which runs only in {sorted(needed)}"
                )
    assert problems == []
    profiles = {p for s in services.values() for p in s.profiles}
    assert profiles == {"temporal", "secure"}


def test_published_ports_do_not_collide_across_profiles(
    compose: Compose, deploy_env: dict[str, str]
) -> None:
    ports = [port for service in compose.services.values() for port in service.ports()]
    assert ports
    seen: dict[tuple[int, str], list[str]] = {}
    for port in ports:
        seen.setdefault((port.published, port.protocol), []).append(port.service)
    assert {k: v for k, v in seen.items() if len(v) > 1} == {}
    # Nothing is published on every interface unless the env file says so.
    assert {port.host_ip for port in ports} == {deploy_env["PUBLISH_ADDRESS"]} == {"127.0.0.1"}


def test_published_ports_do_not_collide_with_the_defaults_either(raw: dict[str, Any]) -> None:
    env = {name: filled_secret(name) for name in required_variables(raw)}
    loaded = load_compose(COMPOSE_FILE, env)
    published = [(p.published, p.protocol) for s in loaded.services.values() for p in s.ports()]
    assert len(published) == len(set(published))


def test_every_env_file_and_bind_mount_exists_in_the_repository(compose: Compose) -> None:
    missing = []
    for service in compose.services.values():
        env_files = service.spec.get("env_file") or []
        for entry in [env_files] if isinstance(env_files, str | dict) else env_files:
            path = entry["path"] if isinstance(entry, dict) else entry
            if not (compose.root / path).is_file():
                missing.append(f"{service.name}: env_file {path}")
        for mount in service.mounts():
            if mount.kind != "bind":
                continue
            source = (compose.root / mount.source).resolve()
            if not source.exists() or REPO not in (source, *source.parents):
                missing.append(f"{service.name}: {mount.source}")
            elif not mount.read_only:
                missing.append(f"{service.name}: {mount.source} must be mounted read-only")
    assert missing == []


def test_images_are_pinned_and_the_project_image_is_built_once(compose: Compose) -> None:
    unpinned = [
        f"{s.name}: {s.image}"
        for s in compose.services.values()
        if s.image is None or ":" not in s.image.rsplit("/", 1)[-1] or s.image.endswith(":latest")
    ]
    assert unpinned == []
    built = [s for s in compose.services.values() if "build" in s.spec]
    builder = one(built, "builds the project image")
    assert (
        compose.root / builder.spec["build"]["context"] / builder.spec["build"]["dockerfile"]
    ).is_file()
    ours = [s.name for s in compose.services.values() if s.image == builder.image]
    expected = {"agent", "traffic", "environment", "planning", "subscriptions"}
    assert set(ours) == expected


# --- health checks and start order -----------------------------------------------------------


def test_health_checks(compose: Compose) -> None:
    services = compose.services
    for service in services.values():
        for other, dependency in service.depends_on.items():
            if dependency["condition"] == "service_healthy":
                check = services[other].spec.get("healthcheck") or {}
                message = f"{service.name} waits for {other} to be healthy: it needs a check"
                assert check.get("test"), message
                assert not check.get("disable"), message
    orion = orion_service(compose)
    assert urlsplit(orion.healthcheck_url() or "").path == "/version"
    assert url_port(orion.healthcheck_url() or "", 80) == 1026
    mongo = compose.service(orion.argv()[orion.argv().index("-dbhost") + 1])
    assert "ping" in " ".join(mongo.spec["healthcheck"]["test"])
    mosquitto = mosquitto_service(compose)
    assert "mosquitto_sub" in " ".join(mosquitto.spec["healthcheck"]["test"])
    agent = agent_service(compose)
    assert urlsplit(agent.healthcheck_url() or "").path == "/healthz"
    for consumer in compose.running("consume", "run"):
        url = consumer.healthcheck_url() or ""
        assert urlsplit(url).path == "/health", consumer.name
        assert url_port(url, 80) == int(consumer.option("--port") or 0), consumer.name


def test_start_order(compose: Compose) -> None:
    orion = orion_service(compose)
    mosquitto = mosquitto_service(compose)
    mongo = compose.service(orion.argv()[orion.argv().index("-dbhost") + 1])
    healthy = {"condition": "service_healthy", "required": True}
    # Orion-LD connects to the MQTT broker when an MQTT subscription is created.
    assert orion.depends_on[mosquitto.name] == healthy
    assert orion.depends_on[mongo.name] == healthy
    agent = agent_service(compose)
    assert agent.depends_on[orion.name] == healthy
    assert agent.depends_on[mosquitto.name] == healthy
    subscriptions = subscriptions_service(compose)
    assert subscriptions.spec["restart"] == "no"
    waits_for = {n for n, d in subscriptions.depends_on.items() if d == healthy}
    consumers = {s.name for s in compose.running("consume", "run")}
    assert {orion.name, mosquitto.name} | consumers <= waits_for
    for consumer in compose.running("consume", "run"):
        if consumer.option("--mqtt"):
            assert consumer.depends_on[mosquitto.name] == healthy


# --- Orion-LD, MongoDB, history --------------------------------------------------------------


def test_orion_ld_settings(compose: Compose) -> None:
    orion = orion_service(compose)
    argv = orion.argv()
    assert "-forwarding" in argv
    assert "-mongocOnly" in argv
    mongo = compose.service(argv[argv.index("-dbhost") + 1])
    assert mongo.image == "mongo:6.0"
    assert mongo.volume_for("/data/db") is not None, "MongoDB's data needs a named volume"
    env = orion.environment
    assert env["ORIONLD_MULTI_SERVICE"] == "TRUE"
    assert env["ORIONLD_PERNOT"] == "TRUE"
    version = env["ORIONLD_CORE_CONTEXT"]
    assert version == "v1.8"
    assert CORE_CONTEXT_URL.endswith(f"-{version}.jsonld"), "the same core context as ngsi"
    assert [p.target for p in orion.ports()] == [1026]


def test_the_temporal_profile_switches_on_troe(
    compose: Compose, deploy_env: dict[str, str]
) -> None:
    orion = orion_service(compose)
    env = orion.environment
    timescale = compose.service(env["ORIONLD_TROE_HOST"])
    assert timescale.image == "timescale/timescaledb-postgis:1.7.5-pg12"
    assert timescale.profiles == ["temporal"]
    assert timescale.volume_for("/var/lib/postgresql/data") is not None
    assert orion.depends_on[timescale.name] == {"condition": "service_healthy", "required": False}
    mintaka = one(
        [
            s
            for s in compose.services.values()
            if (s.image or "") == "quay.io/fiware/mintaka:0.6.18"
        ],
        "is Mintaka",
    )
    assert mintaka.profiles == ["temporal"]
    assert [p.target for p in mintaka.ports()] == [8080]
    database = mintaka.environment
    assert database["DATASOURCES_DEFAULT_HOST"] == timescale.name
    assert database["DATASOURCES_DEFAULT_DATABASE"] == "orion"  # Orion-LD's database name
    db = timescale.environment
    assert (
        env["ORIONLD_TROE_USER"] == db["POSTGRES_USER"] == database["DATASOURCES_DEFAULT_USERNAME"]
    )
    assert (
        env["ORIONLD_TROE_PWD"]
        == db["POSTGRES_PASSWORD"]
        == database["DATASOURCES_DEFAULT_PASSWORD"]
    )
    assert env["ORIONLD_TROE_PWD"] == deploy_env["TIMESCALE_PASSWORD"]
    # env.example: off, and the two settings agree; switched on, Orion-LD writes history.
    assert env["ORIONLD_TROE"] == "FALSE"
    assert "temporal" not in deploy_env["COMPOSE_PROFILES"].split(",")
    on = load_compose(
        COMPOSE_FILE, {**deploy_env, "COMPOSE_PROFILES": "temporal", "ORIONLD_TROE": "TRUE"}
    )
    assert orion_service(on).environment["ORIONLD_TROE"] == "TRUE"


# --- Mosquitto -------------------------------------------------------------------------------


def test_mosquitto_has_an_explicit_listener_and_no_anonymous_access(compose: Compose) -> None:
    service = mosquitto_service(compose)
    _, conf = mosquitto_conf(compose)
    assert conf["listener"] == ["1883"]
    assert conf["allow_anonymous"] == ["false"]
    assert [p.target for p in service.ports()] == [1883]
    (password_file,) = conf["password_file"]
    script = " ".join(service.argv())
    assert f"mosquitto_passwd -b -c {password_file} " in script
    (location,) = conf["persistence_location"]
    assert service.volume_for(location.rstrip("/")) is not None, "persistence needs a volume"
    env = service.environment
    assert env["MQTT_USERNAME"]
    assert env["MQTT_PASSWORD"]


# --- the agent -------------------------------------------------------------------------------


def agent_document(compose: Compose) -> tuple[Service, Path, dict[str, Any]]:
    service = agent_service(compose)
    argv = service.argv()
    container_path = argv[argv.index("-c") + 1]
    path = mounted(compose, service, container_path)
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return service, path, document


def in_the_container(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment as the service's container has it (secrets by `*_env`)."""
    for name, value in service.environment.items():
        monkeypatch.setenv(name, value)


def test_the_agent_configuration_validates_and_points_at_orion_ld(
    compose: Compose, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, path, document = agent_document(compose)
    in_the_container(service, monkeypatch)
    assert validate_document("agent-config", document) == []
    # Mounted container paths as they are on this machine, so that the loader can follow them.
    profiles_dir = document["profiles"]["dir"]
    host_profiles = mounted(compose, service, profiles_dir)
    local = {**document, "profiles": {**document["profiles"], "dir": str(host_profiles)}}
    config = AgentConfig.from_mapping(
        local, base_dir=path.parent, environ=service.environment, origin=str(path)
    )
    check_config(config)  # secrets resolvable from the service's environment, profiles load

    orion = orion_service(compose)
    assert compose.by_url(config.broker.url).name == orion.name
    assert url_port(config.broker.url, 80) == 1026
    assert config.broker.profile == "orion-ld"
    assert config.http.host == "0.0.0.0"
    assert url_port(service.healthcheck_url() or "", 80) == config.http.port
    assert [p.target for p in service.ports()] == [config.http.port]
    assert config.http.public_url is not None
    assert compose.by_url(config.http.public_url).name == service.name
    assert url_port(config.http.public_url, 80) == config.http.port
    assert service.volume_for(str(config.agent.data_dir)) is not None, "the outbox needs a volume"


def test_the_agent_logs_in_to_this_stack_s_mosquitto(
    compose: Compose, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, path, document = agent_document(compose)
    in_the_container(service, monkeypatch)
    mosquitto = mosquitto_service(compose)
    _, conf = mosquitto_conf(compose)
    document = {**document, "profiles": {**document["profiles"], "dir": None}}
    config = AgentConfig.from_mapping(document, base_dir=path.parent, environ=service.environment)
    sources = [s for s in config.sources if s.mqtt is not None]
    assert sources
    for source in sources:
        assert source.mqtt is not None
        assert source.mqtt.host == mosquitto.name
        assert str(source.mqtt.port) in conf["listener"][0].split()
        assert source.mqtt.username == mosquitto.environment["MQTT_USERNAME"]
        password = resolve_secret(source.mqtt.password, what=source.name)
        assert password == mosquitto.environment["MQTT_PASSWORD"]
    webhooks = [s for s in config.sources if s.webhook is not None]
    for source in webhooks:
        assert source.webhook is not None
        assert resolve_secret(source.webhook.secret, what=source.name)


# --- consumers and their subscriptions -------------------------------------------------------


def test_consumer_services(compose: Compose) -> None:
    consumers = compose.running("consume", "run")
    assert sorted(s.argv()[2] for s in consumers) == ["environment", "planning", "traffic"]
    for consumer in consumers:
        assert consumer.option("--host") == "0.0.0.0", consumer.name
        out = consumer.option("--out")
        assert out, f"{consumer.name}: no --out"
        assert consumer.volume_for(out) is not None, f"{consumer.name}: --out needs a volume"
        secret_env = consumer.option("--secret-env")
        if secret_env is not None:
            assert consumer.environment.get(secret_env), f"{consumer.name}: {secret_env} unset"
        published = [p.target for p in consumer.ports()]
        assert published in ([], [int(consumer.option("--port") or 0)]), consumer.name


def test_the_consumers_file_validates_and_reaches_the_consumers(compose: Compose) -> None:
    service = subscriptions_service(compose)
    argv = service.argv()
    container_path = argv[argv.index("-f") + 1]
    path = mounted(compose, service, container_path)
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert validate_document("consumers", document) == []
    orion = orion_service(compose)
    assert compose.by_url(argv[argv.index("--broker") + 1]).name == orion.name

    loaded = load_consumers_file(path, environ=service.environment)  # every ${VAR} is set
    mosquitto = mosquitto_service(compose)
    consumers = {s.argv()[2]: s for s in compose.running("consume", "run")}
    assert {c.kind for c in loaded.consumers} == set(consumers)
    for spec in loaded.consumers:
        assert spec.endpoint is not None
        target = consumers[spec.kind]
        url = urlsplit(spec.endpoint.uri)
        if url.scheme == "mqtt":
            assert url.hostname == mosquitto.name
            assert url.port == 1883
            assert url.username == mosquitto.environment["MQTT_USERNAME"]
            assert url.password == mosquitto.environment["MQTT_PASSWORD"]
            mqtt = shell_expand(target.option("--mqtt") or "", target.environment)
            assert urlsplit(mqtt)._replace(path="") == url._replace(path="")
            assert urlsplit(mqtt).path == url.path, f"{spec.name}: topics differ"
        else:
            assert compose.by_url(spec.endpoint.uri).name == target.name
            assert url.port == int(target.option("--port") or 0)
            assert url.path == "/notify"
            header = target.option("--secret-header")
            assert header is not None, f"{target.name} must check a shared secret"
            sent = dict(spec.endpoint.receiver_info)
            expected = target.environment[target.option("--secret-env") or ""]
            assert sent == {header: expected}, (
                f"{spec.name}: the secret sent is not the one checked"
            )
