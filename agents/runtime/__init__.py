"""The LoRaWAN agent's runtime: sources → parse → dedup → codec → mapping → outbox → sender.

    from agents.runtime import Agent, load_config

    agent = Agent(load_config("agent.yaml"))
    agent.start()
    ...
    agent.stop()

* `AgentConfig` / `load_config`: the YAML configuration, checked by the JSON Schema
  `agent-config`, with `DREHSCHEIBE_*` environment overrides and secrets from files or variables.
* `Agent`: every stage wired and running; `/metrics`, `/healthz`, `/readyz`.
* `MqttSource`, `WebhookSource`: the network servers' integrations feeding `MessageQueue`.
* `Pipeline` with an `UplinkMapper` (`DeviceMapper`: registry, profiles, codecs, mapping):
  batches of messages into the outbox in one transaction each, then acknowledged.
* `replay_dead_letters`, `replay_archive`: run stored inputs again through the current mapping.
"""

from agents.runtime._agent import Agent, Readiness, TrackingSink, check_config, source_info
from agents.runtime._config import (
    ENVIRONMENT,
    AgentConfig,
    ConfigError,
    MqttConfig,
    SecretRef,
    SourceConfig,
    WebhookConfig,
    env_name,
    load_config,
    resolve_secret,
)
from agents.runtime._devices import DeviceMapper, build_mapper
from agents.runtime._http import HttpServer
from agents.runtime._logs import JsonFormatter, configure_logging
from agents.runtime._messages import (
    Message,
    MessageQueue,
    Outcome,
    OutcomeKind,
    SimulatedPolicy,
    SourceInfo,
)
from agents.runtime._metrics import CONTENT_TYPE, Histogram, MetricFamily, counter, gauge, render
from agents.runtime._mqtt import BufferedClient, MqttCounters, MqttSource, default_topics
from agents.runtime._pipeline import (
    BatchReport,
    DeviceNotInService,
    Mapped,
    MappingFailure,
    Pipeline,
    PipelineCounters,
    UplinkMapper,
)
from agents.runtime._replay import ReplayReport, replay_archive, replay_dead_letters
from agents.runtime._webhook import WebhookCounters, WebhookSource

__all__ = [
    "CONTENT_TYPE",
    "ENVIRONMENT",
    "Agent",
    "AgentConfig",
    "BatchReport",
    "BufferedClient",
    "ConfigError",
    "DeviceMapper",
    "DeviceNotInService",
    "Histogram",
    "HttpServer",
    "JsonFormatter",
    "Mapped",
    "MappingFailure",
    "Message",
    "MessageQueue",
    "MetricFamily",
    "MqttConfig",
    "MqttCounters",
    "MqttSource",
    "Outcome",
    "OutcomeKind",
    "Pipeline",
    "PipelineCounters",
    "Readiness",
    "ReplayReport",
    "SecretRef",
    "SimulatedPolicy",
    "SourceConfig",
    "SourceInfo",
    "TrackingSink",
    "UplinkMapper",
    "WebhookConfig",
    "WebhookCounters",
    "WebhookSource",
    "build_mapper",
    "check_config",
    "configure_logging",
    "counter",
    "default_topics",
    "env_name",
    "gauge",
    "load_config",
    "render",
    "replay_archive",
    "replay_dead_letters",
    "resolve_secret",
    "source_info",
]
