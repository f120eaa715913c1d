"""The agent: every stage wired into one running process.

    agent = Agent(load_config("agent.yaml"))
    agent.start()          # returns once everything runs; sources connect in the background
    ...
    agent.stop()           # sources off, queued messages committed, outbox drained a little

What runs, and in which thread:

* one MQTT client per MQTT source (paho's network thread): messages → the bounded queue;
* the HTTP server (uvicorn, one thread, an event loop): `/metrics`, `/healthz`, `/readyz`, the
  webhook sources, and the registry's notification endpoint;
* the pipeline (one thread): parse, dedup, registry, codec, mapping, group commit, acks;
* the sender (one thread): outbox → NGSI-LD broker (`upsert?options=update`), with backoff;
* the keeper (one thread): the registry's subscription and periodic resync, archive retention.

Start order: stores (outbox, archive, registry cache), sender, pipeline, HTTP server, keeper,
MQTT sources. Stop order: MQTT sources, HTTP server (requests in flight finish), pipeline
(what is queued is committed and acknowledged), keeper, sender (delivers for up to
`drain_timeout` seconds; the rest stays in the outbox), stores.

Health:

* `/healthz` answers 200 while the process serves HTTP (liveness).
* `/readyz` answers 200 when all of these hold, else 503 with the failing checks:
  - `sources`: every MQTT source is connected and its subscriptions granted (webhook sources
    are ready with the server);
  - `outbox`: the last batch committed (or none failed since), and the outbox holds less than
    `health.outbox_high_water` of `outbox.max_depth`;
  - `broker`: the broker answered a write within the last `health.broker_stale_after` seconds,
    or nothing in the outbox has waited that long (an idle agent with an empty outbox is
    ready even if it has not written for an hour).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agents._threads import name_native_thread
from agents.delivery import (
    Backoff,
    NgsiSink,
    Outbox,
    QueuedItem,
    Sender,
    UplinkArchive,
    WriteResult,
)
from agents.downlink import COMMAND_NOTIFICATION_PATH, DOWNLINK_NETWORK_SERVERS, DownlinkRelay
from agents.fleet import FleetMonitor
from agents.runtime._config import AgentConfig, ConfigError, SourceConfig, resolve_secret
from agents.runtime._devices import (
    DeviceMapper,
    build_fleet_monitor,
    build_mapper,
    fleet_metric_families,
)
from agents.runtime._history import TemporalHistorySink
from agents.runtime._http import HttpServer
from agents.runtime._messages import MessageQueue, SourceInfo
from agents.runtime._metrics import CONTENT_TYPE, Histogram, MetricFamily, counter, gauge, render
from agents.runtime._mqtt import ClientFactory, MqttSource
from agents.runtime._pipeline import Pipeline
from agents.runtime._webhook import WebhookSource
from ngsi import Client, RetryPolicy

__all__ = ["Agent", "Readiness", "TrackingSink", "check_config", "source_info"]

logger = logging.getLogger("agents.runtime")

Source = MqttSource | WebhookSource


class TrackingSink:
    """Wraps the NGSI-LD sink to time writes and remember when the broker last answered.

    `last_answer` is the monotonic time of the last write in which the broker accepted or
    rejected at least one entity; `errors` counts items it had to keep for a retry (no answer,
    5xx, 429...) and `failed_writes` writes that failed as a whole.
    """

    def __init__(self, sink: NgsiSink, *, histogram: Histogram) -> None:
        self.sink = sink
        self.histogram = histogram
        self.last_answer: float | None = None
        self.errors = 0
        self.failed_writes = 0
        self.last_error: str | None = None

    def open(self) -> None:
        self.sink.open()

    def close(self) -> None:
        self.sink.close()

    def write(self, batch: Sequence[QueuedItem]) -> WriteResult:
        started = time.perf_counter()
        try:
            result = self.sink.write(batch)
        except Exception as exc:
            self.failed_writes += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.histogram.observe(time.perf_counter() - started)
        if result.accepted or result.rejected:
            self.last_answer = time.monotonic()
        if result.retry:
            self.errors += len(result.retry)
            self.last_error = next(iter(result.retry.values()))
        else:
            self.last_error = None
        return result


def _notification_token(data_dir: Path) -> str:
    """The secret the broker sends with registry notifications (`X-Drehscheibe-Token`), kept in
    the data folder so that the subscription made by an earlier run of the agent still works."""
    path = data_dir / "notification-token"
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_urlsafe(32)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(token + "\n")
    return token


@dataclass(frozen=True)
class Readiness:
    """The outcome of the readiness checks: `ready`, and each check's verdict."""

    ready: bool
    checks: dict[str, dict[str, Any]]


def _simulated_tenant(source: SourceConfig, default_tenant: str | None) -> str:
    if source.simulated_tenant:
        return source.simulated_tenant
    return f"{source.tenant or default_tenant or 'default'}-simulated"


def source_info(source: SourceConfig, *, default_tenant: str | None) -> SourceInfo:
    """The pipeline's view of a configured source."""
    return SourceInfo(
        name=source.name,
        kind=source.network_server,
        transport=source.transport,
        tenant=source.tenant if source.tenant is not None else default_tenant,
        simulated=source.simulated,
        simulated_tenant=_simulated_tenant(source, default_tenant),
    )


def _broker_client(config: AgentConfig) -> Client:
    token = resolve_secret(config.broker.token, what="broker token")
    return Client(
        config.broker.url,
        tenant=config.broker.tenant,
        timeout=config.broker.timeout,
        auth=token,
        profile=config.broker.profile,
        retries=RetryPolicy(attempts=2, max_wait=2.0, max_elapsed=10.0),
    )


def check_config(config: AgentConfig) -> dict[str, Any]:
    """Everything `agent run` would check before starting, without starting anything: secrets
    are readable, webhook sources have one, profiles load. Returns a summary; raises
    `ConfigError` listing every problem."""
    problems: list[str] = []
    for source in config.sources:
        try:
            if source.mqtt is not None:
                resolve_secret(source.mqtt.password, what=f"source {source.name} password")
            if source.webhook is not None and not resolve_secret(
                source.webhook.secret, what=f"source {source.name} secret"
            ):
                problems.append(
                    f"sources/{source.name}/webhook: a webhook needs a secret "
                    "(secret_file, secret_env or DREHSCHEIBE_SOURCE_<NAME>_SECRET)"
                )
        except ConfigError as exc:
            problems.extend(f"sources/{source.name}: {p}" for p in exc.problems)
    try:
        resolve_secret(config.broker.token, what="broker token")
    except ConfigError as exc:
        problems.extend(f"broker/token: {p}" for p in exc.problems)
    from agents.profiles import ProfileCatalog, ProfileError

    profiles: list[str] = []
    try:
        catalog = ProfileCatalog(config.profiles.dir)
        profiles = catalog.names()
        for name, error in catalog.problems().items():
            problems.append(f"profiles/{name}: {error}")
    except ProfileError as exc:
        problems.append(f"profiles/dir: {exc}")
    if problems:
        raise ConfigError("configuration", problems)
    return {
        "agent": config.agent.name,
        "data_dir": str(config.agent.data_dir),
        "broker": config.broker.url,
        "sources": [
            {"name": s.name, "network_server": s.network_server, "transport": s.transport}
            for s in config.sources
        ],
        "profiles": profiles,
    }


class Agent:
    """The running agent (see the module docstring).

    `mqtt_client_factory` replaces paho's `Client` (tests). `mapper_factory` replaces the
    registry-backed mapper (tests inject faults there). Properties expose the stages for tests
    and the metrics: `outbox`, `pipeline`, `sender`, `sources`, `http_port`.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        mqtt_client_factory: ClientFactory | None = None,
        drain_timeout: float = 5.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.drain_timeout = drain_timeout
        self.clock = clock
        self.fleet: FleetMonitor | None = None
        self._mqtt_factory = mqtt_client_factory
        self.outbox: Outbox | None = None
        self.archive: UplinkArchive | None = None
        self.mapper: DeviceMapper | None = None
        self.pipeline: Pipeline | None = None
        self.sender: Sender | None = None
        self.sink: TrackingSink | None = None
        self.history: TemporalHistorySink | None = None
        self.http: HttpServer | None = None
        self.downlinks: DownlinkRelay | None = None
        self.sources: list[Source] = []
        self.queue = MessageQueue(config.pipeline.queue_size)
        self._client: Client | None = None
        self._keeper: threading.Thread | None = None
        self._registry_loaded_at = 0.0
        self._stopping = threading.Event()
        self._started_at = time.time()
        self._notify_token = ""
        self.broker_write_seconds = Histogram(
            "drehscheibe_broker_write_seconds",
            "Time of one write of a batch to the broker.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

    # Lifecycle ---------------------------------------------------------------------------------

    @property
    def http_port(self) -> int | None:
        return self.http.port if self.http is not None else None

    def start(self) -> None:
        """Start every stage (see the module docstring). Raises `ConfigError` for a secret that
        cannot be read, `OSError` when the HTTP port is taken; then call `stop()`."""
        config = self.config
        data_dir = config.agent.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self._notify_token = _notification_token(data_dir)
        sources = self._build_sources()
        self.outbox = Outbox(
            config.outbox_path,
            synchronous=config.outbox.synchronous,
            max_depth=config.outbox.max_depth,
        )
        if config.archive.enabled:
            retention = config.archive.retention_days
            self.archive = UplinkArchive(
                config.archive_path,
                retention=timedelta(days=retention) if retention is not None else None,
                level=config.archive.level,
            )
        self._client = _broker_client(config)
        self.mapper = build_mapper(config, client=self._client)
        self._registry_loaded_at = self._load_registry()
        self.sink = TrackingSink(NgsiSink(self._client), histogram=self.broker_write_seconds)
        if config.broker.late_readings == "history":
            self.history = TemporalHistorySink(
                config.broker.url,
                auth=self._client.auth,
                timeout=config.broker.timeout,
                default_tenant=config.broker.tenant,
            )
        self.sender = Sender(
            self.outbox,
            self.sink,
            history_sink=self.history,
            batch_size=config.broker.batch_size,
            backoff=Backoff(initial=config.broker.retry_initial, maximum=config.broker.retry_max),
            idle_wait=0.5,
            workers=config.broker.in_flight,
            linger=config.broker.linger,
        )
        self.sender.start()
        self.downlinks = self._build_downlinks()
        self.pipeline = Pipeline(
            self.queue,
            self.outbox,
            self.downlinks.observe(self.mapper) if self.downlinks is not None else self.mapper,
            archive=self.archive,
            batch_size=config.pipeline.batch_size,
            batch_wait=config.pipeline.batch_wait,
            max_message_bytes=config.http.max_body_bytes,
        )
        self.pipeline.start()
        if config.http.enabled:
            self.http = HttpServer(
                self._routes(sources), host=config.http.host, port=config.http.port
            )
            self.http.start()
        self._stopping.clear()
        self._keeper = threading.Thread(target=self._keep, name="agent-keeper", daemon=True)
        self._keeper.start()
        self.fleet = build_fleet_monitor(
            config,
            self.mapper,
            outbox=self.outbox,
            archive=self.archive,
            clock=self.clock,
            queue=self.queue,
        )
        if self.fleet is not None:
            self.fleet.start()
        self.sources = sources
        for source in sources:
            source.start()
        logger.info(
            "agent %s running: %d sources, broker %s, HTTP %s",
            config.agent.name,
            len(sources),
            config.broker.url,
            f"{config.http.host}:{self.http_port}" if self.http is not None else "off",
        )

    def stop(self) -> None:
        """Stop every stage in order (see the module docstring); idempotent."""
        self._stopping.set()
        for source in self.sources:
            if isinstance(source, MqttSource):
                try:
                    source.stop()
                except Exception:
                    logger.exception("stopping source %s failed", source.name)
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.pipeline is not None:
            self.pipeline.stop()
        if self.downlinks is not None:
            self.downlinks.stop()
            self.downlinks = None
        if self.fleet is not None:
            self.fleet.stop()
        if self._keeper is not None:
            self._keeper.join(10)
            self._keeper = None
        if self.sender is not None:
            drained = self.sender.stop(drain_timeout=self.drain_timeout)
            if not drained and self.outbox is not None:
                logger.info("%d entities wait in the outbox for the next start", self.outbox.depth)
        if self.mapper is not None:
            self.mapper.close()
        if self._client is not None:
            self._client.close()
        if self.archive is not None:
            self.archive.close()
        if self.outbox is not None:
            self.outbox.close()
        self.sources = []

    def __enter__(self) -> Agent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Building ----------------------------------------------------------------------------------

    def _build_sources(self) -> list[Source]:
        config = self.config
        built: list[Source] = []
        problems: list[str] = []
        for source in config.sources:
            info = source_info(source, default_tenant=config.broker.tenant)
            try:
                if source.transport == "mqtt":
                    assert source.mqtt is not None
                    password = resolve_secret(
                        source.mqtt.password, what=f"source {source.name} password"
                    )
                    built.append(
                        MqttSource(
                            source,
                            self.queue,
                            info=info,
                            client_id=source.mqtt.client_id or f"{config.agent.name}-{source.name}",
                            password=password,
                            client_factory=self._mqtt_factory,
                        )
                    )
                else:
                    assert source.webhook is not None
                    secret = resolve_secret(source.webhook.secret, what=f"source {source.name}")
                    if not secret:
                        problems.append(
                            f"sources/{source.name}/webhook: a webhook needs a secret "
                            "(secret_file, secret_env or DREHSCHEIBE_SOURCE_<NAME>_SECRET)"
                        )
                        continue
                    if not config.http.enabled:
                        problems.append(
                            f"sources/{source.name}: webhooks need the HTTP server (http.enabled)"
                        )
                        continue
                    built.append(
                        WebhookSource(
                            source,
                            self.queue,
                            info=info,
                            secret=secret,
                            max_body_bytes=config.http.max_body_bytes,
                        )
                    )
            except ConfigError as exc:
                problems.extend(f"sources/{source.name}: {p}" for p in exc.problems)
        if problems:
            raise ConfigError("configuration", problems)
        return built

    def _build_downlinks(self) -> DownlinkRelay | None:
        """The downlink relay (commands, downlink records, events) when a source can carry
        downlinks (an MQTT source of The Things Stack or ChirpStack v4)."""
        if self.mapper is None or not any(
            s.transport == "mqtt" and s.network_server in DOWNLINK_NETWORK_SERVERS
            for s in self.config.sources
        ):
            return None
        relay = DownlinkRelay.for_agent(
            self.config, registries=self.mapper.registries, catalog=self.mapper.catalog
        )
        relay.start()
        return relay

    def _routes(self, sources: Sequence[Source]) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/metrics", self._metrics_endpoint, methods=["GET"], name="metrics"),
            Route("/healthz", self._healthz, methods=["GET"], name="healthz"),
            Route("/readyz", self._readyz, methods=["GET"], name="readyz"),
        ]
        if self.mapper is not None and self.mapper.registry_enabled:
            routes.append(
                Route(
                    self.config.registry.notification_path,
                    self._notification,
                    methods=["POST"],
                    name="registry-notifications",
                )
            )
            if self.downlinks is not None:
                routes.append(
                    Route(
                        COMMAND_NOTIFICATION_PATH,
                        self._command_notification,
                        methods=["POST"],
                        name="command-notifications",
                    )
                )
        routes.extend(source.route() for source in sources if isinstance(source, WebhookSource))
        return routes

    # Registry upkeep, archive retention -------------------------------------------------------

    @property
    def notification_url(self) -> str:
        """Where the broker sends Device notifications."""
        return self._public_url() + self.config.registry.notification_path

    def _public_url(self) -> str:
        public = self.config.http.public_url
        if public is None:
            host = self.config.http.host
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            public = f"http://{host}:{self.http_port}"
        return public.rstrip("/")

    def _load_registry(self) -> float:
        """Fill the device cache from the broker before any source starts, so the first uplinks
        of registered devices are not taken for unknown ones. A broker that is away does not
        hold the agent up: it starts from its persisted cache and the keeper resyncs later."""
        mapper = self.mapper
        assert mapper is not None
        if not mapper.registry_enabled:
            return 0.0
        try:
            mapper.resync()
        except Exception as exc:
            logger.warning(
                "device registry not loaded from the broker (%s: %s); starting from the cache",
                type(exc).__name__,
                exc,
            )
            return 0.0
        return time.monotonic()

    def _keep(self) -> None:
        name_native_thread()
        mapper = self.mapper
        assert mapper is not None
        subscribed = False
        last_resync = self._registry_loaded_at
        last_prune = 0.0
        last_reload = time.monotonic()
        interval = self.config.registry.resync_interval
        failures = 0
        while not self._stopping.is_set():
            now = time.monotonic()
            try:
                due = now - last_resync >= interval or last_resync == 0.0
                if (
                    (due or not subscribed)
                    and self.config.registry.subscribe
                    and self.http is not None
                    and mapper.registry_enabled
                ):
                    # made at start, and checked again at every resync (a broker that lost it)
                    mapper.subscribe(self.notification_url, token=self._notify_token)
                    if self.downlinks is not None:
                        self.downlinks.ensure_subscriptions(
                            self._public_url() + COMMAND_NOTIFICATION_PATH,
                            token=self._notify_token,
                        )
                    subscribed = True
                if due:
                    mapper.resync()
                    last_resync = now
                failures = 0
            except Exception as exc:
                failures += 1
                logger.warning("registry upkeep failed (%s: %s); retrying", type(exc).__name__, exc)
            if now - last_reload >= self.config.profiles.reload_interval:
                last_reload = now
                try:
                    mapper.reload_profiles()
                except Exception as exc:
                    logger.error("reloading the device profiles failed: %s", exc)
            if self.archive is not None and now - last_prune >= 3600:
                try:
                    pruned = self.archive.prune()
                    if pruned:
                        logger.info("archive: %d uplinks past retention deleted", pruned)
                except Exception:
                    logger.exception("pruning the archive failed")
                last_prune = now
            wait = min(interval, 2.0 * 2 ** min(failures, 5)) if failures else 1.0
            self._stopping.wait(wait if (not subscribed or failures) else min(interval, 5.0))

    async def _notification(self, request: Request) -> Response:
        import hmac

        given = request.headers.get("x-drehscheibe-token", "")
        if not hmac.compare_digest(given.encode(), self._notify_token.encode()):
            return Response(status_code=401)
        body = await request.body()
        if len(body) > self.config.http.max_body_bytes:
            return Response(status_code=413)
        mapper = self.mapper
        if mapper is None:
            return Response(status_code=503)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return Response(b'{"error": "not JSON"}', status_code=400)
        try:
            tenant = request.query_params.get("tenant")
            await run_in_threadpool(mapper.apply_notification, data, tenant=tenant)
        except ValueError as exc:
            return Response(
                orjson.dumps({"error": str(exc)}), status_code=400, media_type="application/json"
            )
        return Response(status_code=204)

    async def _command_notification(self, request: Request) -> Response:
        """A command written on a Device entity (see `agents.downlink`): sent as a downlink."""
        import hmac

        given = request.headers.get("x-drehscheibe-token", "")
        if not hmac.compare_digest(given.encode(), self._notify_token.encode()):
            return Response(status_code=401)
        body = await request.body()
        if len(body) > self.config.http.max_body_bytes:
            return Response(status_code=413)
        relay = self.downlinks
        command = request.query_params.get("command")
        if relay is None or not command:
            return Response(status_code=404 if relay is None else 400)
        try:
            data = orjson.loads(body)
            if not isinstance(data, dict):
                raise ValueError("a notification is a JSON object")
            tenant = request.query_params.get("tenant")
            await run_in_threadpool(relay.handle_notification, data, command=command, tenant=tenant)
        except (ValueError, orjson.JSONDecodeError) as exc:
            return Response(
                orjson.dumps({"error": str(exc)}), status_code=400, media_type="application/json"
            )
        return Response(status_code=204)

    # Health and metrics ------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        """The readiness checks (see the module docstring)."""
        config = self.config
        checks: dict[str, dict[str, Any]] = {}
        down = {
            source.name: source.last_error or "not subscribed yet"
            for source in self.sources
            if not source.ready
        }
        checks["sources"] = {"ok": not down, **({"down": down} if down else {})}
        outbox_ok = self.outbox is not None and not self.outbox.db.closed
        outbox_check: dict[str, Any] = {}
        if self.pipeline is not None and self.pipeline.last_error is not None:
            outbox_ok = False
            outbox_check["error"] = self.pipeline.last_error
        if self.outbox is not None:
            depth = self.outbox.depth
            outbox_check["depth"] = depth
            limit = config.outbox.max_depth
            if limit is not None and depth > config.health.outbox_high_water * limit:
                outbox_ok = False
                outbox_check["error"] = f"{depth} entities waiting, more than the high water mark"
        checks["outbox"] = {"ok": outbox_ok, **outbox_check}
        stale = config.health.broker_stale_after
        broker_check: dict[str, Any] = {}
        broker_ok = True
        sink = self.sink
        if sink is not None:
            if sink.last_answer is not None:
                broker_check["last_answer_seconds_ago"] = round(
                    time.monotonic() - sink.last_answer, 3
                )
            if sink.last_answer is None or time.monotonic() - sink.last_answer > stale:
                oldest = self.outbox.oldest_age() if self.outbox is not None else None
                if oldest is not None and oldest.total_seconds() > stale:
                    broker_ok = False
                    broker_check["error"] = (
                        f"no answer from the broker for more than {stale:g} s while entities "
                        f"wait for {oldest.total_seconds():.0f} s"
                        + (f" ({sink.last_error})" if sink.last_error else "")
                    )
        checks["broker"] = {"ok": broker_ok, **broker_check}
        return Readiness(all(check["ok"] for check in checks.values()), checks)

    async def _healthz(self, request: Request) -> Response:
        return Response(b'{"status":"alive"}', media_type="application/json")

    async def _readyz(self, request: Request) -> Response:
        result = await run_in_threadpool(self.readiness)
        body = orjson.dumps({"ready": result.ready, "checks": result.checks})
        return Response(
            body, status_code=200 if result.ready else 503, media_type="application/json"
        )

    async def _metrics_endpoint(self, request: Request) -> Response:
        text = await run_in_threadpool(self.metrics_text)
        return Response(text, media_type=CONTENT_TYPE)

    def metrics_text(self) -> str:
        """The Prometheus text exposition of every figure the agent keeps."""
        return render(self.metric_families())

    def metric_families(self) -> list[MetricFamily]:
        families: list[MetricFamily] = []
        pipeline = self.pipeline
        if pipeline is not None:
            c = pipeline.counters
            families += [
                counter(
                    "drehscheibe_uplinks_total",
                    "Uplinks by source and outcome (accepted, duplicate, dead-letter, "
                    "unknown-device, inactive-device, simulated-dropped).",
                    [({"source": s, "outcome": o}, n) for (s, o), n in sorted(c.uplinks.items())],
                ),
                counter(
                    "drehscheibe_events_total",
                    "Network events by source and kind (join, location, status, downlink, "
                    "ignored).",
                    [({"source": s, "kind": k}, n) for (s, k), n in sorted(c.events.items())],
                ),
                counter(
                    "drehscheibe_parse_errors_total",
                    "Messages that were not readable uplinks, by source and reason.",
                    [
                        ({"source": s, "reason": r}, n)
                        for (s, r), n in sorted(c.parse_errors.items())
                    ],
                ),
                counter(
                    "drehscheibe_decode_errors_total",
                    "Payloads the codec refused or timed out on, by source and reason.",
                    [
                        ({"source": s, "reason": r}, n)
                        for (s, r), n in sorted(c.decode_errors.items())
                    ],
                ),
                counter(
                    "drehscheibe_mapping_errors_total",
                    "Uplinks the mapping could not turn into entities, by source and reason.",
                    [
                        ({"source": s, "reason": r}, n)
                        for (s, r), n in sorted(c.mapping_errors.items())
                    ],
                ),
                counter(
                    "drehscheibe_mapping_warnings_total",
                    "Attributes left out or flagged implausible by the mapping.",
                    [({}, c.warnings)],
                ),
                counter(
                    "drehscheibe_pipeline_entities_total",
                    "Entities the pipeline put in the outbox.",
                    [({}, c.entities)],
                ),
                counter(
                    "drehscheibe_pipeline_batches_total",
                    "Batches committed to the outbox.",
                    [({}, c.batches)],
                ),
                counter(
                    "drehscheibe_pipeline_commit_failures_total",
                    "Batches whose commit to the outbox failed (and was retried).",
                    [({}, c.commit_failures)],
                ),
                counter(
                    "drehscheibe_dead_letters_added_total",
                    "Dead letters the pipeline added, by reason.",
                    [({"reason": r}, n) for r, n in sorted(c.dead_letters.items())],
                ),
                gauge(
                    "drehscheibe_queue_depth",
                    "Messages waiting between the sources and the pipeline.",
                    [({}, len(self.queue))],
                ),
                pipeline.latency.family(),
            ]
        outbox = self.outbox
        if outbox is not None and not outbox.db.closed:
            d = outbox.counters.snapshot()
            oldest = outbox.oldest_age()
            families += [
                gauge(
                    "drehscheibe_outbox_depth",
                    "Entities waiting for the broker.",
                    [({}, outbox.depth)],
                ),
                gauge(
                    "drehscheibe_outbox_oldest_seconds",
                    "How long the oldest entity in the outbox has waited.",
                    [({}, oldest.total_seconds() if oldest is not None else 0.0)],
                ),
                counter(
                    "drehscheibe_duplicates_total",
                    "Uplinks dropped as duplicates (DevEUI, fCnt).",
                    [({}, d["duplicates"])],
                ),
                counter(
                    "drehscheibe_fcnt_gaps_total",
                    "fCnts skipped (frames never seen, before late arrivals).",
                    [({}, d["gaps"])],
                ),
                counter(
                    "drehscheibe_fcnt_reordered_total",
                    "Late frames that filled a gap.",
                    [({}, d["reordered"])],
                ),
                counter(
                    "drehscheibe_fcnt_resets_total",
                    "Frame-counter resets (new sessions).",
                    [({}, d["resets"])],
                ),
                counter(
                    "drehscheibe_entities_sent_total",
                    "Entities the broker accepted as current state.",
                    [({}, d["sent"])],
                ),
                counter(
                    "drehscheibe_entities_late_total",
                    "Readings older than the entity's current state (history only).",
                    [({}, d["late"])],
                ),
                counter(
                    "drehscheibe_entities_rejected_total",
                    "Entities the broker refused for good (dead letters).",
                    [({}, d["rejected"])],
                ),
                counter(
                    "drehscheibe_entities_retried_total",
                    "Entity deliveries kept for a retry.",
                    [({}, d["retried"])],
                ),
                counter(
                    "drehscheibe_dead_letters_total",
                    "Dead letters added by this process (pipeline and sender).",
                    [({}, d["dead_letters"])],
                ),
                gauge(
                    "drehscheibe_dead_letters",
                    "Dead letters stored (all processes), by reason.",
                    [
                        ({"reason": reason}, n)
                        for reason, n in outbox.dead_letters.counts_by_reason().items()
                    ],
                ),
            ]
        sink = self.sink
        if sink is not None:
            families += [
                counter(
                    "drehscheibe_broker_errors_total",
                    "Entity writes the broker did not confirm (no answer, 5xx, 429...).",
                    [({}, sink.errors)],
                ),
                counter(
                    "drehscheibe_broker_failed_writes_total",
                    "Batch writes that failed as a whole.",
                    [({}, sink.failed_writes)],
                ),
                self.broker_write_seconds.family(),
            ]
        connected: list[tuple[dict[str, str], float]] = []
        received: list[tuple[dict[str, str], float]] = []
        dropped: list[tuple[dict[str, str], float]] = []
        refused: list[tuple[dict[str, str], float]] = []
        for source in self.sources:
            labels = {"source": source.name, "transport": source.transport}
            connected.append((labels, 1.0 if source.connected else 0.0))
            received.append((labels, source.counters.received))
            dropped.append((labels, source.counters.overflow))
            if isinstance(source, WebhookSource):
                refused.append(
                    ({"source": source.name, "why": "unauthorized"}, source.counters.unauthorized)
                )
                refused.append(
                    ({"source": source.name, "why": "too-large"}, source.counters.too_large)
                )
                refused.append(
                    ({"source": source.name, "why": "timeout"}, source.counters.timeouts)
                )
            else:
                refused.append(
                    ({"source": source.name, "why": "connection-refused"}, source.counters.refused)
                )
        families += [
            gauge("drehscheibe_source_connected", "1 when the source is connected.", connected),
            counter(
                "drehscheibe_source_messages_total", "Messages received by each source.", received
            ),
            counter(
                "drehscheibe_source_overflow_total",
                "Messages a source could not queue (queue full).",
                dropped,
            ),
            counter(
                "drehscheibe_source_refused_total",
                "Requests or connections refused, by source and why.",
                refused,
            ),
        ]
        if self.mapper is not None:
            families += self.mapper.metric_families()
        if self.fleet is not None:
            families += fleet_metric_families(self.fleet)
        if self.downlinks is not None:
            families += self.downlinks.metric_families()
        families.append(
            gauge(
                "drehscheibe_start_time_seconds",
                "When the agent started (Unix time).",
                [({}, self._started_at)],
            )
        )
        return families
