"""Delivery: the durable outbox between mapping and the broker, and what surrounds it.

* `Outbox`: entities waiting for the broker, in SQLite; `put_many` before acknowledging an
  uplink, `lease` → `Transaction` (accept / reject / release) for the sender.
* `FrameCounters` (`outbox.frames`): duplicate uplinks by (DevEUI, fCnt), resets, gaps; marked
  seen in the same transaction as the uplink's entities.
* `DeadLetters` (`outbox.dead_letters`): what the agent gave up on, with the reason, for people.
* `Sender` with a `Sink` (`NgsiSink` for NGSI-LD batch upsert): drains the outbox with backoff,
  keeps late readings from overwriting newer state.
* `UplinkArchive`: raw uplinks, compressed, for replay after a fix.
* `DeliveryCounters`: the counters the agent exports.
"""

from agents.delivery._archive import BLOCK_BYTES, ArchivedUplink, RawUplink, UplinkArchive
from agents.delivery._db import Database, Synchronous
from agents.delivery._deadletters import (
    DeadLetter,
    DeadLetterNotFound,
    DeadLetterReason,
    DeadLetters,
    NewDeadLetter,
)
from agents.delivery._dedup import DeviceFrames, FrameCounters, FrameKind, FrameVerdict
from agents.delivery._metrics import DeliveryCounters
from agents.delivery._outbox import (
    Outbox,
    OutboxFull,
    OutboxItem,
    QueuedItem,
    Rejection,
    Transaction,
)
from agents.delivery._sender import (
    REJECT_STATUSES,
    Backoff,
    NgsiSink,
    Sender,
    SendReport,
    Sink,
    UpsertClient,
    WriteResult,
)

__all__ = [
    "BLOCK_BYTES",
    "REJECT_STATUSES",
    "ArchivedUplink",
    "Backoff",
    "Database",
    "DeadLetter",
    "DeadLetterNotFound",
    "DeadLetterReason",
    "DeadLetters",
    "DeliveryCounters",
    "DeviceFrames",
    "FrameCounters",
    "FrameKind",
    "FrameVerdict",
    "NewDeadLetter",
    "NgsiSink",
    "Outbox",
    "OutboxFull",
    "OutboxItem",
    "QueuedItem",
    "RawUplink",
    "Rejection",
    "SendReport",
    "Sender",
    "Sink",
    "Synchronous",
    "Transaction",
    "UplinkArchive",
    "UpsertClient",
    "WriteResult",
]
