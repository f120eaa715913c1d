"""Native thread names, so that `top -H`, `ps -L` and `/proc/<pid>/task/*/comm` tell the
agent's threads apart (pipeline, sender workers, MQTT clients) instead of showing `python`."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["name_native_thread"]

_PR_SET_NAME = 15
_NAME_BYTES = 15
"""Linux keeps this many bytes of a thread's name."""


def name_native_thread(name: str | None = None) -> None:
    """Give the calling thread `name` (default: its Python name) in the operating system too,
    cut to the 15 bytes Linux keeps. Does nothing on other systems or when libc cannot be
    loaded: the name only helps people and tools that look at threads."""
    prctl = _prctl()
    if prctl is None:
        return
    text = threading.current_thread().name if name is None else name
    prctl(_PR_SET_NAME, text.encode("utf-8", "replace")[:_NAME_BYTES], 0, 0, 0)


@functools.cache
def _prctl() -> Callable[..., Any] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[..., Any] = ctypes.CDLL(ctypes.util.find_library("c")).prctl
    except (OSError, AttributeError):
        return None
    return function
