"""The delivery database's times: exact microseconds since the Unix epoch, both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.delivery._clock import from_us, now_us, to_us

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))]
        ),
    )
)
def test_microseconds_are_exact_and_come_back(moment: datetime) -> None:
    us = to_us(moment)
    assert us == (moment - _EPOCH) // timedelta(microseconds=1)
    assert from_us(us) == moment
    assert from_us(us).tzinfo is UTC


def test_known_instants() -> None:
    assert to_us(_EPOCH) == 0
    assert to_us(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1
    assert to_us(datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=UTC)) == 1_714_564_800_000_005
    assert abs(now_us() - to_us(datetime.now(UTC))) < 5_000_000


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive 2024-05-01T12:00:00"):
        to_us(datetime(2024, 5, 1, 12))
