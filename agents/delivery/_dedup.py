"""Frame counters: drop duplicate uplinks by (DevEUI, fCnt), handle resets, count gaps.

Uplinks arrive more than once (MQTT QoS 1 redelivery after a reconnect, the agent restarting
before it acknowledged, two integrations of the same application) and sometimes out of order.
Devices restart their frame counter after a join (OTAA) or a reboot (ABP with counter reset).
`FrameCounters.check` tells these apart, per device, from the last fCnt of the device's current
session, a window of the fCnts seen just below it, and the network server's receive time of
that last frame.

The rule, for an uplink with frame counter `f` and receive time `t`, where `L` is the device's
last fCnt, `T` its receive time and `W` the window (64 by default). fCnt is 32 bits: distances
are taken modulo 2**32, so a counter that rolls over from 0xFFFFFFFF to 0 moves forward.

1. No fCnt (`None`) → `untracked`: accepted, nothing recorded. The sources already read a
   missing fCnt as 0 where the network server omits zero values (The Things Stack writes no
   `f_cnt` for frame 0, early ChirpStack v4 no `fCnt`); None means the message could not say.
2. A device never seen → `first`.
3. A join was seen since the last uplink (`note_join`, or `check(..., joined=True)`), and `t`
   is not older than `T` → `reset`: a new session starts at `f`.
4. `f == L` → `duplicate` (a redelivery, or a confirmed uplink retransmitted with its fCnt).
5. `f` ahead of `L` by `d` (1 ≤ d < 2**31) → `next`, and the `d - 1` fCnts in between are
   counted as a gap; but if `t` is older than `T` the frame belongs to an earlier session → `stale`.
6. `f` behind `L` by `b`:
   a. `t` later than `T` → `reset`: the network server forwarded a newer frame with a lower
      counter, which only a new session does (a redelivered or reordered frame carries its
      original, older receive time).
   b. otherwise, `b ≤ W`: seen before → `duplicate`; not seen → `late` (an out-of-order frame,
      accepted; it fills a gap counted earlier, unless it is older than the first frame seen
      in the session, below which nothing is counted).
   c. otherwise, when times are unknown and `f` is small (`f < reset_below`, 16 by default)
      → `reset` (a restart whose join we did not see).
   d. otherwise → `stale` (an old frame from far back: dropped like a duplicate).

Without receive times, a reset is recognised only after a join or once the old counter is more
than `W` behind and the new one still small; until then the first frames of a new session look
like duplicates. The sources give receive times, so in practice rule 6a decides.

A verdict is accepted (`verdict.accepted`) for `first`, `next`, `late` and `reset`. The device's
state in memory moves on at once, so that the next uplink of the same device is checked against
it; the state is written to the database only with the transaction that puts the uplink's
entities in the outbox (`Outbox.put_many(items, frames=[verdict])`), so an uplink counts as seen
exactly when its entities are durable. A verdict that will not be committed is undone with
`rollback`. Check and commit the uplinks of one device from one thread, in order.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

from agents.delivery._clock import from_us, now_us, to_us
from agents.delivery._db import Database
from agents.delivery._metrics import DeliveryCounters
from ngsi._sqlite import insert_rows

__all__ = ["DeviceFrames", "FrameCounters", "FrameKind", "FrameVerdict"]

FrameKind = Literal["first", "next", "late", "reset", "duplicate", "stale", "untracked"]

_MOD = 1 << 32
_HALF = 1 << 31
_ACCEPTED: frozenset[str] = frozenset({"first", "next", "late", "reset", "untracked"})


class _State(NamedTuple):
    """One device's frame-counter state; a named tuple because every uplink makes a new one."""

    start: int
    last: int
    window: int
    last_us: int | None
    session: int
    gaps: int
    reordered: int
    resets: int
    join_pending: bool


class FrameVerdict(NamedTuple):
    """What `FrameCounters.check` decided for one uplink (a named tuple: one per uplink).

    `gap` is how many fCnts this frame skipped (only for `next`). `session` numbers the
    device's frame-counter sessions (0 for the first one seen, +1 at every reset). `before` and
    `after` are the device's state around the check, for `persist` and `rollback`.
    """

    dev_eui: str | None
    f_cnt: int | None
    kind: FrameKind
    gap: int = 0
    session: int = 0
    before: _State | None = None
    after: _State | None = None

    @property
    def accepted(self) -> bool:
        """True when the uplink is new and should be processed; False for a duplicate."""
        return self.kind in _ACCEPTED


@dataclass(frozen=True, slots=True)
class DeviceFrames:
    """One device's frame-counter figures.

    `gaps` is the number of fCnts skipped and never seen since the device was first seen
    (late arrivals are subtracted); `duplicates` counts since the process started.
    """

    dev_eui: str
    last_f_cnt: int
    last_received_at: datetime | None
    session: int
    gaps: int
    reordered: int
    resets: int
    duplicates: int
    join_pending: bool


_SCHEMA = """
CREATE TABLE IF NOT EXISTS frame_counters (
    dev_eui TEXT PRIMARY KEY,
    start_fcnt INTEGER NOT NULL,
    last_fcnt INTEGER NOT NULL,
    window BLOB NOT NULL,
    last_us INTEGER,
    session INTEGER NOT NULL,
    gaps INTEGER NOT NULL,
    reordered INTEGER NOT NULL,
    resets INTEGER NOT NULL,
    join_pending INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
) WITHOUT ROWID
"""

_UPSERT = (
    "INSERT OR REPLACE INTO frame_counters (dev_eui, start_fcnt, last_fcnt, window, last_us, "
    "session, gaps, reordered, resets, join_pending, updated_us)"
)


class FrameCounters:
    """Per-device frame-counter state, cached in memory and persisted in the delivery database.

    Use the instance the outbox owns (`outbox.frames`) so that marking uplinks as seen commits
    with their entities. `window` is how many fCnts below the last one are remembered (1–1024),
    `reset_below` the largest fCnt still taken for a restart when times are unknown. Thread-safe.
    """

    def __init__(
        self,
        db: Database,
        *,
        window: int = 64,
        reset_below: int = 16,
        counters: DeliveryCounters | None = None,
    ) -> None:
        if not 1 <= window <= 1024:
            raise ValueError(f"window must be between 1 and 1024 fCnts, got {window}")
        if reset_below < 0:
            raise ValueError(f"reset_below must be 0 or more, got {reset_below}")
        self.db = db
        self.window = window
        self.reset_below = reset_below
        self.counters = counters if counters is not None else DeliveryCounters()
        self._mask = (1 << window) - 1
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}
        self._duplicates: dict[str, int] = {}
        with db.write() as conn:
            conn.execute(_SCHEMA)
            rows = conn.execute(
                "SELECT dev_eui, start_fcnt, last_fcnt, window, last_us, session, gaps, reordered, "
                "resets, join_pending FROM frame_counters"
            ).fetchall()
        for (
            dev_eui,
            start,
            last,
            window_bytes,
            last_us,
            session,
            gaps,
            reordered,
            resets,
            join,
        ) in rows:
            self._states[dev_eui] = _State(
                start=start,
                last=last,
                window=int.from_bytes(window_bytes, "little") & self._mask,
                last_us=last_us,
                session=session,
                gaps=gaps,
                reordered=reordered,
                resets=resets,
                join_pending=bool(join),
            )

    # Deciding ----------------------------------------------------------------------------------

    def check(
        self,
        dev_eui: str | None,
        f_cnt: int | None,
        *,
        received_at: datetime | None = None,
        joined: bool = False,
    ) -> FrameVerdict:
        """Classify one uplink by the rule in the module docstring and move the state on.

        `dev_eui` is the device key (the DevEUI, or another stable device id when a device has
        none; None makes the uplink `untracked`). `received_at` is the network server's receive
        time. Commit the verdict with `Outbox.put_many(..., frames=[verdict])`, even for an
        uplink that produced no entity, or undo it with `rollback`.
        """
        if dev_eui is None or f_cnt is None:
            with self._lock:
                self.counters.untracked += 1
            return FrameVerdict(dev_eui, f_cnt, "untracked")
        if not 0 <= f_cnt < _MOD:
            raise ValueError(f"fCnt of device {dev_eui} must be a 32-bit counter, got {f_cnt}")
        t = to_us(received_at) if received_at is not None else None
        with self._lock:
            before = self._states.get(dev_eui)
            kind, gap, after = self._classify(before, f_cnt, t, joined)
            if after is not None:
                self._states[dev_eui] = after
            if kind in ("duplicate", "stale"):
                self.counters.duplicates += 1
                self._duplicates[dev_eui] = self._duplicates.get(dev_eui, 0) + 1
            elif kind == "reset":
                self.counters.resets += 1
            elif kind == "late" and after is not None and before is not None:
                self.counters.reordered += after.reordered - before.reordered
            self.counters.gaps += gap
            current = after if after is not None else before
            session = current.session if current is not None else 0
        return FrameVerdict(dev_eui, f_cnt, kind, gap, session, before, after)

    def _classify(
        self, state: _State | None, f: int, t: int | None, joined: bool
    ) -> tuple[FrameKind, int, _State | None]:
        if state is None:
            return "first", 0, _State(f, f, 0, t, 0, 0, 0, 0, False)
        times_known = t is not None and state.last_us is not None
        later = times_known and t is not None and state.last_us is not None and t > state.last_us
        earlier = times_known and t is not None and state.last_us is not None and t < state.last_us
        if (joined or state.join_pending) and not earlier and (later or not times_known):
            return "reset", 0, self._reset(state, f, t)
        ahead = (f - state.last) % _MOD
        if ahead == 0:
            return "duplicate", 0, None
        if ahead < _HALF:
            if earlier:
                return "stale", 0, None
            if ahead > self.window:
                window = 0
            else:
                window = ((state.window << ahead) | (1 << (ahead - 1))) & self._mask
            after = _State(
                state.start,
                f,
                window,
                t if t is not None else state.last_us,
                state.session,
                state.gaps + ahead - 1,
                state.reordered,
                state.resets,
                state.join_pending,
            )
            return "next", ahead - 1, after
        behind = _MOD - ahead
        if later:
            return "reset", 0, self._reset(state, f, t)
        if behind <= self.window:
            bit = 1 << (behind - 1)
            if state.window & bit:
                return "duplicate", 0, None
            # Only a frame after the session's first one filled a gap that was counted.
            filled = (f - state.start) % _MOD < (state.last - state.start) % _MOD
            after = state._replace(
                window=state.window | bit,
                gaps=state.gaps - 1 if filled else state.gaps,
                reordered=state.reordered + 1 if filled else state.reordered,
            )
            return "late", 0, after
        if not times_known and f < self.reset_below:
            return "reset", 0, self._reset(state, f, t)
        return "stale", 0, None

    @staticmethod
    def _reset(state: _State, f: int, t: int | None) -> _State:
        return _State(
            start=f,
            last=f,
            window=0,
            last_us=t,
            session=state.session + 1,
            gaps=state.gaps,
            reordered=state.reordered,
            resets=state.resets + 1,
            join_pending=False,
        )

    def rollback(self, verdicts: Sequence[FrameVerdict]) -> None:
        """Undo verdicts that will not be committed (the outbox transaction failed), last first."""
        with self._lock:
            for verdict in reversed(verdicts):
                if verdict.dev_eui is None or verdict.after is None:
                    continue
                if verdict.before is None:
                    self._states.pop(verdict.dev_eui, None)
                else:
                    self._states[verdict.dev_eui] = verdict.before

    def persist(self, conn: sqlite3.Connection, verdicts: Iterable[FrameVerdict]) -> None:
        """Write the state the verdicts left, inside the caller's transaction (the outbox's)."""
        latest: dict[str, _State] = {}
        for verdict in verdicts:
            if verdict.dev_eui is not None and verdict.after is not None:
                latest[verdict.dev_eui] = verdict.after
        if latest:
            stamp = now_us()
            insert_rows(
                conn,
                _UPSERT,
                [self._row(dev_eui, state, stamp) for dev_eui, state in latest.items()],
            )

    def _row(self, dev_eui: str, state: _State, stamp: int) -> tuple[object, ...]:
        return (
            dev_eui,
            state.start,
            state.last,
            state.window.to_bytes((self.window + 7) // 8, "little"),
            state.last_us,
            state.session,
            state.gaps,
            state.reordered,
            state.resets,
            int(state.join_pending),
            stamp,
        )

    # Events ------------------------------------------------------------------------------------

    def note_join(self, dev_eui: str) -> None:
        """Record a join (accept) event: the device's next uplink starts a new session.

        Written at once. An uplink redelivered from before the join (older receive time) is
        still recognised as a duplicate.
        """
        with self._lock:
            state = self._states.get(dev_eui)
            if state is None:
                return
            state = state._replace(join_pending=True)
            self._states[dev_eui] = state
        with self.db.write() as conn:
            insert_rows(conn, _UPSERT, [self._row(dev_eui, state, now_us())])

    def forget(self, dev_eui: str) -> None:
        """Drop a device's state (a deleted device); its next uplink is `first`."""
        with self._lock:
            self._states.pop(dev_eui, None)
            self._duplicates.pop(dev_eui, None)
        with self.db.write() as conn:
            conn.execute("DELETE FROM frame_counters WHERE dev_eui = ?", (dev_eui,))

    # Reading -----------------------------------------------------------------------------------

    def device(self, dev_eui: str) -> DeviceFrames | None:
        """The device's figures (as held in memory), or None for a device never seen."""
        with self._lock:
            state = self._states.get(dev_eui)
            duplicates = self._duplicates.get(dev_eui, 0)
        if state is None:
            return None
        return DeviceFrames(
            dev_eui=dev_eui,
            last_f_cnt=state.last,
            last_received_at=from_us(state.last_us) if state.last_us is not None else None,
            session=state.session,
            gaps=state.gaps,
            reordered=state.reordered,
            resets=state.resets,
            duplicates=duplicates,
            join_pending=state.join_pending,
        )

    def gaps_by_device(self) -> dict[str, int]:
        """fCnts never seen, per device that has any."""
        with self._lock:
            return {dev_eui: s.gaps for dev_eui, s in self._states.items() if s.gaps > 0}

    def __len__(self) -> int:
        with self._lock:
            return len(self._states)
