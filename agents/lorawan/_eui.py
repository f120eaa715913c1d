"""EUI-64 and DevAddr spellings of the network servers, brought to one: uppercase hex."""

from __future__ import annotations

import binascii
import re

__all__ = ["normalize_dev_addr", "normalize_eui"]

_SEPARATORS = str.maketrans("", "", "-: ")
_CANONICAL_EUI = re.compile(r"[0-9A-F]{16}").fullmatch
_CANONICAL_DEV_ADDR = re.compile(r"[0-9A-F]{8}").fullmatch


def normalize_eui(value: str) -> str:
    """An EUI-64 (DevEUI, JoinEUI, gateway EUI) as 16 uppercase hex digits.

    Accepts 16 hex digits in either case (`0004a30b001c0530`), hex with `-`, `:` or space
    separators (`00-04-A3-0B-00-1C-05-30`), and standard base64 of the 8 bytes
    (`AgICAgICAgI=`, as ChirpStack v3's Protobuf-JSON marshaler writes it). The three forms have
    different lengths, so none is mistaken for another. Raises `ValueError` otherwise.
    """
    if _CANONICAL_EUI(value):
        return value
    return _normalize(value, 8, "an EUI-64")


def normalize_dev_addr(value: str) -> str:
    """A DevAddr as 8 uppercase hex digits; hex (any case, separators) or base64 of 4 bytes."""
    if _CANONICAL_DEV_ADDR(value):
        return value
    return _normalize(value, 4, "a DevAddr")


def _normalize(value: str, size: int, what: str) -> str:
    text = value.strip()
    hex_digits = 2 * size
    if len(text) == hex_digits + size - 1:
        text = text.translate(_SEPARATORS)
    if len(text) == hex_digits:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
        if len(raw) == size:
            return text.upper()
    if len(text) in _base64_lengths(size):
        try:
            raw = binascii.a2b_base64(_pad(text), strict_mode=True)
        except binascii.Error:
            raw = b""
        if len(raw) == size:
            return raw.hex().upper()
    raise ValueError(
        f"expected {what}: {hex_digits} hex digits (separators allowed) or base64 of {size} "
        f"bytes, got {value!r:.60}"
    )


def _base64_lengths(size: int) -> tuple[int, int]:
    padded = 4 * ((size + 2) // 3)
    unpadded = (4 * size + 2) // 3
    return (padded, unpadded)


def _pad(text: str) -> str:
    return text + "=" * (-len(text) % 4)
