"""UN/CEFACT common codes as the short labels people read next to a value."""

from __future__ import annotations

__all__ = ["UNIT_LABELS", "format_reading", "unit_label"]

UNIT_LABELS: dict[str, str] = {
    "2N": "dB",
    "59": "ppm",
    "61": "ppb",
    "A97": "hPa",
    "C62": "",
    "CEL": "°C",
    "CMT": "cm",
    "D54": "W/m²",
    "DBM": "dBm",
    "DD": "°",
    "E32": "L/h",
    "GP": "mg/m³",
    "GQ": "µg/m³",
    "H87": "pcs",
    "HUR": "h",
    "KEL": "K",
    "KMH": "km/h",
    "KWH": "kWh",
    "LUX": "lx",
    "M1": "mg/L",
    "MBR": "mbar",
    "MIN": "min",
    "MMT": "mm",
    "MQH": "m³/h",
    "MQS": "m³/s",
    "MTK": "m²",
    "MTQ": "m³",
    "MTR": "m",
    "MTS": "m/s",
    "P1": "%",
    "PAL": "Pa",
    "SEC": "s",
    "VLT": "V",
    "WTT": "W",
}
"""Label of each code the project's models and profiles write (`C62`, "one", has none)."""


def unit_label(code: str | None) -> str | None:
    """The label of a UN/CEFACT code; an unknown code is shown as itself, no code as None."""
    if code is None:
        return None
    return UNIT_LABELS.get(code, code)


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    text = f"{round(value, 2):f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def format_reading(value: object, unit: str | None) -> str:
    """A value as the page shows it: numbers with at most two decimals, then the unit label."""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, int | float):
        text = _number(value)
    else:
        text = str(value)
    return f"{text} {unit}" if unit else text
