"""Times as the delivery database stores them: integer microseconds since the Unix epoch.

Compiled with the hot path (tools/native.py): the outbox, the archive and the frame counters
convert every uplink's times.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["from_us", "now_us", "to_us"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(value: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact, no float rounding)."""
    if value.tzinfo is None:
        raise ValueError(f"expected an aware datetime (UTC), got naive {value.isoformat()}")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    """The aware UTC datetime of microseconds since the Unix epoch."""
    seconds, micros = divmod(value, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def now_us() -> int:
    """The current time in microseconds since the Unix epoch."""
    return to_us(datetime.now(UTC))
