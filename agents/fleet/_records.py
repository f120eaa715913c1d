"""What the agent's own stores say about each device: uplinks with fCnt (the archive), decode
errors (the dead letters), the last frame seen (the frame counters).

Read with plain SQL on the delivery database files (read-only queries on their documented
tables `uplink_archive` and `dead_letters`), so that a check of a thousand devices reads a few
columns instead of decompressing every archived message.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from agents.delivery import Database, DeadLetterReason, UplinkArchive
from agents.delivery._clock import from_us, to_us

__all__ = ["UplinkFigures", "decode_errors", "frame_gaps", "uplink_figures"]

_DECODE_REASONS = (str(DeadLetterReason.CODEC_ERROR), str(DeadLetterReason.CODEC_TIMEOUT))
_WINDOW = 64


@dataclass(frozen=True, slots=True)
class UplinkFigures:
    """One device's uplinks in a window: how many arrived, how many fCnts in between never
    did, and the receive time of the latest (over the whole archive)."""

    uplinks: int = 0
    missed: int = 0
    last: datetime | None = None
    f_cnts: tuple[int, ...] = ()


def frame_gaps(f_cnts: Iterable[int]) -> tuple[int, list[tuple[int, int]]]:
    """The fCnts missing between the frames of `f_cnts` (in receive order), and the missing
    ranges `(first, last)` inclusive.

    A frame counter that drops back by more than 64 starts a new session (a reset): nothing
    is missing across it. Frames that arrive late (within 64) fill their gap.
    """
    sessions: list[set[int]] = []
    highest = -1
    for f in f_cnts:
        if not sessions or highest - f > _WINDOW:
            sessions.append(set())
            highest = f
        sessions[-1].add(f)
        highest = max(highest, f)
    missed = 0
    ranges: list[tuple[int, int]] = []
    for seen in sessions:
        ordered = sorted(seen)
        for low, high in itertools.pairwise(ordered):
            if high - low > 1:
                missed += high - low - 1
                ranges.append((low + 1, high - 1))
    return missed, ranges


def uplink_figures(archive: UplinkArchive, *, since: datetime) -> dict[str, UplinkFigures]:
    """Per DevEUI: uplinks archived since `since` with their fCnt gaps, and the latest receive
    time the archive holds for the device (at any time)."""
    with archive.db.read() as conn:
        latest = conn.execute(
            "SELECT dev_eui, MAX(received_us) FROM uplink_archive "
            "WHERE dev_eui IS NOT NULL GROUP BY dev_eui"
        ).fetchall()
        rows = conn.execute(
            "SELECT dev_eui, f_cnt FROM uplink_archive "
            "WHERE dev_eui IS NOT NULL AND received_us >= ? ORDER BY dev_eui, received_us, id",
            (to_us(since),),
        ).fetchall()
    counts: dict[str, int] = {}
    frames: dict[str, list[int]] = {}
    for dev_eui, f_cnt in rows:
        counts[dev_eui] = counts.get(dev_eui, 0) + 1
        if f_cnt is not None:
            frames.setdefault(dev_eui, []).append(int(f_cnt))
    found: dict[str, UplinkFigures] = {}
    for dev_eui, last_us in latest:
        f_cnts = frames.get(dev_eui, [])
        missed, _ranges = frame_gaps(f_cnts)
        found[dev_eui] = UplinkFigures(
            uplinks=counts.get(dev_eui, 0),
            missed=missed,
            last=from_us(int(last_us)) if last_us is not None else None,
            f_cnts=tuple(f_cnts),
        )
    return found


def decode_errors(db: Database, *, since: datetime) -> dict[str, int]:
    """Per DevEUI: dead letters of payloads that did not decode (codec error or time-out)
    added since `since`."""
    marks = ",".join("?" for _ in _DECODE_REASONS)
    with db.read() as conn:
        rows = conn.execute(
            "SELECT dev_eui, COUNT(*) FROM dead_letters "
            f"WHERE dev_eui IS NOT NULL AND reason IN ({marks}) AND created_us >= ? "
            "GROUP BY dev_eui",
            (*_DECODE_REASONS, to_us(since)),
        ).fetchall()
    return {str(dev_eui): int(n) for dev_eui, n in rows}
