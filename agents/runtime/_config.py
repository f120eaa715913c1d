"""The agent's configuration: a YAML file, checked against its JSON Schema, then typed.

    config = load_config("agent.yaml")              # environment overrides applied
    config = AgentConfig.from_mapping(data, base_dir=Path("/etc/drehscheibe"))

Loading goes in three steps, each with errors that name where the problem is:

1. The YAML is read and validated against the project's JSON Schema `agent-config`
   (`schemas/json/agent-config.schema.json`): every violation is reported with its path
   (`sources/1/mqtt/port: 70000 is greater than the maximum of 65535`).
2. Environment overrides are applied (see `ENVIRONMENT`); they win over the file.
3. The result becomes an `AgentConfig` (pydantic, frozen). Relative paths are resolved against
   the configuration file's folder.

Secrets (MQTT passwords, webhook secrets, the broker token) are never written in the file and
never given on the command line: the file names a file (`password_file`) or an environment
variable (`password_env`) holding them, or the generic override
`DREHSCHEIBE_SOURCE_<NAME>_PASSWORD` / `..._SECRET` / `DREHSCHEIBE_BROKER_TOKEN` supplies them.
`resolve_secret` reads them at start; a secret that is named but missing is an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.fleet import FleetSettings
from schemas import validate_document

__all__ = [
    "ENVIRONMENT",
    "AgentConfig",
    "AgentSection",
    "ArchiveConfig",
    "BrokerConfig",
    "ConfigError",
    "DevicesConfig",
    "HealthConfig",
    "HttpConfig",
    "LoggingConfig",
    "MappingConfig",
    "MqttConfig",
    "OutboxConfig",
    "PipelineConfig",
    "ProfilesConfig",
    "RegistryConfig",
    "SecretRef",
    "SourceConfig",
    "TlsConfig",
    "WebhookConfig",
    "env_name",
    "load_config",
    "resolve_secret",
]

SCHEMA_NAME = "agent-config"

ENVIRONMENT: dict[str, str] = {
    "DREHSCHEIBE_BROKER_URL": "broker.url",
    "DREHSCHEIBE_BROKER_TENANT": "broker.tenant",
    "DREHSCHEIBE_BROKER_TOKEN": "the broker's bearer token (instead of broker.token_file)",
    "DREHSCHEIBE_AGENT_NAME": "agent.name (MQTT client ids derive from it)",
    "DREHSCHEIBE_AGENT_DATA_DIR": "agent.data_dir",
    "DREHSCHEIBE_HTTP_HOST": "http.host",
    "DREHSCHEIBE_HTTP_PORT": "http.port",
    "DREHSCHEIBE_HTTP_PUBLIC_URL": "http.public_url",
    "DREHSCHEIBE_LOG_LEVEL": "logging.level",
    "DREHSCHEIBE_LOG_FORMAT": "logging.format",
    "DREHSCHEIBE_SOURCE_<NAME>_USERNAME": "sources[name].mqtt.username",
    "DREHSCHEIBE_SOURCE_<NAME>_PASSWORD": "sources[name].mqtt.password",
    "DREHSCHEIBE_SOURCE_<NAME>_SECRET": "sources[name].webhook.secret",
}
"""Environment variables the agent reads, and what each sets. `<NAME>` is the source's name in
upper case with every character other than a letter or digit as `_` (see `env_name`)."""


class ConfigError(ValueError):
    """The configuration cannot be used: `problems` lists each one as `path: what is wrong`."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{source}: invalid agent configuration:\n{lines}")


_FROZEN = ConfigDict(frozen=True, extra="forbid")


class SecretRef(BaseModel):
    """Where a secret is: a file (its content, whitespace-trimmed) or an environment variable.

    `value` is only ever set by an environment override, never read from the file.
    """

    model_config = _FROZEN

    file: Path | None = None
    env: str | None = None
    value: str | None = Field(default=None, repr=False)

    @property
    def given(self) -> bool:
        return self.file is not None or self.env is not None or self.value is not None


def resolve_secret(ref: SecretRef | None, *, what: str) -> str | None:
    """The secret `ref` points at, or None when none is configured.

    Raises `ConfigError` naming `what` when the file cannot be read or the variable is unset.
    """
    if ref is None or not ref.given:
        return None
    if ref.value is not None:
        return ref.value
    if ref.env is not None:
        found = os.environ.get(ref.env)
        if found is None:
            raise ConfigError(what, [f"the environment variable {ref.env} is not set"])
        return found
    assert ref.file is not None
    try:
        return ref.file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            what, [f"cannot read the secret file {ref.file}: {exc.strerror}"]
        ) from None


class AgentSection(BaseModel):
    """`agent`: the instance's name (MQTT client ids, the registry subscription's name) and
    its data folder (outbox, dead letters, archive, registry cache)."""

    model_config = _FROZEN

    name: str = "drehscheibe-agent"
    data_dir: Path = Path("agent-data")


class BrokerConfig(BaseModel):
    """`broker`: the NGSI-LD broker the agent writes to.

    `late_readings`: readings older than the entity's current state go to the broker's
    temporal history (`history`, `POST /temporal/entities`) or are only counted (`count`).
    `in_flight`: batch upserts the sender keeps in flight at once (the broker works on one
    while the agent ends the last and leases the next); two never hold the same entity.
    `linger`: seconds the sender waits for a fuller batch after a pass that emptied the outbox
    (a full batch ends the wait at once); fewer, larger requests for a little latency.
    """

    model_config = _FROZEN

    url: str = "http://127.0.0.1:1026"
    tenant: str | None = None
    profile: Literal["orion-ld", "embedded", "scorpio", "stellio"] = "orion-ld"
    token: SecretRef | None = None
    timeout: float = Field(default=10.0, gt=0)
    batch_size: int = Field(default=500, ge=1, le=1000)
    in_flight: int = Field(default=2, ge=1, le=8)
    linger: float = Field(default=0.1, ge=0, le=5)
    retry_initial: float = Field(default=0.5, gt=0)
    retry_max: float = Field(default=30.0, gt=0)
    late_readings: Literal["history", "count"] = "history"

    @model_validator(mode="after")
    def _backoff(self) -> BrokerConfig:
        if self.retry_max < self.retry_initial:
            raise ValueError(
                f"broker.retry_max ({self.retry_max:g}) is below retry_initial "
                f"({self.retry_initial:g})"
            )
        return self


class HttpConfig(BaseModel):
    """`http`: the agent's own HTTP server (metrics, health, webhooks, notifications).

    `public_url` is how the broker reaches the agent for registry notifications (default:
    `http://{host}:{port}`, with 127.0.0.1 for a wildcard host). `port: 0` picks a free port.
    """

    model_config = _FROZEN

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)


class TlsConfig(BaseModel):
    """`tls` of an MQTT source: CA bundle, client certificate and key; `insecure` skips the
    host-name check (never in production)."""

    model_config = _FROZEN

    enabled: bool = True
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False


class MqttConfig(BaseModel):
    """`mqtt` of a source. See `agents.runtime._mqtt` for what each setting does."""

    model_config = _FROZEN

    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    username: str | None = None
    password: SecretRef | None = None
    client_id: str | None = None
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    qos: Literal[0, 1] = 1
    persistent_session: bool = True
    session_expiry: int = Field(default=86400, ge=0)
    receive_maximum: int = Field(default=1000, ge=1, le=65535)
    shared_group: str | None = None
    application: str | None = None
    ns_tenant: str | None = None
    events: tuple[Literal["up", "join", "location", "status"], ...] = ("up", "join", "location")
    topics: tuple[str, ...] | None = None
    keepalive: int = Field(default=60, ge=5, le=65535)
    reconnect_min: int = Field(default=1, ge=1)
    reconnect_max: int = Field(default=120, ge=1)
    tls: TlsConfig | None = None


class WebhookConfig(BaseModel):
    """`webhook` of a source: the path the agent serves (may hold `{devID}`, `{devEUI}` and the
    other path variables of The Things Stack webhooks), the header carrying the secret, and
    where the secret is."""

    model_config = _FROZEN

    path: str
    secret_header: str = "Authorization"
    secret: SecretRef | None = None
    max_body_bytes: int | None = Field(default=None, ge=1024)
    timeout: float = Field(default=10.0, gt=0)


class SourceConfig(BaseModel):
    """One entry of `sources`: a network server reached over MQTT or by webhook."""

    model_config = _FROZEN

    name: str
    network_server: Literal["tts", "chirpstack-v4", "chirpstack-v3"]
    transport: Literal["mqtt", "webhook"]
    tenant: str | None = None
    simulated: Literal["drop", "tenant"] = "tenant"
    simulated_tenant: str | None = None
    mqtt: MqttConfig | None = None
    webhook: WebhookConfig | None = None

    @model_validator(mode="after")
    def _transport_block(self) -> SourceConfig:
        if self.transport == "mqtt" and self.mqtt is None:
            raise ValueError(f"source {self.name}: transport mqtt needs an 'mqtt' block")
        if self.transport == "webhook" and self.webhook is None:
            raise ValueError(f"source {self.name}: transport webhook needs a 'webhook' block")
        return self


class DevicesConfig(BaseModel):
    """`devices`: what to do with uplinks of devices the registry does not know."""

    model_config = _FROZEN

    unknown: Literal["drop", "register"] = "drop"


class ProfilesConfig(BaseModel):
    """`profiles`: the folder of the admins' own device profiles (besides the built-in ones);
    a file named like a built-in profile overrides it. The agent reads the folder again every
    `reload_interval` seconds, so a new or fixed profile applies without a restart."""

    model_config = _FROZEN

    dir: Path | None = None
    reload_interval: float = Field(default=300.0, ge=1)


class RegistryConfig(BaseModel):
    """`registry`: the local cache of `Device` entities and how it is kept fresh."""

    model_config = _FROZEN

    cache: Path | None = None
    subscribe: bool = True
    notification_path: str = "/notifications/devices"
    resync_interval: float = Field(default=3600.0, ge=1)


class MappingConfig(BaseModel):
    """`mapping`: `dataProvider` and `source` written on every observation entity."""

    model_config = _FROZEN

    data_provider: str | None = None
    source: str | None = None
    validate_entities: bool = True


class PipelineConfig(BaseModel):
    """`pipeline`: the bounded queue and the batches the worker takes from it."""

    model_config = _FROZEN

    queue_size: int = Field(default=20000, ge=1)
    batch_size: int = Field(default=500, ge=1, le=10000)
    batch_wait: float = Field(default=0.02, ge=0, le=5)


class OutboxConfig(BaseModel):
    """`outbox`: durability level and bound of the SQLite outbox (see `agents.delivery`)."""

    model_config = _FROZEN

    synchronous: Literal["normal", "full"] = "normal"
    max_depth: int | None = Field(default=1_000_000, ge=1)


class ArchiveConfig(BaseModel):
    """`archive`: raw uplinks kept for replay."""

    model_config = _FROZEN

    enabled: bool = True
    retention_days: float | None = Field(default=30.0, gt=0)
    level: int = Field(default=1, ge=0, le=9)


class HealthConfig(BaseModel):
    """`health`: when `/readyz` says the agent is not ready (see `agents.runtime._agent`)."""

    model_config = _FROZEN

    broker_stale_after: float = Field(default=60.0, gt=0)
    outbox_high_water: float = Field(default=0.9, gt=0, le=1)


class LoggingConfig(BaseModel):
    """`logging`: level, and `json` for one JSON object per line (for log collectors)."""

    model_config = _FROZEN

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class AgentConfig(BaseModel):
    """The whole configuration (see `examples/agent.yaml` for every setting, commented)."""

    model_config = _FROZEN

    agent: AgentSection = AgentSection()
    broker: BrokerConfig = BrokerConfig()
    http: HttpConfig = HttpConfig()
    sources: tuple[SourceConfig, ...] = ()
    devices: DevicesConfig = DevicesConfig()
    profiles: ProfilesConfig = ProfilesConfig()
    registry: RegistryConfig = RegistryConfig()
    mapping: MappingConfig = MappingConfig()
    pipeline: PipelineConfig = PipelineConfig()
    outbox: OutboxConfig = OutboxConfig()
    archive: ArchiveConfig = ArchiveConfig()
    health: HealthConfig = HealthConfig()
    fleet: FleetSettings = FleetSettings()
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="after")
    def _unique_sources(self) -> AgentConfig:
        seen: set[str] = set()
        paths: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"two sources are named {source.name!r}")
            seen.add(source.name)
            if source.webhook is not None:
                if source.webhook.path in paths:
                    raise ValueError(f"two webhook sources serve {source.webhook.path}")
                paths.add(source.webhook.path)
        return self

    @property
    def outbox_path(self) -> Path:
        return self.agent.data_dir / "outbox.db"

    @property
    def archive_path(self) -> Path:
        return self.agent.data_dir / "archive.db"

    @property
    def registry_path(self) -> Path:
        return self.registry.cache or self.agent.data_dir / "registry.db"

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any] | None,
        *,
        base_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        origin: str = "configuration",
    ) -> AgentConfig:
        """Validate `data` (a parsed YAML document), apply `environ` overrides, type it.

        `base_dir` resolves relative paths (default: the working directory). `environ`
        defaults to `os.environ`; pass `{}` for none. Raises `ConfigError`.
        """
        document: Any = {} if data is None else data
        violations = validate_document(SCHEMA_NAME, document)
        if violations:
            raise ConfigError(
                origin, [f"{v.path or '(top level)'}: {v.message}" for v in violations]
            )
        merged = _apply_environment(
            _to_model_shape(dict(document)), os.environ if environ is None else environ
        )
        try:
            config = cls.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError(origin, _pydantic_problems(exc)) from None
        return config._resolved(base_dir or Path.cwd())

    def _resolved(self, base: Path) -> AgentConfig:
        def path(value: Path | None) -> Path | None:
            if value is None:
                return None
            value = value.expanduser()
            return value if value.is_absolute() else base / value

        def secret(ref: SecretRef | None) -> SecretRef | None:
            if ref is None or ref.file is None:
                return ref
            return ref.model_copy(update={"file": path(ref.file)})

        sources = []
        for source in self.sources:
            update: dict[str, Any] = {}
            if source.mqtt is not None:
                mqtt_update: dict[str, Any] = {"password": secret(source.mqtt.password)}
                if source.mqtt.tls is not None:
                    tls = source.mqtt.tls
                    mqtt_update["tls"] = tls.model_copy(
                        update={
                            "ca_file": path(tls.ca_file),
                            "cert_file": path(tls.cert_file),
                            "key_file": path(tls.key_file),
                        }
                    )
                update["mqtt"] = source.mqtt.model_copy(update=mqtt_update)
            if source.webhook is not None:
                update["webhook"] = source.webhook.model_copy(
                    update={"secret": secret(source.webhook.secret)}
                )
            sources.append(source.model_copy(update=update))
        data_dir = path(self.agent.data_dir)
        assert data_dir is not None
        return self.model_copy(
            update={
                "agent": self.agent.model_copy(update={"data_dir": data_dir}),
                "broker": self.broker.model_copy(update={"token": secret(self.broker.token)}),
                "sources": tuple(sources),
                "profiles": self.profiles.model_copy(update={"dir": path(self.profiles.dir)}),
                "registry": self.registry.model_copy(update={"cache": path(self.registry.cache)}),
                "fleet": self.fleet.model_copy(
                    update={
                        "backfill": tuple(
                            source.model_copy(update={"api_key_file": path(source.api_key_file)})
                            for source in self.fleet.backfill
                        )
                    }
                ),
            }
        )


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Read, validate and type the YAML configuration at `path` (see the module docstring)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(file), [f"{where}not valid YAML: {problem}"]) from None
    return AgentConfig.from_mapping(
        data, base_dir=file.resolve().parent, environ=environ, origin=str(file)
    )


def env_name(source_name: str) -> str:
    """The `<NAME>` part of a source's environment variables: `tts-city` → `TTS_CITY`."""
    return re.sub(r"[^A-Za-z0-9]", "_", source_name).upper()


# The file spells secrets as `password_file` / `password_env` (and `secret_*`, `token_*`); the
# model holds them as one `SecretRef` each.
_SECRET_KEYS = {"password": "password", "secret": "secret", "token": "token"}


def _secret_of(block: dict[str, Any], key: str) -> None:
    file = block.pop(f"{key}_file", None)
    env = block.pop(f"{key}_env", None)
    if file is not None or env is not None:
        block[key] = {"file": file, "env": env}


def _to_model_shape(document: dict[str, Any]) -> dict[str, Any]:
    data = {
        key: (dict(value) if isinstance(value, dict) else value) for key, value in document.items()
    }
    if isinstance(data.get("broker"), dict):
        _secret_of(data["broker"], "token")
    sources = []
    for source in data.get("sources") or []:
        source = dict(source)
        if isinstance(source.get("mqtt"), dict):
            source["mqtt"] = dict(source["mqtt"])
            _secret_of(source["mqtt"], "password")
        if isinstance(source.get("webhook"), dict):
            source["webhook"] = dict(source["webhook"])
            _secret_of(source["webhook"], "secret")
        sources.append(source)
    if "sources" in data:
        data["sources"] = sources
    return data


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    def section(name: str) -> dict[str, Any]:
        found = data.get(name)
        if not isinstance(found, dict):
            found = data[name] = {}
        return found

    simple = {
        "DREHSCHEIBE_BROKER_URL": ("broker", "url"),
        "DREHSCHEIBE_BROKER_TENANT": ("broker", "tenant"),
        "DREHSCHEIBE_AGENT_NAME": ("agent", "name"),
        "DREHSCHEIBE_AGENT_DATA_DIR": ("agent", "data_dir"),
        "DREHSCHEIBE_HTTP_HOST": ("http", "host"),
        "DREHSCHEIBE_HTTP_PORT": ("http", "port"),
        "DREHSCHEIBE_HTTP_PUBLIC_URL": ("http", "public_url"),
        "DREHSCHEIBE_LOG_LEVEL": ("logging", "level"),
        "DREHSCHEIBE_LOG_FORMAT": ("logging", "format"),
    }
    for variable, (name, key) in simple.items():
        value = environ.get(variable)
        if value is not None and value != "":
            section(name)[key] = value.lower() if name == "logging" else value
    token = environ.get("DREHSCHEIBE_BROKER_TOKEN")
    if token:
        section("broker")["token"] = {"value": token}
    for source in data.get("sources") or []:
        prefix = f"DREHSCHEIBE_SOURCE_{env_name(str(source.get('name', '')))}_"
        mqtt = source.get("mqtt")
        if isinstance(mqtt, dict):
            if environ.get(prefix + "USERNAME"):
                mqtt["username"] = environ[prefix + "USERNAME"]
            if environ.get(prefix + "PASSWORD"):
                mqtt["password"] = {"value": environ[prefix + "PASSWORD"]}
        webhook = source.get("webhook")
        if isinstance(webhook, dict) and environ.get(prefix + "SECRET"):
            webhook["secret"] = {"value": environ[prefix + "SECRET"]}
    return data


def _pydantic_problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = "/".join(str(step) for step in item["loc"])
        problems.append(f"{where or '(top level)'}: {item['msg']}")
    return problems
