"""Delivery counters: plain integers the agent exports (Prometheus) and tests read.

Each counter is written by one component under its own lock (the outbox under its database
lock, the frame counters under theirs, the sender from its one thread), so readers see whole
numbers; `snapshot()` copies them for export.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["DeliveryCounters"]


@dataclass
class DeliveryCounters:
    """Monotonic counters of the delivery stage (since the process started).

    Outbox: `enqueued` items put, `accepted` items the sink confirmed (delete from the outbox),
    `rejected` items moved to dead letters, `retried` items released for a later attempt.
    Sender: `late` items older than what was already sent for their entity (history only),
    `batches` sink writes, `write_errors` writes that failed as a whole or raised.
    Frame counters: `duplicates` uplinks dropped as already seen (including stale ones),
    `resets` frame-counter resets, `gaps` fCnts skipped by a forward jump, `reordered` frames
    that arrived late and filled such a gap (so `gaps - reordered` were never seen),
    `untracked` uplinks without an fCnt or device key.
    Dead letters: `dead_letters` entries added by anyone through this process's store.
    """

    enqueued: int = 0
    accepted: int = 0
    rejected: int = 0
    retried: int = 0
    late: int = 0
    batches: int = 0
    write_errors: int = 0
    duplicates: int = 0
    resets: int = 0
    gaps: int = 0
    reordered: int = 0
    untracked: int = 0
    dead_letters: int = 0

    @property
    def sent(self) -> int:
        """Items delivered as current state: accepted, less the late ones."""
        return self.accepted - self.late

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter by name, `sent` included."""
        figures = asdict(self)
        figures["sent"] = self.sent
        return figures
