"""Frame counters: duplicates, out-of-order frames, gaps, resets, rollover, persistence."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.delivery import Database, FrameCounters, FrameVerdict, Outbox

DEV = "0004A30B001C0530"
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def at(f_cnt: int) -> datetime:
    """The receive time of frame `f_cnt` of a device that sends once a minute."""
    return T0 + timedelta(minutes=f_cnt)


@pytest.fixture
def frames(tmp_path: Path) -> Iterator[FrameCounters]:
    db = Database(tmp_path / "frames.db")
    yield FrameCounters(db)
    db.close()


def kinds(frames: FrameCounters, f_cnts: list[int], *, timed: bool = True) -> list[str]:
    return [frames.check(DEV, f, received_at=at(f) if timed else None).kind for f in f_cnts]


def test_the_first_uplink_of_a_device_then_the_next_ones(frames: FrameCounters) -> None:
    assert kinds(frames, [5, 6, 7]) == ["first", "next", "next"]
    device = frames.device(DEV)
    assert device is not None
    assert (device.last_f_cnt, device.gaps, device.session) == (7, 0, 0)
    assert device.last_received_at == at(7)


def test_a_redelivered_uplink_is_a_duplicate(frames: FrameCounters) -> None:
    assert kinds(frames, [1, 2, 3, 3, 2, 1]) == [
        "first",
        "next",
        "next",
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    assert frames.counters.duplicates == 3
    device = frames.device(DEV)
    assert device is not None
    assert device.duplicates == 3
    assert not frames.check(DEV, 3, received_at=at(3)).accepted


def test_a_confirmed_retransmission_with_the_same_fcnt_is_a_duplicate(
    frames: FrameCounters,
) -> None:
    frames.check(DEV, 9, received_at=at(9))
    assert frames.check(DEV, 9, received_at=at(9) + timedelta(seconds=3)).kind == "duplicate"


def test_gaps_are_counted_and_a_late_frame_fills_its_gap(frames: FrameCounters) -> None:
    assert kinds(frames, [10, 11, 15]) == ["first", "next", "next"]
    device = frames.device(DEV)
    assert device is not None
    assert device.gaps == 3
    verdict = frames.check(DEV, 13, received_at=at(13))
    assert (verdict.kind, verdict.accepted) == ("late", True)
    assert frames.check(DEV, 13, received_at=at(13)).kind == "duplicate"
    device = frames.device(DEV)
    assert device is not None
    assert (device.gaps, device.reordered) == (2, 1)
    assert frames.gaps_by_device() == {DEV: 2}
    assert (frames.counters.gaps, frames.counters.reordered) == (3, 1)


def test_a_next_verdict_says_how_many_fcnts_it_skipped(frames: FrameCounters) -> None:
    frames.check(DEV, 100, received_at=at(100))
    verdict = frames.check(DEV, 104, received_at=at(104))
    assert (verdict.kind, verdict.gap) == ("next", 3)


def test_a_frame_further_back_than_the_window_is_stale(tmp_path: Path) -> None:
    with Database(tmp_path / "frames.db") as db:
        frames = FrameCounters(db, window=8)
        kinds_seen = kinds(frames, [100, 120])
        assert kinds_seen == ["first", "next"]
        assert frames.check(DEV, 100, received_at=at(100)).kind == "stale"
        assert frames.check(DEV, 105, received_at=at(105)).kind == "stale"
        assert frames.check(DEV, 113, received_at=at(113)).kind == "late"


def test_the_counter_rolls_over_from_32_bits_to_zero(frames: FrameCounters) -> None:
    top = 0xFFFFFFFF
    frames.check(DEV, top - 1, received_at=at(1))
    assert frames.check(DEV, top, received_at=at(2)).kind == "next"
    zero = frames.check(DEV, 0, received_at=at(3))
    assert (zero.kind, zero.gap) == ("next", 0)
    assert frames.check(DEV, 2, received_at=at(4)).gap == 1
    assert frames.check(DEV, top, received_at=at(2)).kind == "duplicate"


def test_a_newer_frame_with_a_lower_counter_is_a_reset(frames: FrameCounters) -> None:
    assert kinds(frames, [5000, 5001]) == ["first", "next"]
    later = at(5001) + timedelta(minutes=1)
    reset = frames.check(DEV, 0, received_at=later)
    assert (reset.kind, reset.accepted, reset.session) == ("reset", True, 1)
    # A device rebooted with few frames sent: a low counter still inside the window.
    frames.check(DEV, 1, received_at=later + timedelta(minutes=1))
    frames.check(DEV, 2, received_at=later + timedelta(minutes=2))
    again = frames.check(DEV, 0, received_at=later + timedelta(minutes=3))
    assert (again.kind, again.session) == ("reset", 2)
    # An ABP device rebooted while its first frames were lost: far behind, not small.
    frames.check(DEV, 4000, received_at=later + timedelta(minutes=4))
    assert frames.check(DEV, 200, received_at=later + timedelta(minutes=5)).kind == "reset"
    device = frames.device(DEV)
    assert device is not None
    assert (device.resets, device.session, device.last_f_cnt) == (3, 3, 200)


def test_a_frame_of_an_old_session_is_stale_after_a_reset(frames: FrameCounters) -> None:
    frames.check(DEV, 5000, received_at=at(5000))
    frames.check(DEV, 0, received_at=at(6000))
    old = frames.check(DEV, 5001, received_at=at(5001))
    assert old.kind == "stale"
    assert frames.check(DEV, 1, received_at=at(6001)).kind == "next"


def test_without_receive_times_a_small_counter_far_behind_is_a_reset(
    frames: FrameCounters,
) -> None:
    assert kinds(frames, [1000, 1001], timed=False) == ["first", "next"]
    assert kinds(frames, [900], timed=False) == ["stale"]
    assert kinds(frames, [1, 2], timed=False) == ["reset", "next"]


def test_a_join_starts_a_new_session_but_older_redeliveries_stay_duplicates(
    frames: FrameCounters,
) -> None:
    frames.check(DEV, 3, received_at=at(3))
    frames.check(DEV, 4, received_at=at(4))
    frames.note_join(DEV)
    assert frames.check(DEV, 4, received_at=at(4)).kind == "duplicate"
    device = frames.device(DEV)
    assert device is not None
    assert device.join_pending
    first = frames.check(DEV, 1, received_at=at(10))
    assert (first.kind, first.session) == ("reset", 1)
    assert frames.check(DEV, 2, received_at=at(11)).kind == "next"


def test_joined_on_the_uplink_itself_starts_a_new_session(frames: FrameCounters) -> None:
    frames.check(DEV, 3, received_at=at(3))
    assert frames.check(DEV, 50, received_at=at(4), joined=True).kind == "reset"
    assert frames.check(DEV, 3, joined=True).kind == "reset"


def test_uplinks_without_fcnt_or_device_are_untracked(frames: FrameCounters) -> None:
    verdict = frames.check(DEV, None)
    assert (verdict.kind, verdict.accepted) == ("untracked", True)
    assert frames.check(None, 3).kind == "untracked"
    assert frames.device(DEV) is None
    assert frames.counters.untracked == 2


def test_an_fcnt_outside_32_bits_is_refused(frames: FrameCounters) -> None:
    with pytest.raises(ValueError, match="32-bit"):
        frames.check(DEV, 1 << 32)


def test_rollback_restores_the_state_before_the_verdicts(frames: FrameCounters) -> None:
    frames.check(DEV, 1, received_at=at(1))
    verdicts = [frames.check(DEV, f, received_at=at(f)) for f in (2, 3)]
    frames.rollback(verdicts)
    assert kinds(frames, [2, 3]) == ["next", "next"]
    other = frames.check("0004A30B001C0531", 7)
    frames.rollback([other])
    assert frames.device("0004A30B001C0531") is None


def test_state_persists_through_the_outbox_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path, window=128) as outbox:
        verdicts = [outbox.frames.check(DEV, f, received_at=at(f)) for f in (1, 2, 5, 100)]
        outbox.put_many([], frames=verdicts)
        outbox.frames.note_join("0004A30B001C0599")  # unknown device: nothing to note
    with Outbox(path, window=128) as reopened:
        device = reopened.frames.device(DEV)
        assert device is not None
        assert (device.last_f_cnt, device.gaps, device.last_received_at) == (100, 96, at(100))
        assert reopened.frames.check(DEV, 2, received_at=at(2)).kind == "duplicate"
        assert reopened.frames.check(DEV, 3, received_at=at(3)).kind == "late"
        assert reopened.frames.device("0004A30B001C0599") is None
        reopened.frames.forget(DEV)
        assert reopened.frames.check(DEV, 2).kind == "first"
    with Outbox(path) as again:
        assert again.frames.device(DEV) is None


def test_window_must_be_sane(tmp_path: Path) -> None:
    with Database(tmp_path / "frames.db") as db:
        with pytest.raises(ValueError, match="window"):
            FrameCounters(db, window=0)
        with pytest.raises(ValueError, match="reset_below"):
            FrameCounters(db, reset_below=-1)


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=150),
    copies=st.lists(st.integers(min_value=1, max_value=3), min_size=150, max_size=150),
    seed=st.integers(min_value=0, max_value=2**32),
    start=st.sampled_from([0, 7, 0xFFFFFFFF - 60]),
)
def test_redelivered_and_locally_reordered_uplinks_are_each_accepted_once(
    tmp_path_factory: pytest.TempPathFactory,
    count: int,
    copies: list[int],
    seed: int,
    start: int,
) -> None:
    """Each frame delivered 1-3 times, shuffled within a few places: each accepted exactly once."""
    deliveries = [
        (start + n) % (1 << 32) for n in range(count) for _ in range(copies[n % len(copies)])
    ]
    stamps = {(start + n) % (1 << 32): at(n) for n in range(count)}
    rng = random.Random(seed)
    keyed = sorted(
        ((index + rng.uniform(0, 20), f) for index, f in enumerate(deliveries)),
        key=lambda pair: pair[0],
    )
    db = Database(tmp_path_factory.mktemp("frames") / "frames.db")
    try:
        frames = FrameCounters(db)
        accepted: list[int] = []
        verdicts: list[FrameVerdict] = []
        for _, f in keyed:
            verdict = frames.check(DEV, f, received_at=stamps[f])
            verdicts.append(verdict)
            if verdict.accepted:
                accepted.append(f)
        assert sorted(accepted) == sorted(stamps)
        assert all(v.kind != "reset" for v in verdicts)
        device = frames.device(DEV)
        assert device is not None
        assert device.gaps == 0
    finally:
        db.close()
