"""The health rules (`assess`), the fCnt gap count, and the figures read from the agent's own
stores (a real archive and dead-letter store in SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.delivery import Outbox, RawUplink, UplinkArchive
from agents.fleet import (
    DeviceFigures,
    FleetSettings,
    assess,
    decode_errors,
    frame_gaps,
    uplink_figures,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
RULES = FleetSettings(silent_after=3, battery_low=0.2, gap_rate=0.25, decode_error_rate=0.25)


def figures(**changes: object) -> DeviceFigures:
    base: dict[str, object] = {
        "dev_eui": "70B3D57ED0000001",
        "device_id": "urn:ngsi-ld:Device:70B3D57ED0000001",
        "expected_interval": 120.0,
        "last_uplink": NOW - timedelta(minutes=1),
        "uplinks": 20,
    }
    base.update(changes)
    return DeviceFigures(**base)  # type: ignore[arg-type]


def test_a_device_that_reports_is_ok() -> None:
    health = assess(figures(), settings=RULES, now=NOW)
    assert health.status == "ok"
    assert health.reasons == ()
    assert health.gap_rate == 0.0


@pytest.mark.parametrize(
    ("silence", "status"),
    [(timedelta(minutes=5, seconds=59), "ok"), (timedelta(minutes=6, seconds=1), "silent")],
)
def test_silent_after_the_multiple_of_the_interval(silence: timedelta, status: str) -> None:
    health = assess(figures(last_uplink=NOW - silence), settings=RULES, now=NOW)
    assert health.status == status


def test_a_device_that_never_sent_counts_from_its_installation() -> None:
    never = figures(last_uplink=None, uplinks=0, installed=NOW - timedelta(hours=1))
    health = assess(never, settings=RULES, now=NOW)
    assert health.status == "silent"
    assert health.detail[0].startswith("never sent an uplink for 60 min")
    unknown = assess(figures(last_uplink=None, uplinks=0), settings=RULES, now=NOW)
    assert unknown.status == "unknown"


def test_without_an_expected_interval_silence_is_not_judged() -> None:
    quiet = figures(expected_interval=None, last_uplink=NOW - timedelta(days=3))
    health = assess(quiet, settings=RULES, now=NOW)
    assert health.status == "ok"
    assert health.silent_seconds == 3 * 86400


def test_battery_gaps_and_decode_errors_degrade() -> None:
    health = assess(
        figures(battery=0.15, uplinks=20, missed=10, decode_errors=6), settings=RULES, now=NOW
    )
    assert health.status == "degraded"
    assert health.reasons == ("battery-low", "frame-gaps", "decode-errors")
    assert health.detail[1] == "10 of 30 frames lost (33%, more than 25%)"
    assert health.decode_error_rate == pytest.approx(0.3)


def test_rates_wait_for_enough_uplinks() -> None:
    few = figures(uplinks=3, missed=3, decode_errors=3)
    assert assess(few, settings=RULES, now=NOW).status == "ok"


def test_silent_wins_over_degraded() -> None:
    health = assess(
        figures(battery=0.05, last_uplink=NOW - timedelta(hours=2)), settings=RULES, now=NOW
    )
    assert health.status == "silent"
    assert health.reasons == ("silent", "battery-low")


def test_frame_gaps_count_missing_fcnts_per_session() -> None:
    assert frame_gaps([1, 2, 5, 6]) == (2, [(3, 4)])
    assert frame_gaps([1, 2, 4, 3, 5]) == (0, [])  # a late frame fills its gap
    assert frame_gaps([500, 502, 0, 1, 3]) == (2, [(501, 501), (2, 2)])  # reset: new session
    assert frame_gaps([]) == (0, [])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=40))
def test_frame_gaps_of_one_session_are_what_is_not_seen(frames: list[int]) -> None:
    missed, ranges = frame_gaps(sorted(set(frames)))
    seen = set(frames)
    assert missed == (max(seen) - min(seen) + 1) - len(seen)
    assert missed == sum(high - low + 1 for low, high in ranges)


def test_figures_from_the_archive_and_the_dead_letters(tmp_path: Path) -> None:
    archive = UplinkArchive(tmp_path / "archive.db")
    outbox = Outbox(tmp_path / "outbox.db")
    try:
        start = NOW - timedelta(hours=30)
        rows = [
            RawUplink("tts", b"{}", start, dev_eui="A", f_cnt=1),  # before the window
            RawUplink("tts", b"{}", NOW - timedelta(hours=3), dev_eui="A", f_cnt=10),
            RawUplink("tts", b"{}", NOW - timedelta(hours=2), dev_eui="A", f_cnt=11),
            RawUplink("tts", b"{}", NOW - timedelta(hours=1), dev_eui="A", f_cnt=14),
            RawUplink("tts", b"{}", NOW - timedelta(hours=1), dev_eui="B", f_cnt=None),
        ]
        archive.add_many(rows)
        found = uplink_figures(archive, since=NOW - timedelta(hours=24))
        assert found["A"].uplinks == 3
        assert found["A"].missed == 2
        assert found["A"].last == NOW - timedelta(hours=1)
        assert found["B"].uplinks == 1
        assert found["B"].missed == 0
        outbox.dead_letters.add(reason="codec-error", message="bad", dev_eui="A")
        outbox.dead_letters.add(reason="codec-timeout", message="slow", dev_eui="A")
        outbox.dead_letters.add(reason="broker-rejected", message="400", dev_eui="A")
        errors = decode_errors(outbox.db, since=datetime.now(UTC) - timedelta(hours=1))
        assert errors == {"A": 2}
    finally:
        archive.close()
        outbox.close()
