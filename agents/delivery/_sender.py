"""The sender: drains the outbox in batches through a `Sink`, with backoff, in its own thread.

    sink = NgsiSink(Client(url, retries=RetryPolicy(attempts=2, max_elapsed=10)))
    sender = Sender(outbox, sink)
    sender.start()
    ...
    sender.stop(drain_timeout=5.0)

One pass (`run_once`) leases a batch, orders it by `observedAt`, sets late readings aside,
writes the rest to the sink and ends the lease with the sink's verdicts (`WriteResult`):
accepted items leave the outbox, rejected ones become dead letters, the others stay for a
later pass. After a pass with items to retry the sender waits (exponential backoff with
jitter, capped; reset by the next pass without retries) so that a broker that is away is not
hammered; new items wake an idle sender at once.

Late readings (design decision 6). The outbox remembers, per entity, the latest `observedAt`
it accepted (its watermark). A reading older than that must not overwrite the entity's current
state: the sender does not write it to the sink but to `history_sink` when one is given (a
sink that appends to the broker's temporal history, for brokers where that is possible), and
otherwise just accepts it and counts it as `late`. A reading exactly as old as the watermark is
sent again (a redelivery: the upsert is idempotent). Readings of one entity within a batch go
oldest first, so the newest one ends as the current state.

Lingering. Each pass costs the agent and the broker a fixed amount (a lease, a request per
tenant and @context, the end of the lease) besides its items; at a few hundred uplinks a
second, passes of a handful of items each would cost more than the items. A pass that leaves
the outbox without a full batch waiting is therefore followed by a pause of up to `linger`
seconds, which a full batch or `stop` ends at once. An idle sender still wakes at the first
put, so a reading after a quiet spell goes out at once; the readings right after it wait at
most `linger`. With several workers, an idle one wakes at a put only when no other is busy
(lingering included), or when a full batch waits.

Threads, not asyncio: the agent's sources are paho-mqtt threads and the NGSI-LD client is
blocking. With `workers` above one, that many threads each lease, write and end batches side by
side, so the broker works on one batch while the agent ends the last and leases the next; the
outbox never gives two open leases the same entity, so each entity's readings keep their order
and their late-reading checks. The sink must then be safe to call from several threads (the
NGSI-LD client is).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agents._threads import name_native_thread
from agents.delivery._outbox import Outbox, QueuedItem, Rejection, Transaction
from agents.delivery._sink import Sink, UpsertClient
from ngsi import Client, NgsiApiError, NgsiTransportError, ProblemDetails, RawEntity

__all__ = [
    "REJECT_STATUSES",
    "Backoff",
    "NgsiSink",
    "SendReport",
    "Sender",
    "Sink",
    "UpsertClient",
    "WriteResult",
]

logger = logging.getLogger("agents.delivery")

REJECT_STATUSES: frozenset[int] = frozenset({400, 413, 422})
"""Statuses that say the entity itself is wrong: dead-letter it, never retry.

Every other failure (no answer, 401/403 credentials, 404 wrong URL, 408, 429, 5xx) says
something an operator or time can fix, so the items stay in the outbox and are retried.
"""


@dataclass
class WriteResult:
    """What a sink did with a batch, by outbox item id.

    `accepted`: delivered. `rejected`: refused for good (dead letters). `retry`: not delivered
    now, with the error (kept, attempt counted). Items the result does not mention are kept and
    treated as `retry`. `retry_after`: seconds the sink asks the sender to wait at least.
    """

    accepted: list[int] = field(default_factory=list)
    rejected: dict[int, Rejection] = field(default_factory=dict)
    retry: dict[int, str] = field(default_factory=dict)
    retry_after: float | None = None

    @classmethod
    def accept_all(cls, batch: Iterable[QueuedItem]) -> WriteResult:
        return cls(accepted=[item.id for item in batch])

    @classmethod
    def retry_all(cls, batch: Iterable[QueuedItem], error: str) -> WriteResult:
        return cls(retry={item.id: error for item in batch})


class _Unreachable(Exception):
    """The broker gave no answer: send nothing more in this write."""


class NgsiSink:
    """Writes batches with `Client.batch_upsert(..., mode="update")` (`options=update`).

    Items are grouped by tenant and @context (one request per group, the client chunks it to
    the broker's limits); an item with tenant or context None uses the client's default. The
    readings of one entity go in successive requests, oldest first, never twice in one request
    (brokers treat duplicate ids in a batch differently), and a reading waits while an older one
    of the same entity is not delivered. The outcome, per entity:

    * confirmed → accepted;
    * failed with a status in `REJECT_STATUSES` → rejected, with the ProblemDetails; when
      several entities failed with one identical problem (the broker refused the request as a
      whole), that group is split in halves and sent again until the bad entity is alone, so
      good entities are never dead-lettered with it;
    * no answer, or any other status (5xx, 429, 401...) → retry; after no answer at all nothing
      more is sent in this write.

    The client is the caller's (opened and closed by them). Give it a short retry policy (a
    couple of attempts, `max_elapsed` of seconds): the sender does the long waiting.

    `raw_json`: pass each item's outbox JSON to the client as it is (`ngsi.RawEntity`), without
    decoding and encoding it again. None (the default) does so when the client is an
    `ngsi.Client`; other clients get dicts unless told otherwise.
    """

    def __init__(
        self,
        client: UpsertClient,
        *,
        mode: Literal["update", "replace"] = "update",
        source: str = "ngsi-ld",
        raw_json: bool | None = None,
    ) -> None:
        self.client = client
        self.mode: Literal["update", "replace"] = mode
        self.source = source
        self.raw_json = isinstance(client, Client) if raw_json is None else raw_json
        self.requests = 0

    def open(self) -> None:
        """Nothing to do: the client opens on its first request."""

    def close(self) -> None:
        """Nothing to do: the client is the caller's."""

    def write(self, batch: Sequence[QueuedItem]) -> WriteResult:
        result = WriteResult()
        groups: dict[tuple[str | None, str | None], list[QueuedItem]] = {}
        for item in batch:
            groups.setdefault((item.tenant, item.context), []).append(item)
        unreachable: str | None = None
        for (tenant, context), items in groups.items():
            if unreachable is not None:
                result.retry.update((item.id, unreachable) for item in items)
                continue
            try:
                self._write_group(items, tenant, context, result)
            except _Unreachable as exc:
                unreachable = str(exc)
                for item in items:
                    if not _decided(result, item.id):
                        result.retry[item.id] = unreachable
        return result

    def _write_group(
        self,
        items: list[QueuedItem],
        tenant: str | None,
        context: str | None,
        result: WriteResult,
    ) -> None:
        rounds: list[list[QueuedItem]] = []
        seen: dict[str, int] = {}
        for item in items:
            index = seen.get(item.entity_id, 0)
            seen[item.entity_id] = index + 1
            if index == len(rounds):
                rounds.append([])
            rounds[index].append(item)
        waiting: set[str] = set()
        for round_items in rounds:
            todo: list[QueuedItem] = []
            for item in round_items:
                if item.entity_id in waiting:
                    result.retry[item.id] = (
                        f"an older reading of {item.entity_id} is not delivered yet"
                    )
                else:
                    todo.append(item)
            if todo:
                self._send(todo, tenant, context, result)
            waiting.update(item.entity_id for item in todo if item.id in result.retry)

    def _send(
        self,
        items: list[QueuedItem],
        tenant: str | None,
        context: str | None,
        result: WriteResult,
    ) -> None:
        """One upsert of entities with distinct ids; bisects groups that failed as a whole."""
        options: dict[str, Any] = {"mode": self.mode}
        if tenant is not None:
            options["tenant"] = tenant
        if context is not None:
            options["context"] = context
        # A body with an @context of its own goes as a dict (the client keeps that context);
        # the outbox stores none such under a context URL, so only those without need a look.
        entities: list[Any] = (
            [
                item.entity
                if context is None and b'"@context"' in item.body
                else RawEntity(item.entity_id, item.body)
                for item in items
            ]
            if self.raw_json
            else [item.entity for item in items]
        )
        self.requests += 1
        try:
            outcome = self.client.batch_upsert(entities, **options)
        except NgsiTransportError as exc:
            raise _Unreachable(f"no answer from the broker: {exc}") from exc
        except NgsiApiError as exc:
            if exc.status_code in REJECT_STATUSES:
                self._rejected_group(items, exc.problem, exc.status_code, tenant, context, result)
            else:
                result.retry.update((item.id, str(exc)) for item in items)
            return
        by_id = {item.entity_id: item for item in items}
        for entity_id in outcome.succeeded:
            item = by_id.pop(entity_id, None)
            if item is not None:
                result.accepted.append(item.id)
        groups: dict[tuple[Any, ...], list[QueuedItem]] = {}
        problems: dict[tuple[Any, ...], tuple[ProblemDetails, int]] = {}
        no_answer: str | None = None
        for failure in outcome.failed:
            item = by_id.pop(failure.entity_id, None)
            if item is None:
                continue
            problem = failure.problem
            if failure.status in REJECT_STATUSES:
                key = (failure.status, problem.type, problem.title, problem.detail)
                groups.setdefault(key, []).append(item)
                problems[key] = (problem, failure.status)
                continue
            error = f"{failure.status or 'no answer'} {problem.error_name}: " + (
                problem.detail or problem.title or ""
            )
            result.retry[item.id] = error
            if failure.status is None:
                no_answer = error
        for item in by_id.values():
            result.retry[item.id] = "the broker's answer did not mention this entity"
        for key, group in groups.items():
            problem, status = problems[key]
            self._rejected_group(group, problem, status, tenant, context, result)
        if no_answer is not None:
            raise _Unreachable(no_answer)

    def _rejected_group(
        self,
        items: list[QueuedItem],
        problem: ProblemDetails,
        status: int,
        tenant: str | None,
        context: str | None,
        result: WriteResult,
    ) -> None:
        if len(items) > 1:
            middle = len(items) // 2
            self._send(items[:middle], tenant, context, result)
            self._send(items[middle:], tenant, context, result)
            return
        item = items[0]
        text = problem.detail or problem.title or problem.type
        result.rejected[item.id] = Rejection(
            message=(
                f"the broker rejected entity {item.entity_id} ({item.entity_type}) with "
                f"{status} {problem.error_name}: {text}"
            ),
            detail={"status": status, "problem": problem.model_dump(exclude_none=True)},
            source=self.source,
        )


def _decided(result: WriteResult, item_id: int) -> bool:
    return item_id in result.rejected or item_id in result.retry or item_id in result.accepted


class Backoff:
    """Exponential backoff with jitter: the n-th consecutive failure waits a random time in
    [d/2, d] with d = min(maximum, initial * 2**(n-1)); `reset()` after a success."""

    def __init__(
        self, *, initial: float = 0.5, maximum: float = 30.0, rng: random.Random | None = None
    ) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(
                f"backoff needs 0 < initial <= maximum, got initial={initial}, maximum={maximum}"
            )
        self.initial = initial
        self.maximum = maximum
        self.failures = 0
        self._rng = rng if rng is not None else random.Random()

    def failure(self, retry_after: float | None = None) -> float:
        """Count one more failure and return how long to wait (at least `retry_after`, capped)."""
        self.failures += 1
        ceiling = min(self.maximum, self.initial * 2.0 ** min(self.failures - 1, 60))
        delay = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.maximum))
        return delay

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class SendReport:
    """What one pass of the sender did."""

    leased: int = 0
    accepted: int = 0
    rejected: int = 0
    retried: int = 0
    late: int = 0
    retry_after: float | None = None
    error: str | None = None

    @property
    def needs_backoff(self) -> bool:
        return self.retried > 0 or self.error is not None


class Sender:
    """Drains `outbox` into `sink` from a thread; see the module for the rules.

    `batch_size` and `max_bytes` bound one lease. `backoff` paces retries (shared by the
    workers); `idle_wait` is how long an idle sender sleeps between looks at the outbox when
    nothing wakes it. `workers`: threads delivering side by side; `linger`: the longest pause
    after a pass without a full batch (both in the module docstring).
    """

    def __init__(
        self,
        outbox: Outbox,
        sink: Sink,
        *,
        history_sink: Sink | None = None,
        batch_size: int = 500,
        max_bytes: int = 4 << 20,
        backoff: Backoff | None = None,
        idle_wait: float = 1.0,
        join_grace: float = 30.0,
        name: str = "outbox-sender",
        workers: int = 1,
        linger: float = 0.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if linger < 0:
            raise ValueError(f"linger must not be negative, got {linger}")
        self.outbox = outbox
        self.sink = sink
        self.history_sink = history_sink
        self.batch_size = batch_size
        self.max_bytes = max_bytes
        self.backoff = backoff if backoff is not None else Backoff()
        self.idle_wait = idle_wait
        self.join_grace = join_grace
        self.name = name
        self.workers = workers
        self.linger = linger
        self.counters = outbox.counters
        self.last_write_seconds: float | None = None
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._opened: list[Sink] = []
        self._alive = 0
        self._busy = 0  # workers not waiting idle: passing, lingering or backing off
        self._stop = threading.Event()
        self._deadline = 0.0

    # One pass ----------------------------------------------------------------------------------

    def run_once(self) -> SendReport:
        """Lease one batch, write it, end the lease; returns what happened (no waiting)."""
        tx = self.outbox.lease(self.batch_size, max_bytes=self.max_bytes)
        with tx:
            if not tx:
                return SendReport()
            return self._deliver(tx)

    def _deliver(self, tx: Transaction) -> SendReport:
        ordered = sorted(tx.items, key=_reading_order)
        current: list[QueuedItem] = []
        late: list[QueuedItem] = []
        for item in ordered:
            mark = self.outbox.watermark(item.entity_id, tenant=item.tenant)
            if item.observed_us is not None and mark is not None and item.observed_us < mark:
                late.append(item)
            else:
                current.append(item)
        results: list[tuple[list[QueuedItem], WriteResult]] = []
        error: str | None = None
        if current:
            started = time.perf_counter()
            result, error = self._write(self.sink, current)
            self.last_write_seconds = time.perf_counter() - started
            results.append((current, result))
        late_ids: set[int] = set()
        if late:
            late_ids = {item.id for item in late}
            if self.history_sink is not None:
                history, history_error = self._write(self.history_sink, late)
                error = error or history_error
            else:
                history = WriteResult.accept_all(late)
            results.append((late, history))
        accepted = rejected = retried = late_done = 0
        retry_after: float | None = None
        for items, result in results:
            ids = {item.id for item in items}
            take = [i for i in dict.fromkeys(result.accepted) if i in ids]
            ids.difference_update(take)
            refused = {i: r for i, r in result.rejected.items() if i in ids}
            ids.difference_update(refused)
            tx.accept(take)
            tx.reject(refused)
            for item_id in ids:
                tx.release(
                    [item_id],
                    error=result.retry.get(item_id, "the sink did not report on this item"),
                )
            accepted += len(take)
            rejected += len(refused)
            retried += len(ids)
            late_done += sum(1 for i in take if i in late_ids)
            if result.retry_after is not None:
                retry_after = max(retry_after or 0.0, result.retry_after)
        with self._lock:
            self.counters.late += late_done
        return SendReport(
            leased=len(tx.items),
            accepted=accepted,
            rejected=rejected,
            retried=retried,
            late=late_done,
            retry_after=retry_after,
            error=error,
        )

    def _write(self, sink: Sink, items: list[QueuedItem]) -> tuple[WriteResult, str | None]:
        with self._lock:
            self.counters.batches += 1
        try:
            return sink.write(items), None
        except Exception as exc:
            with self._lock:
                self.counters.write_errors += 1
            logger.exception("sink %r failed on a batch of %d items", sink, len(items))
            error = f"{type(exc).__name__}: {exc}"
            return WriteResult.retry_all(items, error), error

    # Thread ------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        """Start the sender's threads (once; after `stop` a new `start` is allowed)."""
        if self.running:
            raise RuntimeError(f"sender {self.name} is running already")
        self._stop.clear()
        self._opened = []
        self._alive = self._busy = self.workers
        self._threads = [
            threading.Thread(
                target=self._run,
                name=self.name if self.workers == 1 else f"{self.name}-{number}",
                daemon=True,
            )
            for number in range(1, self.workers + 1)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, drain_timeout: float = 5.0) -> bool:
        """Stop the threads, first trying for up to `drain_timeout` s to deliver what is queued.

        Draining ends early when the outbox is empty or a pass needs a retry (the sink is
        failing). A write in flight is always finished and its outcome committed: this waits
        for it (up to `drain_timeout + join_grace` in all). Returns True when the outbox is
        empty afterwards. What is left stays in the outbox for the next start.
        """
        if not self._threads:
            return self.outbox.depth == 0
        self._deadline = time.monotonic() + max(drain_timeout, 0.0)
        self._stop.set()
        self.outbox.notify()
        until = time.monotonic() + max(drain_timeout, 0.0) + self.join_grace
        for thread in self._threads:
            thread.join(max(until - time.monotonic(), 0.0))
        if self.running:
            logger.error(
                "sender %s did not stop within %.1f s; a sink write is still running",
                self.name,
                drain_timeout + self.join_grace,
            )
        else:
            self._threads = []
        return self.outbox.depth == 0

    def _run(self) -> None:
        name_native_thread()
        sinks = [self.sink] + ([self.history_sink] if self.history_sink is not None else [])
        try:
            while True:
                stopping = self._stop.is_set()
                if stopping and time.monotonic() >= self._deadline:
                    break
                if len(self._opened) < len(sinks):
                    try:
                        self._open(sinks)
                    except Exception:
                        logger.exception("sender %s could not open its sink", self.name)
                        if stopping:
                            break
                        self._stop.wait(self._failure())
                        continue
                generation = self.outbox.generation
                try:
                    report = self.run_once()
                except Exception as exc:
                    logger.exception("sender %s: a pass over the outbox failed", self.name)
                    report = SendReport(error=f"{type(exc).__name__}: {exc}")
                if report.leased == 0 and report.error is None:
                    if stopping:
                        break
                    self._idle(generation)
                    continue
                if report.needs_backoff:
                    if stopping:
                        break
                    self._stop.wait(self._failure(report.retry_after))
                else:
                    with self._lock:
                        self.backoff.reset()
                    if report.leased < self.batch_size and not stopping:
                        self._linger()
        finally:
            self._leave()

    def _idle(self, generation: int) -> None:
        """Wait for work: items put while no other worker is busy (a busy one, lingering
        included, takes them with its next pass), a full batch, or `stop`."""
        outbox = self.outbox
        with self._lock:
            self._busy -= 1
        try:
            outbox.wait_until(
                lambda: (
                    self._stop.is_set()
                    or outbox.waiting >= self.batch_size
                    or (self._busy == 0 and outbox.generation != generation)
                ),
                self.idle_wait,
            )
        finally:
            with self._lock:
                self._busy += 1

    def _linger(self) -> None:
        """Give the next batch up to `linger` seconds to fill (see the module docstring)."""
        if self.linger <= 0:
            return
        outbox = self.outbox
        outbox.wait_until(
            lambda: self._stop.is_set() or outbox.waiting >= self.batch_size, self.linger
        )

    def _open(self, sinks: list[Sink]) -> None:
        """Open the sinks not open yet (once for all workers)."""
        with self._lock:
            for sink in sinks[len(self._opened) :]:
                sink.open()
                self._opened.append(sink)

    def _leave(self) -> None:
        """A worker ends; the last one closes the sinks."""
        with self._lock:
            self._alive -= 1
            if self._alive > 0:
                return
            opened, self._opened = self._opened, []
        for sink in reversed(opened):
            try:
                sink.close()
            except Exception:
                logger.exception("sender %s: closing sink %r failed", self.name, sink)

    def _failure(self, retry_after: float | None = None) -> float:
        with self._lock:
            return self.backoff.failure(retry_after)


def _reading_order(item: QueuedItem) -> tuple[int, int]:
    return (item.observed_us if item.observed_us is not None else item.enqueued_us, item.id)
