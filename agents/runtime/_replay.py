"""Replays: stored inputs run again through the current registry, profiles, codecs and mapping.

After a codec, profile or calibration fix (or after registering a device that sent uplinks while
unknown), an admin replays:

* dead letters (`replay_dead_letters`): uplinks that could not be read, decoded or mapped run
  through the whole pipeline again; entities the broker rejected go back to the outbox as they
  are. The entries stay in the store, marked as replayed; what fails again becomes a new dead
  letter.
* archived uplinks (`replay_archive`): a device's or a time range's raw uplinks, as they arrived.

A replay skips the duplicate check (the uplinks were seen before: that is the point) and writes
into the agent's outbox; the agent's sender delivers, also while the agent runs (SQLite's WAL
lets the two processes share the files; the running agent notices the new entities within a
second). Readings older than what the broker already has do not overwrite the current state:
the sender treats them as late (design decision 6).

The registry is taken from the agent's cache, refreshed from the broker first when it answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from agents.delivery import DeadLetter, DeadLetters, Outbox, OutboxItem, UplinkArchive
from agents.runtime._agent import _broker_client, source_info
from agents.runtime._config import AgentConfig, ConfigError
from agents.runtime._devices import DeviceMapper, build_mapper
from agents.runtime._messages import Message, MessageQueue, SourceInfo
from agents.runtime._pipeline import Pipeline, message_from_archive

__all__ = ["ReplayReport", "replay_archive", "replay_dead_letters"]

logger = logging.getLogger("agents.runtime.replay")

_CHUNK = 500


@dataclass
class ReplayReport:
    """What a replay did: inputs `taken`, of which `uplinks` ran through the pipeline;
    `entities` put in the outbox; `failed` inputs that became dead letters again; `skipped`
    ones that could not be replayed (with `problems` saying why); outcomes by kind."""

    taken: int = 0
    uplinks: int = 0
    entities: int = 0
    failed: int = 0
    skipped: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Replayer:
    def __init__(self, config: AgentConfig, *, refresh_registry: bool) -> None:
        self.config = config
        if not config.outbox_path.is_file():
            raise ConfigError(
                str(config.outbox_path), ["no outbox database here: has the agent run?"]
            )
        self.outbox = Outbox(
            config.outbox_path,
            synchronous=config.outbox.synchronous,
            max_depth=config.outbox.max_depth,
        )
        self.client = _broker_client(config) if refresh_registry else None
        self.mapper: DeviceMapper = build_mapper(
            config.model_copy(
                update={"devices": config.devices.model_copy(update={"unknown": "drop"})}
            ),
            client=self.client,
        )
        self.report = ReplayReport()
        if self.client is not None:
            try:
                self.mapper.resync()
            except Exception as exc:
                self.report.problems.append(
                    f"the registry could not be refreshed from {config.broker.url} ({exc}); "
                    "the agent's cached registry is used"
                )
        self.pipeline = Pipeline(MessageQueue(1), self.outbox, self.mapper, archive=None)
        self.sources = {
            source.name: source_info(source, default_tenant=config.broker.tenant)
            for source in config.sources
        }

    def close(self) -> None:
        self.mapper.close()
        if self.client is not None:
            self.client.close()
        self.outbox.close()

    def __enter__(self) -> _Replayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def source(self, name: str | None, kind: str | None, tenant: str | None) -> SourceInfo | None:
        if name is not None and name in self.sources:
            found = self.sources[name]
            return SourceInfo(
                name=found.name,
                kind=found.kind,
                transport="replay",
                tenant=found.tenant,
                simulated=found.simulated,
                simulated_tenant=found.simulated_tenant,
            )
        if kind is None:
            return None
        return SourceInfo(
            name=name or kind,
            kind=kind,
            transport="replay",
            tenant=tenant if tenant is not None else self.config.broker.tenant,
        )

    def run(self, messages: Iterable[Message]) -> None:
        for chunk in _chunks(messages, _CHUNK):
            result = self.pipeline.process(chunk, replay=True)
            self.report.uplinks += len(chunk)
            self.report.entities += result.entities
            for outcome in result.outcomes:
                self.report.outcomes[outcome.kind] = self.report.outcomes.get(outcome.kind, 0) + 1
                if outcome.kind == "dead-letter":
                    self.report.failed += 1


def _chunks(items: Iterable[Message], size: int) -> Iterator[list[Message]]:
    chunk: list[Message] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def replay_dead_letters(
    config: AgentConfig,
    *,
    ids: Sequence[int] | None = None,
    reason: str | Sequence[str] | None = None,
    dev_eui: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_replayed: bool = False,
    limit: int | None = None,
    refresh_registry: bool = True,
) -> ReplayReport:
    """Replay the matching dead letters (see the module docstring); filters as
    `DeadLetters.take_for_replay`. Raises `ConfigError` when the agent's data is missing."""
    with _Replayer(config, refresh_registry=refresh_registry) as replayer:
        letters = DeadLetters(replayer.outbox.db).take_for_replay(
            ids=ids,
            reason=reason,
            dev_eui=dev_eui,
            source=source,
            since=since,
            until=until,
            include_replayed=include_replayed,
            limit=limit,
        )
        report = replayer.report
        report.taken = len(letters)
        messages: list[Message] = []
        entities: list[OutboxItem] = []
        for letter in letters:
            message = _uplink_of(letter, replayer)
            if message is not None:
                messages.append(message)
                continue
            item = _entity_of(letter)
            if item is not None:
                entities.append(item)
                continue
            report.skipped += 1
            report.problems.append(
                f"dead letter {letter.id} ({letter.reason}): neither an uplink nor an entity "
                "that can be replayed"
            )
        replayer.run(messages)
        if entities:
            replayer.outbox.put_many(entities)
            report.entities += len(entities)
            report.outcomes["entity-requeued"] = len(entities)
        return report


def _uplink_of(letter: DeadLetter, replayer: _Replayer) -> Message | None:
    detail = letter.detail or {}
    kind = detail.get("source_kind")
    if letter.payload is None or not isinstance(kind, str):
        return None
    info = replayer.source(letter.source, kind, letter.tenant)
    if info is None:
        return None
    received = detail.get("received_at")
    try:
        at = datetime.fromisoformat(received).timestamp() if isinstance(received, str) else None
    except ValueError:
        at = None
    topic = detail.get("topic")
    return message_from_archive(
        source=info,
        payload=letter.payload,
        topic=topic if isinstance(topic, str) else None,
        received_at=at if at is not None else letter.created_at.timestamp(),
    )


def _entity_of(letter: DeadLetter) -> OutboxItem | None:
    entity = letter.payload_json
    if not isinstance(entity, dict) or "id" not in entity or "type" not in entity:
        return None
    detail = letter.detail or {}
    observed = detail.get("observedAt")
    f_cnt = detail.get("f_cnt")
    context = detail.get("context")
    try:
        observed_at = datetime.fromisoformat(observed) if isinstance(observed, str) else None
    except ValueError:
        observed_at = None
    return OutboxItem(
        entity=entity,
        tenant=letter.tenant,
        context=context if isinstance(context, str) else None,
        dev_eui=letter.dev_eui,
        f_cnt=f_cnt if isinstance(f_cnt, int) else None,
        observed_at=observed_at,
    )


def replay_archive(
    config: AgentConfig,
    *,
    dev_eui: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    refresh_registry: bool = True,
    dry_run: bool = False,
) -> ReplayReport:
    """Replay archived uplinks of a device and/or time range through the current mapping.

    `since` is inclusive, `until` exclusive (receive time). With `dry_run` only counts what
    would be replayed. Raises `ConfigError` when the agent's data is missing.
    """
    path = config.archive_path
    if not path.is_file():
        raise ConfigError(str(path), ["no uplink archive here: is archive.enabled?"])
    with UplinkArchive(path, retention=None) as archive:
        if dry_run:
            count = archive.count(dev_eui=dev_eui, since=since, until=until, source=source)
            return ReplayReport(taken=count)
        with _Replayer(config, refresh_registry=refresh_registry) as replayer:
            report = replayer.report
            unknown_sources: set[str] = set()

            def messages() -> Iterator[Message]:
                for stored in archive.uplinks(
                    dev_eui=dev_eui, since=since, until=until, source=source
                ):
                    report.taken += 1
                    info = replayer.source(stored.source, None, None)
                    if info is None:
                        report.skipped += 1
                        if stored.source not in unknown_sources:
                            unknown_sources.add(stored.source)
                            report.problems.append(
                                f"archived uplinks of source {stored.source!r}, which the "
                                "configuration no longer has, are skipped"
                            )
                        continue
                    yield message_from_archive(
                        source=info,
                        payload=stored.payload,
                        topic=stored.topic,
                        received_at=stored.received_at.timestamp(),
                    )

            replayer.run(messages())
            return report
