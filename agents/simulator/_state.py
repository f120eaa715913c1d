"""Frame counters of the simulated devices, kept in a small JSON file so a restart continues.

    counters = FrameCounters("sim-state.json")    # reads the file when it exists
    f_cnt = counters.take("70B3D57ED0000001")     # 0, then 1, 2, ...
    counters.save()                               # atomically (write, fsync, rename)

The file is `{"version": 1, "f_cnt": {"<DevEUI>": <next fCnt>}}`. Without a path the counters
live in memory only. Counters wrap at 2^32 as LoRaWAN's 32-bit FCntUp does.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson

__all__ = ["FrameCounters", "StateError"]

_VERSION = 1


class StateError(ValueError):
    """The state file cannot be read or written: the message names it and says why."""


class FrameCounters:
    """The next uplink frame counter of each device (see the module docstring). Thread-safe."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()
        self._dirty = False
        if self.path is not None and self.path.exists():
            self._next = self._read(self.path)

    @staticmethod
    def _read(path: Path) -> dict[str, int]:
        try:
            document = orjson.loads(path.read_bytes())
        except OSError as error:
            raise StateError(f"{path}: cannot read the simulator state: {error}") from None
        except orjson.JSONDecodeError as error:
            raise StateError(
                f"{path}: the simulator state is not JSON ({error}); delete it to start the "
                "frame counters from 0"
            ) from None
        counters = document.get("f_cnt") if isinstance(document, dict) else None
        if not isinstance(counters, dict) or not all(
            isinstance(k, str) and type(v) is int and v >= 0 for k, v in counters.items()
        ):
            raise StateError(f'{path}: expected {{"version": 1, "f_cnt": {{DevEUI: next fCnt}}}}')
        return {key.upper(): value for key, value in counters.items()}

    def take(self, dev_eui: str) -> int:
        """The frame counter for `dev_eui`'s next uplink; the one after that is one higher."""
        with self._lock:
            current = self._next.get(dev_eui, 0)
            self._next[dev_eui] = (current + 1) & 0xFFFFFFFF
            self._dirty = True
            return current

    def peek(self, dev_eui: str) -> int:
        """The frame counter the next uplink of `dev_eui` will get."""
        with self._lock:
            return self._next.get(dev_eui, 0)

    def snapshot(self) -> dict[str, int]:
        """A copy of every device's next frame counter."""
        with self._lock:
            return dict(self._next)

    def save(self) -> None:
        """Write the counters to the file (atomically); nothing without a path or a change."""
        if self.path is None:
            return
        with self._lock:
            if not self._dirty:
                return
            data = orjson.dumps(
                {"version": _VERSION, "f_cnt": self._next}, option=orjson.OPT_SORT_KEYS
            )
            self._dirty = False
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except OSError as error:
            raise StateError(f"{self.path}: cannot write the simulator state: {error}") from None
