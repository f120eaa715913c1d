"""The pipeline: from raw messages to entities in the outbox, in batches, on one thread.

    queue → take a batch → for each message:  parse → dedup → device → codec → map
          → one outbox transaction for the batch (entities, dead letters, frame counters)
          → acknowledge every message of the batch (MQTT PUBACK, webhook 202)

One worker thread takes up to `batch_size` messages from the `MessageQueue` (waiting up to
`batch_wait` seconds for a batch to fill once one message is there) and handles them in order:

* `parse_message` turns the bytes into an `Uplink` or an event. Unreadable messages (bad JSON,
  bad base64, truncated, missing fields) become dead letters (`malformed-uplink`) with the
  parser's reason in `detail`; well-formed events the agent has no use for are `ignored`.
* `FrameCounters.check` drops duplicates by (DevEUI, fCnt) and counts gaps. Simulated uplinks
  are checked under their own key (`sim:<DevEUI>`) so that a console simulation never advances
  or disturbs the real device's counter.
* The `UplinkMapper` (registry + profile + codec + mapping) turns an accepted uplink into outbox
  items, or says the device is unknown. A codec error or time-out, a mapping or validation
  failure becomes a dead letter with the reason; the batch goes on.
* Join, location and status events are handed to the mapper too: they update the Device entity
  (and a join starts a new frame-counter session).
* Everything the batch produced is committed in one `Outbox.put_many` (group commit). Only then
  is each message acknowledged with its `Outcome`.
* Then the batch's new uplinks (not the duplicates, but those of unknown devices and the dead
  letters too) are archived raw in the `UplinkArchive` (its own SQLite file), so that a later
  `uplinks replay` finds them. The archive is best effort: a failure is logged and counted, and
  an agent killed between the commit and the archive write leaves those uplinks unarchived.

If the commit fails (the outbox is full, the disk is), nothing of the batch is acknowledged; the
frame-counter verdicts are undone and the worker retries the same messages after a pause, while
the bounded queue and the MQTT in-flight window hold back the network server. Stopping gives up
on a batch that cannot be committed: its MQTT messages stay unacknowledged in the server's
session, its webhook requests get 503.

Hot path: no pydantic model is built here per uplink beyond what the parser returns; counters
are plain integers written by this one thread; per-batch work (one transaction, one archive
insert, one latency observation) is spread over the batch.

Garbage collection: every uplink allocates a few dozen short-lived containers, and the agent
holds a large, long-lived heap (the device registry, profiles, validators). With CPython's
default thresholds the collector runs every 700 allocations and now and then walks that whole
heap: a fifth of the agent's CPU with 10,000 devices (`benchmarks/agent.py --in-process`).
`start()` therefore calls `tune_gc()` once per process: the objects alive after start-up are
moved out of the collector's sight (`gc.freeze()`, after a full collection) and the youngest
generation is collected every `GC_THRESHOLD` allocations. Reference counting frees the
per-uplink garbage as before; only reference cycles wait longer.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

from agents._threads import name_native_thread
from agents.codecs import CodecError
from agents.delivery import (
    DeadLetterReason,
    FrameVerdict,
    NewDeadLetter,
    Outbox,
    OutboxItem,
    RawUplink,
    UplinkArchive,
)
from agents.lorawan import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DownlinkEvent,
    JoinEvent,
    LocationEvent,
    StatusEvent,
    Uplink,
    UplinkError,
    parse_message,
)
from agents.runtime._messages import (
    ACCEPTED,
    Message,
    MessageQueue,
    Outcome,
    SourceInfo,
)
from agents.runtime._metrics import Histogram

__all__ = [
    "GC_THRESHOLD",
    "BatchReport",
    "Mapped",
    "MappingFailure",
    "Pipeline",
    "PipelineCounters",
    "UplinkMapper",
    "archive_topic",
    "message_from_archive",
    "tune_gc",
]

logger = logging.getLogger("agents.runtime.pipeline")

_TIMEOUT_REASONS = frozenset({"timeout", "memory", "stack-overflow", "engine-crash"})

GC_THRESHOLD = 20_000
"""Allocations between two collections of the youngest generation once `tune_gc` ran."""

_gc_tuned = False


def tune_gc(*, threshold: int = GC_THRESHOLD) -> bool:
    """Tune the garbage collector for a long-running agent, once per process (see the module
    docstring): a full collection, `gc.freeze()` of what survives, and the youngest
    generation's threshold raised to `threshold` (never lowered). Returns False when it had
    been done already."""
    global _gc_tuned
    if _gc_tuned:
        return False
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    if young and young < threshold:
        gc.set_threshold(threshold, middle, old)
    return True


class MappingFailure(Exception):
    """The uplink was decoded but cannot become entities: `reason` is the dead-letter code
    (`mapping-error`, `validation-error`), `message` says which device, entity and attribute."""

    def __init__(self, reason: str, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.detail = detail or {}


class DeviceNotInService(Exception):
    """The device is registered but its uplinks are not mapped (unprovisioned, inactive,
    decommissioned): counted as `inactive-device`, not a dead letter. `reason` is the
    mapping's (`unprovisioned`, `not-in-service`)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Mapped:
    """What the mapper made of one uplink: outbox items, and the profile's warnings.

    A plain class, not a dataclass: compiled, it is built by a direct call (every uplink makes
    one), where a dataclass's generated `__init__` runs interpreted."""

    def __init__(
        self, items: list[OutboxItem], warnings: tuple[str, ...] = (), device: str | None = None
    ) -> None:
        self.items = items
        self.warnings = warnings
        self.device = device

    def __repr__(self) -> str:
        return f"Mapped({len(self.items)} items, {len(self.warnings)} warnings, {self.device!r})"


class UplinkMapper(Protocol):
    """Registry, profile, codec and mapping behind one call per message (the pipeline's seam).

    Contract: called from the pipeline's one thread. `map_uplink` returns None for a device the
    registry does not know; raises `CodecError` (decoding), `MappingFailure` (mapping,
    validation) or `DeviceNotInService`; anything else it raises is a bug and becomes a dead
    letter too (`mapping-error`). The event methods return the items that record the
    event on the Device entity (possibly none).
    """

    def map_uplink(
        self, uplink: Uplink, *, source: SourceInfo, tenant: str | None
    ) -> Mapped | None: ...

    def join(
        self, event: JoinEvent, *, source: SourceInfo, tenant: str | None
    ) -> list[OutboxItem]: ...

    def location(
        self, event: LocationEvent, *, source: SourceInfo, tenant: str | None
    ) -> list[OutboxItem]: ...

    def status(
        self, event: StatusEvent, *, source: SourceInfo, tenant: str | None
    ) -> list[OutboxItem]: ...


@dataclass
class PipelineCounters:
    """The pipeline's figures since start, all written by the pipeline thread.

    `uplinks[(source, outcome)]`: uplinks by source name and outcome (`accepted`, `duplicate`,
    `dead-letter`, `unknown-device`, `inactive-device`, `simulated-dropped`);
    `events[(source, kind)]`: join, location, status, downlink and ignored events;
    `parse_errors[(source, reason)]` and `decode_errors[(source, reason)]`: by the parser's and
    codec's reason codes;
    `dead_letters[reason]`; `entities` put in the outbox; `batches`, `commit_failures`.
    """

    uplinks: dict[tuple[str, str], int] = field(default_factory=dict)
    events: dict[tuple[str, str], int] = field(default_factory=dict)
    parse_errors: dict[tuple[str, str], int] = field(default_factory=dict)
    decode_errors: dict[tuple[str, str], int] = field(default_factory=dict)
    mapping_errors: dict[tuple[str, str], int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    warnings: int = 0
    entities: int = 0
    messages: int = 0
    batches: int = 0
    commit_failures: int = 0
    archive_failures: int = 0
    last_commit: float | None = None


@dataclass(slots=True)
class BatchReport:
    """What one batch did: outcomes in message order, entities put, timings (seconds)."""

    outcomes: list[Outcome]
    entities: int
    prepare_seconds: float
    commit_seconds: float


def _bump(table: dict[Any, int], key: Any, n: int = 1) -> None:
    table[key] = table.get(key, 0) + n


def archive_topic(message: Message) -> str | None:
    """How a message's topic is archived: the MQTT topic, or for a webhook its query string of
    event and path variables (`?event=up&devID=dev-1`), so that a replay parses it the same."""
    if message.topic is not None:
        return message.topic
    params: dict[str, str] = {}
    if message.event is not None:
        params["event"] = message.event
    if message.path_vars:
        params.update(message.path_vars)
    return "?" + urlencode(params) if params else None


def message_from_archive(
    *, source: SourceInfo, payload: bytes, topic: str | None, received_at: float
) -> Message:
    """Rebuild a `Message` from what `archive_topic` stored (for replays)."""
    if topic is not None and topic.startswith("?"):
        from urllib.parse import parse_qsl

        params = dict(parse_qsl(topic[1:], keep_blank_values=True))
        event = params.pop("event", None)
        return Message(
            source=source,
            payload=payload,
            received_at=received_at,
            event=event,
            path_vars=params or None,
        )
    return Message(source=source, payload=payload, received_at=received_at, topic=topic)


class _Prepared:
    """The result of preparing a batch, ready to commit."""

    __slots__ = ("archive", "dead_letters", "items", "outcomes", "verdicts")

    def __init__(self) -> None:
        self.items: list[OutboxItem] = []
        self.verdicts: list[FrameVerdict] = []
        self.dead_letters: list[NewDeadLetter] = []
        self.archive: list[RawUplink] = []
        self.outcomes: list[Outcome] = []


class Pipeline:
    """The worker between the queue and the outbox (see the module docstring).

    `mapper` does registry, codec and mapping; `archive` (optional) keeps raw uplinks.
    `max_message_bytes` bounds what the parser reads. `start()` runs the worker thread;
    `process(messages)` does one batch synchronously (for replays and tests; it must not run
    while the worker thread runs). Counters are in `counters`; batch latency in `latency`.
    """

    def __init__(
        self,
        queue: MessageQueue,
        outbox: Outbox,
        mapper: UplinkMapper,
        *,
        archive: UplinkArchive | None = None,
        batch_size: int = 500,
        batch_wait: float = 0.02,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        retry_pause: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.outbox = outbox
        self.mapper = mapper
        self.archive = archive
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.max_message_bytes = max_message_bytes
        self.retry_pause = retry_pause
        self.counters = PipelineCounters()
        self.latency = Histogram(
            "drehscheibe_batch_seconds",
            "Time from a batch's oldest message's arrival to its commit, and per stage.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            labelnames=("stage",),
        )
        self.last_error: str | None = None
        self._clock = clock
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    # Thread ------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def start(self) -> None:
        """Start the worker thread (tuning the garbage collector first, see `tune_gc`)."""
        if self.running:
            raise RuntimeError("the pipeline runs already")
        tune_gc()
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name="agent-pipeline", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand and what is queued (within `timeout`), then stop."""
        thread = self._worker
        if thread is None:
            return
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self.queue.close()
        thread.join(timeout + 5)
        if thread.is_alive():
            logger.error("the pipeline did not stop within %.1f s", timeout)
        self._worker = None

    _deadline = 0.0

    def _run(self) -> None:
        name_native_thread()
        while True:
            stopping = self._stop.is_set()
            if stopping and (not len(self.queue) or time.monotonic() > self._deadline):
                return
            batch = self.queue.take(
                self.batch_size, timeout=0.0 if stopping else 0.5, max_wait=self.batch_wait
            )
            if not batch:
                continue
            while True:
                try:
                    self.process(batch)
                    break
                except Exception as exc:
                    self.counters.commit_failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    logger.error(
                        "a batch of %d messages could not be committed (%s); retrying in %.1f s",
                        len(batch),
                        self.last_error,
                        self.retry_pause,
                    )
                    if self._stop.wait(self.retry_pause) and time.monotonic() > self._deadline:
                        logger.error(
                            "stopping: %d messages left unacknowledged for redelivery", len(batch)
                        )
                        return

    # One batch ---------------------------------------------------------------------------------

    def process(self, messages: Sequence[Message], *, replay: bool = False) -> BatchReport:
        """Prepare, commit and acknowledge one batch; returns the outcomes in message order.

        With `replay=True` the frame counters are neither consulted nor moved (a replay runs
        uplinks that were seen before through the current mapping) and nothing is archived.
        Raises when the commit fails; then nothing was acknowledged and nothing stays changed.
        """
        started = time.perf_counter()
        prepared = _Prepared()
        for message in messages:
            prepared.outcomes.append(self._prepare(message, prepared, replay=replay))
        prepare_seconds = time.perf_counter() - started
        try:
            self.outbox.put_many(
                prepared.items, frames=prepared.verdicts, dead_letters=prepared.dead_letters
            )
        except BaseException:
            self.outbox.frames.rollback(prepared.verdicts)
            raise
        committed = time.perf_counter()
        commit_seconds = committed - started - prepare_seconds
        counters = self.counters
        counters.batches += 1
        counters.messages += len(messages)
        counters.entities += len(prepared.items)
        counters.last_commit = self._clock()
        for letter in prepared.dead_letters:
            _bump(counters.dead_letters, letter.reason)
        self.last_error = None
        for message, outcome in zip(messages, prepared.outcomes, strict=True):
            ack = message.ack
            if ack is not None:
                try:
                    ack(outcome)
                except Exception:
                    logger.exception("acknowledging a message of %s failed", message.source.name)
        if prepared.archive and self.archive is not None:
            try:
                self.archive.add_many(prepared.archive)
            except Exception as exc:
                counters.archive_failures += 1
                logger.error("archiving %d uplinks failed: %s", len(prepared.archive), exc)
        if messages:
            oldest = min(message.received_at for message in messages)
            self.latency.observe(max(self._clock() - oldest, 0.0), ("end-to-commit",))
            self.latency.observe(prepare_seconds, ("prepare",))
            self.latency.observe(commit_seconds, ("commit",))
        return BatchReport(prepared.outcomes, len(prepared.items), prepare_seconds, commit_seconds)

    def _prepare(self, message: Message, prepared: _Prepared, *, replay: bool) -> Outcome:
        source = message.source
        name = source.name
        counters = self.counters
        try:
            event = parse_message(
                source.kind,
                message.topic,
                message.payload,
                event=message.event,
                path_vars=message.path_vars,
                max_bytes=self.max_message_bytes,
            )
        except UplinkError as error:
            if error.reason == "unsupported-event":
                _bump(counters.events, (name, "ignored"))
                return Outcome("ignored", error.reason)
            _bump(counters.parse_errors, (name, error.reason))
            _bump(counters.uplinks, (name, "dead-letter"))
            return self._dead(
                prepared,
                message,
                DeadLetterReason.MALFORMED_UPLINK,
                f"source {name}: {error}",
                detail={"parse_reason": error.reason, "field": error.field},
            )
        if type(event) is Uplink:
            return self._uplink(event, message, prepared, replay=replay)
        return self._event(event, message, prepared)

    def _uplink(
        self, uplink: Uplink, message: Message, prepared: _Prepared, *, replay: bool
    ) -> Outcome:
        source = message.source
        name = source.name
        counters = self.counters
        key = uplink.dev_eui
        tenant = source.tenant
        if uplink.simulated:
            if source.simulated == "drop":
                _bump(counters.uplinks, (name, "simulated-dropped"))
                return Outcome("simulated-dropped")
            tenant = source.simulated_tenant
            key = f"sim:{key}" if key is not None else None
        if not replay:
            verdict = self.outbox.frames.check(key, uplink.f_cnt, received_at=uplink.received_at)
            prepared.verdicts.append(verdict)
            if not verdict.accepted:
                _bump(counters.uplinks, (name, "duplicate"))
                return Outcome("duplicate", verdict.kind)
        if not replay and self.archive is not None:
            received = uplink.received_at
            prepared.archive.append(
                RawUplink(
                    source=name,
                    payload=message.payload,
                    received_at=received
                    if received is not None
                    else datetime.fromtimestamp(message.received_at, UTC),
                    topic=archive_topic(message),
                    dev_eui=uplink.dev_eui,
                    f_cnt=uplink.f_cnt,
                )
            )
        try:
            mapped = self.mapper.map_uplink(uplink, source=source, tenant=tenant)
        except CodecError as error:
            _bump(counters.decode_errors, (name, error.reason))
            _bump(counters.uplinks, (name, "dead-letter"))
            reason = (
                DeadLetterReason.CODEC_TIMEOUT
                if error.reason in _TIMEOUT_REASONS
                else DeadLetterReason.CODEC_ERROR
            )
            return self._dead(
                prepared,
                message,
                reason,
                f"device {uplink.dev_eui or uplink.device_id}: {error}",
                uplink=uplink,
                detail={"codec_reason": error.reason},
            )
        except DeviceNotInService as inactive:
            _bump(counters.uplinks, (name, "inactive-device"))
            return Outcome("inactive-device", inactive.reason, inactive.message)
        except MappingFailure as failure:
            _bump(counters.mapping_errors, (name, failure.reason))
            _bump(counters.uplinks, (name, "dead-letter"))
            return self._dead(
                prepared,
                message,
                failure.reason,
                failure.message,
                uplink=uplink,
                detail=failure.detail,
            )
        except Exception as error:  # a bug in a stage must not stop the agent
            logger.exception("mapping an uplink of %s failed unexpectedly", uplink.dev_eui)
            _bump(counters.mapping_errors, (name, "unexpected"))
            _bump(counters.uplinks, (name, "dead-letter"))
            return self._dead(
                prepared,
                message,
                DeadLetterReason.MAPPING_ERROR,
                f"device {uplink.dev_eui}: unexpected {type(error).__name__}: {error}",
                uplink=uplink,
            )
        if mapped is None:
            _bump(counters.uplinks, (name, "unknown-device"))
            return Outcome("unknown-device")
        if mapped.warnings:
            counters.warnings += len(mapped.warnings)
        prepared.items.extend(mapped.items)
        _bump(counters.uplinks, (name, "accepted"))
        return ACCEPTED

    def _event(self, event: Any, message: Message, prepared: _Prepared) -> Outcome:
        source = message.source
        name = source.name
        tenant = source.tenant
        try:
            if isinstance(event, JoinEvent):
                _bump(self.counters.events, (name, "join"))
                if event.dev_eui is not None:
                    self.outbox.frames.note_join(event.dev_eui)
                prepared.items.extend(self.mapper.join(event, source=source, tenant=tenant))
            elif isinstance(event, LocationEvent):
                _bump(self.counters.events, (name, "location"))
                prepared.items.extend(self.mapper.location(event, source=source, tenant=tenant))
            elif isinstance(event, StatusEvent):
                _bump(self.counters.events, (name, "status"))
                prepared.items.extend(self.mapper.status(event, source=source, tenant=tenant))
            elif isinstance(event, DownlinkEvent):
                _bump(self.counters.events, (name, "downlink"))
                return Outcome("ignored", "downlink")
            else:
                _bump(self.counters.events, (name, "ignored"))
                return Outcome("ignored")
        except MappingFailure as failure:
            _bump(self.counters.mapping_errors, (name, failure.reason))
            return self._dead(prepared, message, failure.reason, failure.message)
        except Exception as error:
            logger.exception("recording a %s event failed", type(event).__name__)
            return self._dead(
                prepared,
                message,
                DeadLetterReason.MAPPING_ERROR,
                f"{type(event).__name__} of {getattr(event, 'dev_eui', None)}: {error}",
            )
        return ACCEPTED

    def _dead(
        self,
        prepared: _Prepared,
        message: Message,
        reason: str,
        text: str,
        *,
        uplink: Uplink | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Outcome:
        source = message.source
        info: dict[str, Any] = {
            "source_kind": source.kind,
            "transport": source.transport,
            "received_at": datetime.fromtimestamp(message.received_at, UTC).isoformat(),
        }
        topic = archive_topic(message)
        if topic is not None:
            info["topic"] = topic
        if uplink is not None:
            if uplink.f_port is not None:
                info["f_port"] = uplink.f_port
            if uplink.f_cnt is not None:
                info["f_cnt"] = uplink.f_cnt
            if uplink.payload:
                info["frm_payload_hex"] = uplink.payload.hex()
        if detail:
            info.update({k: v for k, v in detail.items() if v is not None})
        prepared.dead_letters.append(
            NewDeadLetter(
                reason=reason,
                message=text,
                payload=bytes(message.payload),
                dev_eui=uplink.dev_eui if uplink is not None else None,
                source=source.name,
                tenant=source.tenant,
                detail=info,
            )
        )
        return Outcome("dead-letter", reason, text)
