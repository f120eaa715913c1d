"""NGSI-LD DateTime values: always timezone-aware, always written in UTC with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_datetime", "parse_datetime"]


def parse_datetime(value: str | datetime, *, what: str = "DateTime") -> datetime:
    """An aware datetime in UTC from an ISO 8601 string or a datetime.

    Offsets are converted to UTC (`2020-09-16T13:30:00+05:30` becomes 08:00 UTC). A value without
    an offset is refused: NGSI-LD times are instants, and guessing the zone of a naive time is how
    readings end up an hour off. Raises ValueError naming `what` and the value.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{what} {value!r} is not an ISO 8601 date-time such as '2024-05-01T12:00:00Z'"
            ) from None
    else:
        raise ValueError(f"{what} must be an ISO 8601 string, got {type(value).__name__}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        shown = repr(value) if isinstance(value, str) else value.isoformat()
        raise ValueError(
            f"{what} {shown} has no timezone; write it in UTC with a 'Z' "
            "(for example '2024-05-01T12:00:00Z')"
        )
    return parsed.astimezone(UTC)


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`: no fraction when the time is on a whole second, milliseconds
    when the fraction is whole milliseconds, microseconds otherwise (nothing is rounded away)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"cannot format naive datetime {value.isoformat()} as NGSI-LD DateTime")
    utc = value.astimezone(UTC)
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    micro = utc.microsecond
    if micro == 0:
        return text + "Z"
    if micro % 1000 == 0:
        return f"{text}.{micro // 1000:03d}Z"
    return f"{text}.{micro:06d}Z"
