"""What the sender writes batches to (`Sink`), and what the NGSI-LD sink writes through
(`UpsertClient`).

Kept apart from `agents.delivery._sender`, which is compiled (tools/native.py): protocols stay
plain Python classes, so that `isinstance` can check a `Sink` and a protocol method's defaults
are never evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from agents.delivery._outbox import QueuedItem
from ngsi._batch import BatchResult

if TYPE_CHECKING:
    from agents.delivery._sender import WriteResult

__all__ = ["Sink", "UpsertClient"]


@runtime_checkable
class Sink(Protocol):
    """Where the sender writes batches. Lifecycle: `open()`, then `write()` any number of times
    from the sender's one thread, then `close()` after the last write returned.

    `write` gets items ordered by `observedAt` (the readings of one entity oldest first) and
    must report every item in its `WriteResult`. It must not sleep or loop to retry: report
    `retry` and let the sender back off. It should not raise; if it does, the whole batch is
    retried.
    """

    def open(self) -> None: ...

    def write(self, batch: Sequence[QueuedItem]) -> WriteResult: ...

    def close(self) -> None: ...


class UpsertClient(Protocol):
    """The part of `ngsi.Client` the NGSI-LD sink uses. `entities` are dicts, or `RawEntity`
    values (the outbox's JSON as it is) when the sink is told the client takes them."""

    def batch_upsert(
        self,
        entities: Iterable[Any],
        *,
        mode: Literal["update", "replace"] = ...,
        tenant: Any = ...,
        context: Any = ...,
    ) -> BatchResult: ...
