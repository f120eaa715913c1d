"""What the broker's endpoints share: settings, the store, the entity service, the contexts.

The app's lifespan builds one `Broker` and puts it into the ASGI state as `broker`; endpoints
read it with `broker_of(request)`. Extensions (subscriptions, temporal) get the same object.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from anyio import CapacityLimiter
from starlette.requests import Request

from ngsi._context_store import ContextStore
from ngsi.broker._service import EntityService
from ngsi.broker._settings import BrokerSettings
from ngsi.broker._store import Store

__all__ = ["Broker", "WorkerPool", "broker_of", "in_worker"]

T = TypeVar("T")

WORKER_THREADS = 2
"""Worker threads for blocking work (SQLite, context fetches). Each tenant's store is used by
one thread at a time anyway; more threads would only fight over the GIL."""

_IDLE_EXIT = 20.0
"""Seconds a worker thread waits for work before it ends (a new one starts when needed)."""

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


def _deliver(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.done():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class WorkerPool:
    """At most `size` threads that run blocking calls for coroutines.

    `await pool.run(func, *args)` runs `func(*args)` in one of the threads and returns its
    result (or raises its exception) in the caller's event loop. A call runs to its end even
    when the awaiting task is cancelled (the result is then dropped). Threads start on demand
    and end after `idle_exit` seconds without work, so a stopped broker leaves none behind.

    This is a thin queue plus `call_soon_threadsafe`: a request pays one queue put and at most
    one wake-up of the loop (results that are ready together are handed over together), which
    matters for requests that take well under a millisecond.
    """

    def __init__(self, size: int = WORKER_THREADS, *, idle_exit: float = _IDLE_EXIT) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least one thread, got {size}")
        self.size = size
        self.idle_exit = idle_exit
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._pending = 0
        self._outcomes: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, func, args))
        with self._lock:
            self._pending += 1
            start = self._pending > self._idle and self._threads < self.size
            if start:
                self._threads += 1
        if start:
            threading.Thread(target=self._work, name="ngsi-broker-worker", daemon=True).start()
        return await future

    def _work(self) -> None:
        jobs, lock = self._jobs, self._lock
        while True:
            with lock:
                self._idle += 1
            try:
                loop, future, func, args = jobs.get(timeout=self.idle_exit)
            except queue.Empty:
                with lock:
                    self._idle -= 1
                    if self._pending == 0:
                        self._threads -= 1
                        return
                continue
            with lock:
                self._idle -= 1
                self._pending -= 1
            result: Any = None
            error: BaseException | None = None
            try:
                result = func(*args)
            except BaseException as exc:
                error = exc
            self._hand_over(loop, (future, result, error))
            del loop, future, func, args, result, error

    def _hand_over(self, loop: asyncio.AbstractEventLoop, outcome: _Outcome) -> None:
        """Give an outcome to its loop: the first of a group wakes the loop, which then takes
        every outcome that arrived meanwhile."""
        with self._lock:
            waiting = self._outcomes.get(loop)
            if waiting is not None:
                waiting.append(outcome)
                return
            self._outcomes[loop] = [outcome]
        try:
            loop.call_soon_threadsafe(self._take, loop)
        except RuntimeError:  # a closed loop: nobody waits any more
            with self._lock:
                self._outcomes.pop(loop, None)

    def _take(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            outcomes = self._outcomes.pop(loop, [])
        _deliver(outcomes)


@dataclass(kw_only=True)
class Broker:
    """The running broker's shared parts; `extras` is free for extensions (by their name).

    `limiter`, when given, sets how many worker threads `run` uses (its total tokens).
    """

    settings: BrokerSettings
    store: Store
    entities: EntityService
    contexts: ContextStore
    extras: dict[str, Any] = field(default_factory=dict)
    limiter: CapacityLimiter | None = None
    _pool: WorkerPool | None = field(default=None, init=False, repr=False)

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """`func(*args)` in one of the broker's worker threads (for blocking calls)."""
        pool = self._pool
        if pool is None:
            size = int(self.limiter.total_tokens) if self.limiter is not None else WORKER_THREADS
            pool = self._pool = WorkerPool(max(1, size))
        return await pool.run(func, *args)

    async def write_entity(
        self, tenant: str | None, entity_id: str, func: Callable[[], T], *, inline: bool
    ) -> T:
        """`func()`, a small write of one entity: right here on the event loop when it would
        wait for nothing (`inline`: the caller knows that it reads no file and no network;
        `Store.try_lock`: the entity is in the cache, the tenant free), else in a worker
        thread. Handing a write of a few dozen microseconds to a thread costs more than the
        write: the threads pass the interpreter lock back and forth around each SQLite step."""
        if inline:
            lock = self.store.try_lock(tenant, entity_id)
            if lock is not None:
                try:
                    return func()
                finally:
                    lock.release()
        return await self.run(func)


def broker_of(request: Request) -> Broker:
    """The `Broker` of the app that serves `request`."""
    broker: Broker = request.state.broker
    return broker


async def in_worker(request: Request, func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` in a worker thread of the broker serving `request`."""
    return await broker_of(request).run(func, *args)
