"""What the transforms of a profile do to a value, as functions of one value.

The profile's transform models (`Scale`, `Offset`, `Round`, `Clamp`, `MapValues`) hold the
numbers and tables; `step()` of each returns one of the functions made here, which every
uplink's values go through. Compiled with the hot path (tools/native.py), so no pydantic
models here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from agents.profiles._errors import TransformError

__all__ = ["Step", "clamping", "lookup", "map_key", "rounding", "scaling", "shifting"]

Step = Callable[[object], object]
"""One transform step: the value in, the value out; raises `TransformError`."""


def map_key(value: object) -> str:
    """The text an enum map looks a value up by: `true`/`false` for booleans, whole numbers
    without decimals (`1.0` → `1`), other numbers as Python writes them, text as it is."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: object, step: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TransformError(f"{step} needs a number, got {value!r}")
    return value


def scaling(factor: float) -> Step:
    """Multiply by `factor`."""

    def scale(value: object) -> object:
        return _number(value, "scale") * factor

    return scale


def shifting(offset: float) -> Step:
    """Add `offset`."""

    def shift(value: object) -> object:
        return _number(value, "offset") + offset

    return shift


def rounding(decimals: int) -> Step:
    """Round to `decimals` decimals; 0 gives an integer."""

    def round_(value: object) -> object:
        number = _number(value, "round")
        if decimals == 0:
            return round(number)
        return round(float(number), decimals)

    return round_


def clamping(low: float | None, high: float | None) -> Step:
    """Limit the value to [low, high] (None: that end is open)."""

    def clamp(value: object) -> object:
        number = _number(value, "clamp")
        if low is not None and number < low:
            return low
        if high is not None and number > high:
            return high
        return number

    return clamp


def lookup(table: Mapping[str, object], default: object) -> Step:
    """The value `table` lists for the value (by `map_key`), else `default`, else an error
    naming the values it lists."""

    def look_up(value: object) -> object:
        found = table.get(map_key(value))
        if found is not None:
            return found
        if default is not None:
            return default
        listed = ", ".join(sorted(table))
        raise TransformError(f"map has no entry for {value!r} (it lists {listed})")

    return look_up
